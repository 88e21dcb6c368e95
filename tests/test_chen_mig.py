"""Chen et al.'s MIG estimator: known answers on analytic posteriors."""

from __future__ import annotations

import numpy as np
import pytest

from dislab.data.base import from_function
from dislab.metrics import available, default_metrics
from dislab.metrics.base import CodeTable, MetricError
from dislab.metrics.chen_mig import chen_mutual_information, mig_chen

SIZES = (4, 5, 6)
DATA = from_function(SIZES, factor_names=("a", "b", "c"))
N = len(DATA)
FACTORS = DATA.factors(np.arange(N)).astype(np.float64)
STANDARD = (FACTORS - FACTORS.mean(0)) / FACTORS.std(0)


def _table(mean: np.ndarray, std: float) -> CodeTable:
    return CodeTable(mean, np.full(mean.shape, 2.0 * np.log(std)))


def test_registered() -> None:
    assert "mig_chen" in available() and "mig_chen" in default_metrics()


def test_factor_copies_give_one() -> None:
    res = mig_chen(DATA, _table(STANDARD, 1e-3), 0)
    assert res["mig_chen"] == pytest.approx(1.0, abs=0.01)
    for name in "abc":
        assert res[f"mig_chen_mi_top_{name}"] == pytest.approx(1.0, abs=0.01)


def test_duplicated_latent_gives_zero_gap() -> None:
    res = mig_chen(DATA, _table(np.c_[STANDARD, STANDARD[:, :1]], 1e-3), 0)
    assert res["mig_chen_factor_a"] == pytest.approx(0.0, abs=0.01)
    assert res["mig_chen_factor_b"] == pytest.approx(1.0, abs=0.01)
    assert res["mig_chen"] == pytest.approx(2.0 / 3.0, abs=0.01)


def test_noise_gives_zero() -> None:
    rng = np.random.default_rng(0)
    res = mig_chen(DATA, _table(0.05 * rng.normal(size=(N, 4)), 1.0), 0)
    assert res["mig_chen"] < 0.02


def test_partial_information_matches_numeric_integral() -> None:
    """A latent that sees factor a through Gaussian noise: I(z; a) by 1-D numeric integration."""
    mean = STANDARD[:, :1] * 0.8
    std = 0.5
    grid = np.linspace(-8, 8, 8001)
    dz = grid[1] - grid[0]
    values = np.unique(mean[:, 0])
    dens = np.exp(-0.5 * ((grid[None] - values[:, None]) / std) ** 2) / (std * np.sqrt(2 * np.pi))
    mix = dens.mean(0)
    h_z = -(mix * np.log(mix)).sum() * dz
    h_cond = np.mean(-(dens * np.log(dens + 1e-300)).sum(1) * dz)
    mi, h = chen_mutual_information(mean, np.full(mean.shape, 2 * np.log(std)), SIZES, [0, 1],
                                    np.random.default_rng(1), num_samples=40_000,
                                    max_components=None)
    assert h[0] == pytest.approx(h_z, abs=0.02)
    assert mi[0, 0] == pytest.approx(h_z - h_cond, abs=0.02)
    assert mi[0, 1] == pytest.approx(0.0, abs=0.02)


def test_subsampled_components_close_to_exact() -> None:
    rng = np.random.default_rng(2)
    mean = STANDARD @ rng.normal(size=(3, 3)) * 0.5
    table = _table(mean, 0.3)
    exact = mig_chen(DATA, table, 0, num_samples=20_000, max_components=None)
    approx = mig_chen(DATA, table, 0, num_samples=20_000, max_components=40)
    assert approx["mig_chen"] == pytest.approx(exact["mig_chen"], abs=0.05)


def test_factor_selection() -> None:
    table = _table(STANDARD, 1e-3)
    by_name = mig_chen(DATA, table, 0, factors=["b", "c"])
    by_index = mig_chen(DATA, table, 0, factors=[1, 2])
    assert by_name == by_index
    assert "mig_chen_factor_a" not in by_name and "mig_chen_factor_c" in by_name
    with pytest.raises(MetricError, match="unknown factor"):
        mig_chen(DATA, table, 0, factors=["shape"])
    with pytest.raises(MetricError, match="out of range"):
        mig_chen(DATA, table, 0, factors=[7])


def test_reproducible_and_needs_posterior() -> None:
    table = _table(STANDARD @ np.ones((3, 2)), 0.4)
    assert mig_chen(DATA, table, 3) == mig_chen(DATA, table, 3)
    assert mig_chen(DATA, table, 3) != mig_chen(DATA, table, 4)
    with pytest.raises(MetricError, match="posterior"):
        mig_chen(DATA, CodeTable(STANDARD), 0)


def test_function_representation_equals_code_table() -> None:
    data = from_function(SIZES, observe=lambda f: f.astype(np.float32))
    fn = lambda x: (x / 3.0, np.full(x.shape, np.log(0.1)))  # noqa: E731
    table = CodeTable(FACTORS / 3.0, np.full(FACTORS.shape, np.log(0.1)))
    assert mig_chen(data, fn, 3) == pytest.approx(mig_chen(data, table, 3))
