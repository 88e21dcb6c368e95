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
    index = quickstart.run(out=out, steps=4, metrics="mig", progress=False, runs=1, **TINY)
    assert index == out / "report" / "index.html" and index.exists()
    assert 'url=report/index.html"' in (out / "index.html").read_text()
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
    quickstart.run(out=out, minutes=10, max_steps=40, metrics="mig", progress=False, runs=1,
                   **TINY)
    assert json.loads((out / "status.json").read_text())["step"] == 40
    # a budget smaller than the evaluation reserve: only the probe's steps are trained
    out = tmp_path / "b"
    quickstart.run(out=out, minutes=0.05, metrics="mig", progress=False, runs=1, **TINY)
    assert json.loads((out / "status.json").read_text())["step"] == quickstart._PROBE_STEPS
    assert (out / "report" / "index.html").exists()
    # two candidates side by side on a budget: test_two_seeds_side_by_side_...


def test_plan_reserve() -> None:
    assert quickstart.plan_reserve(1000, 100.0) == pytest.approx(10 + quickstart.METRICS_SECONDS)


def test_bad_budget_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(DislabError, match="minutes"):
        quickstart.run(out=tmp_path / "x", minutes=0)
    assert dislab_main(["quickstart", "--out", str(tmp_path / "c"), "--steps", "2",
                        "--metrics", "mig", "--data", "test_qs_sprites16", "--batch-size", "16",
                        "--latent-dim", "3", "--arch", "conv", "--quiet", "--runs", "1"]) == 0
    assert not capsys.readouterr().out  # --quiet
    assert (tmp_path / "c" / "report" / "index.html").exists()
    assert "--runs" in _help()
    assert "--minutes" in _help()
    # another method starts from its own defaults, not the default method's hyper-parameters
    assert dislab_main(["quickstart", "--out", str(tmp_path / "d"), "--steps", "2",
                        "--metrics", "mig", "--data", "test_qs_sprites16", "--batch-size", "16",
                        "--latent-dim", "3", "--model", "beta_tcvae", "--quiet",
                        "--runs", "1"]) == 0
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())
    assert cfg["model"] == "beta_tcvae" and cfg["hparams"]["beta"] == 6.0
    assert "gamma" not in cfg["hparams"] and cfg["batch_size"] == 16
    assert cfg["pair_options"] == {}
    # --hparam changes one hyper-parameter and keeps the quickstart's others
    assert dislab_main(["quickstart", "--out", str(tmp_path / "e"), "--steps", "2",
                        "--metrics", "mig", "--data", "test_qs_sprites16", "--batch-size", "16",
                        "--latent-dim", "3", "--hparam", "gamma=3", "--quiet",
                        "--runs", "1"]) == 0
    hp = json.loads((tmp_path / "e" / "config.json").read_text())["hparams"]
    assert hp["gamma"] == 3 and hp["one_change"] == quickstart.QUICKSTART["hparams"]["one_change"]
    assert "--hparam" in _help()
    capsys.readouterr()
    assert dislab_main(["quickstart", "--out", str(tmp_path / "f"), "--hparam", "gamma"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err and not (tmp_path / "f").exists()


def _help() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        dislab_main(["quickstart", "--help"])
    return buf.getvalue()


def test_two_seeds_side_by_side_keep_the_lower_objective(tmp_path: Path) -> None:
    # on a time budget: the same plan for both, each candidate to max_steps (probe included)
    out = tmp_path / "qs"
    top = quickstart._PROBE_STEPS + 4
    index = quickstart.run(out=out, minutes=10, max_steps=top, metrics="mig", progress=False,
                           runs=2, seed=3, **{**TINY, "threads": None})
    summary = json.loads((out / "quickstart.json").read_text())
    cands = summary["candidates"]
    assert [c["seed"] for c in cands] == [3, 4]
    best = min(cands, key=lambda c: c["objective"])
    assert summary["run"] == best["run"] and index == Path(best["run"]) / "report" / "index.html"
    assert index.exists() and summary["config"]["seed"] == best["seed"]
    other = next(c for c in cands if c is not best)
    assert not (Path(other["run"]) / "report").exists()  # only the kept seed is evaluated
    for c in cands:
        cfg = json.loads((Path(c["run"]) / "config.json").read_text())
        assert cfg["seed"] == c["seed"] and cfg["threads"] == max(1, quickstart._cores() // 2)
        assert json.loads((Path(c["run"]) / "status.json").read_text())["step"] == top
    # out/index.html opens the kept seed's report
    rel = index.relative_to(out).as_posix()
    assert f'url={rel}"' in (out / "index.html").read_text()
    # the same command with more steps resumes both candidates
    quickstart.run(out=out, steps=top + 2, metrics="mig", progress=False, runs=2, seed=3,
                   **{**TINY, "threads": None})
    for c in cands:
        assert json.loads((Path(c["run"]) / "status.json").read_text())["step"] == top + 2


def test_objective_prefers_the_trained_model_and_is_deterministic(tmp_path: Path) -> None:
    from dislab import data as dd
    from dislab.train import fit

    cfg = {**quickstart.QUICKSTART, **TINY, "seed": 0, "log_every": 10}
    fit({**cfg, "out": str(tmp_path / "short"), "steps": 2}, progress=False)
    fit({**cfg, "out": str(tmp_path / "long"), "steps": 80}, progress=False)
    data = dd.load(TINY["data"])
    short = quickstart.objective(tmp_path / "short", data, pairs=256)
    long = quickstart.objective(tmp_path / "long", data, pairs=256)
    assert long < short
    assert quickstart.objective(tmp_path / "long", data, pairs=256) == long


def test_a_failing_candidate_names_itself(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    out.mkdir()
    (out / "seed_1").write_text("not a folder")  # the second candidate cannot write its run
    with pytest.raises(DislabError, match="seed_1"):
        quickstart.run(out=out, steps=2, metrics="mig", progress=False, runs=2,
                       **{**TINY, "threads": None})
    assert json.loads((out / "seed_0" / "status.json").read_text())["status"] == "done"


def test_default_runs_one_per_core_pair_on_cpu() -> None:
    assert quickstart.default_runs("cpu") == (2 if quickstart._cores() >= 2 else 1)
