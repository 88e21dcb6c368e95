"""A study driver killed with SIGKILL leaves no process behind, and its runs read as
interrupted (not "running") until the next `study run` resumes them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dislab.status import effective_status, pid_alive
from dislab.study.collect import collect
from dislab.study.plan import expand
from dislab.study.runner import read_json, run_folder
from dislab.study.spec import parse_spec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

SPEC = {"name": "kill", "data": ["dsprites"],
        "methods": {"beta_vae": {"grid": {"beta": [1, 4]}}}, "seeds": 2, "steps": 10}


def _children(pid: int) -> set[int]:
    """Every process whose parent is ``pid`` (from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.add(int(entry.name))
    return out


def test_sigkilled_driver_leaves_no_worker_and_runs_read_interrupted(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(json.dumps(SPEC))
    study = tmp_path / "study"
    cmd = [sys.executable, "-m", "dislab.cli", "study", "run", str(spec_file), "--out",
           str(study), "--workers", "2", "--run-fn", "dislab.study.fake:fake_run"]
    env = {**os.environ, "DISLAB_FAKE_SLEEP": "60"}  # runs that are still busy when killed
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs = expand(parse_spec(SPEC))
    children: set[int] = set()
    try:
        deadline = time.time() + 180  # generous: a loaded 2-core machine starts slowly
        while time.time() < deadline:
            running = [r for r in runs if (read_json(run_folder(study, r["run_id"]) /
                                                     "status.json") or {}).get("status")
                       == "running"]
            if len(running) == 2:
                break
            time.sleep(0.05)
        assert len(running) == 2, "the study did not start two runs"
        children = _children(proc.pid)
        worker_pids = {read_json(run_folder(study, r["run_id"]) / "status.json")["pid"]
                       for r in running}
        assert worker_pids <= children
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as the OOM killer would
        proc.wait()
    try:
        deadline = time.time() + 15
        while time.time() < deadline and any(pid_alive(p) for p in children):
            time.sleep(0.1)
        left = sorted(p for p in children if pid_alive(p))
        assert not left, f"processes left after the driver was killed: {left}"
    finally:
        for p in children:  # clean up even when the assertion failed
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)
    # The runs that were running say so in their files, but read as interrupted.
    statuses = [read_json(run_folder(study, r["run_id"]) / "status.json") for r in running]
    assert all(s["status"] == "running" for s in statuses)
    assert all(effective_status(s) == "interrupted" for s in statuses)
    table = collect(study)
    assert set(table.loc[table["run_id"].isin([r["run_id"] for r in running]), "status"]) \
        == {"interrupted"}


def test_ray_task_lost_with_its_worker_is_retried_and_resumes(tmp_path: Path) -> None:
    """A Ray task whose process dies (as with a lost node) runs again and resumes."""
    pytest.importorskip("ray")
    from dislab.study.driver import run_study

    spec = parse_spec({**SPEC, "seeds": 1})
    summary = run_study(spec, tmp_path, backend="ray", workers=2,
                        run_fn="dislab.study.fake:fake_run_crash_once", progress=False)
    assert (summary["done"], summary["failed"]) == (2, 0), summary["errors"]
    for r in expand(spec):
        calls = (run_folder(tmp_path, r["run_id"]) / "calls.log").read_text().splitlines()
        assert calls[0].endswith("crash") and calls[1].endswith("start_chunk=2")
        assert read_json(run_folder(tmp_path, r["run_id"]) / "status.json")["attempt"] == 2


def test_remote_run_reads_interrupted_only_when_its_heartbeat_is_stale(tmp_path: Path) -> None:
    """A run on another host (Ray): the study's status has no heartbeat; the training's does."""
    import time as _time

    from dislab.status import STALE_SECONDS
    from dislab.study.runner import write_json_atomic

    run = expand(parse_spec({**SPEC, "seeds": 1}))[0]
    folder = run_folder(tmp_path, run["run_id"])
    write_json_atomic(folder / "run.json", run)
    write_json_atomic(folder / "status.json", {"run_id": run["run_id"], "status": "running",
                                               "pid": 1, "host": "node-7", "started": 0.0})
    assert set(collect(tmp_path)["status"]) == {"running"}  # nothing says otherwise
    beat = {"status": "running", "pid": 1, "host": "node-7", "heartbeat": _time.time()}
    write_json_atomic(folder / "model" / "status.json", beat)
    assert set(collect(tmp_path)["status"]) == {"running"}
    beat["heartbeat"] = _time.time() - 2 * STALE_SECONDS
    write_json_atomic(folder / "model" / "status.json", beat)
    assert set(collect(tmp_path)["status"]) == {"interrupted"}
