"""MPI3D (Gondal et al. 2019): toy, realistic and real, from the official ``.npz`` files.

Factors (C order of the files; disentanglement_lib ``data/ground_truth/mpi3d.py``):

====================  =========================  ======================
factor                toy / realistic            real
====================  =========================  ======================
object_color          4                          6
object_shape          4                          6
object_size           2                          2
camera_height         3                          3
background_color      3                          3
horizontal_axis       40 (first DOF)             40
vertical_axis         40 (second DOF)            40
====================  =========================  ======================

Images: key ``images``, ``(N, 64, 64, 3)`` uint8 (460,800 images for toy/realistic,
1,036,800 for real); observations here are channels-first ``(3, 64, 64)``.
There is no procedural version: pass the file with ``path=`` (Python) or ``--path`` (CLI).
Files are read with ``allow_pickle=False``. A ``.npy`` file holding the same array is also
accepted and memory-mapped (no RAM copy). ``factor_sizes=`` overrides the grid (for small
test files, or the sub-sampled variants), and must multiply to ``N``.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, register

__all__ = ["MPI3D", "FACTOR_NAMES", "FACTOR_SIZES", "URLS"]

FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height",
                "background_color", "horizontal_axis", "vertical_axis")
FACTOR_SIZES = {
    "mpi3d_toy": (4, 4, 2, 3, 3, 40, 40),
    "mpi3d_realistic": (4, 4, 2, 3, 3, 40, 40),
    "mpi3d_real": (6, 6, 2, 3, 3, 40, 40),
}
#: Where the official files are published (github.com/rr-learning/disentanglement_dataset).
URLS = {
    mode: f"https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/{mode}.npz"
    for mode in FACTOR_SIZES
}


class MPI3D(GroundTruthData):
    """An MPI3D variant (``mode`` in ``mpi3d_toy``, ``mpi3d_realistic``, ``mpi3d_real``)."""

    factor_names = FACTOR_NAMES
    observation_shape = (3, 64, 64)
    source = "file"

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        mode: str = "mpi3d_toy",
        factor_sizes: Sequence[int] | None = None,
    ) -> None:
        if mode not in FACTOR_SIZES:
            raise DataError(f"mpi3d: unknown mode {mode!r}; use one of {sorted(FACTOR_SIZES)}.")
        self.name = mode
        if path is None:
            raise DataError(
                f"{mode}: no procedural version exists; download the official file "
                f"({URLS[mode]}, see https://github.com/rr-learning/disentanglement_dataset) "
                f"and pass its path: dislab.data.load({mode!r}, path='{mode}.npz') or "
                f"`--data {mode} --path {mode}.npz` on the command line."
            )
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise DataError(
                f"{mode}: file not found: {self.path!r}. Download {URLS[mode]} and pass the "
                "path of the downloaded .npz (path= / --path)."
            )
        images = self._read(self.path)
        if (images.ndim != 4 or tuple(images.shape[1:]) != (64, 64, 3)
                or images.dtype != np.uint8):
            raise DataError(
                f"{mode}: {self.path!r}: 'images' has shape {images.shape} dtype {images.dtype};"
                " expected (N, 64, 64, 3) uint8 as in the official file."
            )
        sizes = tuple(int(s) for s in (factor_sizes or FACTOR_SIZES[mode]))
        if len(sizes) != len(FACTOR_NAMES) or min(sizes) < 1:
            raise DataError(
                f"{mode}: factor_sizes must be {len(FACTOR_NAMES)} positive integers for "
                f"{list(FACTOR_NAMES)}, got {list(sizes)}."
            )
        if math.prod(sizes) != images.shape[0]:
            raise DataError(
                f"{mode}: {self.path!r} holds {images.shape[0]} images but the grid "
                f"{dict(zip(FACTOR_NAMES, sizes))} has {math.prod(sizes)}; is this the right "
                "variant (toy/realistic: 460800 images, real: 1036800)? Otherwise pass "
                "factor_sizes=."
            )
        self.factor_sizes = sizes
        self._images = images

    @staticmethod
    def _read(path: str) -> np.ndarray:
        with open(path, "rb") as fh:
            head = fh.read(6)
        if head[:4] != b"PK\x03\x04" and head != b"\x93NUMPY":
            raise DataError(
                f"mpi3d: {path!r} is not a readable .npz/.npy file (it starts with {head!r}); "
                "pass the official MPI3D .npz."
            )
        try:
            if head == b"\x93NUMPY":
                return np.load(path, mmap_mode="r", allow_pickle=False)
            with np.load(path, allow_pickle=False) as f:
                if "images" not in f.files:
                    raise DataError(
                        f"mpi3d: {path!r} has keys {sorted(f.files)} but no 'images'; the "
                        "official MPI3D .npz holds 'images' (N, 64, 64, 3) uint8."
                    )
                return f["images"]
        except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as e:
            raise DataError(
                f"mpi3d: {path!r} is not a readable .npz/.npy file: damaged or cut short "
                f"({type(e).__name__}: {e}); download the official MPI3D file again.") from e
        except ValueError as e:  # object arrays need pickle: refuse
            raise DataError(f"mpi3d: {path!r} cannot be read without unpickling ({e}).") from e

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        if isinstance(self._images, np.memmap):
            uniq, inv = np.unique(index, return_inverse=True)
            out = np.asarray(self._images[uniq])[inv.reshape(-1)]
        else:
            out = self._images[index]
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _factory(mode: str):
    def load(path: str | None = None, **options: Any) -> MPI3D:
        bad = sorted(set(options) - {"factor_sizes"})
        if bad:
            raise DataError(f"{mode}: unknown option(s) {bad}; valid options: ['factor_sizes'].")
        return MPI3D(path, mode=mode, **options)

    load.__doc__ = f"{mode} (official .npz file needed)."
    return load


for _mode, _desc in (
    ("mpi3d_toy", "MPI3D toy (simulated, simple): 7 factors, official .npz needed"),
    ("mpi3d_realistic", "MPI3D realistic (simulated, realistic): 7 factors, official .npz needed"),
    ("mpi3d_real", "MPI3D real (robot platform photos): 7 factors, official .npz needed"),
):
    register(_mode, _desc, MPI3D)(_factory(_mode))
