"""The compiled booster grows scikit-learn's GradientBoostingClassifier trees."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from dislab.metrics import fastgbt
from dislab.metrics.dci import completeness, disentanglement

pytestmark = pytest.mark.skipif(not fastgbt.available(), reason="numba not installed")


def _data(n: int, f: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (np.floor((x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=n)) * 1.5) % c).astype(int)
    return x, y


@pytest.mark.parametrize("classes", [2, 4])
def test_first_stages_are_sklearns_trees(classes: int) -> None:
    x, y = _data(400, 4, classes)
    for stages in (1, 3):
        ref = GradientBoostingClassifier(n_estimators=stages, random_state=0).fit(x, y)
        ours = fastgbt.ExactGBClassifier(n_estimators=stages, random_state=0).fit(x, y)
        np.testing.assert_allclose(ours.decision_function(x),
                                   ref.decision_function(x).reshape(len(x), -1), atol=1e-9)
        np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_,
                                   atol=1e-9)
        np.testing.assert_array_equal(ours.predict_train(), ref.predict(x))


def test_full_fit_close_to_sklearn() -> None:
    x, y = _data(600, 5, 3, seed=1)
    ref = GradientBoostingClassifier(random_state=0).fit(x, y)
    ours = fastgbt.ExactGBClassifier(random_state=0).fit(x, y)
    # later stages fit tiny residuals, where rounding can pick another near-equal split
    np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_, atol=0.01)
    xt, _ = _data(300, 5, 3, seed=2)
    assert np.mean(ours.predict(xt) == ref.predict(xt)) > 0.97
    r_ref = np.stack([ref.feature_importances_, ref.feature_importances_[::-1]], axis=1)
    r_ours = np.stack([ours.feature_importances_, ours.feature_importances_[::-1]], axis=1)
    assert disentanglement(r_ours) == pytest.approx(disentanglement(r_ref), abs=0.01)
    assert completeness(r_ours) == pytest.approx(completeness(r_ref), abs=0.01)


def test_duplicated_features_share_importance() -> None:
    x, y = _data(400, 2, 3, seed=3)
    ours = fastgbt.ExactGBClassifier(random_state=0).fit(np.hstack([x, x]), y)
    imp = ours.feature_importances_
    # exact ties are broken at random per node, as sklearn does: both copies get a share
    assert imp[0] > 0.1 and imp[2] > 0.1
    assert imp[0] + imp[2] == pytest.approx(imp.sum() - imp[1] - imp[3])


def test_parallel_and_serial_growth_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(300, 3, 3, seed=4)
    serial = fastgbt.ExactGBClassifier(n_estimators=10, random_state=0).fit(x, y)
    monkeypatch.setattr(fastgbt, "PARALLEL_MIN_WORK", 0)
    parallel = fastgbt.ExactGBClassifier(n_estimators=10, random_state=0).fit(x, y)
    np.testing.assert_array_equal(serial.decision_function(x), parallel.decision_function(x))
    np.testing.assert_array_equal(serial.feature_importances_, parallel.feature_importances_)


def test_serial_and_parallel_builds_are_cached_apart() -> None:
    # numba's disk cache does not tell parallel=True from False under one function name: with
    # one name, the build cached first (serial) was loaded for both and nothing ran in parallel
    jit = fastgbt._compile()
    assert jit["parallel"].targetoptions.get("parallel")
    assert not jit["serial"].targetoptions.get("parallel")
    assert jit["parallel"].py_func.__qualname__ != jit["serial"].py_func.__qualname__


def _scalar_exp(a: np.ndarray) -> np.ndarray:
    """``exp`` element by element with the C library's scalar exp, as the compiled code calls
    it (numpy's SIMD exp on AVX-512 CPUs can differ in the last bit, which flips near-ties)."""
    return np.array([math.exp(v) for v in np.asarray(a, dtype=np.float64).ravel()]
                    ).reshape(np.shape(a))


def _reference_trees(x: np.ndarray, y: np.ndarray, stages: int, seed: int, depth: int = 3):
    """Plain-Python boosting with fastgbt's rules: node by node, each feature re-sorted.

    Sums run in sample order (node totals, leaves) or sorted order (split scans), as in the
    compiled code, so that near-equal split proxies round the same way.
    """
    x = x.astype(np.float32)
    classes, yi = np.unique(y, return_inverse=True)
    n, nf = x.shape
    eps = float(np.finfo(np.float32).eps)
    prior = np.clip(np.bincount(yi) / n, eps, 1 - eps)
    raw0 = (np.array([np.log(prior[1] / (1 - prior[1]))]) if len(classes) == 2
            else np.log(prior) - np.log(prior).mean())
    n_trees, m = len(raw0), 2 ** (depth + 1) - 1
    keys = np.random.default_rng(seed).random((stages, n_trees, m, nf))
    factor = (len(classes) - 1.0) / len(classes) if n_trees > 1 else 1.0
    feat = np.full((stages, n_trees, m), -1)
    thr, val = np.zeros((stages, n_trees, m)), np.zeros((stages, n_trees, m))
    imp = np.zeros(nf)
    raw = np.tile(raw0, (n, 1))
    for s in range(stages):
        if n_trees == 1:
            p = 1.0 / (1.0 + _scalar_exp(-raw[:, 0]))
            r, h = ((yi == 1) - p)[:, None], (p * (1.0 - p))[:, None]
        else:
            e = _scalar_exp(raw - raw.max(axis=1, keepdims=True))
            z = np.zeros(n)
            for c in range(n_trees):
                z += e[:, c]
            p = e / z[:, None]
            r, h = (yi[:, None] == np.arange(n_trees)) - p, p * (1.0 - p)
        for k in range(n_trees):
            rk = r[:, k]
            node = np.zeros(n, int)

            def stats(members: np.ndarray, rk: np.ndarray = rk) -> tuple[float, float, float]:
                sm = sq = 0.0
                for i in members:
                    sm += rk[i]
                    sq += rk[i] * rk[i]
                return float(len(members)), sm, sq

            for j in range(2 ** depth - 1):
                members = np.flatnonzero(node == j)
                c, sm, sq = stats(members)
                if c < 2 or sq / c - (sm / c) ** 2 <= fastgbt._EPS:
                    continue
                best = (-np.inf, np.inf, -1, 0.0, 0.0)
                for f in range(nf):
                    srt = members[np.argsort(x[members, f], kind="stable")]
                    fb = (-np.inf, 0.0, 0.0)
                    sl = 0.0
                    for pos in range(1, len(srt)):
                        sl += rk[srt[pos - 1]]
                        lo, hi = float(x[srt[pos - 1], f]), float(x[srt[pos], f])
                        if hi > lo + fastgbt._FEATURE_THRESHOLD:
                            proxy = sl * sl / pos + (sm - sl) ** 2 / (c - pos)
                            if proxy > fb[0]:
                                fb = (proxy, lo, hi)
                    key = keys[s, k, j, f]
                    if fb[0] > best[0] or (fb[0] == best[0] and fb[0] > -np.inf
                                           and key < best[1]):
                        best = (fb[0], key, f, fb[1], fb[2])
                if best[2] < 0:
                    continue
                t = best[3] / 2.0 + best[4] / 2.0
                if t == best[4] or np.isinf(t):
                    t = best[3]
                feat[s, k, j], thr[s, k, j] = best[2], t
                left = x[members, best[2]] <= t
                node[members] = np.where(left, 2 * j + 1, 2 * j + 2)
                (ca, sa, _), (cb, sb, _) = stats(members[left]), stats(members[~left])
                imp[best[2]] += (sa**2 / ca + sb**2 / cb - (sa + sb) ** 2 / (ca + cb)) / n
            for j in range(m):
                num = den = 0.0
                for i in np.flatnonzero(node == j):
                    num += rk[i]
                    den += h[i, k]
                if den != 0.0:
                    u = factor * num / den
                    val[s, k, j] = u if np.isfinite(u) else 0.0
            raw[:, k] += 0.1 * val[s, k, node]
    total = imp.sum()
    return feat, thr, val, imp / total if total > 0 else imp, raw


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("classes,ties", [(2, False), (4, False), (3, True), (2, True)])
def test_trees_equal_plain_reference(classes: int, ties: bool, parallel: bool,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(120, 3, classes, seed=5 + classes)
    if ties:  # repeated values and a duplicated feature: equal proxies, keys break the tie
        x = np.round(x, 1)
        x = np.hstack([x, x[:, :1]])
    if parallel:
        monkeypatch.setattr(fastgbt, "PARALLEL_MIN_WORK", 0)
    ours = fastgbt.ExactGBClassifier(n_estimators=6, random_state=3).fit(x, y)
    feat, thr, val, imp, raw = _reference_trees(x, y, 6, seed=3)
    np.testing.assert_array_equal(ours._trees[0], feat)
    np.testing.assert_allclose(ours._trees[1], thr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours._trees[2], val, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.feature_importances_, imp, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.train_raw_, raw, rtol=0, atol=1e-12)
