"""Where runs execute: a local process pool, or Ray (a cluster or a Ray started on the spot).

Both backends call :func:`dislab.study.runner.execute_run` once per pending run and report
each finished run to a callback; the run folders (and so the table) are the same either way.

* ``local``: a ``concurrent.futures.ProcessPoolExecutor`` with the *spawn* start method (no
  forked torch state), ``workers`` processes (default: the usable cores), each run with
  ``threads`` torch threads (default: cores // workers, at least 1). The workers end with the
  driver, even when it is killed with SIGKILL (:func:`_die_with_parent`); their runs then
  read as interrupted and resume on the next ``study run``.
* ``ray``: ``ray.init(address=...)`` (an existing cluster, e.g. ``auto`` or
  ``ray://head:10001``) or, without an address, a local Ray with ``workers × threads`` CPUs;
  every run is a Ray task asking for ``threads`` CPUs. On a cluster the study folder must be on
  a file system that every node sees (NFS, a mounted bucket): the tasks write the run folders
  there. The driver also writes each returned record, so the table is complete even where it
  is not shared (but then resuming needs the nodes' folders).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dislab.errors import DislabError
from dislab.study.runner import DEFAULT_RUN_FN, execute_run
from dislab.threads import thread_env

__all__ = ["run_in_pool", "run_local", "run_ray", "run_slurm", "BACKENDS"]

#: Times a Ray task is re-run when its worker or node is lost (the run resumes from its
#: checkpoint; errors raised by the run itself are recorded, never retried).
RAY_MAX_RETRIES = 3

OnStart = Callable[[dict[str, Any]], None]
OnDone = Callable[[dict[str, Any]], None]


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """End this worker when the driver process ``parent`` ends, even by SIGKILL (which runs
    none of the driver's clean-up): on Linux the kernel sends SIGKILL on the parent's death
    (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread polls the parent pid as well."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the driver died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="dislab-parent-watch").start()


def _init_worker(threads: int, parent: int | None = None) -> None:
    if parent is not None:
        _die_with_parent(parent)
    os.environ.update(thread_env(threads))


def run_in_pool(fn: Callable[..., Any], jobs: list[tuple[Any, ...]], *, workers: int,
                threads: int, name: Callable[[tuple[Any, ...]], str] = str,
                on_start: Callable[[tuple[Any, ...]], None] | None = None,
                on_done: Callable[[Any], None] | None = None,
                on_wait: Callable[[], None] | None = None, grace: float = 0.0,
                hint: str = "") -> list[Any]:
    """``fn(*args)`` for every ``args`` in ``jobs``, in a pool of ``workers`` spawned processes
    with ``threads`` threads each (:func:`dislab.threads.thread_env`), which end with this
    process even when it is killed (:func:`_die_with_parent`); returns the results in the
    order they finished. ``fn`` must be importable (a module-level function).

    ``on_start(args)`` / ``on_done(result)`` are called as jobs are submitted / finish;
    ``on_wait()`` about once a second while jobs run (progress bars). On an error or Ctrl-C
    here the workers are stopped: with ``grace`` seconds, first by SIGINT (as Ctrl-C in a
    terminal, so that a training run saves its checkpoint) and given that long to finish,
    else at once. ``name(args)`` and ``hint`` go into the error for a worker that died.
    """
    if not jobs:
        return []
    results: list[Any] = []
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(workers, len(jobs)))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_init_worker, initargs=(threads, os.getpid()))
    queue = list(jobs)
    in_flight: dict[Any, tuple[Any, ...]] = {}
    try:
        while queue or in_flight:
            # Keep exactly `workers` jobs submitted so that "running" is accurate.
            while queue and len(in_flight) < workers:
                args = queue.pop(0)
                in_flight[pool.submit(fn, *args)] = args
                if on_start:
                    on_start(args)
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED,
                               timeout=1.0 if on_wait else None)
            if on_wait:
                on_wait()
            for future in finished:
                args = in_flight.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    raise DislabError(
                        f"A worker process died while running {name(args)} (out of memory? "
                        f"killed?). Finished work is kept; re-run the same command to resume"
                        f"{hint}.") from None
                results.append(result)
                if on_done:
                    on_done(result)
    except BaseException as e:
        # Ctrl-C / an error here: stop the workers now (their work stays resumable) instead
        # of waiting for the running jobs to finish.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        if grace > 0:
            if not isinstance(e, KeyboardInterrupt):  # Ctrl-C reached them already
                for process in processes:
                    if process.is_alive() and process.pid:
                        os.kill(process.pid, signal.SIGINT)
            wait(list(in_flight), timeout=grace)  # the running jobs end (or time runs out)
        for process in processes:
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def run_local(runs: list[dict[str, Any]], study_dir: str, *, workers: int, threads: int,
              run_fn: str = DEFAULT_RUN_FN, on_start: OnStart | None = None,
              on_done: OnDone | None = None) -> list[dict[str, Any]]:
    """Execute ``runs`` in a pool of ``workers`` spawned processes (:func:`run_in_pool`);
    return their records."""
    return run_in_pool(
        execute_run, [(run, str(study_dir), run_fn, threads) for run in runs],
        workers=workers, threads=threads, name=lambda args: str(args[0]["run_id"]),
        on_start=(lambda args: on_start(args[0])) if on_start else None, on_done=on_done,
        hint=", maybe with fewer --workers")


def run_ray(runs: list[dict[str, Any]], study_dir: str, *, workers: int, threads: int,
            address: str | None = None, gpus: float = 0.0, run_fn: str = DEFAULT_RUN_FN,
            on_start: OnStart | None = None, on_done: OnDone | None = None,
            shutdown: bool = True) -> list[dict[str, Any]]:
    """Execute ``runs`` as Ray tasks (``threads`` CPUs and ``gpus`` GPUs each, e.g. 0.25 to
    put four runs on one GPU); return their records."""
    try:
        import ray
    except ImportError:
        raise DislabError("The Ray backend needs Ray: pip install 'dislab[ray]' (or "
                          "pip install ray), or use --backend local.") from None
    if not runs:
        return []
    started_here = False
    if not ray.is_initialized():
        env = {"env_vars": thread_env(threads)}
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            # Ray runs its workers at niceness 15 by default; on a machine shared with other
            # work that starves the runs (measured: a run 2x slower), so a local Ray started
            # here runs them at normal priority.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=max(1, workers) * threads, include_dashboard=False,
                     runtime_env=env, log_to_driver=False,
                     object_store_memory=200 * 1024 * 1024)
        started_here = True
    # A task lost with its node (or worker process) is retried: the run resumes from its
    # checkpoint. An exception inside the run is recorded by execute_run, not retried.
    remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=RAY_MAX_RETRIES,
                        retry_exceptions=False)(execute_run)
    records: list[dict[str, Any]] = []
    pending: dict[Any, dict[str, Any]] = {}
    try:
        for run in runs:
            ref = remote.remote(run, str(study_dir), run_fn, threads)
            pending[ref] = run
        started: set[str] = set()
        last_poll = 0.0
        while pending:
            if on_start and time.time() - last_poll > 1.0:
                # Ray does not say which tasks run now; assume the oldest `workers` do.
                for run in list(pending.values())[:workers]:
                    if run["run_id"] not in started:
                        started.add(run["run_id"])
                        on_start(run)
                last_poll = time.time()
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                run = pending.pop(ref)
                if run["run_id"] not in started and on_start:
                    started.add(run["run_id"])
                    on_start(run)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as e:
                    record = {"run_id": run["run_id"], "status": "failed",
                              "error": f"Ray task failed: {type(e).__name__}: {e}",
                              "result": None}
                _mirror(record, run, study_dir)
                records.append(record)
                if on_done:
                    on_done(record)
    except BaseException:
        for ref in list(pending):
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here and shutdown:
            ray.shutdown()
    return records


def _mirror(record: dict[str, Any], run: dict[str, Any], study_dir: str) -> None:
    """Write a task's record in the driver's study folder when the task's write is not
    visible here (a cluster without a shared file system)."""
    from dislab.study.runner import read_json, run_folder, write_json_atomic

    folder = run_folder(study_dir, run["run_id"])
    status = read_json(folder / "status.json") or {}
    if status.get("status") == record["status"]:
        return
    write_json_atomic(folder / "run.json", run)
    if record["status"] == "done" and record.get("result"):
        write_json_atomic(folder / "result.json", record["result"])
    write_json_atomic(folder / "status.json", {"run_id": run["run_id"],
                                               "status": record["status"],
                                               "error": record.get("error"),
                                               "note": "written by the Ray driver"})


def run_slurm(runs: list[dict[str, Any]], study_dir: str, **kwargs: Any) -> list[dict[str, Any]]:
    """A Slurm job array through submitit (:func:`dislab.study.slurm.run_slurm`)."""
    from dislab.study.slurm import run_slurm as _run_slurm

    return _run_slurm(runs, study_dir, **kwargs)


BACKENDS = {"local": run_local, "ray": run_ray, "slurm": run_slurm}
