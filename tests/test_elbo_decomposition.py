"""ELBO decomposition (Chen et al.): identity and known answers, checked by numeric integration."""

from __future__ import annotations

import numpy as np
import pytest

from dislab.data.base import from_function
from dislab.metrics import available, default_metrics
from dislab.metrics.base import CodeTable, MetricError
from dislab.metrics.elbo_decomposition import elbo_decomposition


def _numeric_terms(mu: np.ndarray, lv: np.ndarray) -> dict[str, float]:
    """MI, TC, dimension-wise KL and E KL of a 2-D posterior table by grid integration."""
    g = np.linspace(-9, 9, 1201)
    dz = g[1] - g[0]
    var = np.exp(lv)
    d0 = np.exp(-0.5 * (g[None] - mu[:, :1]) ** 2 / var[:, :1]) / np.sqrt(2 * np.pi * var[:, :1])
    d1 = np.exp(-0.5 * (g[None] - mu[:, 1:]) ** 2 / var[:, 1:]) / np.sqrt(2 * np.pi * var[:, 1:])
    q = np.einsum("ni,nj->ij", d0, d1) / len(mu)
    q0, q1 = d0.mean(0), d1.mean(0)
    h = -(q * np.log(q + 1e-300)).sum() * dz * dz
    h0 = -(q0 * np.log(q0 + 1e-300)).sum() * dz
    h1 = -(q1 * np.log(q1 + 1e-300)).sum() * dz
    h_cond = np.mean((0.5 * (np.log(2 * np.pi * np.e) + lv)).sum(1))
    ez2 = (mu**2 + var).mean(0)
    dim_kl = -np.array([h0, h1]) + 0.5 * ez2 + 0.5 * np.log(2 * np.pi)
    kl = (0.5 * (mu**2 + var - lv - 1)).mean(0).sum()
    return {"mi": h - h_cond, "tc": h0 + h1 - h, "dimwise_kl": dim_kl.sum(), "kl": kl}


def test_registered() -> None:
    assert "elbo_decomposition" in available()
    assert "elbo_decomposition" in default_metrics()


def test_identity_and_terms_match_numeric_integration() -> None:
    rng = np.random.default_rng(1)
    data = from_function((3, 4))
    mu = rng.normal(size=(12, 2)) * 1.2
    mu[:, 1] += 0.8 * mu[:, 0]  # dependent latents: a non-zero TC
    lv = rng.normal(size=(12, 2)) * 0.3 - 1.0
    ref = _numeric_terms(mu, lv)
    # the decomposition is an identity: the three terms add up to the average KL
    assert ref["mi"] + ref["tc"] + ref["dimwise_kl"] == pytest.approx(ref["kl"], abs=1e-6)
    assert ref["tc"] > 0.05
    res = elbo_decomposition(data, CodeTable(mu, lv), 0, num_samples=100_000,
                             max_components=None)
    assert res["kl"] == pytest.approx(ref["kl"], abs=1e-6)
    for key in ("mi", "tc", "dimwise_kl"):
        assert res[key] == pytest.approx(ref[key], abs=0.02), key
    assert res["kl_estimate"] == pytest.approx(ref["kl"], abs=0.02)
    # stratified sampling sees the same mixture
    assert res["mi_mss"] == pytest.approx(ref["mi"], abs=0.05)
    assert res["tc_mss"] == pytest.approx(ref["tc"], abs=0.05)


def test_independent_latents_have_zero_tc() -> None:
    """Latent j depends only on factor j of a full grid: q(z) = q(z_0) q(z_1) exactly."""
    data = from_function((8, 8))
    f = data.factors(np.arange(len(data))).astype(np.float64)
    mu = (f - 3.5) / 2.0
    table = CodeTable(mu, np.full(mu.shape, np.log(0.05**2)))
    res = elbo_decomposition(data, table, 0, num_samples=20_000, max_components=None)
    assert res["tc"] == pytest.approx(0.0, abs=0.02)
    assert res["mi"] == pytest.approx(np.log(64), abs=0.05)  # posteriors barely overlap


def test_duplicated_latents_tc_is_their_mutual_information() -> None:
    """z_0, z_1 two noisy copies of one factor: TC = I(z_0; z_1) = H(factor) for tiny noise."""
    data = from_function((8, 3))
    f = data.factors(np.arange(len(data))).astype(np.float64)
    mu = np.c_[f[:, 0], f[:, 0]] / 3.0
    table = CodeTable(mu, np.full(mu.shape, np.log(1e-4)))
    res = elbo_decomposition(data, table, 0, num_samples=20_000, max_components=None)
    assert res["tc"] == pytest.approx(np.log(8), abs=0.02)
    # with larger noise: compare with the numeric I(z_0; z_1) = TC of the 2-D mixture
    lv = np.full(mu.shape, np.log(0.3**2))
    ref = _numeric_terms(mu, lv)
    res = elbo_decomposition(data, CodeTable(mu, lv), 0, num_samples=50_000)
    assert res["tc"] == pytest.approx(ref["tc"], abs=0.03)


def test_subsampled_components_close_to_exact() -> None:
    rng = np.random.default_rng(3)
    data = from_function((6, 7, 5))
    f = data.factors(np.arange(len(data))).astype(np.float64)
    mu = (f - f.mean(0)) / f.std(0) @ rng.normal(size=(3, 3)) * 0.7
    table = CodeTable(mu, np.full(mu.shape, np.log(0.1)))
    exact = elbo_decomposition(data, table, 0, num_samples=5000, max_components=None)
    approx = elbo_decomposition(data, table, 0, num_samples=5000, max_components=50,
                                num_neighbours=64)
    for key in ("mi", "tc", "dimwise_kl"):
        assert approx[key] == pytest.approx(exact[key], abs=0.05), key


def test_minibatch_weighted_sampling_is_biased_stratified_is_not() -> None:
    data = from_function((10, 10))
    rng = np.random.default_rng(4)
    mu = rng.normal(size=(100, 3))
    table = CodeTable(mu, np.full(mu.shape, np.log(0.2)))
    res = elbo_decomposition(data, table, 0, num_samples=20_000, max_components=None,
                             minibatch_size=50, num_minibatches=200)
    assert res["mi_mss"] == pytest.approx(res["mi"], abs=0.15)
    assert res["mi_mws"] > res["mi"] + 0.3  # MWS underestimates log q(z) (Chen et al. 2018)


def test_reproducible_and_bad_input() -> None:
    data = from_function((4, 4))
    table = CodeTable(np.random.default_rng(5).normal(size=(16, 2)), np.zeros((16, 2)))
    assert elbo_decomposition(data, table, 9) == elbo_decomposition(data, table, 9)
    with pytest.raises(MetricError, match="posterior"):
        elbo_decomposition(data, CodeTable(np.zeros((16, 2))), 0)
    with pytest.raises(MetricError, match="minibatch_size"):
        elbo_decomposition(data, table, 0, minibatch_size=1)
