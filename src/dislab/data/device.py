"""A data set's full grid held on a torch device, and batches drawn and gathered there.

The host path (:class:`dislab.train.batches.BatchSource`) renders or reads every batch on the
CPU and copies it to the device; at many models per GPU that host work is the bottleneck.
:class:`DeviceGrid` puts every observation of the grid on the device once, as ``uint8``:

* ``"bits"``: binary images (the dSprites family's sprites; any image set whose pixels are
  all 0 or 255) bit-packed along the width, ``(N, C, H, W / 8)`` bytes (the 737 280 dSprites
  images take ``737280 * 64 * 8`` bytes, about 0.38 GB), unpacked on the device;
* ``"uint8"``: other image sets, ``(N, C, H, W)`` bytes;
* ``"float32"``: vector observations ``(N, D)``.

:meth:`DeviceGrid.gather` turns grid indices (a ``LongTensor`` on the device) into float
images in [0, 1] on the device, bit for bit the values of
:meth:`~dislab.data.base.GroundTruthData.images_from_index` (and of the trainer's host
batches). :class:`DeviceBatches` draws a step's indices for ``K`` runs at once on the device,
each run from its own seed: index ``b`` of run ``k`` at step ``t`` is a SplitMix64 hash of
``(seed_k, t * B + b)`` reduced modulo ``N`` (uniform over the grid up to a bias below
``N / 2**63``), so the draw needs no generator state: a resumed run draws the same batches
from its step number alone. These are other batches than the host path's numpy generator
draws; both are i.i.d. uniform over the grid, as disentanglement_lib's input pipeline
(``data/ground_truth/util.py``, ``tf_data_set_from_ground_truth_data``).

Procedural sets are rendered once, in chunks, into the device tensor; the official dSprites
file's bit-packed array is copied as it is; other file-based sets are copied from their arrays
chunk by chunk. :func:`grid_nbytes` says how much device memory a grid needs; a grid that does
not fit gets one clear error before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dislab.data.base import DataError, GroundTruthData

__all__ = ["DeviceGrid", "DeviceBatches", "grid_nbytes", "grid_mode", "splitmix64"]

#: Share of the device's free memory a grid may take (the models, their optimiser states and
#: activations need the rest).
MAX_FREE_FRACTION = 0.8

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _signed(x: int) -> int:
    """A 64-bit unsigned constant as the int64 with the same bits (torch has no uint64 ops)."""
    return x - (1 << 64) if x >= 1 << 63 else x


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (``>>`` on int64 is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 bit patterns (Steele, Lea & Flood 2014, "Fast
    splittable pseudorandom number generators"), wrapping modulo 2**64 like uint64."""
    z = x + _signed(_GOLDEN)
    z = (z ^ _shr(z, 30)) * _signed(_MIX1)
    z = (z ^ _shr(z, 27)) * _signed(_MIX2)
    return z ^ _shr(z, 31)


def grid_mode(data: GroundTruthData, packed: bool | str = "auto") -> str:
    """How ``data`` is stored on the device: ``"bits"``, ``"uint8"`` or ``"float32"``.

    ``packed="auto"``: bits for binary-sprite sets (those with ``binary_from_index``, the
    dSprites family's base sets) whose width is a multiple of 8; ``True`` asks for bits on any
    image set (checked while filling: every pixel must be 0 or 255); ``False``: bytes."""
    if not data.is_image:
        return "float32"
    width = int(data.observation_shape[-1])
    if packed == "auto":
        packed = hasattr(data, "binary_from_index") and width % 8 == 0
    if packed and width % 8:
        raise DataError(f"{data.name}: bit-packing needs an image width divisible by 8, got "
                        f"{width}; use packed=False.")
    return "bits" if packed else "uint8"


def grid_nbytes(data: GroundTruthData, packed: bool | str = "auto") -> int:
    """Bytes the full grid of ``data`` takes on the device (see :func:`grid_mode`)."""
    mode = grid_mode(data, packed)
    per = int(np.prod(data.observation_shape))
    per = per // 8 if mode == "bits" else per * (4 if mode == "float32" else 1)
    return len(data) * per


def _free_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` (CUDA: the driver's count; CPU: available RAM), or None."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            import os

            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


class DeviceGrid:
    """The full grid of a data set on a device (build it with :meth:`from_data`).

    ``storage``: ``(N, C, H, W // 8)`` uint8 (``mode="bits"``, ``np.packbits`` order: the
    first pixel in the high bit), ``(N, C, H, W)`` uint8 (``"uint8"``) or ``(N, D)`` float32
    (``"float32"``); row ``i`` is grid point ``i``.
    """

    def __init__(self, storage: torch.Tensor, observation_shape: Sequence[int], mode: str,
                 name: str = "data") -> None:
        if mode not in ("bits", "uint8", "float32"):
            raise DataError(f"DeviceGrid mode must be 'bits', 'uint8' or 'float32', not {mode!r}.")
        self.storage = storage
        self.observation_shape = tuple(int(s) for s in observation_shape)
        self.mode = mode
        self.name = name
        self.device = storage.device
        # shifts that unpack a byte, high bit first (np.packbits' default order)
        self._shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=self.device)
        # the value of a set pixel exactly as the host computes 255 / 255 in float32
        self._one = (torch.full((1,), 255, dtype=torch.uint8, device=self.device)
                     .to(torch.float32).mul_(1.0 / 255.0))

    # -- building ----------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: GroundTruthData, device: str | torch.device = "cuda",
                  packed: bool | str = "auto", chunk: int = 16384, progress: bool = True,
                  max_fraction: float = MAX_FREE_FRACTION) -> DeviceGrid:
        """Render (procedural sets) or copy (file-based sets) every grid point of ``data``
        onto ``device``, ``chunk`` points at a time.

        Raises :class:`~dislab.data.DataError` when the grid needs more than ``max_fraction``
        of the device's free memory, when ``data`` draws new randomness at every call
        (``fresh=True`` variants: an image is not a function of its grid point), or when it
        samples factors from a non-uniform joint (the device draw is uniform)."""
        device = torch.device(device)
        if getattr(data, "fresh", False):
            raise DataError(f"{data.name}: fresh=True draws new randomness at every call, so "
                            "an image is not a function of its grid point and the grid cannot "
                            "be stored once; use fresh=False (the default) or train on the "
                            "host path (device cpu).")
        if getattr(data, "_sampler", None) is not None:
            raise DataError(f"{data.name}: a custom factor sampler is set; the device grid "
                            "draws grid points uniformly. Train on the host path (device cpu) "
                            "or remove the sampler.")
        if len(data) == 0:
            raise DataError(f"{data.name}: the data set is empty.")
        mode = grid_mode(data, packed)
        need = grid_nbytes(data, packed)
        free = _free_bytes(device)
        if free is not None and need > max_fraction * free:
            raise DataError(
                f"{data.name}: its grid of {len(data):,} observations needs {_gib(need)} on "
                f"{device}, but only {_gib(free)} are free ({max_fraction:.0%} may be used). "
                "Use a smaller grid (the data set's options, e.g. dSprites' subset), fewer "
                "models per pack, or the host path (device cpu).")
        shape = tuple(int(s) for s in data.observation_shape)
        n = len(data)
        if mode == "bits":
            store_shape: tuple[int, ...] = (n, shape[0], shape[1], shape[2] // 8)
            dtype = torch.uint8
        elif mode == "uint8":
            store_shape, dtype = (n, *shape), torch.uint8
        else:
            store_shape, dtype = (n, *shape), torch.float32
        storage = torch.empty(store_shape, dtype=dtype, device=device)
        file_bits = getattr(data, "_packed", None)
        if (mode == "bits" and isinstance(file_bits, np.ndarray) and file_bits.dtype == np.uint8
                and file_bits.shape == (n, shape[1], shape[2] // 8) and shape[0] == 1):
            # the official dSprites file is kept bit-packed in the same order: copy it as is
            for s in range(0, n, max(chunk, 1 << 18)):
                part = torch.from_numpy(np.ascontiguousarray(file_bits[s:s + max(chunk, 1 << 18)]))
                storage[s:s + len(part), 0].copy_(part)
            return cls(storage, shape, mode, data.name)
        starts: Any = range(0, n, chunk)
        if progress and n > chunk:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"{data.name}: grid to {device}", unit="chunk")
        for s in starts:
            idx = np.arange(s, min(s + chunk, n), dtype=np.int64)
            if mode == "float32":
                block = data.images_from_index(idx)
            else:
                block = data.images_uint8_from_index(idx)
                if mode == "bits":
                    if not np.isin(block, (0, 255)).all():
                        raise DataError(f"{data.name}: packed=True needs binary images (every "
                                        f"pixel 0 or 255); grid points {s}..{s + len(idx) - 1} "
                                        "have other values. Use packed=False.")
                    block = np.packbits(block > 127, axis=-1)
            storage[s:s + len(idx)].copy_(torch.from_numpy(np.ascontiguousarray(block)))
        return cls(storage, shape, mode, data.name)

    # -- reading -----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.storage.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held on the device."""
        return int(self.storage.numel() * self.storage.element_size())

    def _check_index(self, index: torch.Tensor) -> torch.Tensor:
        if not isinstance(index, torch.Tensor):
            index = torch.as_tensor(np.asarray(index, dtype=np.int64))
        if index.dtype != torch.long:
            raise DataError(f"DeviceGrid.gather needs int64 grid indices, got {index.dtype}.")
        return index.to(self.device, non_blocking=True)

    def _unpack(self, rows: torch.Tensor) -> torch.Tensor:
        """0/1 pixels ``(n, *observation_shape)`` (uint8) of bit-packed rows ``(n, bytes)``."""
        bits = (rows.unsqueeze(-1) >> self._shifts) & 1
        return bits.reshape(rows.shape[0], *self.observation_shape)

    def gather_uint8(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 images ``(*index.shape, C, H, W)`` (0..255) of grid points ``index``."""
        if self.mode == "float32":
            raise DataError(f"{self.name}: vector observations have no uint8 form; use gather.")
        index = self._check_index(index)
        rows = self.storage[index.reshape(-1)]
        if self.mode == "bits":
            rows = self._unpack(rows).mul_(255)
        return rows.reshape(*index.shape, *self.observation_shape)

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        """Float32 observations ``(*index.shape, *observation_shape)`` in [0, 1] of grid
        points ``index`` (int64, any shape; moved to the grid's device), computed there."""
        index = self._check_index(index)
        rows = self.storage[index.reshape(-1)]
        if self.mode == "float32":
            out = rows
        elif self.mode == "bits":
            out = self._unpack(rows).to(torch.float32).mul_(self._one)
        else:
            out = rows.to(torch.float32).mul_(1.0 / 255.0)
        return out.reshape(*index.shape, *self.observation_shape)

    def __repr__(self) -> str:
        return (f"<DeviceGrid {self.name!r} {len(self):,} x {self.observation_shape} "
                f"{self.mode} on {self.device}, {_gib(self.nbytes)}>")


class DeviceBatches:
    """Grid indices of a step's batches for ``K`` runs at once, drawn on ``device``.

    ``seeds``: one per run (its config's seed); ``indices(step)`` -> ``(K, batch_size)``
    int64 on ``device``, a function of ``(seeds, step)`` only (see the module docstring), so
    there is no state to save or restore. ``size`` is the grid's number of points.
    """

    def __init__(self, seeds: Sequence[int], batch_size: int, size: int,
                 device: str | torch.device = "cpu") -> None:
        if batch_size < 1 or size < 1 or not len(seeds):
            raise DataError("DeviceBatches needs at least one seed, batch_size >= 1 and a "
                            f"non-empty grid (got {len(seeds)} seeds, batch_size {batch_size}, "
                            f"size {size}).")
        self.device = torch.device(device)
        self.batch_size, self.size = int(batch_size), int(size)
        keys = torch.tensor([_signed(int(s) % (1 << 64)) for s in seeds], dtype=torch.long)
        # one key per run, itself hashed so that nearby seeds give unrelated streams
        self._keys = splitmix64(keys).to(self.device).unsqueeze(1)  # (K, 1)
        self._offsets = torch.arange(self.batch_size, dtype=torch.long, device=self.device)

    def __len__(self) -> int:
        return int(self._keys.shape[0])

    def indices(self, step: int) -> torch.Tensor:
        """``(K, batch_size)`` grid indices of step ``step`` (0-based)."""
        counter = self._offsets + int(step) * self.batch_size  # (B,)
        h = splitmix64(self._keys ^ splitmix64(counter).unsqueeze(0))  # (K, B)
        return _shr(h, 1) % self.size

