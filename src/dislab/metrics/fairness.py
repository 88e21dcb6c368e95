"""Unfairness of downstream classifiers (Locatello et al. 2019, *On the Fairness of
Disentangled Representations*, NeurIPS, §4), disentanglement_lib's
``evaluation/metrics/fairness.py`` (``compute_fairness``, ``inter_group_fairness``,
``compute_scores_dict``).

One gradient-boosted classifier per target factor ``i`` is fit on ``num_train`` codes. For each
sensitive factor ``j != i``, ``num_test_points_per_class`` factor vectors are drawn once and,
for every value ``c`` of ``j``, set to ``j = c`` (an intervention) and encoded; the counts of
the predictions of ``i`` per sensitive value give the total-variation distance of each
sensitive class's prediction distribution to the overall one. ``mean_fairness[i, j]`` is its
average weighted by class size, ``max_fairness[i, j]`` its maximum; both are then summarised
over targets and sensitive factors as disentanglement_lib does (the paper's score is
``mean_fairness:mean_pred:mean_sens``). Lower is fairer.

It needs interventions, so it runs on a :class:`~dislab.data.GroundTruthData` only.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import Representation, encode_factors
from dislab.metrics.boosting import fit_booster
from dislab.metrics.registry import Kind, register_metric
from dislab.metrics.utils import check_count, check_data, sample_codes, sklearn_seed

__all__ = ["fairness", "inter_group_fairness", "fairness_scores"]


def inter_group_fairness(counts: np.ndarray) -> tuple[float, float]:
    """``(mean, max)`` total-variation distance of each sensitive class to the overall
    prediction distribution; ``counts (num predicted classes, num sensitive classes)``,
    the mean weighted by the sensitive classes' counts."""
    counts = np.asarray(counts, dtype=np.float64)
    overall = counts.sum(axis=1) / counts.sum()
    per_class = counts.sum(axis=0)
    tv = 0.5 * np.abs(counts / per_class[None, :] - overall[:, None]).sum(axis=0)
    return float(np.sum(tv * per_class) / per_class.sum()), float(np.max(tv))


def fairness_scores(matrix: np.ndarray, prefix: str) -> dict[str, float]:
    """disentanglement_lib's summaries of a ``(K, K)`` score matrix (diagonal ignored)."""
    k = matrix.shape[0]
    off = ~np.eye(k, dtype=bool)
    out: dict[str, float] = {}
    for i in range(k):
        for j in range(k):
            if i != j:
                out[f"{prefix}:pred{i}:sens{j}"] = float(matrix[i, j])
    rows = [matrix[i, off[i]] for i in range(k)]
    cols = [matrix[off[:, j], j] for j in range(k)]
    for i, r in enumerate(rows):
        out[f"{prefix}:pred{i}:mean_sens"] = float(np.mean(r))
        out[f"{prefix}:pred{i}:max_sens"] = float(np.max(r))
    for j, c in enumerate(cols):
        out[f"{prefix}:sens{j}:mean_pred"] = float(np.mean(c))
        out[f"{prefix}:sens{j}:max_pred"] = float(np.max(c))
    col_mean = [np.mean(c) for c in cols]
    col_max = [np.max(c) for c in cols]
    row_mean = [np.mean(r) for r in rows]
    row_max = [np.max(r) for r in rows]
    out[f"{prefix}:mean_sens:mean_pred"] = float(np.mean(col_mean))
    out[f"{prefix}:mean_sens:max_pred"] = float(np.mean(col_max))
    out[f"{prefix}:max_sens:mean_pred"] = float(np.max(col_mean))
    out[f"{prefix}:max_sens:max_pred"] = float(np.max(col_max))
    out[f"{prefix}:mean_pred:mean_sens"] = float(np.mean(row_mean))
    out[f"{prefix}:mean_pred:max_sens"] = float(np.mean(row_max))
    out[f"{prefix}:max_pred:mean_sens"] = float(np.max(row_mean))
    out[f"{prefix}:max_pred:max_sens"] = float(np.max(row_max))
    return out


@register_metric("fairness", default=False, needs_grid=True,
                 headline="mean_fairness:mean_pred:mean_sens", label="Unfairness",
                 kind=Kind("lower"), disentanglement=False,
                 keys=("mean_fairness:mean_pred:mean_sens", "{agg}_fairness:pred{i}:sens{k}",
                       "{agg}_fairness:pred{i}:{stat}_sens", "{agg}_fairness:sens{k}:{stat}_pred",
                       "{agg}_fairness:{stat}_sens:{stat2}_pred",
                       "{agg}_fairness:{stat}_pred:{stat2}_sens"))
def fairness(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_test_points_per_class: int = 100,
    booster: str = "fast",
) -> dict[str, float]:
    """Unfairness (total variation of predictions under interventions on a sensitive factor).

    Defaults from disentanglement_lib's ``config/fairness_study_v1/metric_configs/fairness.gin``:
    num_train 10000, num_test_points_per_class 100, gradient-boosted trees (``booster`` as in
    :func:`dislab.metrics.dci.dci`). Keys as disentanglement_lib: ``mean_fairness:...`` and
    ``max_fairness:...`` (headline ``mean_fairness:mean_pred:mean_sens``). Needs at least two
    factors.
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    per_class = check_count(num_test_points_per_class, 1, "num_test_points_per_class")
    k = data.num_factors
    if k < 2:
        from dislab.metrics.base import MetricError

        raise MetricError("fairness needs at least two factors (a target and a sensitive one).")
    codes, factors = sample_codes(data, representation, num_train, rng)
    mean_f = np.zeros((k, k))
    max_f = np.zeros((k, k))
    for i in range(k):
        model = fit_booster(booster, codes, factors[:, i], sklearn_seed(rng))
        for j in range(k):
            if i == j:
                continue
            base = data.sample_factors(per_class, rng)
            counts = np.zeros((data.factor_sizes[i], data.factor_sizes[j]), dtype=np.int64)
            for c in range(data.factor_sizes[j]):
                intervened = base.copy()
                intervened[:, j] = c
                pred = np.asarray(model.predict(encode_factors(data, representation, intervened)))
                counts[:, c] = np.bincount(pred.astype(np.int64),
                                           minlength=data.factor_sizes[i])
            mean_f[i, j], max_f[i, j] = inter_group_fairness(counts)
    return {**fairness_scores(mean_f, "mean_fairness"), **fairness_scores(max_f, "max_fairness")}
