"""Contract tests over the metric registry (in the spirit of scikit-learn's ``check_estimator``).

Every registered metric runs on a tiny analytic representation (the full grid of a small
factor grid, codes = factor values plus small noise, plus one pure-noise code, Gaussian
posteriors) and must return exactly the result keys its registry entry declares, with a finite
headline inside its declared range. A new metric is tested the moment it is registered.

The done-when test of issue 16: a metric registered here (one function + one registration
line, nothing else edited) appears in ``dislab metrics``, in the run report's headline cards
and in the study report's score table, with its headline.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dislab import metrics
from dislab.cli import main
from dislab.data import from_function
from dislab.metrics import CodeTable, evaluate_run, run_metrics
from dislab.metrics.registry import key_pattern, register_metric, unregister
from dislab.metrics.utils import sample_codes

# -- every registered metric ---------------------------------------------------------------
SIZES = [3, 4, 2]
DATA = from_function(SIZES, lambda f: f.astype(np.float32), ["shape", "pos", "flip"],
                     name="contract_grid")


def _analytic_table() -> CodeTable:
    rng = np.random.default_rng(0)
    factors = DATA.images_from_index(np.arange(len(DATA)))  # row i = factors of grid point i
    scaled = factors / (np.asarray(SIZES, np.float32) - 1)  # each factor in [0, 1]
    noise = rng.normal(size=(len(DATA), 1))
    mean = np.concatenate([scaled, noise], axis=1) + 0.05 * rng.normal(size=(len(DATA), 4))
    return CodeTable(mean.astype(np.float32), np.full((len(DATA), 4), -4.0, np.float32))


TABLE = _analytic_table()


@pytest.fixture()
def toy_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    # DISLAB_TINY caps every metric's sample sizes (dislab.tiny.metric_params): seconds in all
    monkeypatch.setenv("DISLAB_TINY", "1")


@pytest.mark.parametrize("name", metrics.names())
def test_metric_returns_the_keys_its_registry_entry_declares(name: str, toy_sizes: None) -> None:
    spec = metrics.get(name)
    out = run_metrics(TABLE, DATA, [name], seed=0)
    assert out["skipped"] == {}, out["skipped"]
    values = out["results"][name]["values"]
    unmatched = [k for k in values if spec.key_of(k) is None]
    assert not unmatched, f"{name} returned keys its entry does not declare: {unmatched}"
    unused = [p for p in spec.keys if not any(key_pattern(p).match(k) for k in values)]
    assert not unused, f"{name} declares keys it did not return: {unused}"
    headline = spec.headline_key(values)
    assert headline is not None and headline in values
    value = values[headline]
    assert math.isfinite(value) and spec.kind.contains(value), (headline, value, spec.kind)
    assert spec.label and spec.stream and spec.kind.better in ("higher", "lower")


def test_streams_are_shared_by_the_probe_metrics_only() -> None:
    # DCI and both downstream tasks draw the same points for a seed (docs/metrics.md)
    shared = {n for n in metrics.names() if metrics.get(n).stream == "dci"}
    assert shared == {"dci", "downstream_logistic_regression", "downstream_boosted_trees"}
    others = [metrics.get(n).stream for n in metrics.names() if n not in shared]
    assert len(set(others)) == len(others)


def test_headline_of_a_size_pattern_is_the_largest_size() -> None:
    spec = metrics.get("downstream_logistic_regression")
    keys = ["10:mean_test_accuracy", "1000:mean_test_accuracy", "100:mean_test_accuracy",
            "1000:min_test_accuracy"]
    assert spec.headline_key(keys) == "1000:mean_test_accuracy"
    assert spec.headline_key(["1000:min_test_accuracy"]) is None


def test_registration_checks_its_entry() -> None:
    def fn(data: Any, representation: Any, rng: Any) -> dict[str, float]:
        return {}

    with pytest.raises(metrics.MetricError, match="headline 'b' is not among its keys"):
        register_metric("contract_bad", headline="b", keys=("a",))(fn)
    with pytest.raises(metrics.MetricError, match="registered already"):
        register_metric("mig")(fn)
    assert "contract_bad" not in metrics.names()


# -- a metric added in a test module --------------------------------------------------------
TOY = "toy_alignment"


def toy_alignment(data: Any, representation: Any, rng: np.random.Generator,
                  num_train: int = 200) -> dict[str, float]:
    """Toy alignment: per factor, the largest absolute correlation with one code."""
    codes, factors = sample_codes(data, representation, num_train, rng)
    out = {}
    for k, name in enumerate(data.factor_names):
        f = factors[:, k] - factors[:, k].mean()
        c = codes - codes.mean(axis=0)
        denom = np.sqrt((f ** 2).sum() * (c ** 2).sum(axis=0))
        corr = np.abs(f @ c) / np.where(denom > 0, denom, 1.0)
        out[f"toy_factor_{name}"] = float(corr.max())
    out["toy_score"] = float(np.mean(list(out.values())))
    return out


@pytest.fixture()
def toy_metric() -> Any:
    register_metric(TOY, default=False, headline="toy_score", label="Toy alignment",
                    keys=("toy_score", "toy_factor_{factor}"))(toy_alignment)
    try:
        yield metrics.get(TOY)
    finally:
        unregister(TOY)
    assert TOY not in metrics.names()


def fake_run_with_toy(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """:func:`dislab.study.fake.fake_run` plus the toy metric's results (several keys)."""
    from dislab.study.fake import fake_run

    out = fake_run(run, run_dir)
    d = out["metrics"]["mig"]["discrete_mig"]
    out["metrics"][TOY] = {"toy_score": 0.5 + d, "toy_factor_shape": 1.0 - d}
    return out


def test_a_metric_added_in_a_test_module_is_listed(toy_metric: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics"]) == 0
    listed = capsys.readouterr().out
    block = listed[listed.index(f"\n{TOY}  "):]
    assert "Toy alignment: per factor" in block
    assert "headline: toy_score (Toy alignment" in block


def test_a_metric_added_in_a_test_module_is_in_the_run_report(toy_metric: Any,
                                                              tmp_path: Path) -> None:
    from dislab.viz.run_report import build_report, headline_metrics
    from qs_helpers import tiny_run

    run = tiny_run(tmp_path, steps=5)
    record = evaluate_run(run, metrics=TOY, progress=False)
    value = record["metrics"][TOY]["values"]["toy_score"]
    assert set(record["metrics"][TOY]["values"]) == {
        "toy_score", "toy_factor_shape", "toy_factor_x", "toy_factor_y"}
    assert ("Toy alignment", value) in headline_metrics(record)
    page = build_report(run, progress=False, n_steps=3, n_images=1).read_text()
    assert (f'<div class="card"><div class="v">{value:.3f}</div>'
            '<div class="k">Toy alignment</div></div>') in page
    assert "Toy alignment: per factor" in page  # its description, in the metrics table


def test_a_metric_added_in_a_test_module_is_in_the_study_table(toy_metric: Any,
                                                               tmp_path: Path) -> None:
    import pandas as pd

    from dislab.study.driver import run_study
    from dislab.study.spec import parse_spec
    from dislab.viz import study_plots as sp

    spec = parse_spec({"data": ["dsprites"], "methods": {"beta_vae": {"grid": {"beta": [1, 4]}}},
                       "seeds": 1, "steps": 10})
    run_study(spec, tmp_path, workers=1, run_fn="test_metric_contracts:fake_run_with_toy",
              progress=False)
    assert main(["study", "report", str(tmp_path)]) == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert f"metric.{TOY}.toy_score" in sp.headline_metrics(frame)
    page = (tmp_path / "report.html").read_text()
    scores = page[page.index("Scores (mean ± sd over seeds)"):]
    header = re.findall(r"<th>([^<]*)</th>", scores[:scores.index("</tr>")])
    assert "Toy alignment" in header
    toy_cells = [f"{v:.3f}" for v in frame[f"metric.{TOY}.toy_score"]]
    assert all(cell in scores for cell in toy_cells)
