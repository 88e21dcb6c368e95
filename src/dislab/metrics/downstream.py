"""Downstream task and sample efficiency (Locatello et al., 2019), disentanglement_lib's
``downstream_task.py``.

For each training size ``n``: fresh ``n`` training codes and ``num_test`` test codes; one
classifier per factor predicts the factor from all codes; accuracies are reported per factor,
as mean and as minimum. Sizes are drawn largest first, so the 10 000-point sample is the
generator's first draw, as DCI's training sample (the suite gives both the same stream).
The sample efficiency is the mean test accuracy at 100 training points
divided by that at 10 000.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import MetricError, Representation
from dislab.metrics.boosting import fit_booster, predict_train
from dislab.metrics.infotheory import parallel_map
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import (
    check_count,
    check_data,
    fit_or_constant,
    logistic_regression_cv,
    quiet_sklearn,
    sample_codes,
    sklearn_seed,
)

__all__ = ["downstream_task", "downstream_logistic_regression", "downstream_boosted_trees"]

NUM_TRAIN = (10, 100, 1000, 10000)
#: Result keys, per training-set size ``{n}`` and factor index ``{k}``.
DOWNSTREAM_KEYS = ("{n}:mean_test_accuracy", "{n}:mean_train_accuracy", "{n}:min_test_accuracy",
                   "{n}:min_train_accuracy", "{n}:test_accuracy_factor_{k}",
                   "{n}:train_accuracy_factor_{k}")


def _logistic_cv(x: np.ndarray, y: np.ndarray, seed: int, era: str = "current") -> Any:
    # dlib: LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5)); fewer folds if n < 5.
    folds = min(5, len(y))
    return fit_or_constant(lambda: logistic_regression_cv(era, folds, seed), x, y)


def _fit_and_score(predictor: str, booster: str, x: np.ndarray, f: np.ndarray,
                   xt: np.ndarray, ft: np.ndarray, seeds: Sequence[int], k: int,
                   sklearn: str = "current") -> tuple[float, float]:
    """Train and test accuracy of ``predictor`` for factor ``k``."""
    if predictor == "logistic_regression":
        model = _logistic_cv(x, f[:, k], seeds[k], sklearn)
    else:
        model = fit_booster(booster, x, f[:, k], seeds[k])
    return (float(np.mean(predict_train(model, x) == f[:, k])),
            float(np.mean(model.predict(xt) == ft[:, k])))


def _parallel_fits(score: Any, sizes: Sequence[int]) -> list[tuple[float, float]]:
    """``[score(k) for k]`` over the factors on a small thread pool (one BLAS thread each),
    factors with the most classes first; the results do not depend on the order. The quiet
    sklearn setting is entered here, once for all workers (it is process-wide)."""
    order = sorted(range(len(sizes)), key=lambda k: -sizes[k])
    with quiet_sklearn():
        done = parallel_map(score, order)
    out: list[Any] = [None] * len(sizes)
    for k, r in zip(order, done):
        out[k] = r
    return out


def downstream_task(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    predictor: str,
    num_train: Sequence[int] = NUM_TRAIN,
    num_test: int = 5_000,
    booster: str = "fast",
    sklearn: str = "current",
) -> dict[str, float]:
    """Accuracies of ``predictor`` ("logistic_regression" or "boosted_trees") per train size
    (``sklearn``: the logistic regression's settings,
    :func:`dislab.metrics.utils.logistic_regression_cv`)."""
    data = check_data(data)
    num_test = check_count(num_test, 1, "num_test")
    if predictor not in ("logistic_regression", "boosted_trees"):
        raise MetricError(f"unknown predictor {predictor!r}.")
    if isinstance(num_train, int):
        num_train = [num_train]
    out: dict[str, float] = {}
    sizes = [check_count(n, 2, "each num_train size") for n in num_train]
    for n in sorted(sizes, reverse=True):
        x, f = sample_codes(data, representation, n, rng, split="train")
        xt, ft = sample_codes(data, representation, num_test, rng, split="test")
        seeds = [sklearn_seed(rng) for _ in range(data.num_factors)]
        score = partial(_fit_and_score, predictor, booster, x, f, xt, ft, seeds,
                        sklearn=sklearn)
        if predictor == "logistic_regression":
            accs = _parallel_fits(score, data.factor_sizes)
        else:  # the compiled booster runs its trees in parallel itself
            accs = [score(k) for k in range(data.num_factors)]
        train_acc = [a for a, _ in accs]
        test_acc = [b for _, b in accs]
        for k in range(data.num_factors):
            out[f"{n}:train_accuracy_factor_{k}"] = train_acc[k]
            out[f"{n}:test_accuracy_factor_{k}"] = test_acc[k]
        out[f"{n}:mean_train_accuracy"] = float(np.mean(train_acc))
        out[f"{n}:mean_test_accuracy"] = float(np.mean(test_acc))
        out[f"{n}:min_train_accuracy"] = float(np.min(train_acc))
        out[f"{n}:min_test_accuracy"] = float(np.min(test_acc))
    if "100:mean_test_accuracy" in out and "10000:mean_test_accuracy" in out:
        denom = out["10000:mean_test_accuracy"]
        out["sample_efficiency"] = out["100:mean_test_accuracy"] / denom if denom > 0 else 0.0
    return out


@register_metric("downstream_logistic_regression", headline="{n}:mean_test_accuracy",
                 label="Downstream accuracy (logistic regression)", disentanglement=False,
                 stream="dci", keys=DOWNSTREAM_KEYS)
def downstream_logistic_regression(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: Sequence[int] = NUM_TRAIN,
    num_test: int = 5_000,
    sklearn: str = "current",
) -> dict[str, float]:
    """Downstream accuracy of logistic regression, and sample efficiency acc@100/acc@10000.

    Defaults from the study's ``downstream_task_logistic_regression.gin``: num_train [10, 100, 1000,
    10000], num_test 5000, ``LogisticRegressionCV(Cs=10, cv=KFold(5))`` (disentanglement_lib
    ``evaluation/metrics/utils.py``, ``logistic_regression_cv``; fewer folds when there are fewer
    than 5 points, a factor seen with one value predicts that value). Keys as dlib:
    ``"<n>:mean_test_accuracy"`` etc., plus ``sample_efficiency``. ``sklearn="2019"``: one-vs-rest,
    as the study's scikit-learn (:func:`dislab.metrics.utils.logistic_regression_cv`).
    """
    return downstream_task(data, representation, rng, "logistic_regression", num_train,
                           num_test, sklearn=sklearn)


@register_metric("downstream_boosted_trees", headline="{n}:mean_test_accuracy",
                 label="Downstream accuracy (boosted trees)", disentanglement=False,
                 stream="dci", keys=DOWNSTREAM_KEYS)
def downstream_boosted_trees(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: Sequence[int] = NUM_TRAIN,
    num_test: int = 5_000,
    booster: str = "fast",
) -> dict[str, float]:
    """Downstream accuracy of gradient-boosted trees, and sample efficiency.

    Defaults from the study's ``downstream_task_boosted_trees.gin``: num_train
    [10, 100, 1000, 10000], num_test 5000, ``GradientBoostingClassifier()``; ``booster`` as in
    :func:`dislab.metrics.dci.dci` (default the compiled copy of it).
    """
    return downstream_task(data, representation, rng, "boosted_trees", num_train, num_test,
                           booster)
