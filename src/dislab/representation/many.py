"""Encode many trained runs' grids at once: up to ``pack`` models per vectorised pass.

:func:`encode_runs` groups runs by data set and architecture; each group's full grid is encoded
for up to ``pack`` models at a time by one :class:`~dislab.models.stacked.StackedEncoder`
(``vmap`` over the stacked weights), the images gathered on the device from a
:class:`~dislab.data.device.DeviceGrid` on CUDA or read on the host on CPU. Each run's codes go
to its ``codes.npz`` under the run's code-cache key
(:func:`~dislab.representation.cache.codes_key`), so that
:func:`dislab.metrics.evaluate_run` reuses them and encodes nothing.
:func:`dislab.metrics.many.evaluate_runs` then scores the runs in parallel processes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dislab.errors import DislabError, MetricError
from dislab.representation.cache import read_matching
from dislab.representation.runs import TrainedRun, open_run
from dislab.representation.table import CodeTable

__all__ = ["encode_runs", "default_pack", "DEFAULT_PACK_CUDA", "DEFAULT_PACK_CPU"]


#: Models encoded together by default (one vectorised pass each) on CUDA; on CPU the stacked
#: pass is no faster than one model at a time, so fewer are held at once.
DEFAULT_PACK_CUDA = 64
DEFAULT_PACK_CPU = 8


def default_pack(device: Any) -> int:
    """Models per vectorised encoding pass on ``device`` (see :data:`DEFAULT_PACK_CUDA`)."""
    return DEFAULT_PACK_CUDA if getattr(device, "type", str(device)) == "cuda" else \
        DEFAULT_PACK_CPU


def _host_batch(dataset: Any, index: np.ndarray, device: Any) -> Any:
    import torch

    if dataset.is_image:
        x = torch.from_numpy(dataset.images_uint8_from_index(index)).to(device)
        return x.to(torch.float32).mul_(1.0 / 255.0)
    return torch.from_numpy(dataset.images_from_index(index)).to(device)


def _encode_group(models: list[Any], dataset: Any, device: Any, batch_size: int,
                  progress: bool, grid: Any = None) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Codes ``(K, N, d)`` (and log-variances) of the full grid for ``models`` at once;
    the flag says whether the vectorised pass was used (False: it disagreed with the models'
    own encoders on the first batch, and they encoded one by one)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from dislab.models.stacked import StackedEncoder

    enc = StackedEncoder(models)
    n = len(dataset)
    starts = list(range(0, n, batch_size))

    def load(start: int) -> Any:
        idx = np.arange(start, min(start + batch_size, n), dtype=np.int64)
        if grid is not None:
            return grid.gather(torch.from_numpy(idx).to(grid.device))
        return _host_batch(dataset, idx, device)

    mean: np.ndarray | None = None
    logvar: np.ndarray | None = None
    vectorised = True
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * len(models), desc=f"encoding {dataset.name} x{len(models)}",
                   unit="img", smoothing=0.1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0])
        for i, start in enumerate(starts):
            x = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(load, starts[i + 1])
            if i == 0:
                vectorised = enc.agrees(x)
            m, lv = enc(x) if vectorised else enc.each(x)
            if mean is None:
                mean = np.empty((len(models), n, m.shape[-1]), dtype=np.float32)
                if lv is not None:
                    logvar = np.empty((len(models), n, lv.shape[-1]), dtype=np.float32)
            mean[:, start:start + m.shape[1]] = m.float().cpu().numpy()
            if logvar is not None and lv is not None:
                logvar[:, start:start + lv.shape[1]] = lv.float().cpu().numpy()
            if bar is not None:
                bar.update(m.shape[1] * len(models))
    if bar is not None:
        bar.close()
    assert mean is not None
    return mean, logvar, vectorised


def _encode_each(models: list[Any], dataset: Any, batch_size: int, progress: bool
                 ) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Codes ``(K, N, d)`` of the full grid, model by model (one batch at a time, so the
    result does not depend on a timing choice of :func:`encode_rows`)."""
    from dislab.representation.encode import encode_rows

    index = np.arange(len(dataset), dtype=np.int64)
    out = [encode_rows(m, dataset, index, batch_size=batch_size, progress=progress,
                       workers=1) for m in models]
    logvar = None if any(lv is None for _, lv in out) else np.stack([lv for _, lv in out])
    return np.stack([m for m, _ in out]), logvar, False


def encode_runs(run_dirs: Sequence[str | os.PathLike[str]], device: str = "auto",
                batch_size: int | None = None, pack: int | None = None,
                progress: bool = True, reencode: bool = False,
                vectorise: bool | None = None, max_grid: int | None = None
                ) -> dict[str, dict[str, Any]]:
    """Write every run's full-grid ``codes.npz``, encoding up to ``pack`` runs of one data set
    and architecture per vectorised pass (default :func:`default_pack`).

    Runs whose ``codes.npz`` already holds their full grid for these weights are skipped
    (unless ``reencode``); grids above ``max_grid`` points (``None``: no limit) are left to
    the lazy per-run path. ``batch_size``: grid points per pass (default 128 on CPU, 1024 on
    CUDA). ``vectorise`` (default: on CUDA only): the stacked ``vmap`` pass; off, each model
    encodes its grid with :func:`~dislab.representation.encode.encode_rows` (on CPU the frozen
    per-model encoder is faster than a grouped convolution over the stacked weights).
    Returns ``{run_dir: {"ready": bool (codes.npz holds the full grid), "encoded": bool (now),
    "vectorised": bool (the stacked pass was used), "pack": K, "seconds": s, "error": why not
    ready (if known)}}``; a run that cannot be loaded or encoded is reported there, not raised.
    """
    from dislab.data.base import DataError
    from dislab.models.stacked import stack_key
    from dislab.train.fast import resolve_device

    dev = resolve_device(device)
    pack = int(pack) if pack else default_pack(dev)
    if pack < 1:
        raise MetricError(f"pack must be >= 1, got {pack}.")
    batch_size = int(batch_size) if batch_size else (1024 if dev.type == "cuda" else 128)
    if batch_size < 1:
        raise MetricError(f"batch_size must be >= 1, got {batch_size}.")
    info: dict[str, dict[str, Any]] = {}
    groups: dict[tuple, list[TrainedRun]] = {}
    datasets: dict[str, Any] = {}
    for d in run_dirs:
        key = str(d)
        info[key] = {"ready": False, "encoded": False, "vectorised": False, "pack": 0,
                     "seconds": 0.0}
        try:
            config = _config_of(d)
            dk = _data_key(config)
            run = open_run(d, data=datasets.get(dk), device=str(dev))
        except DislabError as e:  # no weights, not a run: scored alone, which says why
            info[key]["error"] = str(e)
            continue
        if dk not in datasets:
            datasets[dk] = run.data
        run.data_path = str(config.data_path or "")
        groups.setdefault((dk, stack_key(run.model)), []).append(run)
    for (dk, _), runs in groups.items():
        dataset = datasets[dk]
        if max_grid is not None and len(dataset) > max_grid:
            continue
        todo = []
        for run in runs:
            table = None if reencode else read_matching(run.codes_path, dataset, run.codes_key)
            if table is not None and table.is_complete(dataset):
                info[str(run.run_dir)]["ready"] = True
            else:
                todo.append(run)
        if not todo:
            continue
        grid = None
        if dev.type == "cuda":
            from dislab.data.device import DeviceGrid

            try:
                grid = DeviceGrid.from_data(dataset, dev, progress=progress)
            except DataError:  # does not fit, or not a function of the grid: host images
                grid = None
        for s in range(0, len(todo), pack):
            chunk = todo[s:s + pack]
            keys = [str(run.run_dir) for run in chunk]
            t0 = time.perf_counter()
            try:
                if vectorise if vectorise is not None else dev.type == "cuda":
                    mean, logvar, vectorised = _encode_group([r.model for r in chunk], dataset,
                                                             dev, batch_size, progress, grid)
                else:
                    mean, logvar, vectorised = _encode_each([r.model for r in chunk], dataset,
                                                            batch_size, progress)
            except (DislabError, RuntimeError) as e:  # e.g. NaN codes: scored alone
                for key in keys:
                    info[key]["error"] = f"{type(e).__name__}: {e}"
                continue
            for k, run in enumerate(chunk):
                CodeTable(mean[k], None if logvar is None else logvar[k],
                          run.codes_key).save(str(run.codes_path))
            spent = time.perf_counter() - t0
            for key in keys:
                info[key].update(ready=True, encoded=True, vectorised=vectorised,
                                 pack=len(chunk), seconds=spent / len(chunk))
        del grid
    return info


def _config_of(run_dir: str | os.PathLike[str]) -> Any:
    """The training config of a run folder (a clear DislabError when there is none)."""
    from dislab.train.config import TrainConfig

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise DislabError(f"{run_dir} is not a run folder: it has no config.json.")
    return TrainConfig.from_json(path)


def _data_key(config: Any) -> str:
    return json.dumps([config.data, config.data_path, config.data_options], sort_keys=True,
                      default=str)
