"""smallNORB (LeCun et al. 2004) from the official binary ``.mat`` files.

``path`` is the directory holding the six official files (``.mat`` or still gzipped
``.mat.gz``), from https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/ ::

    smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat
    smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat

Format ("binary matrix", little endian): int32 magic (507333717 = 0x1E3D4C55 unsigned bytes,
507333716 int32, 507333713 float32, 507333715 float64, 507333718 int16), int32 ``ndim``, then
``max(3, ndim)`` int32 dimensions (unused ones are 1), then the data in C order.
``dat`` is (N, 2, 96, 96) bytes (stereo pair), ``cat`` (N,) int32 category, ``info`` (N, 4)
int32 (instance, elevation, azimuth 0, 2, ..., 34, lighting).

As in disentanglement_lib (``data/ground_truth/norb.py``): training and testing chunks are pooled
(48,600 images), only the left camera is used, images are resized to 64x64 with Pillow's LANCZOS
filter (the filter formerly called ANTIALIAS), the azimuth label is halved and the factors are
category 5, elevation 9, azimuth 18, lighting 6 (``observation_shape`` (1, 64, 64)). The bytes are
read as *unsigned* (the format's byte matrix).

The object instance (10 per category) is a nuisance: each factor vector has ~10 images.
``instance="fixed"`` (default) picks one of them by a fixed hash of the flat index, so the
image is a deterministic function of the factors; ``instance="random"`` draws it at every call
(disentanglement_lib's behaviour, seeded by ``seed``); an ``int`` always uses that instance.
The grid sizes are read from the labels (max value + 1), so small files in the same format work.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, register

__all__ = ["SmallNORB", "read_binary_matrix", "MAGIC", "FILES"]

#: magic number -> element dtype of the binary matrix format.
MAGIC = {
    507333717: np.dtype("u1"),
    507333716: np.dtype("<i4"),
    507333713: np.dtype("<f4"),
    507333715: np.dtype("<f8"),
    507333718: np.dtype("<i2"),
}
FILES = {
    "training": "smallnorb-5x46789x9x18x6x2x96x96-training-{}.mat",
    "testing": "smallnorb-5x01235x9x18x6x2x96x96-testing-{}.mat",
}
FACTOR_NAMES = ("category", "elevation", "azimuth", "lighting")
CATEGORY_NAMES = ("animal", "human", "airplane", "truck", "car")
URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"


def _open(path: str) -> bytes:
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    if os.path.isfile(path + ".gz"):
        try:
            with gzip.open(path + ".gz", "rb") as f:
                return f.read()
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise DataError(
                f"smallnorb: {path + '.gz'!r} is damaged or truncated ({type(e).__name__}: "
                f"{e}); download it again from {URL}."
            ) from None
    raise DataError(
        f"smallnorb: file not found: {path!r} (nor {os.path.basename(path)}.gz). Download the "
        f"six smallNORB files from {URL} into one directory and pass that directory "
        "(path= / --path)."
    )


def read_binary_matrix(path: str) -> np.ndarray:
    """Read one NORB binary-matrix file (``path`` or ``path + '.gz'``) into an array."""
    raw = _open(path)
    if len(raw) < 20:
        raise DataError(f"smallnorb: {path!r} is too short to be a NORB binary matrix.")
    magic, ndim = (int(v) for v in np.frombuffer(raw, "<i4", count=2))
    if magic not in MAGIC:
        raise DataError(
            f"smallnorb: {path!r} starts with magic number {magic}, which is not a NORB binary "
            f"matrix ({sorted(MAGIC)}); is it the unzipped official file?"
        )
    if not 1 <= ndim <= 16:
        raise DataError(f"smallnorb: {path!r} has an invalid number of dimensions ({ndim}).")
    nd = max(3, ndim)
    dims = tuple(int(v) for v in np.frombuffer(raw, "<i4", count=nd, offset=8))[:ndim]
    dtype = MAGIC[magic]
    offset = 8 + 4 * nd
    count = int(np.prod(dims))
    if len(raw) - offset != count * dtype.itemsize:
        raise DataError(
            f"smallnorb: {path!r}: header says shape {dims} of {dtype} "
            f"({count * dtype.itemsize} bytes) but the file holds {len(raw) - offset} bytes "
            "after the header; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype, count=count, offset=offset).reshape(dims)


def _resize64(images: np.ndarray, progress: bool) -> np.ndarray:
    from PIL import Image

    out = np.empty((images.shape[0], 64, 64), np.uint8)
    rows = range(images.shape[0])
    if progress and images.shape[0] > 5000:
        from tqdm.auto import tqdm

        rows = tqdm(rows, desc="smallnorb: resizing to 64x64", unit="img", mininterval=1.0)
    for i in rows:
        out[i] = np.asarray(Image.fromarray(images[i]).resize((64, 64), Image.LANCZOS))
    return out


class SmallNORB(GroundTruthData):
    """smallNORB: category 5, elevation 9, azimuth 18, lighting 6; images (1, 64, 64).

    ``chunks`` selects the official files to pool (default both, as disentanglement_lib).
    """

    name = "smallnorb"
    factor_names = FACTOR_NAMES
    observation_shape = (1, 64, 64)
    source = "file"

    def __init__(
        self,
        path: str | os.PathLike[str],
        instance: str | int = "fixed",
        seed: int = 0,
        chunks: tuple[str, ...] = ("training", "testing"),
        progress: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise DataError(
                f"smallnorb: {self.path!r} is not a directory. Pass the directory holding the six "
                f"official smallNORB .mat files (from {URL})."
            )
        bad = [c for c in chunks if c not in FILES]
        if bad or not chunks:
            raise DataError(f"smallnorb: chunks must be among {sorted(FILES)}, got {chunks}.")
        dats, labels = [], []
        for chunk in chunks:
            name = os.path.join(self.path, FILES[chunk])
            dat = read_binary_matrix(name.format("dat"))
            cat = read_binary_matrix(name.format("cat"))
            info = read_binary_matrix(name.format("info"))
            n = dat.shape[0]
            if dat.ndim != 4 or dat.shape[1] != 2 or dat.dtype != np.uint8:
                raise DataError(
                    f"smallnorb: {name.format('dat')!r} holds {dat.dtype} of shape {dat.shape}; "
                    "expected bytes of shape (N, 2, H, W) (the official files: (24300, 2, 96, 96))."
                )
            if cat.shape != (n,) or info.shape != (n, 4):
                raise DataError(
                    f"smallnorb: the {chunk} files disagree: dat has {n} rows, cat shape "
                    f"{cat.shape} (expected ({n},)), info shape {info.shape} (expected ({n}, 4))."
                )
            dats.append(dat[:, 0])
            labels.append(np.column_stack([cat, info]).astype(np.int64))
        lab = np.concatenate(labels)  # category, instance, elevation, azimuth, lighting
        if (lab < 0).any() or (lab[:, 3] % 2).any():
            raise DataError(
                "smallnorb: labels out of range (negative values or odd azimuth); the official "
                "azimuth labels are 0, 2, ..., 34."
            )
        lab[:, 3] //= 2
        latent = lab[:, [0, 2, 3, 4]]
        self.factor_sizes = tuple(int(v) + 1 for v in latent.max(axis=0))
        self.num_instances = int(lab[:, 1].max()) + 1
        # rows[flat latent index, instance] = image row, or -1 where that instance is absent
        flat = latent @ self._strides
        rows = np.full((len(self), self.num_instances), -1, np.int64)
        key = flat * self.num_instances + lab[:, 1]
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = first[np.argmax(counts > 1)]
            raise DataError(
                f"smallnorb: the files in {self.path!r} hold the image of (category, instance, "
                f"elevation, azimuth/2, lighting) = {tuple(lab[dup].tolist())} twice; "
                "use the official files (each combination once)."
            )
        rows[flat, lab[:, 1]] = np.arange(lab.shape[0])
        count = (rows >= 0).sum(axis=1)
        if (count == 0).any():
            missing = self.factors(np.flatnonzero(count == 0)[:1])[0]
            raise DataError(
                f"smallnorb: the files in {self.path!r} do not cover the grid "
                f"{dict(zip(FACTOR_NAMES, self.factor_sizes))}: no image for "
                f"{dict(zip(FACTOR_NAMES, missing.tolist()))} ({int((count == 0).sum())} "
                "combinations missing). Use the complete official files."
            )
        if isinstance(instance, bool) or not (
            isinstance(instance, (int, np.integer)) or instance in ("fixed", "random")
        ):
            raise DataError(
                "smallnorb: instance must be 'fixed', 'random' or an instance id, "
                f"got {instance!r}."
            )
        if isinstance(instance, (int, np.integer)):
            if not 0 <= instance < self.num_instances or (rows[:, instance] < 0).any():
                raise DataError(
                    f"smallnorb: instance {instance} is not present for every factor combination "
                    f"(instances 0..{self.num_instances - 1}); use 'fixed' or 'random'."
                )
        self.instance = instance
        self._rng = np.random.default_rng(seed)
        self._rows = rows
        # compact list of the available rows per combination, sorted by instance id
        order = np.argsort(rows < 0, axis=1, kind="stable")
        self._avail = np.take_along_axis(rows, order, axis=1)
        self._count = count
        self._images = _resize64(np.concatenate(dats), progress)

    @property
    def factor_values(self) -> dict[str, np.ndarray]:
        """Physical values: elevation 30..70 degrees (step 5), azimuth 0..340 (step 20)."""
        c, e, a, li = (np.arange(s, dtype=np.float64) for s in self.factor_sizes)
        return {"category": c, "elevation": 30.0 + 5.0 * e, "azimuth": 20.0 * a,
                "lighting": li}

    @property
    def value_names(self) -> dict[str, tuple[str, ...]]:
        """Names of the categories (official order)."""
        return {"category": CATEGORY_NAMES[: self.factor_sizes[0]]}

    def instances(self, index: np.ndarray) -> np.ndarray:
        """Object instance used for each flat index ``(n,) -> (n,)`` (under ``instance``)."""
        return self._pick(np.asarray(index, np.int64).reshape(-1))[1]

    def _pick(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = self._count[index]
        if self.instance == "fixed":
            # fixed multiplicative hash of the index (Knuth), so instances look random
            k = ((index * 2654435761 + 97) % (2**32)) % count
        elif self.instance == "random":
            k = self._rng.integers(0, count)
        else:
            row = self._rows[index, int(self.instance)]
            return row, np.full(index.shape, int(self.instance))
        row = self._avail[index, k]
        inst = np.argmax(self._rows[index] == row[:, None], axis=1)
        return row, inst

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        row, _ = self._pick(index)
        return self._images[row][:, None]


@register("smallnorb", "smallNORB: category, elevation, azimuth, lighting (official .mat files)",
          SmallNORB)
def _load_smallnorb(path: str | None = None, **options: Any) -> SmallNORB:
    if path is None:
        raise DataError(
            f"smallnorb: no procedural version exists; download the six official files from "
            f"{URL}, put them in one directory and pass it: dislab.data.load('smallnorb', "
            "path='small_norb/') or `--path small_norb/`."
        )
    bad = sorted(set(options) - {"instance", "seed", "chunks", "progress"})
    if bad:
        raise DataError(f"smallnorb: unknown option(s) {bad}; valid options: "
                        "['chunks', 'instance', 'progress', 'seed'].")
    if "chunks" in options:
        options["chunks"] = tuple(options["chunks"])
    return SmallNORB(path, **options)
