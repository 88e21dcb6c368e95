"""Disentanglement, Completeness and Informativeness (Eastwood & Williams, 2018) as in
disentanglement_lib's ``dci.py``.

One gradient-boosted classifier per factor on all codes gives the importance matrix
``R (d, K)``. Disentanglement: per code ``1 - H_K(R_i. / sum R_i.)`` weighted by the code's
share of the total importance; completeness: per factor ``1 - H_d(R_.k / sum R_.k)`` weighted
by the factor's share. Informativeness is the classifiers' mean accuracy on the training and
on the test codes (disentanglement_lib stores accuracies in variables named ``*_err`` and
``*_loss`` in ``evaluation/metrics/dci.py``; here they are named for what they are).
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import Representation
from dislab.metrics.boosting import fit_booster, importances, predict_train
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import check_count, check_data, sample_codes, sklearn_seed

__all__ = [
    "dci",
    "importance_matrix",
    "disentanglement",
    "completeness",
    "disentanglement_per_code",
    "completeness_per_factor",
]


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy (log base ``base``) of each row of non-negative ``p``, normalised per row."""
    p = p / p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1) / np.log(base)


def disentanglement_per_code(r: np.ndarray) -> np.ndarray:
    """``1 - H_K`` of each code's importance distribution over the K factors (+1e-11, as dlib)."""
    r = np.asarray(r, dtype=np.float64)
    if r.shape[1] < 2:
        return np.ones(r.shape[0])
    return 1.0 - _entropy_rows(r + 1e-11, r.shape[1])


def completeness_per_factor(r: np.ndarray) -> np.ndarray:
    """``1 - H_d`` of each factor's importance distribution over the d codes (+1e-11)."""
    r = np.asarray(r, dtype=np.float64)
    if r.shape[0] < 2:
        return np.ones(r.shape[1])
    return 1.0 - _entropy_rows(r.T + 1e-11, r.shape[0])


def disentanglement(r: np.ndarray) -> float:
    """Importance-weighted disentanglement of ``R (d, K)`` (uniform weights if R = 0)."""
    r = np.asarray(r, dtype=np.float64)
    per_code = disentanglement_per_code(r)
    w = r if r.sum() > 0 else np.ones_like(r)
    return float(np.sum(per_code * w.sum(axis=1) / w.sum()))


def completeness(r: np.ndarray) -> float:
    """Importance-weighted completeness of ``R (d, K)`` (uniform weights if R = 0)."""
    r = np.asarray(r, dtype=np.float64)
    per_factor = completeness_per_factor(r)
    w = r if r.sum() > 0 else np.ones_like(r)
    return float(np.sum(per_factor * w.sum(axis=0) / w.sum()))


def importance_matrix(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    rng: np.random.Generator,
    booster: str = "fast",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``R (d, K)``, train accuracies ``(K,)`` and test accuracies ``(K,)``."""
    d, num_factors = codes.shape[1], factors.shape[1]
    r = np.zeros((d, num_factors))
    train_acc = np.zeros(num_factors)
    test_acc = np.zeros(num_factors)
    for k in range(num_factors):
        model = fit_booster(booster, codes, factors[:, k], sklearn_seed(rng))
        r[:, k] = importances(model, d)
        train_acc[k] = np.mean(predict_train(model, codes) == factors[:, k])
        test_acc[k] = np.mean(model.predict(codes_test) == factors_test[:, k])
    return r, train_acc, test_acc


@register_metric("dci", headline="disentanglement", label="DCI disentanglement",
                 keys=("disentanglement", "completeness", "informativeness_train",
                       "informativeness_test"))
def dci(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_test: int = 5_000,
    booster: str = "fast",
) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness (accuracy).

    Defaults from the study's ``dci.gin``: num_train 10000, num_test 5000
    (disentanglement_lib ``config/unsupervised_study_v1/metric_configs/dci.gin``).
    ``booster="reference"`` is disentanglement_lib's ``GradientBoostingClassifier()``;
    the default ``"fast"`` runs the same algorithm compiled with numba (see
    :mod:`dislab.metrics.boosting`), 10-20 times faster. Returns ``disentanglement``,
    ``completeness``, ``informativeness_train``, ``informativeness_test``.
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    num_test = check_count(num_test, 1, "num_test")
    codes, factors = sample_codes(data, representation, num_train, rng, split="train")
    codes_test, factors_test = sample_codes(data, representation, num_test, rng,
                                            split="test")
    r, train_acc, test_acc = importance_matrix(codes, factors, codes_test, factors_test, rng,
                                               booster)
    return {
        "disentanglement": disentanglement(r),
        "completeness": completeness(r),
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
    }
