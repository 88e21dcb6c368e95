"""Mutual Information Gap (Chen et al., 2018) with disentanglement_lib's histogram estimator.

Codes of ``num_train`` points are discretised per dimension (equal-width histogram,
``num_bins`` bins); ``m[i, k]`` is the discrete mutual information of code ``i`` and factor
``k`` and ``H_k`` the entropy of factor ``k`` in the sample. MIG is the mean over factors of
``(largest - second largest m[:, k]) / H_k``. The paper's own sampling estimator is
``dislab.metrics.chen_mig``.
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
    discretize,
    sample_codes,
)

__all__ = ["mig", "mig_from_matrix"]


def mig_from_matrix(m: np.ndarray, factor_entropy: np.ndarray) -> tuple[float, np.ndarray]:
    """MIG and per-factor normalised gaps from an MI matrix ``(d, K)`` and ``H (K,)``.

    Factors with zero entropy (one value in the sample) are left out; with a single code
    dimension the second-largest MI is 0.
    """
    keep = factor_entropy > 0
    if not keep.any():
        raise MetricError("every factor is constant in the sample; MIG is undefined.")
    top = np.sort(m, axis=0)[::-1]
    second = top[1] if m.shape[0] > 1 else np.zeros(m.shape[1])
    gaps = np.full(m.shape[1], np.nan)
    gaps[keep] = (top[0, keep] - second[keep]) / factor_entropy[keep]
    return float(np.mean(gaps[keep])), gaps


@register_metric("mig", headline="discrete_mig", label="MIG",
                 keys=("discrete_mig", "mig_factor_{factor}"))
def mig(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_bins: int = 20,
    discretizer: str = "histogram",
) -> dict[str, float]:
    """MIG, histogram estimator (disentanglement_lib ``mig.py``).

    Defaults from the study's ``mig.gin``: num_train 10000, histogram discretizer, 20 bins
    (disentanglement_lib ``config/unsupervised_study_v1/metric_configs/mig.gin``).
    ``discretizer="identity"`` uses the code values as labels, as in disentanglement_lib's unit
    tests. Returns ``discrete_mig`` and ``mig_factor_<name>`` (the normalised gap of each factor).
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    codes, factors = sample_codes(data, representation, num_train, rng)
    m = discrete_mutual_info(discretize(codes, discretizer, num_bins), factors)
    score, gaps = mig_from_matrix(m, discrete_entropy(factors))
    out = {"discrete_mig": score}
    for name, g in zip(data.factor_names, gaps):
        if np.isfinite(g):
            out[f"mig_factor_{name}"] = float(g)
    return out
