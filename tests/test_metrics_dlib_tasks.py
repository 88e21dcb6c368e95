"""disentanglement_lib's fairness score and its reduced / strong downstream tasks.

Expected values are worked out by hand from disentanglement_lib's functions
(``evaluation/metrics/fairness.py`` ``inter_group_fairness``/``compute_scores_dict``,
``strong_downstream_task.py`` ``intervene``, ``reduced_downstream_task.py``), as said per test.
"""

from __future__ import annotations

import numpy as np
import pytest

from dislab.data import from_function
from dislab.metrics import CodeTable, evaluate
from dislab.metrics.fairness import fairness_scores, inter_group_fairness
from dislab.metrics.strong_downstream import intervene

DATA = from_function([4, 3, 3], factor_names=["a", "b", "c"])
F = DATA.factors(np.arange(len(DATA)))
DISENTANGLED = CodeTable(F.astype(np.float32))
#: factors a and b seen only through their sum (a is not recoverable without b)
ENTANGLED = CodeTable(np.c_[F[:, 0] + F[:, 1], F[:, 2]].astype(np.float32))


def test_inter_group_fairness_by_hand() -> None:
    # rows: predicted class, columns: sensitive class
    assert inter_group_fairness(np.array([[5, 5], [5, 5]])) == (0.0, 0.0)
    assert inter_group_fairness(np.array([[10, 0], [0, 10]])) == pytest.approx((0.5, 0.5))
    # class 0 (2 points) predicts [1, 0], class 1 (4 points) [1/4, 3/4], overall [1/2, 1/2]:
    # TV 1/2 and 1/4, weighted mean (1/2 * 2 + 1/4 * 4) / 6 = 1/3, max 1/2
    assert inter_group_fairness(np.array([[2, 1], [0, 3]])) == pytest.approx((1 / 3, 0.5))


def test_fairness_summaries_by_hand() -> None:
    m = np.array([[0.0, 0.1, 0.2], [0.3, 0.0, 0.4], [0.5, 0.6, 0.0]])
    s = fairness_scores(m, "mean_fairness")
    assert s["mean_fairness:pred1:sens2"] == 0.4
    assert s["mean_fairness:pred0:mean_sens"] == pytest.approx(0.15)
    assert s["mean_fairness:sens0:max_pred"] == 0.5
    # rows' means 0.15, 0.35, 0.55; columns' means 0.4, 0.35, 0.3
    assert s["mean_fairness:mean_pred:mean_sens"] == pytest.approx(0.35)
    assert s["mean_fairness:max_pred:mean_sens"] == pytest.approx(0.55)
    assert s["mean_fairness:max_sens:mean_pred"] == pytest.approx(0.4)
    assert s["mean_fairness:mean_sens:max_pred"] == pytest.approx((0.5 + 0.6 + 0.4) / 3)


def test_fairness_on_a_grid() -> None:
    p = {"fairness": {"num_train": 200, "num_test_points_per_class": 20}}
    fair = evaluate(DISENTANGLED, DATA, "fairness", params=p)["fairness"]
    unfair = evaluate(ENTANGLED, DATA, "fairness", params=p)["fairness"]
    key = "mean_fairness:mean_pred:mean_sens"
    # a code per factor: intervening on b does not move the prediction of a
    assert fair[key] < 0.02
    # a read off a + b: setting b shifts the predictions of a
    assert unfair["mean_fairness:pred0:sens1"] > 0.1
    assert unfair[key] > fair[key]


def test_intervene_fixes_train_and_shifts_test() -> None:
    rng = np.random.default_rng(0)
    tr, te = F[rng.integers(0, len(F), 50)], F[rng.integers(0, len(F), 40)]
    for target in range(3):
        a, b, j, v = intervene(tr, te, target, DATA.factor_sizes, rng)
        assert j != target
        assert np.all(a[:, j] == v) and np.all(b[:, j] != v)
        rest = [k for k in range(3) if k != j]
        assert np.array_equal(a[:, rest], tr[:, rest]) and np.array_equal(b[:, rest], te[:, rest])


def test_strong_downstream_gap() -> None:
    p = {"strong_downstream": {"num_train": [200], "num_test": 100, "n_experiment": 2}}
    good = evaluate(DISENTANGLED, DATA, "strong_downstream", params=p)["strong_downstream"]
    bad = evaluate(ENTANGLED, DATA, "strong_downstream", params=p)["strong_downstream"]
    assert good["200:mean_strong_test_accuracy"] == pytest.approx(1.0)
    assert good["200:strong_generalization_gap"] == pytest.approx(0.0, abs=1e-12)
    assert bad["200:strong_generalization_gap"] > 0.1


def test_reduced_downstream_removes_the_only_code_of_a_factor() -> None:
    # codes (a, b, c, a): a survives the removal of its best code (a copy is left),
    # b and c do not (their only code is gone): chance level on the 3 values
    table = CodeTable(np.c_[F, F[:, 0]].astype(np.float32))
    p = {"reduced_downstream": {"num_train": [300], "num_test": 200}}
    out = evaluate(table, DATA, "reduced_downstream", params=p)["reduced_downstream"]
    assert out["300:test_accuracy_0_factor_of_interest_0"] == 1.0
    assert out["300:test_accuracy_1_factor_of_interest_1"] < 0.6
    assert out["300:test_accuracy_2_factor_of_interest_2"] < 0.6
    assert out["300:test_accuracy_2_factor_of_interest_1"] == 1.0  # c's code is untouched
