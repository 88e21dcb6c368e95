"""The previous ``dislab.metrics.fastgbt`` kernels (before the partitioned-scan rewrite).

Kept only so that ``benchmarks/gbt_speed.py`` can time the old and the new booster in the
same run and check that they grow the same trees. ``_grow_tree`` and ``_fit_impl`` are the old
kernels verbatim; everything else (classes, prior, tie-break keys, prediction) is the
library's :class:`dislab.metrics.fastgbt.ExactGBClassifier`, which :class:`ExactGBClassifier`
here extends by swapping its compiled stages for the old ones. Not part of the library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dislab.metrics import fastgbt

__all__ = ["ExactGBClassifier"]

prange = range  # numba's prange replaces it in the compiled functions (see _compile)

_EPS = float(np.finfo(np.float64).eps)  # sklearn's EPSILON: smaller impurity is a leaf
_FEATURE_THRESHOLD = 1e-7  # sklearn: values closer than this are not split apart


def _grow_tree(x, order, r, h, s, k, max_depth, keys, feat, thr, node, imp, num, den,
               cnt, sm, sq, is_open, best_p, best_k, best_f, best_lo, best_hi,
               lcnt, lsum, lastv):
    """Grow tree ``k`` of stage ``s`` on residuals ``r[k]`` (one row of each scratch array)."""
    n, nf = x.shape
    m = cnt.shape[1]
    for i in range(n):
        node[k, i] = 0
    for d in range(max_depth + 1):
        lo_j = 2**d - 1
        hi_j = 2 ** (d + 1) - 1
        for j in range(lo_j, hi_j):
            cnt[k, j] = 0.0
            sm[k, j] = 0.0
            sq[k, j] = 0.0
        for i in range(n):
            j = node[k, i]
            if j >= lo_j:
                cnt[k, j] += 1.0
                sm[k, j] += r[k, i]
                sq[k, j] += r[k, i] * r[k, i]
        if d > 0:  # importances of the previous level's splits
            for j in range(2 ** (d - 1) - 1, lo_j):
                f = feat[s, k, j]
                if f >= 0:
                    a = 2 * j + 1
                    b = 2 * j + 2
                    gain = (sm[k, a] ** 2 / cnt[k, a] + sm[k, b] ** 2 / cnt[k, b]
                            - (sm[k, a] + sm[k, b]) ** 2 / (cnt[k, a] + cnt[k, b]))
                    imp[k, f] += gain / n
        if d == max_depth:
            break
        any_open = False
        for j in range(lo_j, hi_j):
            is_open[k, j] = False
            c = cnt[k, j]
            if c >= 2.0:
                impurity = sq[k, j] / c - (sm[k, j] / c) ** 2
                if impurity > _EPS:
                    is_open[k, j] = True
                    any_open = True
            best_p[k, j] = -np.inf
            best_k[k, j] = np.inf
            best_f[k, j] = -1
        if not any_open:
            break
        for f in range(nf):
            for j in range(lo_j, hi_j):
                lcnt[k, j] = 0.0
                lsum[k, j] = 0.0
                lastv[k, j] = 0.0
            for ii in range(n):
                i = order[f, ii]
                j = node[k, i]
                if j < lo_j or not is_open[k, j]:
                    continue
                v = np.float64(x[i, f])
                lc = lcnt[k, j]
                if lc > 0.0 and v > lastv[k, j] + _FEATURE_THRESHOLD:
                    sl = lsum[k, j]
                    sr = sm[k, j] - sl
                    proxy = sl * sl / lc + sr * sr / (cnt[k, j] - lc)
                    key = keys[s, k, j, f]
                    if proxy > best_p[k, j] or (proxy == best_p[k, j] and key < best_k[k, j]):
                        best_p[k, j] = proxy
                        best_k[k, j] = key
                        best_f[k, j] = f
                        best_lo[k, j] = lastv[k, j]
                        best_hi[k, j] = v
                lcnt[k, j] = lc + 1.0
                lsum[k, j] += r[k, i]
                lastv[k, j] = v
        for j in range(lo_j, hi_j):
            if is_open[k, j] and best_f[k, j] >= 0:
                t = best_lo[k, j] / 2.0 + best_hi[k, j] / 2.0
                if t == best_hi[k, j] or np.isinf(t):
                    t = best_lo[k, j]
                feat[s, k, j] = best_f[k, j]
                thr[s, k, j] = t
        for i in range(n):
            j = node[k, i]
            if j >= lo_j and feat[s, k, j] >= 0:
                if x[i, feat[s, k, j]] <= thr[s, k, j]:
                    node[k, i] = 2 * j + 1
                else:
                    node[k, i] = 2 * j + 2
    for j in range(m):
        num[k, j] = 0.0
        den[k, j] = 0.0
    for i in range(n):
        num[k, node[k, i]] += r[k, i]
        den[k, node[k, i]] += h[k, i]


def _fit_impl(x, order, yi, n_trees, n_stages, lr, max_depth, keys, raw0):
    n, nf = x.shape
    m = 2 ** (max_depth + 1) - 1
    n_classes = raw0.shape[0] if n_trees > 1 else 2
    raw = np.empty((n_trees, n))
    for k in range(n_trees):
        for i in range(n):
            raw[k, i] = raw0[k]
    feat = np.full((n_stages, n_trees, m), -1, np.int64)
    thr = np.zeros((n_stages, n_trees, m))
    val = np.zeros((n_stages, n_trees, m))
    imp = np.zeros((n_trees, nf))
    r = np.empty((n_trees, n))
    h = np.empty((n_trees, n))
    node = np.zeros((n_trees, n), np.int64)
    cnt = np.zeros((n_trees, m))
    sm = np.zeros((n_trees, m))
    sq = np.zeros((n_trees, m))
    is_open = np.zeros((n_trees, m), np.bool_)
    best_p = np.zeros((n_trees, m))
    best_k = np.zeros((n_trees, m))
    best_f = np.zeros((n_trees, m), np.int64)
    best_lo = np.zeros((n_trees, m))
    best_hi = np.zeros((n_trees, m))
    lcnt = np.zeros((n_trees, m))
    lsum = np.zeros((n_trees, m))
    lastv = np.zeros((n_trees, m))
    num = np.zeros((n_trees, m))
    den = np.zeros((n_trees, m))
    factor = (n_classes - 1.0) / n_classes if n_trees > 1 else 1.0
    for s in range(n_stages):
        # negative gradient and hessian at the start of the stage
        for i in range(n):
            if n_trees == 1:
                p = 1.0 / (1.0 + np.exp(-raw[0, i]))
                t = 1.0 if yi[i] == 1 else 0.0
                r[0, i] = t - p
                h[0, i] = p * (1.0 - p)
            else:
                mx = raw[0, i]
                for c in range(1, n_trees):
                    if raw[c, i] > mx:
                        mx = raw[c, i]
                z = 0.0
                for c in range(n_trees):
                    z += np.exp(raw[c, i] - mx)
                for c in range(n_trees):
                    p = np.exp(raw[c, i] - mx) / z
                    t = 1.0 if yi[i] == c else 0.0
                    r[c, i] = t - p
                    h[c, i] = p * (1.0 - p)
        for k in prange(n_trees):  # the trees of one stage are independent
            _grow_tree(x, order, r, h, s, k, max_depth, keys, feat, thr, node, imp, num, den,
                       cnt, sm, sq, is_open, best_p, best_k, best_f, best_lo, best_hi,
                       lcnt, lsum, lastv)
            # Newton step per leaf, then update the raw predictions
            for j in range(m):
                if den[k, j] != 0.0:
                    u = factor * num[k, j] / den[k, j]
                    val[s, k, j] = u if np.isfinite(u) else 0.0
            for i in range(n):
                raw[k, i] += lr * val[s, k, node[k, i]]
    return feat, thr, val, imp.sum(axis=0), raw.T.copy()


_COMPILED: dict[str, Any] = {}


def _compile() -> dict[str, Any]:
    """Compile the old kernels on first use."""
    global _grow_tree, prange
    if not _COMPILED:
        import numba

        prange = numba.prange
        _grow_tree = numba.njit(cache=True)(_grow_tree)
        _COMPILED["serial"] = numba.njit(cache=True)(_fit_impl)
        _COMPILED["parallel"] = numba.njit(cache=True, parallel=True)(_fit_impl)
    return _COMPILED


class ExactGBClassifier(fastgbt.ExactGBClassifier):
    """The library's booster with the old compiled stages."""

    def _grow(self, x: np.ndarray, yi: np.ndarray, raw0: np.ndarray, keys: np.ndarray
              ) -> tuple[np.ndarray, ...]:
        n_trees = len(raw0)
        order = np.ascontiguousarray(np.argsort(x, axis=0, kind="stable").T.astype(np.int64))
        jit = _compile()
        parallel = len(yi) * n_trees >= fastgbt.PARALLEL_MIN_WORK
        fit = jit["parallel" if parallel else "serial"]
        return fit(x, order, yi, n_trees, self.n_estimators, float(self.learning_rate),
                   self.max_depth, keys, raw0)
