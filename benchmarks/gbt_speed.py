"""The compiled booster (``dislab.metrics.fastgbt``) against scikit-learn on dSprites-like codes.

Fits ``ExactGBClassifier()`` and scikit-learn's ``GradientBoostingClassifier()`` (the baseline,
same defaults) once per factor, as DCI does: 10 000 training codes (10 float32 dims: 5
informative, 5 collapsed), labels with 3, 6, 40, 32 and 32 classes (dSprites' factor sizes)
that depend on the codes plus noise. Both run in the same process, back to back per factor;
the script prints each time, the ratio, and the largest differences between the two fits
(importances, decision values on 5 000 held-out codes). That the two grow the same trees is
asserted by ``tests/test_metrics_fastgbt.py``.

    .venv/bin/python benchmarks/gbt_speed.py                  # all factors, 100 stages
    .venv/bin/python benchmarks/gbt_speed.py --stages 20 --factors 2   # quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

from dislab.metrics import fastgbt

SIZES = (3, 6, 40, 32, 32)


def codes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 10)`` float32 codes and ``(n, 5)`` integer factors (dSprites' sizes)."""
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    u = f / (np.asarray(SIZES, np.float64) - 1) * 2 - 1
    informative = np.tanh(1.5 * u) + 0.15 * rng.standard_normal(u.shape)
    informative[:, 1] += 0.5 * informative[:, 2]
    collapsed = 0.02 * rng.standard_normal((n, 5))
    return np.concatenate([informative, collapsed], axis=1).astype(np.float32), f


def _fit(cls, x: np.ndarray, y: np.ndarray, stages: int) -> tuple[object, float]:
    t = time.perf_counter()
    model = cls(n_estimators=stages, random_state=0).fit(x, y)
    return model, time.perf_counter() - t


def _decision(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.decision_function(x)).reshape(len(x), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="training codes")
    ap.add_argument("--stages", type=int, default=100, help="boosting stages of both fits")
    ap.add_argument("--factors", type=str, default="0,1,2,3,4",
                    help="comma-separated factor indices to fit")
    args = ap.parse_args()
    if not fastgbt.available():
        raise SystemExit("numba is not installed: dislab uses scikit-learn's booster itself")
    x, f = codes(args.n, 0)
    xt, _ = codes(5_000, 1)
    # compile (and warm the caches) on a small problem first
    _fit(fastgbt.ExactGBClassifier, x[:300], f[:300, 2], 2)
    _fit(fastgbt.ExactGBClassifier, x[:3000], f[:3000, 2], 2)
    total_ref = total_new = 0.0
    worst = {"imp": 0.0, "decision": 0.0}
    for k in (int(s) for s in args.factors.split(",")):
        ref, t_ref = _fit(GradientBoostingClassifier, x, f[:, k], args.stages)
        new, t_new = _fit(fastgbt.ExactGBClassifier, x, f[:, k], args.stages)
        total_ref += t_ref
        total_new += t_new
        worst["imp"] = max(worst["imp"], float(np.abs(ref.feature_importances_
                                                      - new.feature_importances_).max()))
        worst["decision"] = max(worst["decision"],
                                float(np.abs(_decision(ref, xt) - _decision(new, xt)).max()))
        print(f"factor {k} ({SIZES[k]:2d} classes): scikit-learn {t_ref:7.2f} s  "
              f"dislab {t_new:6.2f} s  ratio {t_ref / t_new:5.2f}x", flush=True)
    print(f"total: scikit-learn {total_ref:.2f} s  dislab {total_new:.2f} s  "
          f"ratio {total_ref / total_new:.2f}x")
    print("max |diff|:", "  ".join(f"{key} {v:.3g}" for key, v in worst.items()))


if __name__ == "__main__":
    main()
