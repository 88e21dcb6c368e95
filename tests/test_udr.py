"""UDR (Duan et al. 2020): known answers worked out by hand from disentanglement_lib's
``evaluation/udr/metrics/udr.py`` (``relative_strength_disentanglement``, the Lasso and
Spearman similarities, ``compute_udr_sklearn``'s median), and ``dislab analyze udr``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dislab.cli import main as dislab_main
from dislab.metrics import MetricError
from dislab.metrics.udr import relative_strength_disentanglement, udr_scores
from qs_helpers import tiny_run

#: three orthonormal zero-mean +-1 columns (Walsh functions on 8 points): standardised as is
W = np.array([[1, 1, 1, 1, -1, -1, -1, -1],
              [1, 1, -1, -1, 1, 1, -1, -1],
              [1, -1, 1, -1, 1, -1, 1, -1]], dtype=float).T


def test_relative_strength_by_hand() -> None:
    # the matrices of disentanglement_lib's udr_test.py, values by hand
    assert relative_strength_disentanglement(np.eye(3)) == 1.0
    block = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # columns and rows: 1/2, 1/2, 1 -> 2/3
    assert relative_strength_disentanglement(block) == pytest.approx(2 / 3)
    assert relative_strength_disentanglement(np.ones((3, 3))) == pytest.approx(1 / 3)
    assert relative_strength_disentanglement(np.zeros((3, 3))) == 0.0


def test_udr_of_permuted_and_mixed_models() -> None:
    a = W
    b = np.c_[-W[:, 2], W[:, 0], W[:, 1]]  # a signed permutation of a
    c = np.c_[(W[:, 0] + W[:, 1]) / math.sqrt(2), (W[:, 0] - W[:, 1]) / math.sqrt(2), W[:, 2]]
    # Lasso(alpha=0.1) on an orthonormal design soft-thresholds X'y/n: a matched column gets
    # 1 - 0.1 = 0.9, so a vs b: R = 0.9 * permutation -> max^2/sum = 0.9 everywhere
    scores, pair = udr_scores([a, b])
    assert pair[0, 1] == pytest.approx(0.9) and pair[1, 0] == pytest.approx(0.9)
    assert scores == pytest.approx([0.9, 0.9])
    # a vs c: a's first two latents are each (c0 +- c1)/sqrt2 -> coefficients 1/sqrt2 - 0.1 = s
    # in a 2x2 block (max^2/sum = s/2 per row and column) and 0.9 for the third: (s + 0.9) / 3
    s = 1 / math.sqrt(2) - 0.1
    mixed = (s + 0.9) / 3
    scores, pair = udr_scores([a, b, c])
    assert pair[0, 2] == pytest.approx(mixed) and pair[2, 1] == pytest.approx(mixed)
    # medians over the other models: a and b (0.9, mixed) -> their mean; c (mixed, mixed)
    assert scores == pytest.approx([(0.9 + mixed) / 2, (0.9 + mixed) / 2, mixed])
    # Spearman of +-1 columns: exactly 1 or 0, so a and b are a perfect match
    assert udr_scores([a, b], correlation="spearman")[0] == pytest.approx([1.0, 1.0])


def test_kl_filter_drops_dead_latents() -> None:
    # as disentanglement_lib's test_metric_kl: one informative latent, the others noise with
    # no KL; filtered, the matching latent alone scores 1
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 1))
    m1 = np.c_[x, rng.random((500, 2))]
    m2 = np.c_[2 * x, rng.random((500, 2))]
    kl = np.array([1.0, 0.0, 0.0])
    filtered = udr_scores([m1, m2], [kl, kl], "spearman")[0]
    assert filtered == pytest.approx([1.0, 1.0])
    unfiltered = udr_scores([m1, m2], [kl, kl], "spearman", filter_low_kl=False)[0]
    assert np.all(unfiltered < 0.5)  # the zeroed latents match nothing
    with pytest.raises(MetricError, match="at least two"):
        udr_scores([m1])
    with pytest.raises(MetricError, match="correlation"):
        udr_scores([m1, m2], correlation="pearson")


def test_analyze_udr_cli_writes_metrics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = [tiny_run(tmp_path, name=f"s{s}", steps=10, seed=s) for s in (0, 1)]
    lone = tiny_run(tmp_path, name="other", steps=10, latent_dim=3)
    out = tmp_path / "an"
    argv = ["analyze", "udr", *map(str, runs), str(lone), "--out", str(out), "--quiet",
            "--num-data-points", "200"]
    assert dislab_main(argv) == 0
    assert "udr" in capsys.readouterr().out
    df = pd.read_csv(out / "udr.csv")
    assert len(df) == 3
    paired = df[df["num_models"] == 2]
    assert len(paired) == 2 and paired["udr"].between(0, 1).all()
    assert df[df["num_models"] == 1]["udr"].isna().all()  # alone in its group: no score
    for run in runs:
        rec = json.loads((run / "metrics.json").read_text())["metrics"]["udr"]
        assert 0 <= rec["values"]["udr"] <= 1 and rec["params"]["num_data_points"] == 200
    assert not (lone / "metrics.json").exists() or \
        "udr" not in json.loads((lone / "metrics.json").read_text()).get("metrics", {})
    assert dislab_main(["analyze", "udr", str(tmp_path / "nope")]) == 2


def test_udr_reaches_the_study_table(tmp_path: Path) -> None:
    """A study run folder (runs/<id>/model): the score lands in result.json, so the collected
    table and the study report's headline columns have ``metric.udr.udr``."""
    from dislab.study.collect import collect
    from dislab.viz.analyze import _record_udr
    from dislab.viz.study_plots import headline_metrics

    for i, value in enumerate((0.4, 0.6)):
        folder = tmp_path / "runs" / f"r{i}"
        (folder / "model").mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"run_id": f"r{i}", "method": "beta_vae",
                                                     "seed": i, "hparams": {"beta": 1}}))
        (folder / "status.json").write_text(json.dumps({"status": "done"}))
        (folder / "result.json").write_text(json.dumps({"metrics": {"mig": {"discrete_mig": 0.1}}}))
        _record_udr(folder / "model", {"udr": value, "num_models": 2.0}, {"seed": 0})
    frame = collect(tmp_path)
    assert list(frame["metric.udr.udr"]) == [0.4, 0.6]
    assert "metric.udr.udr" in headline_metrics(frame)
    assert list(frame["metric.mig.discrete_mig"]) == [0.1, 0.1]  # the rest is kept
