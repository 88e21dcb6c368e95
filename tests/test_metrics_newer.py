"""Known answers of the newer metrics: MCC, DCI-ES, InfoMEC, MIG-sup, DCIMIG.

Each expected value is worked out by hand from the authors' reference code's definition (the
repository, file and function named in each metric's module docstring), as said per test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dislab.metrics import available, score
from dislab.metrics.dci_es import explicitness_from_curve
from dislab.metrics.dcimig import dcimig_from_matrix
from dislab.metrics.infomec import infoe, infom_infoc, normalized_mutual_information
from dislab.metrics.mcc import mean_corr_coef
from dislab.metrics.mig_sup import mig_sup_from_matrix

#: the 2 x 2 grid of two binary factors, each combination 25 times
F2 = np.repeat(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), 25, axis=0)


def test_new_metrics_are_registered() -> None:
    for name in ("mcc", "dci_es", "infomec", "mig_sup", "dcimig"):
        assert name in available()


def test_mcc_known_answers() -> None:
    # icebeem metrics/mcc.py mean_corr_coef_np: |corr| matched by linear_sum_assignment(-|C|).
    # Codes (f1, f0 + f1) on the balanced grid: |C| = [[0, 1/sqrt2], [1, 1/sqrt2]], the best
    # matching f0 -> z1, f1 -> z0 gives (1/sqrt2 + 1) / 2 (by hand). Ranks of these values are
    # affine in them, so Spearman gives the same.
    codes = np.c_[F2[:, 1], F2[:, 0] + F2[:, 1]].astype(float)
    want = (1.0 + 1.0 / math.sqrt(2.0)) / 2.0
    for method in ("pearson", "spearman"):
        got, matched, code_of = mean_corr_coef(F2, codes, method)
        assert got == pytest.approx(want, abs=1e-12)
        assert list(code_of) == [1, 0]
    # x and x^2 on x = 0..3: Pearson = 3.75 / (sqrt(1.25) * 3.5) (by hand), Spearman = 1
    x = np.arange(4.0)[:, None]
    assert mean_corr_coef(x, x**2, "pearson")[0] == pytest.approx(3.75 / (math.sqrt(1.25) * 3.5))
    assert mean_corr_coef(x, x**2, "spearman")[0] == pytest.approx(1.0)
    # invariant to permuting, rescaling and flipping codes; an extra noise code is not matched
    rng = np.random.default_rng(0)
    f = rng.normal(size=(500, 3))
    z = np.c_[-2 * f[:, 2], 5 * f[:, 0] + 1, rng.normal(size=500), 0.1 * f[:, 1]]
    got, _, code_of = mean_corr_coef(f, z)
    assert got == pytest.approx(1.0) and list(code_of) == [1, 3, 0]
    # fewer codes than factors: the unmatched factor counts 0
    assert mean_corr_coef(f, f[:, :2])[0] == pytest.approx(2 / 3)


def test_dci_es_explicitness_of_the_papers_curve() -> None:
    # cianeastwood/loss_capacity_curves plot.py lc_curve: capacities 1..5, losses e^-c for
    # c = 1..4 then e^-4 + 0.02, baseline e^-1 + 0.1. l* = e^-4 at kappa* = 4; by hand
    # AULCC = g1/2 + g2 + g3 (g_c = e^-c - e^-4, trapezoids) and Z = (l^b - l*) * 4 / 2.
    e = [math.exp(-c) for c in range(1, 5)]
    losses = e + [e[-1] + 0.02]
    lb, ls = e[0] + 0.1, e[-1]
    aulcc = 0.5 * (e[0] - ls) + (e[1] - ls) + (e[2] - ls)
    want = 1.0 - aulcc / (0.5 * (lb - ls) * 4.0)
    assert explicitness_from_curve([1, 2, 3, 4, 5], losses, lb) == pytest.approx(want)
    # by hand: AULCC = 0.17478 + 0.11702 + 0.03147 = 0.32327, Z = 0.89913
    assert want == pytest.approx(0.6405, abs=1e-4)
    # best at the smallest capacity: E = 1; never better than the baseline: E = 0
    assert explicitness_from_curve([1, 2, 3], [0.1, 0.1, 0.2], 0.5) == 1.0
    assert explicitness_from_curve([1, 2, 3], [0.5, 0.6, 0.7], 0.5) == 0.0


def test_dci_es_through_score() -> None:
    # binary factors read off single codes: a depth-1 tree is already perfect, E = 1;
    # size = 2 factors / 3 codes
    rng = np.random.default_rng(0)
    f = rng.integers(0, 2, size=(400, 2))
    codes = np.c_[f + 0.1 * rng.normal(size=f.shape), rng.normal(size=400)]
    out = score(codes, f, "dci_es")["dci_es"]
    assert out["explicitness"] == 1.0 and out["size"] == pytest.approx(2 / 3)
    # a factor hidden in a product of codes needs deeper trees: E < 1
    g = rng.uniform(-1, 1, size=(2000, 2))
    y = (g[:, 0] * g[:, 1] > 0).astype(int)
    mixed = score(g, y, "dci_es")["dci_es"]["explicitness"]
    assert 0.0 < mixed < 0.9


def test_mig_sup_and_dcimig_known_answers() -> None:
    # ubisoft-laforge-disentanglement-metrics mig_sup / dcimig on codes z0 = f0, z1 = 2 f0 + f1
    # over the balanced binary grid (nats; by hand): I(f0;z0) = log2, I(f1;z0) = 0,
    # I(f0;z1) = I(f1;z1) = log2, H(z0) = log2, H(z1) = log4.
    codes = np.c_[F2[:, 0], 2 * F2[:, 0] + F2[:, 1]].astype(float)
    m = np.array([[math.log(2), 0.0], [math.log(2), math.log(2)]])
    # MIG-sup: normalised by the code's entropy, z0 -> [1, 0] gap 1, z1 -> [1/2, 1/2] gap 0
    got, gaps = mig_sup_from_matrix(m, np.array([math.log(2), math.log(4)]))
    assert got == pytest.approx(0.5) and gaps == pytest.approx([1.0, 0.0])
    # DCIMIG: gaps log2 (z0, credited to f0) and 0 (z1, np.argmax's first = f0); f0 keeps
    # log2, f1 nothing; over H(f0) + H(f1) = 2 log2 -> 1/2
    assert dcimig_from_matrix(m, np.array([math.log(2)] * 2))[0] == pytest.approx(0.5)
    # the same through score (10 equal-width bins keep the code values apart)
    out = score(codes, F2, "mig_sup,dcimig", sampling="resample",
                params={"mig_sup": {"num_train": 4000}, "dcimig": {"num_train": 4000}})
    assert out["mig_sup"]["mig_sup"] == pytest.approx(0.5, abs=0.01)
    assert out["dcimig"]["dcimig"] == pytest.approx(0.5, abs=0.01)
    # a perfectly disentangled code scores 1 on both
    perfect = score(F2.astype(float), F2, "mig_sup,dcimig")
    assert perfect["mig_sup"]["mig_sup"] == pytest.approx(1.0)
    assert perfect["dcimig"]["dcimig"] == pytest.approx(1.0)


def test_infomec_known_answers() -> None:
    # latent_quantization infomec.py compute_infomec with discrete latents z0 = f0,
    # z1 = 2 f0 + f1 (by hand): NMI = [[1, 1], [0, 1]] (sources x latents).
    # InfoM: latents' max/sum = 1, 1/2 -> mean 3/4 -> (3/4 - 1/2) / (1 - 1/2) = 1/2;
    # InfoC: sources' max/sum = 1/2, 1 -> the same 1/2.
    z = np.c_[F2[:, 0], 2 * F2[:, 0] + F2[:, 1]]
    nmi = normalized_mutual_information(F2, z, discrete_latents=True)
    assert nmi == pytest.approx(np.array([[1.0, 1.0], [0.0, 1.0]]))
    m, c = infom_infoc(nmi, np.array([True, True]))
    assert m == pytest.approx(0.5) and c == pytest.approx(0.5)
    # InfoE: the one-hot latents determine both sources, so the predictive log-loss is ~0
    # against log 2 of the null model: InfoE ~ 1 (lbfgs stops after 100 iterations)
    e, per = infoe(F2, z, discrete_latents=True)
    assert e == pytest.approx(1.0, abs=0.02)
    # a latent that ignores the sources adds nothing: InfoE 0
    assert infoe(F2, np.zeros((100, 1), dtype=int), True)[0] == pytest.approx(0.0, abs=1e-6)


def test_infomec_through_score_orders_representations() -> None:
    rng = np.random.default_rng(1)
    f = rng.integers(0, 4, size=(1000, 2))
    good = f + 0.05 * rng.normal(size=f.shape)
    rot = good @ np.array([[1.0, 1.0], [-1.0, 1.0]]) / math.sqrt(2)
    a = score(good, f, "infomec")["infomec"]
    b = score(rot, f, "infomec")["infomec"]
    assert a["infom"] > 0.9 and a["infoc"] > 0.9 and a["infoe"] > 0.9
    assert b["infom"] < a["infom"] - 0.3 and b["infoc"] < a["infoc"] - 0.3


def test_listed_by_cli_and_shown_in_reports(capsys) -> None:
    import pandas as pd

    from dislab.cli import main
    from dislab.viz.run_report import headline_metrics
    from dislab.viz.study_plots import headline_metrics as study_headline

    assert main(["metrics"]) == 0
    listed = capsys.readouterr().out
    for name in ("mcc", "dci_es", "infomec", "mig_sup", "dcimig", "fairness",
                 "reduced_downstream", "strong_downstream", "udr"):
        assert f"\n{name}  " in "\n" + listed
    record = {"metrics": {"mcc": {"values": {"mcc": 0.9}},
                          "dci_es": {"values": {"explicitness": 0.8, "size": 1.0}},
                          "infomec": {"values": {"infom": 0.7, "infoe": 0.6, "infoc": 0.5}}}}
    assert dict(headline_metrics(record)) == {"MCC": 0.9, "DCI-ES explicitness": 0.8,
                                              "InfoM": 0.7}
    frame = pd.DataFrame({c: [0.5, 0.6] for c in [
        "metric.mcc.mcc", "metric.mcc.mcc_spearman", "metric.dci_es.explicitness",
        "metric.dci_es.size", "metric.infomec.infom", "metric.infomec.infoc",
        "metric.mig_sup.mig_sup", "metric.mig_sup.mig_sup_z0", "metric.dcimig.dcimig"]})
    assert set(study_headline(frame)) == {
        "metric.mcc.mcc", "metric.dci_es.explicitness", "metric.infomec.infom",
        "metric.mig_sup.mig_sup", "metric.dcimig.dcimig"}
