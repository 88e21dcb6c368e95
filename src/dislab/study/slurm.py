"""The Slurm backend: every pending run of a study is one task of a Slurm job array (submitit).

``dislab study run SPEC --out DIR --backend slurm --slurm-partition gpu --slurm-time 240
--slurm-gpus 1 --threads 8`` submits one array job (``sbatch --array``, at most ``--workers``
tasks at once) whose task *i* calls :func:`dislab.study.runner.execute_run` on run *i*; each
task gets ``--threads`` CPUs (``--cpus-per-task``), ``--slurm-gpus`` GPUs, ``--slurm-mem`` GB
and ``--slurm-time`` minutes. The driver waits for the tasks (it can run on the login node, or
inside a small allocation), reports each finished run and writes the table.

Same guarantees as the other backends (see :mod:`dislab.study.runner`):

* **resume**: the run folders are the record. Re-running the command skips ``done`` runs and
  submits the others again; a task killed by its time limit, pre-emption or ``scancel``
  resumes from its training checkpoint.
* **failure isolation**: a run that raises is recorded ``failed`` by its own task; a task
  that dies (out of memory, time limit, node failure) is reported failed with its Slurm state
  and log file, leaving the run folder resumable; the other tasks go on.
* Ctrl-C / SIGTERM on the driver cancels the array (``scancel``); runs stay resumable.

``DIR`` must be on a file system that the compute nodes see (the usual ``$HOME`` or scratch).
submitit's own files (the pickled task function and arguments it writes for its jobs, and
the task logs) go to ``DIR/slurm/``; dislab reads the outcome of a run from the run folder's
JSON files, never from submitit's result pickles. ``executor="local"`` runs the same array
through submitit's local executor (processes on this machine, no Slurm): for trying a set-up
and for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dislab.errors import DislabError
from dislab.study.runner import DEFAULT_RUN_FN, execute_run, read_json, run_folder
from dislab.threads import thread_env

__all__ = ["run_slurm"]

OnEvent = Callable[[dict[str, Any]], None]


def _executor(folder: Path, executor: str) -> Any:
    try:
        import submitit
    except ImportError:
        raise DislabError("The Slurm backend needs submitit: pip install 'dislab[slurm]' "
                          "(or pip install submitit), or use --backend local / ray.") from None
    if executor == "local":
        return submitit.AutoExecutor(folder=str(folder), cluster="local")
    if executor != "slurm":
        raise DislabError(f"Unknown Slurm executor {executor!r}; use 'slurm' or 'local'.")
    import shutil

    if not (shutil.which("sbatch") and shutil.which("srun")):
        raise DislabError("--backend slurm: no Slurm here (sbatch / srun not found). Run the "
                          "command on a Slurm login node, or use --backend local / ray "
                          "(--slurm-local tries the job array on this machine).")
    return submitit.AutoExecutor(folder=str(folder), cluster="slurm")


def _log_tail(job: Any, lines: int = 5) -> str:
    try:
        text = Path(job.paths.stderr).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def run_slurm(runs: list[dict[str, Any]], study_dir: str, *, workers: int, threads: int,
              run_fn: str = DEFAULT_RUN_FN, on_start: OnEvent | None = None,
              on_done: OnEvent | None = None, gpus: float = 0.0,
              partition: str | None = None, time_min: int = 240, mem_gb: float | None = None,
              account: str | None = None, qos: str | None = None,
              setup: list[str] | None = None, executor: str = "slurm",
              poll_seconds: float = 5.0) -> list[dict[str, Any]]:
    """Execute ``runs`` as one Slurm job array (one task per run, at most ``workers`` at
    once, ``threads`` CPUs and ``gpus`` GPUs per task); return their records."""
    if not runs:
        return []
    if gpus and float(gpus) != int(gpus):
        raise DislabError(f"--slurm-gpus must be a whole number of GPUs per run, not {gpus}.")
    if int(time_min) < 1:
        raise DislabError(f"--slurm-time must be at least 1 minute, not {time_min}.")
    folder = Path(study_dir) / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    ex = _executor(folder / "%j", executor)
    params: dict[str, Any] = {
        "name": f"dislab-{runs[0].get('study', 'study')}",
        "timeout_min": int(time_min),
        "cpus_per_task": int(threads),
        "tasks_per_node": 1,
        "nodes": 1,
        "slurm_array_parallelism": max(1, int(workers)),
    }
    if gpus:
        params["gpus_per_node"] = int(gpus)
    if mem_gb:
        params["mem_gb"] = float(mem_gb)
    if partition:
        params["slurm_partition"] = partition
    if account:
        params["slurm_account"] = account
    if qos:
        params["slurm_qos"] = qos
    env_setup = [f"export {key}={value}" for key, value in thread_env(threads).items()]
    params["slurm_setup"] = env_setup + list(setup or [])
    ex.update_parameters(**params)
    n = len(runs)
    try:
        jobs = ex.map_array(execute_run, runs, [str(study_dir)] * n, [run_fn] * n,
                            [int(threads)] * n)
    except Exception as e:  # noqa: BLE001 - submitit's FailedJobError, OSError, ...
        raise DislabError(f"Submitting the job array failed: {str(e).strip()[-800:]}. Check "
                          "the --slurm-* options (partition, account, limits) and that "
                          "`sbatch` works here; nothing was run.") from None
    pending = dict(zip([j.job_id for j in jobs], zip(jobs, runs)))
    records: list[dict[str, Any]] = []
    started: set[str] = set()
    try:
        while pending:
            # Slurm: squeue says which tasks still exist (sacct needs accounting storage,
            # which many clusters, and a test's single-node Slurm, do not have).
            queue = _squeue(sorted({i.split("_")[0] for i in pending})) \
                if executor == "slurm" else None
            for job_id, (job, run) in list(pending.items()):
                state = (queue.get(job_id) if queue is not None
                         else ("RUNNING" if not job.done() else "FINISHED"))
                if on_start and run["run_id"] not in started and state in (
                        "RUNNING", "COMPLETING", "FINISHED"):
                    started.add(run["run_id"])
                    on_start(run)
                if queue is not None and state is not None:
                    continue
                if queue is None and not job.done():
                    continue
                del pending[job_id]
                if on_start and run["run_id"] not in started:
                    started.add(run["run_id"])
                    on_start(run)
                records.append(_record(job, run, study_dir))
                if on_done:
                    on_done(records[-1])
            if pending:
                time.sleep(poll_seconds)
    except BaseException:
        for job, _ in pending.values():
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001 - best effort: the driver is stopping anyway
                pass
        raise
    return records


def _squeue(array_ids: list[str]) -> dict[str, str]:
    """``{job id (e.g. "123_4"): state}`` of the tasks of ``array_ids`` Slurm still knows."""
    import subprocess

    cmd = ["squeue", "--array", "--noheader", "--format=%i|%T", "--jobs", ",".join(array_ids)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DislabError(f"squeue failed ({e}); the jobs keep running: re-run the same "
                          "command to wait for them again (finished runs are kept).") from None
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:  # every task has left the queue
            return {}
        raise DislabError(f"squeue failed: {out.stderr.strip()}; the jobs keep running: "
                          "re-run the same command to wait for them again.")
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id:
            states[job_id] = state
    return states


def _record(job: Any, run: dict[str, Any], study_dir: str) -> dict[str, Any]:
    """The run's record from its own folder; a task that died without recording its run
    (time limit, out of memory, cancelled) is failed here and stays resumable on disk."""
    folder = run_folder(study_dir, run["run_id"])
    status = read_json(folder / "status.json") or {}
    if status.get("status") == "done":
        return {"run_id": run["run_id"], "status": "done", "error": None,
                "result": read_json(folder / "result.json")}
    if status.get("status") == "failed":
        return {"run_id": run["run_id"], "status": "failed", "error": status.get("error"),
                "result": None}
    tail = _log_tail(job)
    return {"run_id": run["run_id"], "status": "failed", "result": None,
            "error": f"Slurm task {job.job_id} ended without finishing "
                     f"the run (time limit? out of memory? cancelled?); its log: "
                     f"{job.paths.stderr}" + (f" ({tail})" if tail else "")
                     + ". The run is resumable: re-run the same command."}
