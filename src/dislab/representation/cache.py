"""The code cache of a run: ``codes.npz`` and the key that ties it to weights and data.

A run's codes are kept in ``RUN_DIR/codes.npz`` (a :class:`~dislab.representation.table.CodeTable`,
full or partial) with its *key* as ``meta``: the data set's description, the data file and the
SHA-256 of the weights (:func:`codes_key`). A table whose key matches is reused (and a lazy one
extended); anything else (other weights or data, a truncated or damaged file) is encoded afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.errors import MetricError
from dislab.representation.table import CodeTable

__all__ = ["CODES_FILE", "codes_key", "file_sha256", "load_or_encode", "open_code_table",
           "read_matching"]

#: The code cache's file name in a run folder.
CODES_FILE = "codes.npz"


def codes_key(run_dir: str | Path, data: GroundTruthData, data_path: str = "") -> dict[str, Any]:
    """The key of a run's code cache: the data set's description, the data file it was read
    from (``""``: the run's own or a given data object) and the weights' SHA-256."""
    return {"data": data.describe(), "data_path": str(data_path or ""),
            "weights_sha256": file_sha256(Path(run_dir) / "model.safetensors")}


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (used to tie a cached code table to its weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_or_encode(
    path: str | Path,
    data: GroundTruthData,
    meta: dict[str, Any],
    encode: Callable[[], CodeTable],
    force: bool = False,
) -> tuple[CodeTable, bool]:
    """The full code table at ``path`` if its ``meta`` matches, else ``encode()`` and save it.

    Returns ``(table in grid order, reused)``. A table that does not match (other weights,
    other data set, other size), a partial one (see :func:`open_code_table`) and an unreadable
    one (truncated, damaged) are re-encoded and replaced.
    """
    path = Path(path)
    if path.exists() and not force:
        table = read_matching(path, data, meta)
        if table is not None and table.is_complete(data):
            return table.in_order(data), True
    table = encode()
    table.meta = meta
    table.save(str(path))
    return table, False


def read_matching(path: Path, data: GroundTruthData, meta: dict[str, Any]) -> CodeTable | None:
    """The table at ``path`` if it exists, is readable, fits ``data`` and carries ``meta``; else
    None (a damaged file is treated like a stale one: the caller encodes again and replaces
    it)."""
    if not Path(path).is_file():
        return None
    try:
        table = CodeTable.load(str(path))
        if table.meta != meta:
            return None
        table.grid_index(data)  # rows fit this data set
    except MetricError:
        return None
    return table


def open_code_table(
    path: str | Path,
    data: GroundTruthData,
    meta: dict[str, Any],
    encoder: Callable[[np.ndarray], Any],
    force: bool = False,
    first: int = 1,
) -> tuple[CodeTable, int]:
    """A lazy code table of ``data``, started from ``path`` when that matches ``meta``.

    ``encoder``: ``index (n,) -> (mean, logvar or None)`` of grid points (e.g.
    :func:`encode_rows` bound to a model); it encodes the rows that metrics ask for and the
    table lacks (:meth:`CodeTable.lookup`). A saved table, full or partial, whose ``meta``
    matches is reused and extended; anything else (other weights or data set, truncated or
    damaged file, ``force``) is started afresh with grid points ``0 .. first-1``. Save the
    table back with :meth:`CodeTable.save` when ``table.encoded`` is non-zero. Returns
    ``(table, rows reused from path)``.
    """
    path = Path(path)
    table = None if force or not path.exists() else read_matching(path, data, meta)
    if table is None:
        return CodeTable.lazy(data, encoder, first=first, meta=meta), 0
    table.encoder = encoder
    return table, len(table)
