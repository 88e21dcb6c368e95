"""The Zietlow et al. table from a results frame (dislab.study.zietlow)."""

from __future__ import annotations

import pandas as pd
import pytest

from dislab.errors import DislabError
from dislab.study.zietlow import split_label, to_markdown, zietlow_table


def test_split_label():
    assert split_label("dsprites") == ("dsprites", "original")
    assert split_label("dsprites_perturbed") == ("dsprites", "perturbed")
    assert split_label("shapes3d_noise") == ("shapes3d", "noise")


def test_table_means_and_sds():
    rows = []
    for seed, (a, b, c) in enumerate([(0.2, 0.05, 0.1), (0.4, 0.15, 0.3)]):
        for label, v in (("dsprites", a), ("dsprites_perturbed", b), ("dsprites_noise", c)):
            rows.append({"data": label, "method": "beta_vae", "seed": seed, "status": "done",
                         "metric.mig.discrete_mig": v})
    rows.append({"data": "dsprites", "method": "beta_vae", "seed": 9, "status": "failed",
                 "metric.mig.discrete_mig": 99.0})
    rows.append({"data": "dsprites", "method": "pcl", "seed": 0, "status": "done",
                 "metric.mig.discrete_mig": 0.3})
    t = zietlow_table(pd.DataFrame(rows))
    bv = t[t["method"] == "beta_vae"].iloc[0]
    assert bv["original_mean"] == pytest.approx(0.3)
    assert bv["perturbed_mean"] == pytest.approx(0.1)
    assert bv["original"] == "0.30 ± 0.14 (2)"  # sd of (0.2, 0.4) = 0.1414
    pcl = t[t["method"] == "pcl"].iloc[0]
    assert pcl["original"] == "0.30 ± – (1)" and pcl["perturbed"] == ""
    assert "| dsprites | beta_vae | 0.30 ± 0.14 (2) |" in to_markdown(t)


def test_missing_metric_column_raises():
    with pytest.raises(DislabError, match="lacks column"):
        zietlow_table(pd.DataFrame({"data": ["x"], "method": ["m"], "status": ["done"]}))
