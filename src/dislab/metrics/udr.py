"""Unsupervised Disentanglement Ranking (UDR) of Duan et al. 2020, *Unsupervised Model Selection
for Variational Disentangled Representation Learning* (ICLR); reference implementation
disentanglement_lib ``evaluation/udr/metrics/udr.py`` (``compute_udr_sklearn``,
``relative_strength_disentanglement``, ``lasso_correlation_matrix``,
``spearman_correlation_conv``).

UDR needs no factors but several models: a model whose latents are matched one-to-one by the
latents of other models (trained with the same hyper-parameters, other seeds) is taken to be
disentangled. For each ordered pair of models ``(i, j)`` on the same ``num_data_points`` inputs:

* each model's posterior means are standardised and latents whose mean KL to the prior is at
  most 0.01 are zeroed; the similarity matrix ``R (d_i, d_j)`` is ``|coef|`` of a Lasso
  regression (``alpha=0.1``) of model ``j``'s latents on model ``i``'s (``"lasso"``, default)
  or ``|Spearman correlation|`` of each pair of latents (``"spearman"``);
* with ``filter_low_kl`` the rows and columns of latents with KL at most
  ``kl_filter_threshold`` are dropped;
* ``UDR_ij = (mean_a max_b R_ab^2 / sum_b R_ab + mean_b max_a R_ab^2 / sum_a R_ab) / 2``
  (0/0 counts as 0);
* the UDR of model ``i`` is the median of ``UDR_ji`` over the other models ``j``.

Defaults from disentanglement_lib's ``config/tests/methods/udr/udr.gin``: 1000 points, Lasso,
KL filter on with threshold 0.01. :func:`udr_scores` works on arrays; ``dislab analyze udr
RUN_DIR...`` (:func:`dislab.viz.analyze.analyze_udr`) scores trained runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dislab.metrics.base import MetricError

__all__ = ["udr_scores", "relative_strength_disentanglement", "lasso_similarity",
           "spearman_similarity", "mean_kl", "CORRELATIONS"]

CORRELATIONS = ("lasso", "spearman")

#: KL (nats) at or below which a latent is zeroed before the similarity matrix (fixed in
#: disentanglement_lib's ``compute_udr_sklearn``, independent of ``kl_filter_threshold``).
ZERO_KL = 0.01


def relative_strength_disentanglement(r: np.ndarray) -> float:
    """``(mean over columns of max^2 / sum + mean over rows of max^2 / sum) / 2``; 0/0 -> 0."""
    r = np.asarray(r, dtype=np.float64)
    if r.size == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = np.nan_to_num(r.max(axis=0) ** 2 / r.sum(axis=0))
        rows = np.nan_to_num(r.max(axis=1) ** 2 / r.sum(axis=1))
    return float((cols.mean() + rows.mean()) / 2.0)


def lasso_similarity(a: np.ndarray, b: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """``|coef| (d_a, d_b)`` of a multi-output Lasso regression of ``b`` on ``a``."""
    from sklearn.linear_model import Lasso

    coef = Lasso(alpha=alpha).fit(a, b).coef_
    return np.abs(np.atleast_2d(coef)).reshape(b.shape[1], a.shape[1]).T


def spearman_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|Spearman correlation| (d_a, d_b)`` of every pair of columns (constant columns: 0)."""
    from dislab.metrics.mcc import correlation_matrix

    return np.abs(correlation_matrix(a, b, "spearman"))


def mean_kl(mean: np.ndarray, logvar: np.ndarray | None) -> np.ndarray:
    """Mean KL ``(d,)`` of ``N(mean, exp(logvar))`` to ``N(0, 1)`` per latent; without
    log-variances every latent counts as informative (``inf``)."""
    if logvar is None:
        return np.full(mean.shape[1], np.inf)
    m = mean.astype(np.float64)
    lv = logvar.astype(np.float64)
    return 0.5 * (m**2 + np.exp(lv) - lv - 1.0).mean(axis=0)


def udr_scores(
    means: Sequence[np.ndarray],
    kls: Sequence[np.ndarray] | None = None,
    correlation: str = "lasso",
    filter_low_kl: bool = True,
    kl_filter_threshold: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """``(UDR per model (M,), pairwise scores (M, M))`` of the models' posterior means.

    ``means``: one ``(n, d_m)`` array per model, row ``k`` of each for the same input;
    ``kls``: each model's mean KL per latent ``(d_m,)`` (see :func:`mean_kl`; ``None``: all
    latents informative). ``pairwise[i, j]`` is ``UDR_ij``; the diagonal is 0.
    """
    if correlation not in CORRELATIONS:
        raise MetricError(f"unknown correlation {correlation!r}; use 'lasso' or 'spearman'.")
    m = len(means)
    if m < 2:
        raise MetricError("UDR compares models with each other: give at least two (the same "
                          "hyper-parameters, different seeds).")
    n = means[0].shape[0]
    if any(x.ndim != 2 or x.shape[0] != n for x in means):
        raise MetricError("every model's codes must be (n, d) for the same n inputs.")
    if kls is None:
        kls = [np.full(x.shape[1], np.inf) for x in means]
    reps, masks = [], []
    for x, kl in zip(means, kls):
        x = x.astype(np.float64)
        std = x.std(axis=0)
        z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
        reps.append(z * (np.asarray(kl) > ZERO_KL))
        masks.append(np.asarray(kl) > kl_filter_threshold)
    pair = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            if correlation == "lasso":
                r = lasso_similarity(reps[i], reps[j])
            else:
                r = spearman_similarity(reps[i], reps[j])
            if filter_low_kl:
                r = r[masks[i]][:, masks[j]]
            pair[i, j] = relative_strength_disentanglement(r)
    scores = np.array([np.median(np.delete(pair[:, i], i)) for i in range(m)])
    return scores, pair
