"""Pairs of observations ``(x_t, x_{t+1})`` for temporal / weakly supervised methods.

The construction is Slow-VAE's (Klindt et al. 2021, bethgelab/slow_disentanglement,
``scripts/dataset.py``): the first frame's factors ``s`` are drawn from the data set's factor
sampler (uniform over the grid by default); every *movable* factor ``k`` then jumps
independently to

    P(v_k | s_k) ∝ exp(-|v_k - s_k| / b_k),    b_k = log(n_k) / rate,

a discrete Laplace jump whose scale grows with the number of values ``n_k`` of the factor
(default ``rate = 1``, the reference code's default). How the jump treats the grid edges is
the ``edge`` option:

* ``"truncate"`` (default, the reference): the pmf above restricted to ``0 .. n_k-1`` and
  renormalised, i.e. jumps that would leave the grid are never proposed;
* ``"reflect"``: the jump ``J`` is drawn on all integers with ``P(J=j) ∝ exp(-|j|/b)`` and
  ``s + J`` is reflected at the edges (``-1 -> 1``, ``n -> n-2``; period ``2(n-1)``);
* ``"clip"``: ``s + J`` is clipped into ``0 .. n_k-1`` (mass piles up at the edges).

Fixed factors (dSprites' and Shapes3D's shape: a categorical factor that never changes in a
sequence) keep their value. If no movable factor changed, one movable factor ``k`` (uniform
among the movable factors with more than one value) is redrawn from its jump pmf with the
"stay" outcome removed, so at least one factor always changes. The joint pmf of ``v`` given
``s`` is therefore

    P(v | s) = prod_k p_k(v_k | s_k)                                      if v != s,
             + [v differs from s in factor k only] * P0 / M * p_k(v_k|s_k) / (1 - p_k(s_k|s_k)),

with ``P0 = prod_k p_k(s_k | s_k)`` and ``M`` the number of movable factors.

Sparser pairs (option ``changes=c``, not in the reference): exactly ``c`` of the movable
factors (those with more than one value; a uniformly random subset) change, each to a value
drawn from its jump pmf with the "stay" outcome removed; all other factors keep their value.
``changes=1`` gives pairs that differ in one factor, as the weak supervision of Locatello et
al. 2020 (*Weakly-Supervised Disentanglement Without Compromises*) but with Laplace-distributed
jump sizes. The default ``None`` is the construction above.

Locatello et al. 2020's own sampler (option ``dynamics="locatello"``, with ``k``): the
disentanglement_lib function ``simple_dynamics`` (``methods/weak/train_weak_lib.py``). Per
pair, ``k_obs = k``, or uniform in ``1 .. K-1`` for ``k = -1`` (the paper's default); then 1 or
``k_obs`` factors (each with probability ½) are chosen uniformly without replacement among
*all* ``K`` factors (shape included), and each chosen factor is redrawn uniformly over its
values (so it may keep its value: the pair can even be identical). ``rate``, ``edge``,
``fixed_factors`` and ``changes`` do not apply to it. (The reference draws the new values
from NumPy's global generator; dislab uses the sampler's own, so runs stay reproducible.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, as_rng

__all__ = [
    "EDGES",
    "jump_scale",
    "jump_pmf",
    "transition_tables",
    "resolve_fixed_factors",
    "sample_pair_factors",
    "locatello_pair_factors",
    "sample_pairs",
    "pair_batches",
]

EDGES = ("truncate", "reflect", "clip")
#: values of the ``dynamics`` pair option: Slow-VAE's Laplace jumps, or Locatello et al.
#: 2020's ``simple_dynamics``
DYNAMICS = ("slow", "locatello")

#: Factor names treated as categorical (never changing) by ``fixed_factors="auto"``:
#: dSprites' ``shape``, Shapes3D's ``shape``/``object_type``, MPI3D's ``object_shape``
#: (the reference code's ``categorical`` flags).
AUTO_FIXED = ("shape", "object_shape", "object_type")


def jump_scale(size: int, rate: float = 1.0) -> float:
    """Laplace scale ``b = log(size) / rate`` of a factor with ``size`` values."""
    if rate <= 0 or not math.isfinite(rate):
        raise DataError(f"pair sampler: rate must be a positive number, got {rate}.")
    return math.log(size) / rate


def _two_sided_geometric(b: float, jmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Jumps ``-jmax..jmax`` and their probabilities ``∝ exp(-|j|/b)`` on all integers."""
    j = np.arange(-jmax, jmax + 1)
    q = math.exp(-1.0 / b)
    p = (1.0 - q) / (1.0 + q) * np.power(q, np.abs(j))
    return j, p


def jump_pmf(start: int, size: int, rate: float = 1.0, edge: str = "truncate") -> np.ndarray:
    """pmf ``(size,)`` of the next value of a factor at value ``start`` (before the
    at-least-one-change rule). A factor with one value stays put."""
    if edge not in EDGES:
        raise DataError(f"pair sampler: edge must be one of {EDGES}, got {edge!r}.")
    if size == 1:
        return np.ones(1)
    b = jump_scale(size, rate)
    values = np.arange(size)
    if edge == "truncate":
        p = np.exp(-np.abs(values - start) / b)
        return p / p.sum()
    # Enough jumps that the neglected tail is below exp(-50) of the mass.
    jmax = size + int(math.ceil(50.0 * b))
    j, pj = _two_sided_geometric(b, jmax)
    target = start + j
    if edge == "clip":
        target = np.clip(target, 0, size - 1)
    else:  # reflect with period 2(size-1)
        period = 2 * (size - 1)
        target = np.mod(target, period)
        target = np.where(target > size - 1, period - target, target)
    p = np.bincount(target, weights=pj, minlength=size)
    return p / p.sum()


def transition_tables(
    factor_sizes: Sequence[int], rate: float = 1.0, edge: str = "truncate"
) -> list[np.ndarray]:
    """Per factor, the ``(n, n)`` table ``T[s, v] = p(v | s)`` of :func:`jump_pmf`."""
    return [np.stack([jump_pmf(s, n, rate, edge) for s in range(n)]) for n in factor_sizes]


def resolve_fixed_factors(
    data: GroundTruthData, fixed_factors: str | Sequence[str | int] | None = "auto"
) -> np.ndarray:
    """Boolean mask ``(K,)`` of factors that never change.

    ``"auto"``: factors named like a categorical shape (:data:`AUTO_FIXED`); ``None`` or
    ``[]``: none; otherwise factor names or indices.
    """
    k = data.num_factors
    mask = np.zeros(k, dtype=bool)
    if fixed_factors is None:
        return mask
    if isinstance(fixed_factors, str):
        if fixed_factors != "auto":
            fixed_factors = [fixed_factors]
        else:
            for i, name in enumerate(data.factor_names):
                mask[i] = name.lower() in AUTO_FIXED
            return mask
    for f in fixed_factors:
        mask[data.factor_index(f, "fixed factor")] = True
    return mask


def sample_pair_factors(
    data: GroundTruthData,
    n: int,
    rng: np.random.Generator | int | None = None,
    rate: float = 1.0,
    fixed_factors: str | Sequence[str | int] | None = "auto",
    edge: str = "truncate",
    _tables: list[np.ndarray] | None = None,
    changes: int | None = None,
    dynamics: str = "slow",
    k: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` factor pairs ``(s, v)``, each ``(n, K) int64``, by the module's construction
    (``changes``: exactly that many movable factors change per pair; ``dynamics="locatello"``
    with ``k``: :func:`locatello_pair_factors`; see the module doc)."""
    if dynamics not in DYNAMICS:
        raise DataError(f"pair sampler: dynamics must be one of {DYNAMICS}, got {dynamics!r}.")
    if dynamics == "locatello":
        if changes is not None:
            raise DataError("pair sampler: 'changes' does not apply to dynamics='locatello' "
                            "(its 'k' sets how many factors change).")
        return locatello_pair_factors(data, n, rng, k)
    rng = as_rng(rng)
    sizes = np.asarray(data.factor_sizes, dtype=np.int64)
    fixed = resolve_fixed_factors(data, fixed_factors)
    movable = np.flatnonzero(~fixed & (sizes > 1))
    if movable.size == 0:
        raise DataError(
            f"pair sampler: data set {data.name!r} has no factor that can change (all are "
            "fixed or have one value); pass fewer fixed_factors."
        )
    tables = _tables if _tables is not None else transition_tables(sizes, rate, edge)
    if changes is not None:
        changes = _check_changes(changes, movable.size)
    s = data.sample_factors(n, rng)
    v = s.copy()
    if changes is not None:
        # A uniformly random subset of `changes` movable factors per row: the first columns
        # of a random permutation (argsort of uniforms).
        chosen = movable[np.argsort(rng.random((n, movable.size)), axis=1)[:, :changes]]
        for k in movable:
            rows = np.flatnonzero((chosen == k).any(axis=1))
            v[rows, k] = _jump_without_stay(tables[k], s[rows, k], rng)
        return s, v
    for k in movable:
        cdf = np.cumsum(tables[k][s[:, k]], axis=1)
        u = rng.random(n)[:, None] * cdf[:, -1:]
        v[:, k] = np.minimum((cdf <= u).sum(axis=1), sizes[k] - 1)
    same = np.flatnonzero(np.all(v == s, axis=1))
    if same.size:
        pick = movable[rng.integers(0, movable.size, size=same.size)]
        for k in np.unique(pick):
            rows = same[pick == k]
            v[rows, k] = _jump_without_stay(tables[k], s[rows, k], rng)
    return s, v


def locatello_pair_factors(
    data: GroundTruthData,
    n: int,
    rng: np.random.Generator | int | None = None,
    k: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` factor pairs ``(s, v)`` (``(n, K) int64`` each) by Locatello et al. 2020's
    ``simple_dynamics`` (disentanglement_lib ``methods/weak/train_weak_lib.py``; module doc):
    1 or ``k`` factors (``k = -1``: uniform in ``1 .. K-1`` per pair) redrawn uniformly."""
    rng = as_rng(rng)
    sizes = np.asarray(data.factor_sizes, dtype=np.int64)
    num = sizes.size
    if num < 2:
        raise DataError(f"pair sampler: dynamics='locatello' needs at least 2 factors; "
                        f"{data.name!r} has {num}.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer, float)) or int(k) != k or \
            not (int(k) == -1 or 1 <= int(k) <= num):
        raise DataError(f"pair sampler: k must be -1 (uniform in 1..{num - 1} per pair, the "
                        f"paper's) or a whole number from 1 to {num}, got {k!r}.")
    k = int(k)
    s = data.sample_factors(n, rng)
    k_obs = rng.integers(1, num, size=n) if k == -1 else np.full(n, k)
    count = np.where(rng.random(n) < 0.5, 1, k_obs)  # choice([1, k_obs])
    rank = np.argsort(np.argsort(rng.random((n, num)), axis=1), axis=1)
    change = rank < count[:, None]  # a uniform subset of `count` factors per row
    new = np.floor(rng.random((n, num)) * sizes).astype(np.int64)
    v = np.where(change, new, s)
    return s, v


def _check_changes(changes: Any, movable: int) -> int:
    if isinstance(changes, bool) or not isinstance(changes, (int, np.integer, float)) or \
            int(changes) != changes or not 1 <= int(changes) <= movable:
        raise DataError(
            f"pair sampler: changes must be a whole number from 1 to {movable} (the number of "
            f"factors that can change), got {changes!r}."
        )
    return int(changes)


def _jump_without_stay(table: np.ndarray, start: np.ndarray, rng: np.random.Generator
                       ) -> np.ndarray:
    """New values ``(m,)`` drawn from rows ``start`` of ``table`` with the stay outcome
    removed (renormalised)."""
    size = table.shape[0]
    p = table[start].copy()
    p[np.arange(start.size), start] = 0.0
    cdf = np.cumsum(p, axis=1)
    u = rng.random(start.size)[:, None] * cdf[:, -1:]
    new = np.minimum((cdf <= u).sum(axis=1), size - 1)
    # Guard against round-off landing on the removed "stay" value.
    return np.where(new == start, (new + 1) % size, new)


def sample_pairs(
    data: GroundTruthData,
    n: int,
    rng: np.random.Generator | int | None = None,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """``(factors (n, 2, K) int64, observations (n, 2, *obs) float32 in [0, 1])``."""
    s, v = sample_pair_factors(data, n, rng, **options)
    x = np.stack([data.images(s), data.images(v)], axis=1)
    return np.stack([s, v], axis=1), x


def pair_batches(
    data: GroundTruthData,
    batch_size: int = 64,
    seed: int | np.random.Generator = 0,
    device: str | Any = "cpu",
    num_batches: int | None = None,
    rate: float = 1.0,
    fixed_factors: str | Sequence[str | int] | None = "auto",
    edge: str = "truncate",
    changes: int | None = None,
    dynamics: str = "slow",
    k: int = -1,
) -> Iterator[Any]:
    """Endless (or ``num_batches``) torch batches ``(batch_size, 2, *obs)`` float32 in [0, 1].

    ``batch_size`` counts *pairs* (2 x batch_size observations per batch; the reference
    Slow-VAE batch of 64 images is ``batch_size=32``). Deterministic for a given ``seed`` (an
    int, or a numpy Generator that is then drawn from, as the trainer's resumable source does).
    """
    import torch

    if batch_size < 1:
        raise DataError(f"pair_batches: batch_size must be >= 1, got {batch_size}.")
    rng = as_rng(seed)
    tables = transition_tables(data.factor_sizes, rate, edge)
    made = 0
    while num_batches is None or made < num_batches:
        s, v = sample_pair_factors(data, batch_size, rng, rate, fixed_factors, edge, tables,
                                   changes, dynamics, k)
        idx = np.stack([data.index(s), data.index(v)], axis=1).reshape(-1)
        if data.is_image:
            arr = data.images_uint8_from_index(idx)
        else:
            arr = data.images_from_index(idx)
        x = torch.from_numpy(arr).reshape(batch_size, 2, *arr.shape[1:])
        x = x.to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.float().mul_(1.0 / 255.0)
        made += 1
        yield x
