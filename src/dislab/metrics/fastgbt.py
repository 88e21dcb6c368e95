"""scikit-learn's ``GradientBoostingClassifier()`` algorithm, compiled with numba.

disentanglement_lib's DCI and downstream task use ``GradientBoostingClassifier()`` with its defaults
(``evaluation/metrics/utils.py``, ``gradient_boosting_classifier``): 100 stages, learning rate 0.1,
one depth-3 regression tree per class and stage on the negative gradient of the multinomial (or
binomial) deviance, squared error splits (friedman_mse ranks splits identically with unit weights),
no leaf-size floor, a Newton step per leaf (times ``(K-1)/K`` for K > 2 classes), the class prior as
the initial prediction, and impurity importances averaged over the trees. This module runs the same
algorithm, with changes that do not alter the result:

* every feature is sorted once, not at every node; level by level, each node's samples are
  one contiguous run of every feature's sorted list (a branch-free stable partition of the
  parent's run, done per feature just before that feature is scanned, while it is in
  cache), so a node's split search is one sequential pass with its sums in registers;
* the root scan, identical in positions for every tree of a stage, runs for a block of
  trees at once over their residuals stored side by side;
* the trees of one stage are grown in parallel (numba threads, one block of trees each);
* exact ties between split candidates are broken by a random feature order drawn from the
  seed (scikit-learn also visits features in a random order; only the random stream differs).

``tests/test_metrics_fastgbt.py`` checks that the trees equal scikit-learn's; the speed
against scikit-learn (``benchmarks/gbt_speed.py``) is in ``docs/metrics.md``.

Without numba installed, :class:`ExactGBClassifier` is unavailable (``available()`` is False)
and DCI / the downstream task fall back to scikit-learn itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["available", "ExactGBClassifier", "numba_cache_dir"]

import importlib.util
import os
import sys
import tempfile
import types

_HAVE_NUMBA = importlib.util.find_spec("numba") is not None
prange = range  # numba's prange replaces it in the compiled functions (see _compile)


def available() -> bool:
    """Whether the compiled booster can run (numba importable)."""
    return _HAVE_NUMBA


_EPS = float(np.finfo(np.float64).eps)  # sklearn's EPSILON: smaller impurity is a leaf
_FEATURE_THRESHOLD = 1e-7  # sklearn: values closer than this are not split apart


def _grow_tree(x, order, xs0, r, h, s, k, max_depth, keys, feat, thr, node, imp,
               num, den, ia, va, ib, vb, side, root_p, root_i):
    """Grow tree ``k`` of stage ``s`` on residuals ``r[k]``.

    ``order``/``xs0`` (nf, n) hold every feature's sorted sample indices / values. Level by
    level, the samples of each node form one contiguous run ``[start[j], start[j] + cnt[j])``
    of every feature's list (stable partition of the parent's run into the scratch lists
    ``ia``/``va`` and ``ib``/``vb``, alternately), so a node's scan is a contiguous pass.
    """
    n, nf = x.shape
    m = 2 ** (max_depth + 1) - 1
    rk = r[k]
    cnt = np.zeros(m, np.int64)
    sm = np.zeros(m)
    sq = np.zeros(m)
    start = np.zeros(m, np.int64)
    is_open = np.zeros(m, np.bool_)
    bp = np.empty(m)
    bk = np.empty(m)
    bf = np.empty(m, np.int64)
    bi = np.empty(m, np.int64)
    src_i = order
    src_v = xs0
    for i in range(n):
        node[k, i] = 0
    for d in range(max_depth + 1):
        lo_j = 2**d - 1
        hi_j = 2 ** (d + 1) - 1
        for i in range(n):
            j = node[k, i]
            if j >= lo_j:
                cnt[j] += 1
                sm[j] += rk[i]
                sq[j] += rk[i] * rk[i]
        for j in range(lo_j, hi_j, 2):
            if j > 0:
                start[j + 1] = start[j] + cnt[j]
        if d > 0:  # importances of the previous level's splits
            for j in range(2 ** (d - 1) - 1, lo_j):
                f = feat[s, k, j]
                if f >= 0:
                    a = 2 * j + 1
                    b = 2 * j + 2
                    ca = np.float64(cnt[a])
                    cb = np.float64(cnt[b])
                    gain = (sm[a] ** 2 / ca + sm[b] ** 2 / cb
                            - (sm[a] + sm[b]) ** 2 / (ca + cb))
                    imp[k, f] += gain / n
        if d == max_depth:
            break
        any_open = False
        for j in range(lo_j, hi_j):
            c = np.float64(cnt[j])
            if cnt[j] >= 2:
                impurity = sq[j] / c - (sm[j] / c) ** 2
                if impurity > _EPS:
                    is_open[j] = True
                    any_open = True
        if not any_open:
            break
        if d > 0:  # this level's runs: stable partition of the split parents' runs
            dst_i = ia if d % 2 == 1 else ib
            dst_v = va if d % 2 == 1 else vb
        else:
            dst_i = order
            dst_v = xs0
        for j in range(lo_j, hi_j):
            bp[j] = -np.inf
            bk[j] = np.inf
            bf[j] = -1
        for f in range(nf):
            di = dst_i[f]
            dv = dst_v[f]
            if d > 0:  # partition feature f's list while it is in cache, then scan it
                si = src_i[f]
                sv = src_v[f]
                for j in range(2 ** (d - 1) - 1, lo_j):
                    if feat[s, k, j] < 0 or not (is_open[2 * j + 1] or is_open[2 * j + 2]):
                        continue
                    pl = start[2 * j + 1]
                    pr = start[2 * j + 2]
                    for ii in range(pl, pr + cnt[2 * j + 2]):  # branch-free
                        i = si[ii]
                        g = np.int64(side[i])
                        q = pr + g * (pl - pr)
                        di[q] = i
                        dv[q] = sv[ii]
                        pl += g
                        pr += 1 - g
            for j in range(lo_j, hi_j):
                if not is_open[j]:
                    continue
                st = start[j]
                en = st + cnt[j]
                cj = cnt[j]
                smj = sm[j]
                fbp = -np.inf
                fbi = -1
                sl = rk[di[st]]
                prev = np.float64(dv[st])
                if d == 0:  # the root's scan ran for all trees at once (_root_scan)
                    fbp = root_p[f, k]
                    fbi = root_i[f, k]
                    en = st
                for ii in range(st + 1, en):
                    v = np.float64(dv[ii])
                    if v > prev + _FEATURE_THRESHOLD:
                        lc = ii - st
                        sr = smj - sl
                        proxy = sl * sl / lc + sr * sr / (cj - lc)
                        if proxy > fbp:
                            fbp = proxy
                            fbi = ii
                    sl += rk[di[ii]]
                    prev = v
                if fbi >= 0:  # lower key wins an exact tie between features
                    key = keys[s, k, j, f]
                    if fbp > bp[j] or (fbp == bp[j] and key < bk[j]):
                        bp[j] = fbp
                        bk[j] = key
                        bf[j] = f
                        bi[j] = fbi
        for j in range(lo_j, hi_j):
            if bf[j] >= 0:
                lo = np.float64(dst_v[bf[j], bi[j] - 1])
                hi = np.float64(dst_v[bf[j], bi[j]])
                t = lo / 2.0 + hi / 2.0
                if t == hi or np.isinf(t):
                    t = lo
                feat[s, k, j] = bf[j]
                thr[s, k, j] = t
        src_i = dst_i
        src_v = dst_v
        for i in range(n):
            j = node[k, i]
            if j >= lo_j and feat[s, k, j] >= 0:
                g = np.int64(x[i, feat[s, k, j]] <= thr[s, k, j])
                node[k, i] = 2 * j + 2 - g
                side[i] = g
        for j in range(lo_j, hi_j):  # children's runs (left first) in the next level's lists
            start[2 * j + 1] = start[j]
    for j in range(m):
        num[k, j] = 0.0
        den[k, j] = 0.0
    for i in range(n):
        num[k, node[k, i]] += r[k, i]
        den[k, node[k, i]] += h[k, i]


def _root_scan(idx, vals, rt, sm0, bp, bi, sl):
    """Best root split on one feature (sorted ``idx``/``vals``) for several trees at once.

    The root holds all samples, so every tree visits the same sorted positions: one pass
    with the trees' residuals ``rt (n, trees)`` side by side (a contiguous run per sample).
    Same sums, in the same order, and the same proxy as the per-node scan in _grow_tree.
    """
    n = idx.shape[0]
    n_trees = rt.shape[1]
    row = rt[idx[0]]
    for k in range(n_trees):
        bp[k] = -np.inf
        bi[k] = -1
        sl[k] = row[k]
    prev = np.float64(vals[0])
    for ii in range(1, n):
        v = np.float64(vals[ii])
        if v > prev + _FEATURE_THRESHOLD:
            a = np.float64(ii)  # left / right sample counts
            b = np.float64(n - ii)
            for k in range(n_trees):
                sr = sm0[k] - sl[k]
                proxy = sl[k] * sl[k] / a + sr * sr / b
                better = proxy > bp[k]
                bp[k] = proxy if better else bp[k]
                bi[k] = ii if better else bi[k]
        row = rt[idx[ii]]
        for k in range(n_trees):
            sl[k] += row[k]
        prev = v


def _fit_impl(x, order, xs0, yi, n_trees, n_stages, lr, max_depth, keys, raw0, n_blocks):
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
    num = np.zeros((n_trees, m))
    den = np.zeros((n_trees, m))
    # partitioned sorted lists: two per block of trees (a block runs on one thread)
    ia = np.empty((n_blocks, nf, n), np.int32)
    ib = np.empty((n_blocks, nf, n), np.int32)
    va = np.empty((n_blocks, nf, n), np.float32)
    vb = np.empty((n_blocks, nf, n), np.float32)
    side = np.empty((n_blocks, n), np.uint8)
    rt = np.empty((n, n_trees))  # r transposed, for the all-trees root scan
    sm0 = np.empty(n_trees)
    root_p = np.empty((nf, n_trees))
    root_i = np.empty((nf, n_trees), np.int64)
    sl_scratch = np.empty((n_blocks, n_trees))
    factor = (n_classes - 1.0) / n_classes if n_trees > 1 else 1.0
    for s in range(n_stages):
        # negative gradient and hessian at the start of the stage
        for i in range(n):
            if n_trees == 1:
                p = 1.0 / (1.0 + np.exp(-raw[0, i]))
                t = 1.0 if yi[i] == 1 else 0.0
                r[0, i] = t - p
                h[0, i] = p * (1.0 - p)
                rt[i, 0] = r[0, i]
            else:
                mx = raw[0, i]
                for c in range(1, n_trees):
                    if raw[c, i] > mx:
                        mx = raw[c, i]
                z = 0.0
                for c in range(n_trees):
                    e = np.exp(raw[c, i] - mx)
                    h[c, i] = e
                    z += e
                for c in range(n_trees):
                    p = h[c, i] / z
                    t = 1.0 if yi[i] == c else 0.0
                    r[c, i] = t - p
                    h[c, i] = p * (1.0 - p)
                    rt[i, c] = r[c, i]
        for b in prange(n_blocks):  # the trees of one stage are independent
            k0 = b * n_trees // n_blocks  # this block's trees: k0 .. k1 - 1
            k1 = (b + 1) * n_trees // n_blocks
            for k in range(k0, k1):  # as _grow_tree sums the root (sample order)
                acc = 0.0
                for i in range(n):
                    acc += r[k, i]
                sm0[k] = acc
            for f in range(nf):
                _root_scan(order[f], xs0[f], rt[:, k0:k1], sm0[k0:k1], root_p[f, k0:k1],
                           root_i[f, k0:k1], sl_scratch[b, : k1 - k0])
            for k in range(k0, k1):
                _grow_tree(x, order, xs0, r, h, s, k, max_depth, keys, feat, thr, node,
                           imp, num, den, ia[b], va[b], ib[b], vb[b], side[b], root_p,
                           root_i)
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


def _renamed(fn: Any, name: str) -> Any:
    """The same function under another name (its own numba cache entry)."""
    g = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    g.__qualname__ = name
    return g


def numba_cache_dir() -> str:
    """Where the compiled boosters are cached: ``$NUMBA_CACHE_DIR`` if set, else the per-user
    cache ``$XDG_CACHE_HOME/dislab/numba`` (``~/.cache/dislab/numba``; ``~/Library/Caches``
    on macOS, ``%LOCALAPPDATA%`` on Windows), never the installed package's directory."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return given
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif sys.platform == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "dislab", "numba")


def _writable_dir(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError:
        return False
    return True


def _compile() -> dict[str, Any]:
    """Compile on first use (numba is imported only when a booster is fitted).

    The compiled code is cached on disk in :func:`numba_cache_dir` (not cached at all when
    that is not writable); numba's own setting is restored afterwards, so other numba users
    in the process are unaffected."""
    global _grow_tree, _root_scan, prange
    if not _COMPILED:
        import numba

        where = numba_cache_dir()
        cache = _writable_dir(where)
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = where if cache else saved
        try:
            prange = numba.prange
            _grow_tree = numba.njit(cache=cache)(_grow_tree)
            _root_scan = numba.njit(cache=cache)(_root_scan)
            # Two names for the two builds: numba's on-disk cache is keyed by the function's
            # name and signature but not by ``parallel``, so under one name whichever build
            # was cached first (the serial one: DCI fits the 3-class shape first) was loaded
            # for both.
            _COMPILED["serial"] = numba.njit(cache=cache)(_renamed(_fit_impl, "_fit_serial"))
            _COMPILED["parallel"] = numba.njit(cache=cache, parallel=True)(
                _renamed(_fit_impl, "_fit_parallel"))
            _COMPILED["predict"] = numba.njit(cache=cache)(_predict_impl)
        finally:
            numba.config.CACHE_DIR = saved
    return _COMPILED


def _num_threads() -> int:
    import numba

    return int(numba.get_num_threads())


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
        m = 2 ** (self.max_depth + 1) - 1
        keys = np.random.default_rng(self.random_state).random(
            (self.n_estimators, len(raw0), m, x.shape[1]))
        feat, thr, val, imp, raw = self._grow(x, yi.astype(np.int64), raw0, keys)
        self._trees = (feat, thr, val)
        self._raw0 = raw0
        total = imp.sum()
        self.feature_importances_ = imp / total if total > 0 else imp
        self.train_raw_ = raw
        return self

    def _grow(self, x: np.ndarray, yi: np.ndarray, raw0: np.ndarray, keys: np.ndarray
              ) -> tuple[np.ndarray, ...]:
        """The compiled stages: ``(feat, thr, val, importances, train raw predictions)``."""
        n_trees = len(raw0)
        order = np.ascontiguousarray(np.argsort(x, axis=0, kind="stable").T.astype(np.int32))
        xs0 = np.ascontiguousarray(np.take_along_axis(x.T, order, axis=1))
        jit = _compile()
        if len(yi) * n_trees >= PARALLEL_MIN_WORK:
            fit, n_blocks = jit["parallel"], max(1, min(n_trees, _num_threads()))
        else:
            fit, n_blocks = jit["serial"], 1
        return fit(x, order, xs0, yi, n_trees, self.n_estimators, float(self.learning_rate),
                   self.max_depth, keys, raw0, n_blocks)

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
