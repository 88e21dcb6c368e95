"""Old vs new compiled booster (``dislab.metrics.fastgbt``) on dSprites-like codes.

Fits ``ExactGBClassifier()`` (sklearn's ``GradientBoostingClassifier()`` defaults) once per
factor, as DCI does: 10 000 training codes (10 float32 dims: 5 informative, 5 collapsed),
labels with 3, 6, 40, 32 and 32 classes (dSprites' factor sizes) that depend on the codes
plus noise. The previous implementation (``benchmarks/_gbt_old.py``, a verbatim copy) and
the current one run in the same process, back to back per factor; the script prints each
time, the ratio, and the largest differences between the two fits (tree thresholds, leaf
values, importances, decision values on 5 000 held-out codes).

    .venv/bin/python benchmarks/gbt_speed.py                  # all factors, 100 stages
    .venv/bin/python benchmarks/gbt_speed.py --stages 20 --factors 2   # quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gbt_old  # noqa: E402
from dislab.metrics import fastgbt  # noqa: E402

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


def _fit(module, x: np.ndarray, y: np.ndarray, stages: int) -> tuple[object, float]:
    t = time.perf_counter()
    model = module.ExactGBClassifier(n_estimators=stages, random_state=0).fit(x, y)
    return model, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="training codes")
    ap.add_argument("--stages", type=int, default=100)
    ap.add_argument("--factors", type=str, default="0,1,2,3,4",
                    help="comma-separated factor indices to fit")
    args = ap.parse_args()
    x, f = codes(args.n, 0)
    xt, _ = codes(5_000, 1)
    # compile both (and warm the caches) on a small problem first
    for mod in (_gbt_old, fastgbt):
        _fit(mod, x[:300], f[:300, 2], 2)
        _fit(mod, x[:3000], f[:3000, 2], 2)
    total_old = total_new = 0.0
    worst = {"thr": 0.0, "val": 0.0, "imp": 0.0, "decision": 0.0}
    same_feat = True
    for k in (int(s) for s in args.factors.split(",")):
        old, t_old = _fit(_gbt_old, x, f[:, k], args.stages)
        new, t_new = _fit(fastgbt, x, f[:, k], args.stages)
        total_old += t_old
        total_new += t_new
        (fa, ta, va), (fb, tb, vb) = old._trees, new._trees
        same_feat &= bool(np.array_equal(fa, fb))
        worst["thr"] = max(worst["thr"], float(np.abs(ta - tb).max()))
        worst["val"] = max(worst["val"], float(np.abs(va - vb).max()))
        worst["imp"] = max(worst["imp"], float(np.abs(old.feature_importances_
                                                      - new.feature_importances_).max()))
        worst["decision"] = max(worst["decision"], float(np.abs(
            old.decision_function(xt) - new.decision_function(xt)).max()))
        print(f"factor {k} ({SIZES[k]:2d} classes): old {t_old:7.2f} s  new {t_new:6.2f} s  "
              f"ratio {t_old / t_new:5.2f}x", flush=True)
    print(f"total: old {total_old:.2f} s  new {total_new:.2f} s  "
          f"ratio {total_old / total_new:.2f}x")
    print("same split features:", same_feat, " max |diff|:",
          "  ".join(f"{key} {v:.3g}" for key, v in worst.items()))


if __name__ == "__main__":
    main()
