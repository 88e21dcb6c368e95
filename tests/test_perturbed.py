"""Perturbed and pixel-noise data sets (dislab.data.perturbed)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import dislab.data as dd
from dislab.data import DataError, from_function
from dislab.data.perturbed import GratingPattern, PerturbedData, perturb


def _block_world(value: float | None = None):
    """Toy image data set: a 3 x 5 block at (x, y) on a 1 x 32 x 32 canvas, plus a 'shape'
    factor; ``value`` fills the whole canvas instead (no clipping anywhere)."""

    def observe(f):
        n = f.shape[0]
        img = np.zeros((n, 1, 32, 32), np.float32)
        if value is not None:
            img[:] = value
            return img
        for i, (s, x, y) in enumerate(f):
            img[i, 0, 4 + y:9 + y, 4 + x:7 + x] = 1.0 if s == 0 else 0.8
        return img

    return from_function((2, 16, 16), observe, ["shape", "x", "y"], name="blocks")


def test_image_is_a_deterministic_function_of_the_factors():
    for kind in ("structured", "noise"):
        data = perturb(_block_world(), kind=kind, epsilon=0.2)
        f = data.sample_factors(40, rng=0)
        a = data.images(f)
        b = data.images(f[::-1])[::-1]  # other batch order
        c = np.concatenate([data.images(f[:7]), data.images(f[7:])])
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        again = perturb(_block_world(), kind=kind, epsilon=0.2)  # a fresh object
        np.testing.assert_array_equal(a, again.images(f))
        np.testing.assert_array_equal(a, data.images_from_index(data.index(f)))
        assert data.factor_sizes == (2, 16, 16) and data.factor_names == ("shape", "x", "y")


@pytest.mark.parametrize("kind", ["structured", "noise"])
@pytest.mark.parametrize("eps", [0.05, 0.175])
def test_perturbation_stays_within_epsilon(kind, eps):
    base = _block_world()
    data = perturb(base, kind=kind, epsilon=eps)
    f = data.sample_factors(64, rng=1)
    diff = data.images(f) - base.images(f)
    assert np.abs(diff).max() <= eps + 1e-6
    assert np.abs(diff).max() > 0.5 * eps  # it does perturb
    x = data.images(f)
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_noise_is_uniform_in_minus_eps_eps_and_independent_of_factors():
    base = _block_world(value=0.5)  # mid-grey: no clipping
    data = perturb(base, kind="noise", epsilon=0.1)
    f = data.sample_factors(20, rng=2)
    d = (data.images(f) - 0.5).ravel()
    assert stats.kstest(d, stats.uniform(loc=-0.1, scale=0.2).cdf).pvalue > 1e-3
    # different grid points get different noise; a different seed gives other noise
    g = data.factors(np.array([0, 1]))
    x = data.images(g)
    assert not np.allclose(x[0], x[1])
    other = perturb(base, kind="noise", epsilon=0.1, seed=1)
    assert not np.allclose(other.images(g), x)


def test_grating_moves_with_the_sum_of_factor_steps():
    # On a grey canvas (no clipping) the perturbation depends on the factors only through the
    # sum of their steps (modulo the period): a step in x then a step back in y restores it.
    base = _block_world(value=0.5)
    data = perturb(base, kind="structured", epsilon=0.1)
    assert isinstance(data.pattern, GratingPattern)
    assert data.pattern.group_names == [["x", "y"]]  # shape is categorical: left out
    w = np.array([[0, 5, 7]])
    np.testing.assert_array_equal(data.images(w), data.images(w + [0, 1, -1]))
    np.testing.assert_array_equal(data.images(w), data.images(w + [0, 2, 2]))  # one period
    np.testing.assert_array_equal(data.images(w), data.images(w + [1, 0, 0]))  # shape: no phase
    step_x = data.images(w + [0, 1, 0]) - data.images(w)
    both = data.images(w + [0, 1, 1]) - data.images(w)
    assert np.abs(step_x).sum() > 0
    # a step along x + y changes the image more than a step along one factor
    assert (both**2).sum() > (step_x**2).sum()


def test_difference_groups_and_pairs():
    base = _block_world(value=0.5)
    data = perturb(base, groups=[["x", "-y"]], epsilon=0.1)
    w = np.array([[0, 5, 7]])
    np.testing.assert_array_equal(data.images(w), data.images(w + [0, 1, 1]))
    pairs = GratingPattern(dd.load("dsprites"), groups="pairs")
    assert pairs.group_names == [["scale", "orientation"], ["posX", "posY"]]


def test_custom_pattern_is_pluggable_and_checked():
    base = _block_world(value=0.5)

    def ramp(f):  # brightness follows x - y, deliberately out of range (clipped to [-1, 1])
        v = (f[:, 1] - f[:, 2]).astype(np.float32)
        return np.broadcast_to(v[:, None, None, None], (len(f), 1, 32, 32)).copy()

    data = perturb(base, pattern=ramp, epsilon=0.1)
    x = data.images(np.array([[0, 3, 3], [0, 4, 3], [0, 9, 3]]))
    np.testing.assert_allclose(x[:, 0, 0, 0], [0.5, 0.6, 0.6], atol=1e-6)
    bad = perturb(base, pattern=lambda f: np.zeros((len(f), 2, 2)), epsilon=0.1)
    with pytest.raises(DataError, match="pattern returned shape"):
        bad.images(np.array([[0, 0, 0]]))
    with pytest.raises(DataError, match="pattern options"):
        perturb(base, pattern=ramp, period=3)


def test_registered_names_and_defaults():
    ds = dd.load("dsprites_perturbed")
    assert isinstance(ds, PerturbedData) and ds.epsilon == 0.1 and ds.kind == "structured"
    assert ds.name == "dsprites_perturbed" and ds.factor_sizes == (3, 6, 40, 32, 32)
    assert dd.load("dsprites_noise").kind == "noise"
    assert dd.load("shapes3d_perturbed").epsilon == 0.175
    assert dd.load("shapes3d_noise").epsilon == 0.175
    generic = dd.load("perturbed", base="dsprites", kind="noise", epsilon=0.3)
    assert generic.epsilon == 0.3 and generic.kind == "noise"
    d = ds.describe()
    assert d["base"] == "dsprites" and d["pattern"] == "grating"
    x = ds.images(ds.sample_factors(4, rng=0))
    assert x.shape == (4, 1, 64, 64) and x.dtype == np.float32


def test_bad_options_raise():
    base = _block_world()
    with pytest.raises(DataError, match="kind"):
        perturb(base, kind="blur")
    with pytest.raises(DataError, match="epsilon"):
        perturb(base, epsilon=2.0)
    with pytest.raises(DataError, match="unknown factor"):
        perturb(base, groups=[["x", "z"]])
    with pytest.raises(DataError, match="bad option"):
        perturb(base, colour="red")
    with pytest.raises(DataError, match="image"):
        perturb(from_function((3, 4)))
