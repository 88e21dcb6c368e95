"""Training loop, config and CLI: round trips, exact resume, NaN handling, run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dislab import models
from dislab.cli import main as dislab_main
from dislab.errors import DislabError
from dislab.train import TrainConfig, fit, load_run
from dislab.train import checkpoint as ckpt
from dislab.viz import images as vi
from train_helpers import InterruptAt, cfg, history, tiny_data


# -- config ---------------------------------------------------------------------------------
def test_config_json_round_trip(tmp_path: Path) -> None:
    c = TrainConfig(model="beta_vae", hparams={"beta": 6.0}, steps=123, seed=3,
                    data_options={"a": [1, 2]}, compile="auto", out=str(tmp_path / "x"))
    d = c.to_dict()
    assert TrainConfig.from_dict(d) == c
    c.save(tmp_path / "c.json")
    assert TrainConfig.from_json(tmp_path / "c.json") == c
    assert json.loads((tmp_path / "c.json").read_text())["hparams"] == {"beta": 6.0}
    # study defaults (disentanglement_lib config/unsupervised_study_v1/model_configs/shared.gin)
    s = TrainConfig(model="beta_vae")
    assert (s.batch_size, s.steps, s.lr, s.beta1, s.beta2, s.eps, s.latent_dim) == \
        (64, 300_000, 1e-4, 0.9, 0.999, 1e-8, 10)


@pytest.mark.parametrize("change, words", [
    ({"stepz": 3}, ["stepz", "steps"]),
    ({"lr": -1.0}, ["lr"]),
    ({"lr": float("nan")}, ["lr"]),
    ({"batch_size": 0}, ["batch_size"]),
    ({"beta2": 1.0}, ["beta2"]),
    ({"device": "gpu"}, ["device"]),
    ({"compile": "yes"}, ["compile"]),
    ({"steps": 2.5}, ["steps"]),
    ({"model": "no_such_model"}, ["no_such_model", "beta_vae"]),
    ({"hparams": {"gamma": 3}}, ["gamma", "beta"]),
    ({"reconstruction": "poisson"}, ["reconstruction"]),
])
def test_config_validation_errors(change: dict, words: list[str]) -> None:
    d = {"model": "beta_vae", **change}
    with pytest.raises(DislabError) as e:
        TrainConfig.from_dict(d)
    for w in words:
        assert w in str(e.value)


def test_config_needs_model() -> None:
    with pytest.raises(DislabError, match="model"):
        TrainConfig.from_dict({"steps": 3})


# -- training, run folder, load_run ---------------------------------------------------------------
def test_fit_writes_run_folder_and_load_run(tmp_path: Path) -> None:
    run = fit(cfg(tmp_path, steps=12, image_every=6, tensorboard=True), progress=False)
    for name in ("config.json", "model.safetensors", "status.json", "history.jsonl",
                 "checkpoint/checkpoint.safetensors", "images/reconstructions.png",
                 "images/traversals.png", "images/reconstructions_0000006.png"):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir())
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "done" and status["step"] == 12 and status["error"] is None
    assert np.isfinite(status["final_logs"]["loss"])
    rows = history(run)
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10, 12]
    # the logged loss is recon + beta * kl (window means are linear)
    for r in rows:
        assert r["loss"] == pytest.approx(r["recon"] + 4.0 * r["kl"], rel=1e-5)
    saved = json.loads((run / "config.json").read_text())
    assert saved["hparams"] == {"beta": 4.0}  # defaults resolved into the saved config
    model, config = load_run(run)
    assert not model.training and config.model == "beta_vae"
    # the loaded model equals the final checkpoint's weights
    tensors, meta = ckpt.load_tensors(run / "checkpoint/checkpoint.safetensors")
    assert meta["step"] == 12
    for k, v in model.state_dict().items():
        assert torch.equal(v, tensors[f"model/{k}"]), k
    x = torch.from_numpy(tiny_data().images_from_index(np.arange(4)))
    assert model.encode(x)[0].shape == (4, 10)


def test_loss_falls_on_tiny_data(tmp_path: Path) -> None:
    run = fit(cfg(tmp_path, steps=60, log_every=10, lr=1e-3, checkpoint_every=100),
              progress=False)
    rows = history(run)
    assert rows[-1]["recon"] < 0.8 * rows[0]["recon"]


def test_existing_run_needs_resume(tmp_path: Path) -> None:
    fit(cfg(tmp_path, steps=2), progress=False)
    with pytest.raises(DislabError, match="--resume"):
        fit(cfg(tmp_path, steps=2), progress=False)


def test_resume_rejects_changed_config(tmp_path: Path) -> None:
    fit(cfg(tmp_path, steps=4), progress=False)
    with pytest.raises(DislabError, match="seed"):
        fit(cfg(tmp_path, steps=8, seed=5), progress=False, resume=True)


def test_resume_reproduces_uninterrupted_losses(tmp_path: Path) -> None:
    # deterministic: CUDA's default kernels add in a varying order (a no-op on CPU)
    full = fit(cfg(tmp_path, "full", steps=20, deterministic=True), progress=False)
    part = fit(cfg(tmp_path, "part", steps=10, deterministic=True), progress=False)
    part = fit(cfg(tmp_path, "part", steps=20, deterministic=True), progress=False, resume=True)
    assert history(part) == history(full)
    m1, _ = load_run(full)
    m2, _ = load_run(part)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_after_interrupt_mid_window(tmp_path: Path) -> None:
    """Interrupted at update 13 (log every 4): the partial window and RNGs are restored."""
    kw = dict(model="test_interrupt_at", hparams={"stop_at": 13}, log_every=4,
              checkpoint_every=100, deterministic=True)
    full = fit(cfg(tmp_path, "full", **kw), progress=False)
    InterruptAt.armed = True
    with pytest.raises(KeyboardInterrupt):
        fit(cfg(tmp_path, "part", **kw), progress=False)
    status = json.loads((tmp_path / "part" / "status.json").read_text())
    assert status["status"] == "interrupted" and status["step"] == 13
    part = fit(cfg(tmp_path, "part", **kw), progress=False, resume=True)
    assert history(part) == history(full)


def test_deterministic_switches_kernels_and_restores(tmp_path: Path) -> None:
    from dislab.train import Trainer

    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    assert before == (False, False)
    tr = Trainer(cfg(tmp_path, deterministic=True))
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    tr.train_step()
    tr.close()
    after = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    assert after == before
    with pytest.raises(DislabError, match="deterministic"):
        TrainConfig.from_dict(cfg(tmp_path, deterministic="yes"))


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path: Path) -> None:
    c = cfg(tmp_path, model="test_nan_after", hparams={"nan_at": 7}, steps=20,
            log_every=3, checkpoint_every=5)
    with pytest.raises(DislabError) as e:
        fit(c, progress=False)
    msg = str(e.value)
    assert "step 8" in msg and "nan" in msg.lower() and "--lr" in msg
    run = tmp_path / "run"
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and status["step"] == 8 and "step 8" in status["error"]
    tensors, meta = ckpt.load_tensors(run / "checkpoint/checkpoint.safetensors")
    assert meta["step"] == 5
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model/"))
    assert not (run / "model.safetensors").exists()
    assert [r["step"] for r in history(run)] == [3, 6]  # the window holding step 8 is dropped


def test_huge_lr_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(DislabError, match="loss became"):
        fit(cfg(tmp_path, lr=1e30, steps=30, checkpoint_every=100), progress=False)
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"


def test_pairs_method_trains(tmp_path: Path) -> None:
    pairs = [n for n, c in models.available().items()
             if c.batch_kind == "pairs" and not n.startswith("test_")]
    assert pairs, "no pairs method is registered"
    run = fit(cfg(tmp_path, model=pairs[0], steps=4, batch_size=8), progress=False)
    assert json.loads((run / "status.json").read_text())["status"] == "done"


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_train_writes_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    rc = dislab_main(["train", "--model", "beta_vae", "--data", "test_squares16",
                      "--beta", "2", "--steps", "5", "--batch-size", "8", "--log-every", "1",
                      "--threads", "1", "--compile", "off", "--no-tensorboard", "--quiet",
                      "--out", str(out)])
    assert rc == 0
    assert str(out) in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert saved["hparams"] == {"beta": 2.0} and saved["steps"] == 5
    assert len(history(out)) == 5 and (out / "model.safetensors").is_file()
    # --config + flags: flags win; --resume extends the run
    rc = dislab_main(["train", "--config", str(out / "config.json"), "--steps", "7",
                      "--resume", "--quiet"])
    assert rc == 0
    assert json.loads((out / "status.json").read_text())["step"] == 7


def test_cli_hparam_of_other_method_is_an_error(capsys: pytest.CaptureFixture) -> None:
    rc = dislab_main(["train", "--model", "beta_vae", "--c-max", "5", "--print-config"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--c-max" in err and "annealed_vae" in err and "--beta" in err


def test_cli_print_config_resolves_flags(capsys: pytest.CaptureFixture) -> None:
    rc = dislab_main(["train", "--model", "annealed_vae", "--c-max", "5", "--gamma", "100",
                      "--lr", "3e-4", "--print-config"])
    assert rc == 0
    c = json.loads(capsys.readouterr().out)
    assert c["hparams"]["c_max"] == 5.0 and c["hparams"]["gamma"] == 100.0
    assert c["lr"] == 3e-4 and c["model"] == "annealed_vae"


def test_cli_pair_option_reaches_the_config(capsys: pytest.CaptureFixture) -> None:
    rc = dislab_main(["train", "--model", "ada_gvae", "--pair-option", "changes=1",
                      "--pair-option", "edge=reflect", "--print-config"])
    assert rc == 0
    c = json.loads(capsys.readouterr().out)
    assert c["pair_options"] == {"changes": 1, "edge": "reflect"}
    assert dislab_main(["train", "--model", "ada_gvae", "--pair-option", "changes",
                        "--print-config"]) == 2
    assert "--pair-option expects KEY=VALUE" in capsys.readouterr().err


def test_cli_models_lists_methods(capsys: pytest.CaptureFixture) -> None:
    assert dislab_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "beta_vae" in out and "--beta" in out and "4.0" in out
    assert dislab_main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["beta_vae"]["hparams"]["beta"]["default"] == 4.0
    assert set(rows) >= {"beta_vae"}


# -- images -----------------------------------------------------------------------------
def test_image_grids_shapes_and_content(tmp_path: Path) -> None:
    x = np.zeros((5, 1, 16, 16), np.float32)
    x[2] = 1.0
    g = vi.image_grid(x, ncol=3, pad=2)
    assert g.shape == (2 * 18 + 2, 3 * 18 + 2, 3) and g.dtype == np.uint8
    assert (g[2:18, 2 + 2 * 18: 18 + 2 * 18] == 255).all()  # image 2 is white
    assert (g[2:18, 2:18] == 0).all()  # image 0 is black
    torch.manual_seed(0)
    m = models.create("beta_vae", (1, 16, 16), 4)
    data = tiny_data()
    imgs = data.images_from_index(np.arange(10))
    rec = vi.reconstruction_grid(m, imgs, ncol=5)
    assert rec.shape == (4 * 18 + 2, 5 * 18 + 2, 3)
    assert (rec[2:18, 2:18, 0] == np.rint(imgs[0, 0] * 255)).all()  # row 0: originals
    trav = vi.traversal_grid(m, imgs[0], n_steps=6)
    assert trav.shape == (4 * 18 + 2, 6 * 18 + 2, 3)
    frames = vi.traversal_frames(m, imgs[0], n_frames=6)
    assert len(frames) == 4 and frames[0].shape == (18 + 2, 4 * 18 + 2, 3)
    p = vi.save_png(rec, tmp_path / "r.png", scale=2)
    from PIL import Image

    assert Image.open(p).size == (2 * rec.shape[1], 2 * rec.shape[0])
    vi.save_gif(frames, tmp_path / "t.gif")
    assert (tmp_path / "t.gif").stat().st_size > 0


# -- faster equivalent layers ----------------------------------------------------------------
@pytest.mark.parametrize("cin, cout, h, w", [(32, 1, 8, 8), (6, 3, 5, 7)])
def test_subpixel_deconv_equals_conv_transpose(cin: int, cout: int, h: int, w: int) -> None:
    from torch import nn

    from dislab.train.fast import SubPixelConvTranspose2d

    torch.manual_seed(0)
    ref = nn.ConvTranspose2d(cin, cout, 4, 2, 1).double()
    fast = SubPixelConvTranspose2d(ref)
    x = torch.randn(2, cin, h, w, dtype=torch.float64, requires_grad=True)
    y_ref, y = ref(x), fast(x)
    assert y.shape == (2, cout, 2 * h, 2 * w)
    assert torch.allclose(y, y_ref, atol=1e-12)
    g = torch.randn_like(y)
    grads_ref = torch.autograd.grad(y_ref, (x, ref.weight, ref.bias), g)
    grads = torch.autograd.grad(y, (x, ref.weight, ref.bias), g)
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, atol=1e-10)


def test_accelerate_keeps_parameters_and_keys() -> None:
    from dislab.train.fast import SubPixelConvTranspose2d, accelerate

    torch.manual_seed(0)
    m = models.create("beta_vae", (1, 64, 64), 10)
    keys = list(m.state_dict())
    z = torch.randn(3, 10)
    before = m.decode(z)
    params = list(m.parameters())
    assert accelerate(m) == 1  # only the last deconv (32 -> 1 channel)
    assert isinstance(m.decoder.deconv[6], SubPixelConvTranspose2d)
    assert list(m.state_dict()) == keys
    assert all(a is b for a, b in zip(m.parameters(), params))
    assert torch.allclose(m.decode(z), before, atol=1e-5)


@pytest.mark.parametrize("name", sorted(n for n in models.available() if not n.startswith("test_")))
def test_every_method_trains_and_checkpoints(tmp_path: Path, name: str) -> None:
    """Each registered method runs through the loop (its own optimisers included), and its
    checkpoint restores every optimiser."""
    run = fit(cfg(tmp_path, model=name, steps=3, batch_size=8, checkpoint_every=2,
                  log_every=1), progress=False)
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "done", status
    assert all(np.isfinite(r["loss"]) for r in history(run))
    run = fit(cfg(tmp_path, model=name, steps=4, batch_size=8, checkpoint_every=2,
                  log_every=1), progress=False, resume=True)
    assert json.loads((run / "status.json").read_text())["step"] == 4
    model, _ = load_run(run)
    assert model.encode(torch.zeros(2, 1, 16, 16))[0].shape == (2, 10)
