"""The Slurm backend (submitit job arrays): through submitit's local executor always, and
against a real single-node Slurm (slurmctld + slurmd started here) where Debian's slurm-wlm is
installed and this runs as root; otherwise that test is skipped with the reason."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from dislab.study.driver import run_study
from dislab.study.runner import read_json, run_folder
from dislab.study.spec import parse_spec

pytest.importorskip("submitit", reason="the Slurm backend needs pip install 'dislab[slurm]'")

FAKE = "dislab.study.fake:fake_run"
FAKE_NAN = "dislab.study.fake:fake_run_nan"
SPEC = {"name": "tiny", "data": ["dsprites"],
        "methods": {"beta_vae": {"grid": {"beta": [1, 4]}}}, "seeds": 2, "steps": 10}
LOCAL = {"executor": "local", "poll_seconds": 0.2}
TESTS = Path(__file__).parent


@pytest.fixture
def helpers_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job processes import the run function by name: put tests/ (and src/) on their path."""
    parts = [str(TESTS), str(TESTS.parent / "src"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in parts if p))


def _calls(study: Path, run_id: str) -> list[str]:
    log = run_folder(study, run_id) / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _metric_table(path: Path) -> pd.DataFrame:
    t = pd.read_parquet(path)
    cols = ["run_id", "status"] + sorted(c for c in t.columns if c.startswith("metric."))
    return t[cols].sort_values("run_id").reset_index(drop=True)


def test_local_executor_matches_local_backend_and_resumes(tmp_path: Path,
                                                          helpers_on_path: None) -> None:
    spec = parse_spec(SPEC)
    slurm = run_study(spec, tmp_path / "slurm", backend="slurm", workers=2, threads=1,
                      run_fn=FAKE_NAN, progress=False, slurm=LOCAL)
    assert (slurm["done"], slurm["failed"]) == (2, 2)  # seed-1 runs raise: isolated
    assert all("FloatingPointError" in e for e in slurm["errors"].values())
    local = run_study(spec, tmp_path / "local", workers=2, threads=1, run_fn=FAKE_NAN,
                      progress=False)
    assert (local["done"], local["failed"]) == (2, 2)
    pd.testing.assert_frame_equal(_metric_table(tmp_path / "slurm" / "results.parquet"),
                                  _metric_table(tmp_path / "local" / "results.parquet"))
    # one task per run (the local executor runs an array's tasks as separate processes)
    assert len(list((tmp_path / "slurm" / "slurm").glob("*/*_log.out"))) == 4
    # re-running skips every finished or failed run
    again = run_study(spec, tmp_path / "slurm", backend="slurm", workers=2, threads=1,
                      run_fn=FAKE_NAN, progress=False, slurm=LOCAL)
    assert again["skipped"] == 4 and again["done"] == again["failed"] == 0


def test_dead_task_is_isolated_and_resumes(tmp_path: Path, helpers_on_path: None) -> None:
    spec = parse_spec(SPEC)
    fn = "slurm_helpers:die_once_on_seed1"
    first = run_study(spec, tmp_path, backend="slurm", workers=2, threads=1, run_fn=fn,
                      progress=False, slurm=LOCAL)
    assert (first["done"], first["failed"]) == (2, 2)
    for run_id, error in first["errors"].items():
        assert "ended without finishing" in error and "resumable" in error
        # the run folder is left resumable, not marked failed
        assert read_json(run_folder(tmp_path, run_id) / "status.json")["status"] == "running"
    second = run_study(spec, tmp_path, backend="slurm", workers=2, threads=1, run_fn=fn,
                       progress=False, slurm=LOCAL)
    assert (second["done"], second["failed"], second["skipped"]) == (2, 0, 2)
    for run_id in first["errors"]:
        assert _calls(tmp_path, run_id)[-1].endswith("start_chunk=2")  # resumed, not redone
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert (table["status"] == "done").all() and len(table) == 4


def test_slurm_backend_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    from dislab.errors import DislabError

    spec = parse_spec(SPEC)
    with pytest.raises(DislabError, match="whole number"):
        run_study(spec, tmp_path, backend="slurm", gpus=0.5, run_fn=FAKE, progress=False,
                  slurm=LOCAL)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "srun"):  # a Slurm that refuses every submission
        (bin_dir / tool).write_text("#!/bin/sh\necho 'sbatch: error: invalid partition' >&2\n"
                                    "exit 1\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DislabError, match="Submitting the job array failed.*invalid partition"):
        run_study(spec, tmp_path / "r", backend="slurm", run_fn=FAKE, progress=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    with pytest.raises(DislabError, match="no Slurm here"):
        run_study(spec, tmp_path / "s", backend="slurm", run_fn=FAKE, progress=False)


# -- a real single-node Slurm ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """slurmctld + slurmd on this machine with a generated slurm.conf; yields its path."""
    tools = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "munge", "munged")
    missing = [t for t in tools if not shutil.which(t) and not Path(f"/usr/sbin/{t}").exists()]
    if missing or os.geteuid() != 0:
        why = "missing " + ", ".join(missing) if missing else "not root"
        pytest.skip(f"no single-node Slurm here ({why}); "
                    "install Debian's slurm-wlm as root to run it. The local-executor tests "
                    "cover the backend.")
    d = tmp_path_factory.mktemp("slurm")
    started: list[subprocess.Popen | int] = []
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=False)
        time.sleep(1)
        pid = Path("/run/munge/munged.pid")
        if pid.exists():
            started.append(int(pid.read_text()))
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=dislabtest", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root",
        "SlurmdUser=root", f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge", f"StateSaveLocation={d}/state", f"SlurmdSpoolDir={d}/spool",
        f"SlurmctldPidFile={d}/slurmctld.pid", f"SlurmdPidFile={d}/slurmd.pid",
        f"SlurmctldLogFile={d}/slurmctld.log", f"SlurmdLogFile={d}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
        "ReturnToService=2", f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
        "State=UNKNOWN", "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ""]))
    (d / "state").mkdir()
    (d / "spool").mkdir()
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run([f"/usr/sbin/{daemon}", "-f", str(conf)], env=env, check=False)
    deadline = time.time() + 60
    ok = False
    while time.time() < deadline:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                             text=True)
        if out.returncode == 0 and out.stdout.strip() in ("idle", "mixed"):
            ok = True
            break
        time.sleep(1)
    try:
        if not ok:
            logs = "".join((d / f).read_text()[-1500:] for f in ("slurmctld.log", "slurmd.log")
                           if (d / f).exists())
            pytest.skip(f"the single-node Slurm did not start within a minute: {logs}")
        yield conf
    finally:
        for name in ("slurmd.pid", "slurmctld.pid"):
            try:
                os.kill(int((d / name).read_text()), 15)
            except (OSError, ValueError):
                pass
        for pid in started:
            try:
                os.kill(pid, 15)
            except OSError:
                pass


@pytest.mark.slow
def test_real_study_on_a_real_slurm(tmp_path: Path, slurm_cluster: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    helpers_on_path: None) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster))
    spec = parse_spec({
        "name": "tiny_slurm",
        "data": [{"name": "dsprites", "label": "dsprites_tiny",
                  "options": {"scales": 2, "orientations": 2, "positions": 4}}],
        "methods": {"beta_vae": {"grid": {"beta": [4]}}}, "seeds": 2, "steps": 2,
        "batch_size": 16, "metrics": ["mig"], "metric_params": {"mig": {"num_train": 300}},
        "train": {"image_every": 0, "checkpoint_every": 2, "log_every": 1,
                  "tensorboard": False}})
    summary = run_study(spec, tmp_path, backend="slurm", workers=2, threads=1,
                        progress=False, slurm={"time_min": 10, "poll_seconds": 1})
    assert (summary["done"], summary["failed"]) == (2, 0), summary["errors"]
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert table["metric.mig.discrete_mig"].notna().all()
    for run_id in table["run_id"]:
        status = read_json(run_folder(tmp_path, run_id) / "status.json")
        assert status["host"] == socket.gethostname()  # ran as a Slurm task here
    tasks = [p.parent.name for p in (tmp_path / "slurm").glob("*_*/*_log.out")]
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1  # one array
    # a second run of the same command submits nothing
    again = run_study(spec, tmp_path, backend="slurm", workers=2, threads=1,
                      progress=False, slurm={"poll_seconds": 1})
    assert again["skipped"] == 2 and again["done"] == 0
