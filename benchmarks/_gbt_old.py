"""The previous ``dislab.metrics.fastgbt`` (before the partitioned-scan rewrite), verbatim.

Kept only so that ``benchmarks/gbt_speed.py`` can time the old and the new booster in the
same run and check that they grow the same trees. Not part of the library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["available", "ExactGBClassifier"]

import importlib.util

_HAVE_NUMBA = importlib.util.find_spec("numba") is not None
prange = range  # numba's prange replaces it in the compiled functions (see _compile)


def available() -> bool:
    """Whether the compiled booster can run (numba importable)."""
    return _HAVE_NUMBA


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


def _predict_impl(x, feat, thr, val, lr, raw0):
    n = x.shape[0]
    n_stages, n_trees, _ = feat.shape
    raw = np.empty((n, n_trees))
    for i in range(n):
        for k in range(n_trees):
            acc = raw0[k]
            for s in range(n_stages):
                j = 0
                while feat[s, k, j] >= 0:
                    if x[i, feat[s, k, j]] <= thr[s, k, j]:
                        j = 2 * j + 1
                    else:
                        j = 2 * j + 2
                acc += lr * val[s, k, j]
            raw[i, k] = acc
    return raw


_COMPILED: dict[str, Any] = {}


def _compile() -> dict[str, Any]:
    """Compile on first use (numba is imported only when a booster is fitted)."""
    global _grow_tree, prange
    if not _COMPILED:
        import numba

        prange = numba.prange
        _grow_tree = numba.njit(cache=True)(_grow_tree)
        _COMPILED["serial"] = numba.njit(cache=True)(_fit_impl)
        _COMPILED["parallel"] = numba.njit(cache=True, parallel=True)(_fit_impl)
        _COMPILED["predict"] = numba.njit(cache=True)(_predict_impl)
    return _COMPILED

#: Grow the trees of a stage in parallel from this many samples x trees on (smaller problems
#: lose more to thread synchronisation than they gain).
PARALLEL_MIN_WORK = 200_000


class ExactGBClassifier:
    """``GradientBoostingClassifier()`` (sklearn defaults) for dense float features.

    ``fit(x (n, d), y (n,))``, ``predict``, ``decision_function``, ``classes_``,
    ``feature_importances_`` (sum 1, or all 0 when no tree split), ``train_raw_``.
    """

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.1,
                 max_depth: int = 3, random_state: int | None = None) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.random_state = random_state

    def fit(self, x: np.ndarray, y: np.ndarray) -> ExactGBClassifier:
        if not _HAVE_NUMBA:
            raise RuntimeError("ExactGBClassifier needs numba (pip install numba).")
        x = np.ascontiguousarray(x, dtype=np.float32)  # sklearn fits trees on float32
        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError("ExactGBClassifier needs at least two classes.")
        eps = float(np.finfo(np.float32).eps)
        prior = np.clip(np.bincount(yi, minlength=n_classes) / len(yi), eps, 1 - eps)
        if n_classes == 2:
            raw0 = np.array([np.log(prior[1] / (1 - prior[1]))])
        else:
            raw0 = np.log(prior) - np.log(prior).mean()
        n_trees = len(raw0)
        order = np.ascontiguousarray(np.argsort(x, axis=0, kind="stable").T.astype(np.int64))
        m = 2 ** (self.max_depth + 1) - 1
        keys = np.random.default_rng(self.random_state).random(
            (self.n_estimators, n_trees, m, x.shape[1]))
        jit = _compile()
        fit = jit["parallel"] if len(yi) * n_trees >= PARALLEL_MIN_WORK else jit["serial"]
        feat, thr, val, imp, raw = fit(x, order, yi.astype(np.int64), n_trees,
                                        self.n_estimators, float(self.learning_rate),
                                        self.max_depth, keys, raw0)
        self._trees = (feat, thr, val)
        self._raw0 = raw0
        total = imp.sum()
        self.feature_importances_ = imp / total if total > 0 else imp
        self.train_raw_ = raw
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        feat, thr, val = self._trees
        x = np.ascontiguousarray(x, dtype=np.float32)
        return _compile()["predict"](x, feat, thr, val, float(self.learning_rate), self._raw0)

    def _classes_of(self, raw: np.ndarray) -> Any:
        if raw.shape[1] == 1:
            return self.classes_[(raw[:, 0] > 0).astype(np.int64)]
        return self.classes_[np.argmax(raw, axis=1)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._classes_of(self.decision_function(x))

    def predict_train(self) -> np.ndarray:
        """Predictions on the training inputs (from the fit, no second pass)."""
        return self._classes_of(self.train_raw_)
