"""The results table: one row per run folder of a study, written as Parquet.

Columns (every run of the folder, finished or not):

* ``run_id``, ``study``, ``data`` (the data set label), ``method``, ``seed``, ``eval_seed``,
  ``status`` (done / failed / running / interrupted / pending; a run recorded as running
  whose process is gone, e.g. after a SIGKILL, is interrupted: :mod:`dislab.status`),
  ``error`` (message or null),
  ``attempt`` (how many times the run was started);
* ``hp.<name>``: each hyper-parameter (missing for methods without it);
* ``config.<field>``: every training config field (``config.steps``, ``config.lr``, ...;
  dicts flattened with dots, e.g. ``config.data_options.noise``);
* ``metric.<metric>.<key>``: every metric value (e.g. ``metric.mig.discrete_mig``);
* ``final.<name>``: the final training logs (e.g. ``final.loss``, ``final.reconstruction``);
* ``train_seconds``, ``eval_seconds``, ``seconds`` (wall time of the run);
* ``metrics_skipped``: metrics the evaluation skipped, with the reason (or null).

The table is rebuilt from the run folders each time (``dislab study collect DIR``), so a
resumed study never duplicates a row: a run folder is one row. Read it with
``pandas.read_parquet(DIR / "results.parquet")`` or duckdb.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from dislab.errors import DislabError
from dislab.io import as_float, atomic_path
from dislab.status import effective_status
from dislab.study.runner import read_json

__all__ = ["collect", "write_table", "TABLE_NAME", "metric_columns"]

TABLE_NAME = "results.parquet"


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
        return
    if isinstance(obj, str) and obj in ("nan", "inf", "-inf"):
        obj = as_float(obj)  # the strings of older result.json files
    elif obj is None and prefix.startswith(("metric.", "final.")):
        obj = math.nan  # non-finite numbers are stored as null (dislab.io)
    if isinstance(obj, (list, tuple)):
        if all(isinstance(x, (int, float, bool)) for x in obj):
            # small numeric lists (e.g. factor sizes) become a string: Parquet columns are
            # scalar here, and a list per row would not group or plot.
            obj = ",".join(str(x) for x in obj)
        else:
            obj = str(obj)
    out[prefix] = obj


def _row(folder: Path) -> dict[str, Any] | None:
    run = read_json(folder / "run.json")
    if run is None:
        return None
    status = read_json(folder / "status.json") or {"status": "pending"}
    state = effective_status(status)
    if state == "running":  # the worker may be on another host: its training's heartbeat
        train = read_json(folder / "model" / "status.json")
        if train is not None and effective_status(train) == "interrupted":
            state = "interrupted"
    if state != status.get("status"):  # "running", but its process is gone (killed)
        status = {**status, "status": state, "error": status.get("error") or (
            f"the worker (pid {status.get('pid')} on {status.get('host')}) stopped without "
            "recording an end (killed?); `dislab study run` again resumes it")}
    row: dict[str, Any] = {
        "run_id": run.get("run_id", folder.name),
        "study": run.get("study"),
        "data": run.get("data"),
        "method": run.get("method"),
        "seed": run.get("seed"),
        "eval_seed": run.get("eval_seed"),
        "compat": run.get("compat", "default"),
        "status": status.get("status", "pending"),
        "error": status.get("error"),
        "attempt": status.get("attempt"),
    }
    _flatten("hp", run.get("hparams") or {}, row)
    _flatten("config", run.get("train") or {}, row)
    result = read_json(folder / "result.json") if row["status"] == "done" else None
    if result is not None:
        _flatten("metric", result.get("metrics") or {}, row)
        _flatten("final", result.get("final_logs") or {}, row)
        skipped = result.get("metrics_skipped") or {}
        row["metrics_skipped"] = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or None
        for key in ("train_seconds", "eval_seconds", "seconds"):
            row[key] = result.get(key)
    return row


def collect(study_dir: str | Path) -> pd.DataFrame:
    """The results table of ``study_dir`` (one row per ``runs/<run_id>/`` folder)."""
    study_dir = Path(study_dir)
    runs_dir = study_dir / "runs"
    if not runs_dir.is_dir():
        raise DislabError(f"{study_dir} has no runs/ folder: is it the --out folder of "
                          "`dislab study run`?")
    rows = [r for r in (_row(f) for f in sorted(runs_dir.iterdir()) if f.is_dir()) if r]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if frame["run_id"].duplicated().any():  # cannot happen: one folder per id
        raise DislabError(f"Duplicate run ids in {runs_dir}; remove the copied folders.")
    for key in ("train_seconds", "eval_seconds", "seconds"):
        if key not in frame:
            frame[key] = math.nan
    # Stable column order: identity, status, hparams, config, metrics, finals, times.
    first = ["run_id", "study", "data", "method", "seed", "eval_seed", "compat", "status",
             "error", "attempt"]
    groups = [sorted(c for c in frame.columns if c.startswith(p))
              for p in ("hp.", "config.", "metric.", "final.")]
    last = ["train_seconds", "eval_seconds", "seconds"]
    order = first + [c for g in groups for c in g] + last
    order += [c for c in frame.columns if c not in order]
    frame = frame[order]
    for column in frame.columns:
        if frame[column].dtype == object:
            values = frame[column].dropna()
            kinds = {type(v) for v in values}
            if kinds and kinds <= {int, float, bool} and kinds != {bool}:
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
            elif len(kinds) > 1:
                frame[column] = frame[column].map(lambda v: v if v is None else str(v))
    return frame.sort_values("run_id").reset_index(drop=True)


def write_table(study_dir: str | Path, out: str | Path | None = None) -> Path:
    """Collect ``study_dir`` and write the Parquet table atomically; returns its path
    (default ``study_dir/results.parquet``)."""
    frame = collect(study_dir)
    path = Path(out) if out else Path(study_dir) / TABLE_NAME
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The numeric ``metric.*`` columns of a results table."""
    return [c for c in frame.columns
            if c.startswith("metric.") and pd.api.types.is_numeric_dtype(frame[c])]
