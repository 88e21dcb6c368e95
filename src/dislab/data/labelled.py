"""Labelled data that is not a full factorial grid: any set of observations with factor labels.

:func:`from_arrays` wraps images (or vectors) and a factor table,
:func:`~dislab.data.images.from_folder` reads a folder of images plus a CSV of factors,
:func:`partial_grid` keeps some rows of a grid data set (dSprites with a quarter of its
(posX, posY) positions removed is one line). Each gives a
:class:`LabelledData`, a :class:`~dislab.data.GroundTruthData` whose *index is a row index*:
row ``i`` of a code table is row ``i`` of the data, ``len(data)`` is the number of rows,
``sample_index`` draws rows uniformly (the empirical distribution, as disentanglement_lib's
``GroundTruthData`` draws grid points uniformly).

Factor columns may hold any values (integers, floats, strings); each column's distinct values,
sorted, become the classes ``0 .. V-1`` (``data.factor_values[j]`` maps them back).
Continuous columns can be cut into equal-width bins (``bins=``) so that each value is shared
by many rows.

The intervention metrics (BetaVAE and FactorVAE scores) need observations that share one
factor's value while the others change. On a grid they set the factor; here they draw among
the rows that share the value (:meth:`LabelledData.sample_index_pairs`,
:meth:`LabelledData.sample_index_fixing`). On a full grid in grid order that is the same
distribution as disentanglement_lib's sampling. A value held by fewer than
``min_rows_per_value`` rows (default 2) has nothing to draw from: those metrics then raise one
:class:`~dislab.data.DataError` naming the factor and value.

A data set with no factor columns (``factors=None``) is unlabelled: training, the unsupervised
metrics and the ELBO decomposition work on it; factor metrics say there are no factors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, as_rng

__all__ = ["LabelledData", "from_arrays", "partial_grid"]


def _as_observations(images: Any) -> np.ndarray:
    """Images ``(N, C, H, W)`` (from ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``) or
    vectors ``(N, D)``; uint8 kept, floats as float32 in [0, 1]."""
    try:
        import torch

        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(images)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.ndim < 2:
        raise DataError(f"images must have shape (N, H, W), (N, C, H, W), (N, H, W, C) or "
                        f"(N, D) (vectors); got shape {arr.shape}.")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[1] not in (1, 3) and arr.shape[-1] in (1, 3):
        arr = np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    elif arr.ndim == 4 and arr.shape[1] not in (1, 3):
        raise DataError(f"images of shape {arr.shape}: give 1 or 3 channels, channels first "
                        "(N, C, H, W) or last (N, H, W, C).")
    elif arr.ndim > 4:
        raise DataError(f"images must have at most 4 dimensions, got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        if arr.size and arr.max() <= 1:
            # 0/1 masks (dSprites' official file): an 8-bit image whose brightest pixel is 1
            # would be black; read them as binary images
            arr = arr * np.uint8(255)
        return arr
    if arr.dtype.kind not in "fiu":
        raise DataError(f"images must be numeric, got dtype {arr.dtype}.")
    arr = np.asarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise DataError("images contain NaN or infinite values.")
    if arr.ndim == 4 and arr.size and (arr.min() < 0 or arr.max() > 1):
        raise DataError(
            f"float images must lie in [0, 1] (got {arr.min():.3g}..{arr.max():.3g}); pass "
            "uint8 (0..255) or divide by 255."
        )
    return arr


def _factor_columns(factors: Any, n: int, names: Sequence[str] | None
                    ) -> tuple[list[str], list[np.ndarray]]:
    """Factor columns ``[(n,)]`` and their names from an array, a mapping or a DataFrame."""
    if factors is None:
        if names:
            raise DataError("names= given without factors=.")
        return [], []
    if hasattr(factors, "columns") and hasattr(factors, "to_numpy"):  # a pandas DataFrame
        cols = [np.asarray(factors[c].to_numpy()) for c in factors.columns]
        found = [str(c) for c in factors.columns]
    elif isinstance(factors, Mapping):
        found = [str(c) for c in factors]
        cols = [np.asarray(v) for v in factors.values()]
    else:
        try:
            import torch

            if isinstance(factors, torch.Tensor):
                factors = factors.detach().cpu().numpy()
        except ImportError:  # pragma: no cover
            pass
        arr = np.asarray(factors)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise DataError(f"factors must have shape (N, K), got {arr.shape}.")
        cols = [arr[:, j] for j in range(arr.shape[1])]
        found = [f"factor_{j}" for j in range(arr.shape[1])]
    if names is not None:
        names = [str(x) for x in names]
        if len(names) != len(cols):
            raise DataError(f"names has {len(names)} entries but factors have {len(cols)} "
                            f"columns ({found}).")
        found = names
    if len(set(found)) != len(found):
        raise DataError(f"factor names must be distinct, got {found}.")
    for name, c in zip(found, cols):
        if c.ndim != 1 or len(c) != n:
            raise DataError(f"factor {name!r} has shape {c.shape}; every factor needs one "
                            f"value per image ({n}).")
        if c.dtype.kind == "f" and not np.all(np.isfinite(c)):
            raise DataError(f"factor {name!r} has NaN or infinite values; drop or fill those "
                            "rows.")
        if c.dtype.kind == "O":
            raise DataError(f"factor {name!r} has mixed or object values; give numbers or "
                            "strings.")
    return found, cols


def _bin_counts(bins: int | Mapping[str, int] | None, names: Sequence[str]) -> dict[str, int]:
    if bins is None:
        return {}
    if isinstance(bins, Mapping):
        unknown = [b for b in bins if b not in names]
        if unknown:
            raise DataError(f"bins names unknown factor(s) {unknown}; factors are {list(names)}.")
        out = {str(k): int(v) for k, v in bins.items()}
    else:
        out = {n: int(bins) for n in names}
    for k, v in out.items():
        if v < 1:
            raise DataError(f"bins for {k!r} must be a positive integer, got {v}.")
    return out


class LabelledData(GroundTruthData):
    """Rows of observations with factor labels (any set, not necessarily a grid).

    ``observe(rows (n,) int64) -> (n, *observation_shape)`` uint8 or float32 observations;
    ``codes`` ``(N, K)`` int64 factor classes; ``factor_values[j]`` the value of each class.
    Use :func:`from_arrays`, :func:`~dislab.data.images.from_folder`, :func:`partial_grid` or
    ``dislab.data.load("images", path=DIR)`` rather than this constructor.
    """

    source = "arrays"
    is_grid = False

    def __init__(
        self,
        observe: Callable[[np.ndarray], np.ndarray],
        num_rows: int,
        observation_shape: tuple[int, ...],
        codes: np.ndarray,
        factor_names: Sequence[str],
        factor_values: Sequence[np.ndarray],
        name: str = "arrays",
        min_rows_per_value: int = 2,
        source: str = "arrays",
    ) -> None:
        self.name = name
        self.source = source
        self._observe = observe
        self._n = int(num_rows)
        if self._n < 1:
            raise DataError(f"{name}: no rows (images) given.")
        self.observation_shape = tuple(int(s) for s in observation_shape)
        self.codes = np.ascontiguousarray(codes, dtype=np.int64).reshape(self._n, -1)
        self.factor_names = tuple(factor_names)
        self.factor_values = [np.asarray(v) for v in factor_values]
        self.factor_sizes = tuple(len(v) for v in self.factor_values)
        self.min_rows_per_value = int(min_rows_per_value)
        self._groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None

    # -- rows ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def _rows(self, index: Any) -> np.ndarray:
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self._n):
            raise DataError(f"{self.name}: row index out of range 0..{self._n - 1} "
                            f"(got min {idx.min()}, max {idx.max()}).")
        return idx

    def factors(self, index: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """Factor classes of rows ``(n,) -> (n, K) int64``."""
        return self.codes[self._rows(index)]

    def row_values(self, index: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """The factor values of rows ``index`` ``(n, K)`` float64: each class mapped back to
        its value where the column is numeric, else the class itself (metrics that use raw
        values, e.g. MCC and DCI-ES, read this)."""
        labels = self.factors(index)
        out = labels.astype(np.float64)
        for j, vals in enumerate(self.factor_values):
            if np.issubdtype(vals.dtype, np.number) or vals.dtype == bool:
                out[:, j] = vals.astype(np.float64)[labels[:, j]]
        return out

    def index(self, factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """The first row with each factor vector ``(n, K) -> (n,)``; a vector no row has
        raises :class:`DataError` (this data set is not a full grid)."""
        f = self.check_factors(factors)
        if self.num_factors == 0:
            raise DataError(f"{self.name} has no factors; address rows by their index.")
        sizes = np.asarray(self.factor_sizes, dtype=np.float64)
        if float(np.prod(sizes)) >= 2.0**62:
            raise DataError(f"{self.name}: too many factor combinations to look rows up by "
                            "factor vector; address rows by their index.")
        strides = np.concatenate([np.cumprod(sizes[::-1].astype(np.int64))[::-1][1:], [1]])
        if self._lookup is None:
            keys = self.codes @ strides
            order = np.argsort(keys, kind="stable")
            self._lookup = (keys[order], order)
        keys, order = self._lookup
        want = f @ strides
        pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        missing = keys[pos] != want
        if missing.any():
            row = f[int(np.argmax(missing))]
            desc = ", ".join(f"{n}={self.factor_values[j][row[j]]!r}"
                             for j, n in enumerate(self.factor_names))
            raise DataError(f"{self.name}: no row has the factors ({desc}); labelled data is "
                            "not a full grid, so only factor vectors of its rows exist.")
        return order[pos]

    def set_sampler(self, sampler: Any) -> GroundTruthData:
        if sampler is not None:
            raise DataError(
                f"{self.name} draws its rows uniformly; to change what is drawn, build it from "
                "the rows you want (from_arrays on a subset, or partial_grid(data, keep))."
            )
        return self

    def sample_index(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` rows drawn uniformly with replacement, ``(n,) int64``."""
        return as_rng(rng).integers(0, self._n, size=n, dtype=np.int64)

    def sample_factors(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Factor classes of ``n`` rows drawn uniformly, ``(n, K) int64``."""
        return self.codes[self.sample_index(n, rng)]

    def sample(
        self, n: int, rng: np.random.Generator | int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(factors (n, K), observations (n, *obs) float32)`` of ``n`` rows drawn uniformly:
        the drawn rows' own observations (rows that share their factors may differ)."""
        idx = self.sample_index(n, rng)
        return self.codes[idx], self.images_from_index(idx)

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        return self._observe(self._rows(index))

    # -- interventions -------------------------------------------------------------------
    def _value_groups(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per factor: rows sorted by value, the first position and the count of each value."""
        if self._groups is None:
            groups = []
            for j, size in enumerate(self.factor_sizes):
                col = self.codes[:, j]
                order = np.argsort(col, kind="stable")
                counts = np.bincount(col, minlength=size)
                starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
                groups.append((order, starts, counts))
            self._groups = groups
        return self._groups

    def check_interventions(self) -> None:
        """Raise :class:`DataError` unless every value of every factor has at least
        ``min_rows_per_value`` rows (what the BetaVAE and FactorVAE scores draw from)."""
        if self.num_factors == 0:
            raise DataError(f"{self.name} has no factors; intervention metrics need them.")
        for j, (_, _, counts) in enumerate(self._value_groups()):
            few = np.flatnonzero(counts < self.min_rows_per_value)
            if few.size:
                v = few[0]
                raise DataError(
                    f"{self.name}: factor {self.factor_names[j]!r} has value "
                    f"{self.factor_values[j][v]!r} in only {counts[v]} row(s) ({few.size} of "
                    f"its {len(counts)} values have fewer than {self.min_rows_per_value}); the "
                    "BetaVAE and FactorVAE scores draw rows that share a factor's value and need "
                    f"at least {self.min_rows_per_value} per value. Bin the factor "
                    f"(bins={{{self.factor_names[j]!r}: 20}}), drop the rare values' rows, or "
                    "use the metrics that need only samples."
                )

    def _draw_sharing(self, k: np.ndarray, v: np.ndarray, rng: np.random.Generator
                      ) -> np.ndarray:
        """For each ``(k[i], v[i])`` a row drawn uniformly among those with factor k = v."""
        out = np.empty(len(k), dtype=np.int64)
        u = rng.random(len(k))
        groups = self._value_groups()
        for j in np.unique(k):
            m = k == j
            order, starts, counts = groups[int(j)]
            c = counts[v[m]]
            pos = starts[v[m]] + np.minimum((u[m] * c).astype(np.int64), c - 1)
            out[m] = order[pos]
        return out

    def sample_index_pairs(
        self, k: np.ndarray, batch_size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of rows sharing factor ``k[i // batch_size]``: the first row uniform, the
        second uniform among the rows with the same value (same distribution as the grid's
        on a full grid)."""
        self.check_interventions()
        k = np.repeat(np.asarray(k, dtype=np.int64), batch_size)
        first = self.sample_index(len(k), rng)
        second = self._draw_sharing(k, self.codes[first, k], rng)
        return first, second

    def sample_index_fixing(
        self, k: np.ndarray, batch_size: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``n`` batches of rows; batch ``i``: one uniform row, then ``batch_size - 1`` rows
        uniform among those that share its value of factor ``k[i]``."""
        self.check_interventions()
        k = np.asarray(k, dtype=np.int64)
        n = len(k)
        first = self.sample_index(n, rng)
        kk = np.repeat(k, batch_size - 1)
        rest = self._draw_sharing(kk, np.repeat(self.codes[first, k], batch_size - 1), rng)
        return np.concatenate([first[:, None], rest.reshape(n, batch_size - 1)],
                              axis=1).reshape(-1)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["grid"] = False
        return out


def _code_columns(names: Sequence[str], cols: Sequence[np.ndarray],
                  bins: int | Mapping[str, int] | None
                  ) -> tuple[np.ndarray, list[np.ndarray]]:
    n_bins = _bin_counts(bins, names)
    codes, values = [], []
    for name, c in zip(names, cols):
        if name in n_bins:
            if c.dtype.kind not in "fiu":
                raise DataError(f"bins: factor {name!r} is not numeric.")
            edges = np.histogram_bin_edges(c.astype(np.float64), n_bins[name])
            b = np.clip(np.digitize(c, edges[1:-1]), 0, n_bins[name] - 1)
            centres = 0.5 * (edges[:-1] + edges[1:])
            used, inv = np.unique(b, return_inverse=True)  # empty bins dropped
            codes.append(inv.reshape(-1))
            values.append(centres[used])
        else:
            vals, inv = np.unique(c, return_inverse=True)
            codes.append(inv.reshape(-1))
            values.append(vals)
    n = len(cols[0]) if cols else 0
    arr = np.stack(codes, axis=1) if codes else np.zeros((n, 0), dtype=np.int64)
    return arr.astype(np.int64), values


def from_arrays(
    images: Any,
    factors: Any = None,
    names: Sequence[str] | None = None,
    bins: int | Mapping[str, int] | None = None,
    name: str = "arrays",
    min_rows_per_value: int = 2,
) -> LabelledData:
    """A data set over labelled rows: ``images`` plus a factor table ``factors``.

    ``images``: ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` (1 or 3 channels) as uint8
    0..255 (0/1 arrays such as dSprites' are read as binary images) or float in [0, 1], or
    vectors ``(N, D)``; numpy or torch. Kept by reference when already uint8 channels-first.
    ``factors``: ``(N, K)`` array, ``{name: (N,)}`` mapping or a pandas DataFrame, with any
    values (numbers or strings); ``None`` for unlabelled data. ``names``: factor names
    (default: the mapping's keys / DataFrame's columns / ``factor_0..``). ``bins``: cut numeric
    columns into that many equal-width bins (one int for all, or ``{name: bins}``).
    ``min_rows_per_value``: the rows per value the intervention metrics need (default 2).
    """
    obs = _as_observations(images)
    n = obs.shape[0]
    fnames, cols = _factor_columns(factors, n, names)
    codes, values = _code_columns(fnames, cols, bins)

    def observe(rows: np.ndarray) -> np.ndarray:
        return obs[rows]

    return LabelledData(observe, n, obs.shape[1:], codes, fnames, values, name=name,
                        min_rows_per_value=min_rows_per_value, source="arrays")


def partial_grid(
    data: GroundTruthData,
    keep: Any,
    name: str | None = None,
    min_rows_per_value: int = 2,
) -> LabelledData:
    """The rows of grid data set ``data`` that ``keep`` selects, as labelled data.

    ``keep``: a boolean mask ``(len(data),)``, row indices, or a function
    ``factors (N, K) -> bool mask``. Images are read from ``data`` when needed (nothing is
    copied); factor classes are the grid positions of the values kept. Example, dSprites
    without the positions where both posX and posY are in their upper half (a quarter)::

        part = partial_grid(load("dsprites"), lambda f: ~((f[:, 3] >= 16) & (f[:, 4] >= 16)))
    """
    if not getattr(data, "is_grid", True):
        raise DataError("partial_grid needs a full-grid data set; use from_arrays on rows.")
    n = len(data)
    if callable(keep):
        mask = np.zeros(n, dtype=bool)
        step = 1 << 18
        for start in range(0, n, step):
            idx = np.arange(start, min(start + step, n), dtype=np.int64)
            mask[start:start + len(idx)] = np.asarray(keep(data.factors(idx)), dtype=bool)
        rows = np.flatnonzero(mask)
    else:
        keep = np.asarray(keep)
        if keep.dtype == bool:
            if keep.shape != (n,):
                raise DataError(f"keep mask must have shape ({n},), got {keep.shape}.")
            rows = np.flatnonzero(keep)
        else:
            rows = np.unique(keep.astype(np.int64).reshape(-1))
            if rows.size and (rows[0] < 0 or rows[-1] >= n):
                raise DataError(f"keep: row index out of range 0..{n - 1}.")
    if rows.size == 0:
        raise DataError("partial_grid: keep selects no rows.")
    rows = rows.astype(np.int64)
    grid_f = data.factors(rows)
    codes, values = _code_columns(list(data.factor_names),
                                  [grid_f[:, j] for j in range(data.num_factors)], None)

    def observe(index: np.ndarray) -> np.ndarray:
        return data._images_from_index(rows[index])

    return LabelledData(observe, len(rows), data.observation_shape, codes, data.factor_names,
                        values, name=name or f"{data.name}_partial",
                        min_rows_per_value=min_rows_per_value, source=data.source)
