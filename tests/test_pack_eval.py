"""Evaluation at pack scale (dislab.models.stacked, dislab.metrics.many): the vectorised
encoder equals each model's own, and scoring runs together writes the same metrics.json per
run as scoring each alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dislab import models
from dislab.errors import DislabError
from dislab.metrics.base import CodeTable
from dislab.metrics.many import evaluate_runs
from dislab.models.stacked import StackedEncoder
from dislab.representation.encode import encode_grid
from dislab.train import fit, load_run

GRID = {"scales": 2, "orientations": 2, "positions": 4}  # 192 sprites
METRICS = ["mig", "sap", "beta_vae"]
PARAMS = {"mig": {"num_train": 400}, "sap": {"num_train": 300, "num_test": 100},
          "beta_vae": {"num_train": 100, "num_eval": 50, "batch_size": 8}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("pack_eval")
    out = []
    for seed, beta in ((0, 1.0), (1, 4.0), (2, 8.0)):
        cfg = dict(model="beta_vae", hparams={"beta": beta}, data="dsprites",
                   data_options=GRID, steps=4, batch_size=16, seed=seed, device="cpu",
                   log_every=2, checkpoint_every=4, image_every=0, compile=False,
                   tensorboard=False, threads=1, out=str(root / f"run{seed}"))
        out.append(Path(fit(cfg, progress=False)))
    return out


def test_stacked_encoder_equals_each_model() -> None:
    torch.manual_seed(0)
    ms = [models.create("beta_vae", (1, 64, 64), 10) for _ in range(3)]
    enc = StackedEncoder(ms)
    x = torch.rand(20, 1, 64, 64)
    mean, logvar = enc(x)
    assert mean.shape == logvar.shape == (3, 20, 10)
    for k, m in enumerate(ms):
        want_mean, want_logvar = m.eval().encode(x)
        torch.testing.assert_close(mean[k], want_mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(logvar[k], want_logvar, rtol=1e-6, atol=1e-6)
    # one batch per model
    xs = torch.rand(3, 5, 1, 64, 64)
    per, _ = enc(xs, per_model=True)
    for k, m in enumerate(ms):
        torch.testing.assert_close(per[k], m.encode(xs[k])[0], rtol=1e-6, atol=1e-6)
    assert enc.agrees(x)
    # the representation (posterior mean) works too; other architectures are refused
    rep, none = StackedEncoder(ms, "representation")(x)
    assert none is None and torch.allclose(rep, mean, rtol=1e-6, atol=1e-6)
    with pytest.raises(DislabError, match="one architecture"):
        StackedEncoder([ms[0], models.create("beta_vae", (1, 64, 64), 5)])


def _values(run: Path) -> dict:
    record = json.loads((run / "metrics.json").read_text())
    return {name: r["values"] for name, r in record["metrics"].items()}


def test_runs_scored_together_equal_runs_scored_alone(runs: list[Path], tmp_path: Path) -> None:
    together = [Path(shutil.copytree(r, tmp_path / "together" / r.name)) for r in runs]
    alone = [Path(shutil.copytree(r, tmp_path / "alone" / r.name)) for r in runs]
    # the vectorised (vmap) encoding pass, the default on CUDA, here on the CPU
    records = evaluate_runs(together, metrics=METRICS, params=PARAMS, seed=3, device="cpu",
                            workers=2, progress=False, vectorise=True)
    assert [r["run_dir"] for r in records] == [str(r) for r in together]
    for run_a, run_b in zip(together, alone):
        evaluate_runs([run_b], metrics=METRICS, params=PARAMS, seed=3, device="cpu",
                      workers=1, progress=False, vectorise=True)
        a, b = CodeTable.load(str(run_a / "codes.npz")), CodeTable.load(str(run_b / "codes.npz"))
        # a pass over 3 stacked models and one over 1 may pick different convolution kernels
        # (grouped or not): equal to float rounding; the bit-for-bit "together == alone" check
        # is the CPU default path's, below
        np.testing.assert_allclose(a.mean, b.mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a.logvar, b.logvar, rtol=1e-6, atol=1e-6)
        record = json.loads((run_a / "metrics.json").read_text())
        assert record["codes"]["rows_encoded"] == 0  # the suite reused the vectorised codes
        assert record["codes"]["rows"] == 192 and set(record["metrics"]) == set(METRICS)
        # the vectorised codes are the run's own encoder's, to float rounding
        model, _ = load_run(run_a, device="cpu")
        import dislab.data as dd

        own = encode_grid(model, dd.load("dsprites", **GRID), progress=False)
        np.testing.assert_allclose(a.mean, own.mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a.logvar, own.logvar, rtol=1e-6, atol=1e-6)
    # the CPU default encodes model by model; again identical together and alone
    again = [Path(shutil.copytree(r, tmp_path / "each" / r.name)) for r in runs]
    evaluate_runs(again, metrics=METRICS, params=PARAMS, seed=3, device="cpu", workers=1,
                  progress=False)
    for run_a, run_b in zip(again, runs):
        evaluate_runs([Path(shutil.copytree(run_b, tmp_path / "each1" / run_b.name))],
                      metrics=METRICS, params=PARAMS, seed=3, device="cpu", workers=1,
                      progress=False)
        a = CodeTable.load(str(run_a / "codes.npz"))
        b = CodeTable.load(str(tmp_path / "each1" / run_b.name / "codes.npz"))
        assert np.array_equal(a.mean, b.mean)
        assert _values(run_a) == _values(tmp_path / "each1" / run_b.name)
        vm = CodeTable.load(str(tmp_path / "together" / run_b.name / "codes.npz"))
        np.testing.assert_allclose(a.mean, vm.mean, rtol=1e-6, atol=1e-6)
    # the seed matters: the three runs' codes differ
    c0 = CodeTable.load(str(together[0] / "codes.npz")).mean
    assert not np.allclose(c0, CodeTable.load(str(together[1] / "codes.npz")).mean)


def test_a_broken_run_fails_alone(runs: list[Path], tmp_path: Path) -> None:
    good = Path(shutil.copytree(runs[0], tmp_path / "good"))
    broken = Path(shutil.copytree(runs[1], tmp_path / "broken"))
    (broken / "model.safetensors").unlink()
    out = evaluate_runs([good, broken], metrics=["mig"], params={"mig": {"num_train": 300}},
                        device="cpu", workers=1, progress=False, errors="return")
    assert out[0]["metrics"]["mig"]["values"]["discrete_mig"] >= 0
    assert isinstance(out[1], DislabError) and "no final weights" in str(out[1])
    with pytest.raises(DislabError, match=f"{broken}.*no final weights"):
        evaluate_runs([good, broken], metrics=["mig"], params={"mig": {"num_train": 300}},
                      device="cpu", workers=1, progress=False)
    with pytest.raises(DislabError, match="num_train"):  # bad input before any encoding
        evaluate_runs([good], metrics=["mig"], params={"mig": {"num_train": -1}},
                      device="cpu", progress=False)


def test_cli_scores_several_runs(runs: list[Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from dislab.cli import main

    dirs = [str(shutil.copytree(r, tmp_path / r.name)) for r in runs[:2]]
    code = main(["evaluate", *dirs, "--metrics", "mig", "--param", "mig.num_train=300",
                 "--device", "cpu", "--workers", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    for d in dirs:
        assert f"== {d}" in out and (Path(d) / "metrics.json").exists()
    assert main(["evaluate", *dirs, "--data", "dsprites", "--quiet"]) == 2
    assert "for one RUN_DIR" in capsys.readouterr().err
