"""A tiny real study (dislab.train + dislab.metrics): local, Ray and packs give the same table,
and a NaN loss shows as a failed run with its error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dislab.study.driver import run_study
from dislab.study.spec import parse_spec

pytestmark = pytest.mark.slow

# 3 settings (beta-VAE with 2 betas, beta-TCVAE) x 2 seeds on a 192-image procedural dSprites
# grid, 3 steps.
TINY = {
    "name": "tiny_real",
    "data": [{"name": "dsprites", "label": "dsprites_tiny",
              "options": {"scales": 2, "orientations": 2, "positions": 4}}],
    "methods": {"beta_vae": {"grid": {"beta": [1, 4]}},
                "beta_tcvae": {"grid": {"beta": [6]}}},
    "seeds": 2,
    "steps": 3,
    "batch_size": 16,
    "metrics": ["mig", "sap"],
    "metric_params": {"mig": {"num_train": 500}, "sap": {"num_train": 500, "num_test": 200}},
    "train": {"image_every": 0, "checkpoint_every": 2, "log_every": 1, "tensorboard": False},
}


def test_tiny_real_study_is_one_table_local_on_ray_and_in_packs(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = parse_spec(TINY)
    local = run_study(spec, tmp_path / "local", workers=2, threads=1, progress=False)
    assert (local["done"], local["failed"]) == (6, 0), local["errors"]
    ray = run_study(spec, tmp_path / "ray", backend="ray", workers=2, threads=1,
                    progress=False)
    assert (ray["done"], ray["failed"]) == (6, 0), ray["errors"]
    a = pd.read_parquet(tmp_path / "local" / "results.parquet")
    b = pd.read_parquet(tmp_path / "ray" / "results.parquet")
    values = ["run_id"] + [c for c in a.columns if c.startswith(("metric.", "final.", "hp."))]
    assert "metric.mig.discrete_mig" in values and "metric.sap.SAP_score" in values
    assert a["metric.mig.discrete_mig"].notna().all()
    # same seeds -> the same models and the same metric values, whichever backend ran them
    # (to the last bits: a float sum may round differently in another process)
    pd.testing.assert_frame_equal(a[values], b[values], check_exact=False, rtol=1e-12,
                                  atol=1e-15)
    # the seed matters: two seeds of one setting do not give identical final losses
    losses = a.groupby(["method", "hp.beta"])["final.loss"].nunique()
    assert (losses == 2).all()
    # a second invocation has nothing left to do
    again = run_study(spec, tmp_path / "local", workers=2, threads=1, progress=False)
    assert (again["done"], again["skipped"]) == (0, 6)
    # `study run --pack 4`: each method's runs train as one pack (the beta-VAEs' betas differ
    # inside theirs), and the table is the unpacked one (to float rounding)
    packed = run_study(spec, tmp_path / "packed", workers=1, threads=1, progress=False, pack=4)
    assert (packed["done"], packed["failed"], packed["packs"]) == (6, 0, 2), packed["errors"]
    c = pd.read_parquet(tmp_path / "packed" / "results.parquet")
    cols = ["run_id", "status"] + [x for x in a.columns
                                   if x.startswith(("metric.", "final.", "hp.", "config."))]
    assert any(x.startswith("config.") for x in cols)
    pd.testing.assert_frame_equal(a[cols], c[cols], check_exact=False, rtol=1e-5, atol=1e-6)


def test_nan_loss_is_a_failed_run_with_its_error(tmp_path: Path) -> None:
    # beta=nan is now refused by the spec (a bad hyper-parameter, not a NaN loss); a huge
    # learning rate makes the loss itself non-finite within the run's few steps
    spec = parse_spec({**TINY, "methods": {"beta_vae": {"grid": {"beta": [4]}}},
                       "seeds": 1, "train": {**TINY.get("train", {}), "lr": 1e30}})
    summary = run_study(spec, tmp_path, workers=1, threads=1, progress=False)
    assert (summary["done"], summary["failed"]) == (0, 1)
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert table["status"].tolist() == ["failed"]
    assert "nan" in table["error"].iloc[0].lower()
