"""dislab.metrics.score: codes and factors as arrays, routed through the metric suite."""

from __future__ import annotations

import numpy as np
import pytest

from dislab.data import from_function
from dislab.metrics import CodeTable, MetricError, evaluate, score, score_records
from dislab.metrics.arrays import SampleData, infer_factor_kinds
from dislab.metrics.utils import histogram_discretize

DATA = from_function([4, 5, 3], factor_names=["a", "b", "c"])
N = len(DATA)


def _grid_codes(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = DATA.factors(np.arange(N))
    mean = np.c_[f[:, 0] + 0.3 * f[:, 1], f[:, 1], np.sin(f[:, 2]), rng.normal(size=N)]
    mean = (mean + 0.05 * rng.normal(size=mean.shape)).astype(np.float32)
    logvar = np.full(mean.shape, -2.0, np.float32) + 0.1 * rng.normal(size=mean.shape)
    return f, mean, logvar.astype(np.float32)


SMALL = {
    "mig": {"num_train": 300},
    "sap": {"num_train": 200, "num_test": 100},
    "dci": {"num_train": 200, "num_test": 100},
    "modularity": {"num_train": 200, "num_test": 100},
    "unsupervised": {"num_train": 200},
    "downstream_boosted_trees": {"num_train": [10, 40], "num_test": 50},
    "mcc": {"num_train": 300},
    "dci_es": {"num_train": 200, "num_test": 100, "capacities": [1, 2, 4]},
    "infomec": {"num_train": 200},
    "mig_sup": {"num_train": 300},
    "dcimig": {"num_train": 300},
    "elbo_decomposition": {"num_samples": 100, "max_components": 50, "num_minibatches": 2},
    "mig_chen": {"num_samples": 200, "max_components": 30},
    "reduced_downstream": {"num_train": [60], "num_test": 40},
}


def test_score_equals_evaluate_on_the_grid_samples() -> None:
    """With the codes of every grid point in grid order and ``sampling="resample"`` each metric
    draws the same points with the same random stream as on the grid: identical numbers."""
    f, mean, logvar = _grid_codes()
    names = list(SMALL)
    want = evaluate(CodeTable(mean, logvar), DATA, names, seed=7, params=SMALL)
    got = score(mean, f, names, seed=7, logvar=logvar, sampling="resample", params=SMALL,
                factor_names=DATA.factor_names)
    assert set(got) == set(names)
    assert got == want


def test_split_routes_train_and_test_draws_to_disjoint_rows() -> None:
    f, mean, _ = _grid_codes()
    data = SampleData(f, ["discrete"] * 3, ["a", "b", "c"], 20, "split", 0.25, seed=1)
    train, test = data._pools["train"], data._pools["test"]
    assert len(test) == 15 and len(train) == 45
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.r_[train, test]), np.arange(N))
    rng = np.random.default_rng(0)
    assert set(data.sample_split_index(10, rng, "test")) <= set(test)
    drawn = data.sample_split_index(1000, rng, "train")  # more than the part holds: all of it
    assert np.array_equal(np.sort(drawn), np.sort(train))
    # the same seed gives the same split and numbers; another seed another split
    a = score(mean, f, "dci", seed=3, params={"dci": {"num_train": 40, "num_test": 15}})
    b = score(mean, f, "dci", seed=3, params={"dci": {"num_train": 40, "num_test": 15}})
    assert a == b
    other = SampleData(f, ["discrete"] * 3, ["a", "b", "c"], 20, "split", 0.25, seed=2)
    assert not np.array_equal(other._pools["test"], test)


def test_torch_input_and_factor_kinds() -> None:
    torch = pytest.importorskip("torch")
    f, mean, _ = _grid_codes()
    p = {"mcc": {"num_train": 50}}
    assert score(torch.from_numpy(mean), torch.from_numpy(f), "mcc", params=p) == \
        score(mean, f, "mcc", params=p)
    rng = np.random.default_rng(0)
    cont = rng.normal(size=(100, 2))
    mixed = np.c_[rng.integers(0, 3, 100), cont]
    assert infer_factor_kinds(mixed) == ["discrete", "continuous", "continuous"]
    data = SampleData(mixed, infer_factor_kinds(mixed), ["x", "y", "z"], 20, "split", 0.2, 0)
    # continuous factors: disentanglement_lib's 20-bin histogram discretiser, as labels 0..m-1
    want = np.unique(histogram_discretize(cont[:, 0], 20), return_inverse=True)[1].reshape(-1)
    assert np.array_equal(data.factors(np.arange(100))[:, 1], want)
    assert np.array_equal(data.row_values(np.arange(100))[:, 1:], cont)
    # string labels are discrete classes
    labels = np.array(["red", "blue"] * 50)
    rec = score_records(rng.normal(size=(100, 2)), labels, "mig")
    assert rec["data"]["factor_kinds"] == ["discrete"] and rec["data"]["factor_sizes"] == [2]


@pytest.mark.parametrize("name", ["beta_vae", "factor_vae", "irs", "fairness",
                                  "strong_downstream"])
def test_intervention_metrics_say_what_they_need(name: str) -> None:
    f, mean, _ = _grid_codes()
    with pytest.raises(MetricError, match="evaluate"):
        score(mean, f, name)


def test_bad_inputs_get_one_clear_error() -> None:
    f, mean, _ = _grid_codes()
    with pytest.raises(MetricError, match="rows"):
        score(mean[:-1], f, "mig")
    bad = f.astype(float)
    bad[3, 1] = np.nan
    with pytest.raises(MetricError, match="NaN"):
        score(mean, bad, "mig")
    with pytest.raises(MetricError, match="factor_kinds"):
        score(mean, f, "mig", factor_kinds=["discrete"])
    with pytest.raises(MetricError, match="unknown metric"):
        score(mean, f, "nope")
    with pytest.raises(MetricError, match="full factor grid"):
        score(mean[::-1], f[::-1], "dotran", logvar=np.zeros_like(mean))
    with pytest.raises(MetricError, match="sampling"):
        score(mean, f, "mig", sampling="bootstrap")
    with pytest.raises(MetricError, match="test_fraction"):
        score(mean, f, "mig", test_fraction=1.0)


def test_readme_snippet_runs(tmp_path, monkeypatch) -> None:
    """The README's three lines (between its ``score-snippet`` markers) run on .npy files."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- score-snippet -->")[1].split("```python")[1].split("```")[0]
    assert len([line for line in block.strip().splitlines() if line.strip()]) == 3
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, size=(400, 2))
    np.save(tmp_path / "factors.npy", factors)
    np.save(tmp_path / "codes.npy", factors + 0.1 * rng.normal(size=factors.shape))
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(block, "README.md", "exec"), env)  # noqa: S102 - our own README
    scores = env["scores"]
    for name in ("mig", "dci", "sap", "mcc", "dci_es", "infomec"):
        assert name in scores
    assert scores["mcc"]["mcc"] > 0.95


def test_all_runs_every_sample_metric() -> None:
    rng = np.random.default_rng(0)
    f = rng.integers(0, 3, size=(150, 2))
    codes = f + 0.1 * rng.normal(size=f.shape)
    rec = score_records(codes, f, "all", params={"dci_es": {"capacities": [1, 2]}})
    ran = set(rec["results"])
    assert {"mig", "sap", "dci", "modularity", "unsupervised", "downstream_logistic_regression",
            "downstream_boosted_trees", "mcc", "dci_es", "infomec", "mig_sup", "dcimig",
            "reduced_downstream"} <= ran
    assert not ran & {"beta_vae", "factor_vae", "irs", "fairness", "strong_downstream",
                      "dotran", "mig_chen"}
    assert "elbo_decomposition" in rec["skipped"]  # no logvar given
