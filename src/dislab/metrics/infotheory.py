"""Shared information-theoretic estimators for the Do & Tran, Chen-MIG and ELBO metrics.

Everything here works on the posterior table of a *full grid* (row ``n`` = flat grid index
``n``, C order, as :class:`~dislab.metrics.base.CodeTable`) and is pure numpy.

Two building blocks:

* **Quantisation** (Do & Tran 2020, official code clarken92/DisentanglementMetrics): bins
  ``linspace(lo, hi, B + 1)``; ``Q(b|x) ∝ N(centre_b; mu, sigma) * width_b`` renormalised over
  the bins, one-hot on the bin of ``mu`` when the largest density at any centre is ``< 1e-5``
  (:func:`quantise`). :func:`quantised_stats` streams over the grid in chunks aligned with the
  grid, so the per-factor joints ``Q(b, y_k = v)`` are reshapes and sums, not one-hot products.
* **Stratified mixture estimates** of ``log q(z_s)`` for a sample ``z_s ~ q(z|x_g)``
  (:func:`stratified_log`): the aggregate posterior over ``N`` points is
  ``q(z) = (1/N) sum_n q(z|x_n)``. Summing all ``N`` components for every sample costs
  ``O(S N d)`` (about 7·10^10 densities on dSprites); instead the generating point keeps its
  exact weight ``1/N`` and the other ``N - 1`` points are represented by a uniform random
  subset ``R`` of ``M`` components, weight ``(N - 1)/(N |R minus g|)`` each (the idea of Chen
  et al.'s minibatch stratified sampling). The estimate of ``q(z_s)`` is unbiased; its log is
  biased low only by the noise of the subset, and it does not saturate at ``log M`` as a plain
  subsample mixture would. With ``M >= N`` (or ``max_components=None``) it is the exact mixture.
"""

from __future__ import annotations

import contextvars
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dislab.metrics.base import MetricError

__all__ = [
    "LOG_2PI",
    "DENSITY_FLOOR",
    "bin_edges",
    "quantise",
    "entropy",
    "quantised_stats",
    "grid_factor_values",
    "choose_components",
    "stratified_log",
    "gaussian_log_density",
    "parallel_map",
    "bin_probability",
    "draw_rows",
    "sample_posterior",
    "gaussian_mixture_logs",
    "neighbour_rows",
    "neighbour_stratified_log",
]

LOG_2PI = math.log(2.0 * math.pi)
#: Do & Tran's rule: if the largest density at any bin centre is below this, use a one-hot.
DENSITY_FLOOR = 1e-5
#: Clamp inside logs of probabilities (the official code's ``eps``).
LOG_EPS = 1e-8


def bin_edges(num_bins: int, bin_limits: Sequence[float] = (-4.0, 4.0)) -> np.ndarray:
    """``num_bins + 1`` equally spaced edges on ``bin_limits`` (Do & Tran: ``[-4, 4]``)."""
    lo, hi = float(bin_limits[0]), float(bin_limits[1])
    if int(num_bins) < 2 or not hi > lo:
        raise MetricError(
            f"need num_bins >= 2 and bin_limits (lo, hi) with lo < hi; got num_bins={num_bins}, "
            f"bin_limits={tuple(bin_limits)}."
        )
    return np.linspace(lo, hi, int(num_bins) + 1)


def quantise(
    mean: np.ndarray, std: np.ndarray, edges: np.ndarray, bin_mass: str = "density"
) -> np.ndarray:
    """Bin probabilities ``Q(b|x)`` of 1-D Gaussians: ``(n,)`` mean/std -> ``(n, B)`` float32.

    ``bin_mass="density"`` (default, the official code): ``N(centre; mu, sigma) * width``
    renormalised; ``"cdf"``: the exact Gaussian mass ``Phi(right) - Phi(left)`` renormalised
    (agrees with "density" when ``sigma`` is much larger than a bin). Either way, rows whose
    largest density at a centre is below :data:`DENSITY_FLOOR` become one-hot on the bin of
    ``mu`` (clipped to the outer bins), as in the official code.
    """
    mean = np.asarray(mean, dtype=np.float32)
    std = np.maximum(np.asarray(std, dtype=np.float32), np.float32(1e-12))
    edges32 = edges.astype(np.float32)
    centres = 0.5 * (edges32[1:] + edges32[:-1])
    widths = np.diff(edges32)
    inv = (1.0 / std)[:, None]
    u = (centres[None, :] - mean[:, None]) * inv
    dens = np.exp(-0.5 * u * u) * (inv * np.float32(1.0 / math.sqrt(2.0 * math.pi)))
    if bin_mass == "density":
        q = dens * widths[None, :]
    elif bin_mass == "cdf":
        from scipy.special import ndtr

        cdf = ndtr((edges32[None, :] - mean[:, None]) * inv).astype(np.float32)
        q = np.diff(cdf, axis=1)
    else:
        raise MetricError(f"bin_mass must be 'density' or 'cdf', got {bin_mass!r}.")
    total = q.sum(axis=1, keepdims=True)
    q /= np.maximum(total, np.float32(LOG_EPS))
    flat = dens.max(axis=1) < DENSITY_FLOOR
    if np.any(flat):
        nb = len(edges) - 1
        b = np.clip(np.searchsorted(edges, mean[flat], side="right") - 1, 0, nb - 1)
        q[flat] = 0.0
        q[np.flatnonzero(flat), b] = 1.0
    return q


def entropy(p: np.ndarray, axis: int | tuple[int, ...] | None = -1) -> np.ndarray:
    """Shannon entropy in nats of probabilities ``p`` along ``axis`` (``log`` clamped at 1e-8)."""
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(np.maximum(p, LOG_EPS))).sum(axis=axis)


def grid_factor_values(factor_sizes: Sequence[int]) -> np.ndarray:
    """Factor vectors ``(N, K)`` of every grid row, C order (row n = flat index n)."""
    sizes = tuple(int(s) for s in factor_sizes)
    grids = np.indices(sizes, dtype=np.int64 if math.prod(sizes) > 2**31 else np.int32)
    return grids.reshape(len(sizes), -1).T


def _grid_chunking(sizes: Sequence[int], max_rows: int) -> int:
    """Index ``j`` such that chunks = all rows for fixed values of factors ``0..j-1``."""
    j = len(sizes)
    while j > 0 and math.prod(sizes[j - 1:]) <= max_rows:
        j -= 1
    return min(j, len(sizes) - 1) if sizes else 0


#: Half-width of the window of bins evaluated around ``mu``, in standard deviations: the
#: Gaussian density beyond it is below ``exp(-36) ~ 2e-16`` of its peak, so skipping those bins
#: changes no probability by more than float rounding.
WINDOW_SIGMAS = 8.5


def _windowed_quantise(
    mean: np.ndarray, std: np.ndarray, edges: np.ndarray, row_entropy: bool = False
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """``(Q, H, offset, log_norm, onehot)``: the official bin probabilities in a window of bins.

    ``Q`` ``(n, W)`` holds bins ``offset[n] .. offset[n] + W - 1``; every other bin has
    probability below 1e-15 of the row's peak. Equal to :func:`quantise` with
    ``bin_mass="density"`` up to float32 rounding. ``H`` ``(n,)`` (if ``row_entropy``): the
    entropy of each row in nats (the official ``log(max(Q, 1e-8))`` clamp changes it by less
    than 1e-6 and is not applied). ``log_norm``, ``onehot`` ``(n,)``: with them
    ``Q(b|x) = exp(-u_b^2 / 2 - log_norm)``, ``u_b = (centre_b - mu) / sigma``, or one-hot on bin
    ``onehot`` where ``onehot >= 0`` (see :func:`bin_probability`).
    """
    nb = len(edges) - 1
    lo = float(edges[0])
    w = float(edges[1] - edges[0])
    mean = mean.astype(np.float32)
    std = np.maximum(std.astype(np.float32), np.float32(1e-12))
    reach = np.float32(WINDOW_SIGMAS) * std
    first = np.clip(np.floor((mean - reach - lo) / w), 0, nb - 1).astype(np.int64)
    last = np.clip(np.ceil((mean + reach - lo) / w), 0, nb - 1).astype(np.int64)
    width = int(min(nb, (last - first).max() + 1))
    offset = np.minimum(first, nb - width)
    inv = np.float32(1.0) / std
    # u[n, j] = (centre[offset_n + j] - mu_n) / (sqrt(2) sigma_n) = a_n + b_n * j
    r = inv * np.float32(math.sqrt(0.5))
    a = (np.float32(lo + 0.5 * w) + np.float32(w) * offset.astype(np.float32) - mean) * r
    b = np.float32(w) * r
    u = np.multiply.outer(b, np.arange(width, dtype=np.float32))
    u += a[:, None]
    np.square(u, out=u)
    np.negative(u, out=u)  # now log of the unnormalised density
    q = np.exp(u)
    tot = q.sum(axis=1)
    # the largest density sits at the centre nearest mu (within the window)
    jn = np.clip(np.rint(-a / b), 0, width - 1)
    peak = np.exp(-np.square(a + b * jn)) * inv * np.float32(1.0 / math.sqrt(2.0 * math.pi))
    safe = np.maximum(tot, np.float32(1e-30))
    q *= (np.float32(1.0) / safe)[:, None]
    ent = None
    if row_entropy:
        ent = np.log(safe).astype(np.float64) - np.einsum("ij,ij->i", q, u).astype(np.float64)
    del u
    flat = peak < DENSITY_FLOOR
    onehot = np.full(len(mean), -1, dtype=np.int64)
    if np.any(flat):
        rows = np.flatnonzero(flat)
        b = np.clip(np.searchsorted(edges, mean[rows], side="right") - 1, 0, nb - 1)
        col = np.clip(b - offset[rows], 0, width - 1)
        offset[rows] = b - col
        q[rows] = 0.0
        q[rows, col] = 1.0
        onehot[rows] = b
        if ent is not None:
            ent[rows] = 0.0
    return q, ent, offset, np.log(safe), onehot


def _axis_marginals(t: np.ndarray) -> list[np.ndarray]:
    """For ``t`` of shape ``(s_0, .., s_{m-1}, B)``: the ``m`` arrays ``(s_a, B)`` summing all
    other leading axes, in about two passes over ``t`` (sum the last axis away, recurse)."""
    m = t.ndim - 1
    if m == 1:
        return [t]
    lead = math.prod(t.shape[:m - 1])
    last = t.reshape(lead, t.shape[m - 1], t.shape[-1]).sum(axis=0)
    return _axis_marginals(t.sum(axis=m - 1)) + [last]


def bin_probability(
    bins: np.ndarray, mean: np.ndarray, std: np.ndarray, log_norm: np.ndarray,
    onehot: np.ndarray, edges: np.ndarray,
) -> np.ndarray:
    """``Q(b|x)`` for arbitrary (bin, row) pairs (broadcasting), from the normalisers of
    :func:`quantised_stats`; float32, equal to the windowed pass up to rounding."""
    lo = float(edges[0])
    w = float(edges[1] - edges[0])
    centre = np.float32(lo + 0.5 * w) + np.float32(w) * bins.astype(np.float32)
    u = (centre - mean) / std
    val = np.exp(np.float32(-0.5) * u * u - log_norm)
    return np.where(onehot >= 0, (bins == onehot).astype(np.float32), val)


def quantised_stats(
    mean: np.ndarray,
    std: np.ndarray,
    factor_sizes: Sequence[int],
    edges: np.ndarray,
    bin_mass: str = "density",
    factor_joints: bool = False,
    conditional_entropy: bool = False,
    max_rows: int = 8_192,
    normalisers: bool = False,
    labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """Stream the quantised posterior of one latent over the full grid.

    ``mean``, ``std``: ``(N,)`` for ``N = prod(factor_sizes)`` rows in grid order. Returns
    ``marginal`` ``(B,)`` = ``(1/N) sum_x Q(b|x)``; with ``factor_joints`` the list ``joints``
    of ``(V_k, B)`` arrays ``(1/N) sum_{x: y_k(x)=v} Q(b|x)``; with ``conditional_entropy``
    ``h_cond`` = ``(1/N) sum_x H(Q(.|x))`` in nats; with ``normalisers``
    (``bin_mass="density"``) ``log_norm`` and ``onehot`` ``(N,)`` for :func:`bin_probability`.
    Chunks hold all rows for fixed values of the leading factors, so per-factor sums need no
    one-hot products; only the bins within ``WINDOW_SIGMAS`` of each row's mean are evaluated
    (``bin_mass="density"``).

    ``labels`` ``(N, K)``: the factor classes of each row, for rows that are not a full grid in
    grid order (labelled data, :mod:`dislab.data.labelled`); the same sums, in plain row chunks.
    """
    if labels is not None:
        return _quantised_stats_rows(mean, std, factor_sizes, edges, bin_mass, factor_joints,
                                     conditional_entropy, max_rows, normalisers, labels)
    sizes = [int(s) for s in factor_sizes]
    n = len(mean)
    if n != math.prod(sizes):
        raise MetricError(f"posterior has {n} rows but the grid has {math.prod(sizes)} points.")
    nb = len(edges) - 1
    j = _grid_chunking(sizes, max_rows)
    chunk = math.prod(sizes[j:])
    outer = sizes[:j]
    inner = sizes[j:]
    inner_labels = grid_factor_values(inner).T.astype(np.int64) if factor_joints else None
    marginal = np.zeros(nb, dtype=np.float64)
    joints = [np.zeros((s, nb), dtype=np.float64) for s in sizes] if factor_joints else []
    h_cond = 0.0
    log_norm = np.empty(n, dtype=np.float32) if normalisers else None
    onehot = np.empty(n, dtype=np.int64) if normalisers else None
    for c, start in enumerate(range(0, n, chunk)):
        mu, sd = mean[start:start + chunk], std[start:start + chunk]
        if bin_mass == "density":
            q, ent, off, lnorm, oh = _windowed_quantise(mu, sd, edges, conditional_entropy)
            if normalisers:
                log_norm[start:start + chunk] = lnorm
                onehot[start:start + chunk] = oh
            if factor_joints and inner and 4 * q.shape[1] > nb and q.shape[1] < nb:
                # per-factor sums of a dense chunk (reshape + sum) beat bincount here
                full = np.zeros((len(mu), nb), dtype=np.float32)
                cols = off[:, None] + np.arange(q.shape[1])
                np.put_along_axis(full, cols, q, axis=1)
                q, off = full, np.zeros_like(off)
            if conditional_entropy:
                h_cond += float(ent.sum())
        else:
            q = quantise(mu, sd, edges, bin_mass)
            off = np.zeros(len(mu), dtype=np.int64)
            if conditional_entropy:
                h_cond += float(entropy(q, axis=None))
        width = q.shape[1]
        dense = width == nb
        margs = _axis_marginals(q.reshape(*inner, nb)) if (dense and factor_joints) else None
        if margs is not None:
            tot = margs[0].sum(axis=0).astype(np.float64)
        elif dense:
            tot = q.sum(axis=0).astype(np.float64)
        else:
            flat_bins = (off[:, None] + np.arange(width)).ravel()
            tot = np.bincount(flat_bins, weights=q.ravel().astype(np.float64), minlength=nb)
        marginal += tot
        if factor_joints:
            ov = np.unravel_index(c, outer) if outer else ()
            for k, v in enumerate(ov):
                joints[k][int(v)] += tot
            if dense:
                for a, mg in enumerate(margs):
                    joints[j + a] += mg
            else:
                qf = q.ravel().astype(np.float64)
                for a in range(len(inner)):
                    idx = (inner_labels[a] * nb + off)[:, None] + np.arange(width)
                    joints[j + a] += np.bincount(idx.ravel(), weights=qf,
                                                 minlength=inner[a] * nb).reshape(inner[a], nb)
    return _stats_result(n, marginal, joints if factor_joints else None,
                         h_cond if conditional_entropy else None,
                         (log_norm, onehot) if normalisers else None, bin_mass)


def _stats_result(n: int, marginal: np.ndarray, joints: list[np.ndarray] | None,
                  h_cond: float | None, normalisers: tuple[Any, Any] | None,
                  bin_mass: str) -> dict[str, Any]:
    """The record :func:`quantised_stats` returns: sums over ``n`` rows turned into means."""
    out: dict[str, Any] = {"marginal": marginal / n}
    if normalisers is not None:
        if bin_mass != "density":
            raise MetricError("normalisers need bin_mass='density'.")
        out["log_norm"], out["onehot"] = normalisers
    if joints is not None:
        out["joints"] = [jt / n for jt in joints]
    if h_cond is not None:
        out["h_cond"] = h_cond / n
    return out


def _quantised_stats_rows(
    mean: np.ndarray, std: np.ndarray, factor_sizes: Sequence[int], edges: np.ndarray,
    bin_mass: str, factor_joints: bool, conditional_entropy: bool, max_rows: int,
    normalisers: bool, labels: np.ndarray,
) -> dict[str, Any]:
    """:func:`quantised_stats` over rows with factor classes ``labels`` ``(N, K)``."""
    sizes = [int(s) for s in factor_sizes]
    n = len(mean)
    labels = np.asarray(labels, dtype=np.int64).reshape(n, -1)
    if labels.shape[1] != len(sizes):
        raise MetricError(f"labels have {labels.shape[1]} factors, factor_sizes {len(sizes)}.")
    nb = len(edges) - 1
    marginal = np.zeros(nb, dtype=np.float64)
    joints = [np.zeros((s, nb), dtype=np.float64) for s in sizes] if factor_joints else []
    h_cond = 0.0
    log_norm = np.empty(n, dtype=np.float32) if normalisers else None
    onehot = np.empty(n, dtype=np.int64) if normalisers else None
    for start in range(0, n, max(1, int(max_rows))):
        mu, sd = mean[start:start + max_rows], std[start:start + max_rows]
        if bin_mass == "density":
            q, ent, off, lnorm, oh = _windowed_quantise(mu, sd, edges, conditional_entropy)
            if normalisers:
                log_norm[start:start + len(mu)] = lnorm
                onehot[start:start + len(mu)] = oh
            if conditional_entropy:
                h_cond += float(ent.sum())
        else:
            q = quantise(mu, sd, edges, bin_mass)
            off = np.zeros(len(mu), dtype=np.int64)
            if conditional_entropy:
                h_cond += float(entropy(q, axis=None))
        bins = (off[:, None] + np.arange(q.shape[1])).ravel()
        qf = q.ravel().astype(np.float64)
        marginal += np.bincount(bins, weights=qf, minlength=nb)
        for k, size in enumerate(sizes if factor_joints else []):
            lab = np.repeat(labels[start:start + len(mu), k], q.shape[1])
            joints[k] += np.bincount(lab * nb + bins, weights=qf,
                                     minlength=size * nb).reshape(size, nb)
    return _stats_result(n, marginal, joints if factor_joints else None,
                         h_cond if conditional_entropy else None,
                         (log_norm, onehot) if normalisers else None, bin_mass)


def row_labels(data: Any) -> np.ndarray | None:
    """Factor classes ``(N, K)`` of every row of labelled (non-grid) data; ``None`` for a full
    grid, whose row ``n`` is flat grid index ``n`` (the estimators then use the grid order)."""
    if getattr(data, "is_grid", True):
        return None
    return data.factors(np.arange(len(data)))


#: Whether long estimators show their own progress bar (``run_metrics(progress=False)`` turns
#: them off for the metrics it runs).
INNER_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("inner_progress",
                                                                    default=True)


def parallel_map(fn: Callable[[int], Any], items: Sequence[int], workers: int | None = None
                 ) -> list[Any]:
    """``[fn(i) for i in items]`` on a small thread pool (numpy releases the GIL)."""
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if workers <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def choose_components(
    n: int, max_components: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices of the mixture components kept: all ``n`` or ``max_components`` at random."""
    if max_components is None or int(max_components) >= n:
        return np.arange(n)
    if int(max_components) < 1:
        raise MetricError(f"max_components must be >= 1 or None, got {max_components}.")
    return np.sort(rng.choice(n, size=int(max_components), replace=False))


def gaussian_log_density(x: np.ndarray, mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Element-wise ``log N(x; mean, exp(logvar))`` (broadcasting, numpy)."""
    return -0.5 * ((x - mean) ** 2 * np.exp(-logvar) + logvar + LOG_2PI)


def stratified_log(
    gen: np.ndarray,
    comp_sum: np.ndarray,
    comp_count: np.ndarray,
    gen_in_comp: np.ndarray,
    n_group: np.ndarray | float,
    log_shift: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Stratified estimate of ``log q(z_s)`` for a mixture of ``n_group`` equal components.

    ``gen``: ``(S,)`` the generating component's (shifted) density ``exp(l_g - shift)``;
    ``comp_sum``: ``(S,)`` sum of the shifted densities over the kept components of the group
    (including the generator when ``gen_in_comp``); ``comp_count``: ``(S,)`` number of kept
    components in the group; ``n_group``: size of the whole group. Returns
    ``log[(gen + (n_group - 1) * mean_{R \\ g}) / n_group] + shift``; with all components kept it
    is the exact ``log((1/n) sum_n q(z|x_n))``.
    """
    gen = np.asarray(gen, dtype=np.float64)
    rest = np.asarray(comp_sum, dtype=np.float64) - np.where(gen_in_comp, gen, 0.0)
    cnt = np.asarray(comp_count, dtype=np.float64) - np.where(gen_in_comp, 1.0, 0.0)
    n_group = np.asarray(n_group, dtype=np.float64)
    rest_mean = np.where(cnt > 0, np.maximum(rest, 0.0) / np.maximum(cnt, 1.0), 0.0)
    val = (gen + (n_group - 1.0) * rest_mean) / n_group
    return np.log(np.maximum(val, 1e-300)) + log_shift


def draw_rows(n: int, num_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted generator rows: all ``n`` (``None`` or ``n``), distinct at random (``< n``) or
    uniform with replacement (``> n``)."""
    if num_samples is not None and int(num_samples) < 1:
        raise MetricError(f"num_samples must be >= 1 or None, got {num_samples}.")
    if num_samples is None or int(num_samples) == n:
        return np.arange(n)
    if int(num_samples) < n:
        return np.sort(rng.choice(n, size=int(num_samples), replace=False))
    return np.sort(rng.integers(0, n, size=int(num_samples)))


def sample_posterior(
    mean: np.ndarray, logvar: np.ndarray, num_samples: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Generators ``g`` ``(S,)`` and one sample ``z_s ~ q(z|x_g)`` each, ``(S, d)``.

    ``num_samples=None`` or ``== N``: every row once; ``< N``: distinct rows at random;
    ``> N``: rows uniformly with replacement (several samples per row, for small grids).
    """
    g = draw_rows(mean.shape[0], num_samples, rng)
    eps = rng.standard_normal((len(g), mean.shape[1]))
    z = mean[g].astype(np.float64) + np.exp(0.5 * logvar[g].astype(np.float64)) * eps
    return g, z


def gaussian_mixture_logs(
    z: np.ndarray,
    gen: np.ndarray,
    mean: np.ndarray,
    logvar: np.ndarray,
    comps: np.ndarray,
    dims: bool = True,
    joint: bool = False,
    not_i: bool = False,
    groups: Sequence[np.ndarray] = (),
    progress: str | None = None,
    num_neighbours: int | None = 64,
) -> dict[str, Any]:
    """Stratified log-densities of the aggregate posterior at samples ``z`` ``(S, d)``.

    ``gen`` ``(S,)``: the row that generated each sample; ``mean``, ``logvar``: ``(N, d)``;
    ``comps``: the kept component rows (:func:`choose_components`). Returns (each over the
    mixture of all ``N`` posteriors, estimated with :func:`stratified_log`):

    * ``dim`` ``(S, d)``: ``log q(z_sj)``;
    * ``joint`` ``(S,)``: ``log q(z_s)``;
    * ``not_i`` ``(S, d)``: ``log q(z_s without coordinate i)``;
    * ``cond``: for each integer label array ``(N,)`` in ``groups`` an ``(S, d)`` array
      ``log q(z_sj | label = label[gen_s])`` (mixture over the rows with that label);
    * ``self`` ``(S, d)``: ``log q(z_sj | x_gen)``.

    Every term keeps each sample's own component exactly and stands in for the others with
    ``comps``; ``dim`` also sums the ``num_neighbours`` rows ranked nearest the generator in
    ``mean_j`` exactly, and ``joint``/``not_i`` the ``num_neighbours`` rows nearest in all
    (scaled) means (:func:`neighbour_stratified_log`): a random subset rarely holds the few
    rows that overlap a sample. ``cond`` uses the generator and ``comps`` only.
    """
    from tqdm.auto import tqdm

    n, d = mean.shape
    s_total = z.shape[0]
    mu_r = mean[comps].astype(np.float32)
    lv_r = logvar[comps].astype(np.float32)
    ivar_r = np.exp(-lv_r)
    const_r = -0.5 * (lv_r + LOG_2PI)
    m = len(comps)
    in_comp = np.zeros(n, dtype=bool)
    in_comp[comps] = True
    gin = in_comp[gen]
    self_ll = gaussian_log_density(z, mean[gen].astype(np.float64), logvar[gen].astype(np.float64))
    group_info = []
    for lab in groups:
        lab = np.asarray(lab)
        nv = int(lab.max()) + 1
        lab_r = lab[comps]
        order = np.argsort(lab_r, kind="stable")
        by_value = np.split(order, np.cumsum(np.bincount(lab_r, minlength=nv))[:-1])
        group_info.append((lab[gen], by_value, np.bincount(lab_r, minlength=nv),
                           np.bincount(lab, minlength=nv)))
    out: dict[str, Any] = {"self": self_ll}
    if dims:
        out["dim"] = np.empty((s_total, d))
    if joint:
        out["joint"] = np.empty(s_total)
    if not_i:
        out["not_i"] = np.empty((s_total, d))
    conds = [np.empty((s_total, d)) for _ in groups]
    nb1 = None
    dim_idx = np.arange(d)
    if dims and num_neighbours is not None and 2 <= int(num_neighbours) < n:
        # 1-D strata: for latent j the rows ranked nearest the generator in mean_j
        k1 = int(num_neighbours)
        nb1 = np.empty((s_total, k1, d), dtype=np.int64)
        for j in range(d):
            order = np.argsort(mean[:, j])
            rank = np.empty(n, dtype=np.int64)
            rank[order] = np.arange(n)
            start = np.clip(rank[gen] - k1 // 2, 0, n - k1)
            nb1[:, :, j] = order[start[:, None] + np.arange(k1)]
    if joint or not_i:
        scale = np.maximum(np.median(np.exp(0.5 * logvar), axis=0), 1e-3)
        nbr = neighbour_rows(mean, scale, gen, num_neighbours)
        k = nbr.shape[1]
        own = [not_i and d > 1 and k < n and scale[i] < 0.5 for i in range(d)]
        nbr_not = [neighbour_rows(np.delete(mean, i, axis=1), np.delete(scale, i), gen,
                                  num_neighbours) if own[i] else None for i in range(d)]
    sc = max(1, (1 << 22) // max(1, m * d))
    quiet = progress is None or not INNER_PROGRESS.get() or s_total * m * d < 50_000_000
    bar = tqdm(total=s_total, desc=progress, disable=quiet, leave=False)
    for a in range(0, s_total, sc):
        b = min(s_total, a + sc)
        zc = z[a:b].astype(np.float32)
        diff = zc[:, None, :] - mu_r[None, :, :]
        ll = const_r[None] - 0.5 * diff * diff * ivar_r[None]  # (sc, M, d)
        del diff
        lg = self_ll[a:b]
        gi = gin[a:b]
        if dims or groups:
            shift = np.maximum(lg, ll.max(axis=1))
            e = np.exp(ll - shift[:, None, :].astype(np.float32))
            eg = np.exp(lg - shift)
            if dims and nb1 is None:
                out["dim"][a:b] = stratified_log(
                    eg, e.sum(axis=1, dtype=np.float64), m, gi[:, None], n, shift)
            elif dims:
                rows1 = nb1[a:b]  # (sc, k1, d)
                mu1 = mean[rows1, dim_idx].astype(np.float64)
                lv1 = logvar[rows1, dim_idx].astype(np.float64)
                en = np.exp(gaussian_log_density(z[a:b, None, :], mu1, lv1) - shift[:, None, :])
                mask1 = in_comp[rows1]
                out["dim"][a:b] = neighbour_stratified_log(
                    en.sum(axis=1), (en * mask1).sum(axis=1), mask1.sum(axis=1),
                    e.sum(axis=1, dtype=np.float64), m, nb1.shape[1], n, shift)
            if groups:
                for g_idx, (lab_g, by_value, cnt_r, cnt_all) in enumerate(group_info):
                    v = lab_g[a:b]
                    pick = np.zeros((b - a, d))
                    for val in np.unique(v):
                        sel = np.flatnonzero(v == val)
                        cols = by_value[val]
                        if len(cols):
                            pick[sel] = e[np.ix_(sel, cols)].sum(axis=1, dtype=np.float64)
                    conds[g_idx][a:b] = stratified_log(
                        eg, pick, cnt_r[v][:, None], gi[:, None], cnt_all[v][:, None], shift)
            del e
        if joint or not_i:
            tot = ll.sum(axis=2)
            rows = nbr[a:b]
            nb_ll = _row_log_density(zc, rows, mean, logvar)  # (sc, k, d)
            nb_tot = nb_ll.sum(axis=2)
            mask = in_comp[rows]
            cnt = mask.sum(axis=1)
            if joint:
                out["joint"][a:b] = _nb_log(nb_tot, mask, cnt, tot, m, k, n)
            if not_i:
                for i in range(d):
                    if own[i]:
                        rows_i = nbr_not[i][a:b]
                        lli = _row_log_density(zc, rows_i, mean, logvar)
                        nb_i = lli.sum(axis=2) - lli[:, :, i]
                        mask_i = in_comp[rows_i]
                        cnt_i = mask_i.sum(axis=1)
                    else:
                        nb_i, mask_i, cnt_i = nb_tot - nb_ll[:, :, i], mask, cnt
                    out["not_i"][a:b, i] = _nb_log(nb_i, mask_i, cnt_i, tot - ll[:, :, i],
                                                   m, k, n)
        bar.update(b - a)
    bar.close()
    if groups:
        out["cond"] = conds
    return out


def _row_log_density(z: np.ndarray, rows: np.ndarray, mean: np.ndarray, logvar: np.ndarray
                     ) -> np.ndarray:
    """``log q(z_sj | x_rows[s, r])``: ``z`` ``(S, d)``, ``rows`` ``(S, k)`` -> ``(S, k, d)``."""
    mu = mean[rows].astype(np.float32)
    lv = logvar[rows].astype(np.float32)
    diff = z[:, None, :].astype(np.float32) - mu
    return -0.5 * (diff * diff * np.exp(-lv) + lv + np.float32(LOG_2PI))


def _nb_log(nb_ll: np.ndarray, mask: np.ndarray, cnt: np.ndarray, comp_ll: np.ndarray,
            m: int, k: int, n: int) -> np.ndarray:
    """:func:`neighbour_stratified_log` from log-densities ``(S, k)`` and ``(S, M)``."""
    sh = np.maximum(nb_ll.max(axis=1), comp_ll.max(axis=1)).astype(np.float32)
    en = np.exp(nb_ll - sh[:, None]).astype(np.float64)
    ec = np.exp(comp_ll - sh[:, None])
    return neighbour_stratified_log(en.sum(axis=1), (en * mask).sum(axis=1), cnt,
                                    ec.sum(axis=1, dtype=np.float64), m, k, n,
                                    sh.astype(np.float64))


def neighbour_rows(
    mean: np.ndarray, scale: np.ndarray, gen: np.ndarray, k: int | None
) -> np.ndarray:
    """``(S, k)`` rows nearest to each generator row in ``mean / scale`` (the row itself first).

    ``scale`` ``(d,)``: a typical posterior width per latent, so that the distance reflects
    overlapping posteriors. ``k=None`` or ``k >= N``: every row (exact mixtures).
    """
    from scipy.spatial import cKDTree

    n = mean.shape[0]
    if k is None or int(k) >= n:
        return np.broadcast_to(np.arange(n), (len(gen), n))
    k = max(1, int(k))
    pts = (mean / scale).astype(np.float64)
    tree = cKDTree(pts, leafsize=32, balanced_tree=False, compact_nodes=False)
    _, idx = tree.query(pts[gen], k=k, workers=min(2, os.cpu_count() or 1))
    idx = np.asarray(idx, dtype=np.int64).reshape(len(gen), k)
    # ties (identical rows) may push the generator itself out: put it first
    has = (idx == gen[:, None]).any(axis=1)
    idx[~has, -1] = idx[~has, 0]
    idx[~has, 0] = gen[~has]
    return idx


def neighbour_stratified_log(
    nb_sum: np.ndarray,
    nb_in_comp_sum: np.ndarray,
    nb_in_comp_count: np.ndarray,
    comp_sum: np.ndarray,
    m: int,
    k: int,
    n: int,
    log_shift: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Estimate ``log((1/n) sum_all v_n)`` from ``k`` neighbours summed exactly (``nb_sum``) and
    the kept components outside the neighbours standing in for the other ``n - k`` rows.

    ``comp_sum``: sum over all ``m`` kept components; ``nb_in_comp_*``: the sum / count of the
    neighbours that are also kept components (removed from the stand-in mean). Unbiased for the
    mixture value; exact when ``k == n`` or when every row is a kept component.
    """
    rest = np.maximum(np.asarray(comp_sum, np.float64) - nb_in_comp_sum, 0.0)
    cnt = m - np.asarray(nb_in_comp_count, np.float64)
    rest_mean = np.where(cnt > 0, rest / np.maximum(cnt, 1.0), 0.0)
    val = (np.asarray(nb_sum, np.float64) + (n - k) * rest_mean) / n
    return np.log(np.maximum(val, 1e-300)) + log_shift
