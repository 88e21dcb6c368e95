"""Known answers of every metric on analytic representations (settings of disentanglement_lib's
``evaluation/metrics/*_test.py``).

The data set is disentanglement_lib's identity data: 10 factors with 10 values each, the
observation is the factor vector. Representations are functions of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dislab.data import from_function
from dislab.metrics.beta_vae import beta_vae_score
from dislab.metrics.dci import dci
from dislab.metrics.downstream import downstream_boosted_trees, downstream_logistic_regression
from dislab.metrics.factor_vae import factor_vae_score
from dislab.metrics.irs import irs
from dislab.metrics.mig import mig
from dislab.metrics.modularity import modularity_explicitness
from dislab.metrics.sap import sap_score
from dislab.metrics.unsupervised import unsupervised_scores

IDENTITY = from_function([10] * 10, lambda f: f.astype(np.float32) + 1.0)
SMALL = from_function([4, 5, 3], lambda f: f.astype(np.float32))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def identity(x: np.ndarray) -> np.ndarray:
    return x


def zeros(x: np.ndarray) -> np.ndarray:
    return np.zeros_like(x)


def duplicated(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, x])


def noise(x: np.ndarray) -> np.ndarray:
    # codes independent of the factors (seeded by the content so it is a function)
    seed = int(np.abs(x).sum() * 1000) % (2**31)
    return np.random.default_rng(seed).normal(size=x.shape).astype(np.float32)


def permuted(x: np.ndarray) -> np.ndarray:
    return x[:, ::-1] * np.array([2.0 ** (i % 3) for i in range(x.shape[1])], np.float32)


# -- BetaVAE ---------------------------------------------------------------------------------
def test_beta_vae_identity_and_noise() -> None:
    s = beta_vae_score(IDENTITY, identity, rng(), batch_size=5, num_train=2000, num_eval=2000)
    assert 0.9 <= s["train_accuracy"] <= 1.0 and 0.9 <= s["eval_accuracy"] <= 1.0
    s = beta_vae_score(IDENTITY, noise, rng(), batch_size=5, num_train=500, num_eval=500)
    assert s["eval_accuracy"] <= 0.3  # chance is 0.1


# -- FactorVAE -------------------------------------------------------------------------------
def test_factor_vae_identity_zeros_and_invariance() -> None:
    kw = dict(batch_size=5, num_train=3000, num_eval=2000, num_variance_estimate=2500)
    s = factor_vae_score(IDENTITY, identity, rng(), **kw)
    assert 0.9 <= s["train_accuracy"] <= 1.0 and 0.9 <= s["eval_accuracy"] <= 1.0
    assert s["num_active_dims"] == 10  # dlib: len(mask) whatever the mask
    z = factor_vae_score(IDENTITY, zeros, rng(), **kw)
    assert z == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    z0 = factor_vae_score(IDENTITY, zeros, rng(), prune_threshold=0.0, **kw)
    assert 0.0 <= z0["eval_accuracy"] <= 0.2
    # normalised by the global variance: invariant to permuting and rescaling codes
    p = factor_vae_score(IDENTITY, permuted, rng(), **kw)
    assert p["eval_accuracy"] == pytest.approx(s["eval_accuracy"], abs=0.01)  # argmin ties
    half = factor_vae_score(IDENTITY, lambda x: x[:, :5], rng(), **kw)
    assert half["num_active_dims"] == 5


# -- MIG -------------------------------------------------------------------------------------
def test_mig_dlib_cases() -> None:
    kw = dict(num_train=3000, discretizer="identity")
    assert 0.9 <= mig(IDENTITY, identity, rng(), **kw)["discrete_mig"] <= 1.0
    assert 0.0 <= mig(IDENTITY, zeros, rng(), **kw)["discrete_mig"] <= 0.2
    assert 0.0 <= mig(IDENTITY, duplicated, rng(), **kw)["discrete_mig"] <= 0.1


def test_mig_histogram_invariance_and_noise() -> None:
    base = mig(IDENTITY, identity, rng(), num_train=3000)["discrete_mig"]
    assert base > 0.95  # 10 values in 20 equal-width bins stay distinct
    assert mig(IDENTITY, permuted, rng(), num_train=3000)["discrete_mig"] == pytest.approx(
        base, abs=1e-12)
    assert mig(IDENTITY, noise, rng(), num_train=3000)["discrete_mig"] < 0.05


# -- SAP -------------------------------------------------------------------------------------
def test_sap_dlib_cases_continuous() -> None:
    kw = dict(num_train=3000, num_test=3000, continuous_factors=True)
    assert 0.9 <= sap_score(IDENTITY, identity, rng(), **kw)["SAP_score"] <= 1.0
    assert 0.0 <= sap_score(IDENTITY, zeros, rng(), **kw)["SAP_score"] <= 0.2
    assert 0.0 <= sap_score(IDENTITY, duplicated, rng(), **kw)["SAP_score"] <= 0.2


def test_sap_discrete_binary_factors() -> None:
    data = from_function([2, 2, 2])
    s = sap_score(data, identity, rng(), num_train=500, num_test=500)["SAP_score"]
    assert s > 0.45  # each code predicts its factor perfectly, the others at chance (0.5)
    d = sap_score(data, duplicated, rng(), num_train=500, num_test=500)["SAP_score"]
    assert d < 0.05


# -- DCI -------------------------------------------------------------------------------------
@pytest.mark.parametrize("booster", ["fast", "reference"])
def test_dci_identity_duplicated_and_shuffled(booster: str) -> None:
    kw = dict(num_train=600, num_test=300, booster=booster)
    s = dci(SMALL, identity, rng(), **kw)
    assert 0.9 <= s["disentanglement"] <= 1.0 and 0.9 <= s["completeness"] <= 1.0
    assert s["informativeness_test"] == pytest.approx(1.0)
    d = dci(SMALL, duplicated, rng(), **kw)
    t = 1.0 - math.log(2) / math.log(6)  # each factor split over 2 of 6 codes
    assert d["disentanglement"] >= 0.9
    assert t - 0.1 <= d["completeness"] <= t + 0.1


def test_dci_row_shuffled_codes() -> None:
    shuffle_rng = np.random.default_rng(0)

    def shuffled(x: np.ndarray) -> np.ndarray:
        return np.stack([shuffle_rng.permutation(row) for row in x])

    data = from_function([4] * 6, lambda f: f.astype(np.float32))
    s = dci(data, shuffled, rng(), num_train=1000, num_test=200)
    assert 0.0 <= s["disentanglement"] <= 0.2 and 0.0 <= s["completeness"] <= 0.2


# -- Modularity / explicitness ----------------------------------------------------------------
def test_modularity_dlib_cases() -> None:
    kw = dict(num_train=3000, num_test=3000, discretizer="identity")
    s = modularity_explicitness(IDENTITY, identity, rng(), **kw)
    assert 0.9 <= s["modularity_score"] <= 1.0
    assert s["explicitness_score_test"] > 0.9
    d = modularity_explicitness(IDENTITY, duplicated, rng(), **kw)
    assert 0.9 <= d["modularity_score"] <= 1.0
    shuffle_rng = np.random.default_rng(0)

    def shuffled(x: np.ndarray) -> np.ndarray:
        return np.stack([shuffle_rng.permutation(row) for row in x])

    p = modularity_explicitness(IDENTITY, shuffled, rng(), num_train=20000, num_test=200,
                                discretizer="identity")
    assert 0.0 <= p["modularity_score"] <= 0.2


# -- IRS -------------------------------------------------------------------------------------
def test_irs_dlib_cases_and_rescaling() -> None:
    kw = dict(num_train=3000, diff_quantile=0.99, discretizer="identity")
    s = irs(IDENTITY, identity, rng(), **kw)
    assert 0.9 <= s["IRS"] <= 1.0 and s["num_active_dims"] == 10
    z = irs(IDENTITY, zeros, rng(), **kw)
    assert 0.0 <= z["IRS"] <= 0.1 and z["num_active_dims"] == 0
    p = irs(IDENTITY, permuted, rng(), **kw)
    assert p["IRS"] == pytest.approx(s["IRS"], abs=1e-9)


# -- Unsupervised ----------------------------------------------------------------------------
def test_unsupervised_independent_vs_mixed() -> None:
    s = unsupervised_scores(IDENTITY, identity, rng(), num_train=5000)
    assert abs(s["gaussian_total_correlation"]) < 0.02
    assert abs(s["gaussian_wasserstein_correlation_norm"]) < 0.02
    assert s["mutual_info_score"] < 0.02
    assert "gaussian_total_correlation_sampled" not in s  # no posterior

    def mixed(x: np.ndarray) -> np.ndarray:
        return np.hstack([x[:, :1], x[:, :1] + 0.5 * x[:, 1:2]])

    m = unsupervised_scores(IDENTITY, mixed, rng(), num_train=5000)
    cov = np.array([[8.25, 8.25], [8.25, 8.25 * 1.25]])  # var of U{1..10} = 8.25
    expected = 0.5 * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1])
    assert m["gaussian_total_correlation"] == pytest.approx(expected, abs=0.05)
    assert m["mutual_info_score"] > 0.5


def test_unsupervised_sampled_representation() -> None:
    def posterior(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x, np.full_like(x, math.log(100.0))  # noise std 10 swamps the mean

    s = unsupervised_scores(IDENTITY, posterior, rng(), num_train=5000)
    assert s["gaussian_total_correlation_sampled"] < 0.02
    assert s["gaussian_total_correlation"] < 0.02


# -- Downstream ------------------------------------------------------------------------------
def test_downstream_identity_and_noise() -> None:
    data = from_function([2, 3], lambda f: f.astype(np.float32))
    s = downstream_boosted_trees(data, identity, rng(), num_train=[10, 100, 1000, 10000],
                                 num_test=500)
    assert s["10000:mean_test_accuracy"] == 1.0
    assert s["100:mean_test_accuracy"] == 1.0
    assert s["sample_efficiency"] == pytest.approx(1.0)
    lr = downstream_logistic_regression(data, identity, rng(), num_train=[10, 200],
                                        num_test=500)
    assert lr["200:mean_test_accuracy"] > 0.95
    assert set(lr) >= {"10:min_test_accuracy", "200:test_accuracy_factor_1"}
    n = downstream_boosted_trees(data, noise, rng(), num_train=[500], num_test=500)
    assert n["500:mean_test_accuracy"] < 0.6  # chance: (1/2 + 1/3) / 2


# -- Reproducibility -------------------------------------------------------------------------
def test_same_seed_same_numbers() -> None:
    a = dci(SMALL, noise, rng(3), num_train=200, num_test=100)
    b = dci(SMALL, noise, rng(3), num_train=200, num_test=100)
    c = dci(SMALL, noise, rng(4), num_train=200, num_test=100)
    assert a == b and a != c


def test_downstream_logistic_regression_threads_match_a_serial_loop(monkeypatch) -> None:
    """The factors' fits run on a thread pool; the numbers equal fitting them one by one."""
    from dislab.metrics import downstream

    data = from_function([3, 5, 4], lambda f: f.astype(np.float32))
    mix = rng(1).standard_normal((3, 3)).astype(np.float32)

    def rep(x: np.ndarray) -> np.ndarray:
        return x @ mix + 0.7 * np.random.default_rng(int(x.sum())).standard_normal(x.shape)

    calls = []
    real = downstream.parallel_map

    def spy(fn, items, workers=None):
        calls.append(list(items))
        return real(fn, items, workers)

    monkeypatch.setattr(downstream, "parallel_map", spy)
    threaded = downstream_logistic_regression(data, rep, rng(5), num_train=[30, 400],
                                              num_test=300)
    assert calls == [[1, 2, 0], [1, 2, 0]]  # most classes first, once per size
    monkeypatch.setattr(downstream, "parallel_map", lambda fn, items: [fn(i) for i in items])
    serial = downstream_logistic_regression(data, rep, rng(5), num_train=[30, 400],
                                            num_test=300)
    assert threaded == serial
    assert 0.3 < threaded["400:mean_test_accuracy"] < 1.0  # informative but not perfect


def test_quiet_sklearn_is_shared_across_threads_and_restored() -> None:
    """Fits on worker threads share one quiet setting; the warning filters and BLAS thread
    limits are what they were once every user has left."""
    import threading
    import warnings

    from threadpoolctl import threadpool_info

    from dislab.metrics.utils import quiet_sklearn

    filters = list(warnings.filters)
    blas = [i["num_threads"] for i in threadpool_info()]
    inside: list[bool] = []
    go = threading.Barrier(3)

    def worker() -> None:
        with quiet_sklearn():
            go.wait()  # all three inside at once
            from sklearn.exceptions import ConvergenceWarning
            with warnings.catch_warnings(record=True) as seen:
                warnings.warn("x", ConvergenceWarning, stacklevel=1)
            inside.append(not seen)
            go.wait()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert inside == [True, True, True]
    assert warnings.filters == filters
    assert [i["num_threads"] for i in threadpool_info()] == blas
