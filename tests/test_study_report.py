"""Study report: the analyses' numbers on known tables, and the HTML page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dislab.cli import main
from dislab.errors import DislabError
from dislab.study.driver import run_study
from dislab.study.spec import parse_spec
from dislab.viz import study_plots as sp


def _table(values: dict[str, list[float]], hp: list[float], seeds: list[int],
           method: str = "beta_vae") -> pd.DataFrame:
    n = len(hp)
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "data": ["d"] * n,
                         "method": [method] * n, "status": ["done"] * n,
                         "seed": seeds, "hp.beta": hp, **values})


def test_variance_explained_is_one_when_the_hparam_decides() -> None:
    hp = [1, 1, 1, 4, 4, 4, 16, 16, 16]
    seeds = [0, 1, 2] * 3
    frame = _table({"metric.mig.discrete_mig": [np.log(h) for h in hp]}, hp, seeds)
    v = sp.variance_explained(frame, "metric.mig.discrete_mig")
    assert v["hyper-parameters"] == pytest.approx(1.0)
    assert v["seed"] == pytest.approx(0.0, abs=1e-12)


def test_variance_explained_is_zero_when_only_the_seed_matters() -> None:
    hp = [1, 1, 1, 4, 4, 4]
    seeds = [0, 1, 2] * 2
    frame = _table({"metric.mig.discrete_mig": [0.1 * s for s in seeds]}, hp, seeds)
    v = sp.variance_explained(frame, "metric.mig.discrete_mig")
    assert v["hyper-parameters"] == pytest.approx(0.0, abs=1e-12)
    assert v["seed"] == pytest.approx(1.0)


def test_variance_explained_matches_anova_by_hand() -> None:
    y = [1.0, 3.0, 2.0, 6.0]  # groups {1,3} and {2,6}: means 2 and 4, grand mean 3
    frame = _table({"metric.mig.discrete_mig": y}, [1, 1, 4, 4], [0, 1, 0, 1])
    v = sp.variance_explained(frame, "metric.mig.discrete_mig")
    # SS_total = 4+0+1+9 = 14, SS_within = 1+1+4+4 = 10
    assert v["seed"] == pytest.approx(10 / 14)
    assert v["hyper-parameters"] == pytest.approx(4 / 14)


def test_column_lookup() -> None:
    frame = pd.DataFrame({
        "metric.mig.discrete_mig": [0.1], "metric.dci.disentanglement": [0.2],
        "metric.dci.completeness": [0.3], "metric.beta_vae.train_accuracy": [0.4],
        "metric.beta_vae.eval_accuracy": [0.5],
        "metric.unsupervised.gaussian_total_correlation": [1.0],
        "metric.unsupervised.gaussian_total_correlation_sampled": [0.5],
        "metric.elbo_decomposition.tc": [2.0],
        "metric.dotran.windin": [0.2], "metric.dotran.rmig": [0.1],
        "metric.downstream_boosted_trees.100:mean_test_accuracy": [0.7],
        "metric.downstream_boosted_trees.10000:mean_test_accuracy": [0.95],
        "metric.downstream_logistic_regression.10:mean_test_accuracy": [0.3],
        "metric.downstream_logistic_regression.100:mean_test_accuracy": [0.6],
        "metric.downstream_logistic_regression.10000:mean_test_accuracy": [0.9],
        "final.recon": [40.0], "final.loss": [50.0]})
    assert set(sp.headline_metrics(frame)) == {
        "metric.mig.discrete_mig", "metric.dci.disentanglement",
        "metric.beta_vae.eval_accuracy", "metric.dotran.windin"}
    assert sp.tc_columns(frame) == ("metric.unsupervised.gaussian_total_correlation",
                                    "metric.unsupervised.gaussian_total_correlation_sampled")
    acc, small, _ = sp.downstream_columns(frame)
    assert acc == "metric.downstream_logistic_regression.10000:mean_test_accuracy"
    assert small == "metric.downstream_logistic_regression.100:mean_test_accuracy"
    assert sp.reconstruction_column(frame) == "final.recon"


def test_too_few_runs_say_so_instead_of_plotting() -> None:
    frame = _table({"metric.mig.discrete_mig": [0.1, 0.2], "metric.dci.disentanglement":
                    [0.3, 0.1]}, [1, 4], [0, 0])
    for fn in (sp.plot_rank_correlation, sp.plot_metric_distributions,
               sp.plot_variance_explained):
        result = fn(frame)
        assert result.fig is None and "Not drawn" in result.note


def test_rank_correlation_of_monotone_metrics_is_one() -> None:
    x = np.arange(8.0)
    frame = _table({"metric.mig.discrete_mig": x, "metric.dci.disentanglement": np.exp(x)},
                   [1.0] * 8, list(range(8)))
    assert sp.plot_rank_correlation(frame).fig is not None
    ranks = frame[["metric.mig.discrete_mig", "metric.dci.disentanglement"]].rank()
    assert ranks.corr().iloc[0, 1] == pytest.approx(1.0)


def test_report_end_to_end_on_a_fake_study(tmp_path: Path) -> None:
    spec = parse_spec({"name": "fake", "data": ["dsprites"],
                       "methods": {"beta_vae": {"grid": {"beta": [1, 4, 16]}},
                                   "factor_vae": {"grid": {"gamma": [10, 40]}}},
                       "seeds": 3, "steps": 10})
    run_study(spec, tmp_path, workers=1, run_fn="dislab.study.fake:fake_run_nan",
              progress=False)
    out = tmp_path / "report" / "index.html"
    assert main(["study", "report", str(tmp_path), "--out", str(out)]) == 0
    page = out.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 7  # every analysis has 10 finished runs here
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    pngs = sorted(p.name for p in (out.parent / "index_files").glob("*.png"))
    assert len(pngs) == 7
    assert "5 failed run(s)" in page and "loss is NaN" in page
    assert "Rank correlation between metrics" in page


def test_report_on_a_two_run_study_draws_nothing_misleading(tmp_path: Path) -> None:
    spec = parse_spec({"data": ["dsprites"], "methods": {"beta_vae": {"grid": {"beta": [1, 4]}}},
                       "seeds": 1, "steps": 10})
    run_study(spec, tmp_path, workers=1, run_fn="dislab.study.fake:fake_run", progress=False)
    assert main(["study", "report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png" not in page
    assert page.count("Not drawn") == 7


def test_report_of_a_folder_that_is_not_a_study(tmp_path: Path) -> None:
    with pytest.raises(DislabError, match="not a study folder"):
        from dislab.viz.study_report import write_report

        write_report(tmp_path)
