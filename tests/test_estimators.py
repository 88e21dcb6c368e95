"""dislab.estimators: disentanglement_lib's unit-test values, brute-force formulas, toy check."""

from __future__ import annotations

import math

import pytest
import torch

from dislab.errors import DislabError
from dislab.estimators import (
    gaussian_kl,
    gaussian_log_density,
    log_qz_mss,
    log_qz_mws,
    mss_log_weights,
    pairwise_log_density,
    total_correlation,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Shared 2-core machine: one intra-op thread avoids spin-wait contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_gaussian_log_density_dlib_values() -> None:
    one, zero = torch.tensor(1.0), torch.tensor(0.0)
    assert -1.4190 <= float(gaussian_log_density(one, zero, zero)) <= -1.4188
    assert -0.92 <= float(gaussian_log_density(one, one, zero)) <= -0.91


def test_gaussian_log_density_matches_torch_normal() -> None:
    g = torch.Generator().manual_seed(1)
    x, mu, logvar = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    ref = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(x)
    torch.testing.assert_close(gaussian_log_density(x, mu, logvar), ref)


@pytest.mark.parametrize(
    ("mu", "logvar", "lo", "hi"), [(0.0, 0.0, 0.0, 0.01), (1.0, 0.0, 5.0, 5.01),
                                   (1.0, 1.0, 8.58, 8.6)],
)
def test_gaussian_kl_dlib_values(mu: float, logvar: float, lo: float, hi: float) -> None:
    # disentanglement_lib compute_gaussian_kl: mean over a batch of 10 of the sum over 10 dims
    kl = gaussian_kl(torch.full((10, 10), mu), torch.full((10, 10), logvar))
    assert kl.shape == (10, 10)
    assert lo <= float(kl.sum(1).mean()) <= hi


def test_gaussian_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(2)
    mu, logvar = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p))


@pytest.mark.parametrize(("d", "batch"), [(1, 1000), (10, 1000), (10, 64)])
def test_total_correlation_dlib_convention_standard_normal(d: int, batch: int) -> None:
    # dlib: z ~ N(0, I), mu = 0, logvar = 0 -> TC = -(d - 1) log B exactly (every posterior is
    # the same, so every logsumexp adds log B): d=1 -> 0, d=10, B=10000 -> -82.89.
    g = torch.Generator().manual_seed(3)
    z = torch.randn(batch, d, generator=g, dtype=torch.float64)
    zeros = torch.zeros_like(z)
    tc = total_correlation(z, zeros, zeros, include_constant=False)
    assert float(tc) == pytest.approx(-(d - 1) * math.log(batch), abs=1e-6)
    # with N the constant (d - 1) log(N B) is added back
    tc_n = total_correlation(z, zeros, zeros, dataset_size=5000)
    assert float(tc_n - tc) == pytest.approx((d - 1) * math.log(5000 * batch), abs=1e-6)


@pytest.mark.parametrize(("batch", "n"), [(2, 10), (3, 3), (5, 7), (64, 737_280)])
def test_mss_weights_are_the_papers(batch: int, n: int) -> None:
    w = torch.exp(mss_log_weights(batch, n, dtype=torch.float64))
    m = batch - 1
    torch.testing.assert_close(w.sum(1), torch.ones(batch, dtype=torch.float64))
    torch.testing.assert_close(torch.diagonal(w), torch.full((batch,), 1 / n, dtype=torch.float64))
    for j in range(batch):
        others = torch.cat([w[j, :j], w[j, j + 1:]])
        strat = (n - m) / (n * m)
        n_strat = int(torch.isclose(others, torch.tensor(strat, dtype=torch.float64)).sum())
        n_rest = int(torch.isclose(others, torch.tensor(1 / m, dtype=torch.float64)).sum())
        assert (n_strat, n_rest) == (1, m - 1)
    # the released code's matrix puts 1/N in column 0 of every row: not ours
    if batch > 2:
        assert not torch.allclose(w[:, 0], torch.full((batch,), 1 / n, dtype=torch.float64))


def _brute_force(z, mu, logvar, weights):  # type: ignore[no-untyped-def]
    """log sum_i W_ji q(z_j|x_i) and sum_l log sum_i W_ji q(z_jl|x_i), by explicit loops."""
    b, d = z.shape
    joint, marg = torch.zeros(b, dtype=torch.float64), torch.zeros(b, dtype=torch.float64)
    for j in range(b):
        dens = torch.zeros(b, d, dtype=torch.float64)
        for i in range(b):
            normal = torch.distributions.Normal(mu[i], torch.exp(0.5 * logvar[i]))
            dens[i] = normal.log_prob(z[j]).exp()
        joint[j] = torch.log((weights[j] * dens.prod(1)).sum())
        marg[j] = torch.log((weights[j].unsqueeze(1) * dens).sum(0)).sum()
    return joint, marg


def test_mws_and_mss_match_their_formulas() -> None:
    g = torch.Generator().manual_seed(4)
    b, d, n = 6, 3, 50
    mu = torch.randn(b, d, generator=g, dtype=torch.float64)
    logvar = 0.3 * torch.randn(b, d, generator=g, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(b, d, generator=g, dtype=torch.float64)
    for got, weights in [
        (log_qz_mws(z, mu, logvar, n), torch.full((b, b), 1 / (n * b), dtype=torch.float64)),
        (log_qz_mss(z, mu, logvar, n), torch.exp(mss_log_weights(b, n, dtype=torch.float64))),
    ]:
        joint, marg = _brute_force(z, mu, logvar, weights)
        torch.testing.assert_close(got[0], joint)
        torch.testing.assert_close(got[1], marg)
    tc = total_correlation(z, mu, logvar, n, estimator="mss")
    joint, marg = _brute_force(z, mu, logvar, torch.exp(mss_log_weights(b, n, dtype=torch.float64)))
    assert float(tc) == pytest.approx(float((joint - marg).mean()))


def test_pairwise_log_density_layout() -> None:
    g = torch.Generator().manual_seed(5)
    z, mu, logvar = torch.randn(3, 4, 2, generator=g)
    lp = pairwise_log_density(z, mu, logvar)
    assert lp.shape == (4, 4, 2)
    torch.testing.assert_close(lp[1, 3], gaussian_log_density(z[1], mu[3], logvar[3]))


def test_toy_mss_converges_mws_biased_low() -> None:
    """Chen et al.'s toy check: N=200 points, D=3, exact E[log q(z)] over the whole set."""
    g = torch.Generator().manual_seed(0)
    n, d = 200, 3
    mu = torch.randn(n, d, generator=g, dtype=torch.float64)
    logvar = math.log(0.1**2) + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)

    def sample(idx: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(*idx.shape, d, generator=g, dtype=torch.float64)
        return mu[idx] + torch.exp(0.5 * logvar[idx]) * eps

    idx = torch.randint(0, n, (20000,), generator=g)
    lp = pairwise_log_density(sample(idx), mu, logvar)
    exact = float((torch.logsumexp(lp.sum(2), 1) - math.log(n)).mean())
    exact_marg = float((torch.logsumexp(lp, 1) - math.log(n)).sum(1).mean())

    mws, mss, mss_marg = {}, {}, {}
    for b in (8, 32, 128):
        reps = 20000 // b
        batches = torch.rand(reps, n, generator=g).argsort(1)[:, :b]  # without replacement
        z, m, lv = sample(batches), mu[batches], logvar[batches]
        w_joint, _ = torch.vmap(lambda *t: log_qz_mws(*t, n))(z, m, lv)
        s_joint, s_marg = torch.vmap(lambda *t: log_qz_mss(*t, n))(z, m, lv)
        mws[b], mss[b], mss_marg[b] = float(w_joint.mean()), float(s_joint.mean()), float(
            s_marg.mean())
    err = {b: abs(mss[b] - exact) for b in mss}
    assert err[128] < err[32] < err[8]
    assert err[128] < 0.05 * abs(exact)
    assert abs(mss_marg[128] - exact_marg) < 0.05 * abs(exact_marg)
    for b in mws:  # MWS stays biased low, by much more than MSS's error
        assert mws[b] < exact - 1.0
        assert exact - mws[b] > 5 * err[b]


def test_estimator_errors() -> None:
    z = torch.zeros(4, 2)
    with pytest.raises(DislabError, match="dataset_size"):
        total_correlation(z, z, z, estimator="mss")
    with pytest.raises(DislabError, match="dataset_size"):
        total_correlation(z, z, z, estimator="mws")
    with pytest.raises(DislabError, match="smaller than the batch"):
        total_correlation(z, z, z, dataset_size=2)
    with pytest.raises(DislabError, match="estimator"):
        total_correlation(z, z, z, dataset_size=10, estimator="exact")
    with pytest.raises(DislabError, match="shape"):
        log_qz_mws(z, torch.zeros(4, 3), z, 10)
