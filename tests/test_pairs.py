"""The pair sampler follows its stated distribution (dislab.data.pairs)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dislab.data import DataError, from_function
from dislab.data.pairs import jump_pmf, pair_batches, sample_pair_factors, sample_pairs


def _grid(sizes, names=None):
    return from_function(sizes, factor_names=names)


def _analytic_single(start: int, size: int, rate: float, edge: str) -> np.ndarray:
    """The stated pmf, written out independently of the module."""
    if size == 1:
        return np.ones(1)
    b = math.log(size) / rate
    q = math.exp(-1.0 / b)
    out = np.zeros(size)
    if edge == "truncate":
        w = np.array([math.exp(-abs(v - start) / b) for v in range(size)])
        return w / w.sum()
    for j in range(-2000, 2001):  # two-sided geometric on the integers
        pj = (1 - q) / (1 + q) * q ** abs(j)
        t = start + j
        if edge == "clip":
            t = min(max(t, 0), size - 1)
        else:
            while t < 0 or t > size - 1:
                t = -t if t < 0 else 2 * (size - 1) - t
        out[t] += pj
    return out


@pytest.mark.parametrize("edge", ["truncate", "reflect", "clip"])
@pytest.mark.parametrize("start,size", [(0, 6), (3, 6), (39, 40), (1, 2), (2, 3)])
def test_jump_pmf_matches_formula(edge, start, size):
    np.testing.assert_allclose(jump_pmf(start, size, 1.0, edge),
                               _analytic_single(start, size, 1.0, edge), atol=1e-12)


def test_clip_edge_mass_closed_form():
    # P(v = 0 | s) = q^s / (1 + q) for clipping, q = exp(-rate / log n)
    size, s, rate = 10, 3, 2.0
    q = math.exp(-rate / math.log(size))
    assert jump_pmf(s, size, rate, "clip")[0] == pytest.approx(q**s / (1 + q), rel=1e-12)


def _analytic_joint(sizes, start, rate, edge, fixed):
    tabs = [_analytic_single(s, n, rate, edge) for s, n in zip(start, sizes)]
    for k in range(len(sizes)):
        if fixed[k]:
            tabs[k] = np.eye(sizes[k])[start[k]]
    movable = [k for k in range(len(sizes)) if not fixed[k] and sizes[k] > 1]
    p0 = np.prod([tabs[k][start[k]] for k in range(len(sizes))])
    joint = {}
    for v in itertools.product(*[range(n) for n in sizes]):
        if v == tuple(start):
            continue
        p = np.prod([tabs[k][v[k]] for k in range(len(sizes))])
        diff = [k for k in range(len(sizes)) if v[k] != start[k]]
        if len(diff) == 1 and diff[0] in movable:
            k = diff[0]
            p += p0 / len(movable) * tabs[k][v[k]] / (1 - tabs[k][start[k]])
        joint[v] = p
    return joint


@pytest.mark.parametrize("edge", ["truncate", "reflect"])
def test_empirical_joint_matches_analytic(edge):
    sizes = (3, 4, 5)
    data = _grid(sizes, ["shape", "a", "b"]).set_sampler(
        lambda n, rng: np.tile(np.array([[1, 0, 2]]), (n, 1)))
    rate = 1.5
    n = 200_000
    s, v = sample_pair_factors(data, n, rng=0, rate=rate, edge=edge)  # shape fixed by "auto"
    assert np.all(s == [1, 0, 2])
    joint = _analytic_joint(sizes, [1, 0, 2], rate, edge, [True, False, False])
    assert sum(joint.values()) == pytest.approx(1.0, abs=1e-12)
    counts = {}
    for row in map(tuple, v):
        counts[row] = counts.get(row, 0) + 1
    assert set(counts) <= {k for k, p in joint.items() if p > 0}
    # Pearson chi-square over outcomes with expected count >= 5, compared with a generous
    # bound (mean = dof, sd = sqrt(2 dof)): fails for any wrong pmf at this n.
    keys = [k for k, p in joint.items() if p * n >= 5]
    exp = np.array([joint[k] * n for k in keys])
    obs = np.array([counts.get(k, 0) for k in keys])
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    dof = len(keys) - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof)
    tv = 0.5 * sum(abs(counts.get(k, 0) / n - p) for k, p in joint.items())
    assert tv < 0.01


def test_at_least_one_change_and_fixed_factor_never_moves():
    data = _grid((3, 6, 40, 32, 32), ["shape", "scale", "orientation", "position_x",
                                       "position_y"])
    s, v = sample_pair_factors(data, 20_000, rng=1)
    assert np.all(s[:, 0] == v[:, 0])
    assert np.all(np.any(s != v, axis=1))
    # an explicit fixed factor by name, and none fixed
    s, v = sample_pair_factors(data, 5000, rng=2, fixed_factors=["scale"])
    assert np.all(s[:, 1] == v[:, 1]) and np.any(s[:, 0] != v[:, 0])
    s, v = sample_pair_factors(data, 5000, rng=2, fixed_factors=None)
    assert np.any(s[:, 0] != v[:, 0])


def test_changes_option_moves_exactly_that_many_factors_by_the_stay_free_jump():
    sizes = (3, 6, 8, 5, 4)
    data = _grid(sizes, ["shape", "scale", "orientation", "position_x", "position_y"])
    n = 40_000
    for c in (1, 2, 4):
        s, v = sample_pair_factors(data, n, rng=c, changes=c)
        moved = s != v
        assert np.all(s[:, 0] == v[:, 0])  # shape stays fixed ("auto")
        assert np.all(moved.sum(axis=1) == c)
        # the changed subset is uniform: each movable factor changes in c/4 of the pairs
        share = moved[:, 1:].mean(axis=0)
        assert np.all(np.abs(share - c / 4) <= 4 * np.sqrt(c / 4 * (1 - c / 4) / n))
    # a changed factor's new value follows its jump pmf without the stay outcome
    s, v = sample_pair_factors(data, n, rng=7, changes=1)
    k, start = 2, 3
    rows = (s[:, k] == start) & (s[:, k] != v[:, k])
    p = jump_pmf(start, sizes[k])
    p[start] = 0.0
    p /= p.sum()
    obs = np.bincount(v[rows, k], minlength=sizes[k])
    exp = p * rows.sum()
    ok = exp > 0
    assert obs[start] == 0
    dof = int(ok.sum()) - 1
    chi2 = float(((obs[ok] - exp[ok]) ** 2 / exp[ok]).sum())
    assert chi2 < dof + 6 * math.sqrt(2 * dof)
    # deterministic, and the default (None) is the reference construction
    a = sample_pair_factors(data, 100, rng=9, changes=2)
    b = sample_pair_factors(data, 100, rng=9, changes=2)
    assert np.array_equal(a[1], b[1])
    with pytest.raises(DataError, match="changes must be a whole number from 1 to 4"):
        sample_pair_factors(data, 4, changes=5)
    with pytest.raises(DataError, match="changes"):
        sample_pair_factors(data, 4, changes=0.5)
    batch = next(pair_batches(data, 6, seed=0, changes=1))
    assert batch.shape[:2] == (6, 2)


def test_jump_scale_grows_with_factor_size():
    data = _grid((6, 40), ["a", "b"])
    s, v = sample_pair_factors(data, 20_000, rng=3, fixed_factors=None, edge="reflect")
    mean_abs = np.abs(v - s).mean(axis=0)
    assert mean_abs[1] > mean_abs[0]


def test_pair_batches_shape_determinism_and_content():
    def observe(f):
        return np.repeat(f[:, None, None, :].astype(np.float32) / 10.0, 4, axis=1)

    data = from_function((3, 5), observe, ["shape", "a"])
    b1 = next(pair_batches(data, 8, seed=5))
    b2 = next(pair_batches(data, 8, seed=5))
    assert tuple(b1.shape) == (8, 2, 4, 1, 2)
    assert b1.dtype.is_floating_point
    np.testing.assert_array_equal(b1.numpy(), b2.numpy())
    x = b1.numpy()
    assert np.all(x[:, 0, 0, 0, 0] == x[:, 1, 0, 0, 0])  # shape never changes
    assert np.all(x[:, 0, 0, 0, 1] != x[:, 1, 0, 0, 1])  # the only movable factor moved
    f, obs = sample_pairs(data, 4, rng=0)
    assert f.shape == (4, 2, 2) and obs.shape == (4, 2, 4, 1, 2)


def test_bad_options_raise():
    data = _grid((3, 5), ["shape", "a"])
    with pytest.raises(DataError, match="edge"):
        sample_pair_factors(data, 4, edge="wrap")
    with pytest.raises(DataError, match="unknown fixed factor"):
        sample_pair_factors(data, 4, fixed_factors=["nope"])
    with pytest.raises(DataError, match="no factor that can change"):
        sample_pair_factors(data, 4, fixed_factors=["shape", "a"])
    with pytest.raises(DataError, match="rate"):
        sample_pair_factors(data, 4, rate=0.0)
