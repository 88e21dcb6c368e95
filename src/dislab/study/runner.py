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
    "execute_pack",
    "train_and_evaluate_pack",
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


def _begin(run: dict[str, Any], study_dir: str) -> tuple[Path, dict[str, Any] | None,
                                                       dict[str, Any]]:
    """Open ``run``'s folder: ``(folder, its record if already done, else None, the status
    fields of this attempt)``; a run not done is marked ``running``."""
    folder = run_folder(study_dir, run["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    status = read_json(folder / "status.json") or {}
    if status.get("status") == "done":
        return folder, {"run_id": run["run_id"], "status": "done", "error": None,
                        "result": read_json(folder / "result.json")}, {}
    write_json_atomic(folder / "run.json", run)
    attempt = int(status.get("attempt", 0)) + 1
    base = {"run_id": run["run_id"], "attempt": attempt, "host": socket.gethostname(),
            "pid": os.getpid(), "started": time.time()}
    write_json_atomic(folder / "status.json", {**base, "status": "running", "error": None})
    return folder, None, base


def _failed(run: dict[str, Any], folder: Path, base: dict[str, Any], error: str,
            trace: str) -> dict[str, Any]:
    write_json_atomic(folder / "status.json", {
        **base, "status": "failed", "error": error, "traceback": trace,
        "seconds": time.time() - base["started"]})
    return {"run_id": run["run_id"], "status": "failed", "error": error, "result": None}


def _interrupted(folder: Path, base: dict[str, Any]) -> None:
    write_json_atomic(folder / "status.json", {
        **base, "status": "interrupted", "error": "interrupted (KeyboardInterrupt)",
        "seconds": time.time() - base["started"]})


def _done(run: dict[str, Any], folder: Path, base: dict[str, Any],
          out: dict[str, Any]) -> dict[str, Any]:
    started = base["started"]
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


def execute_run(run: dict[str, Any], study_dir: str, run_fn: str = DEFAULT_RUN_FN,
                threads: int | None = None) -> dict[str, Any]:
    """Run ``run`` in ``study_dir/runs/<run_id>`` unless it is already done; return its record.

    The record is ``{"run_id", "status", "error", "result"}`` (``result`` = the content of
    ``result.json`` or ``None``). An exception inside the run function is recorded as
    ``failed`` with its message and traceback and *not* raised; ``KeyboardInterrupt`` marks the
    run ``interrupted`` and is raised.
    """
    folder, record, base = _begin(run, study_dir)
    if record is not None:
        return record
    try:
        set_process_threads(threads)
        fn = resolve_run_fn(run_fn)
        out = fn(run, folder) or {}
    except Exception as e:  # noqa: BLE001 - a failing run is recorded, the study goes on
        return _failed(run, folder, base, f"{type(e).__name__}: {e}", traceback.format_exc())
    except KeyboardInterrupt:
        _interrupted(folder, base)
        raise
    return _done(run, folder, base, out)


def execute_pack(runs: list[dict[str, Any]], study_dir: str, run_fn: str = DEFAULT_RUN_FN,
                 threads: int | None = None, gpu: int | None = None) -> list[dict[str, Any]]:
    """Run the runs of one pack (see :mod:`dislab.study.packs`) as one task; return their
    records in order, each as :func:`execute_run` gives it.

    Each run keeps its own folder, status and record: done runs are skipped, a run that fails
    is recorded failed alone, ``KeyboardInterrupt`` marks the runs not yet recorded
    ``interrupted``. With the default run function the runs train together
    (:func:`train_and_evaluate_pack`; ``gpu``: the CUDA device index it uses when its runs'
    device is ``auto`` or ``cuda``); any other run function is called run by run.
    """
    records: list[dict[str, Any] | None] = [None] * len(runs)
    open_: dict[int, tuple[Path, dict[str, Any]]] = {}
    try:
        for i, run in enumerate(runs):
            folder, record, base = _begin(run, study_dir)
            if record is not None:
                records[i] = record
            else:
                open_[i] = (folder, base)
        set_process_threads(threads)
        todo = sorted(open_)
        if run_fn == DEFAULT_RUN_FN and len(todo) > 1:
            try:
                outs: list[Any] = train_and_evaluate_pack([runs[i] for i in todo],
                                                          [open_[i][0] for i in todo], gpu)
            except Exception as e:  # noqa: BLE001 - the whole pack failed (e.g. out of memory)
                e.dislab_traceback = traceback.format_exc()  # type: ignore[attr-defined]
                outs = [e] * len(todo)
            for i, out in zip(todo, outs):
                folder, base = open_.pop(i)
                if isinstance(out, BaseException):
                    trace = getattr(out, "dislab_traceback", "") or "".join(
                        traceback.format_exception(out))
                    records[i] = _failed(runs[i], folder, base, f"{type(out).__name__}: {out}",
                                         trace)
                else:
                    records[i] = _done(runs[i], folder, base, out)
        else:
            fn = resolve_run_fn(run_fn)
            for i in todo:
                folder, base = open_[i]
                try:
                    out = fn(runs[i], folder) or {}
                except Exception as e:  # noqa: BLE001 - recorded for this run only
                    open_.pop(i)
                    records[i] = _failed(runs[i], folder, base, f"{type(e).__name__}: {e}",
                                         traceback.format_exc())
                    continue
                open_.pop(i)
                records[i] = _done(runs[i], folder, base, out)
    except KeyboardInterrupt:
        for folder, base in open_.values():
            _interrupted(folder, base)
        raise
    return [r for r in records if r is not None]


def _train_config(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The training config of ``run`` in ``run_dir/model`` (study tracking, worker threads)."""
    from dislab.train import TrainConfig, tracking

    threads = os.environ.get("DISLAB_THREADS")
    config = dict(run["train"])
    config["out"] = str(Path(run_dir) / "model")
    config.update(tracking.study_config(config, run))  # one experiment per study
    if threads and config.get("threads") is None and "threads" in TrainConfig.field_names():
        config["threads"] = int(threads)
    return config


def _eval_settings(run: dict[str, Any]) -> dict[str, Any]:
    return {"metrics": run.get("metrics"), "seed": int(run["eval_seed"]),
            "params": run.get("metric_params") or None, "compat": run.get("compat", "default")}


def _outcome(record: dict[str, Any], train_status: dict[str, Any], train_wall: float,
             eval_seconds: float) -> dict[str, Any]:
    """The run function's return value from an evaluation record and the training status."""
    metrics = {name: rec.get("values", rec) if isinstance(rec, dict) else rec
               for name, rec in (record.get("metrics") or {}).items()}
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


def train_and_evaluate(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The default run function: :func:`dislab.train.fit` into ``run_dir/model`` (resuming
    from its checkpoint when one is there; skipped when training already finished), then
    :func:`dislab.metrics.evaluate_run` on it. Torch threads: ``DISLAB_THREADS`` (set by the
    backend) unless the spec's ``train:`` sets ``threads``."""
    from dislab.metrics import evaluate_run
    from dislab.train import TrainConfig, fit, tracking

    apply_env_threads()
    config = _train_config(run, run_dir)
    model_dir = Path(config["out"])
    t0 = time.perf_counter()
    train_status = read_json(model_dir / "status.json") or {}
    if train_status.get("status") != "done":
        model_dir = Path(fit(TrainConfig.from_dict(config), progress=False,
                             resume=(model_dir / "config.json").exists()))
        train_status = read_json(model_dir / "status.json") or {}
    train_wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    settings = _eval_settings(run)
    record = evaluate_run(model_dir, metrics=settings["metrics"], seed=settings["seed"],
                          params=settings["params"], progress=False,
                          compat=settings["compat"])
    out = _outcome(record, train_status, train_wall, time.perf_counter() - t1)
    tracking.log_metrics(model_dir, out["metrics"])
    return out


def train_and_evaluate_pack(runs: list[dict[str, Any]], run_dirs: list[Path],
                            gpu: int | None = None) -> list[Any]:
    """The default run function for a pack: the runs not yet trained train together
    (:func:`dislab.train.packed.fit_pack`, resuming members that have a checkpoint), then every
    trained run is scored (:func:`dislab.metrics.many.evaluate_runs`: one vectorised encoding
    pass, the suites in ``DISLAB_THREADS`` processes). Returns, per run, the value
    :func:`train_and_evaluate` would return, or the exception that stopped that run alone
    (its training failed, e.g. a NaN loss, or its evaluation did)."""
    import torch

    from dislab.errors import DislabError
    from dislab.metrics.many import evaluate_runs
    from dislab.train import tracking
    from dislab.train.packed import fit_pack

    apply_env_threads()
    threads = int(os.environ.get("DISLAB_THREADS") or 0) or None
    configs = [_train_config(run, d) for run, d in zip(runs, run_dirs)]
    device = "auto"
    if gpu is not None and torch.cuda.is_available():
        for c in configs:
            if str(c.get("device", "auto")) in ("auto", "cuda"):
                c["device"] = f"cuda:{int(gpu)}"
        device = f"cuda:{int(gpu)}"
    model_dirs = [Path(c["out"]) for c in configs]
    t0 = time.perf_counter()
    train = [k for k, d in enumerate(model_dirs)
             if (read_json(d / "status.json") or {}).get("status") != "done"]
    if train:
        fit_pack([configs[k] for k in train], progress=False,
                 resume=any((model_dirs[k] / "config.json").exists() for k in train))
    train_wall = (time.perf_counter() - t0) / max(1, len(train))
    out: list[Any] = [None] * len(runs)
    statuses = [read_json(d / "status.json") or {} for d in model_dirs]
    scored = []
    for k, status in enumerate(statuses):
        if status.get("status") == "done":
            scored.append(k)
        else:
            out[k] = DislabError(status.get("error") or
                                 f"training stopped ({status.get('status', 'no status')}) "
                                 f"at step {status.get('step', '?')}")
    if scored:
        t1 = time.perf_counter()
        records = evaluate_runs([model_dirs[k] for k in scored],
                                settings=[_eval_settings(runs[k]) for k in scored],
                                device=device, workers=threads or 1, progress=False,
                                errors="return")
        eval_share = (time.perf_counter() - t1) / len(scored)
        for k, record in zip(scored, records):
            if isinstance(record, BaseException):
                out[k] = record
                continue
            out[k] = _outcome(record, statuses[k], train_wall, eval_share)
            tracking.log_metrics(model_dirs[k], out[k]["metrics"])
    return out
