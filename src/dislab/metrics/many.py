"""Score many training runs at once: one vectorised encoding pass, metric suites in parallel.

:func:`evaluate_runs` is ``dislab evaluate RUN_DIR RUN_DIR ...``:

1. **encode** (:func:`encode_runs`): the runs are grouped by data set and architecture; each
   group's full grid is encoded for up to ``pack`` models at a time by one
   :class:`~dislab.models.stacked.StackedEncoder` (``vmap`` over the stacked weights), the
   images gathered on the device from a :class:`~dislab.data.device.DeviceGrid` on CUDA or
   read on the host on CPU. Each run's codes go to its ``codes.npz``, with the same ``meta``
   (data set, data path, weights hash) that :func:`dislab.metrics.evaluate_run` checks, so
   the next step reuses them and encodes nothing;
2. **score**: each run's metric suite is :func:`dislab.metrics.evaluate_run` in its own host
   process (a spawned process pool of ``workers``), which reads the run's codes from disk,
   never its model on the device. ``metrics.json`` is written as for a single run.

A run whose grid is larger than :data:`dislab.metrics.suite.AUTO_CACHE_MAX` points, or whose
vectorised codes disagree with its own encoder on a first batch (a model whose ``encode``
cannot be vmapped faithfully), is scored as :func:`evaluate_run` scores it alone, in this
process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dislab.errors import DislabError
from dislab.metrics.base import CodeTable, MetricError

__all__ = ["evaluate_runs", "encode_runs", "default_pack", "code_meta"]

#: Models encoded together by default (one vectorised pass each) on CUDA; on CPU the stacked
#: pass is no faster than one model at a time, so fewer are held at once.
DEFAULT_PACK_CUDA = 64
DEFAULT_PACK_CPU = 8


def default_pack(device: Any) -> int:
    """Models per vectorised encoding pass on ``device`` (see :data:`DEFAULT_PACK_CUDA`)."""
    return DEFAULT_PACK_CUDA if getattr(device, "type", str(device)) == "cuda" else \
        DEFAULT_PACK_CPU


def _data_key(config: Any) -> str:
    return json.dumps([config.data, config.data_path, config.data_options], sort_keys=True,
                      default=str)


def code_meta(run_dir: Path, dataset: Any, config: Any) -> dict[str, Any]:
    """The ``meta`` of a run's ``codes.npz`` for its own data set, as
    :func:`dislab.metrics.evaluate_run` writes and checks it."""
    from dislab.metrics.cache import file_sha256

    return {"data": dataset.describe(), "data_path": str(config.data_path or ""),
            "weights_sha256": file_sha256(Path(run_dir) / "model.safetensors")}


def _has_codes(path: Path, dataset: Any, meta: dict[str, Any]) -> bool:
    from dislab.metrics.cache import _read_matching

    if not path.exists():
        return False
    table = _read_matching(path, dataset, meta)
    return table is not None and table.is_complete(dataset)


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
    from dislab.metrics.cache import encode_rows

    index = np.arange(len(dataset), dtype=np.int64)
    out = [encode_rows(m, dataset, index, batch_size=batch_size, progress=progress,
                       workers=1) for m in models]
    logvar = None if any(lv is None for _, lv in out) else np.stack([lv for _, lv in out])
    return np.stack([m for m, _ in out]), logvar, False


def encode_runs(run_dirs: Sequence[str | os.PathLike[str]], device: str = "auto",
                batch_size: int | None = None, pack: int | None = None,
                progress: bool = True, reencode: bool = False,
                vectorise: bool | None = None) -> dict[str, dict[str, Any]]:
    """Write every run's full-grid ``codes.npz``, encoding up to ``pack`` runs of one data set
    and architecture per vectorised pass (default :func:`default_pack`).

    Runs whose ``codes.npz`` already holds their full grid for these weights are skipped
    (unless ``reencode``); grids above ``AUTO_CACHE_MAX`` points are left to the lazy
    per-run path. ``batch_size``: grid points per pass (default 128 on CPU, 1024 on CUDA).
    ``vectorise`` (default: on CUDA only): the stacked ``vmap`` pass; off, each model encodes
    its grid with :func:`dislab.metrics.cache.encode_rows` (on CPU the frozen per-model
    encoder is faster than a grouped convolution over the stacked weights).
    Returns ``{run_dir: {"ready": bool (codes.npz holds the full grid), "encoded": bool (now),
    "vectorised": bool (the stacked pass was used), "pack": K, "seconds": s, "error": why not
    ready (if known)}}``; a run
    that cannot be loaded or encoded is reported there, not raised.
    """
    from dislab.data import load as load_data
    from dislab.data.base import DataError
    from dislab.metrics.suite import AUTO_CACHE_MAX
    from dislab.models.stacked import stack_key
    from dislab.train.loop import load_run, resolve_device

    dev = resolve_device(device)
    pack = int(pack) if pack else default_pack(dev)
    if pack < 1:
        raise MetricError(f"pack must be >= 1, got {pack}.")
    batch_size = int(batch_size) if batch_size else (1024 if dev.type == "cuda" else 128)
    if batch_size < 1:
        raise MetricError(f"batch_size must be >= 1, got {batch_size}.")
    info: dict[str, dict[str, Any]] = {}
    groups: dict[tuple, list[tuple[str, Any, Any]]] = {}
    datasets: dict[str, Any] = {}
    for d in run_dirs:
        key = str(d)
        info[key] = {"ready": False, "encoded": False, "vectorised": False, "pack": 0,
                     "seconds": 0.0}
        try:
            model, config = load_run(d, device=str(dev))
        except DislabError as e:  # no weights, not a run: scored alone, which says why
            info[key]["error"] = str(e)
            continue
        dk = _data_key(config)
        if dk not in datasets:
            datasets[dk] = load_data(config.data, path=config.data_path,
                                     **dict(config.data_options))
        groups.setdefault((dk, stack_key(model)), []).append((key, model, config))
    for (dk, _), members in groups.items():
        dataset = datasets[dk]
        if len(dataset) > AUTO_CACHE_MAX:
            continue
        todo = []
        for key, model, config in members:
            meta = code_meta(Path(key), dataset, config)
            if reencode or not _has_codes(Path(key) / "codes.npz", dataset, meta):
                todo.append((key, model, meta))
            else:
                info[key]["ready"] = True
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
            t0 = time.perf_counter()
            try:
                if vectorise if vectorise is not None else dev.type == "cuda":
                    mean, logvar, vectorised = _encode_group([m for _, m, _ in chunk], dataset,
                                                             dev, batch_size, progress, grid)
                else:
                    mean, logvar, vectorised = _encode_each([m for _, m, _ in chunk], dataset,
                                                            batch_size, progress)
            except (DislabError, RuntimeError) as e:  # e.g. NaN codes: scored alone
                for key, _, _ in chunk:
                    info[key]["error"] = f"{type(e).__name__}: {e}"
                continue
            for k, (key, _, meta) in enumerate(chunk):
                CodeTable(mean[k], None if logvar is None else logvar[k],
                          meta).save(str(Path(key) / "codes.npz"))
            spent = time.perf_counter() - t0
            for key, _, _ in chunk:
                info[key].update(ready=True, encoded=True, vectorised=vectorised,
                                 pack=len(chunk), seconds=spent / len(chunk))
        del grid
    return info


def _suite(kwargs: dict[str, Any]) -> dict[str, Any]:
    """One run's metric suite (in a worker process)."""
    from dislab.metrics.suite import evaluate_run

    return evaluate_run(**kwargs)


def _init_worker(threads: int) -> None:
    from dislab.threads import set_process_threads

    set_process_threads(threads)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def evaluate_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    metrics: str | Sequence[str] | None = None,
    seed: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    compat: str = "default",
    device: str = "auto",
    batch_size: int | None = None,
    pack: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    reencode: bool = False,
    settings: Sequence[Mapping[str, Any] | None] | None = None,
    errors: str = "raise",
    vectorise: bool | None = None,
) -> list[Any]:
    """Score several training runs; write each run's ``metrics.json`` (and ``codes.npz``).

    The result of each run is what :func:`dislab.metrics.evaluate_run` gives for it alone with
    the same arguments (the codes are the runs' own encoders' up to float rounding; see the
    module docstring for how they are made). ``settings``: one dict per run overriding
    ``metrics``, ``seed``, ``params`` or ``compat`` for that run. ``workers``: metric suites
    run at once in spawned processes (default: the usable cores, at most one per run; 1 runs
    them in this process), each with ``cores // workers`` threads. ``errors="raise"`` raises
    the first failure once every run is done (naming the run); ``"return"`` puts the
    exception in that run's place of the returned list. ``vectorise``: see
    :func:`encode_runs`. Returns the records in order.
    """
    if errors not in ("raise", "return"):
        raise MetricError(f"errors must be 'raise' or 'return', not {errors!r}.")
    from dislab.metrics.compat import check_compat
    from dislab.metrics.suite import _check_params, resolve_metrics

    dirs = [str(d) for d in run_dirs]
    if not dirs:
        raise MetricError("no run folders given.")
    if len(set(dirs)) != len(dirs):
        raise MetricError("a run folder is given twice; each run is scored once.")
    if settings is not None and len(settings) != len(dirs):
        raise MetricError(f"settings has {len(settings)} entries for {len(dirs)} runs.")
    jobs: list[dict[str, Any]] = []
    for i, d in enumerate(dirs):
        job: dict[str, Any] = {"metrics": metrics, "seed": seed, "params": params,
                               "compat": compat}
        job.update(dict((settings or [None] * len(dirs))[i] or {}))
        unknown = set(job) - {"metrics", "seed", "params", "compat"}
        if unknown:
            raise MetricError(f"settings of {d}: unknown key(s) {sorted(unknown)}; use "
                              "metrics, seed, params, compat.")
        names = resolve_metrics(job["metrics"])
        check_compat(job["compat"])
        _check_params(names, job["params"])  # bad input fails before anything is encoded
        job.update(run_dir=d, metrics=names, progress=False, batch_size=128)
        jobs.append(job)
    results: list[Any] = [None] * len(dirs)
    info = encode_runs(dirs, device=device, batch_size=batch_size, pack=pack,
                       progress=progress, reencode=reencode, vectorise=vectorise)
    pooled = [i for i, d in enumerate(dirs) if info[d]["ready"]]
    alone = [i for i, d in enumerate(dirs) if not info[d]["ready"]]
    cores = _cores()
    workers = int(workers) if workers else cores
    if workers < 1:
        raise MetricError(f"workers must be >= 1, got {workers}.")
    workers = min(workers, max(1, len(pooled)))
    threads = max(1, cores // workers)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(dirs), desc="scoring runs", unit="run")

    def finish(i: int, fn: Any, kwargs: dict[str, Any]) -> None:
        try:
            results[i] = fn(kwargs)
        except Exception as e:  # noqa: BLE001 - recorded per run
            e.dislab_traceback = traceback.format_exc()  # type: ignore[attr-defined]
            results[i] = e
        if bar is not None:
            bar.update(1)

    # the pre-encoded runs read their codes from disk: no model on the device is needed
    if workers > 1 and len(pooled) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_init_worker, initargs=(threads,)) as ex:
            futures = {i: ex.submit(_suite, {**jobs[i], "device": "cpu"}) for i in pooled}
            for i, future in futures.items():
                finish(i, lambda _kw, f=future: f.result(), {})
    else:
        for i in pooled:
            finish(i, _suite, {**jobs[i], "device": "cpu"})
    for i in alone:  # not pre-encoded (huge grid, no weights, ...): as evaluate_run alone
        finish(i, _suite, {**jobs[i], "device": device})
    if bar is not None:
        bar.close()
    if errors == "raise":
        for d, r in zip(dirs, results):
            if isinstance(r, BaseException):
                if isinstance(r, DislabError):
                    raise type(r)(f"{d}: {r}") from r
                raise DislabError(f"{d}: {type(r).__name__}: {r}") from r
    return results

