"""Run several metrics: :func:`evaluate` on any representation, :func:`evaluate_run` on a run.

Each metric gets its own random generator, derived from ``seed`` and the metric's name, so a
metric's numbers do not depend on which other metrics run with it, and the same seed gives
the same numbers. The supervised-probe metrics (DCI and both downstream tasks) share one
stream (``stream="dci"`` in their registry entries): for a seed they are scored on the same
10 000 training and 5 000 test points, which makes them comparable and lets the downstream
task's 10 000-point boosted trees reuse DCI's fits (:func:`dislab.metrics.boosting.fit_booster`
memoises fits).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import CodeTable, MetricError, Representation, check_codes
from dislab.metrics.infotheory import INNER_PROGRESS
from dislab.metrics.params import check_params
from dislab.metrics.registry import available, default_metrics, get_metric
from dislab.metrics.utils import check_data
from dislab.representation.table import _split

__all__ = ["evaluate", "evaluate_run", "run_metrics", "metric_rng", "resolve_metrics",
           "to_code_table"]

#: Keep the codes of a function or module representation in a lazy :class:`CodeTable` (each
#: grid point encoded once, when a metric first asks for it) on data sets of at most this many
#: points: the default suite looks up about 3.5 million codes.
AUTO_CACHE_MAX = 2_000_000


def metric_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of metric ``name`` for suite seed ``seed``: from the seed and the metric's
    random stream (its registry entry's ``stream``; metrics on one stream draw the same
    points)."""
    stream = get_metric(name).stream
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode())])


def resolve_metrics(metrics: str | Iterable[str] | None) -> list[str]:
    """Metric names from ``None`` (default suite), ``"all"``, ``"a,b"`` or a list."""
    if metrics is None or metrics == "default":
        return default_metrics()
    if metrics == "all":
        return available()
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    names = [m for m in names if m]
    if not names:
        raise MetricError("no metric names given; `dislab metrics` lists them.")
    for name in names:
        get_metric(name)  # unknown name -> MetricError listing the known ones
    return list(dict.fromkeys(names))


def _check_params(names: list[str], params: Mapping[str, Mapping[str, Any]] | None
                  ) -> dict[str, dict[str, Any]]:
    """Per-metric parameters checked (names, types, ranges; :mod:`dislab.metrics.params`)."""
    params = dict(params or {})
    for name in params:
        if name not in names:
            raise MetricError(f"parameters given for metric {name!r}, which is not run "
                              f"(running: {', '.join(names)}).")
    return {name: check_params(name, get_metric(name).defaults, dict(params.get(name, {})))
            for name in names}


def _has_posterior(rep: Representation) -> bool:
    return not isinstance(rep, CodeTable) or rep.logvar is not None


def _function_encoder(representation: Callable[[np.ndarray], Any], data: GroundTruthData,
                      batch_size: int = 1024, progress: bool = False
                      ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]:
    """``index (n,) -> (mean (n, d), logvar or None)`` by calling ``representation`` on the
    images of ``batch_size`` grid points at a time (torch tensors are detached)."""

    def encode(index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        means, logvars = [], []
        starts: Iterable[int] = range(0, len(index), batch_size)
        if progress and len(index) > batch_size:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"encoding {data.name}", unit="batch")
        for start in starts:
            m, lv = _split(representation(data.images_from_index(
                index[start:start + batch_size])))
            means.append(check_codes(m))
            logvars.append(lv)
        mean = np.concatenate(means)
        if mean.shape[0] != len(index):
            raise MetricError(f"representation returned {mean.shape[0]} codes for {len(index)} "
                              "observations; it must return one row per observation.")
        logvar = None if any(lv is None for lv in logvars) else np.concatenate(logvars)
        return mean, logvar

    return encode


def _module_encoder(module: Any, data: GroundTruthData, progress: bool = False
                    ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]:
    """The encoder of a torch module (its ``encode`` if it has one, else ``forward``): eval
    mode, no autograd, on the module's device (:func:`dislab.representation.encode_rows`)."""
    from dislab.representation import encode_rows

    def encode(index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        was_training = bool(module.training)
        try:
            return encode_rows(module, data, index, progress=progress and len(index) > 4096)
        finally:
            module.train(was_training)  # the caller's module is left as it was

    return encode


def _is_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def to_code_table(
    representation: Callable[[np.ndarray], Any], data: GroundTruthData, batch_size: int = 1024,
    progress: bool = False,
) -> CodeTable:
    """Encode the full grid of ``data`` with a representation function."""
    mean, logvar = _function_encoder(representation, data, batch_size, progress)(
        np.arange(len(data), dtype=np.int64))
    return CodeTable(mean, logvar)


def _clean(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    return value


def run_metrics(
    representation: Representation,
    data: GroundTruthData,
    metrics: str | Iterable[str] | None = None,
    seed: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
    cache: bool | str = "auto",
    compat: str = "default",
) -> dict[str, Any]:
    """Run metrics and return full records.

    Returns ``{"results": {name: {"values", "params", "seconds"}}, "skipped": {name: why},
    "seed", "seconds"}``. ``params`` overrides defaults per metric, e.g.
    ``{"dci": {"num_train": 1000}}`` (checked: :mod:`dislab.metrics.params`). ``cache``:
    ``"auto"`` scores a function or torch module through a lazy :class:`CodeTable` (the grid
    points the metrics ask for, each encoded once) on a data set of at most
    ``AUTO_CACHE_MAX`` points; ``True`` encodes the whole grid first; ``False`` encodes what
    each metric asks for, every time. ``compat``: a named mode of settings
    (:mod:`dislab.metrics.compat`; ``"dlib"``: disentanglement_lib's 2019 classifiers), under
    ``params``; the record says which (``"compat"``).
    """
    from dislab import tiny
    from dislab.metrics.compat import check_compat, compat_params

    data = check_data(data, needs_factors=False)
    names = resolve_metrics(metrics)
    compat = check_compat(compat)
    params = dict(params or {})
    _check_params(names, params)
    params = compat_params(compat, names, params)
    if not isinstance(representation, CodeTable) and not callable(representation):
        raise MetricError("representation must be a CodeTable, a torch module or a function "
                          f"images -> codes, got {type(representation).__name__}.")
    module = representation if _is_module(representation) else None
    if isinstance(representation, CodeTable):
        if representation.encoder is None:
            representation.grid_index(data)  # rows fit the data set (and agree with factors)
    elif cache is True or (cache == "auto" and len(data) <= AUTO_CACHE_MAX):
        # lazy: encode the rows the metrics ask for, each once
        encoder = (_module_encoder(module, data, progress) if module is not None
                   else _function_encoder(representation, data, progress=progress))
        representation = CodeTable.lazy(data, encoder)
        if cache is True:
            representation.lookup(data, np.arange(len(data)))
    elif module is not None:
        from dislab.representation import model_representation

        representation = model_representation(module)
    checked = _check_params(names, params)
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    t_all = time.perf_counter()
    iterator: Iterable[str] = names
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(names, desc="metrics", unit="metric")
        iterator = bar
    for name in iterator:
        spec = get_metric(name)
        if bar is not None:
            bar.set_postfix_str(name)
        if spec.needs_posterior and not _has_posterior(representation):
            skipped[name] = "needs the posterior q(z|x) (log-variances); the codes have none"
            continue
        if spec.needs_factors and data.num_factors == 0:
            skipped[name] = "needs factor labels; the data set has none (unlabelled)"
            continue
        if spec.needs_grid and not data.is_grid:
            skipped[name] = ("sets factors to every value (interventions), which needs a full "
                             "factor grid; the data set's rows are not one")
            continue
        kwargs = tiny.metric_params(spec.defaults, checked[name])  # DISLAB_TINY only
        t0 = time.perf_counter()
        token = INNER_PROGRESS.set(bool(progress))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                values = spec.fn(data, representation, metric_rng(seed, name), **kwargs)
        finally:
            INNER_PROGRESS.reset(token)
        results[name] = {
            "values": {k: float(v) for k, v in values.items()},
            "params": _clean({**spec.defaults, **kwargs}),
            "seconds": time.perf_counter() - t0,
            "compat": compat,
        }
    return {"results": results, "skipped": skipped, "seed": int(seed),
            "seconds": time.perf_counter() - t_all, "compat": compat}


def evaluate(
    representation: Representation,
    data: GroundTruthData,
    metrics: str | Iterable[str] | None = None,
    seed: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
    cache: bool | str = "auto",
    compat: str = "default",
) -> dict[str, dict[str, float]]:
    """Score a representation: ``{metric name: {value name: float}}``.

    ``representation``: a function ``images (n, *observation_shape) float32 -> codes (n, d)``
    (or ``(mean, logvar)``; numpy arrays or torch tensors), a torch module (its ``encode``,
    else ``forward``; run in eval mode without autograd on its device, its mode restored), or a
    :class:`CodeTable` (of the full grid in grid order, or carrying its rows' ``index`` or
    ``factors``).
    ``metrics``: names (list or ``"a,b"``), ``"all"``, or ``None`` for the default suite
    (``dislab.metrics.default_metrics()``). Metrics that need q(z|x) are skipped for codes
    without log-variances. See :func:`run_metrics` for ``params``, ``cache`` and ``compat``.
    """
    out = run_metrics(representation, data, metrics, seed, params, progress, cache, compat)
    return {name: r["values"] for name, r in out["results"].items()}


def _write_json_atomic(path: Path, obj: Any) -> None:
    from dislab.io import write_json

    write_json(path, _clean(obj), indent=2)


def evaluate_run(
    run_dir: str | os.PathLike[str],
    metrics: str | Iterable[str] | None = None,
    seed: int = 0,
    data: str | GroundTruthData | None = None,
    data_path: str | None = None,
    device: str = "auto",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = True,
    reencode: bool = False,
    batch_size: int = 128,
    compat: str = "default",
) -> dict[str, Any]:
    """Score a training run folder; write ``metrics.json`` and cache ``codes.npz`` there.

    The model and data set come from :func:`dislab.representation.open_run`: the data set is
    the one named in the run's config (or ``data`` / ``data_path``). Only the grid points the
    metrics look at are encoded (:meth:`CodeTable.lookup`), in batches of ``batch_size``; they
    are kept in ``codes.npz`` (a partial table while no metric needed the whole grid), which
    later evaluations reuse and extend while the weights and data set match (``reencode=True``
    starts it afresh; a truncated or damaged file is replaced). A run whose ``status.json``
    says ``failed`` is scored with a warning, recorded in ``metrics.json`` as
    ``run_status``. Results of metrics already in ``metrics.json`` and not re-run now are
    kept. ``compat``: the mode of :func:`run_metrics`, recorded at the top of
    ``metrics.json`` and in each metric's entry. Returns the written record.
    """
    from dislab import __version__
    from dislab.metrics.compat import check_compat
    from dislab.representation import open_run

    run_dir = Path(run_dir)
    names = resolve_metrics(metrics)
    compat = check_compat(compat)
    _check_params(names, params)  # before anything is loaded, encoded or written
    if batch_size < 1:
        raise MetricError(f"batch_size must be >= 1, got {batch_size}.")
    t0 = time.perf_counter()
    run_status = _run_status(run_dir)
    run = open_run(run_dir, data=data, data_path=data_path, device=device)
    table, reused_rows = run.lazy_codes(batch_size, progress, reencode=reencode)
    try:
        out = run_metrics(table, run.data, names, seed, params, progress,
                          compat=compat)
    finally:
        run.save_codes(table)  # keep what was encoded, also when a metric failed
    record_path = run_dir / "metrics.json"
    previous: dict[str, Any] = {}
    if record_path.exists():
        try:
            previous = json.loads(record_path.read_text()).get("metrics", {})
            if not isinstance(previous, dict):
                raise ValueError("'metrics' is not an object")
        except (OSError, ValueError, AttributeError) as e:
            previous = {}
            aside = record_path.with_name(
                f"metrics.json.unreadable-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
            os.replace(record_path, aside)
            warnings.warn(f"{record_path} was unreadable ({e}); kept as {aside.name} and "
                          "written afresh.", UserWarning, stacklevel=2)
    merged = {k: v for k, v in previous.items() if k not in out["results"]}
    merged.update({k: {**v, "seed": out["seed"]} for k, v in out["results"].items()})
    record = {
        "dislab_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "model": getattr(run.config, "model", None),
        "data": run.codes_key["data"],
        "seed": out["seed"],
        "compat": compat,
        "codes": {"path": "codes.npz", "reused": table.encoded == 0,
                  "rows_reused": reused_rows, "rows_encoded": table.encoded,
                  "rows": len(table), "grid_points": len(run.data),
                  "encode_seconds": run.encode_seconds,
                  "num_codes": table.num_codes, "has_logvar": table.logvar is not None},
        "metrics": merged,
        "skipped": out["skipped"],
        "metrics_seconds": out["seconds"],
        "total_seconds": time.perf_counter() - t0,
        "python": platform.python_version(),
    }
    if run_status is not None:
        record["run_status"] = run_status
    _write_json_atomic(record_path, record)
    return record


def _run_status(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``status.json`` when it says the run failed or was interrupted (with a
    warning), else None."""
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return None
    state = status.get("status") if isinstance(status, dict) else None
    if state not in ("failed", "interrupted"):
        return None
    error = status.get("error") or ("stopped before its last step" if state == "interrupted"
                                    else "no error recorded")
    warnings.warn(
        f"{run_dir}: training {state} at step {status.get('step')} ({error}); scoring the "
        f"last {'good' if state == 'failed' else 'saved'} weights. metrics.json records this "
        "as run_status.", UserWarning,
        stacklevel=3)
    return {"status": state, "step": status.get("step"), "error": error}
