"""Study execution with fake run functions: failures recorded, resume, no duplicate rows,
local vs Ray, and a study killed mid-way then finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dislab.study.collect import collect
from dislab.study.driver import run_study
from dislab.study.plan import expand
from dislab.study.runner import execute_run, read_json, run_folder
from dislab.study.spec import parse_spec

FAKE = "dislab.study.fake:fake_run"
FAKE_NAN = "dislab.study.fake:fake_run_nan"

SPEC = {
    "name": "tiny",
    "data": ["dsprites"],
    "methods": {"beta_vae": {"grid": {"beta": [1, 4]}},
                "factor_vae": {"grid": {"gamma": [10, 40]}}},
    "seeds": 2,
    "steps": 10,
}


def _calls(study: Path, run_id: str) -> list[str]:
    log = run_folder(study, run_id) / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_failed_run_is_recorded_and_others_finish(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    summary = run_study(spec, tmp_path, workers=2, run_fn=FAKE_NAN, progress=False)
    assert (summary["done"], summary["failed"]) == (4, 4)  # every seed-1 run "NaNs"
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert len(table) == 8 and table["run_id"].is_unique
    failed = table[table["status"] == "failed"]
    assert set(failed["seed"]) == {1}
    assert failed["error"].str.contains("FloatingPointError: loss is NaN").all()
    done = table[table["status"] == "done"]
    assert done["metric.mig.discrete_mig"].notna().all()
    assert failed["metric.mig.discrete_mig"].isna().all()
    # status.json of a failed run keeps the traceback for debugging
    status = read_json(run_folder(tmp_path, failed["run_id"].iloc[0]) / "status.json")
    assert status["status"] == "failed" and "Traceback" in status["traceback"]
    # Every config field and hparam is a column
    for col in ("config.steps", "config.batch_size", "config.latent_dim", "config.model",
                "hp.beta", "hp.gamma", "final.loss", "train_seconds"):
        assert col in table.columns


def test_rerun_skips_finished_and_keeps_failed_unless_asked(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    run_study(spec, tmp_path, workers=2, run_fn=FAKE_NAN, progress=False)
    first = collect(tmp_path)
    again = run_study(spec, tmp_path, workers=2, run_fn=FAKE_NAN, progress=False)
    assert (again["done"], again["failed"], again["skipped"]) == (0, 0, 8)
    for run in expand(spec):
        assert len(_calls(tmp_path, run["run_id"])) == 1
    second = collect(tmp_path)
    assert len(second) == 8 and second["run_id"].is_unique
    cols = [c for c in first.columns if c.startswith(("metric.", "hp.", "final."))]
    pd.testing.assert_frame_equal(first[cols + ["status"]], second[cols + ["status"]])
    # --retry-failed runs only the failed ones again; a fixed run function now succeeds
    retry = run_study(spec, tmp_path, workers=2, run_fn=FAKE, retry_failed=True,
                      progress=False)
    assert (retry["done"], retry["failed"]) == (4, 0)
    final = collect(tmp_path)
    assert len(final) == 8 and set(final["status"]) == {"done"}
    for run in expand(spec):
        assert len(_calls(tmp_path, run["run_id"])) == (2 if run["seed"] == 1 else 1)


def _interrupting(run: dict, run_dir: Path) -> dict:
    raise KeyboardInterrupt


def test_interrupted_run_is_resumed(tmp_path: Path) -> None:
    run = expand(parse_spec(SPEC))[0]
    folder = run_folder(tmp_path, run["run_id"])
    folder.mkdir(parents=True)
    # a run stopped after 2 of its 4 chunks: it resumes from chunk 2
    (folder / "fake_progress.json").write_text(json.dumps({"chunk": 2}))
    with pytest.raises(KeyboardInterrupt):
        execute_run(run, str(tmp_path), run_fn=f"{__name__}:_interrupting")
    assert read_json(folder / "status.json")["status"] == "interrupted"
    assert not (folder / "result.json").exists()
    record = execute_run(run, str(tmp_path), run_fn=FAKE)
    assert record["status"] == "done"
    assert _calls(tmp_path, run["run_id"])[-1].endswith("start_chunk=2")
    status = read_json(folder / "status.json")
    assert status["status"] == "done" and status["attempt"] == 2
    # done: a third call does not run it again
    execute_run(run, str(tmp_path), run_fn=FAKE)
    assert len(_calls(tmp_path, run["run_id"])) == 1


def test_local_and_ray_give_the_same_table(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = parse_spec(SPEC)
    run_study(spec, tmp_path / "local", workers=2, run_fn=FAKE_NAN, progress=False)
    summary = run_study(spec, tmp_path / "ray", backend="ray", workers=2, run_fn=FAKE_NAN,
                        progress=False)
    assert (summary["done"], summary["failed"]) == (4, 4)
    a = pd.read_parquet(tmp_path / "local" / "results.parquet")
    b = pd.read_parquet(tmp_path / "ray" / "results.parquet")
    cols = ["run_id", "status", "error"] + [c for c in a.columns
                                            if c.startswith(("metric.", "hp.", "config.",
                                                             "final."))]
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)


def test_killed_study_finishes_without_redoing_runs(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(json.dumps({**SPEC, "seeds": 3}))  # JSON is YAML; 12 runs
    study = tmp_path / "study"
    cmd = [sys.executable, "-m", "dislab.cli", "study", "run", str(spec_file), "--out",
           str(study), "--workers", "2", "--run-fn", FAKE]
    env = {**os.environ, "DISLAB_FAKE_SLEEP": "0.6"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs = expand(parse_spec({**SPEC, "seeds": 3}))
    try:
        deadline = time.time() + 180  # generous: a loaded 2-core machine starts slowly
        while time.time() < deadline:
            done = [r for r in runs if (read_json(run_folder(study, r["run_id"]) /
                                                  "status.json") or {}).get("status") == "done"]
            if len(done) >= 3:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, as a crash would
        proc.wait()
    done_before = {r["run_id"] for r in runs
                   if (read_json(run_folder(study, r["run_id"]) / "status.json") or {})
                   .get("status") == "done"}
    assert 3 <= len(done_before) < len(runs)
    env["DISLAB_FAKE_SLEEP"] = "0"
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(study / "results.parquet")
    assert len(table) == len(runs) and table["run_id"].is_unique
    assert set(table["status"]) == {"done"}
    for r in runs:
        calls = _calls(study, r["run_id"])
        if r["run_id"] in done_before:
            assert len(calls) == 1, (r["run_id"], calls)
        else:
            assert len(calls) in (1, 2)


def test_bad_run_function_fails_before_any_run(tmp_path: Path) -> None:
    from dislab.errors import DislabError

    with pytest.raises(DislabError, match="Cannot import run function"):
        run_study(parse_spec(SPEC), tmp_path, run_fn="no_such_module:f", progress=False)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(DislabError, match="Unknown backend"):
        run_study(parse_spec(SPEC), tmp_path, backend="no_such_backend", run_fn=FAKE,
                  progress=False)
