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

from dislab import tiny
from dislab.errors import DislabError
from dislab.study.runner import DEFAULT_RUN_FN, execute_pack, execute_run
from dislab.threads import thread_env, torch_threads

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
                hint: str = "", slots: list[Any] | None = None) -> list[Any]:
    """``fn(*args)`` for every ``args`` in ``jobs``, in a pool of ``workers`` spawned processes
    with ``threads`` threads each (:func:`dislab.threads.thread_env`), which end with this
    process even when it is killed (:func:`_die_with_parent`); returns the results in the
    order they finished. ``fn`` must be importable (a module-level function).

    ``on_start(args)`` / ``on_done(result)`` are called as jobs are submitted / finish;
    ``on_wait()`` about once a second while jobs run (progress bars). On an error or Ctrl-C
    here the workers are stopped: with ``grace`` seconds, first by SIGINT (as Ctrl-C in a
    terminal, so that a training run saves its checkpoint) and given that long to finish,
    else at once. ``name(args)`` and ``hint`` go into the error for a worker that died.
    ``slots`` (e.g. GPU indices): each job is called as ``fn(*args, slot)`` with a slot no job
    in flight holds (``None`` when all are taken), given back when the job ends.
    """
    if not jobs:
        return []
    if tiny.enabled():  # DISLAB_TINY: toy jobs run here, one after another
        return _run_here(fn, jobs, slots=slots, on_start=on_start, on_done=on_done)
    results: list[Any] = []
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(workers, len(jobs)))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_init_worker, initargs=(threads, os.getpid()))
    queue = list(jobs)
    in_flight: dict[Any, tuple[Any, ...]] = {}
    free = list(slots or [])
    held: dict[Any, Any] = {}
    try:
        while queue or in_flight:
            # Keep exactly `workers` jobs submitted so that "running" is accurate.
            while queue and len(in_flight) < workers:
                args = queue.pop(0)
                if slots is None:
                    future = pool.submit(fn, *args)
                else:
                    slot = free.pop(0) if free else None
                    future = pool.submit(fn, *args, slot)
                    held[future] = slot
                in_flight[future] = args
                if on_start:
                    on_start(args)
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED,
                               timeout=1.0 if on_wait else None)
            if on_wait:
                on_wait()
            for future in finished:
                args = in_flight.pop(future)
                if held.get(future) is not None:
                    free.append(held.pop(future))
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


def _run_here(fn: Callable[..., Any], jobs: list[tuple[Any, ...]], *,
              slots: list[Any] | None, on_start: Callable[[tuple[Any, ...]], None] | None,
              on_done: Callable[[Any], None] | None) -> list[Any]:
    """:func:`run_in_pool`'s jobs in this process, in order (``DISLAB_TINY``: the documented
    commands' toy runs start no worker processes); the thread settings the jobs make are
    undone afterwards."""
    saved = {k: os.environ.get(k) for k in thread_env(1)}
    results: list[Any] = []
    try:
        with torch_threads(None):
            for args in jobs:
                if on_start:
                    on_start(args)
                result = fn(*args) if slots is None else fn(*args, None)
                results.append(result)
                if on_done:
                    on_done(result)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results


Task = dict[str, Any] | list[dict[str, Any]]


def _members(task: Task) -> list[dict[str, Any]]:
    return list(task) if isinstance(task, list) else [task]


def _name(task: Task) -> str:
    runs = _members(task)
    return runs[0]["run_id"] if len(runs) == 1 else (
        f"the pack of {len(runs)} runs {', '.join(r['run_id'] for r in runs)}")


def _local_gpus(tasks: list[Task]) -> int:
    """CUDA devices to spread packs over (0 when no task is a pack or there is no CUDA)."""
    if not any(isinstance(t, list) for t in tasks):
        return 0
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable CUDA
        return 0


def _execute_task(task: Task, study_dir: str, run_fn: str, threads: int,
                  gpu: int | None) -> list[dict[str, Any]]:
    """One pool job: a run (:func:`execute_run`) or a pack (:func:`execute_pack`, on ``gpu``);
    always a list of records."""
    if isinstance(task, list):
        return execute_pack(task, study_dir, run_fn, threads, gpu)
    return [execute_run(task, study_dir, run_fn, threads)]


def run_local(runs: list[Task], study_dir: str, *, workers: int, threads: int,
              run_fn: str = DEFAULT_RUN_FN, on_start: OnStart | None = None,
              on_done: OnDone | None = None) -> list[dict[str, Any]]:
    """Execute ``runs`` (runs, or packs of runs: lists) in a pool of ``workers`` spawned
    processes (:func:`run_in_pool`; each pack in flight gets its own GPU when there are
    several); return their records."""
    gpus = _local_gpus(runs)
    records: list[dict[str, Any]] = []

    def started(args: tuple[Any, ...]) -> None:
        for run in _members(args[0]):
            if on_start:
                on_start(run)

    def done(result: list[dict[str, Any]]) -> None:
        for record in result:
            records.append(record)
            if on_done:
                on_done(record)

    run_in_pool(
        _execute_task, [(task, str(study_dir), run_fn, threads) for task in runs],
        workers=workers, threads=threads, name=lambda args: _name(args[0]),
        on_start=started, on_done=done, slots=list(range(gpus)) if gpus > 1 else [],
        hint=", maybe with fewer --workers (or a smaller --pack)")
    return records


def run_ray(runs: list[Task], study_dir: str, *, workers: int, threads: int,
            address: str | None = None, gpus: float = 0.0, run_fn: str = DEFAULT_RUN_FN,
            on_start: OnStart | None = None, on_done: OnDone | None = None,
            shutdown: bool = True) -> list[dict[str, Any]]:
    """Execute ``runs`` as Ray tasks (``threads`` CPUs and ``gpus`` GPUs each, e.g. 0.25 to
    put four runs on one GPU; a pack, a list of runs, is one task with one whole GPU when
    ``gpus`` is given); return their records."""
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
    remote_pack = ray.remote(num_cpus=threads, num_gpus=1 if gpus else 0,
                             max_retries=RAY_MAX_RETRIES, retry_exceptions=False)(execute_pack)
    records: list[dict[str, Any]] = []
    pending: dict[Any, Task] = {}
    try:
        for task in runs:
            if isinstance(task, list):
                ref = remote_pack.remote(task, str(study_dir), run_fn, threads)
            else:
                ref = remote.remote(task, str(study_dir), run_fn, threads)
            pending[ref] = task
        started: set[str] = set()
        last_poll = 0.0

        def start(task: Task) -> None:
            for run in _members(task):
                if run["run_id"] not in started and on_start:
                    started.add(run["run_id"])
                    on_start(run)

        while pending:
            if on_start and time.time() - last_poll > 1.0:
                # Ray does not say which tasks run now; assume the oldest `workers` do.
                for task in list(pending.values())[:workers]:
                    start(task)
                last_poll = time.time()
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                task = pending.pop(ref)
                start(task)
                try:
                    result = ray.get(ref)
                    got = result if isinstance(result, list) else [result]
                except ray.exceptions.RayError as e:
                    got = [{"run_id": run["run_id"], "status": "failed",
                            "error": f"Ray task failed: {type(e).__name__}: {e}",
                            "result": None} for run in _members(task)]
                by_id = {run["run_id"]: run for run in _members(task)}
                for record in got:
                    _mirror(record, by_id[record["run_id"]], study_dir)
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
