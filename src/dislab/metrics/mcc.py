"""Mean correlation coefficient (MCC) of Hyvärinen & Morioka (2016, TCL; 2017, PCL), as
reported by the Slow-VAE (Klindt et al. 2021) and the identifiability papers.

The absolute correlations ``|C[k, j]|`` between factor ``k`` and code ``j`` (Pearson, or
Spearman = Pearson of the ranks) are matched one factor to one code by the Hungarian algorithm
(maximum total absolute correlation); MCC is the mean matched ``|C|`` over the factors.
Reference code: bethgelab/slow_disentanglement, ``mcc_metric/metric.py`` (``correlation``,
``_compute_mcc``, a disentanglement_lib metric on ``num_train`` sampled points) and
ilkhem/icebeem ``metrics/mcc.py`` (``mean_corr_coef_np``, ``scipy.optimize.linear_sum_assignment``
on ``-|C|``).

With more codes than factors the Slow-VAE code pads the factors with Gaussian-noise rows
before a square assignment; here the assignment is rectangular (the same when the noise rows
correlate with nothing), which needs no random numbers. With fewer codes than factors
(which the reference code cannot score) an unmatched factor counts 0. A constant factor or
code correlates 0 with everything.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.arrays import sample_codes_values
from dislab.metrics.base import MetricError, Representation
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import check_count, check_data

__all__ = ["mcc", "correlation_matrix", "mean_corr_coef"]

METHODS = ("pearson", "spearman")


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0)


def correlation_matrix(factors: np.ndarray, codes: np.ndarray, method: str = "pearson"
                       ) -> np.ndarray:
    """``C (K, d)``: correlation of each factor column with each code column.

    ``method``: ``"pearson"`` or ``"spearman"`` (average ranks for ties, as
    ``scipy.stats.spearmanr``). Constant columns give 0.
    """
    if method not in METHODS:
        raise MetricError(f"unknown correlation {method!r}; use 'pearson' or 'spearman'.")
    f = np.asarray(factors, dtype=np.float64)
    z = np.asarray(codes, dtype=np.float64)
    if method == "spearman":
        f, z = _ranks(f), _ranks(z)
    f = f - f.mean(axis=0)
    z = z - z.mean(axis=0)
    nf = np.sqrt((f * f).sum(axis=0))
    nz = np.sqrt((z * z).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (f.T @ z) / np.outer(nf, nz)
    c[~np.isfinite(c)] = 0.0
    return np.clip(c, -1.0, 1.0)


def mean_corr_coef(factors: np.ndarray, codes: np.ndarray, method: str = "pearson"
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """``(MCC, matched |C| per factor (K,), matched code per factor (K,), -1 = none)``."""
    from scipy.optimize import linear_sum_assignment

    c = np.abs(correlation_matrix(factors, codes, method))
    rows, cols = linear_sum_assignment(-c)
    k = c.shape[0]
    matched = np.zeros(k)
    code_of = np.full(k, -1, dtype=np.int64)
    matched[rows] = c[rows, cols]
    code_of[rows] = cols
    return float(matched.mean()), matched, code_of


@register_metric("mcc", default=False, label="MCC",
                 keys=("mcc", "mcc_spearman", "mcc_factor_{factor}", "mcc_code_factor_{factor}"))
def mcc(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
) -> dict[str, float]:
    """Mean correlation coefficient (Pearson and Spearman, Hungarian matching).

    ``num_train`` points (disentanglement_lib's convention; the Slow-VAE code's ``num_train``
    is set in its gin files). Factor values as given to :func:`dislab.metrics.score`
    (continuous factors undiscretised), grid positions on a grid data set. Returns ``mcc``
    (Pearson), ``mcc_spearman``, and per factor ``mcc_factor_<name>`` (matched Pearson
    ``|C|``) and ``mcc_code_factor_<name>`` (the matched code, -1 if none).
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    codes, _, values = sample_codes_values(data, representation, num_train, rng)
    pearson, matched, code_of = mean_corr_coef(values, codes, "pearson")
    spearman, _, _ = mean_corr_coef(values, codes, "spearman")
    out = {"mcc": pearson, "mcc_spearman": spearman}
    for name, m, j in zip(data.factor_names, matched, code_of):
        out[f"mcc_factor_{name}"] = float(m)
        out[f"mcc_code_factor_{name}"] = float(j)
    return out
