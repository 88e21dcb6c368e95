"""The lazy code table: rows encoded when a metric asks for them, equal to the full table's.

Also: tables that carry their rows' grid index or factors (any row order), torch modules and
grad-carrying tensors as representations, and scoring a failed run.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dislab.data import from_function
from dislab.metrics import CodeTable, MetricError, available, evaluate, evaluate_run
from dislab.train import fit
from train_helpers import cfg, tiny_data

GRID = from_function([6, 5, 4], lambda f: f.astype(np.float32), ["a", "b", "c"], name="g120")
W = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)


def posterior(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic per-row 'encoder': mixed, squashed factors and a log-variance."""
    h = np.tanh(x @ W / 3.0)
    return h, -2.0 + 0.1 * h


def _small(name: str, defaults: dict) -> dict:
    """Each metric's parameters shrunk to fit a 120-point grid quickly."""
    out = {}
    for k, v in defaults.items():
        if k.startswith("num_") and isinstance(v, int) and not isinstance(v, bool):
            out[k] = min(v, 60 if k != "num_bins" else 5)
        elif k == "num_train" and isinstance(v, tuple):
            out[k] = (10, 40)
        elif k in ("max_components", "sep_components"):
            out[k] = 60
        elif k in ("num_neighbours", "sep_neighbours", "num_bins_interpretability"):
            out[k] = 8
        elif k in ("batch_size", "sep_samples", "minibatch_size", "num_samples"):
            out[k] = 16
    return out


def test_every_metric_through_the_lazy_table_equals_the_full_table() -> None:
    from dislab.metrics.registry import get_metric

    full = CodeTable(*posterior(GRID.images_from_index(np.arange(len(GRID)))))
    names = available()
    params = {n: _small(n, get_metric(n).defaults) for n in names}
    want = evaluate(full, GRID, names, seed=3, params=params)
    asked: list[int] = []

    def encoder(index: np.ndarray):
        asked.append(len(index))
        return posterior(GRID.images_from_index(index))

    lazy = CodeTable.lazy(GRID, encoder)
    got = evaluate(lazy, GRID, names, seed=3, params=params)
    assert set(got) == set(names) and got == want
    assert sum(asked) == len(GRID) and lazy.is_complete(GRID)  # each row encoded once


def test_a_lazy_table_encodes_only_what_is_looked_at() -> None:
    data = from_function([10, 10, 10], lambda f: f.astype(np.float32), name="g1000")
    lazy = CodeTable.lazy(data, lambda i: data.images_from_index(i))
    a = evaluate(lazy, data, ["mig"], params={"mig": {"num_train": 50}}, seed=1)
    assert len(lazy) <= 51 and not lazy.is_complete(data)
    full = CodeTable(data.images_from_index(np.arange(len(data))))
    assert a == evaluate(full, data, ["mig"], params={"mig": {"num_train": 50}}, seed=1)
    # a function representation in evaluate() is scored through a lazy table
    calls: list[int] = []

    def fn(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return x

    assert evaluate(fn, data, ["mig"], params={"mig": {"num_train": 50}}, seed=1) == a
    assert sum(calls) <= 51


def test_table_rows_in_any_order_with_their_index_or_factors() -> None:
    data = from_function([8, 8], lambda f: f.astype(np.float32), name="g64")
    codes = data.images_from_index(np.arange(len(data)))
    params = {"mig": {"num_train": 200}}
    ordered = evaluate(CodeTable(codes), data, ["mig"], params=params)
    assert ordered["mig"]["discrete_mig"] > 0.9
    perm = np.random.default_rng(0).permutation(len(data))
    by_index = CodeTable(codes[perm], index=perm)
    by_factors = CodeTable(codes[perm], factors=data.factors(perm))
    assert evaluate(by_index, data, ["mig"], params=params) == ordered
    assert evaluate(by_factors, data, ["mig"], params=params) == ordered
    np.testing.assert_array_equal(by_index.in_order(data).mean, codes)
    with pytest.raises(MetricError, match="disagree"):
        evaluate(CodeTable(codes[perm], index=perm, factors=data.factors(np.roll(perm, 1))),
                 data, ["mig"])
    with pytest.raises(MetricError, match="repeats"):
        CodeTable(codes[:2], index=[3, 3])
    with pytest.raises(MetricError, match="holds 10 of the 64"):
        evaluate(CodeTable(codes[:10], index=np.arange(10)), data, ["mig"], params=params)


def test_saved_table_keeps_its_index(tmp_path: Path) -> None:
    data = GRID
    idx = np.array([7, 3, 100])
    t = CodeTable(*posterior(data.images_from_index(idx)), meta={"k": 1}, index=idx)
    t.save(str(tmp_path / "c.npz"))
    back = CodeTable.load(str(tmp_path / "c.npz"))
    np.testing.assert_array_equal(back.index, idx)
    np.testing.assert_array_equal(back.lookup(data, [100, 7])[0], t.mean[[2, 0]])


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, 4)
        self.drop = nn.Dropout(0.5)  # must be off while scoring

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc(x))


def test_a_torch_module_and_grad_tensors_are_accepted() -> None:
    module = Encoder().train()
    params = {"mig": {"num_train": 100}, "sap": {"num_train": 60, "num_test": 30}}
    got = evaluate(module, GRID, ["mig", "sap"], params=params)
    assert module.training  # left as it was
    with torch.no_grad():
        def plain(x: np.ndarray) -> np.ndarray:
            return module.eval().fc(torch.from_numpy(x)).numpy()

        want = evaluate(plain, GRID, ["mig", "sap"], params=params)
    for name in want:
        for k in want[name]:
            assert got[name][k] == pytest.approx(want[name][k], abs=1e-6)
    module.train()

    def with_grad(x: np.ndarray) -> torch.Tensor:  # an encoder returning a grad tensor
        return module.fc(torch.from_numpy(x))

    assert evaluate(with_grad, GRID, ["mig"], params={"mig": params["mig"]}) == {
        "mig": want["mig"]}


def test_evaluate_run_keeps_a_partial_table_that_later_metrics_extend(tmp_path: Path) -> None:
    run = fit(cfg(tmp_path, steps=2), progress=False)
    params = {"mig": {"num_train": 8}}
    first = evaluate_run(run, metrics="mig", params=params, device="cpu", progress=False,
                         batch_size=4)
    saved = CodeTable.load(str(run / "codes.npz"))
    assert first["codes"]["rows"] == len(saved) < len(tiny_data())
    assert saved.index is not None
    second = evaluate_run(run, metrics="mig", params=params, device="cpu", progress=False,
                          batch_size=4)
    assert second["codes"]["reused"] and second["codes"]["rows_encoded"] == 0
    assert second["metrics"]["mig"]["values"] == first["metrics"]["mig"]["values"]
    third = evaluate_run(run, metrics="mig_chen", device="cpu", progress=False,
                         params={"mig_chen": {"num_samples": 16}})
    assert third["codes"]["rows_reused"] == len(saved)
    assert third["codes"]["rows"] == len(tiny_data())
    # the same values as a table of the whole grid encoded at once
    from dislab.metrics import encode_grid
    from dislab.train import load_run

    model, _ = load_run(run, device="cpu")
    full = encode_grid(model, tiny_data(), batch_size=4, progress=False)
    assert evaluate(full, tiny_data(), ["mig"], params=params) == {
        "mig": first["metrics"]["mig"]["values"]}


def test_scoring_a_failed_run_warns_and_says_so(tmp_path: Path) -> None:
    run = fit(cfg(tmp_path, steps=2), progress=False)
    status = json.loads((run / "status.json").read_text())
    status.update(status="failed", error="loss became nan at step 2")
    (run / "status.json").write_text(json.dumps(status))
    with pytest.warns(UserWarning, match="training failed.*last good weights"):
        rec = evaluate_run(run, metrics="mig", params={"mig": {"num_train": 8}},
                           device="cpu", progress=False)
    assert rec["run_status"]["status"] == "failed"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["run_status"]["error"] == "loss became nan at step 2"
    status.update(status="interrupted", error=None)  # Ctrl-C or a killed process
    (run / "status.json").write_text(json.dumps(status))
    with pytest.warns(UserWarning, match="training interrupted.*last saved weights"):
        rec = evaluate_run(run, metrics="mig", params={"mig": {"num_train": 8}},
                           device="cpu", progress=False)
    assert rec["run_status"]["status"] == "interrupted"
    status["status"] = "done"
    (run / "status.json").write_text(json.dumps(status))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        rec = evaluate_run(run, metrics="mig", params={"mig": {"num_train": 8}},
                           device="cpu", progress=False)
    assert "run_status" not in rec
