"""Studies in packs (``study run --pack``): the same table as without packs, failures and
resume per run inside a pack, packs never mixing incompatible runs."""

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

from dislab.errors import DislabError
from dislab.study.driver import run_study
from dislab.study.packs import group_packs, parse_pack
from dislab.study.plan import estimate, expand
from dislab.study.runner import execute_pack, execute_run, read_json, run_folder
from dislab.study.spec import parse_spec

FAKE = "dislab.study.fake:fake_run"
FAKE_NAN = "dislab.study.fake:fake_run_nan"
SPEC = {"name": "packs", "data": ["dsprites"],
        "methods": {"beta_vae": {"grid": {"beta": [1, 4]}},
                    "factor_vae": {"grid": {"gamma": [10, 40]}}},
        "seeds": 2, "steps": 10}
# 2 methods x 2 hyper-parameters x 2 seeds on a 192-image procedural dSprites grid, 3 steps
TINY = {"name": "tiny_pack",
        "data": [{"name": "dsprites", "label": "dsprites_tiny",
                  "options": {"scales": 2, "orientations": 2, "positions": 4}}],
        "methods": {"beta_vae": {"grid": {"beta": [1, 4]}},
                    "beta_tcvae": {"grid": {"beta": [1, 6]}}},
        "seeds": 2, "steps": 3, "batch_size": 16, "metrics": ["mig", "sap"],
        "metric_params": {"mig": {"num_train": 500}, "sap": {"num_train": 500, "num_test": 200}},
        "train": {"image_every": 0, "checkpoint_every": 2, "log_every": 1,
                  "tensorboard": False, "device": "cpu"}}
VALUES = ("metric.", "final.", "hp.", "config.")


def _calls(study: Path, run_id: str) -> list[str]:
    log = run_folder(study, run_id) / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _columns(table: pd.DataFrame) -> list[str]:
    return ["run_id", "status", "error"] + [c for c in table.columns if c.startswith(VALUES)]


def test_packs_group_compatible_runs_only() -> None:
    runs = expand(parse_spec({**SPEC, "seeds": 3}))  # 6 beta_vae, 6 factor_vae
    tasks = group_packs(runs, 4)
    assert [len(t) if isinstance(t, list) else 1 for t in tasks] == [4, 2, 4, 2]
    for task in tasks:
        assert len({r["method"] for r in task}) == 1
    assert [r["run_id"] for t in tasks for r in t] == [r["run_id"] for r in runs]
    assert group_packs(runs, 1) == runs
    assert parse_pack("auto") == "auto" and parse_pack("1") is None and parse_pack(8) == 8
    with pytest.raises(DislabError, match="--pack"):
        parse_pack("many")


def test_unpackable_runs_run_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import dislab.train.packed as packed

    real = packed.pack_key
    monkeypatch.setattr(packed, "pack_key",
                        lambda c: None if c["model"] == "factor_vae" else real(c))
    tasks = group_packs(expand(parse_spec(SPEC)), 8)
    assert [len(t) if isinstance(t, list) else 1 for t in tasks] == [4, 1, 1, 1, 1]


def test_fake_study_in_packs_equals_the_unpacked_one(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    plain = run_study(spec, tmp_path / "plain", workers=2, run_fn=FAKE_NAN, progress=False)
    packed = run_study(spec, tmp_path / "packed", workers=2, run_fn=FAKE_NAN, progress=False,
                       pack=4)
    assert (packed["done"], packed["failed"]) == (plain["done"], plain["failed"]) == (4, 4)
    assert (plain["packs"], packed["packs"]) == (0, 2)  # one task per method
    a = pd.read_parquet(tmp_path / "plain" / "results.parquet")
    b = pd.read_parquet(tmp_path / "packed" / "results.parquet")
    pd.testing.assert_frame_equal(a[_columns(a)], b[_columns(b)], check_exact=True)
    # each method's four runs ran as one task (one process); seed 1 failed alone in its pack
    for method in ("beta_vae", "factor_vae"):
        pids = {_calls(tmp_path / "packed", r["run_id"])[0].split()[0]
                for r in expand(spec) if r["method"] == method}
        assert len(pids) == 1
    failed = b[b["status"] == "failed"]
    assert set(failed["seed"]) == {1} and failed["error"].str.contains("NaN").all()
    again = run_study(spec, tmp_path / "packed", workers=2, run_fn=FAKE_NAN, progress=False,
                      pack=4)
    assert (again["done"], again["skipped"]) == (0, 8)
    for run in expand(spec):
        assert len(_calls(tmp_path / "packed", run["run_id"])) == 1


def test_pack_skips_done_members_and_resumes_the_others(tmp_path: Path) -> None:
    runs = expand(parse_spec(SPEC))[:4]
    execute_run(runs[0], str(tmp_path), run_fn=FAKE)  # done before the pack starts
    folder = run_folder(tmp_path, runs[1]["run_id"])
    folder.mkdir(parents=True)
    (folder / "fake_progress.json").write_text(json.dumps({"chunk": 3}))  # a killed member
    records = execute_pack(runs, str(tmp_path), run_fn=FAKE)
    assert [r["run_id"] for r in records] == [r["run_id"] for r in runs]
    assert {r["status"] for r in records} == {"done"}
    assert len(_calls(tmp_path, runs[0]["run_id"])) == 1
    assert _calls(tmp_path, runs[1]["run_id"])[-1].endswith("start_chunk=3")


def test_killed_packed_study_finishes_without_redoing_runs(tmp_path: Path) -> None:
    spec = {**SPEC, "seeds": 3}  # 12 runs, packs of 3
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(json.dumps(spec))
    study = tmp_path / "study"
    cmd = [sys.executable, "-m", "dislab.cli", "study", "run", str(spec_file), "--out",
           str(study), "--workers", "2", "--pack", "3", "--run-fn", FAKE]
    env = {**os.environ, "DISLAB_FAKE_SLEEP": "0.6"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs = expand(parse_spec(spec))

    def done() -> set[str]:
        return {r["run_id"] for r in runs if (read_json(run_folder(study, r["run_id"]) /
                                                        "status.json") or {}).get("status")
                == "done"}
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len(done()) < 3:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = done()
    assert 3 <= len(before) < len(runs)
    env["DISLAB_FAKE_SLEEP"] = "0"
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(study / "results.parquet")
    assert len(table) == len(runs) and set(table["status"]) == {"done"}
    for r in runs:  # done runs were not run again; the others ran at most twice (resumed)
        calls = _calls(study, r["run_id"])
        assert len(calls) == 1 if r["run_id"] in before else 1 <= len(calls) <= 2


def test_plan_estimates_packs() -> None:
    runs = expand(parse_spec(SPEC))
    plain = estimate(runs, workers=2, measure=False)
    packed = estimate(runs, workers=2, measure=False, pack=4)
    assert packed["tasks"] == 2 and set(packed["pack_per_step"]) == {"beta_vae x4",
                                                                    "factor_vae x4"}
    # without a measurement a pack's step is K single steps: the same total
    assert packed["seconds"] == pytest.approx(plain["seconds"])


# A tiny real study in packs gives the unpacked table: test_study_real.py, beside the same
# study on the local pool and on Ray.


@pytest.mark.slow
def test_real_pack_isolates_a_nan_member_and_resumes_evaluation(tmp_path: Path) -> None:
    spec = parse_spec({**TINY, "methods": {"beta_vae": {"grid": {"beta": [1, 4]}}}})
    runs = expand(spec)  # 4 runs of one pack
    runs[2] = {**runs[2], "train": {**runs[2]["train"], "lr": 1e30}}  # its loss turns NaN
    records = execute_pack(runs, str(tmp_path / "pack"), threads=1)
    status = {r["run_id"]: r for r in records}
    bad = status[runs[2]["run_id"]]
    assert bad["status"] == "failed" and "nan" in bad["error"].lower()
    good = [r for r in runs if r is not runs[2]]
    assert all(status[r["run_id"]]["status"] == "done" for r in good)
    # the others' results are those of the same runs trained and scored alone
    for r in good:
        alone = execute_run(r, str(tmp_path / "alone"), threads=1)
        got, want = status[r["run_id"]]["result"], alone["result"]
        assert got["final_logs"] == pytest.approx(want["final_logs"], rel=1e-5)
        for name, values in want["metrics"].items():
            assert got["metrics"][name] == pytest.approx(values, rel=1e-5, abs=1e-6)
    # a pack killed while scoring: its trained members are scored again, not trained again
    victim = run_folder(tmp_path / "pack", good[0]["run_id"])
    trained = (victim / "model" / "status.json").read_text()
    (victim / "status.json").write_text(json.dumps({"status": "interrupted"}))
    (victim / "result.json").unlink()
    again = execute_pack(runs, str(tmp_path / "pack"), threads=1)
    assert {r["run_id"]: r["status"] for r in again}[good[0]["run_id"]] == "done"
    assert (victim / "model" / "status.json").read_text() == trained
    assert read_json(victim / "result.json")["metrics"] == status[good[0]["run_id"]][
        "result"]["metrics"]
