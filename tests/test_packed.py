"""Packed training (dislab.train.packed): a pack's members equal their runs trained alone,
fail alone, resume exactly and leave run folders that read as single runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from dislab import models
from dislab.errors import DislabError
from dislab.models import noise
from dislab.models.beta_vae import BetaVAE
from dislab.train import checkpoint as ckpt
from dislab.train import fit, load_run, packed
from dislab.train.packed import fit_pack, pack_key, pack_problem
from train_helpers import cfg, history

RTOL = 1e-5
#: both ways of running a pack: one vectorised pass (CUDA's default) and member by member in
#: threads (the CPU's default); each must give every member its single run
EXECUTIONS = ["vmap", "members"]


def opts(execution: str, **kw: object) -> packed.PackOptions:
    return packed.PackOptions(execution=execution, **kw)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def close_history(a: list[dict], b: list[dict]) -> None:
    """Same steps and keys; the loss within RTOL relative. The other logs include small
    differences of O(1) quantities (per-latent KL: mu² + e^logvar − logvar − 1; FactorVAE's
    TC: a difference of logits), compared to an absolute accuracy of 1e-6 besides RTOL."""
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            tol = RTOL * abs(rb[k]) + (0.0 if k == "loss" else 1e-6)
            assert abs(ra[k] - rb[k]) <= tol, (ra["step"], k, ra[k], rb[k])


def close_weights(a: Path, b: Path, rtol: float = RTOL) -> None:
    """Every tensor of the two runs' final weights within ``rtol`` (relative, in norm)."""
    ma, _ = load_run(a)
    mb, _ = load_run(b)
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        err = torch.linalg.vector_norm(sa[k] - sb[k])
        assert err <= rtol * torch.linalg.vector_norm(sb[k]) + 1e-12, (k, float(err))


def equal_runs(a: Path, b: Path) -> None:
    assert history(a) == history(b)
    ma, _ = load_run(a)
    mb, _ = load_run(b)
    for (k, x), y in zip(ma.state_dict().items(), mb.state_dict().values()):
        assert torch.equal(x, y), k


def three(tmp_path: Path, prefix: str, **kw: object) -> list[dict]:
    return [cfg(tmp_path, f"{prefix}{i}", seed=s, hparams={"beta": b}, **kw)
            for i, (s, b) in enumerate([(0, 1.0), (1, 4.0), (2, 8.0)])]


# -- (a) a pack equals its runs trained alone ---------------------------------------------------
@pytest.mark.parametrize("execution", EXECUTIONS)
def test_pack_of_three_equals_runs_trained_alone(tmp_path: Path, execution: str) -> None:
    configs = three(tmp_path, "pack", steps=50, log_every=5, checkpoint_every=20)
    statuses = fit_pack(configs, progress=False, options=opts(execution))
    assert [s["status"] for s in statuses] == ["done"] * 3
    assert [s["step"] for s in statuses] == [50] * 3
    for i, c in enumerate(configs):
        alone = fit({**c, "out": str(tmp_path / f"alone{i}")}, progress=False)
        packed_run = tmp_path / f"pack{i}"
        close_history(history(packed_run), history(alone))
        close_weights(packed_run, alone)
        assert statuses[i] == json.loads((packed_run / "status.json").read_text())
    # the members really differ (seeds and β reach them)
    h = [history(tmp_path / f"pack{i}")[-1]["loss"] for i in range(3)]
    assert len(set(h)) == 3


def test_pack_draws_the_batches_of_the_single_runs(tmp_path: Path) -> None:
    """The stacked batches (B, K, *obs) are each member's BatchSource draws, in order."""
    from dislab.train import Trainer

    configs = three(tmp_path, "b", prefetch=True)
    trainers = [Trainer(c) for c in configs]
    batches = packed.PackBatches([t.batches for t in trainers], True, torch.device("cpu"))
    alone = [Trainer({**c, "prefetch": False}) for c in configs]
    try:
        for _ in range(4):
            xs = next(batches)
            for i, t in enumerate(alone):
                assert torch.equal(xs[:, i], t.next_batch())
        # state() is the position before the next batch, as BatchSource.state()
        assert batches.states() == [t.batches.state() for t in alone]
    finally:
        batches.close()
        for t in trainers + alone:
            t.close()


def test_noise_hook_defaults_to_the_global_generator() -> None:
    """The hook draws exactly what torch draws (single runs unchanged), and a generator in
    the same state reproduces the draws (how a packed member gets its noise)."""
    like = torch.zeros(5, 3)
    torch.manual_seed(3)
    a = (noise.randn_like(like), noise.rand((4, 2)), noise.randperm(7))
    torch.manual_seed(3)
    b = (torch.randn_like(like), torch.rand((4, 2)), torch.randperm(7))
    g = torch.Generator().manual_seed(3)
    c = tuple(noise.draw(d, g, "cpu") for d in (noise.Draw("randn", (5, 3), torch.float32),
                                                 noise.Draw("rand", (4, 2), torch.float32),
                                                 noise.Draw("randperm", (7,), torch.int64)))
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) and torch.equal(x, z)
    with noise.record() as rec:
        noise.randn_like(like)
        noise.randperm(4)
    assert rec.draws == [noise.Draw("randn", (5, 3), torch.float32),
                         noise.Draw("randperm", (4,), torch.int64)]
    given = [torch.ones(5, 3)]
    with noise.replay(given):
        assert noise.randn_like(like) is given[0]
        with pytest.raises(DislabError, match="unexpected random draw"):
            noise.randn_like(like)


def test_vectorised_adam_equals_torch_adam() -> None:
    """Two members with their own learning rates follow torch.optim.Adam exactly (to float
    rounding), bias corrections included."""
    torch.manual_seed(0)
    w = [torch.randn(4, 3), torch.randn(4, 3)]
    grads = [[torch.randn(4, 3) for _ in range(2)] for _ in range(5)]
    lrs = [1e-2, 3e-3]
    refs = []
    for i in range(2):
        p = torch.nn.Parameter(w[i].clone())
        opt = torch.optim.Adam([p], lr=lrs[i], betas=(0.9, 0.999), eps=1e-8)
        for g in grads:
            p.grad = g[i].clone()
            opt.step()
        refs.append(p.detach())
    for update in ("_adam_fused", "_adam_vectorised"):
        pack = object.__new__(packed._Pack)
        pack.members = [None, None]
        pack._pool = None  # members in turn
        pack.params = {"w": torch.stack(w)}
        pack.exp_avg = {"w": torch.zeros(2, 4, 3)}
        pack.exp_avg_sq = {"w": torch.zeros(2, 4, 3)}
        pack.count = {"w": torch.zeros(2)}
        pack.groups = [packed._Group(["w"], torch.tensor(lrs, dtype=torch.float64), 0.9, 0.999,
                                     1e-8, "model", 0)]
        for g in grads:
            getattr(pack, update)({"w": torch.stack(g)})
        for i in range(2):
            torch.testing.assert_close(pack.params["w"][i], refs[i], rtol=1e-6, atol=1e-7)
        assert pack.count["w"].tolist() == [5.0, 5.0]


# -- (b) a NaN in one member ---------------------------------------------------------------------
@models.register
class NaNFrom(BetaVAE):
    """β-VAE whose loss is NaN from update ``nan_at`` on, a hyper-parameter that may differ
    inside a pack (tests only)."""

    name: ClassVar[str] = "test_nan_from"
    hparams: ClassVar[dict] = {**BetaVAE.hparams,
                               "nan_at": models.HParam(1e9, "first NaN update (0-based)")}
    packed_hparams: ClassVar[tuple[str, ...]] = ("beta", "nan_at")

    def loss(self, batch, step=0):
        loss, logs = super().loss(batch, step)
        blown = torch.as_tensor(step, device=loss.device) >= self.hp["nan_at"]
        return loss + torch.where(blown, float("nan"), 0.0), logs


@pytest.mark.parametrize(("how", "execution"), [("hparam", "vmap"), ("lr", "vmap"),
                                               ("hparam", "members")])
def test_nan_member_fails_alone(tmp_path: Path, how: str, execution: str) -> None:
    """One member's loss becomes NaN (from update 7 by a hyper-parameter, or at once by a
    huge learning rate): it stops with fit's status and checkpoint, the others go on."""
    kw = dict(model="test_nan_from", steps=20, log_every=2, checkpoint_every=5)
    a, b, c = three(tmp_path, "m", **kw)
    if how == "lr":
        b["lr"] = 1e30
    else:
        b["hparams"] = {**b["hparams"], "nan_at": 7}
    statuses = fit_pack([a, b, c], progress=False, options=opts(execution))
    assert [s["status"] for s in statuses] == ["done", "failed", "done"]
    # the others are exactly the pack without the failing member
    a2 = {**a, "out": str(tmp_path / "w0")}
    c2 = {**c, "out": str(tmp_path / "w2")}
    fit_pack([a2, c2], progress=False, options=opts(execution))
    equal_runs(tmp_path / "m0", tmp_path / "w0")
    equal_runs(tmp_path / "m2", tmp_path / "w2")
    # the failing member's folder is what fit leaves: same message, last good checkpoint
    with pytest.raises(DislabError) as e:
        fit({**b, "out": str(tmp_path / "alone")}, progress=False)
    failed = json.loads((tmp_path / "m1" / "status.json").read_text())
    alone = json.loads((tmp_path / "alone" / "status.json").read_text())
    assert failed["error"].replace(str(tmp_path / "m1"), "RUN") \
        == str(e.value).replace(str(tmp_path / "alone"), "RUN")
    assert failed["step"] == alone["step"] and failed["status"] == "failed"
    assert not (tmp_path / "m1" / "model.safetensors").exists()
    if how == "hparam":
        assert failed["step"] == 8 and "checkpoint (step 5)" in failed["error"]
        path = "checkpoint/checkpoint.safetensors"
        tensors, meta = ckpt.load_tensors(tmp_path / "m1" / path)
        _, meta_alone = ckpt.load_tensors(tmp_path / "alone" / path)
        assert meta["step"] == meta_alone["step"] == 5
        assert all(torch.isfinite(v).all() for k, v in tensors.items()
                   if k.startswith("model/"))
    else:
        assert "no checkpoint" in failed["error"]
        assert not (tmp_path / "m1" / "checkpoint").exists()
    assert [r["step"] for r in history(tmp_path / "m1")] \
        == [r["step"] for r in history(tmp_path / "alone")]


# -- (c) kill and resume -------------------------------------------------------------------------
@pytest.mark.parametrize("execution", EXECUTIONS)
def test_resumed_pack_equals_uninterrupted_pack(tmp_path: Path, execution: str) -> None:
    o = opts(execution)
    full = three(tmp_path, "full", steps=20, log_every=5, checkpoint_every=4)
    fit_pack(full, progress=False, options=o)
    part = three(tmp_path, "part", steps=10, log_every=5, checkpoint_every=4)
    fit_pack(part, progress=False, options=o)
    with pytest.raises(DislabError, match="already holds a run"):
        fit_pack(part, progress=False, options=o)
    statuses = fit_pack([{**c, "steps": 20} for c in part], progress=False, resume=True,
                        options=o)
    assert [s["step"] for s in statuses] == [20] * 3
    for i in range(3):
        equal_runs(tmp_path / f"full{i}", tmp_path / f"part{i}")


def _interrupt_update(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Ctrl-C inside the pack's update ``step`` (0-based), once: that update never happens."""
    step_once = packed._Pack._adam
    armed = {"on": True}

    def interrupted(self, grads):
        if self.step == step and armed["on"]:
            armed["on"] = False
            raise KeyboardInterrupt
        return step_once(self, grads)

    monkeypatch.setattr(packed._Pack, "_adam", interrupted)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_pack_interrupted_mid_window_resumes_exactly(tmp_path: Path, execution: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt inside update 13 (log every 4, prefetching): each member's
    checkpoint holds its partial window and generators, and the resumed pack equals the
    uninterrupted one."""
    kw = dict(steps=20, log_every=4, checkpoint_every=100, prefetch=True)
    fit_pack(three(tmp_path, "full", **kw), progress=False, options=opts(execution))
    _interrupt_update(monkeypatch, 13)
    part = three(tmp_path, "part", **kw)
    with pytest.raises(KeyboardInterrupt):
        fit_pack(part, progress=False, options=opts(execution))
    for i in range(3):
        status = json.loads((tmp_path / f"part{i}" / "status.json").read_text())
        assert status["status"] == "interrupted" and status["step"] == 13
    fit_pack(part, progress=False, resume=True, options=opts(execution))
    for i in range(3):
        equal_runs(tmp_path / f"full{i}", tmp_path / f"part{i}")


def test_member_checkpoint_resumes_alone_with_fit(tmp_path: Path) -> None:
    """A packed member's checkpoint is fit's: fit continues it to the same run."""
    fit_pack(three(tmp_path, "p", steps=8, checkpoint_every=4), progress=False)
    alone = fit({**three(tmp_path, "p")[1], "steps": 16}, progress=False, resume=True)
    reference = fit({**three(tmp_path, "r")[1], "steps": 16}, progress=False)
    close_history(history(alone), history(reference))
    close_weights(alone, reference)


# -- (d) FactorVAE, and every packable method ---------------------------------------------------
@pytest.mark.parametrize("execution", EXECUTIONS)
def test_factor_vae_pack_equals_runs_alone(tmp_path: Path, execution: str) -> None:
    configs = [cfg(tmp_path, f"f{i}", model="factor_vae", steps=12, batch_size=8, log_every=3,
                   seed=i, hparams={"gamma": g, "disc_layers": 2})
               for i, g in enumerate([10.0, 40.0])]
    assert pack_key(configs[0]) == pack_key(configs[1]) is not None
    fit_pack(configs, progress=False, options=opts(execution))
    for i, c in enumerate(configs):
        alone = fit({**c, "out": str(tmp_path / f"alone{i}")}, progress=False)
        close_history(history(tmp_path / f"f{i}"), history(alone))
        # the discriminator's own Adam (lr 1e-4, betas 0.5/0.9) is in the checkpoint
        tensors, meta = ckpt.load_tensors(tmp_path / f"f{i}" / "checkpoint/checkpoint.safetensors")
        assert meta["optimizers"]["discriminator"]["param_groups"][0]["betas"] == [0.5, 0.9]
        assert any(k.startswith("optim/discriminator/") for k in tensors)
        ma, _ = load_run(tmp_path / f"f{i}")
        mb, _ = load_run(alone)
        for (k, x), y in zip(ma.state_dict().items(), mb.state_dict().values()):
            # Adam follows the sign of gradients that are nearly zero in a few coordinates
            # (float rounding of grouped vs single convolutions): compared in norm
            err = torch.linalg.vector_norm(x - y)
            assert err <= 1e-3 * torch.linalg.vector_norm(y) + 1e-12, k


@pytest.mark.parametrize("name", sorted(n for n, c in models.available().items()
                                        if not n.startswith("test_") and n != "factor_vae"))
@pytest.mark.parametrize("execution", EXECUTIONS)
def test_every_packable_method_equals_alone(tmp_path: Path, name: str, execution: str) -> None:
    cls = models.get(name)
    extra = {"disc_layers": 1} if "disc_layers" in cls.hparams else {}
    varied = {h: cls.hparams[h].default * 2 + 1 for h in cls.packed_hparams}
    configs = [cfg(tmp_path, f"p{i}", model=name, steps=6, batch_size=8, log_every=2, seed=i,
                   hparams={**(varied if i else {}), **extra}) for i in range(2)]
    assert pack_key(configs[0]) is not None, pack_problem(configs[0])
    assert pack_key(configs[0]) == pack_key(configs[1])
    fit_pack(configs, progress=False, options=opts(execution))
    for i, c in enumerate(configs):
        alone = fit({**c, "out": str(tmp_path / f"a{i}")}, progress=False)
        a, b = history(tmp_path / f"p{i}"), history(alone)
        assert [r["step"] for r in a] == [r["step"] for r in b]
        for ra, rb in zip(a, b):
            assert ra["loss"] == pytest.approx(rb["loss"], rel=RTOL)


# -- (e) a member's folder reads as a single run's ----------------------------------------------
def test_packed_member_folder_reads_as_a_single_run(tmp_path: Path) -> None:
    from dislab.cli import main as dislab_main

    configs = three(tmp_path, "p", steps=6, tensorboard=True)
    fit_pack(configs[:2], progress=False)
    alone = fit({**configs[0], "out": str(tmp_path / "alone")}, progress=False)
    run = tmp_path / "p0"
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted(p.name for p in alone.iterdir())
    assert {"config.json", "status.json", "history.jsonl", "checkpoint", "model.safetensors",
            "tb"} <= set(names)
    assert any((run / "tb").iterdir())
    model, config = load_run(run)
    assert config.to_dict() == json.loads((alone / "config.json").read_text()) | {
        "out": str(run)}
    _, meta = ckpt.load_tensors(run / "model.safetensors", "weights")
    _, meta_alone = ckpt.load_tensors(alone / "model.safetensors", "weights")
    assert meta == meta_alone
    assert dislab_main(["evaluate", str(run), "--metrics", "mig", "--param",
                        "mig.num_train=200", "--quiet", "--device", "cpu"]) == 0
    assert dislab_main(["evaluate", str(alone), "--metrics", "mig", "--param",
                        "mig.num_train=200", "--quiet", "--device", "cpu"]) == 0
    codes = np.load(run / "codes.npz")
    codes_alone = np.load(alone / "codes.npz")
    for k in codes.files:
        if codes[k].dtype.kind == "f":
            np.testing.assert_allclose(codes[k], codes_alone[k], rtol=1e-4, atol=1e-5)


# -- (f) grouping -----------------------------------------------------------------------------
@models.register
class DrawsOutsideHook(BetaVAE):
    """β-VAE whose loss draws torch noise directly (tests only)."""

    name: ClassVar[str] = "test_draws_outside_hook"

    def loss(self, batch, step=0):
        loss, logs = super().loss(batch, step)
        return loss + 0.0 * torch.rand(()), logs


def test_pack_key_groups_and_rejects(tmp_path: Path) -> None:
    base = cfg(tmp_path, hparams={"beta": 4.0})
    key = pack_key(base)
    assert key is not None and hash(key) == hash(pack_key(dict(base)))
    # seed, out, lr and the packed hyper-parameters may differ
    assert pack_key({**base, "seed": 3, "out": str(tmp_path / "x"), "lr": 3e-4,
                     "hparams": {"beta": 16.0}}) == key
    # anything else splits the packs
    for change in ({"batch_size": 8}, {"latent_dim": 4}, {"steps": 30}, {"arch": "mlp"},
                   {"reconstruction": "gaussian"}, {"model": "beta_tcvae", "hparams": {}},
                   {"data_options": {"x": 1}}, {"log_every": 3}):
        assert pack_key({**base, **change}) != key, change
    fv = cfg(tmp_path, model="factor_vae")
    assert pack_key({**fv, "hparams": {"gamma": 30.0}}) == pack_key(fv)
    assert pack_key({**fv, "hparams": {"disc_lr": 1e-3}}) != pack_key(fv)
    # unpackable methods and settings: None, with the reason
    dotran = cfg(tmp_path, model="aae", hparams={"setup": "dotran"})
    assert pack_key(dotran) is None and "in sequence" in pack_problem(dotran)
    assert pack_key(cfg(tmp_path, model="aae")) is not None
    step_override = cfg(tmp_path, model="test_interrupt_at")
    assert pack_key(step_override) is None
    assert "overrides training_step" in pack_problem(step_override)
    assert pack_problem(base) is None
    tracked = {**base, "loggers": ["tensorboard", "mlflow"]}
    assert pack_key(tracked) is None and "mlflow" in pack_problem(tracked)


def test_fit_pack_rejects_bad_input(tmp_path: Path) -> None:
    base = cfg(tmp_path, steps=2)
    with pytest.raises(DislabError, match="differ in batch_size"):
        fit_pack([base, {**base, "out": str(tmp_path / "b"), "batch_size": 8}], progress=False)
    with pytest.raises(DislabError, match="own folders"):
        fit_pack([base, {**base, "seed": 2}], progress=False)
    with pytest.raises(DislabError, match="non-empty"):
        fit_pack([], progress=False)
    with pytest.raises(DislabError, match="in sequence"):
        fit_pack([cfg(tmp_path, model="aae", hparams={"setup": "dotran"})], progress=False)
    with pytest.raises(DislabError, match="Nothing to resume"):
        fit_pack([base], progress=False, resume=True)
    with pytest.raises(DislabError, match="precision"):
        fit_pack([base], progress=False, options=packed.PackOptions(precision="fp16"))
    with pytest.raises(DislabError, match="outside dislab.models.noise"):
        fit_pack([cfg(tmp_path, "h", model="test_draws_outside_hook", steps=2)],
                 progress=False, options=opts("vmap"))
    with pytest.raises(DislabError, match="execution"):
        fit_pack([base], progress=False, options=opts("threads"))
    assert not (tmp_path / "run").exists() and not (tmp_path / "b").exists()


def test_bf16_pack_trains_close_to_fp32(tmp_path: Path) -> None:
    """bf16 autocast changes the numbers (it is an option, off by default) but not the run:
    losses stay finite and close to fp32's on this short run."""
    fp32 = fit_pack(three(tmp_path, "f", steps=10), progress=False, options=opts("vmap"))
    bf16 = fit_pack(three(tmp_path, "h", steps=10), progress=False,
                    options=opts("vmap", precision="bf16"))
    for a, b in zip(fp32, bf16):
        assert b["status"] == "done"
        assert b["final_logs"]["loss"] != a["final_logs"]["loss"]
        assert b["final_logs"]["loss"] == pytest.approx(a["final_logs"]["loss"], rel=0.05)


def test_members_in_threads_equal_members_in_turn(tmp_path: Path) -> None:
    """execution="members" with two workers (two members at once, one core each) gives the
    runs of one worker exactly."""
    one = three(tmp_path, "one", steps=6)
    two = three(tmp_path, "two", steps=6, threads=2)
    fit_pack(one, progress=False, options=opts("members"))
    fit_pack(two, progress=False, options=opts("members", workers=None))
    assert torch.get_num_threads() == 1  # fit_pack put the thread count back
    for i in range(3):
        equal_runs(tmp_path / f"one{i}", tmp_path / f"two{i}")


# -- (g) batches drawn and gathered on the device (PackOptions(data=...)) -----------------------
def dev(execution: str = "members", **kw: object) -> packed.PackOptions:
    return opts(execution, data="device", **kw)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_device_pack_equals_its_members_packed_alone(tmp_path: Path, execution: str) -> None:
    """With data="device" a member's batches depend on its seed and the step only: a pack of
    three equals the three runs each in a pack of one (K = 1, its own convolutions, as fit's),
    on the same path. Member by member that is bit for bit; vmapped, the losses agree to 1e-5
    and the weights to 1e-5 in norm over the whole model (per tensor, Adam follows the sign of
    the few nearly-zero gradients, which the grouped convolutions round differently)."""
    configs = three(tmp_path, "pack", steps=30, log_every=5, checkpoint_every=10)
    statuses = fit_pack(configs, progress=False, options=dev(execution))
    assert [s["status"] for s in statuses] == ["done"] * 3
    for i, c in enumerate(configs):
        alone = {**c, "out": str(tmp_path / f"alone{i}")}
        fit_pack([alone], progress=False, options=dev("members"))
        run, ref = tmp_path / f"pack{i}", Path(alone["out"])
        if execution == "members":
            equal_runs(run, ref)
            continue
        close_history(history(run), history(ref))
        sa, sb = load_run(run)[0].state_dict(), load_run(ref)[0].state_dict()
        va = torch.cat([v.flatten() for v in sa.values()])
        vb = torch.cat([sb[k].flatten() for k in sa])
        assert torch.linalg.vector_norm(va - vb) <= RTOL * torch.linalg.vector_norm(vb)
    # another batch stream than the host path's (same distribution, other draws)
    host = fit_pack(three(tmp_path, "host", steps=30, log_every=5), progress=False,
                    options=opts(execution, data="host"))
    assert host[0]["final_logs"]["loss"] != statuses[0]["final_logs"]["loss"]


def test_device_batches_are_the_grid_gathered_at_the_drawn_indices(tmp_path: Path) -> None:
    """The batch a member's step gets is grid.gather(DeviceBatches([seed], B, N).indices(t)),
    bit for bit the host images of those grid points, laid out (B, K, *obs)."""
    from dislab.data.device import DeviceBatches, DeviceGrid
    from train_helpers import tiny_data

    configs = three(tmp_path, "g")
    pack = packed.pack_trainer(configs, options=dev())
    seen: list[torch.Tensor] = []
    step_fn = pack._step_fn

    def spy(params, frozen, hp, xs, draws, step):
        seen.append(xs.clone())
        return step_fn(params, frozen, hp, xs, draws, step)

    pack._step_fn = spy
    try:
        assert pack.data == "device" and isinstance(pack.batches, packed.PackDeviceBatches)
        for _ in range(3):
            pack.train_step()
        assert pack.batches.states() == [{"kind": "device", "step": 3}] * 3
    finally:
        pack.close()
    data = tiny_data()
    grid = DeviceGrid.from_data(data, "cpu", progress=False)
    for t, xs in enumerate(seen):
        assert xs.shape == (16, 3, 1, 16, 16)
        for k, c in enumerate(configs):
            idx = DeviceBatches([c["seed"]], 16, len(data)).indices(t)[0]
            assert torch.equal(xs[:, k], grid.gather(idx))
            assert np.array_equal(xs[:, k].numpy(), data.images_from_index(idx.numpy()))
    assert not torch.equal(seen[0][:, 0], seen[1][:, 0])
    assert not torch.equal(seen[0][:, 0], seen[0][:, 1])


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_device_pack_resumes_exactly(tmp_path: Path, execution: str) -> None:
    """Stopped at step 10 and resumed to 20, a device-batch pack equals the uninterrupted
    one bit for bit; its checkpoints record the path and the step."""
    full = three(tmp_path, "full", steps=20, log_every=5, checkpoint_every=4)
    fit_pack(full, progress=False, options=dev(execution))
    part = three(tmp_path, "part", steps=10, log_every=5, checkpoint_every=4)
    fit_pack(part, progress=False, options=dev(execution))
    _, meta = ckpt.load_tensors(tmp_path / "part1" / "checkpoint/checkpoint.safetensors")
    assert meta["data_rng"] == {"kind": "device", "step": 10}
    fit_pack([{**c, "steps": 20} for c in part], progress=False, resume=True,
             options=dev(execution))
    for i in range(3):
        equal_runs(tmp_path / f"full{i}", tmp_path / f"part{i}")


def test_device_pack_interrupted_mid_window_resumes_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt inside update 13: the interrupted batch is drawn again on resume
    (the state is the step before it), and data="auto" on the CPU keeps the checkpoint's
    device path."""
    kw = dict(steps=20, log_every=4, checkpoint_every=100)
    fit_pack(three(tmp_path, "full", **kw), progress=False, options=dev())
    _interrupt_update(monkeypatch, 13)
    part = three(tmp_path, "part", **kw)
    with pytest.raises(KeyboardInterrupt):
        fit_pack(part, progress=False, options=dev())
    _, meta = ckpt.load_tensors(tmp_path / "part0" / "checkpoint/checkpoint.safetensors")
    assert meta["data_rng"] == {"kind": "device", "step": 13} and meta["step"] == 13
    fit_pack(part, progress=False, resume=True, options=opts("members"))  # data="auto"
    for i in range(3):
        equal_runs(tmp_path / f"full{i}", tmp_path / f"part{i}")


def test_device_checkpoint_resumes_only_on_its_path(tmp_path: Path) -> None:
    """A device-batch checkpoint cannot continue exactly on the host: fit and a pack asked
    for data="host" refuse it with a clear error and leave the run as it was; a host-batch
    checkpoint likewise refuses data="device"."""
    fit_pack(three(tmp_path, "d", steps=4, checkpoint_every=2)[:2], progress=False,
             options=dev())
    d0 = three(tmp_path, "d", steps=8)[0]
    with pytest.raises(DislabError, match="drawn on the device.*fit_pack"):
        fit(d0, progress=False, resume=True)
    with pytest.raises(DislabError, match="on the device path.*data='auto'"):
        fit_pack([d0], progress=False, resume=True, options=opts("members", data="host"))
    assert json.loads((tmp_path / "d0" / "status.json").read_text())["step"] == 4
    fit_pack(three(tmp_path, "h", steps=4, checkpoint_every=2)[:1], progress=False)
    with pytest.raises(DislabError, match="on the host path"):
        fit_pack([three(tmp_path, "h", steps=8)[0]], progress=False, resume=True,
                 options=dev())
    with pytest.raises(DislabError, match="data"):
        packed.PackOptions(data="gpu").validate()


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_nan_member_fails_alone_on_device_batches(tmp_path: Path, execution: str) -> None:
    """A member whose loss becomes NaN leaves the pack; the others are exactly the pack
    without it (their device batches do not depend on the other members)."""
    kw = dict(model="test_nan_from", steps=20, log_every=2, checkpoint_every=5)
    a, b, c = three(tmp_path, "m", **kw)
    b["hparams"] = {**b["hparams"], "nan_at": 7}
    statuses = fit_pack([a, b, c], progress=False, options=dev(execution))
    assert [s["status"] for s in statuses] == ["done", "failed", "done"]
    assert statuses[1]["step"] == 8 and "checkpoint (step 5)" in statuses[1]["error"]
    fit_pack([{**a, "out": str(tmp_path / "w0")}, {**c, "out": str(tmp_path / "w2")}],
             progress=False, options=dev(execution))
    equal_runs(tmp_path / "m0", tmp_path / "w0")
    equal_runs(tmp_path / "m2", tmp_path / "w2")


def test_data_auto_is_host_on_the_cpu(tmp_path: Path) -> None:
    pack = packed.pack_trainer(three(tmp_path, "a"))
    try:
        assert pack.data == "host" and isinstance(pack.batches, packed.PackBatches)
    finally:
        pack.close()


def test_device_data_falls_back_to_host_with_a_warning(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Pair methods draw their batches on the host, and so does a grid that does not fit the
    device: data="device" says so in one warning line; "auto" is silent."""
    import warnings

    from dislab.data import device as device_module

    pairs = [cfg(tmp_path, f"p{i}", model="ada_gvae", batch_size=8, seed=i) for i in range(2)]
    with pytest.warns(UserWarning, match="pair batches are drawn on the host") as rec:
        pack = packed.pack_trainer(pairs, options=dev())
    pack.close()
    assert pack.data == "host" and "\n" not in str(rec[0].message)
    monkeypatch.setattr(device_module, "_free_bytes", lambda device: 1000)
    with pytest.warns(UserWarning, match="only 0.00 GiB are free.*uses the host path") as rec:
        pack = packed.pack_trainer(three(tmp_path, "s"), options=dev())
    pack.close()
    assert pack.data == "host" and "\n" not in str(rec[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pack = packed.pack_trainer(pairs, options=opts("members", data="auto"))
        pack.close()
