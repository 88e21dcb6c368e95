"""Reduced downstream task, disentanglement_lib's
``evaluation/metrics/reduced_downstream_task.py`` (``compute_reduced_downstream_task``,
``compute_reduced_representation`` with ``factorwise_dci``).

How much information about a factor leaks into the rest of the code: for each factor of
interest ``f``, the ``num_factors_to_remove`` codes most important for predicting ``f`` are
deleted one at a time (each time the code with the largest gradient-boosted-trees importance
for ``f``, recomputed on the remaining codes, as DCI's importance column of ``f``); then
gradient-boosted classifiers predict every factor from the reduced code. Low accuracy on
``f`` itself means ``f`` lived in the removed codes only.

Keys as disentanglement_lib, ``"<n>:train_accuracy_<i>_factor_of_interest_<f>"`` and
``"<n>:test_accuracy_<i>_factor_of_interest_<f>"``, plus summaries (dislab's):
``"<n>:mean_test_accuracy_factor_of_interest"`` (mean over ``f`` of the accuracy on ``f``
itself) and ``"<n>:mean_test_accuracy_other_factors"``. It needs only samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import MetricError, Representation
from dislab.metrics.boosting import fit_booster, importances, predict_train
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import check_count, check_data, sample_codes, sklearn_seed

__all__ = ["reduced_downstream_task", "reduce_codes"]


def reduce_codes(x: np.ndarray, xt: np.ndarray, y: np.ndarray, num_remove: int, booster: str,
                 seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Drop the ``num_remove`` codes most important for labels ``y`` (one at a time).

    Returns the reduced training and test codes and the removed original code indices.
    """
    keep = list(range(x.shape[1]))
    removed = []
    for _ in range(num_remove):
        model = fit_booster(booster, x[:, keep], y, seed)
        drop = keep[int(np.argmax(importances(model, len(keep))))]
        keep.remove(drop)
        removed.append(drop)
    return x[:, keep], xt[:, keep], removed


@register_metric("reduced_downstream", default=False,
                 headline="{n}:mean_test_accuracy_factor_of_interest",
                 label="Reduced downstream accuracy", disentanglement=False,
                 keys=("{n}:mean_test_accuracy_factor_of_interest",
                       "{n}:mean_test_accuracy_other_factors",
                       "{n}:train_accuracy_{i}_factor_of_interest_{k}",
                       "{n}:test_accuracy_{i}_factor_of_interest_{k}"))
def reduced_downstream_task(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: Sequence[int] = (1000,),
    num_test: int = 1000,
    num_factors_to_remove: int = 1,
    booster: str = "fast",
) -> dict[str, float]:
    """Downstream accuracy after removing the codes most predictive of each factor.

    disentanglement_lib configures this task only in its unit test
    (``config/tests/evaluation/evaluate_test_configs/reduced_downstream_task.gin``: num_train
    [100], num_test 100, one code removed, DCI importances, gradient-boosted trees); dislab's
    defaults are the strong task's 1000 / 1000 with one code removed.
    """
    data = check_data(data)
    num_test = check_count(num_test, 1, "num_test")
    r = check_count(num_factors_to_remove, 1, "num_factors_to_remove")
    if isinstance(num_train, int):
        num_train = [num_train]
    out: dict[str, float] = {}
    for n in [check_count(s, 2, "each num_train size") for s in num_train]:
        x, f = sample_codes(data, representation, n, rng, split="train")
        xt, ft = sample_codes(data, representation, num_test, rng, split="test")
        if r >= x.shape[1]:
            raise MetricError(f"cannot remove {r} of {x.shape[1]} codes and predict from the "
                              "rest; lower num_factors_to_remove.")
        own, others = [], []
        for foi in range(data.num_factors):
            xr, xtr, _ = reduce_codes(x, xt, f[:, foi], r, booster, sklearn_seed(rng))
            for i in range(data.num_factors):
                model = fit_booster(booster, xr, f[:, i], sklearn_seed(rng))
                tr = float(np.mean(predict_train(model, xr) == f[:, i]))
                te = float(np.mean(np.asarray(model.predict(xtr)) == ft[:, i]))
                out[f"{n}:train_accuracy_{i}_factor_of_interest_{foi}"] = tr
                out[f"{n}:test_accuracy_{i}_factor_of_interest_{foi}"] = te
                (own if i == foi else others).append(te)
        out[f"{n}:mean_test_accuracy_factor_of_interest"] = float(np.mean(own))
        if others:
            out[f"{n}:mean_test_accuracy_other_factors"] = float(np.mean(others))
    return out
