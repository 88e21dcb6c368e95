"""Run a whole study: plan, skip finished runs, execute the rest on a backend, write the table.

``run_study(spec, out)`` is what ``dislab study run`` calls. The study folder ``out`` holds
``study.json`` (the spec as run, after ``--steps/--seeds/--data``), ``runs/<run_id>/`` (one
folder per run, see :mod:`dislab.study.runner`) and ``results.parquet`` (the table, rebuilt at
the end of every invocation; :mod:`dislab.study.collect`).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dislab import tiny
from dislab.errors import DislabError
from dislab.study import backends
from dislab.study.collect import write_table
from dislab.study.plan import default_workers, expand, format_seconds
from dislab.study.runner import (
    DEFAULT_RUN_FN,
    read_json,
    resolve_run_fn,
    run_folder,
    write_json_atomic,
)
from dislab.study.spec import StudySpec, check_data_names

__all__ = ["run_study", "pending_runs"]


def pending_runs(runs: list[dict[str, Any]], study_dir: str | Path,
                 retry_failed: bool = False) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Runs of ``runs`` still to execute (not ``done``; ``failed`` only with ``retry_failed``)
    and the count of each status found."""
    todo, counts = [], {"done": 0, "failed": 0, "unfinished": 0, "new": 0}
    for run in runs:
        status = (read_json(run_folder(study_dir, run["run_id"]) / "status.json") or {}).get(
            "status")
        if status == "done":
            counts["done"] += 1
            continue
        if status == "failed":
            counts["failed"] += 1
            if not retry_failed:
                continue
        elif status is None:
            counts["new"] += 1
        else:
            counts["unfinished"] += 1
        todo.append(run)
    return todo, counts


class _Lock:
    """``DIR/.lock`` with the driver's host and pid: two drivers on one folder would run the
    same runs twice. A lock whose process is gone (killed study) is taken over."""

    def __init__(self, study_dir: Path) -> None:
        self.path = study_dir / ".lock"

    def __enter__(self) -> _Lock:
        info = read_json(self.path)
        if info and info.get("host") == socket.gethostname() and _alive(int(info["pid"])):
            raise DislabError(f"Another `dislab study run` (pid {info['pid']}) is using "
                              f"{self.path.parent}; wait for it or stop it first.")
        write_json_atomic(self.path, {"host": socket.gethostname(), "pid": os.getpid(),
                                      "started": time.time()})
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM (``kill``, a batch scheduler's time limit) stop the study like Ctrl-C:
    workers stopped, table written, runs resumable. Returns the previous handler (``None``
    outside the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, handler)


def _cuda_devices() -> int:
    """CUDA devices here (0 without CUDA); torch is imported only for packed studies."""
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable CUDA
        return 0


def _alive(pid: int) -> bool:
    """Another live process on this host (this process and zombies do not count)."""
    from dislab.status import pid_alive

    return pid != os.getpid() and pid_alive(pid)


def run_study(spec: StudySpec, out: str | Path, *, backend: str = "local",
              workers: int | None = None, threads: int | None = None,
              address: str | None = None, gpus: float = 0.0, run_fn: str = DEFAULT_RUN_FN,
              retry_failed: bool = False, progress: bool = True,
              slurm: dict[str, Any] | None = None,
              pack: int | str | None = None) -> dict[str, Any]:
    """Run every unfinished run of ``spec`` in ``out``; return a summary.

    ``workers`` parallel runs (default: the usable cores), each with ``threads`` torch threads
    (default: cores // workers, at least 1). Returns ``{"runs", "skipped", "done", "failed",
    "packs" (tasks that were packs), "table", "seconds", "errors": {run_id: error}}``. A
    failing run does not stop the others.
    ``slurm``: options of :func:`dislab.study.slurm.run_slurm` for ``backend="slurm"``
    (``partition``, ``time_min``, ``mem_gb``, ``account``, ``qos``, ``setup``, ``executor``).
    ``pack``: ``None`` (each run alone), ``K`` or ``"auto"``: compatible pending runs train
    and are scored together in packs of at most ``K`` (:mod:`dislab.study.packs`); with
    packs on CUDA the local backend's default ``workers`` is the number of GPUs.
    """
    if backend not in backends.BACKENDS:
        raise DislabError(f"Unknown backend {backend!r}; use one of "
                          f"{', '.join(backends.BACKENDS)}.")
    resolve_run_fn(run_fn)  # a typo in --run-fn fails here, not in every run
    if run_fn == DEFAULT_RUN_FN:
        check_data_names(spec)
    from dislab.study.packs import parse_pack

    pack = parse_pack(pack)
    if pack is not None and backend == "slurm":
        raise DislabError("--pack is for --backend local or ray; a Slurm array task runs one "
                          "run (leave out --pack).")
    cores = default_workers()
    if not workers and pack is not None:
        gpus_here = _cuda_devices()
        workers = gpus_here or None
    workers = int(workers) if workers else cores
    if workers < 1:
        raise DislabError(f"--workers must be >= 1, not {workers}.")
    threads = int(threads) if threads else max(1, cores // workers)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = tiny.study_runs(expand(spec))  # all of them unless DISLAB_TINY
    started = time.time()
    with _Lock(out):
        write_json_atomic(out / "study.json", {"spec": spec.to_dict(), "runs": len(runs),
                                               "run_fn": run_fn})
        todo, counts = pending_runs(runs, out, retry_failed)
        tasks: list[Any] = list(todo)
        pack_note = ""
        packs: list[Any] = []
        if pack is not None and todo:
            from dislab.study.packs import auto_pack, group_packs

            size = auto_pack(todo) if pack == "auto" else int(pack)
            tasks = group_packs(todo, size)
            packs = [t for t in tasks if isinstance(t, list)]
            pack_note = (f" in {len(packs)} pack(s) of at most {size} and "
                         f"{len(tasks) - len(packs)} single run(s)")
        if progress:
            parts = [f"{len(runs)} runs", f"{counts['done']} already done"]
            if counts["failed"]:
                parts.append(f"{counts['failed']} failed before"
                             + ("" if retry_failed else " (kept; --retry-failed reruns them)"))
            if counts["unfinished"]:
                parts.append(f"{counts['unfinished']} to resume")
            parts.append(f"{len(todo)} to run{pack_note} on {backend} with {workers} "
                         f"worker(s) × {threads} thread(s)")
            print("study: " + ", ".join(parts), file=sys.stderr)
        state = {"done": 0, "failed": 0, "running": set()}
        errors: dict[str, str] = {}
        bar = tqdm(total=len(todo), desc="study", unit="run", disable=not progress or not todo,
                   file=sys.stderr, dynamic_ncols=True)

        def show() -> None:
            bar.set_postfix_str(f"done={state['done']} failed={state['failed']} "
                                f"running={len(state['running'])}", refresh=True)

        def on_start(run: dict[str, Any]) -> None:
            state["running"].add(run["run_id"])
            show()

        def on_done(record: dict[str, Any]) -> None:
            state["running"].discard(record["run_id"])
            if record["status"] == "done":
                state["done"] += 1
            else:
                state["failed"] += 1
                errors[record["run_id"]] = str(record.get("error"))
                bar.write(f"study: run {record['run_id']} failed: {record.get('error')}")
            bar.update(1)
            show()

        kwargs: dict[str, Any] = {"workers": workers, "threads": threads, "run_fn": run_fn,
                                  "on_start": on_start, "on_done": on_done}
        if backend == "ray":
            kwargs["address"] = address
            kwargs["gpus"] = gpus
        elif backend == "slurm":
            kwargs["gpus"] = gpus
            kwargs.update(slurm or {})
        elif gpus:
            raise DislabError("--gpus is for --backend ray or slurm; the local backend runs "
                              "every run on the device of its training config (device: auto).")
        previous = _sigterm_as_interrupt()
        try:
            backends.BACKENDS[backend](tasks, str(out), **kwargs)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            bar.close()
            table = write_table(out) if (out / "runs").is_dir() else None
    summary = {
        "runs": len(runs),
        "skipped": counts["done"] + (0 if retry_failed else counts["failed"]),
        "done": state["done"],
        "failed": state["failed"],
        "packs": len(packs),
        "errors": errors,
        "table": str(table) if table else None,
        "seconds": time.time() - started,
    }
    if progress:
        print(f"study: finished in {format_seconds(summary['seconds'])}: {state['done']} done, "
              f"{state['failed']} failed, {summary['skipped']} skipped; table {table}",
              file=sys.stderr)
    return summary
