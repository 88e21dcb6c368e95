"""Expand a study spec into runs, give each a stable id, and estimate the time it takes.

A **run** is a plain JSON-able dict (it travels to worker processes and Ray tasks as is)::

    {"run_id": "dsprites-beta_vae-beta=4-s0-1a2b3c4d", "study": "locatello2019",
     "data": "dsprites",              # the data set's label (table column)
     "method": "beta_vae", "hparams": {"beta": 4}, "seed": 0,
     "eval_seed": 0, "metrics": null,  # null = every metric
     "metric_params": {},              # metric -> parameter overrides
     "train": {...}}                  # the dislab.train.TrainConfig fields, without "out"

The id ends with the first 8 hex digits of the SHA-256 of the canonical JSON of everything
that determines the result (``train``, ``metrics``, ``metric_params``, ``eval_seed``), so the
same config always maps to the same folder and a changed config (e.g. other ``--steps``) to a
new one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from typing import Any

from dislab import tiny
from dislab.errors import DislabError
from dislab.study.spec import StudySpec
from dislab.threads import torch_threads, usable_cores

__all__ = [
    "expand",
    "run_id",
    "estimate",
    "format_seconds",
    "default_workers",
    "SECONDS_PER_STEP_FALLBACK",
    "EVAL_SECONDS_FALLBACK",
    "METRIC_SECONDS",
    "eval_seconds",
]

#: Used when a training step cannot be measured on this machine (or with --no-measure): the
#: seconds of one Adam step of the study's conv VAE at batch 64 on one CPU core (measured on
#: the 2-core development machine of dislab; docs/training.md has measured speeds).
SECONDS_PER_STEP_FALLBACK = 0.05
#: Seconds of each metric at its study defaults on a cached code table: docs/metrics.md,
#: "2026-11-29, idle 2-core AMD EPYC with AVX2 only" (the slower of the CPUs measured there).
#: ``downstream_boosted_trees`` reuses DCI's 10 000-point fits; without DCI it costs about
#: DCI's time. A metric not listed costs :data:`METRIC_SECONDS_OTHER`.
METRIC_SECONDS: dict[str, float] = {
    "dci": 42.8, "dotran": 20.5, "dotran_sampling": 20.5, "elbo_decomposition": 17.0,
    "downstream_logistic_regression": 14.0, "downstream_boosted_trees": 9.4,
    "mig_chen": 7.2, "beta_vae": 3.7, "modularity": 1.9, "sap": 1.7,
}
METRIC_SECONDS_OTHER = 0.5
#: Images encoded per second for the code table (same machine and page: the full
#: 737,280-image dSprites grid in 119.2 s).
ENCODE_IMAGES_PER_SECOND = 6183.0
#: Metrics that look up codes across the whole grid (interventions: millions of look-ups);
#: the others look at about :data:`ROWS_PER_METRIC` rows each.
WHOLE_GRID_METRICS = frozenset({"beta_vae", "factor_vae", "irs"})
ROWS_PER_METRIC = 25_000
#: Grid size assumed when the data set cannot be opened here (dSprites's).
GRID_SIZE_FALLBACK = 737_280
#: Kept for callers of older versions: evaluation seconds of the full default suite with a
#: whole-grid encoding (about 119 s + 119 s on the machine above).
EVAL_SECONDS_FALLBACK = 240.0

#: Observation shape for the timing measurement when the data set cannot tell its own without
#: being read (a user's data set given by a file): the study architecture's input.
SHAPE_FALLBACK = (3, 64, 64)


def default_workers() -> int:
    """Worker processes for the local backend: the usable cores of this machine."""
    return usable_cores()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _hp_text(hparams: dict[str, Any], shown: list[str]) -> str:
    parts = [f"{k}={hparams[k]}" for k in shown if k in hparams]
    text = "-".join(parts) or "default"
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", text)


def compat_train_steps(compat: str, method: str, steps: int) -> int:
    """Optimiser updates of a run of ``steps`` steps in mode ``compat``: ``"dlib"`` halves
    FactorVAE's, because disentanglement_lib's ``FactorVAE.model_fn``
    (``methods/unsupervised/vae.py``) passes the global step to both optimisers'
    ``minimize``, so each training iteration advances it by 2 and ``training_steps=300000``
    stops after 150 000 updates of each network."""
    if compat == "dlib" and method == "factor_vae":
        return max(1, steps // 2)
    return steps


def run_id(run: dict[str, Any], shown_hparams: list[str] | None = None) -> str:
    """The stable id of ``run``: ``<data>-<method>-<swept hparams>-s<seed>-<hash8>``."""
    identity = {"train": run["train"], "metrics": run["metrics"],
                "eval_seed": run["eval_seed"], "data": run["data"]}
    if run.get("metric_params"):
        identity["metric_params"] = run["metric_params"]
    if run.get("compat", "default") != "default":
        identity["compat"] = run["compat"]
    key = _canonical(identity)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    shown = sorted(run["hparams"]) if shown_hparams is None else shown_hparams
    label = re.sub(r"[^A-Za-z0-9_.=-]", "_", str(run["data"]))
    return f"{label}-{run['method']}-{_hp_text(run['hparams'], shown)}-s{run['seed']}-{digest}"


def expand(spec: StudySpec) -> list[dict[str, Any]]:
    """All runs of ``spec`` in a fixed order: data set, method, hyper-parameter point, seed."""
    runs: list[dict[str, Any]] = []
    for data in spec.data:
        for method in spec.methods:
            # Show in the id the hyper-parameters that vary within the method; with one point
            # (a one-value grid), the values it sets, so that the id never says "default"
            # for a run that does not use the defaults.
            varying = sorted({k for p in method.points for k in p
                              if len({repr(q.get(k)) for q in method.points}) > 1})
            if len(method.points) == 1:
                varying = sorted(method.points[0])
            for point in method.points:
                for seed in spec.seeds:
                    train = dict(spec.train)
                    train.update(
                        model=method.name,
                        data=data.name,
                        data_path=data.path,
                        data_options=dict(data.options),
                        latent_dim=spec.latent_dim,
                        hparams=dict(point),
                        steps=spec.steps,
                        batch_size=spec.batch_size,
                        seed=seed,
                    )
                    run = {
                        "study": spec.name,
                        "data": data.label,
                        "method": method.name,
                        "hparams": dict(point),
                        "seed": seed,
                        "eval_seed": seed if spec.eval_seed == "run" else int(spec.eval_seed),
                        "metrics": None if spec.metrics is None else list(spec.metrics),
                        "metric_params": {k: dict(v) for k, v in spec.metric_params.items()},
                        "train": train,
                    }
                    if spec.compat != "default":
                        run["compat"] = spec.compat
                        train["steps"] = compat_train_steps(spec.compat, method.name,
                                                            spec.steps)
                    run["run_id"] = run_id(run, varying)
                    runs.append(run)
    ids = [r["run_id"] for r in runs]
    assert len(set(ids)) == len(ids), "run ids must be unique"
    return runs


# -- time estimate --------------------------------------------------------------------------

def _measure_step_seconds(method: str, hparams: dict[str, Any], shape: tuple[int, ...],
                          latent_dim: int, batch_size: int, threads: int,
                          steps: int = 3) -> float:
    """Seconds per training step of ``method`` on random data, median of ``steps`` timed steps
    after one warm-up step, with ``threads`` torch threads (the threads a worker gets)."""
    import torch

    from dislab import models

    cls = models.get_class(method)
    with torch_threads(threads):
        torch.manual_seed(0)
        model = models.create(method, shape, latent_dim, **hparams)
        optimizers = model.configure_optimizers()
        if cls.batch_kind == "pairs":
            batch = torch.rand(batch_size, 2, *shape)
        else:
            batch = torch.rand(batch_size, *shape)
        times = []
        for step in range(steps + 1):
            t0 = time.perf_counter()
            model.training_step(batch, step, optimizers)
            times.append(time.perf_counter() - t0)
        times = sorted(times[1:])
        return times[len(times) // 2]


def _grid_size(train: dict[str, Any], cache: dict[str, int]) -> int:
    """Points of the run's data set grid (procedural sets are opened lazily, cheaply; a set
    read from a file is not opened here: :data:`GRID_SIZE_FALLBACK`)."""
    key = _canonical([train["data"], train.get("data_path"), train.get("data_options")])
    if key not in cache:
        size = GRID_SIZE_FALLBACK
        if not train.get("data_path"):
            try:
                import dislab.data as dd

                size = len(dd.load(train["data"], **(train.get("data_options") or {})))
            except (DislabError, OSError):  # an estimate; `study run` reports the error
                size = GRID_SIZE_FALLBACK
        cache[key] = size
    return cache[key]


def _observation_shape(train: dict[str, Any], cache: dict[str, tuple[int, ...]]
                       ) -> tuple[int, ...]:
    """The run's observation shape from the data registry
    (:func:`dislab.data.observation_shape`: no file read, nothing rendered), else
    :data:`SHAPE_FALLBACK`."""
    key = _canonical([train["data"], train.get("data_path"), train.get("data_options")])
    if key not in cache:
        import dislab.data as dd

        try:
            cache[key] = dd.observation_shape(train["data"], train.get("data_path"),
                                              **(train.get("data_options") or {}))
        except DislabError:  # an estimate; `study run` reports the error
            cache[key] = SHAPE_FALLBACK
    return cache[key]


def _metric_names(metrics: list[str] | None) -> list[str]:
    if metrics is not None:
        return list(metrics)
    from dislab.metrics.registry import default_metrics

    return default_metrics()


def eval_seconds(metrics: list[str] | None, grid_size: int) -> float:
    """Estimated seconds to evaluate one run with ``metrics`` (``None``: the default suite)
    on a data set of ``grid_size`` points: encoding the rows the metrics look at (the whole
    grid for :data:`WHOLE_GRID_METRICS`, else about :data:`ROWS_PER_METRIC` per metric) at
    :data:`ENCODE_IMAGES_PER_SECOND`, plus :data:`METRIC_SECONDS` of each metric."""
    names = _metric_names(metrics)
    if any(m in WHOLE_GRID_METRICS for m in names):
        rows = grid_size
    else:
        rows = min(grid_size, ROWS_PER_METRIC * len(names))
    seconds = rows / ENCODE_IMAGES_PER_SECOND
    for m in names:
        seconds += METRIC_SECONDS.get(m, METRIC_SECONDS_OTHER)
    if "downstream_boosted_trees" in names and "dci" not in names:
        seconds += METRIC_SECONDS["dci"]  # its fits are not shared with DCI then
    return seconds


def estimate(runs: list[dict[str, Any]], workers: int, threads: int = 1,
             measure: bool = True, pack: int | None = None) -> dict[str, Any]:
    """Estimated wall time of ``runs`` on this machine with ``workers`` parallel runs.

    Training time = steps × seconds per step, measured here for each method (3 steps on
    random images of the data set's shape, with the worker's ``threads``) when ``measure`` and
    the models are available, else :data:`SECONDS_PER_STEP_FALLBACK`; evaluation time =
    :func:`eval_seconds` of each run's metrics and data set. Returns ``{"seconds",
    "per_step": {method: s}, "source": "measured"|"constant", "eval_seconds_per_run"}``
    (the mean over the runs).

    ``pack``: runs grouped into packs of at most ``pack`` (:func:`dislab.study.packs.
    group_packs`), each pack one task of ``workers``. A pack's step is estimated as one
    model's step on ``K × batch`` images (a vectorised pack launches the kernels of one model
    on K times the data), measured the same way; the result then also holds ``"pack_per_step":
    {"<method> xK": s}`` and ``"tasks"``.
    """
    per_step: dict[str, float] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    source = "measured" if measure else "constant"
    for run in runs:
        method = run["method"]
        if method in per_step:
            continue
        seconds = None
        if measure:
            train = run["train"]
            shape = _observation_shape(train, shapes)
            try:
                batch, steps = train["batch_size"], 3
                if tiny.enabled():  # DISLAB_TINY: one timed step of a toy batch
                    batch, steps = min(batch, tiny.BATCH), 1
                seconds = _measure_step_seconds(method, run["hparams"], shape,
                                                train["latent_dim"], batch, threads, steps)
            except (DislabError, RuntimeError, ArithmeticError, MemoryError):  # use the constant
                seconds = None
                source = "constant"
        per_step[method] = SECONDS_PER_STEP_FALLBACK if seconds is None else seconds
    sizes: dict[str, int] = {}
    evals = [eval_seconds(r.get("metrics"), _grid_size(r["train"], sizes)) for r in runs]
    train_total = sum(r["train"]["steps"] * per_step[r["method"]] for r in runs)
    extra: dict[str, Any] = {}
    if pack and pack > 1:
        from dislab.study.packs import group_packs

        tasks = group_packs(runs, int(pack))
        pack_step: dict[str, float] = {}
        train_total = 0.0
        for task in tasks:
            if not isinstance(task, list):
                train_total += task["train"]["steps"] * per_step[task["method"]]
                continue
            first, k = task[0], len(task)
            label = f"{first['method']} x{k}"
            if label not in pack_step:
                seconds = None
                if measure:
                    train = first["train"]
                    shape = _observation_shape(train, shapes)
                    batch, steps = k * train["batch_size"], 3
                    if tiny.enabled():
                        batch, steps = k * min(train["batch_size"], tiny.BATCH), 1
                    try:
                        seconds = _measure_step_seconds(first["method"], first["hparams"], shape,
                                                        train["latent_dim"], batch, threads,
                                                        steps)
                    except (DislabError, RuntimeError, ArithmeticError, MemoryError):
                        seconds = None
                pack_step[label] = (k * per_step[first["method"]] if seconds is None
                                    else seconds)
            train_total += first["train"]["steps"] * pack_step[label]
        extra = {"pack_per_step": pack_step, "tasks": len(tasks)}
    total = train_total + sum(evals)
    waves = max(1, workers)
    return {
        "seconds": total / waves,
        "per_step": per_step,
        "source": source,
        "eval_seconds_per_run": sum(evals) / max(1, len(evals)),
        **extra,
    }


def format_seconds(seconds: float) -> str:
    """``93784`` -> ``'1d 2h 3m'``; short and human."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
