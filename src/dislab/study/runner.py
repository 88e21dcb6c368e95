"""One run of a study: train, evaluate, and record the outcome in the run's own folder.

Folder ``DIR/runs/<run_id>/``:

* ``run.json``    – the run (see :mod:`dislab.study.plan`), written before anything starts;
* ``model/``      – the training run folder of :func:`dislab.train.fit` (weights, checkpoint,
                    history, ``metrics.json`` of :func:`dislab.metrics.evaluate_run`);
* ``result.json`` – written once the run is complete: metrics, training/evaluation seconds,
                    final training logs;
* ``status.json`` – ``{"status": "running"|"done"|"failed"|"interrupted", "error", ...}``;
                    ``done`` is written last, after ``result.json``.

Every JSON file is written atomically (:mod:`dislab.io`; NaN as ``null``), so a study killed at
any moment leaves each run either complete or resumable: re-running skips ``done`` runs and
calls the run function again for the others (training resumes from its checkpoint).

A **run function** ``fn(run: dict, run_dir: pathlib.Path) -> dict`` does the work and returns
``{"metrics": {metric: {key: value}}, "train_seconds": float, "eval_seconds": float,
"final_logs": {name: value}}``. It is named by an import path ``"module:function"`` so that it
can be sent to worker processes and Ray tasks; the default is :func:`train_and_evaluate`.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dislab.io import read_json as io_read_json
from dislab.io import write_json
from dislab.threads import apply_env_threads, set_process_threads

__all__ = [
    "DEFAULT_RUN_FN",
    "execute_run",
    "train_and_evaluate",
    "resolve_run_fn",
    "read_json",
    "write_json_atomic",
    "run_folder",
]

DEFAULT_RUN_FN = "dislab.study.runner:train_and_evaluate"

RunFn = Callable[[dict[str, Any], Path], dict[str, Any]]


def run_folder(study_dir: str | Path, run_id: str) -> Path:
    """``study_dir/runs/<run_id>``."""
    return Path(study_dir) / "runs" / run_id


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically and durably (:func:`dislab.io.write_json`:
    non-finite floats as ``null``)."""
    write_json(path, obj, indent=1, sort_keys=True, fsync=True)


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing, unreadable or not an
    object."""
    obj = io_read_json(path)
    return obj if isinstance(obj, dict) else None


def resolve_run_fn(spec: str | RunFn) -> RunFn:
    """A run function from ``"module:function"`` (or the callable itself)."""
    if callable(spec):
        return spec
    from dislab.errors import DislabError

    module_name, _, attr = str(spec).partition(":")
    if not module_name or not attr:
        raise DislabError(f"Run function {spec!r} must be written 'module:function', e.g. "
                          f"{DEFAULT_RUN_FN!r}.")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise DislabError(f"Cannot import run function {spec!r}: {e}.") from None
    return fn


def execute_run(run: dict[str, Any], study_dir: str, run_fn: str = DEFAULT_RUN_FN,
                threads: int | None = None) -> dict[str, Any]:
    """Run ``run`` in ``study_dir/runs/<run_id>`` unless it is already done; return its record.

    The record is ``{"run_id", "status", "error", "result"}`` (``result`` = the content of
    ``result.json`` or ``None``). An exception inside the run function is recorded as
    ``failed`` with its message and traceback and *not* raised; ``KeyboardInterrupt`` marks the
    run ``interrupted`` and is raised.
    """
    folder = run_folder(study_dir, run["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    status = read_json(folder / "status.json") or {}
    if status.get("status") == "done":
        return {"run_id": run["run_id"], "status": "done", "error": None,
                "result": read_json(folder / "result.json")}
    write_json_atomic(folder / "run.json", run)
    attempt = int(status.get("attempt", 0)) + 1
    started = time.time()
    base = {"run_id": run["run_id"], "attempt": attempt, "host": socket.gethostname(),
            "pid": os.getpid(), "started": started}
    write_json_atomic(folder / "status.json", {**base, "status": "running", "error": None})
    try:
        set_process_threads(threads)  # DISLAB_THREADS tells the run function
        fn = resolve_run_fn(run_fn)
        out = fn(run, folder) or {}
    except Exception as e:  # noqa: BLE001 - a failing run is recorded, the study goes on
        error = f"{type(e).__name__}: {e}"
        write_json_atomic(folder / "status.json", {
            **base, "status": "failed", "error": error, "traceback": traceback.format_exc(),
            "seconds": time.time() - started})
        return {"run_id": run["run_id"], "status": "failed", "error": error, "result": None}
    except KeyboardInterrupt:
        write_json_atomic(folder / "status.json", {
            **base, "status": "interrupted", "error": "interrupted (KeyboardInterrupt)",
            "seconds": time.time() - started})
        raise
    result = {
        "run_id": run["run_id"],
        "metrics": out.get("metrics", {}),
        "train_seconds": out.get("train_seconds"),
        "eval_seconds": out.get("eval_seconds"),
        "final_logs": out.get("final_logs", {}),
        "metric_seconds": out.get("metric_seconds", {}),
        "metrics_skipped": out.get("metrics_skipped", {}),
        "seconds": time.time() - started,
        "finished": time.time(),
    }
    write_json_atomic(folder / "result.json", result)
    write_json_atomic(folder / "status.json", {**base, "status": "done", "error": None,
                                               "seconds": result["seconds"]})
    return {"run_id": run["run_id"], "status": "done", "error": None,
            "result": read_json(folder / "result.json")}


def train_and_evaluate(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The default run function: :func:`dislab.train.fit` into ``run_dir/model`` (resuming
    from its checkpoint when one is there; skipped when training already finished), then
    :func:`dislab.metrics.evaluate_run` on it. Torch threads: ``DISLAB_THREADS`` (set by the
    backend) unless the spec's ``train:`` sets ``threads``."""
    from dislab.metrics import evaluate_run
    from dislab.train import TrainConfig, fit

    apply_env_threads()
    threads = os.environ.get("DISLAB_THREADS")
    config = dict(run["train"])
    config["out"] = str(Path(run_dir) / "model")
    from dislab.train import tracking

    config.update(tracking.study_config(config, run))  # one experiment per study
    if threads and config.get("threads") is None and "threads" in TrainConfig.field_names():
        config["threads"] = int(threads)
    model_dir = Path(config["out"])
    t0 = time.perf_counter()
    train_status = read_json(model_dir / "status.json") or {}
    if train_status.get("status") != "done":
        model_dir = Path(fit(TrainConfig.from_dict(config), progress=False,
                             resume=(model_dir / "config.json").exists()))
        train_status = read_json(model_dir / "status.json") or {}
    train_wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    record = evaluate_run(model_dir, metrics=run.get("metrics"), seed=int(run["eval_seed"]),
                          params=run.get("metric_params") or None, progress=False,
                          compat=run.get("compat", "default"))
    eval_seconds = time.perf_counter() - t1
    metrics = {name: rec.get("values", rec) if isinstance(rec, dict) else rec
               for name, rec in (record.get("metrics") or {}).items()}
    tracking.log_metrics(model_dir, metrics)
    return {
        "metrics": metrics,
        "metric_seconds": {name: rec.get("seconds") for name, rec in
                           (record.get("metrics") or {}).items() if isinstance(rec, dict)},
        "metrics_skipped": record.get("skipped") or {},
        "compat": record.get("compat", "default"),
        "train_seconds": train_status.get("train_seconds", train_wall),
        "eval_seconds": eval_seconds,
        "final_logs": train_status.get("final_logs") or {},
    }
