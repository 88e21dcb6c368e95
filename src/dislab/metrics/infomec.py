"""InfoMEC: InfoM (modularity), InfoE (explicitness), InfoC (compactness) of Hsu et al. 2023,
*Disentanglement via Latent Quantization* (NeurIPS); reference code kylehkhsu/latent_quantization,
``disentangle/metrics/infomec.py`` (``compute_infomec``, ``compute_nmi``, ``compute_infoe``).

* ``NMI[k, j] = I(s_k; z_j) / H(s_k)`` for each source (factor, as class labels) and latent.
  Continuous latents: standardised, ``I`` by the k-nearest-neighbour estimator of
  ``sklearn.feature_selection.mutual_info_classif`` with ``n_neighbors=10``; discrete latents
  (``discrete_latents=True``): the plug-in ``mutual_info_score``.
* Active latents: range above 1/20 of the largest range (continuous) or above 0 (discrete).
* ``InfoM = (mean_j max_k NMI / sum_k NMI - 1/K) / (1 - 1/K)`` over active latents;
  ``InfoC = (mean_k max_j NMI / sum_j NMI - 1/L) / (1 - 1/L)`` over sources, ``L`` the number
  of active latents.
* ``InfoE``: per source, ``(H_null - H_pred) / H_null`` with ``H_pred`` the training log-loss
  of an unpenalised multinomial logistic regression (lbfgs, 100 iterations, balanced class
  weights) on all standardised latents (one-hot if discrete) and ``H_null`` that of the same
  model on all-zero inputs; averaged over sources.

Where the reference code divides 0 by 0 (a latent or source with no information at all) the
ratio is taken as uniform (``1/K`` or ``1/L``: it adds nothing after the normalisation); with
one source InfoM, with one active latent InfoC, is 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import MetricError, Representation
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import (
    check_count,
    check_data,
    discrete_mutual_info,
    entropy,
    quiet_sklearn,
    sample_codes,
    sklearn_seed,
)

__all__ = ["infomec", "normalized_mutual_information", "active_latents", "infom_infoc",
           "infoe"]


def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def normalized_mutual_information(sources: np.ndarray, latents: np.ndarray,
                                  discrete_latents: bool = False, seed: int = 0) -> np.ndarray:
    """``NMI (K, d)``: ``I(s_k; z_j) / H(s_k)`` (0 for a constant source)."""
    sources = np.asarray(sources)
    latents = np.asarray(latents)
    k = sources.shape[1]
    h = np.array([entropy(sources[:, i]) for i in range(k)])
    if discrete_latents:
        mi = discrete_mutual_info(latents, sources).T
    else:
        from sklearn.feature_selection import mutual_info_classif

        z = _standardise(latents.astype(np.float64))
        mi = np.zeros((k, latents.shape[1]))
        for i in range(k):
            if h[i] > 0:
                mi[i] = mutual_info_classif(z, sources[:, i], discrete_features=False,
                                            n_neighbors=10, random_state=seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(h[:, None] > 0, mi / h[:, None], 0.0)


def active_latents(latents: np.ndarray, discrete_latents: bool = False) -> np.ndarray:
    """Boolean ``(d,)``: latents whose range exceeds 1/20 of the largest (any range if discrete)."""
    ranges = np.ptp(np.asarray(latents, dtype=np.float64), axis=0)
    if discrete_latents:
        return ranges > 0
    return ranges > ranges.max() / 20.0


def _concentration(nmi: np.ndarray, axis: int) -> float:
    """``(mean of max/sum along axis - 1/n) / (1 - 1/n)``, ``n`` = length along ``axis``."""
    n = nmi.shape[axis]
    if n < 2:
        return 1.0
    total = nmi.sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total > 0, nmi.max(axis=axis) / total, 1.0 / n)
    return float((np.mean(ratio) - 1.0 / n) / (1.0 - 1.0 / n))


def infom_infoc(nmi: np.ndarray, active: np.ndarray) -> tuple[float, float]:
    """``(InfoM, InfoC)`` of ``NMI (K, d)`` restricted to the ``active (d,)`` latents."""
    pruned = nmi[:, active]
    if pruned.shape[1] == 0:
        raise MetricError("no active latent (every code is constant); InfoMEC is undefined.")
    return _concentration(pruned, 0), _concentration(pruned, 1)


def _log_loss_fit(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    model = LogisticRegression(penalty=None, tol=1e-4, fit_intercept=True,
                               class_weight="balanced", solver="lbfgs", max_iter=100)
    model.fit(x, y)
    return float(log_loss(y, model.predict_proba(x), labels=model.classes_))


def infoe(sources: np.ndarray, latents: np.ndarray, discrete_latents: bool = False
          ) -> tuple[float, np.ndarray]:
    """InfoE and the per-source normalised predictive information ``(K,)``."""
    if discrete_latents:
        from sklearn.preprocessing import OneHotEncoder

        x: Any = OneHotEncoder().fit_transform(latents)
    else:
        x = _standardise(np.asarray(latents, dtype=np.float64))
    null = np.zeros((latents.shape[0], 1))
    per = []
    with quiet_sklearn():
        for k in range(sources.shape[1]):
            y = sources[:, k]
            if len(np.unique(y)) < 2:
                continue  # a constant source has no information to predict
            h_null = _log_loss_fit(null, y)
            per.append((h_null - _log_loss_fit(x, y)) / h_null if h_null > 0 else 0.0)
    if not per:
        raise MetricError("every factor is constant in the sample; InfoE is undefined.")
    return float(np.mean(per)), np.asarray(per)


@register_metric("infomec", default=False, headline="infom", label="InfoM",
                 keys=("infom", "infoc", "infoe", "nmi_{factor}_z{z}", "num_active_latents"))
def infomec(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    discrete_latents: bool = False,
) -> dict[str, float]:
    """InfoMEC: InfoM, InfoE, InfoC (Hsu et al. 2023).

    Defaults from the reference ``compute_infomec``: ``n_neighbors=10`` for the MI of
    continuous latents, active latents above 1/20 of the largest range, unpenalised
    multinomial logistic regression for InfoE. ``num_train`` points (the reference scores its
    whole evaluation set). Returns ``infom``, ``infoe``, ``infoc``, ``num_active_latents`` and
    ``nmi_<factor>_z<j>``.
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    codes, factors = sample_codes(data, representation, num_train, rng)
    nmi = normalized_mutual_information(factors, codes, discrete_latents, sklearn_seed(rng))
    active = active_latents(codes, discrete_latents)
    m, c = infom_infoc(nmi, active)
    e, _ = infoe(factors, codes, discrete_latents)
    out = {"infom": m, "infoe": e, "infoc": c, "num_active_latents": float(active.sum())}
    for k, name in enumerate(data.factor_names):
        for j in range(nmi.shape[1]):
            out[f"nmi_{name}_z{j}"] = float(nmi[k, j])
    return out
