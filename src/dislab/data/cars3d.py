"""Cars3D (Reed et al. 2015) from the official ``.mat`` files.

``path`` is the directory of the official files (``car_001_mesh.mat`` ...; from
http://www.scottreed.info/files/nips2015-analogy-data.tar.gz, folder ``data/cars``). Each file
holds ``im`` of shape (128, 128, 3, 24, 4): (height, width, RGB, azimuth, elevation), uint8.

Factors (disentanglement_lib ``data/ground_truth/cars3d.py``): elevation 4, azimuth 24, object = one
value per file (183 in the official set; the number of ``.mat`` files found otherwise). Object ids
follow the **sorted** file names, so they are the same on every file system (disentanglement_lib
uses the unsorted directory listing, whose order depends on the file system). Images are resized
128 -> 64 with Pillow's LANCZOS filter (formerly ANTIALIAS) and are ``(3, 64, 64)``.
``num_objects=`` makes the loader check the number of files (e.g. 183).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, register

__all__ = ["Cars3D", "FACTOR_NAMES"]

FACTOR_NAMES = ("elevation", "azimuth", "object")
URL = "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"


def _to_uint8(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(x)) <= 1.0 else 1.0
        return np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)
    if x.dtype.kind in "iu":
        return np.clip(x, 0, 255).astype(np.uint8)
    raise DataError(f"cars3d: {name!r}: 'im' has dtype {x.dtype}; expected uint8 images.")


class Cars3D(GroundTruthData):
    """Cars3D: elevation 4, azimuth 24, object (one per file); images (3, 64, 64)."""

    name = "cars3d"
    factor_names = FACTOR_NAMES
    observation_shape = (3, 64, 64)
    source = "file"

    def __init__(
        self,
        path: str | os.PathLike[str],
        num_objects: int | None = None,
        progress: bool = True,
    ) -> None:
        import scipy.io
        from PIL import Image

        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise DataError(
                f"cars3d: {self.path!r} is not a directory. Download {URL}, unpack it and pass "
                "the folder holding the car_*_mesh.mat files (path= / --path)."
            )
        files = sorted(f for f in os.listdir(self.path) if f.endswith(".mat"))
        if not files:
            raise DataError(
                f"cars3d: no .mat files in {self.path!r}. Pass the folder of the official "
                f"car_*_mesh.mat files (from {URL}, folder data/cars)."
            )
        if num_objects is not None and len(files) != int(num_objects):
            raise DataError(
                f"cars3d: found {len(files)} .mat files in {self.path!r} but num_objects="
                f"{num_objects} (the official set has 183); check the folder."
            )
        self.files = tuple(files)
        self.factor_sizes = (4, 24, len(files))
        images = np.empty((4, 24, len(files), 64, 64, 3), np.uint8)
        it = enumerate(files)
        if progress and len(files) > 20:
            from tqdm.auto import tqdm

            it = tqdm(it, total=len(files), desc="cars3d: reading", unit="file")
        for obj, fname in it:
            full = os.path.join(self.path, fname)
            try:
                mat = scipy.io.loadmat(full)
            except Exception as e:  # scipy raises several types for a bad file
                raise DataError(f"cars3d: cannot read {full!r} as a .mat file ({e}).") from e
            if "im" not in mat:
                keys = sorted(k for k in mat if not k.startswith("__"))
                raise DataError(
                    f"cars3d: {full!r} has no 'im' (keys {keys}); the official files hold 'im' "
                    "of shape (128, 128, 3, 24, 4)."
                )
            im = np.asarray(mat["im"])
            if im.ndim != 5 or im.shape[2:] != (3, 24, 4):
                raise DataError(
                    f"cars3d: {full!r}: 'im' has shape {im.shape}; expected (H, W, 3, 24, 4) "
                    "(official: (128, 128, 3, 24, 4))."
                )
            im = _to_uint8(im, full)
            for az in range(24):
                for el in range(4):
                    pic = Image.fromarray(np.ascontiguousarray(im[:, :, :, az, el]))
                    images[el, az, obj] = np.asarray(pic.resize((64, 64), Image.LANCZOS))
        self._images = images.reshape(-1, 64, 64, 3)

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._images[index].transpose(0, 3, 1, 2))


@register("cars3d", "Cars3D: elevation, azimuth, object (official .mat files)", Cars3D)
def _load_cars3d(path: str | None = None, **options: Any) -> Cars3D:
    if path is None:
        raise DataError(
            f"cars3d: no procedural version exists; download {URL}, unpack it and pass the "
            "folder of car_*_mesh.mat files: dislab.data.load('cars3d', path='data/cars') or "
            "`--path data/cars`."
        )
    bad = sorted(set(options) - {"num_objects", "progress"})
    if bad:
        raise DataError(f"cars3d: unknown option(s) {bad}; valid options: "
                        "['num_objects', 'progress'].")
    return Cars3D(path, **options)
