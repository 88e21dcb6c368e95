"""Do & Tran 2020 metrics: known answers on analytic posteriors (Do & Tran 2020;
clarken92/DisentanglementMetrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dislab.data.base import from_function
from dislab.metrics import available, default_metrics
from dislab.metrics.base import CodeTable, MetricError
from dislab.metrics.dotran import _quantised, _sampling, dotran, dotran_sampling
from dislab.metrics.infotheory import bin_edges, quantise, quantised_stats

SIZES = (4, 5, 6)
DATA = from_function(SIZES)
N = len(DATA)
FACTORS = DATA.factors(np.arange(N)).astype(np.float64)
STANDARD = (FACTORS - FACTORS.mean(0)) / FACTORS.std(0)
LOG_V = np.log(SIZES)


def _table(mean: np.ndarray, std: float | np.ndarray) -> CodeTable:
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), mean.shape)
    return CodeTable(mean, 2.0 * np.log(std))


def _per(res: dict[str, float], prefix: str) -> np.ndarray:
    return np.array([res[k] for k in res if k.startswith(prefix)])


def test_registered() -> None:
    assert "dotran" in available() and "dotran" in default_metrics()
    assert "dotran_sampling" in available() and "dotran_sampling" not in default_metrics()


def test_quantise_official_rule() -> None:
    edges = bin_edges(8, (-4.0, 4.0))  # centres -3.5, -2.5, ..., 3.5, width 1
    q = quantise(np.array([0.5, 0.0, 10.0, -9.0]), np.array([1.0, 1e-4, 0.1, 0.1]), edges)
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-6)
    dens = np.exp(-0.5 * (np.arange(-3.5, 4.0) - 0.5) ** 2)
    np.testing.assert_allclose(q[0], dens / dens.sum(), rtol=1e-5)
    # every centre density < 1e-5 -> one-hot on mu's bin (0.0 lies in bin 4 = [0, 1))
    np.testing.assert_array_equal(q[1], np.eye(8)[4])
    # outside the limits: the outer bins
    np.testing.assert_array_equal(q[2], np.eye(8)[7])
    np.testing.assert_array_equal(q[3], np.eye(8)[0])


def test_streaming_stats_match_direct_sums() -> None:
    rng = np.random.default_rng(3)
    mean = rng.normal(size=N) * 2
    std = np.exp(rng.normal(size=N) - 2)
    std[:5] = 1e-6  # deterministic rows
    edges = bin_edges(50)
    st = quantised_stats(mean, std, SIZES, edges, factor_joints=True, conditional_entropy=True,
                         max_rows=30)
    q = quantise(mean, std, edges).astype(np.float64)
    np.testing.assert_allclose(st["marginal"], q.mean(0), atol=1e-6)
    h = -(q * np.log(np.maximum(q, 1e-8))).sum(1).mean()
    assert st["h_cond"] == pytest.approx(h, abs=1e-5)
    for k, size in enumerate(SIZES):
        direct = np.stack([q[FACTORS[:, k] == v].sum(0) / N for v in range(size)])
        np.testing.assert_allclose(st["joints"][k], direct, atol=1e-6)


def test_factor_copies_are_informative_separable_interpretable() -> None:
    res = dotran(DATA, _table(STANDARD, 1e-3), 0)
    np.testing.assert_allclose(_per(res, "informativeness_z"), LOG_V, atol=1e-3)
    np.testing.assert_allclose(_per(res, "sep_z"), 0.0, atol=0.03)
    assert res["rmig"] == pytest.approx(1.0, abs=1e-3)
    assert res["rmig_nats"] == pytest.approx(LOG_V.mean(), abs=1e-3)
    assert res["jemmig"] < 0.02
    assert [res[f"top_latent_factor_{k}"] for k in range(3)] == [0.0, 1.0, 2.0]
    np.testing.assert_allclose(_per(res, "weights_z"), LOG_V / LOG_V.sum(), atol=1e-3)
    assert res["windin"] == pytest.approx(LOG_V @ LOG_V / LOG_V.sum(), abs=0.03)


def test_quantised_mutual_information_with_factor_is_its_entropy() -> None:
    """z_i a noisy copy of y_k with noise well inside a bin: I(z_i, y_k) ~= H(y_k)."""
    rng = np.random.default_rng(0)
    res = _quantised(DATA, STANDARD + 0.002 * rng.normal(size=STANDARD.shape),
                     np.full(STANDARD.shape, 0.01), rng, 100, 200, (-4, 4), "density",
                     500, None, None)
    top = res["rmig_k"] + 0.0  # top - second; second ~ 0 for independent factors
    np.testing.assert_allclose(top, LOG_V, atol=0.02)


def test_duplicated_latent() -> None:
    mean = np.c_[STANDARD, STANDARD[:, :1]]
    res = dotran(DATA, _table(mean, 1e-3), 0)
    sep = _per(res, "sep_z")
    assert sep[0] == pytest.approx(LOG_V[0], abs=0.03)
    assert sep[3] == pytest.approx(LOG_V[0], abs=0.03)
    assert abs(sep[1]) < 0.03 and abs(sep[2]) < 0.03
    assert res["rmig_factor_factor_0"] == pytest.approx(0.0, abs=1e-3)
    assert res["rmig_factor_factor_1"] == pytest.approx(1.0, abs=1e-3)
    # the copies carry no information beyond each other
    np.testing.assert_allclose(_per(res, "sepin_z")[[0, 3]], 0.0, atol=0.03)


def test_noise_latents_are_uninformative() -> None:
    rng = np.random.default_rng(1)
    res = dotran(DATA, _table(0.01 * rng.normal(size=(N, 3)), 1.0), 0)
    assert np.all(_per(res, "informativeness_z") < 2e-3)
    assert res["rmig"] < 0.01
    assert res["jemmig"] > 0.85  # H(z, y) ~ H(z) + H(y): the worst end of the scale


@pytest.mark.parametrize("subsample", [False, True])
def test_sepin_equals_indin_before_clamping(subsample: bool) -> None:
    """Factorised encoder: SEPIN_i == INDIN_i == H(z) - H(z_!i) - H(z_i|x) (Do & Tran 2020)."""
    rng = np.random.default_rng(2)
    mix = rng.normal(size=(3, 4))
    mean = STANDARD @ mix * 0.7
    std = np.exp(rng.normal(size=mean.shape) * 0.3 - 1.0)
    comps, nbrs = (40, 8) if subsample else (None, None)
    res = _quantised(DATA, mean, std, rng, 30, 40, (-4, 4), "density", 300, comps, nbrs)
    assert np.abs(res["sep_raw"]).max() > 0.05  # a non-trivial case
    np.testing.assert_allclose(res["sepin_raw"], res["indin_raw"], atol=1e-9)
    res = _sampling(DATA, mean, 2 * np.log(std), rng, 300, comps, 200, (-4, 4))
    np.testing.assert_allclose(res["sepin_raw"], res["indin_raw"], atol=1e-9)


def test_subsampled_separability_is_close_to_exact() -> None:
    rng = np.random.default_rng(4)
    mean = np.c_[STANDARD, STANDARD[:, 0] + STANDARD[:, 1]]
    std = np.full(mean.shape, 0.2)
    exact = _quantised(DATA, mean, std, rng, 100, 100, (-4, 4), "density", 3000, None, None)
    approx = _quantised(DATA, mean, std, rng, 100, 100, (-4, 4), "density", 3000, 30, 10)
    np.testing.assert_allclose(approx["sep_raw"], exact["sep_raw"], atol=0.1)


def test_sampling_estimator_known_answers() -> None:
    res = dotran_sampling(DATA, _table(STANDARD, 1e-3), 0, num_samples=4000)
    assert res["rmig"] == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(_per(res, "informativeness_z"), LOG_V, atol=0.02)
    np.testing.assert_allclose(_per(res, "sep_z"), 0.0, atol=0.03)
    dup = dotran_sampling(DATA, _table(np.c_[STANDARD, STANDARD[:, :1]], 1e-3), 0,
                          num_samples=4000)
    assert _per(dup, "sep_z")[3] == pytest.approx(LOG_V[0], abs=0.05)
    assert dup["rmig_factor_factor_0"] == pytest.approx(0.0, abs=0.02)


def test_estimators_agree_on_mutual_information() -> None:
    """Quantised and differential MI agree when bins are much finer than the posteriors."""
    rng = np.random.default_rng(5)
    mean = STANDARD @ rng.normal(size=(3, 2)) * 0.6
    std = np.full(mean.shape, 0.3)
    q = dotran(DATA, _table(mean, std), 0, num_bins=200)
    s = dotran_sampling(DATA, _table(mean, std), 0, num_samples=20_000, max_components=None)
    np.testing.assert_allclose(_per(q, "informativeness_z"), _per(s, "informativeness_z"),
                               atol=0.03)
    assert q["rmig_nats"] == pytest.approx(s["rmig_nats"], abs=0.03)


def test_reproducible_and_bad_input() -> None:
    rng = np.random.default_rng(6)
    table = _table(rng.normal(size=(N, 3)), 0.5)
    assert dotran(DATA, table, 7) == dotran(DATA, table, 7)
    with pytest.raises(MetricError, match="posterior"):
        dotran(DATA, CodeTable(STANDARD), 0)
    with pytest.raises(MetricError, match="num_bins"):
        dotran(DATA, table, 0, num_bins=1)
    with pytest.raises(MetricError, match="bin_mass"):
        dotran(DATA, table, 0, bin_mass="nope")
    assert math.isfinite(dotran(DATA, _table(STANDARD[:, :1], 0.1), 0)["wsepin"])


def test_constant_factor_is_not_scored() -> None:
    data = from_function((4, 1, 5))
    f = data.factors(np.arange(len(data))).astype(np.float64)
    res = dotran(data, _table((f - 2.0) / 1.5, 1e-3), 0)
    assert "rmig_factor_factor_1" not in res
    assert all(np.isfinite(v) for v in res.values())
    assert res["rmig"] == pytest.approx(1.0, abs=1e-3)


def test_function_representation_equals_code_table() -> None:
    """Any encoder: a function images -> (mean, logvar) scores like the cached table."""
    data = from_function(SIZES, observe=lambda f: f.astype(np.float32))
    mu = lambda x: (x - FACTORS.mean(0)) / FACTORS.std(0)  # noqa: E731
    fn = lambda x: (mu(x), np.full(x.shape, np.log(0.2**2)))  # noqa: E731
    table = CodeTable(mu(FACTORS), np.full(FACTORS.shape, np.log(0.2**2)))
    assert dotran(data, fn, 3) == pytest.approx(dotran(data, table, 3))


def test_stratified_mixture_is_exact_with_all_components() -> None:
    """Neighbour strata + all rows as components must reproduce the exact mixture densities."""
    from scipy.special import logsumexp

    from dislab.metrics.infotheory import gaussian_mixture_logs, sample_posterior

    rng = np.random.default_rng(7)
    mean = STANDARD @ rng.normal(size=(3, 3))
    logvar = rng.normal(size=mean.shape) * 0.3 - 1.0
    gen, z = sample_posterior(mean, logvar, 50, rng)
    res = gaussian_mixture_logs(z, gen, mean, logvar, np.arange(N), dims=True, joint=True,
                                not_i=True, groups=[FACTORS[:, 0].astype(int)],
                                num_neighbours=5)
    ll = -0.5 * ((z[:, None] - mean[None]) ** 2 * np.exp(-logvar[None]) + logvar[None]
                 + np.log(2 * np.pi))  # (S, N, d)
    np.testing.assert_allclose(res["dim"], logsumexp(ll, axis=1) - np.log(N), atol=1e-5)
    np.testing.assert_allclose(res["joint"], logsumexp(ll.sum(2), axis=1) - np.log(N),
                               atol=1e-5)
    for i in range(3):
        exact = logsumexp(ll.sum(2) - ll[:, :, i], axis=1) - np.log(N)
        np.testing.assert_allclose(res["not_i"][:, i], exact, atol=1e-5)
    lab = FACTORS[:, 0].astype(int)
    for s in range(len(gen)):
        rows = lab == lab[gen[s]]
        exact = logsumexp(ll[s][rows], axis=0) - np.log(rows.sum())
        np.testing.assert_allclose(res["cond"][0][s], exact, atol=1e-5)


def test_quantised_separability_strata_are_exact_with_all_components() -> None:
    from dislab.metrics.dotran import separability_quantised

    rng = np.random.default_rng(8)
    mean = STANDARD @ rng.normal(size=(3, 4)) * 0.8
    std = np.exp(rng.normal(size=mean.shape) * 0.3 - 1.5)
    edges = bin_edges(40)
    norms = [quantised_stats(mean[:, i], std[:, i], SIZES, edges, normalisers=True)
             for i in range(4)]
    log_norm = np.stack([s["log_norm"] for s in norms], 1)
    onehot = np.stack([s["onehot"] for s in norms], 1)
    args = (mean, std, log_norm, onehot, edges)
    exact = separability_quantised(*args, np.random.default_rng(0), 400, None, None)
    strata = separability_quantised(*args, np.random.default_rng(0), 400, None, 6)
    assert strata[0] == pytest.approx(exact[0], abs=1e-6)
    np.testing.assert_allclose(strata[1], exact[1], atol=1e-6)
