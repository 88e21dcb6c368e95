"""The representation cache: encode every grid point once, then score by look-up.

:func:`encode_grid` runs a model's encoder over the full factor grid of a data set (posterior
mean and log-variance) in large batches, on the model's device, with a progress bar, and
returns a :class:`~dislab.metrics.base.CodeTable`. Every metric then looks codes up by grid
index, so BetaVAE and FactorVAE (about 3 million encodings with dlib's defaults) cost no
encoding at all, and re-scoring a model needs neither the model nor the images.

Speed (``benchmarks/metrics_speed.py`` measures it against a plain eval-mode loop):
``torch.inference_mode``, channels-last memory format for convolutions, batches of 1024,
images moved as uint8 and converted to float on the fly, and the next batch rendered or
read in a background thread while the current one is encoded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import CodeTable, MetricError, check_codes

__all__ = ["encode_grid", "model_representation", "file_sha256", "load_or_encode"]


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


def encode_grid(
    model: Any,
    data: GroundTruthData,
    batch_size: int = 1024,
    progress: bool = True,
    channels_last: bool = True,
    device: Any = None,
) -> CodeTable:
    """Encode the full grid of ``data`` with ``model.encode`` -> :class:`CodeTable`.

    ``model``: a torch module with ``encode(x) -> (mean, logvar)`` (a dislab
    :class:`~dislab.models.base.Method`) or returning a single code tensor; ``x`` is
    ``(B, *observation_shape)`` float32 in [0, 1]. Row ``i`` of the table holds grid point
    ``i``. Runs on the model's device (or ``device``) in eval mode.
    """
    import torch

    if not isinstance(data, GroundTruthData):
        raise MetricError(f"encode_grid needs a GroundTruthData, got {type(data).__name__}.")
    if batch_size < 1:
        raise MetricError(f"batch_size must be >= 1, got {batch_size}.")
    if device is not None:
        model.to(device)
    device = _device_of(model)
    image_like = data.is_image and len(data.observation_shape) == 3
    cl = channels_last and image_like and device.type == "cpu"
    _prepare(model, cl)
    encode = getattr(model, "encode", model)
    n = len(data)

    def load(start: int) -> np.ndarray:
        index = np.arange(start, min(start + batch_size, n), dtype=np.int64)
        if image_like:
            return data.images_uint8_from_index(index)
        return data.images_from_index(index)

    starts = list(range(0, n, batch_size))
    mean = logvar = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"encoding {data.name}", unit="img", smoothing=0.1)
    with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode():
        pending = pool.submit(load, starts[0]) if starts else None
        for i, start in enumerate(starts):
            batch = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(load, starts[i + 1])
            m, lv = _split_output(encode(_batch_to_tensor(batch, device, cl)))
            m = m.float().reshape(m.shape[0], -1).cpu().numpy()
            if mean is None:
                mean = np.empty((n, m.shape[1]), dtype=np.float32)
                if lv is not None:
                    logvar = np.empty((n, m.shape[1]), dtype=np.float32)
            mean[start:start + len(m)] = m
            if logvar is not None and lv is not None:
                logvar[start:start + len(m)] = lv.float().reshape(lv.shape[0], -1).cpu().numpy()
            if bar is not None:
                bar.update(len(m))
    if bar is not None:
        bar.close()
    if mean is None:
        raise MetricError(f"data set {data.name!r} is empty; nothing to encode.")
    check_codes(mean, f"encoder on {data.name}")
    return CodeTable(mean, logvar)


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
    """The code table at ``path`` if its ``meta`` matches, else ``encode()`` and save it.

    Returns ``(table, reused)``. A table that does not match (other weights, other data set,
    other size) is re-encoded and replaced.
    """
    path = Path(path)
    if path.exists() and not force:
        try:
            table = CodeTable.load(str(path))
        except MetricError:
            table = None
        if table is not None and table.meta == meta and len(table) == len(data):
            return table, True
    table = encode()
    table.meta = meta
    table.save(str(path))
    return table, False
