"""Informativeness analyses: counts with known answers, orderings, tables and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dislab.cli import main as dislab_main
from dislab.errors import DislabError
from dislab.viz.analyze import (
    DEFAULT_THRESHOLD,
    active_count,
    analyze_effective_factors,
    analyze_latent_order,
    effective_count,
    latent_information,
    ordering_agreement,
)
from qs_helpers import tiny_run


# -- counts with known answers -----------------------------------------------------------------
@pytest.mark.parametrize("m,d", [(1, 5), (3, 10), (5, 5), (4, 20)])
def test_effective_count_of_equal_shares_is_m(m: int, d: int) -> None:
    info = np.zeros(d)
    info[:m] = 2.7
    assert effective_count(info) == pytest.approx(m)
    assert active_count(info) == m


def test_effective_count_between_extremes_and_invariances() -> None:
    info = np.array([3.0, 1.0, 0.0, 0.0])
    rho = np.array([0.75, 0.25])
    expected = math.exp(-(rho * np.log(rho)).sum())
    assert effective_count(info) == pytest.approx(expected)
    assert 1.0 < effective_count(info) < 2.0
    assert effective_count(10 * info) == pytest.approx(expected)  # scale-free
    assert effective_count(info[::-1]) == pytest.approx(expected)  # order-free
    assert effective_count(np.zeros(6)) == 0.0
    # threshold count: only strictly above the threshold
    assert active_count([0.5, DEFAULT_THRESHOLD, 0.05, 2.0]) == 2
    assert active_count([0.5, 0.3, 2.0], threshold=1.0) == 1
    with pytest.raises(DislabError):
        effective_count([np.nan, 1.0])


# -- per-latent information on a constructed grid code ---------------------------------------------
def _grid_codes() -> tuple[np.ndarray, np.ndarray, list[int]]:
    sizes = [4, 5]
    f = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, 2)
    mean = np.zeros((len(f), 3), np.float32)
    logvar = np.zeros((len(f), 3), np.float32)
    mean[:, 0] = f[:, 1] - 2.0  # z0 encodes factor 1 exactly, narrow posterior
    logvar[:, 0] = np.log(0.01 ** 2)
    mean[:, 2] = f[:, 0] - 1.5  # z2 encodes factor 0, wider posterior
    logvar[:, 2] = np.log(0.05 ** 2)
    return mean, logvar, sizes  # z1 = the prior: no information, KL 0


def test_latent_information_known_structure() -> None:
    mean, logvar, sizes = _grid_codes()
    out = latent_information(mean, logvar, sizes)
    info, mi = out["informativeness"], out["mi_normalised"]
    # a code that determines a uniform factor carries log(#values) nats about x
    assert info[0] == pytest.approx(math.log(5), abs=0.02)
    assert info[2] == pytest.approx(math.log(4), abs=0.02)
    assert info[1] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(out["factor_entropy"], np.log(sizes), rtol=1e-6)
    assert mi[0, 1] == pytest.approx(1.0, abs=0.01) and mi[0, 0] == pytest.approx(0, abs=0.01)
    assert mi[2, 0] == pytest.approx(1.0, abs=0.01) and mi[2, 1] == pytest.approx(0, abs=0.01)
    assert np.all(mi[1] < 1e-6)
    assert out["kl"][1] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(out["variance"], mean.astype(np.float64).var(axis=0))


def _summary(info: list[float], var: list[float], mi_rows: list[list[float]], seed: int = 0,
             model: str = "beta_vae", names: tuple[str, ...] = ("a", "b")) -> dict:
    d = len(info)
    return {"run_dir": f"run_{model}_{d}_{seed}", "model": model, "latent_dim": d,
            "seed": seed, "hparams": {"beta": 4}, "factor_names": list(names),
            "informativeness": info, "variance": var, "mi_normalised": mi_rows,
            "kl": info, "order": list(np.argsort(-np.asarray(info), kind="stable"))}


def test_ordering_agreement() -> None:
    # variance order = informativeness order -> rho 1, full overlap
    s = _summary([3.0, 0.01, 2.0], [0.9, 0.001, 0.5], [[0.9, 0.0], [0.0, 0.0], [0.1, 0.8]])
    a = ordering_agreement(s)
    assert a["spearman"] == pytest.approx(1.0)
    assert a["top_k"] == 2 and a["top_overlap"] == 1.0
    assert a["top_latents_info"] == [0, 2] and a["top_factors_info"] == ["a", "b"]
    # a latent with large mean variance but little information (e.g. wide posterior)
    s = _summary([3.0, 0.01, 2.0], [0.1, 5.0, 0.05], [[0.9, 0.0], [0.0, 0.0], [0.1, 0.8]])
    a = ordering_agreement(s)
    assert a["top_latents_var"] == [1, 0]
    assert a["top_overlap"] == 0.5
    assert a["spearman"] == pytest.approx(-0.5)
    assert a["top_factors_var"] == ["-", "a"]


def test_analyses_tables_and_plots(tmp_path: Path) -> None:
    mi = [[0.9, 0.0], [0.0, 0.85], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    runs = [_summary([3.0, 2.0] + [0.0] * (d - 2), [1.0, 0.8] + [0.01] * (d - 2), mi[:d], seed=s)
            for d in (2, 4, 6) for s in (0, 1)]
    runs[-1] = _summary([3.0, 0.0, 0.0, 0.0, 0.0, 2.0], [1.0] + [0.01] * 4 + [0.8],
                        [[0.0, 0.9]] + [[0.0, 0.0]] * 5, seed=1)  # top latents swap factors
    df = analyze_effective_factors(runs, out=tmp_path)
    assert list(df["active"]) == [2] * 6
    assert np.allclose(df["effective"], math.exp(-(0.6 * math.log(0.6) + 0.4 * math.log(0.4))))
    assert (tmp_path / "effective_factors.png").exists()
    assert (tmp_path / "informativeness_profiles.png").exists()
    assert pd.read_csv(tmp_path / "effective_factors.csv").shape[0] == 6
    df = analyze_latent_order(runs, out=tmp_path)
    assert list(df["top_overlap"]) == [1.0] * 6
    assert list(df["consistent_info"]) == [True] * 5 + [False]
    assert df["top_factors_info"].iloc[0] == "a+b" and df["top_factors_info"].iloc[-1] == "-+b"
    assert (tmp_path / "latent_order.png").exists()
    assert pd.read_parquet(tmp_path / "latent_order.parquet").shape[0] == 6


def test_cli_on_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tiny_run(tmp_path, steps=10)
    out = tmp_path / "an"
    assert dislab_main(["analyze", "effective-factors", str(run), "--out", str(out),
                        "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "effective" in text and "active" in text
    row = pd.read_csv(out / "effective_factors.csv").iloc[0]
    assert row["latent_dim"] == 4 and 0 <= row["active"] <= 4
    assert dislab_main(["analyze", "latent-order", str(run), "--out", str(out), "--quiet"]) == 0
    assert (out / "latent_order.csv").exists()
    assert (run / "latents.json").exists()
    assert dislab_main(["analyze", "effective-factors", str(tmp_path / "nope")]) == 2
