"""evaluate / evaluate_run / the code cache / the CLI, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dislab.cli import main as dislab_main
from dislab.data import from_function
from dislab.metrics import (
    CodeTable,
    MetricError,
    available,
    default_metrics,
    encode_grid,
    evaluate,
    evaluate_run,
)
from dislab.representation import load_or_encode
from dislab.train import fit
from train_helpers import cfg, tiny_data

DATA = from_function([4, 5, 3], lambda f: f.astype(np.float32))
FAST = {"mig": {"num_train": 500}, "irs": {"num_train": 500},
        "factor_vae": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 500},
        "beta_vae": {"num_train": 200, "num_eval": 100}}


def identity(x: np.ndarray) -> np.ndarray:
    return x


def test_registry_lists_the_study_metrics() -> None:
    names = set(available())
    assert {"beta_vae", "factor_vae", "mig", "sap", "dci", "modularity", "irs",
            "unsupervised", "downstream_logistic_regression",
            "downstream_boosted_trees"} <= names
    assert set(default_metrics()) <= names


def test_evaluate_function_and_table_agree_and_are_seeded() -> None:
    names = list(FAST)
    a = evaluate(identity, DATA, names, seed=1, params=FAST)
    table = CodeTable(DATA.images_from_index(np.arange(len(DATA))))
    b = evaluate(table, DATA, ",".join(names), seed=1, params=FAST)
    c = evaluate(identity, DATA, names, seed=1, params=FAST, cache=False)
    assert a == b == c
    assert a["mig"]["discrete_mig"] > 0.9
    d = evaluate(identity, DATA, names, seed=2, params=FAST)
    assert d != a
    # a metric's numbers do not depend on the other metrics run with it
    assert evaluate(table, DATA, ["mig"], seed=1, params={"mig": FAST["mig"]}) == {
        "mig": a["mig"]}


@pytest.mark.parametrize(
    "rep, words",
    [
        (lambda x: np.full_like(x, np.nan), "NaN"),
        (lambda x: x[:, :, None], "shape"),
        (lambda x: x[:1], "one row per observation"),
    ],
)
def test_bad_representations(rep, words: str) -> None:
    with pytest.raises(MetricError, match=words):
        evaluate(rep, DATA, ["mig"], params={"mig": {"num_train": 100}})


def test_bad_tables_and_arguments() -> None:
    short = CodeTable(np.zeros((len(DATA) - 1, 3), np.float32))
    with pytest.raises(MetricError, match="full grid"):
        evaluate(short, DATA, ["mig"])
    with pytest.raises(MetricError, match="NaN"):
        CodeTable(np.full((len(DATA), 3), np.nan))
    with pytest.raises(MetricError, match="unknown metric"):
        evaluate(identity, DATA, ["nope"])
    with pytest.raises(MetricError, match="no parameter"):
        evaluate(identity, DATA, ["mig"], params={"mig": {"bins": 3}})
    with pytest.raises(MetricError, match="num_train"):
        evaluate(identity, DATA, ["dci"], params={"dci": {"num_train": 1}})
    with pytest.raises(MetricError, match="GroundTruthData"):
        evaluate(identity, np.zeros((10, 3)), ["mig"])  # type: ignore[arg-type]


def test_posterior_metrics_skipped_without_logvar() -> None:
    table = CodeTable(DATA.images_from_index(np.arange(len(DATA))))
    posterior = [n for n in available() if n in ("mig_chen", "elbo_decomposition")]
    out = evaluate(table, DATA, ["mig", *posterior], params={"mig": {"num_train": 200}})
    assert set(out) == {"mig"}


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 4, 2, 1)
        self.fc = nn.Linear(4 * 8 * 8, 6)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(torch.relu(self.conv(x)).flatten(1))
        return h[:, :3], h[:, 3:]


def test_encode_grid_equals_encoding_each_image() -> None:
    data = tiny_data()
    model = TinyEncoder()
    table = encode_grid(model, data, batch_size=7, progress=False)
    assert table.mean.shape == (len(data), 3) and table.logvar.shape == (len(data), 3)
    for i in [0, 5, len(data) - 1]:
        x = torch.from_numpy(data.images_from_index(np.array([i])))
        with torch.no_grad():
            m, lv = TinyEncoder().encode(x)
        np.testing.assert_allclose(table.mean[i], m[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(table.logvar[i], lv[0].numpy(), atol=1e-5)
    eager = encode_grid(TinyEncoder(), data, batch_size=64, progress=False, jit=False)
    np.testing.assert_allclose(eager.mean, table.mean, atol=1e-5)
    # batches encoded concurrently by worker threads land in their rows; threads restored
    threads = torch.get_num_threads()
    for workers in (2, 3):
        par = encode_grid(TinyEncoder(), data, batch_size=5, progress=False, workers=workers)
        np.testing.assert_allclose(par.mean, table.mean, atol=1e-5)
        np.testing.assert_allclose(par.logvar, table.logvar, atol=1e-5)
    assert torch.get_num_threads() == threads


def test_frozen_encoder_is_reused_until_the_weights_change() -> None:
    from dislab.representation.encode import _FROZEN

    data = tiny_data()
    model = TinyEncoder()
    first = encode_grid(model, data, batch_size=8, progress=False)
    frozen = _FROZEN[model][1]
    again = encode_grid(model, data, batch_size=8, progress=False)
    assert _FROZEN[model][1] is frozen  # traced once
    np.testing.assert_array_equal(again.mean, first.mean)
    # an in-place update (an optimiser step) or new weights: re-traced, new codes
    with torch.no_grad():
        model.fc.bias.add_(1.0)
    shifted = encode_grid(model, data, batch_size=8, progress=False)
    assert _FROZEN[model][1] is not frozen
    np.testing.assert_allclose(shifted.mean, first.mean + 1.0, atol=1e-5)
    model.load_state_dict(TinyEncoder().state_dict())
    np.testing.assert_allclose(encode_grid(model, data, batch_size=8, progress=False).mean,
                               first.mean, atol=1e-6)


def test_threading_choice_is_timed_once_and_does_not_change_codes(monkeypatch) -> None:
    from dislab.representation import encode as cache

    monkeypatch.setattr(cache, "_STRATEGY", {})
    monkeypatch.setattr(cache, "AUTO_PROBE_BATCHES", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = tiny_data()
        model = TinyEncoder()
        ref = encode_grid(model, data, batch_size=4, progress=False, workers=1)
        timed = encode_grid(model, data, batch_size=4, progress=False)  # probes both ways
        assert len(cache._STRATEGY) == 1 and set(cache._STRATEGY.values()) <= {1, 2}
        np.testing.assert_allclose(timed.mean, ref.mean, atol=1e-5)
        # the remembered choice is used as is (here forced to the worker threads)
        key = next(iter(cache._STRATEGY))
        cache._STRATEGY[key] = 2
        again = encode_grid(TinyEncoder(), data, batch_size=4, progress=False)
        np.testing.assert_allclose(again.mean, ref.mean, atol=1e-5)
        assert cache._STRATEGY == {key: 2}
    finally:
        torch.set_num_threads(threads)


def test_code_table_round_trip_and_reuse(tmp_path: Path) -> None:
    data = tiny_data()
    calls = []

    def encode() -> CodeTable:
        calls.append(1)
        return encode_grid(TinyEncoder(), data, progress=False)

    path = tmp_path / "codes.npz"
    t1, reused = load_or_encode(path, data, {"w": "a"}, encode)
    assert not reused and len(calls) == 1
    t2, reused = load_or_encode(path, data, {"w": "a"}, encode)
    assert reused and len(calls) == 1
    np.testing.assert_array_equal(t1.mean, t2.mean)
    np.testing.assert_array_equal(t1.logvar, t2.logvar)
    _, reused = load_or_encode(path, data, {"w": "b"}, encode)  # other weights
    assert not reused and len(calls) == 2
    path.write_bytes(b"not an npz")
    with pytest.raises(MetricError, match="delete it"):
        CodeTable.load(str(path))
    _, reused = load_or_encode(path, data, {"w": "b"}, encode)  # unreadable -> re-encode
    assert not reused and len(calls) == 3


def test_evaluate_run_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = fit(cfg(tmp_path, steps=2), progress=False)
    rec = evaluate_run(run, metrics="mig,irs", params={"mig": {"num_train": 300},
                                                        "irs": {"num_train": 300}},
                       device="cpu", progress=False)
    saved = json.loads((run / "metrics.json").read_text())
    assert set(saved["metrics"]) == {"mig", "irs"}
    for r in saved["metrics"].values():
        assert {"values", "params", "seconds", "seed"} <= set(r)
    assert saved["dislab_version"] and saved["seed"] == 0 and not saved["codes"]["reused"]
    assert saved["metrics"]["mig"]["params"]["num_train"] == 300
    assert math.isfinite(rec["metrics"]["mig"]["values"]["discrete_mig"])
    assert (run / "codes.npz").exists()
    code = dislab_main(["evaluate", str(run), "--metrics", "mig", "--param",
                        "mig.num_train=200", "--quiet", "--device", "cpu"])
    assert code == 0
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["codes"]["reused"]  # the cache matched the weights
    assert saved["metrics"]["mig"]["params"]["num_train"] == 200
    assert "irs" in saved["metrics"]  # earlier results are kept
    assert dislab_main(["evaluate", str(run), "--metrics", "bogus", "--quiet"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert dislab_main(["metrics"]) == 0
    assert "defaults:" in capsys.readouterr().out


def test_dci_and_downstream_share_points_and_fits() -> None:
    """Same seed: the downstream task's largest sample is DCI's, so its accuracies are DCI's
    informativeness and its boosted trees are DCI's fits (memoised, not refitted)."""
    from dislab.metrics import boosting

    rng = np.random.default_rng(0)
    mix = rng.standard_normal((3, 3)).astype(np.float32)

    def noisy(x: np.ndarray) -> np.ndarray:
        return x @ mix + 0.5 * np.random.default_rng(int(x.sum())).standard_normal(x.shape)

    boosting._MEMO.clear()
    params = {"dci": {"num_train": 300, "num_test": 100},
              "downstream_boosted_trees": {"num_train": [20, 300], "num_test": 100},
              "downstream_logistic_regression": {"num_train": [20, 300], "num_test": 100}}
    out = evaluate(noisy, DATA, ["dci", "downstream_boosted_trees",
                                 "downstream_logistic_regression"], seed=3, params=params)
    dci, gbt = out["dci"], out["downstream_boosted_trees"]
    assert gbt["300:mean_test_accuracy"] == dci["informativeness_test"]
    assert gbt["300:mean_train_accuracy"] == dci["informativeness_train"]
    assert gbt["20:mean_test_accuracy"] != dci["informativeness_test"]
    assert len(boosting._MEMO) == 3 + 3  # DCI's three fits reused; three 20-point fits added
    # the downstream task alone (no memo) gives the same numbers
    boosting._MEMO.clear()
    alone = evaluate(noisy, DATA, ["downstream_boosted_trees"], seed=3,
                     params={"downstream_boosted_trees": params["downstream_boosted_trees"]})
    assert alone["downstream_boosted_trees"] == gbt


def test_inner_progress_bars_follow_the_suite_flag(monkeypatch) -> None:
    """run_metrics(progress=False) silences the estimators' own bars; True lets them show."""
    from dislab.metrics import infotheory, suite

    seen = []
    real = suite.get_metric

    def spy(name):
        spec = real(name)

        def fn(*a, **k):
            seen.append(infotheory.INNER_PROGRESS.get())
            return {"x": 0.0}
        return type(spec)(**{**spec.__dict__, "fn": fn})

    monkeypatch.setattr(suite, "get_metric", spy)
    table = CodeTable(np.zeros((len(DATA), 2), np.float32))
    suite.run_metrics(table, DATA, ["mig"], progress=False)
    suite.run_metrics(table, DATA, ["mig"], progress=True)
    assert seen == [False, True]
    assert infotheory.INNER_PROGRESS.get() is True  # restored afterwards
