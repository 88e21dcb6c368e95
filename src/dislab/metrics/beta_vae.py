"""BetaVAE score (Higgins et al., 2017) as in disentanglement_lib's ``beta_vae.py``.

One training point: draw a factor ``k`` uniformly, two batches of ``batch_size`` factor
vectors that agree on factor ``k``; the feature is the mean over the batch of
``|r(x1) - r(x2)|`` and the label is ``k``. The pairs come from
:meth:`~dislab.data.GroundTruthData.sample_index_pairs` (on labelled rows that are not a grid:
two rows sharing the factor's value). A linear classifier is trained on ``num_train``
points and its accuracy reported on them and on ``num_eval`` fresh points.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import Representation, encode_index
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import (
    check_count,
    check_data,
    fit_or_constant,
    logistic_regression,
    sklearn_seed,
)

__all__ = ["beta_vae_score", "beta_vae_features"]

_CHUNK = 2048  # training points per look-up chunk (bounds memory at chunk * batch * d)


def beta_vae_features(
    data: GroundTruthData,
    representation: Representation,
    num_points: int,
    batch_size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(num_points, d)`` and labels ``(num_points,)`` of the BetaVAE classifier."""
    feats, labels = [], []
    k_all = rng.integers(0, data.num_factors, size=num_points)
    for start in range(0, num_points, _CHUNK):
        k = k_all[start:start + _CHUNK]
        n = len(k)
        i1, i2 = data.sample_index_pairs(k, batch_size, rng)
        c1 = encode_index(data, representation, i1)
        c2 = encode_index(data, representation, i2)
        diff = np.abs(c1 - c2).reshape(n, batch_size, -1)
        feats.append(diff.mean(axis=1))
        labels.append(k)
    return np.concatenate(feats), np.concatenate(labels)


@register_metric("beta_vae", headline="eval_accuracy", label="BetaVAE score",
                 keys=("train_accuracy", "eval_accuracy"))
def beta_vae_score(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    sklearn: str = "current",
) -> dict[str, float]:
    """BetaVAE score: accuracy of predicting the fixed factor from mean |z1 - z2|.

    Defaults from the study's ``beta_vae_sklearn.gin`` (batch_size 64, num_train 10000, num_eval
    5000; disentanglement_lib ``config/unsupervised_study_v1/metric_configs/``). Classifier:
    ``LogisticRegression`` with the defaults of scikit-learn >= 0.22 pinned explicitly (lbfgs,
    multinomial, C=1, max_iter=100), because disentanglement_lib's unpinned defaults changed between
    versions (scikit-learn 0.22 release notes). ``sklearn="2019"``: the study's scikit-learn's
    ``LogisticRegression()``, liblinear one-vs-rest
    (:func:`dislab.metrics.utils.logistic_regression`; docs/fidelity.md). The train accuracy is
    computed once (dlib's ``compute_beta_vae_sklearn`` computes it twice).

    Returns ``train_accuracy`` and ``eval_accuracy``.
    """
    data = check_data(data)
    batch_size = check_count(batch_size, 2, "batch_size")
    num_train = check_count(num_train, 2, "num_train")
    num_eval = check_count(num_eval, 1, "num_eval")
    x_train, y_train = beta_vae_features(data, representation, num_train, batch_size, rng)
    x_eval, y_eval = beta_vae_features(data, representation, num_eval, batch_size, rng)
    seed = sklearn_seed(rng)
    model = fit_or_constant(
        lambda: logistic_regression(sklearn, seed), x_train, y_train,
    )
    return {
        "train_accuracy": float(np.mean(model.predict(x_train) == y_train)),
        "eval_accuracy": float(np.mean(model.predict(x_eval) == y_eval)),
    }
