"""Disentanglement metrics: one file each, pure functions over a representation.

Every metric is ``score(data, representation, rng, **params) -> dict[str, float]``; see
:mod:`dislab.metrics.base` for the shared contract and :func:`evaluate` for the suite.
"""

from dislab.metrics.base import (
    CodeTable,
    MetricError,
    Representation,
    check_codes,
    encode_factors,
    encode_index,
    posterior_index,
)
from dislab.metrics.registry import available, default_metrics, get_metric, register_metric

__all__ = [
    "CodeTable",
    "MetricError",
    "Representation",
    "available",
    "check_codes",
    "default_metrics",
    "encode_factors",
    "encode_index",
    "get_metric",
    "posterior_index",
    "register_metric",
]
