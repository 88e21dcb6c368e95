"""The compiled booster grows scikit-learn's GradientBoostingClassifier trees."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from dislab.metrics import fastgbt
from dislab.metrics.dci import completeness, disentanglement

pytestmark = pytest.mark.skipif(not fastgbt.available(), reason="numba not installed")


def _data(n: int, f: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (np.floor((x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=n)) * 1.5) % c).astype(int)
    return x, y


@pytest.mark.parametrize("classes", [2, 4])
def test_first_stages_are_sklearns_trees(classes: int) -> None:
    x, y = _data(400, 4, classes)
    for stages in (1, 3):
        ref = GradientBoostingClassifier(n_estimators=stages, random_state=0).fit(x, y)
        ours = fastgbt.ExactGBClassifier(n_estimators=stages, random_state=0).fit(x, y)
        np.testing.assert_allclose(ours.decision_function(x),
                                   ref.decision_function(x).reshape(len(x), -1), atol=1e-9)
        np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_,
                                   atol=1e-9)
        np.testing.assert_array_equal(ours.predict_train(), ref.predict(x))


def test_full_fit_close_to_sklearn() -> None:
    x, y = _data(600, 5, 3, seed=1)
    ref = GradientBoostingClassifier(random_state=0).fit(x, y)
    ours = fastgbt.ExactGBClassifier(random_state=0).fit(x, y)
    # later stages fit tiny residuals, where rounding can pick another near-equal split
    np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_, atol=0.01)
    xt, _ = _data(300, 5, 3, seed=2)
    assert np.mean(ours.predict(xt) == ref.predict(xt)) > 0.97
    r_ref = np.stack([ref.feature_importances_, ref.feature_importances_[::-1]], axis=1)
    r_ours = np.stack([ours.feature_importances_, ours.feature_importances_[::-1]], axis=1)
    assert disentanglement(r_ours) == pytest.approx(disentanglement(r_ref), abs=0.01)
    assert completeness(r_ours) == pytest.approx(completeness(r_ref), abs=0.01)


def test_duplicated_features_share_importance() -> None:
    x, y = _data(400, 2, 3, seed=3)
    ours = fastgbt.ExactGBClassifier(random_state=0).fit(np.hstack([x, x]), y)
    imp = ours.feature_importances_
    # exact ties are broken at random per node, as sklearn does: both copies get a share
    assert imp[0] > 0.1 and imp[2] > 0.1
    assert imp[0] + imp[2] == pytest.approx(imp.sum() - imp[1] - imp[3])


def test_parallel_and_serial_growth_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(300, 3, 3, seed=4)
    serial = fastgbt.ExactGBClassifier(n_estimators=10, random_state=0).fit(x, y)
    monkeypatch.setattr(fastgbt, "PARALLEL_MIN_WORK", 0)
    parallel = fastgbt.ExactGBClassifier(n_estimators=10, random_state=0).fit(x, y)
    np.testing.assert_array_equal(serial.decision_function(x), parallel.decision_function(x))
    np.testing.assert_array_equal(serial.feature_importances_, parallel.feature_importances_)
