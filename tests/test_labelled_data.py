"""Labelled data that is not a grid (issue 18, item 2): from_arrays, partial_grid, from_folder.

The reference is a reduced dSprites grid (shape 3 x scale 2 x posX 8 x posY 8, orientation 0,
rendered): over its rows in grid order, ``from_arrays`` must give every metric that draws only
samples *exactly* the grid's value (same seed -> same rows), and the intervention metrics
(BetaVAE, FactorVAE) the same value within sampling noise (they draw the pairs / batches
differently, from the same distribution).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import dislab.data as dd
from dislab.data import DataError
from dislab.metrics import MetricError, available, evaluate
from dislab.metrics.arrays import INTERVENTION_METRICS
from dislab.metrics.beta_vae import beta_vae_score
from dislab.metrics.mig import mig
from dislab.metrics.registry import get_metric

SIZES = (3, 2, 8, 8)
NAMES = ("shape", "scale", "posX", "posY")

#: Parameters that keep every metric to about a second on the 384-point grid.
FAST = {
    "beta_vae": {"num_train": 2000, "num_eval": 2000, "batch_size": 16},
    "factor_vae": {"num_train": 2000, "num_eval": 2000, "num_variance_estimate": 2000,
                   "batch_size": 16},
    "dci": {"num_train": 500, "num_test": 300},
    "downstream_boosted_trees": {"num_train": (50,), "num_test": 200},
    "downstream_logistic_regression": {"num_train": (50,), "num_test": 200},
    "dotran_sampling": {"num_samples": 1000, "max_components": 384},
    "mig_chen": {"num_samples": 1000},
    "elbo_decomposition": {"num_samples": 500, "num_minibatches": 10},
    "modularity": {"num_train": 1000, "num_test": 500},
    "sap": {"num_train": 1000, "num_test": 500},
    "mig": {"num_train": 2000},
    "irs": {"num_train": 2000},
    "unsupervised": {"num_train": 2000},
}
INTERVENTION = {"beta_vae", "factor_vae"}  # compared within sampling noise below


def _params(names: list[str]) -> dict:
    return {k: v for k, v in FAST.items() if k in names}


def reduced_dsprites() -> dd.GroundTruthData:
    """A 384-point grid of rendered dSprites: every scale 0 / 5, orientation 0, posX / posY
    every 4th position."""
    full = dd.load("dsprites")

    def observe(f: np.ndarray) -> np.ndarray:
        g = np.zeros((len(f), 5), dtype=np.int64)
        g[:, 0] = f[:, 0]
        g[:, 1] = 5 * f[:, 1]
        g[:, 3] = 4 * f[:, 2] + 2
        g[:, 4] = 4 * f[:, 3] + 2
        return full.images(g)

    return dd.from_function(SIZES, observe, NAMES, name="dsprites_reduced")


def represent(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image moments as a partly entangled representation: centroid x, centroid y, area, a
    mix of x and y, and a pixel-hash nuisance; constant log-variance."""
    x = x.reshape(len(x), 64, 64).astype(np.float64)
    mass = x.sum(axis=(1, 2)) + 1e-6
    grid = np.arange(64) / 63.0
    cx = (x.sum(axis=1) * grid).sum(axis=1) / mass
    cy = (x.sum(axis=2) * grid).sum(axis=1) / mass
    area = mass / 400.0
    nuisance = np.sin(x[:, ::8, ::8].reshape(len(x), -1) @ np.arange(1, 65) * 0.37)
    m = np.stack([2 * cx - 1, 2 * cy - 1, area, cx + 0.5 * cy, 0.3 * nuisance], axis=1)
    return m.astype(np.float32), np.full(m.shape, -4.0, np.float32)


@pytest.fixture(scope="module")
def grid() -> dd.GroundTruthData:
    return reduced_dsprites()


@pytest.fixture(scope="module")
def rows(grid: dd.GroundTruthData) -> dd.LabelledData:
    idx = np.arange(len(grid))
    return dd.from_arrays(grid.images_uint8_from_index(idx), grid.factors(idx), names=NAMES,
                          name=grid.name)  # the same data set (mig_chen picks factors by name)


def test_rows_of_a_full_grid_score_as_the_grid(grid, rows) -> None:
    names = available()
    a = evaluate(represent, grid, names, seed=3, params=_params(names))
    b = evaluate(represent, rows, names, seed=3, params=_params(names))
    # fairness and the strong downstream task need an addressable grid (skipped on rows)
    assert set(a) == set(names)
    assert set(b) == {n for n in names if not get_metric(n).needs_grid}
    # fairness and the strong downstream task (and IRS) intervene on sampled factor vectors:
    # the rows are drawn with other random numbers than the grid's uniform factors, so they
    # are only comparable in distribution; BetaVAE and FactorVAE are checked below
    for metric in set(b) - set(INTERVENTION_METRICS):
        # same seed, same rows drawn, same factor labels: equal up to float summation order
        for key, value in a[metric].items():
            assert b[metric][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (metric, key)
    # BetaVAE / FactorVAE draw pairs and batches among rows sharing a value instead of setting
    # a grid factor: the same distribution, other random numbers. Each eval accuracy is a mean
    # of 2000 Bernoulli trials (std <= 0.5 / sqrt(2000) = 0.011), so the difference of two
    # independent estimates has std <= 0.016; 0.06 is about four of those.
    for metric in INTERVENTION:
        for key in ("train_accuracy", "eval_accuracy"):
            assert abs(a[metric][key] - b[metric][key]) <= 0.06, (metric, key, a[metric],
                                                                  b[metric])
    assert a["beta_vae"]["eval_accuracy"] > 0.5  # far from chance (0.25): a real comparison


def test_intervention_draws_share_the_value_and_are_uniform(rows) -> None:
    rng = np.random.default_rng(0)
    k = rng.integers(0, 4, size=4000)
    a, b = rows.sample_index_pairs(k, 4, rng)
    fa, fb = rows.factors(a), rows.factors(b)
    kk = np.repeat(k, 4)
    assert np.array_equal(fa[np.arange(len(kk)), kk], fb[np.arange(len(kk)), kk])
    # given the shared factor, the second row's other factors are uniform (as on the grid):
    # posX of the second row when k is shape: 8 values, expected count n/8 each
    sel = kk == 0
    counts = np.bincount(fb[sel, 2], minlength=8)
    expect = sel.sum() / 8
    chi2 = float(((counts - expect) ** 2 / expect).sum())
    assert chi2 < 24.3  # chi-square, 7 degrees of freedom, p = 0.001
    batches = rows.sample_index_fixing(k[:500], 16, rng).reshape(500, 16)
    f = rows.factors(batches.reshape(-1)).reshape(500, 16, 4)
    fixed = f[np.arange(500), :, k[:500]]
    assert np.all(fixed == fixed[:, :1])
    # the other factors do vary inside a batch
    assert np.mean([len(np.unique(f[i, :, (k[i] + 1) % 4])) > 1 for i in range(500)]) > 0.9


def _no_upper_quarter(f: np.ndarray) -> np.ndarray:
    return ~((f[:, 2] >= 4) & (f[:, 3] >= 4))


def test_partial_grid_gets_every_metric(grid) -> None:
    part = dd.partial_grid(grid, _no_upper_quarter)
    assert len(part) == len(grid) * 3 // 4 and not part.is_grid
    assert part.factor_sizes == SIZES  # every value still occurs
    names = available()
    scores = evaluate(represent, part, names, seed=0, params=_params(names))
    # fairness and the strong downstream task set factors to every value: skipped off-grid
    assert set(scores) == {n for n in names if not get_metric(n).needs_grid}
    assert {n for n in names if get_metric(n).needs_grid} == {"fairness", "strong_downstream"}
    for metric, values in scores.items():
        assert all(np.isfinite(v) for v in values.values()), metric
    assert scores["beta_vae"]["eval_accuracy"] > 0.5
    # the same rows through from_arrays (materialised images) score identically
    idx = np.arange(len(part))
    same = dd.from_arrays(part.images_uint8_from_index(idx), part.factors(idx), names=NAMES)
    again = evaluate(represent, same, ["beta_vae", "mig"], seed=0,
                     params=_params(["beta_vae", "mig"]))
    assert again["beta_vae"] == scores["beta_vae"] and again["mig"] == scores["mig"]
    # a factor vector that was removed has no row
    with pytest.raises(DataError, match="no row has the factors"):
        part.index([[0, 0, 7, 7]])
    assert part.index([[0, 0, 7, 3]]).shape == (1,)


def test_partial_dsprites_is_one_line() -> None:
    part = dd.partial_grid(dd.load("dsprites"), lambda f: ~((f[:, 3] >= 16) & (f[:, 4] >= 16)))
    assert len(part) == 737_280 * 3 // 4
    out = beta_vae_score(part, lambda x: represent(x)[0], np.random.default_rng(0),
                         batch_size=4, num_train=60, num_eval=20)
    assert 0.0 <= out["eval_accuracy"] <= 1.0
    f = part.factors(part.sample_index(2000, 0))
    assert not np.any((f[:, 3] >= 16) & (f[:, 4] >= 16))


def test_too_few_rows_per_value_is_one_clear_error() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(50, 1, 8, 8), dtype=np.uint8)
    values = rng.normal(size=50)  # continuous: every value in one row
    data = dd.from_arrays(images, {"size": values, "kind": np.arange(50) % 2})
    with pytest.raises(DataError, match=r"factor 'size' has value .* in only 1 row"):
        beta_vae_score(data, lambda x: x.reshape(len(x), -1)[:, :3], rng, num_train=10,
                       num_eval=5)
    # binned, every bin with at least two rows: it runs
    binned = dd.from_arrays(images, {"size": values, "kind": np.arange(50) % 2},
                            bins={"size": 3})
    assert binned.factor_sizes[1] == 2 and binned.factor_sizes[0] <= 3
    assert np.all(np.bincount(binned.codes[:, 0]) >= 2)
    beta_vae_score(binned, lambda x: x.reshape(len(x), -1)[:, :3], rng, batch_size=4,
                   num_train=10, num_eval=5)
    # metrics that only sample work without binning
    assert np.isfinite(mig(data, lambda x: x.reshape(len(x), -1)[:, :3], rng,
                           num_train=50)["discrete_mig"])


def test_from_arrays_layouts_values_and_errors() -> None:
    rng = np.random.default_rng(1)
    hwc = rng.integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8)
    d = dd.from_arrays(hwc, [["a", 1.5], ["b", 1.5], ["a", 2.0], ["b", 2.0], ["a", 1.5],
                             ["b", 2.0]], names=["letter", "size"])
    assert d.observation_shape == (3, 16, 16)
    assert np.array_equal(d.images_uint8_from_index([2])[0], hwc[2].transpose(2, 0, 1))
    assert list(d.factor_values[0]) == ["a", "b"] and d.factor_sizes == (2, 2)
    assert np.array_equal(d.factors([0, 3]), [[0, 0], [1, 1]])
    binary = dd.from_arrays(np.eye(8, dtype=np.uint8)[None].repeat(3, 0), np.arange(3))
    assert binary.images_uint8_from_index([0]).max() == 255  # 0/1 masks read as binary images
    with pytest.raises(DataError, match="names has 1 entries"):
        dd.from_arrays(hwc, np.zeros((6, 2)), names=["x"])
    with pytest.raises(DataError, match="one value per image"):
        dd.from_arrays(hwc, np.zeros(5))
    with pytest.raises(DataError, match="NaN"):
        dd.from_arrays(hwc, np.array([0.0, 1, 2, np.nan, 4, 5]))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        dd.from_arrays(hwc.astype(np.float32), None)
    with pytest.raises(DataError, match="row index out of range"):
        d.images_from_index([6])
    with pytest.raises(DataError, match="draws its rows uniformly"):
        d.set_sampler(lambda n, r: None)


def test_from_folder_reads_images_and_csv(tmp_path) -> None:
    rng = np.random.default_rng(2)
    lines = ["file,colour,size"]
    pics = []
    for i in range(8):
        a = rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
        pics.append(a)
        Image.fromarray(a).save(tmp_path / f"p{i}.png")
        lines.append(f"p{i}.png,{'red' if i % 2 else 'blue'},{i // 4}")
    (tmp_path / "factors.csv").write_text("\n".join(lines) + "\n")
    data = dd.from_folder(tmp_path, size=16)
    assert data.factor_names == ("colour", "size") and len(data) == 8
    assert np.array_equal(data.images_uint8_from_index([5])[0], pics[5].transpose(2, 0, 1))
    assert list(data.factor_values[0]) == ["blue", "red"]
    assert np.array_equal(data.factors(np.arange(8))[:, 1], np.arange(8) // 4)
    by_name = dd.load("folder", path=str(tmp_path), size=16)
    assert np.array_equal(by_name.codes, data.codes)
    (tmp_path / "bad.csv").write_text("name,size\np0.png,1\nmissing.png,2\n")
    with pytest.raises(DataError, match="missing.png"):
        dd.from_folder(tmp_path, factors="bad.csv", size=16, cache=False)
    with pytest.raises(DataError, match="no file column"):
        (tmp_path / "nofile.csv").write_text("a,b\n1,2\n")
        dd.from_folder(tmp_path, factors="nofile.csv")


def test_unlabelled_data_factor_metrics_say_so(tmp_path) -> None:
    images = np.random.default_rng(3).integers(0, 255, size=(40, 1, 16, 16), dtype=np.uint8)
    data = dd.from_arrays(images)
    assert data.num_factors == 0 and len(data) == 40

    def rep(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = x.reshape(len(x), -1)[:, :3] * 2 - 1
        return m, np.full(m.shape, -2.0, np.float32)

    with pytest.raises(MetricError, match="has no factors"):
        mig(data, rep, np.random.default_rng(0))
    out = evaluate(rep, data, ["mig", "unsupervised", "elbo_decomposition"],
                   params={"elbo_decomposition": {"num_samples": 200, "num_minibatches": 5}})
    assert set(out) == {"unsupervised", "elbo_decomposition"}
    assert np.isfinite(out["elbo_decomposition"]["tc"])
