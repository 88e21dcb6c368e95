"""Torch encoding of grid points: a model's codes, fast, on its device.

:func:`encode_rows` runs a model's encoder over chosen grid points of a data set (posterior
means and log-variances) in batches, on the model's device, with a progress bar; :func:`encode_grid`
over the whole grid, into a :class:`~dislab.representation.table.CodeTable`. A lazy table
with :func:`encode_rows` as its encoder encodes only the rows metrics look at, so BetaVAE and
FactorVAE (about 3 million look-ups with dlib's defaults) cost no more encoding than the grid,
and re-scoring a model needs neither the model nor the images.

Speed (``benchmarks/metrics_speed.py`` measures it against a plain eval-mode loop): on CPU
the encoder is traced and frozen with TorchScript (``torch.jit.freeze`` +
``optimize_for_inference``: convolutions fused with their ReLUs on oneDNN), checked against
the eager encoder on the first batch (falling back to eager, channels-last, if tracing fails
or disagrees); batches of 128 (faster than larger batches on CPU); images moved as uint8
and converted to float on the fly; on CPU either one batch at a time on all intra-op
threads or one worker thread per torch thread, each encoding whole batches on one intra-op
thread, whichever a short timing finds faster (the frozen encoder and the choice are kept
for later calls; which wins depends on the CPU). On GPU one batch at a time, the next one
loaded meanwhile. The measurements are in ``docs/metrics.md`` (section on speed).
"""

from __future__ import annotations

import time
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.errors import MetricError
from dislab.representation.table import CodeTable, check_codes
from dislab.threads import torch_threads

__all__ = ["encode_grid", "encode_rows", "model_representation"]


def _device_of(model: Any) -> Any:
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _prepare(model: Any, channels_last: bool) -> Any:
    import torch

    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _batch_to_tensor(batch: np.ndarray, device: Any, channels_last: bool) -> Any:
    import torch

    x = torch.from_numpy(batch).to(device, non_blocking=True)
    x = x.float().mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x.float()
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _split_output(out: Any) -> tuple[Any, Any]:
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out[0], out[1]
    return out, None


#: frozen encoders by module: ``(key, frozen)``, reused while the weights are unchanged
_FROZEN: weakref.WeakKeyDictionary[Any, tuple[tuple, Any]] = weakref.WeakKeyDictionary()


def _weights_key(owner: Any, fn: Callable[[Any], Any], example: Any) -> tuple:
    """What a frozen copy depends on: the encode function, every parameter and buffer (its
    storage and in-place version counter, bumped by optimiser steps and ``load_state_dict``)
    and the example's per-image shape, dtype and device."""
    tensors = list(owner.parameters()) + list(owner.buffers())
    return (getattr(fn, "__func__", fn), owner.training,
            tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors),
            tuple(example.shape[1:]), example.dtype, example.device)


def _frozen_encoder(encode: Callable[[Any], Any], example: Any) -> Callable[[Any], Any] | None:
    """A TorchScript-frozen copy of ``encode`` that agrees with it on ``example``, or None.

    Kept per module and reused while its weights are unchanged (tracing and checking cost
    a small fraction of encoding a grid)."""
    owner = getattr(encode, "__self__", None)
    try:
        key = _weights_key(owner, encode, example)
    except Exception:  # noqa: BLE001 - not a module: no cache
        return _freeze(encode, example)
    hit = _FROZEN.get(owner)
    if hit is not None and hit[0] == key:
        return hit[1]
    frozen = _freeze(encode, example)
    if frozen is not None:
        _FROZEN[owner] = (key, frozen)
    return frozen


def _freeze(encode: Callable[[Any], Any], example: Any) -> Callable[[Any], Any] | None:
    import torch

    class _Encode(torch.nn.Module):
        def __init__(self, fn: Callable[[Any], Any], owner: Any) -> None:
            super().__init__()
            self.owner = owner  # registers the parameters for freezing
            self.fn = fn

        def forward(self, x: Any) -> Any:
            return self.fn(x)

    owner = getattr(encode, "__self__", None)
    if not isinstance(owner, torch.nn.Module):
        return None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(_Encode(encode, owner).eval(), example, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            want = _split_output(encode(example))
            got = _split_output(frozen(example))
            got2 = _split_output(frozen(example[: max(1, len(example) // 2)]))
        for a, b in zip(want, got):
            if (a is None) != (b is None):
                return None
            if a is not None and not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
                return None
        if not torch.allclose(got2[0], want[0][: len(got2[0])], rtol=1e-4, atol=1e-5):
            return None
    except Exception:  # noqa: BLE001 - any tracing failure: use the eager encoder
        return None
    return frozen


def encode_grid(
    model: Any,
    data: GroundTruthData,
    batch_size: int = 128,
    progress: bool = True,
    channels_last: bool = True,
    jit: bool = True,
    device: Any = None,
    workers: int | None = None,
) -> CodeTable:
    """Encode the full grid of ``data`` with ``model.encode`` -> :class:`CodeTable`.

    ``model``: a torch module with ``encode(x) -> (mean, logvar)`` (a dislab
    :class:`~dislab.models.base.Method`) or returning a single code tensor; ``x`` is
    ``(B, *observation_shape)`` float32 in [0, 1]. Row ``i`` of the table holds grid point
    ``i``. Runs on the model's device (or ``device``) in eval mode; ``jit`` and
    ``channels_last`` are the CPU speed-ups described in the module docstring.
    """
    if not isinstance(data, GroundTruthData):
        raise MetricError(f"encode_grid needs a GroundTruthData, got {type(data).__name__}.")
    if len(data) == 0:
        raise MetricError(f"data set {data.name!r} is empty; nothing to encode.")
    mean, logvar = encode_rows(model, data, np.arange(len(data), dtype=np.int64),
                               batch_size=batch_size, progress=progress,
                               channels_last=channels_last, jit=jit, device=device,
                               workers=workers)
    return CodeTable(mean, logvar)


#: Batches per worker that :func:`encode_rows` times each way before choosing (CPU, default).
AUTO_PROBE_BATCHES = 4

#: The way chosen by timing (worker threads, 1 = one batch at a time), per encoder architecture,
#: image shape, batch size and thread count: the process times it once.
_STRATEGY: dict[tuple, int] = {}


def _strategy_key(model: Any, code_dim: int, image_shape: tuple, batch_size: int,
                  threads: int) -> tuple:
    shapes = tuple(tuple(p.shape) for p in model.parameters()) \
        if hasattr(model, "parameters") else ()
    return (type(model).__qualname__, shapes, code_dim, tuple(image_shape), batch_size, threads)


def encode_rows(
    model: Any,
    data: GroundTruthData,
    index: np.ndarray,
    batch_size: int = 128,
    progress: bool = True,
    channels_last: bool = True,
    jit: bool = True,
    device: Any = None,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(mean (n, d), logvar (n, d) or None)`` of grid points ``index (n,)``.

    ``workers``: batches encoded at once by worker threads, each on one intra-op thread;
    1 = one batch at a time on all intra-op threads, the next one loaded meanwhile. Default on
    CPU: both ways are timed on :data:`AUTO_PROBE_BATCHES` x threads batches each and the
    faster encodes the rest (which wins depends on the CPU; the choice is remembered for the
    encoder's architecture, batch size and thread count); on GPU 1.
    """
    import torch

    if batch_size < 1:
        raise MetricError(f"batch_size must be >= 1, got {batch_size}.")
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    n = len(index)
    if n == 0:
        raise MetricError("no points to encode (n = 0).")
    if device is not None:
        model.to(device)
    device = _device_of(model)
    image_like = data.is_image and len(data.observation_shape) == 3
    cpu = device.type == "cpu"

    def load(start: int) -> np.ndarray:
        rows = index[start:start + batch_size]
        return data.images_uint8_from_index(rows) if image_like else data.images_from_index(rows)

    model.eval()
    encode = getattr(model, "encode", model)
    cl = False
    frozen = None
    if jit and cpu and image_like:
        with torch.inference_mode(False):
            frozen = _frozen_encoder(encode, _batch_to_tensor(load(0), device, False))
    if frozen is not None:
        encode = frozen
    elif channels_last and cpu and image_like:
        _prepare(model, True)
        cl = True

    starts = list(range(0, n, batch_size))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"encoding {data.name}", unit="img", smoothing=0.1)

    def encode_batch(start: int, batch: np.ndarray | None = None) -> tuple[Any, Any]:
        with torch.inference_mode():
            m, lv = _split_output(encode(_batch_to_tensor(
                load(start) if batch is None else batch, device, cl)))
            m = m.float().reshape(m.shape[0], -1).cpu().numpy()
            if lv is not None:
                lv = lv.float().reshape(lv.shape[0], -1).cpu().numpy()
        return m, lv

    m0, lv0 = encode_batch(0)
    mean = np.empty((n, m0.shape[1]), dtype=np.float32)
    logvar = np.empty((n, m0.shape[1]), dtype=np.float32) if lv0 is not None else None

    def store(start: int, m: np.ndarray, lv: np.ndarray | None) -> None:
        mean[start:start + len(m)] = m
        if logvar is not None and lv is not None:
            logvar[start:start + len(m)] = lv
        if bar is not None:
            bar.update(len(m))

    store(0, m0, lv0)

    def run_workers(todo: list[int], count: int, loaded: dict | None = None) -> None:
        # one batch per worker thread, each on one intra-op thread
        with torch_threads(1), ThreadPoolExecutor(max_workers=count) as pool:
            def job(start: int) -> None:
                store(start, *encode_batch(start, (loaded or {}).get(start)))
            for fut in [pool.submit(job, st) for st in todo]:
                fut.result()

    def run_single(todo: list[int], loaded: dict | None = None) -> None:
        # one batch at a time on all intra-op threads, the next one loaded meanwhile
        if loaded is not None:
            for start in todo:
                store(start, *encode_batch(start, loaded[start]))
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(load, todo[0]) if todo else None
            for i, start in enumerate(todo):
                assert pending is not None
                batch = pending.result()
                if i + 1 < len(todo):
                    pending = pool.submit(load, todo[i + 1])
                store(start, *encode_batch(start, batch))

    todo = starts[1:]
    if workers is None:
        workers = torch.get_num_threads() if cpu else 1
        probe = AUTO_PROBE_BATCHES * workers
        key = _strategy_key(model, m0.shape[1], data.observation_shape, batch_size, workers)
        if workers > 1 and key in _STRATEGY:
            workers = _STRATEGY[key]
        elif workers > 1 and len(todo) >= 4 * probe:
            # which is faster depends on the CPU (small convolutions split over intra-op
            # threads scale well on some, badly on others): time both on a few batches,
            # loaded beforehand (the first loads can be slow: a renderer's caches) and in
            # alternating halves (so that warming up favours neither)
            loaded = {st: load(st) for st in todo[:2 * probe]}
            half = probe // 2 or 1
            spent = {1: 0.0, workers: 0.0}
            for i, st in enumerate(range(0, 2 * probe, half)):
                way = 1 if i % 2 == 0 else workers
                t0 = time.perf_counter()
                if way == 1:
                    run_single(todo[st:st + half], loaded)
                else:
                    run_workers(todo[st:st + half], workers, loaded)
                spent[way] += time.perf_counter() - t0
            todo = todo[2 * probe:]
            if spent[1] < spent[workers]:
                workers = 1
            _STRATEGY[key] = workers
    if workers > 1 and todo:
        run_workers(todo, workers)
    elif todo:
        run_single(todo)
    if bar is not None:
        bar.close()
    check_codes(mean, f"encoder on {data.name}")
    if logvar is not None:
        check_codes(logvar, f"encoder log-variances on {data.name}")
    return mean, logvar


def model_representation(model: Any, channels_last: bool = True
                         ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A representation function ``images (n, ...) float32 -> (mean, logvar)`` of a model.

    For scoring without a cache (or data sets too large to encode whole).
    """
    import torch

    device = _device_of(model)

    def represent(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cl = channels_last and np.ndim(images) == 4 and device.type == "cpu"
        _prepare(model, cl)
        with torch.inference_mode():
            m, lv = _split_output(getattr(model, "encode", model)(
                _batch_to_tensor(np.asarray(images, dtype=np.float32), device, cl)))
        m = m.float().cpu().numpy()
        return (m, lv.float().cpu().numpy()) if lv is not None else m  # type: ignore[return-value]

    return represent
