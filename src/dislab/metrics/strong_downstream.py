"""Strong (out-of-distribution) downstream generalisation, disentanglement_lib's
``evaluation/metrics/strong_downstream_task.py`` (``compute_strong_downstream_task``,
``intervene``).

Per training size: gradient-boosted classifiers predict each factor from codes of points
drawn as usual (``mean_train/test_accuracy``). Then, ``n_experiment`` times per target factor
``i``: another factor ``j != i`` and a value ``v`` of it are drawn; the training points get
``j = v`` (an intervention), the test points any other value of ``j``; a classifier fit on the
intervened training codes predicts ``i`` on the shifted test codes
(``mean_strong_train/test_accuracy``). ``strong_generalization_gap = 1 - strong test accuracy /
test accuracy``. disentanglement_lib draws ``j`` and the values with numpy's global generator
(not seeded by the evaluation); here they come from the metric's ``rng``.

It needs interventions, so it runs on a :class:`~dislab.data.GroundTruthData` only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import MetricError, Representation, encode_factors
from dislab.metrics.boosting import fit_booster, predict_train
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import check_count, check_data, sklearn_seed

__all__ = ["strong_downstream_task", "intervene"]


def intervene(factors_train: np.ndarray, factors_test: np.ndarray, target: int,
              factor_sizes: Sequence[int], rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Fix a random factor ``j != target`` to one value in the training factors and give the
    test factors random *other* values of it. Returns ``(train, test, j, value)`` (copies)."""
    others = [j for j in range(len(factor_sizes)) if j != target and factor_sizes[j] > 1]
    if not others:
        raise MetricError(f"no factor other than {target} has two values to intervene on.")
    j = int(rng.choice(others))
    values = np.arange(factor_sizes[j])
    v = int(rng.choice(values))
    rest = values[values != v]
    train, test = factors_train.copy(), factors_test.copy()
    train[:, j] = v
    test[:, j] = rng.choice(rest, size=len(test))
    return train, test, j, v


def _accuracy(booster: str, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray,
              seed: int) -> tuple[float, float]:
    model = fit_booster(booster, x, y, seed)
    return (float(np.mean(predict_train(model, x) == y)),
            float(np.mean(np.asarray(model.predict(xt)) == yt)))


@register_metric("strong_downstream", default=False, needs_grid=True,
                 headline="{n}:mean_strong_test_accuracy", label="Strong-generalisation accuracy",
                 disentanglement=False,
                 keys=("{n}:mean_train_accuracy", "{n}:mean_test_accuracy",
                       "{n}:mean_strong_train_accuracy", "{n}:mean_strong_test_accuracy",
                       "{n}:strong_generalization_gap"))
def strong_downstream_task(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: Sequence[int] = (1000,),
    num_test: int = 1000,
    n_experiment: int = 10,
    booster: str = "fast",
) -> dict[str, float]:
    """Downstream accuracy under a covariate shift made by interventions, and its gap.

    disentanglement_lib configures this task only in its unit test (num_train [1000],
    num_test 1000, gradient-boosted trees); ``n_experiment=10`` is its function default.
    Keys as disentanglement_lib: ``"<n>:mean_train_accuracy"``, ``"<n>:mean_test_accuracy"``,
    ``"<n>:mean_strong_train_accuracy"``, ``"<n>:mean_strong_test_accuracy"``,
    ``"<n>:strong_generalization_gap"``.
    """
    data = check_data(data)
    num_test = check_count(num_test, 1, "num_test")
    n_experiment = check_count(n_experiment, 1, "n_experiment")
    if isinstance(num_train, int):
        num_train = [num_train]
    if data.num_factors < 2:
        raise MetricError("the strong downstream task needs at least two factors.")
    out: dict[str, float] = {}
    for n in [check_count(s, 2, "each num_train size") for s in num_train]:
        f_train = data.sample_factors(n, rng)
        f_test = data.sample_factors(num_test, rng)
        x = encode_factors(data, representation, f_train)
        xt = encode_factors(data, representation, f_test)
        plain = [_accuracy(booster, x, f_train[:, i], xt, f_test[:, i], sklearn_seed(rng))
                 for i in range(data.num_factors)]
        strong = []
        for i in range(data.num_factors):
            for _ in range(n_experiment):
                tr, te, _, _ = intervene(f_train, f_test, i, data.factor_sizes, rng)
                strong.append(_accuracy(booster, encode_factors(data, representation, tr),
                                        tr[:, i], encode_factors(data, representation, te),
                                        te[:, i], sklearn_seed(rng)))
        test_acc = float(np.mean([b for _, b in plain]))
        strong_test = float(np.mean([b for _, b in strong]))
        out[f"{n}:mean_train_accuracy"] = float(np.mean([a for a, _ in plain]))
        out[f"{n}:mean_test_accuracy"] = test_acc
        out[f"{n}:mean_strong_train_accuracy"] = float(np.mean([a for a, _ in strong]))
        out[f"{n}:mean_strong_test_accuracy"] = strong_test
        out[f"{n}:strong_generalization_gap"] = (1.0 - strong_test / test_acc
                                                 if test_acc > 0 else 0.0)
    return out
