"""Modularity and explicitness (Ridgeway & Mozer, 2018) as in disentanglement_lib's
``modularity_explicitness.py``.

Modularity: from the histogram mutual-information matrix ``m (d, K)``, each code's deviation
from an ideal modular code ``delta_i = (sum_k m_ik^2 - max_k m_ik^2) / (max_k m_ik^2 (K-1))``;
score ``1 - delta_i`` (0 for a code with no information), averaged over codes.
Explicitness: per factor, a logistic regression on all (z-scored) codes; the macro one-vs-rest
ROC AUC of its class probabilities on train and test, averaged over factors.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import Representation
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import (
    check_count,
    check_data,
    discrete_mutual_info,
    discretize,
    fit_or_constant,
    logistic_regression,
    normalize_data,
    sample_codes,
    sklearn_seed,
)

__all__ = ["modularity_explicitness", "modularity", "macro_auc"]


def modularity(mutual_information: np.ndarray) -> float:
    """Modularity of an MI matrix ``(d, K)`` (codes x factors)."""
    sq = np.square(np.asarray(mutual_information, dtype=np.float64))
    if sq.shape[1] < 2:
        return 1.0 if np.any(sq > 0) else 0.0  # one factor: every informative code is modular
    max_sq = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sq.sum(axis=1) - max_sq) / (max_sq * (sq.shape[1] - 1.0))
    score = np.where(max_sq == 0.0, 0.0, 1.0 - delta)
    return float(np.mean(score))


def macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes that have positives and negatives in ``y``.

    disentanglement_lib refits a ``MultiLabelBinarizer`` on each split, which fails when the
    test split misses a class; here the columns follow the classifier's ``classes``.
    """
    from sklearn.metrics import roc_auc_score

    aucs = []
    for c, cls in enumerate(classes):
        pos = y == cls
        if pos.all() or not pos.any():
            continue
        aucs.append(roc_auc_score(pos, proba[:, c]))
    return float(np.mean(aucs)) if aucs else 0.5


@register_metric("modularity", headline="modularity_score", label="Modularity",
                 keys=("modularity_score", "explicitness_score_train", "explicitness_score_test"))
def modularity_explicitness(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_test: int = 5_000,
    num_bins: int = 20,
    discretizer: str = "histogram",
    sklearn: str = "current",
) -> dict[str, float]:
    """Modularity (histogram MI) and explicitness (logistic-regression ROC AUC).

    Defaults from the study's ``modularity_explicitness.gin``: num_train 10000, num_test 5000,
    histogram discretizer with 20 bins (disentanglement_lib
    ``config/unsupervised_study_v1/metric_configs/``). The logistic regression pins the
    scikit-learn >= 0.22 defaults (lbfgs, C=1, max_iter=100); ``sklearn="2019"``: the study's
    liblinear one-vs-rest (:func:`dislab.metrics.utils.logistic_regression`). Returns
    ``modularity_score``, ``explicitness_score_train``, ``explicitness_score_test``.
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    num_test = check_count(num_test, 1, "num_test")
    codes, factors = sample_codes(data, representation, num_train, rng, split="train")
    codes_test, factors_test = sample_codes(data, representation, num_test, rng,
                                            split="test")
    m = discrete_mutual_info(discretize(codes, discretizer, num_bins), factors)
    x_train, x_test = normalize_data(codes, codes_test)
    seed = sklearn_seed(rng)
    train_auc, test_auc = [], []
    for k in range(data.num_factors):
        clf = fit_or_constant(
            lambda: logistic_regression(sklearn, seed), x_train, factors[:, k],
        )
        train_auc.append(macro_auc(factors[:, k], clf.predict_proba(x_train), clf.classes_))
        test_auc.append(macro_auc(factors_test[:, k], clf.predict_proba(x_test), clf.classes_))
    return {
        "modularity_score": modularity(m),
        "explicitness_score_train": float(np.mean(train_auc)),
        "explicitness_score_test": float(np.mean(test_auc)),
    }
