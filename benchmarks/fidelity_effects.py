"""How much each reproduced reference setting moves a metric (the numbers in docs/fidelity.md).

On a toy: a full grid of three factors (6 x 8 x 10 = 480 points) and a 5-d code that mixes them
(two clean latents, one mixed, a scaled copy and noise), with a Gaussian posterior. Each metric
runs with dislab's default and with the reference's setting (``compat="dlib"``, Do & Tran's
``separability="official"``), over ``--seeds`` evaluation seeds; prints mean ± sd of both and
the mean difference.

    PYTHONPATH=src python benchmarks/fidelity_effects.py --seeds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dislab.data.base import from_function
from dislab.metrics.base import CodeTable
from dislab.metrics.suite import run_metrics


def toy(scale: float = 1.0, noise: float = 0.4) -> tuple[object, CodeTable]:
    data = from_function((6, 8, 10), name="toy3")
    f = data.factors(np.arange(len(data))).astype(float)
    f = (f - f.mean(0)) / f.std(0)
    rng = np.random.default_rng(0)
    codes = np.stack([f[:, 0], f[:, 1] + 0.3 * f[:, 2], 0.7 * f[:, 2] + 0.5 * f[:, 0],
                      3.0 * f[:, 1], rng.standard_normal(len(f))], 1)
    codes = scale * (codes + noise * rng.standard_normal(codes.shape))
    return data, CodeTable(codes, np.full(codes.shape, np.log((0.3 * scale) ** 2)))


CASES = [
    # (label, metric, dislab's params, the reference's params, headline key, code scale,
    # [code noise])
    ("BetaVAE score, LogisticRegression", "beta_vae", {}, {"sklearn": "2019"},
     "eval_accuracy", 1.0),
    ("BetaVAE score, LogisticRegression (noise 3)", "beta_vae", {}, {"sklearn": "2019"},
     "eval_accuracy", 1.0, 3.0),
    ("explicitness, LogisticRegression", "modularity", {}, {"sklearn": "2019"},
     "explicitness_score_test", 1.0),
    ("SAP, LinearSVC (unit-scale codes)", "sap", {}, {"sklearn": "2019"}, "SAP_score", 1.0),
    ("SAP, LinearSVC (codes x 50, 2000 points)", "sap", {"num_train": 2000, "num_test": 1000},
     {"num_train": 2000, "num_test": 1000, "sklearn": "2019"}, "SAP_score", 50.0),
    ("downstream LogisticRegressionCV, 1000 points", "downstream_logistic_regression",
     {"num_train": [1000], "num_test": 2000}, {"num_train": [1000], "num_test": 2000,
                                               "sklearn": "2019"},
     "1000:mean_test_accuracy", 1.0),
    ("DCI disentanglement, booster", "dci", {"num_train": 2000, "num_test": 1000},
     {"num_train": 2000, "num_test": 1000, "booster": "reference"}, "disentanglement", 1.0),
    ("DCI completeness, booster", "dci", {"num_train": 2000, "num_test": 1000},
     {"num_train": 2000, "num_test": 1000, "booster": "reference"}, "completeness", 1.0),
    ("Do & Tran WSEP, estimator", "dotran", {}, {"separability": "official"}, "wsep", 1.0),
    ("Do & Tran WSEPIN, estimator", "dotran", {}, {"separability": "official"}, "wsepin", 1.0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only", default="", help="run the cases whose label contains this")
    args = ap.parse_args()
    for label, metric, ours, ref, key, scale, *noise in CASES:
        if args.only not in label:
            continue
        data, table = toy(scale, *noise)
        t0 = time.perf_counter()
        a = [run_metrics(table, data, [metric], s, {metric: ours})["results"][metric]
             ["values"][key] for s in range(args.seeds)]
        b = [run_metrics(table, data, [metric], s, {metric: ref})["results"][metric]
             ["values"][key] for s in range(args.seeds)]
        diff = np.mean(np.subtract(b, a))
        print(f"{label:46s} dislab {np.mean(a):.4f} ± {np.std(a):.4f}   reference "
              f"{np.mean(b):.4f} ± {np.std(b):.4f}   ref − dislab {diff:+.4f}   "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
