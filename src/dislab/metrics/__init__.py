"""Disentanglement metrics: one file each, pure functions over a representation.

Every metric is ``score(data, representation, rng, **params) -> dict[str, float]``; see
:mod:`dislab.metrics.base` for the shared contract, :func:`evaluate` for the suite,
:func:`evaluate_run` for a training run, :func:`encode_grid` for the code cache and
:func:`score` for codes and factors you already have as arrays.
"""

import importlib

from dislab.metrics.arrays import score, score_records
from dislab.metrics.base import (
    CodeTable,
    MetricError,
    Representation,
    check_codes,
    encode_factors,
    encode_index,
    posterior_index,
)
from dislab.metrics.cache import encode_grid, model_representation
from dislab.metrics.registry import available, default_metrics, get_metric, register_metric
from dislab.metrics.suite import evaluate, evaluate_run, run_metrics

# Each module registers its metric(s) on import.
_METRIC_MODULES = [
    "beta_vae",
    "factor_vae",
    "mig",
    "sap",
    "dci",
    "modularity",
    "irs",
    "unsupervised",
    "downstream",
    "dotran",
    "chen_mig",
    "elbo_decomposition",
    "mcc",
    "dci_es",
    "infomec",
    "mig_sup",
    "dcimig",
    "fairness",
    "reduced_downstream",
    "strong_downstream",
]
for _name in _METRIC_MODULES:
    try:
        importlib.import_module(f"dislab.metrics.{_name}")
    except ModuleNotFoundError as _e:  # a metric module not written yet
        if _e.name != f"dislab.metrics.{_name}":
            raise

__all__ = [
    "CodeTable",
    "MetricError",
    "Representation",
    "available",
    "check_codes",
    "default_metrics",
    "encode_factors",
    "encode_grid",
    "encode_index",
    "evaluate",
    "evaluate_run",
    "get_metric",
    "model_representation",
    "posterior_index",
    "register_metric",
    "run_metrics",
    "score",
    "score_records",
]
