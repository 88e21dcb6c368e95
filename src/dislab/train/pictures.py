"""Image grids of a model: reconstructions and latent traversals, PNG / GIF files.

The training loop writes them into a run folder (``images/``, TensorBoard) and the run report
(:mod:`dislab.viz`) draws its figures with them, so they live here, below both layers.

All grids are ``uint8`` numpy arrays of shape ``(H, W, 3)`` (grey images are repeated into
three channels), ready for :func:`save_png`, TensorBoard (``dataformats="HWC"``) or matplotlib.
Inputs are channels-first float images in [0, 1], ``(n, C, H, W)``, as everywhere in dislab.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "image_grid",
    "reconstruction_grid",
    "traversal_grid",
    "traversal_frames",
    "save_png",
    "save_gif",
]


def _to_hwc_uint8(images: np.ndarray) -> np.ndarray:
    """``(n, C, H, W)`` float [0, 1] (or uint8) -> ``(n, H, W, 3)`` uint8."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (n, C, H, W), got {x.shape}")
    if x.dtype != np.uint8:
        x = np.clip(np.rint(np.nan_to_num(x.astype(np.float32)) * 255.0), 0, 255)
        x = x.astype(np.uint8)
    x = np.transpose(x, (0, 2, 3, 1))
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] != 3:
        x = np.repeat(x[..., :1], 3, axis=-1)
    return x


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2,
               pad_value: int = 255) -> np.ndarray:
    """Tile ``(n, C, H, W)`` images row by row into one ``(rows·(H+pad)+pad, …, 3)`` uint8
    array with ``ncol`` columns (default: ``ceil(sqrt(n))``) and ``pad`` pixels between."""
    x = _to_hwc_uint8(images)
    n, h, w, _ = x.shape
    ncol = int(ncol or max(1, int(np.ceil(np.sqrt(n)))))
    nrow = int(np.ceil(n / ncol))
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h,
            pad + c * (w + pad): pad + c * (w + pad) + w] = x[i]
    return out


def _decode(model: Any, z: Any) -> np.ndarray:
    import torch

    with torch.no_grad():
        if hasattr(model, "decode_images"):
            out = model.decode_images(z)
        else:
            out = torch.sigmoid(model.decode(z))
    return out.float().cpu().numpy()


def _model_device(model: Any) -> Any:
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def reconstruction_grid(model: Any, images: np.ndarray, ncol: int = 8) -> np.ndarray:
    """Originals and reconstructions (decoded posterior means) in alternating rows.

    ``images``: ``(n, C, H, W)`` float [0, 1]; row 2k holds originals ``k·ncol …``, row 2k+1
    their reconstructions ``sigmoid(decode(mean))``. Returns a uint8 ``(H', W', 3)`` grid.
    """
    import torch

    x = np.asarray(images, dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            mean = model.encode(torch.from_numpy(x).to(_model_device(model)))[0]
            recon = _decode(model, mean)
    finally:
        model.train(was_training)
    recon = recon.reshape(x.shape)
    rows = []
    for start in range(0, len(x), ncol):
        chunk = slice(start, start + ncol)
        orig, rec = x[chunk], recon[chunk]
        if len(orig) < ncol:  # pad the last row with blanks
            blank = np.ones((ncol - len(orig), *x.shape[1:]), np.float32)
            orig, rec = np.concatenate([orig, blank]), np.concatenate([rec, blank])
        rows.extend([orig, rec])
    return image_grid(np.concatenate(rows), ncol=ncol)


def _traversal_codes(model: Any, image: np.ndarray, dims: Sequence[int] | None,
                     values: np.ndarray) -> tuple[Any, list[int]]:
    import torch

    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            mean = model.encode(torch.from_numpy(x[:1]).to(_model_device(model)))[0][0]
    finally:
        model.train(was_training)
    d = int(mean.shape[0])
    dims = list(range(d)) if dims is None else [int(i) for i in dims]
    return mean, dims


def traversal_grid(model: Any, image: np.ndarray, dims: Sequence[int] | None = None,
                   n_steps: int = 10, limit: float = 2.0) -> np.ndarray:
    """Latent traversals: row ``i`` decodes the posterior mean of ``image`` with latent
    ``dims[i]`` replaced by ``n_steps`` values evenly spaced in ``[-limit, limit]`` (the prior's
    ±2 standard deviations by default). ``image``: ``(C, H, W)`` or ``(1, C, H, W)``."""
    import torch

    values = np.linspace(-limit, limit, n_steps, dtype=np.float32)
    mean, dims = _traversal_codes(model, image, dims, values)
    z = mean.repeat(len(dims) * n_steps, 1).view(len(dims), n_steps, -1).clone()
    for r, i in enumerate(dims):
        z[r, :, i] = torch.from_numpy(values).to(z)
    was_training = model.training
    model.eval()
    try:
        out = _decode(model, z.view(len(dims) * n_steps, -1))
    finally:
        model.train(was_training)
    return image_grid(out, ncol=n_steps)


def traversal_frames(model: Any, image: np.ndarray, dims: Sequence[int] | None = None,
                     n_frames: int = 20, limit: float = 2.0, ncol: int | None = None
                     ) -> list[np.ndarray]:
    """Frames of an animated traversal: frame ``t`` shows, for every latent in ``dims``, the
    image decoded with that latent at the t-th value of a ``-limit → limit → -limit`` sweep."""
    import torch

    up = np.linspace(-limit, limit, max(2, n_frames // 2), dtype=np.float32)
    values = np.concatenate([up, up[::-1][1:-1]])
    mean, dims = _traversal_codes(model, image, dims, values)
    frames = []
    was_training = model.training
    model.eval()
    try:
        for v in values:
            z = mean.repeat(len(dims), 1).clone()
            for r, i in enumerate(dims):
                z[r, i] = float(v)
            frames.append(image_grid(_decode(model, z.to(torch.float32)),
                                     ncol=ncol or len(dims)))
    finally:
        model.train(was_training)
    return frames


def save_png(array: np.ndarray, path: str | os.PathLike[str], scale: int = 1) -> Path:
    """Save a ``(H, W, 3)`` / ``(H, W)`` uint8 array as PNG (nearest-neighbour ``scale``-up)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
    return path


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike[str],
             duration_ms: int = 100, scale: int = 1) -> Path:
    """Save uint8 frames as a looping GIF."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imgs = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    if scale != 1:
        imgs = [i.resize((i.width * scale, i.height * scale), Image.NEAREST) for i in imgs]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0)
    return path
