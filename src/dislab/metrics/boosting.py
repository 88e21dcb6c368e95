"""Gradient-boosted trees for DCI and the downstream task.

* ``"reference"``: ``sklearn.ensemble.GradientBoostingClassifier()`` with its defaults
  (100 stages, learning rate 0.1, depth 3, subsample 1), as disentanglement_lib's
  ``gradient_boosting_classifier`` (``evaluation/metrics/utils.py``). Slow: one exact tree per
  class and stage, each re-sorting the features at every node (minutes for DCI on dSprites).
* ``"fast"`` (default): the same algorithm compiled with numba
  (:class:`dislab.metrics.fastgbt.ExactGBClassifier`), typically 10-20 times faster; it grows
  the same trees up to floating-point rounding and exact-tie breaking.
  ``benchmarks/metrics_speed.py`` measures the DCI gap to the reference on the same codes.
  Without numba installed, ``"fast"`` runs the reference.

Fits are memoised (the last :data:`MEMO_SIZE`), keyed by the booster, the seed and the bytes
of ``x`` and ``y``: the suite scores DCI and the downstream task on the same 10 000 points
with the same seeds, so the downstream task's largest fits are DCI's (the slowest part of
the default suite otherwise runs twice).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from dislab.metrics import fastgbt
from dislab.metrics.base import MetricError
from dislab.metrics.utils import fit_or_constant

__all__ = ["BOOSTERS", "fit_booster", "importances", "predict_train"]

BOOSTERS = ("fast", "reference")


def _make(booster: str, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    if booster not in BOOSTERS:
        raise MetricError(f"unknown booster {booster!r}; use one of {', '.join(BOOSTERS)}.")
    if booster == "fast" and fastgbt.available():
        return fastgbt.ExactGBClassifier(random_state=seed)
    return GradientBoostingClassifier(random_state=seed)


#: How many fitted boosters :func:`fit_booster` keeps for reuse (one per factor of a DCI).
MEMO_SIZE = 8
_MEMO: OrderedDict[tuple, Any] = OrderedDict()


def _memo_key(booster: str, x: np.ndarray, y: np.ndarray, seed: int) -> tuple:
    h = hashlib.blake2b(digest_size=16)
    for a in (x, y):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return booster, int(seed), h.hexdigest()


def fit_booster(booster: str, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """Fit a classifier of kind ``booster`` on ``x (n, d)``, labels ``y (n,)``.

    A fit with the same booster, seed and data as one of the last :data:`MEMO_SIZE` returns
    that fitted model (boosters are deterministic given the seed); callers only predict.
    """
    _make(booster, seed)  # validate the name even when y is constant
    key = _memo_key(booster, x, y, seed)
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    model = fit_or_constant(lambda: _make(booster, seed), x, y)
    _MEMO[key] = model
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)
    return model


def predict_train(model: Any, x: np.ndarray) -> np.ndarray:
    """Predictions of a fitted booster on its own training inputs ``x``."""
    if isinstance(model, fastgbt.ExactGBClassifier):
        return model.predict_train()
    return model.predict(x)


def importances(model: Any, num_features: int) -> np.ndarray:
    """Non-negative feature importances ``(num_features,)`` of a fitted booster (sum 1 or 0)."""
    if hasattr(model, "feature_importances_"):
        return np.abs(np.asarray(model.feature_importances_, dtype=np.float64))
    return np.zeros(num_features)  # constant predictor: no feature matters
