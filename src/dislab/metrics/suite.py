"""Run several metrics: :func:`evaluate` on any representation, :func:`evaluate_run` on a run.

Each metric gets its own random generator, derived from ``seed`` and the metric's name, so a
metric's numbers do not depend on which other metrics run with it, and the same seed gives
the same numbers. The supervised-probe metrics (DCI and both downstream tasks) share one
stream (:data:`RNG_STREAMS`): for a seed they are scored on the same 10 000 training and
5 000 test points, which makes them comparable and lets the downstream task's 10 000-point
boosted trees reuse DCI's fits (:func:`dislab.metrics.boosting.fit_booster` memoises fits).
"""

from __future__ import annotations

import json
import os
import platform
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
from dislab.metrics.registry import default_metrics, get_metric
from dislab.metrics.utils import check_data

__all__ = ["evaluate", "evaluate_run", "run_metrics", "metric_rng", "resolve_metrics",
           "to_code_table"]

#: Encode the whole grid first when a function representation is scored on a data set with at
#: most this many points: the default suite looks up about 3.5 million codes, so encoding the
#: grid once is cheaper for every data set of the study.
AUTO_CACHE_MAX = 2_000_000


#: Metrics that draw from another metric's random stream (same seed -> same sample points).
RNG_STREAMS = {"downstream_boosted_trees": "dci", "downstream_logistic_regression": "dci"}


def metric_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of metric ``name`` for suite seed ``seed`` (see :data:`RNG_STREAMS`)."""
    stream = RNG_STREAMS.get(name, name)
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode())])


def resolve_metrics(metrics: str | Iterable[str] | None) -> list[str]:
    """Metric names from ``None`` (default suite), ``"all"``, ``"a,b"`` or a list."""
    from dislab.metrics.registry import available

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


def _has_posterior(rep: Representation) -> bool:
    return not isinstance(rep, CodeTable) or rep.logvar is not None


def to_code_table(
    representation: Callable[[np.ndarray], Any], data: GroundTruthData, batch_size: int = 1024,
    progress: bool = False,
) -> CodeTable:
    """Encode the full grid of ``data`` with a representation function."""
    n = len(data)
    means, logvars = [], []
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"encoding {data.name}", unit="batch")
    for start in starts:
        out = representation(data.images_from_index(np.arange(start, min(start + batch_size, n))))
        if isinstance(out, tuple):
            means.append(np.asarray(out[0]))
            logvars.append(np.asarray(out[1]) if len(out) > 1 else None)
        else:
            means.append(np.asarray(out))
            logvars.append(None)
    mean = np.concatenate([check_codes(m[:, None] if m.ndim == 1 else m) for m in means])
    if mean.shape[0] != n:
        raise MetricError(f"representation returned {mean.shape[0]} codes for {n} observations; "
                          "it must return one row per observation.")
    check_codes(mean)
    logvar = None if any(lv is None for lv in logvars) else np.concatenate(logvars)
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
    ``{"dci": {"num_train": 1000}}``. ``cache``: ``"auto"`` encodes the whole grid once
    for a function representation on a data set of at most ``AUTO_CACHE_MAX`` points;
    ``True``/``False`` force it on/off. ``compat``: a named mode of settings
    (:mod:`dislab.metrics.compat`; ``"dlib"``: disentanglement_lib's 2019 classifiers), under
    ``params``; the record says which (``"compat"``).
    """
    from dislab.metrics.compat import check_compat, compat_params

    data = check_data(data, needs_factors=False)
    names = resolve_metrics(metrics)
    compat = check_compat(compat)
    params = dict(params or {})
    for name in params:
        if name not in names:
            raise MetricError(f"parameters given for metric {name!r}, which is not run "
                              f"(running: {', '.join(names)}).")
    params = compat_params(compat, names, params)
    if not isinstance(representation, CodeTable) and not callable(representation):
        raise MetricError("representation must be a CodeTable or a function images -> codes, "
                          f"got {type(representation).__name__}.")
    if not isinstance(representation, CodeTable):
        if cache is True or (cache == "auto" and len(data) <= AUTO_CACHE_MAX):
            representation = to_code_table(representation, data, progress=progress)
    elif len(representation) != len(data):
        raise MetricError(
            f"CodeTable has {len(representation)} rows but data set {data.name!r} has "
            f"{len(data)} grid points; a code table must hold the codes of the full grid of "
            "the same data set (re-encode it with dislab.metrics.encode_grid)."
        )
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
        kwargs = dict(params.get(name, {}))
        unknown = set(kwargs) - set(spec.defaults)
        if unknown:
            raise MetricError(f"metric {name!r} has no parameter(s) {sorted(unknown)}; "
                              f"its parameters: {sorted(spec.defaults)}.")
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
    (or ``(mean, logvar)``), or a :class:`CodeTable` of the full grid of ``data``.
    ``metrics``: names (list or ``"a,b"``), ``"all"``, or ``None`` for the default suite
    (``dislab.metrics.default_metrics()``). Metrics that need q(z|x) are skipped for codes
    without log-variances. See :func:`run_metrics` for ``params``, ``cache`` and ``compat``.
    """
    out = run_metrics(representation, data, metrics, seed, params, progress, cache, compat)
    return {name: r["values"] for name, r in out["results"].items()}


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_clean(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")
    os.replace(tmp, path)


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

    The model is loaded with :func:`dislab.train.load_run` and the data set named in the
    run's config (or ``data`` / ``data_path``) is encoded once into ``codes.npz`` (reused
    while the weights and data set match; ``reencode=True`` forces it). Results of metrics
    already in ``metrics.json`` and not re-run now are kept. ``compat``: the mode of
    :func:`run_metrics`, recorded at the top of ``metrics.json`` and in each metric's entry.
    Returns the written record.
    """
    from dislab import __version__
    from dislab.data import load as load_data
    from dislab.metrics.cache import encode_grid, file_sha256, load_or_encode
    from dislab.metrics.compat import check_compat
    from dislab.train import load_run  # lazy: metrics must not import train at module level

    run_dir = Path(run_dir)
    names = resolve_metrics(metrics)
    compat = check_compat(compat)
    t0 = time.perf_counter()
    model, config = load_run(run_dir, device=device)
    if isinstance(data, GroundTruthData):
        dataset = data
    else:
        name = data or config.data
        path = data_path if data is not None or data_path is not None else config.data_path
        options = dict(config.data_options) if data is None else {}
        dataset = load_data(name, path=path, **options)
    meta = {
        "data": dataset.describe(),
        "data_path": str(data_path or (config.data_path if data is None else "") or ""),
        "weights_sha256": file_sha256(run_dir / "model.safetensors"),
    }
    t_enc = time.perf_counter()
    table, reused = load_or_encode(
        run_dir / "codes.npz", dataset, meta,
        lambda: encode_grid(model, dataset, batch_size=batch_size, progress=progress),
        force=reencode,
    )
    encode_seconds = time.perf_counter() - t_enc
    out = run_metrics(table, dataset, names, seed, params, progress, compat=compat)
    record_path = run_dir / "metrics.json"
    previous: dict[str, Any] = {}
    if record_path.exists():
        try:
            previous = json.loads(record_path.read_text()).get("metrics", {})
        except (OSError, ValueError, AttributeError):
            previous = {}
    merged = {k: v for k, v in previous.items() if k not in out["results"]}
    merged.update({k: {**v, "seed": out["seed"]} for k, v in out["results"].items()})
    record = {
        "dislab_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "model": getattr(config, "model", None),
        "data": meta["data"],
        "seed": out["seed"],
        "compat": compat,
        "codes": {"path": "codes.npz", "reused": reused, "encode_seconds": encode_seconds,
                  "num_codes": table.num_codes, "has_logvar": table.logvar is not None},
        "metrics": merged,
        "skipped": out["skipped"],
        "metrics_seconds": out["seconds"],
        "total_seconds": time.perf_counter() - t0,
        "python": platform.python_version(),
    }
    _write_json_atomic(record_path, record)
    return record
