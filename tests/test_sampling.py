"""Non-uniform and dependent factor samplers: frequencies match the stated joint."""

import numpy as np
import pytest
from scipy import stats

import dislab.data as dd
from dislab.data import sampling as sp


def _chi2_ok(factors, sizes, probs, alpha=1e-3):
    """Pearson chi-square goodness of fit of sampled factor vectors to a joint table."""
    flat = np.ravel_multi_index(tuple(factors.T), sizes)
    counts = np.bincount(flat, minlength=int(np.prod(sizes)))
    expected = probs.reshape(-1) * len(factors)
    keep = expected > 0
    assert counts[~keep].sum() == 0, "drew a grid point of probability 0"
    stat = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    return stat < stats.chi2.ppf(1 - alpha, keep.sum() - 1), stat


def test_uniform_sampler_matches_uniform_joint():
    s = sp.UniformSampler([3, 4])
    f = s(30000, 0)
    ok, stat = _chi2_ok(f, (3, 4), s.probabilities())
    assert ok, stat


def test_joint_sampler_matches_table_and_zero_cells():
    rng = np.random.default_rng(0)
    table = rng.random((3, 4, 2))
    table[0, 1, :] = 0.0
    s = sp.JointSampler(table * 7.0)  # unnormalised weights are fine
    assert np.isclose(s.probabilities().sum(), 1.0)
    f = s(50000, 1)
    ok, stat = _chi2_ok(f, (3, 4, 2), s.probabilities())
    assert ok, stat
    # the test can fail: the same draws do not fit a different table
    bad, _ = _chi2_ok(f, (3, 4, 2), np.full((3, 4, 2), 1 / 24))
    assert not bad


def test_product_sampler_marginals_and_independence():
    s = sp.ProductSampler([3, 5], [[1, 2, 7], None])
    assert np.allclose(s.marginal(0), [0.1, 0.2, 0.7]) and np.allclose(s.marginal(1), 0.2)
    f = s(40000, 2)
    ok, stat = _chi2_ok(f, (3, 5), s.probabilities())
    assert ok, stat
    assert np.allclose(s.probabilities(), np.outer([0.1, 0.2, 0.7], np.full(5, 0.2)))


def test_pair_table_has_uniform_marginals_and_dependence():
    for n_i, n_j in [(32, 32), (6, 40)]:
        for neg in (False, True):
            t = sp.pair_table(n_i, n_j, width=0.08, negative=neg)
            assert np.allclose(t.sum(1), 1 / n_i, atol=1e-9)
            assert np.allclose(t.sum(0), 1 / n_j, atol=1e-9)
            a, b = np.meshgrid(np.arange(n_i), np.arange(n_j), indexing="ij")
            ea, eb = (t * a).sum(), (t * b).sum()
            cov = (t * (a - ea) * (b - eb)).sum()
            corr = cov / np.sqrt((t * (a - ea) ** 2).sum() * (t * (b - eb) ** 2).sum())
            assert (corr < -0.8) if neg else (corr > 0.8), corr
    wide = sp.pair_table(8, 8, width=100.0)
    assert np.allclose(wide, 1 / 64, atol=1e-4)  # very wide band = independence


def test_correlated_pair_on_dsprites_keeps_marginals():
    data = dd.load("dsprites")
    s = sp.correlated_pair(data, "posX", "posY", width=0.05)
    data.set_sampler(s)
    f = data.sample_factors(40000, 3)
    # stated: posX and posY stay uniform, other factors independent uniform
    for j in range(5):
        counts = np.bincount(f[:, j], minlength=data.factor_sizes[j])
        p = stats.chisquare(counts).pvalue
        assert p > 1e-3, (data.factor_names[j], p)
    assert np.corrcoef(f[:, 3], f[:, 4])[0, 1] > 0.9
    assert abs(np.corrcoef(f[:, 1], f[:, 3])[0, 1]) < 0.03
    # the pair's joint frequencies match the table
    ok, stat = _chi2_ok(f[:, 3:5], (32, 32), s.table)
    assert ok, stat
    # full joint of the sampler: factorises into the table and uniform others
    p = s.probabilities()
    assert p.shape == data.factor_sizes and np.isclose(p.sum(), 1.0)
    assert np.allclose(p.sum(axis=(0, 1, 2)), s.table)
    idx = data.sample_index(100, 4)
    assert np.array_equal(data.factors(idx), data.sample_factors(100, 4))


def test_load_with_sampler_spec_and_object():
    data = dd.load("dsprites", sampler={"kind": "product",
                                        "marginals": {"shape": [1, 0, 0], "scale": [0, 0, 0, 0,
                                                                                    0, 1]}})
    f = data.sample_factors(500, 0)
    assert np.all(f[:, 0] == 0) and np.all(f[:, 1] == 5)
    data = dd.load("dsprites", sampler={"kind": "pair", "factors": ["scale", "posX"],
                                        "width": 0.02, "negative": True})
    f = data.sample_factors(3000, 0)
    assert np.corrcoef(f[:, 1], f[:, 3])[0, 1] < -0.9
    s = sp.UniformSampler(data.factor_sizes)
    assert dd.load("dsprites", sampler=s)._sampler is s


def test_batches_follow_the_sampler():
    data = dd.from_function([4, 4])
    data.set_sampler(sp.JointSampler(np.diag([1.0, 1.0, 1.0, 1.0])))
    x = next(data.batches(256, seed=0))
    assert x.shape == (256, 2) and bool((x[:, 0] == x[:, 1]).all())


def test_sampler_errors():
    data = dd.load("dsprites")
    with pytest.raises(dd.DataError, match=r"factor sizes \[3, 4\] but dsprites has"):
        dd.load("dsprites", sampler=sp.UniformSampler([3, 4]))
    with pytest.raises(dd.DataError, match="unknown sampler kind 'gauss'"):
        dd.load("dsprites", sampler={"kind": "gauss"})
    with pytest.raises(dd.DataError, match="unknown factor 'colour'"):
        sp.correlated_pair(data, "colour", "posX")
    with pytest.raises(dd.DataError, match="non-negative"):
        sp.JointSampler([[0.5, -0.1]])
    with pytest.raises(dd.DataError, match="shape"):
        sp.ProductSampler([3, 2], [[1, 1], None])
    with pytest.raises(dd.DataError, match="sampler must be"):
        dd.load("dsprites", sampler=3)
