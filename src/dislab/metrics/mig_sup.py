"""MIG-sup (Li et al. 2020, *Progressive learning and disentanglement of hierarchical
representations*, ICLR), as in Zaidi et al.'s review *Measuring disentanglement: a review of
metrics* (reference code ubisoft/ubisoft-laforge-disentanglement-metrics,
``src/metrics/mig_sup.py``, ``mig_sup``).

MIG's gap taken the other way round: for each *code* ``c``, the gap between the largest and
the second largest ``I(f_k; z_c) / H(z_c)`` over the factors, averaged over the codes. It
penalises a code that carries several factors (modularity), where MIG penalises a factor
spread over several codes. Codes are discretised into ``num_bins`` equal-width bins between
their minimum and maximum (the reference's ``minmax_scale`` + ``get_bin_index``, default 10
bins); factors are used as class labels (continuous factors are discretised first, see
:func:`dislab.metrics.score`). A constant code (``H = 0``) has gap 0.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import Representation
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import (
    check_count,
    check_data,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    sample_codes,
)

__all__ = ["mig_sup", "mig_sup_from_matrix"]


def mig_sup_from_matrix(m: np.ndarray, code_entropy: np.ndarray) -> tuple[float, np.ndarray]:
    """MIG-sup and per-code gaps from an MI matrix ``m (d, K)`` and code entropies ``(d,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        normed = np.where(code_entropy[:, None] > 0, m / code_entropy[:, None], 0.0)
    top = -np.sort(-normed, axis=1)
    second = top[:, 1] if m.shape[1] > 1 else np.zeros(m.shape[0])
    gaps = top[:, 0] - second
    return float(np.mean(gaps)), gaps


@register_metric("mig_sup", default=False, label="MIG-sup", keys=("mig_sup", "mig_sup_z{z}"))
def mig_sup(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_bins: int = 10,
) -> dict[str, float]:
    """MIG-sup: per code, the gap between its two most informative factors (Zaidi et al.).

    ``num_bins=10`` is the reference code's ``nb_bins`` default; ``num_train`` points as the
    other sampled metrics. Returns ``mig_sup`` and ``mig_sup_z<j>`` (gap of each code).
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    codes, factors = sample_codes(data, representation, num_train, rng)
    binned = histogram_discretize(codes, int(num_bins))
    m = discrete_mutual_info(binned, factors)
    score, gaps = mig_sup_from_matrix(m, discrete_entropy(binned))
    out = {"mig_sup": score}
    out.update({f"mig_sup_z{j}": float(g) for j, g in enumerate(gaps)})
    return out
