"""Non-uniform and dependent factor sampling (the correlated-factor experiments of β-TCVAE).

A sampler is a callable ``sampler(n, rng) -> (n, K) int64`` of grid positions; give it to
``data.set_sampler(sampler)`` or ``dislab.data.load(name, sampler=...)``. Every sampler here
draws from an explicit joint distribution over the factor grid, so tests (and users) can check
empirical frequencies against it (:meth:`FactorSampler.probabilities`).

* :class:`UniformSampler` – the default of every data set (uniform over the grid, i.e.
  independent uniform factors, as disentanglement_lib).
* :class:`ProductSampler` – independent factors with given marginals.
* :class:`JointSampler` – any full probability table over the grid (shape = factor sizes).
* :class:`PairSampler` / :func:`correlated_pair` – two factors drawn from a 2-D table (e.g.
  posX and posY correlated), the others from their marginals. :func:`pair_table` builds a
  band-shaped table whose marginals are exactly uniform, so only the dependence changes.

Specs (JSON-friendly dicts, e.g. in a training config's ``data_options``) are turned into
samplers by :func:`from_spec`::

    {"kind": "uniform"}
    {"kind": "product", "marginals": {"scale": [1, 1, 2, 2, 3, 3]}}   # unnormalised is fine
    {"kind": "pair", "factors": ["posX", "posY"], "width": 0.1, "negative": false}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dislab.errors import DataError

if TYPE_CHECKING:  # annotations only: dislab.data.base imports this module
    from dislab.data.base import GroundTruthData

__all__ = [
    "FactorSampler",
    "UniformSampler",
    "ProductSampler",
    "JointSampler",
    "PairSampler",
    "pair_table",
    "correlated_pair",
    "from_spec",
    "as_sampler",
    "as_rng",
]


def _normalise(p: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape != shape:
        raise DataError(f"{what} must have shape {shape}, got {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataError(f"{what} must be finite and non-negative.")
    total = arr.sum()
    if total <= 0:
        raise DataError(f"{what} must have a positive sum.")
    return arr / total



def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Turn a seed, ``None`` or a Generator into a ``numpy.random.Generator`` (a legacy
    ``RandomState`` seeds a new Generator from its next draw)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.RandomState):
        return np.random.default_rng(int(rng.randint(0, 2**31 - 1)))
    return np.random.default_rng(rng)

class FactorSampler:
    """Base class: ``sampler(n, rng) -> (n, K) int64``; ``probabilities()`` = the joint."""

    factor_sizes: tuple[int, ...] = ()

    def __call__(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        raise NotImplementedError

    def probabilities(self) -> np.ndarray:
        """The joint probability table, shape ``factor_sizes`` (sums to 1)."""
        raise NotImplementedError

    def marginal(self, j: int) -> np.ndarray:
        """Marginal distribution of factor ``j``, shape ``(factor_sizes[j],)``."""
        p = self.probabilities()
        axes = tuple(i for i in range(p.ndim) if i != j)
        return p.sum(axis=axes)

    def check(self, data: GroundTruthData) -> FactorSampler:
        """Raise :class:`DataError` unless this sampler fits ``data``'s grid; returns self."""
        if tuple(self.factor_sizes) != tuple(data.factor_sizes):
            raise DataError(
                f"{type(self).__name__} is for factor sizes {list(self.factor_sizes)} but "
                f"{data.name} has {list(data.factor_sizes)} ({list(data.factor_names)})."
            )
        return self


class UniformSampler(FactorSampler):
    """Every grid point equally likely (dislab's and disentanglement_lib's default)."""

    def __init__(self, factor_sizes: Sequence[int]) -> None:
        self.factor_sizes = tuple(int(s) for s in factor_sizes)

    def __call__(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        rng = as_rng(rng)
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return rng.integers(0, sizes[None, :], size=(n, len(sizes)), dtype=np.int64)

    def probabilities(self) -> np.ndarray:
        return np.full(self.factor_sizes, 1.0 / math.prod(self.factor_sizes))


class ProductSampler(FactorSampler):
    """Independent factors; ``marginals[j]`` is factor ``j``'s distribution (``None`` = uniform).

    Marginals may be unnormalised weights; they are normalised here.
    """

    def __init__(self, factor_sizes: Sequence[int],
                 marginals: Sequence[Sequence[float] | None]) -> None:
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        if len(marginals) != len(self.factor_sizes):
            raise DataError(
                f"ProductSampler needs one marginal per factor ({len(self.factor_sizes)}), "
                f"got {len(marginals)}."
            )
        self.marginals = [
            np.full(s, 1.0 / s) if m is None else _normalise(m, (s,), f"marginal {j}")
            for j, (s, m) in enumerate(zip(self.factor_sizes, marginals))
        ]

    def __call__(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        rng = as_rng(rng)
        cols = [rng.choice(s, size=n, p=m) for s, m in zip(self.factor_sizes, self.marginals)]
        return np.stack(cols, axis=1).astype(np.int64) if cols else np.zeros((n, 0), np.int64)

    def probabilities(self) -> np.ndarray:
        p = np.ones(())
        for m in self.marginals:
            p = np.multiply.outer(p, m)
        return p

    def marginal(self, j: int) -> np.ndarray:
        return self.marginals[j].copy()


class JointSampler(FactorSampler):
    """Draw factor vectors from a full probability table ``table`` of shape ``factor_sizes``.

    The table may be unnormalised weights (zeros allowed: those grid points are never drawn).
    Memory is one float64 per grid point (5.9 MB for dSprites).
    """

    def __init__(self, table: Any) -> None:
        arr = np.asarray(table, dtype=np.float64)
        self.factor_sizes = tuple(int(s) for s in arr.shape)
        self.table = _normalise(arr, self.factor_sizes, "the joint table")
        self._cdf = np.cumsum(self.table.reshape(-1))
        self._cdf[-1] = 1.0

    def __call__(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        rng = as_rng(rng)
        flat = np.searchsorted(self._cdf, rng.random(n), side="right")
        flat = np.minimum(flat, self._cdf.size - 1)
        return np.stack(np.unravel_index(flat, self.factor_sizes), axis=1).astype(np.int64)

    def probabilities(self) -> np.ndarray:
        return self.table.copy()


def pair_table(n_i: int, n_j: int, width: float = 0.1, negative: bool = False,
               iterations: int = 500) -> np.ndarray:
    """A dependent joint of two factors, ``(n_i, n_j)``, with exactly uniform marginals.

    Weights ``exp(-(u_a - v_b)^2 / (2 width^2))`` with ``u_a = a / (n_i - 1)`` and
    ``v_b = b / (n_j - 1)`` (positions in [0, 1]; ``1 - v_b`` when ``negative``), balanced by
    Sinkhorn iterations so that both marginals are uniform: the factors stay uniformly
    distributed, only their dependence changes. Small ``width`` -> nearly deterministic
    relation; ``width -> inf`` -> independent.
    """
    if n_i < 1 or n_j < 1:
        raise DataError("pair_table: factor sizes must be positive.")
    if not width > 0:
        raise DataError(f"pair_table: width must be > 0, got {width}.")
    u = np.arange(n_i) / max(n_i - 1, 1)
    v = np.arange(n_j) / max(n_j - 1, 1)
    if negative:
        v = 1.0 - v
    d = (u[:, None] - v[None, :]) ** 2 / (2.0 * width**2)
    k = np.exp(-(d - d.min(axis=1, keepdims=True)))  # stable; row scaling is undone below
    r = np.full(n_i, 1.0 / n_i)
    c = np.full(n_j, 1.0 / n_j)
    a = np.ones(n_i)
    b = np.ones(n_j)
    for _ in range(iterations):
        a = r / (k @ b)
        b = c / (k.T @ a)
    p = a[:, None] * k * b[None, :]
    return p / p.sum()


class PairSampler(FactorSampler):
    """Factors ``i`` and ``j`` drawn jointly from ``table`` ``(n_i, n_j)``; others independent.

    ``marginals`` (optional, one entry per factor, ``None`` = uniform) set the distribution of
    the remaining factors; entries for ``i`` and ``j`` are ignored (the table fixes them).
    """

    def __init__(self, factor_sizes: Sequence[int], i: int, j: int, table: Any,
                 marginals: Sequence[Sequence[float] | None] | None = None) -> None:
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        k = len(self.factor_sizes)
        if not (0 <= i < k and 0 <= j < k) or i == j:
            raise DataError(f"PairSampler: need two different factors in 0..{k - 1}, got {i}, {j}.")
        self.i, self.j = int(i), int(j)
        self.table = _normalise(table, (self.factor_sizes[i], self.factor_sizes[j]),
                                "the pair table")
        margs = list(marginals) if marginals is not None else [None] * k
        margs[i] = margs[j] = None
        self._rest = ProductSampler(self.factor_sizes, margs)
        self._pair = JointSampler(self.table)

    def __call__(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        rng = as_rng(rng)
        out = self._rest(n, rng)
        pair = self._pair(n, rng)
        out[:, self.i] = pair[:, 0]
        out[:, self.j] = pair[:, 1]
        return out

    def probabilities(self) -> np.ndarray:
        p = np.ones(())
        k = len(self.factor_sizes)
        for f in range(k):
            if f in (self.i, self.j):
                p = np.multiply.outer(p, np.ones(self.factor_sizes[f]))
            else:
                p = np.multiply.outer(p, self._rest.marginals[f])
        shape = [1] * k
        shape[self.i] = self.factor_sizes[self.i]
        shape[self.j] = self.factor_sizes[self.j]
        t = self.table if self.i < self.j else self.table.T
        return p * t.reshape(shape)


def correlated_pair(data: GroundTruthData, a: int | str, b: int | str, width: float = 0.1,
                    negative: bool = False) -> PairSampler:
    """Sampler for ``data`` with factors ``a`` and ``b`` dependent (:func:`pair_table`).

    Both factors keep their uniform marginals; all other factors stay independent uniform.
    Example: ``data.set_sampler(correlated_pair(data, "posX", "posY", width=0.1))``.
    """
    i = data.factor_index(a)
    j = data.factor_index(b)
    table = pair_table(data.factor_sizes[i], data.factor_sizes[j], width, negative)
    return PairSampler(data.factor_sizes, i, j, table)


def _marginals_from(data: GroundTruthData, spec: Mapping[str, Any] | None) -> list[Any]:
    out: list[Any] = [None] * data.num_factors
    for name, m in (spec or {}).items():
        out[data.factor_index(name)] = m
    return out


def from_spec(spec: Mapping[str, Any], data: GroundTruthData) -> FactorSampler:
    """Build a sampler for ``data`` from a JSON-friendly dict (see the module docstring).

    Kinds: ``uniform``; ``product`` (``marginals``: {factor: weights}); ``joint``
    (``table``: nested list of shape factor_sizes); ``pair`` (``factors``: [a, b], then either
    ``table`` or ``width`` / ``negative`` for :func:`pair_table`, optional ``marginals`` for
    the other factors).
    """
    kind = str(spec.get("kind", "uniform")).lower()
    if kind == "uniform":
        s: FactorSampler = UniformSampler(data.factor_sizes)
    elif kind == "product":
        s = ProductSampler(data.factor_sizes, _marginals_from(data, spec.get("marginals")))
    elif kind == "joint":
        if "table" not in spec:
            raise DataError("sampler spec of kind 'joint' needs a 'table'.")
        s = JointSampler(spec["table"])
    elif kind == "pair":
        fs = spec.get("factors")
        if not isinstance(fs, (list, tuple)) or len(fs) != 2:
            raise DataError("sampler spec of kind 'pair' needs 'factors': [a, b].")
        i = data.factor_index(fs[0])
        j = data.factor_index(fs[1])
        table = spec.get("table")
        if table is None:
            table = pair_table(data.factor_sizes[i], data.factor_sizes[j],
                               float(spec.get("width", 0.1)), bool(spec.get("negative", False)))
        s = PairSampler(data.factor_sizes, i, j, table,
                        _marginals_from(data, spec.get("marginals")))
    else:
        raise DataError(
            f"unknown sampler kind {kind!r}; use 'uniform', 'product', 'joint' or 'pair'."
        )
    return s.check(data)


def as_sampler(sampler: Any, data: GroundTruthData) -> Any:
    """Accept a sampler object, a callable ``(n, rng) -> factors`` or a spec dict."""
    if isinstance(sampler, Mapping):
        return from_spec(sampler, data)
    if isinstance(sampler, FactorSampler):
        return sampler.check(data)
    if callable(sampler):
        return sampler
    raise DataError(
        f"sampler must be a dislab.data.sampling sampler, a callable (n, rng) -> factors or "
        f"a spec dict, got {type(sampler).__name__}."
    )
