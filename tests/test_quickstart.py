"""The quickstart pipeline on tiny data and budgets (the real run is documented, not tested)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qs_helpers  # noqa: F401  (registers the tiny data set)
from dislab import quickstart
from dislab.cli import main as dislab_main
from dislab.errors import DislabError

TINY = dict(data="test_qs_sprites16", latent_dim=4, arch="conv", batch_size=16, threads=1,
            tensorboard=False, compile=False)


def test_fixed_steps_pipeline_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    index = quickstart.run(out=out, steps=4, metrics="mig", progress=False, **TINY)
    assert index == out / "report" / "index.html" and index.exists()
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "done" and status["step"] == 4
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == quickstart.QUICKSTART["model"] == "slow_vae"
    qs_hp = quickstart.QUICKSTART["hparams"]
    assert {k: cfg["hparams"][k] for k in qs_hp} == qs_hp  # the rest are the method's defaults
    assert cfg["hparams"]["one_change"] == 1.0
    assert cfg["lr"] == quickstart.QUICKSTART["lr"]
    assert cfg["pair_options"] == quickstart.QUICKSTART["pair_options"] == {"changes": 1,
                                                                             "rate": 0.3}
    summary = json.loads((out / "quickstart.json").read_text())
    record = json.loads((out / "metrics.json").read_text())
    assert summary["mig"] == record["metrics"]["mig"]["values"]["discrete_mig"]
    assert "traversals.gif" in {p.name for p in (out / "report").iterdir()}


def test_time_budget_caps_steps_and_keeps_reserve(tmp_path: Path) -> None:
    # plenty of time for 40 steps: the plan stops at max_steps
    out = tmp_path / "a"
    quickstart.run(out=out, minutes=10, max_steps=40, metrics="mig", progress=False, **TINY)
    assert json.loads((out / "status.json").read_text())["step"] == 40
    # a budget smaller than the evaluation reserve: only the probe's steps are trained
    out = tmp_path / "b"
    quickstart.run(out=out, minutes=0.05, metrics="mig", progress=False, **TINY)
    assert json.loads((out / "status.json").read_text())["step"] == quickstart._PROBE_STEPS
    assert (out / "report" / "index.html").exists()


def test_plan_reserve() -> None:
    assert quickstart.plan_reserve(1000, 100.0) == pytest.approx(10 + quickstart.METRICS_SECONDS)


def test_bad_budget_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(DislabError, match="minutes"):
        quickstart.run(out=tmp_path / "x", minutes=0)
    assert dislab_main(["quickstart", "--out", str(tmp_path / "c"), "--steps", "2",
                        "--metrics", "mig", "--data", "test_qs_sprites16", "--batch-size", "16",
                        "--latent-dim", "3", "--arch", "conv", "--quiet"]) == 0
    assert not capsys.readouterr().out  # --quiet
    assert (tmp_path / "c" / "report" / "index.html").exists()
    assert "--minutes" in _help()
    # another method starts from its own defaults, not the default method's hyper-parameters
    assert dislab_main(["quickstart", "--out", str(tmp_path / "d"), "--steps", "2",
                        "--metrics", "mig", "--data", "test_qs_sprites16", "--batch-size", "16",
                        "--latent-dim", "3", "--model", "beta_tcvae", "--quiet"]) == 0
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())
    assert cfg["model"] == "beta_tcvae" and cfg["hparams"]["beta"] == 6.0
    assert "gamma" not in cfg["hparams"] and cfg["batch_size"] == 16
    assert cfg["pair_options"] == {}


def _help() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        dislab_main(["quickstart", "--help"])
    return buf.getvalue()
