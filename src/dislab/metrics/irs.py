"""Interventional Robustness Score (Suter et al., 2019) as in disentanglement_lib's ``irs.py``.

For each factor ``k`` and each of its (discretised) values, the ``diff_quantile`` quantile of
``|z - E[z | v_k]|`` over the points with that value, averaged over the values, is the
deviation of each code under interventions on the other factors; normalised by the code's
largest deviation from its mean, ``1 - deviation`` is the IRS matrix ``(d, K)``. Each code's
score is its best factor; the final score averages them weighted by the codes' largest
deviations.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import MetricError, Representation
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import check_count, check_data, discretize, sample_codes

__all__ = ["irs", "irs_matrix", "drop_constant_dims"]


def drop_constant_dims(codes: np.ndarray) -> np.ndarray:
    """Columns of ``codes (n, d)`` whose variance is not zero."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise MetricError(f"expected a 2-D code matrix, got shape {codes.shape}.")
    return codes[:, codes.var(axis=0) > 0.0]


def irs_matrix(factors: np.ndarray, codes: np.ndarray, diff_quantile: float = 0.99
               ) -> dict[str, np.ndarray | float]:
    """IRS of discrete ``factors (n, K)`` and ``codes (n, d)``.

    Returns ``matrix (d, K)``, ``per_code (d,)``, ``max_deviations (d,)`` and ``score``.
    """
    max_dev = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    cum_dev = np.zeros((codes.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        values = np.unique(factors[:, k])
        for v in values:
            group = codes[factors[:, k] == v]
            diffs = np.abs(group - group.mean(axis=0))
            cum_dev[:, k] += np.percentile(diffs, q=diff_quantile * 100, axis=0)
        cum_dev[:, k] /= len(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        matrix = 1.0 - cum_dev / max_dev[:, None]
    per_code = matrix.max(axis=1)
    if max_dev.sum() > 0:
        score = float(np.average(per_code, weights=max_dev))
    else:
        score = float(np.mean(per_code))
    return {"matrix": matrix, "per_code": per_code, "max_deviations": max_dev, "score": score}


@register_metric("irs", headline="IRS", label="IRS", keys=("IRS", "num_active_dims"))
def irs(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    diff_quantile: float = 0.99,
    num_bins: int = 20,
    discretizer: str = "histogram",
) -> dict[str, float]:
    """Interventional robustness score: how little a factor's most informative latents move
    when the other factors change (Suter et al. 2019).

    Not in the study; defaults from disentanglement_lib's ``config/sample/irs/irs.gin`` (num_train
    10000, histogram discretizer of the *factors* with 20 bins) and the function default
    ``diff_quantile=0.99`` (``evaluation/metrics/irs.py``, ``compute_irs``). Constant code
    dimensions are dropped; none left gives 0. ``num_active_dims`` counts the remaining dimensions
    (dlib sums the code values in ``compute_irs``). Returns ``IRS`` and ``num_active_dims``.
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    if not 0.0 <= diff_quantile <= 1.0:
        raise MetricError(f"diff_quantile must be in [0, 1], got {diff_quantile}.")
    codes, factors = sample_codes(data, representation, num_train, rng)
    active = drop_constant_dims(codes)
    if active.shape[1] == 0:
        return {"IRS": 0.0, "num_active_dims": 0.0}
    result = irs_matrix(discretize(factors, discretizer, num_bins), active, diff_quantile)
    return {"IRS": float(result["score"]), "num_active_dims": float(active.shape[1])}
