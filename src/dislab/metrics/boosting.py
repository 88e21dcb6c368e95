"""Gradient-boosted trees for DCI and the downstream task: the reference booster and a fast one.

* ``"reference"``: ``sklearn.ensemble.GradientBoostingClassifier()`` with its defaults
  (100 stages, learning rate 0.1, depth 3, friedman_mse, subsample 1), as disentanglement_lib's
  ``gradient_boosting_classifier`` (REFERENCE.md §4). Slow: one exact tree per class per stage.
* ``"hist"`` (default): ``HistGradientBoostingClassifier`` with the same budget (100 iterations,
  learning rate 0.1, depth 3, no leaf-size floor, no L2, no early stopping) on 255 quantile
  bins. Importances are each feature's total split gain, normalised to sum to 1 as the
  reference's impurity importances. ``benchmarks/metrics_speed.py`` measures the gap of DCI to
  the reference on the same codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dislab.metrics.base import MetricError
from dislab.metrics.utils import fit_or_constant

__all__ = ["BOOSTERS", "fit_booster", "importances"]

BOOSTERS = ("hist", "reference")


def _make(booster: str, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    if booster == "reference":
        return GradientBoostingClassifier(random_state=seed)
    if booster == "hist":
        return HistGradientBoostingClassifier(
            learning_rate=0.1, max_iter=100, max_depth=3, max_leaf_nodes=None,
            min_samples_leaf=1, l2_regularization=0.0, max_bins=255, early_stopping=False,
            random_state=seed,
        )
    raise MetricError(f"unknown booster {booster!r}; use one of {', '.join(BOOSTERS)}.")


def fit_booster(booster: str, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """Fit a classifier of kind ``booster`` on ``x (n, d)``, labels ``y (n,)``."""
    _make(booster, seed)  # validate the name even when y is constant
    return fit_or_constant(lambda: _make(booster, seed), x, y)


def importances(model: Any, num_features: int) -> np.ndarray:
    """Non-negative feature importances ``(num_features,)`` of a fitted booster (sum 1 or 0)."""
    if hasattr(model, "feature_importances_"):
        return np.abs(np.asarray(model.feature_importances_, dtype=np.float64))
    predictors = getattr(model, "_predictors", None)
    if predictors is None:  # constant predictor: no feature matters
        return np.zeros(num_features)
    gain = np.zeros(num_features)
    for stage in predictors:
        for tree in stage:
            nodes = tree.nodes
            split = ~nodes["is_leaf"].astype(bool)
            np.add.at(gain, nodes["feature_idx"][split], np.maximum(nodes["gain"][split], 0.0))
    total = gain.sum()
    return gain / total if total > 0 else gain
