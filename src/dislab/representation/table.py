"""Codes of grid points: :class:`CodeTable`, the look-up table every metric reads codes from.

A table holds the codes (posterior means, and log-variances for Gaussian encoders) of some or
all points of a data set's factor grid, with the grid index of each row. A *lazy* table has an
encoder and encodes the rows a metric asks for the first time, keeping them, so a table costs
what its metrics look at. Tables are saved as ``.npz`` (arrays and JSON only, no pickle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.errors import DislabError, MetricError

__all__ = ["CodeTable", "RowEncoder", "check_codes"]

#: An encoder of grid points for a lazy :class:`CodeTable`: ``index (n,) int64 -> (mean (n, d),
#: logvar (n, d) or None)``.
RowEncoder = Callable[[np.ndarray], Any]

#: Members of a saved code table besides ``mean``; anything else marks a foreign file.
_TABLE_KEYS = {"mean", "logvar", "meta", "index", "factors"}


@dataclass
class CodeTable:
    """Codes of grid points of a data set: all of them, or a lazily filled part.

    ``mean``: ``(n, d)`` float32, posterior means (or any deterministic codes);
    ``logvar``: ``(n, d)`` float32 posterior log-variances, or ``None`` for deterministic
    encoders. Which grid point each row holds:

    * ``index`` ``(n,)`` int64: the flat grid index of each row (any order, no repeats); or
    * ``factors`` ``(n, K)``: the factor values of each row (turned into ``index`` with the
      data set's :meth:`~dislab.data.base.GroundTruthData.index`; both given: they must agree);
    * neither: row ``i`` is grid point ``i`` and ``n`` must equal ``len(data)``.

    ``encoder``: encodes grid points the table lacks (see :data:`RowEncoder`). Metrics ask for
    rows with :meth:`lookup`; missing rows are encoded, appended and kept (memoised), so a table
    costs what its metrics look at. :meth:`save` keeps a partial table (``index`` included);
    later evaluations extend it. Without an encoder every row asked for must be present.
    """

    mean: np.ndarray
    logvar: np.ndarray | None = None
    #: Where the codes come from (data set, weights hash, ...), saved with the table as JSON.
    meta: dict[str, Any] | None = None
    index: np.ndarray | None = None
    factors: np.ndarray | None = None
    encoder: RowEncoder | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.mean = check_codes(np.asarray(self.mean, dtype=np.float32), "CodeTable.mean")
        if self.logvar is not None:
            self.logvar = check_codes(np.asarray(self.logvar, dtype=np.float32),
                                      "CodeTable.logvar")
            if self.logvar.shape != self.mean.shape:
                raise MetricError(
                    f"CodeTable: logvar shape {self.logvar.shape} differs from mean shape "
                    f"{self.mean.shape}."
                )
        n = self.mean.shape[0]
        if self.index is not None:
            idx = np.asarray(self.index)
            if idx.ndim != 1 or len(idx) != n or not (
                    np.issubdtype(idx.dtype, np.integer) or len(idx) == 0):
                raise MetricError(
                    f"CodeTable.index must be {n} integer grid indices (one per row), got "
                    f"shape {idx.shape} of {idx.dtype}.")
            self.index = idx.astype(np.int64)
            if len(np.unique(self.index)) != n:
                raise MetricError("CodeTable.index repeats a grid point; each row must hold "
                                  "a different grid point.")
        if self.factors is not None:
            f = np.asarray(self.factors)
            if f.ndim != 2 or len(f) != n:
                raise MetricError(
                    f"CodeTable.factors must be ({n}, num_factors), one row per code, got "
                    f"shape {f.shape}.")
            self.factors = f
        #: grid index -> row (-1: absent), built for the data set last looked up
        self._pos: np.ndarray | None = None
        #: rows appended by the encoder since the table was made or loaded
        self.encoded = 0

    @classmethod
    def lazy(cls, data: GroundTruthData, encoder: RowEncoder, first: int = 1,
             meta: dict[str, Any] | None = None) -> CodeTable:
        """An empty table of ``data`` that encodes rows when asked; ``first`` grid points
        (``0 .. first-1``) are encoded now, to learn the code size and whether there are
        log-variances."""
        first = max(1, min(int(first), len(data)))
        rows = np.arange(first, dtype=np.int64)
        mean, logvar = _split(encoder(rows))
        table = cls(mean, logvar, meta, index=rows, encoder=encoder)
        if len(table) != first:
            raise MetricError(f"representation returned {len(table)} codes for {first} "
                              "observations; it must return one row per observation.")
        table.encoded = first
        return table

    @property
    def num_codes(self) -> int:
        return int(self.mean.shape[1])

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    @property
    def in_grid_order(self) -> bool:
        """True when row ``i`` is grid point ``i`` (no index/factors carried)."""
        return self.index is None and self.factors is None

    def grid_index(self, data: GroundTruthData) -> np.ndarray:
        """The grid index ``(n,)`` of each row on ``data`` (checked against ``factors``)."""
        n = len(data)
        if self.in_grid_order:
            if len(self) != n:
                raise MetricError(
                    f"CodeTable has {len(self)} rows but data set {data.name!r} has {n} grid "
                    "points; a table without `index` (or `factors`) must hold the codes of the "
                    "full grid of the same data set, in grid order (re-encode it with "
                    "dislab.metrics.encode_grid, or pass index=/factors= for its rows).")
            return np.arange(n, dtype=np.int64)
        idx = self.index
        if self.factors is not None:
            try:
                from_factors = data.index(self.factors)
            except DislabError as e:
                raise MetricError(f"CodeTable.factors do not fit {data.name!r}: {e}") from e
            if idx is not None and not np.array_equal(idx, from_factors):
                bad = int((idx != from_factors).sum())
                raise MetricError(
                    f"CodeTable.index and CodeTable.factors disagree on {bad} rows; pass the "
                    "factors of each row (or its grid index) as they were encoded.")
            idx = from_factors
        assert idx is not None
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise MetricError(
                f"CodeTable.index holds grid points outside 0..{n - 1} of {data.name!r} "
                f"(min {idx.min()}, max {idx.max()}); was it made for another data set?")
        if len(np.unique(idx)) != len(idx):
            raise MetricError("CodeTable.factors repeat a grid point; each row must hold a "
                              "different grid point.")
        return idx

    def _positions(self, data: GroundTruthData) -> np.ndarray:
        if self._pos is None or len(self._pos) != len(data):
            idx = self.grid_index(data)
            pos = np.full(len(data), -1, dtype=np.int64)
            pos[idx] = np.arange(len(idx), dtype=np.int64)
            self._pos = pos
            if not self.in_grid_order:
                self.index, self.factors = idx, None
        return self._pos

    def is_complete(self, data: GroundTruthData) -> bool:
        """Whether every grid point of ``data`` has a row."""
        return bool((self._positions(data) >= 0).all())

    def lookup(self, data: GroundTruthData, index: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(mean (m, d), logvar (m, d) or None)`` of grid points ``index (m,)``.

        Rows the table lacks are encoded with :attr:`encoder` and kept; when they are more
        than half of what is still missing, all missing rows are encoded at once (in grid
        order). Values are those of the rows, whichever call encoded them.
        """
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if self.in_grid_order and self.encoder is None:
            self.grid_index(data)  # row count check only
            return self.mean[index], (None if self.logvar is None else self.logvar[index])
        if len(index) and (index.min() < 0 or index.max() >= len(data)):
            raise MetricError(f"grid index out of range 0..{len(data) - 1} of {data.name!r}.")
        pos = self._positions(data)
        rows = pos[index]
        if (rows < 0).any():
            if self.encoder is None:
                have = int((pos >= 0).sum())
                raise MetricError(
                    f"the code table holds {have} of the {len(data)} grid points of "
                    f"{data.name!r} and has no encoder for the others; encode the full grid "
                    "(dislab.metrics.encode_grid) or score a model or function instead.")
            todo = np.unique(index[rows < 0])
            absent = np.flatnonzero(pos < 0)
            if 2 * len(todo) > len(absent):
                todo = absent
            self._extend(data, todo, *_split(self.encoder(todo)))
            rows = self._pos[index]  # type: ignore[index]
        return self.mean[rows], (None if self.logvar is None else self.logvar[rows])

    def _extend(self, data: GroundTruthData, index: np.ndarray, mean: np.ndarray,
                logvar: np.ndarray | None) -> None:
        mean = check_codes(mean, f"encoder on {data.name}")
        if mean.shape != (len(index), self.num_codes):
            raise MetricError(
                f"the encoder returned codes of shape {mean.shape} for {len(index)} points; "
                f"expected ({len(index)}, {self.num_codes}), one row per observation.")
        if (logvar is None) != (self.logvar is None):
            raise MetricError("the encoder returned log-variances for some points and not "
                              "for others; it must return the same kind of output each call.")
        pos = self._positions(data)
        start = len(self)
        self.mean = np.concatenate([self.mean, mean])
        if self.logvar is not None and logvar is not None:
            lv = check_codes(logvar, f"encoder log-variances on {data.name}")
            self.logvar = np.concatenate([self.logvar, lv.astype(np.float32)])
        if self.index is None:  # a full table in grid order gains nothing; kept for safety
            self.index = np.arange(start, dtype=np.int64)
        self.index = np.concatenate([self.index, index])
        pos[index] = np.arange(start, start + len(index), dtype=np.int64)
        self.encoded += len(index)

    def in_order(self, data: GroundTruthData) -> CodeTable:
        """The full table in grid order (missing rows encoded first), without the encoder."""
        rows = self._positions(data)
        if (rows < 0).any():
            self.lookup(data, np.flatnonzero(rows < 0))
            rows = self._positions(data)
        if self.in_grid_order:
            return CodeTable(self.mean, self.logvar, self.meta)
        return CodeTable(self.mean[rows], None if self.logvar is None else self.logvar[rows],
                         self.meta)

    def save(self, path: str) -> None:
        """Write as ``.npz`` atomically (arrays and JSON ``meta`` only; see :meth:`load`).

        A partial or reordered table keeps its ``index`` (or ``factors``)."""
        import json

        arrays: dict[str, Any] = {"mean": self.mean}
        if self.logvar is not None:
            arrays["logvar"] = self.logvar
        if self.meta is not None:
            arrays["meta"] = np.array(json.dumps(self.meta, sort_keys=True))
        if self.index is not None:
            arrays["index"] = self.index
        if self.factors is not None:
            arrays["factors"] = self.factors
        from dislab.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str) -> CodeTable:
        """Read a table written by :meth:`save` (no pickle); unreadable -> :class:`MetricError`."""
        import json
        import zipfile
        import zlib

        fix = "delete it (or pass --reencode) to encode again"
        try:
            with np.load(path, allow_pickle=False) as f:
                if not hasattr(f, "files") or "mean" not in f.files:
                    raise MetricError(f"{path}: not a code table (no 'mean' array); {fix}.")
                arrays = {k: f[k] for k in f.files if k in _TABLE_KEYS}
            meta = json.loads(str(arrays["meta"][()])) if "meta" in arrays else None
            if meta is not None and not isinstance(meta, dict):
                raise MetricError(f"{path}: its 'meta' is not a JSON object; {fix}.")
            for k in ("mean", "logvar"):
                if k in arrays and not np.issubdtype(arrays[k].dtype, np.floating):
                    raise MetricError(f"{path}: {k!r} holds {arrays[k].dtype}, not floats; "
                                      f"{fix}.")
            return cls(arrays["mean"], arrays.get("logvar"), meta,
                       index=arrays.get("index"), factors=arrays.get("factors"))
        except MetricError as e:
            if str(e).startswith(str(path)):
                raise
            raise MetricError(f"{path}: not a valid code table ({e}); {fix}.") from e
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            raise MetricError(
                f"{path}: cannot read code table ({type(e).__name__}: {e}); the file is "
                f"damaged or truncated; {fix}."
            ) from e


def _as_array(x: Any) -> np.ndarray:
    """A numpy array of ``x``; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if hasattr(x, "float") and getattr(x, "dtype", None) is not None \
                and str(x.dtype) in ("torch.float16", "torch.bfloat16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _split(out: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(mean, logvar or None)`` of an encoder's output (an array, or a pair of arrays)."""
    if isinstance(out, (tuple, list)):
        if len(out) == 2 and out[1] is not None:
            m, lv = _as_array(out[0]), _as_array(out[1])
        else:
            m, lv = _as_array(out[0]), None
    else:
        m, lv = _as_array(out), None
    if m.ndim == 1:
        m = m[:, None]
    if lv is not None and lv.ndim == 1:
        lv = lv[:, None]
    m = m.astype(np.float32, copy=False)
    return m, None if lv is None else lv.astype(np.float32, copy=False)


def check_codes(codes: np.ndarray, what: str = "representation") -> np.ndarray:
    """Validate a code matrix ``(n, d)``: finite, 2-D. Returns it unchanged."""
    if codes.ndim != 2:
        raise MetricError(
            f"{what} must return codes of shape (n, num_codes), got shape {codes.shape}; "
            "flatten the code of each observation to one row."
        )
    if not np.all(np.isfinite(codes)):
        bad = int((~np.isfinite(codes)).any(axis=1).sum())
        raise MetricError(
            f"{what} produced NaN or infinite codes for {bad} of {codes.shape[0]} points; "
            "check the model (a diverged training run?) before scoring it."
        )
    return codes
