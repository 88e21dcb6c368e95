"""DCIMIG (Sepliarskaia et al. 2019, *Evaluating disentangled representations*,
arXiv:1910.05587), as in Zaidi et al.'s review *Measuring disentanglement: a review of metrics*
(reference code ubisoft/ubisoft-laforge-disentanglement-metrics, ``src/metrics/dcimig.py``,
``dcimig``).

For each code ``c``: the gap between its largest and second largest ``I(f_k; z_c)`` over the
factors, credited to the factor with the largest (the first on ties, as ``np.argmax``); each
factor keeps the largest gap credited to it; DCIMIG is the sum of those over the sum of the
factor entropies. Discretisation as :mod:`dislab.metrics.mig_sup` (codes: ``num_bins``
equal-width bins, default 10; factors: class labels).
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import MetricError, Representation
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import (
    check_count,
    check_data,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    sample_codes,
)

__all__ = ["dcimig", "dcimig_from_matrix"]


def dcimig_from_matrix(m: np.ndarray, factor_entropy: np.ndarray) -> tuple[float, np.ndarray]:
    """DCIMIG and each factor's best credited gap, from ``m (d, K)`` and ``H (K,)`` (nats)."""
    if factor_entropy.sum() <= 0:
        raise MetricError("every factor is constant in the sample; DCIMIG is undefined.")
    d, k = m.shape
    top = -np.sort(-m, axis=1)
    second = top[:, 1] if k > 1 else np.zeros(d)
    credit = np.zeros((d, k))
    credit[np.arange(d), np.argmax(m, axis=1)] = top[:, 0] - second
    best = credit.max(axis=0)
    return float(best.sum() / factor_entropy.sum()), best


@register_metric("dcimig", default=False, label="DCIMIG", keys=("dcimig", "dcimig_factor_{factor}"))
def dcimig(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_bins: int = 10,
) -> dict[str, float]:
    """DCIMIG: per-code MI gaps credited to factors, over the total factor entropy.

    ``num_bins=10`` is the reference code's ``nb_bins`` default. Returns ``dcimig`` and
    ``dcimig_factor_<name>`` (the factor's best gap over its entropy).
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    codes, factors = sample_codes(data, representation, num_train, rng)
    m = discrete_mutual_info(histogram_discretize(codes, int(num_bins)), factors)
    h = discrete_entropy(factors)
    score, best = dcimig_from_matrix(m, h)
    out = {"dcimig": score}
    for name, b, hk in zip(data.factor_names, best, h):
        if hk > 0:
            out[f"dcimig_factor_{name}"] = float(b / hk)
    return out
