"""A trained run, ready to give its codes: its model, its data set and its code cache.

:func:`open_run` loads a run folder written by ``dislab train`` (:func:`dislab.train.load_run`)
and the data set it is scored on (:func:`run_data`: the run's own, or another one given by
name or as an object). The :class:`TrainedRun` then gives the codes through the run's
``codes.npz`` cache (:mod:`dislab.representation.cache`): :meth:`TrainedRun.lazy_codes` encodes
only the grid points that metrics look at, :meth:`TrainedRun.grid_codes` the whole grid.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.representation.cache import (
    CODES_FILE,
    codes_key,
    load_or_encode,
    open_code_table,
)
from dislab.representation.encode import encode_grid, encode_rows
from dislab.representation.table import CodeTable, RowEncoder

__all__ = ["TrainedRun", "open_run", "run_data"]


def run_data(config: Any, data: str | GroundTruthData | None = None,
             data_path: str | None = None) -> tuple[GroundTruthData, str]:
    """``(data set, data file)`` that a run with training config ``config`` is scored on.

    ``data=None``: the run's own data set (``config.data`` with its ``data_options``), read from
    ``data_path`` or else the run's own file (``config.data_path``). A name: that data set with
    its default options, from ``data_path`` (or rendered / found as
    :func:`dislab.data.load` does). A :class:`~dislab.data.GroundTruthData`: used as it is. The
    data file (``""`` for none) is part of the code cache's key (:func:`codes_key`).
    """
    from dislab.data import load as load_data

    if isinstance(data, GroundTruthData):
        return data, str(data_path or "")
    if data is None:
        path = data_path if data_path is not None else config.data_path
        dataset = load_data(config.data, path=path, **dict(config.data_options))
        return dataset, str(path or "")
    return load_data(data, path=data_path), str(data_path or "")


@dataclass
class TrainedRun:
    """A run folder's model (eval mode), training config and the data set it is scored on."""

    run_dir: Path
    model: Any
    config: Any
    data: GroundTruthData
    #: the data file of :func:`run_data` (part of the code cache's key)
    data_path: str = ""
    #: seconds spent encoding so far (by :meth:`lazy_codes` tables and :meth:`grid_codes`)
    encode_seconds: float = field(default=0.0)

    @property
    def codes_path(self) -> Path:
        """``RUN_DIR/codes.npz``."""
        return self.run_dir / CODES_FILE

    @cached_property
    def codes_key(self) -> dict[str, Any]:
        """The key its ``codes.npz`` must carry to be reused (:func:`codes_key`; the weights
        are hashed once)."""
        return codes_key(self.run_dir, self.data, self.data_path)

    def encoder(self, batch_size: int = 128, progress: bool = True) -> RowEncoder:
        """``index (n,) -> (mean, logvar or None)`` of grid points, timed into
        :attr:`encode_seconds` (:func:`~dislab.representation.encode.encode_rows`)."""

        def encode(index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            t = time.perf_counter()
            try:
                return encode_rows(self.model, self.data, index, batch_size=batch_size,
                                   progress=progress and len(index) > 4 * batch_size)
            finally:
                self.encode_seconds += time.perf_counter() - t

        return encode

    def lazy_codes(self, batch_size: int = 128, progress: bool = True, reencode: bool = False
                   ) -> tuple[CodeTable, int]:
        """A lazy code table, started from ``codes.npz`` when its key matches (full or partial):
        rows the metrics ask for and the table lacks are encoded in batches of
        ``batch_size``. Keep what was encoded with :meth:`save_codes`. Returns
        ``(table, rows reused from codes.npz)``; ``reencode`` starts afresh."""
        return open_code_table(self.codes_path, self.data, self.codes_key,
                               self.encoder(batch_size, progress), force=reencode,
                               first=batch_size)

    def save_codes(self, table: CodeTable) -> None:
        """Write ``table`` to ``codes.npz`` with this run's key, if it encoded anything."""
        if table.encoded:
            table.meta = self.codes_key
            table.save(str(self.codes_path))

    def grid_codes(self, progress: bool = True) -> CodeTable:
        """The codes of the whole grid in grid order: ``codes.npz`` when it is complete and its
        key matches, else the grid encoded now (:func:`encode_grid`) and saved there."""
        def encode() -> CodeTable:
            t = time.perf_counter()
            try:
                return encode_grid(self.model, self.data, progress=progress)
            finally:
                self.encode_seconds += time.perf_counter() - t

        return load_or_encode(self.codes_path, self.data, self.codes_key, encode)[0]


def open_run(run_dir: str | os.PathLike[str], data: str | GroundTruthData | None = None,
             data_path: str | None = None, device: str = "cpu") -> TrainedRun:
    """Load the run folder ``run_dir`` (model on ``device``, config) and its data set
    (:func:`run_data`). Bad folders raise :class:`~dislab.errors.DislabError` from
    :func:`dislab.train.load_run`."""
    from dislab.train import load_run

    run_dir = Path(run_dir)
    model, config = load_run(run_dir, device=device)
    dataset, path = run_data(config, data, data_path)
    return TrainedRun(run_dir, model, config, dataset, path)
