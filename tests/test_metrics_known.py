"""Known values of the metric building blocks (disentanglement_lib's
``evaluation/metrics/*_test.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import sqrtm
from sklearn.metrics import mutual_info_score

from dislab.metrics import dci, irs, modularity, unsupervised, utils
from dislab.metrics.mig import mig_from_matrix
from dislab.metrics.sap import sap_from_matrix

D = np.diag(5.0 * np.ones(5))


def test_histogram_discretize_exact() -> None:
    x = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).T
    expected = np.array([[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]).T
    np.testing.assert_array_equal(utils.histogram_discretize(x, num_bins=3), expected)


def test_discrete_entropy_and_mutual_info() -> None:
    ys = np.array([[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]).T
    np.testing.assert_allclose(utils.discrete_entropy(ys), [math.log(3), math.log(3)])
    xs = np.array([[1, 2, 1, 2], [1, 1, 2, 2]]).T
    ys = np.array([[1, 2, 1, 2], [2, 2, 1, 1]]).T
    np.testing.assert_allclose(utils.discrete_mutual_info(xs, ys),
                               [[math.log(2), 0.0], [0.0, math.log(2)]], atol=1e-12)


def test_mutual_info_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 7, 500)
    b = (a + rng.integers(0, 3, 500)) % 5
    assert utils.mutual_info(a, b) == pytest.approx(mutual_info_score(a, b), abs=1e-12)
    assert utils.entropy(a) == pytest.approx(mutual_info_score(a, a), abs=1e-12)


def test_split_train_test() -> None:
    train, test = utils.split_train_test(np.zeros((100, 10)), 0.9)
    assert train.shape == (90, 10) and test.shape == (10, 10)
    assert not train.any() and not test.any()


@pytest.mark.parametrize(
    "matrix, disent, compl",
    [
        (D, 1.0, 1.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),
        (np.zeros((10, 10)), 0.0, 0.0),
        (np.vstack([D, D]), 1.0, 1.0 - math.log(2) / math.log(10)),
        (D[:2, :], 1.0, 1.0),
        (np.hstack([D, D]), 1.0 - math.log(2) / math.log(10), 1.0),
    ],
)
def test_dci_disentanglement_completeness(matrix: np.ndarray, disent: float, compl: float
                                          ) -> None:
    assert dci.disentanglement(matrix) == pytest.approx(disent, abs=1e-7)
    assert dci.completeness(matrix) == pytest.approx(compl, abs=1e-7)


@pytest.mark.parametrize(
    "matrix, expected",
    [
        (D, 1.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 2.0 / 3.0),
        (np.zeros((10, 10)), 0.0),
        (np.vstack([D, D]), 1.0),
        (D[:2, :], 1.0),
        (np.hstack([D, D]), 1.0 - 1.0 / 9.0),
    ],
)
def test_modularity_matrix(matrix: np.ndarray, expected: float) -> None:
    assert modularity.modularity(matrix) == pytest.approx(expected, abs=1e-12)


def test_gaussian_total_correlation() -> None:
    assert abs(unsupervised.gaussian_total_correlation(np.eye(5))) < 1e-12
    cov = np.array([[1.0, 0.9], [0.9, 1.0]], dtype=np.float32)
    assert unsupervised.gaussian_total_correlation(cov) == pytest.approx(
        0.5 * -math.log(0.19), abs=1e-5)  # 0.83037
    assert unsupervised.gaussian_total_correlation(np.ones((3, 3))) == math.inf


def test_gaussian_wasserstein_correlation() -> None:
    assert abs(unsupervised.gaussian_wasserstein_correlation(np.eye(5))) < 1e-12
    cov = np.array([[1.0, 0.9], [0.9, 1.0]], dtype=np.float32)
    d = np.diag(np.diag(cov))
    ref = np.trace(cov + d - 2 * sqrtm(cov @ d)).real  # the dlib test's reference value
    assert ref == pytest.approx(0.61073, abs=1e-4)
    assert unsupervised.gaussian_wasserstein_correlation(cov) == pytest.approx(ref, abs=1e-6)


def test_wasserstein_matches_sqrtm_and_stays_real_when_singular() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + 0.1 * np.eye(6)
    dlib = 2 * np.trace(cov) - 2 * np.trace(sqrtm(cov * np.diag(cov)[:, None]))
    assert unsupervised.gaussian_wasserstein_correlation(cov) == pytest.approx(dlib.real,
                                                                             rel=1e-8)
    low_rank = rng.normal(size=(10, 5))
    singular = low_rank @ low_rank.T  # rank 5 of 10: dlib's sqrtm goes complex here
    value = unsupervised.gaussian_wasserstein_correlation(singular)
    assert isinstance(value, float) and np.isfinite(value) and value > 0


def test_irs_drop_constant_dims() -> None:
    ys = np.random.RandomState(0).normal(0.0, 1.0, (100, 100))
    ys[0, :] = 1.0
    ys[-1, :] = 0.0
    # dlib's rows are code dimensions; ours are columns.
    np.testing.assert_array_equal(irs.drop_constant_dims(ys.T), ys[1:-1].T)


def test_mig_and_sap_from_matrix() -> None:
    m = np.array([[2.0, 0.0], [0.5, 1.0], [0.0, 0.0]])
    score, gaps = mig_from_matrix(m, np.array([2.0, 1.0]))
    np.testing.assert_allclose(gaps, [0.75, 1.0])
    assert score == pytest.approx(0.875)
    assert sap_from_matrix(np.array([[0.9, 0.2], [0.3, 0.6]])) == pytest.approx(0.5)
    # one code: the second-largest entry is taken as 0
    assert mig_from_matrix(np.array([[1.0]]), np.array([2.0]))[0] == pytest.approx(0.5)
