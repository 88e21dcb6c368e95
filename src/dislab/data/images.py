"""A folder of images without labels (``dislab.data.load("images", path=DIR)``).

Every PNG / JPEG (also BMP, GIF, TIFF, WebP) under ``DIR`` (sub-folders included, hidden
ones skipped), in sorted path order, is read once, centre-cropped to the target aspect ratio,
resized (Lanczos) to ``size`` (default 64x64, the study architecture's input; ``arch="conv"``
needs sides divisible by 16) and stored as uint8 ``(N, C, H, W)``. ``channels``: 1 (grey) or 3
(RGB); by default 1 when every image is grey, else 3.

**Cache.** The decoded array is written as one ``.npy`` file to ``DIR/.dislab-cache/``, inside
the folder the user named, and memory-mapped on the next load. Its name holds the size, the
channels and a hash of the file list (paths, sizes, modification times), so adding, removing or
editing an image gives a new cache file; delete ``.dislab-cache`` to reclaim the space.
``cache=False`` keeps nothing on disk, ``cache="/some/folder"`` puts the file there instead.
A folder that cannot be written is read without a cache (with a warning).

The result is a :class:`~dislab.data.labelled.LabelledData` with no factors: training, the run
report, the unsupervised metrics and the ELBO decomposition work on it; factor metrics are
skipped with the reason (``evaluate``) or raise a :class:`~dislab.metrics.MetricError`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dislab.data.base import DataError, register
from dislab.data.labelled import LabelledData, from_arrays

__all__ = ["read_image_folder", "load_images", "from_folder", "IMAGE_EXTENSIONS", "CACHE_FOLDER"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: The cache folder made inside the image folder (see the module docstring).
CACHE_FOLDER = ".dislab-cache"
_CACHE_VERSION = 1


def _size(size: int | Sequence[int] | None) -> tuple[int, int]:
    if size is None:
        return 64, 64
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        vals = [int(s) for s in size]
        if len(vals) != 2:
            raise DataError(f"size must be an int or (height, width), got {size!r}.")
        h, w = vals
    if h < 1 or w < 1:
        raise DataError(f"size must be positive, got {size!r}.")
    return h, w


def _list_images(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                out.append(os.path.relpath(os.path.join(dirpath, f), root))
    return sorted(p.replace(os.sep, "/") for p in out)


def _read_one(path: Path, hw: tuple[int, int]) -> np.ndarray:
    """``(3, H, W)`` uint8: centre crop to the aspect ratio of ``hw``, Lanczos resize."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w0, h0 = im.size
            h, w = hw
            # the largest centred box with the target aspect ratio
            if w0 * h > h0 * w:
                cw, ch = max(1, round(h0 * w / h)), h0
            else:
                cw, ch = w0, max(1, round(w0 * h / w))
            left, top = (w0 - cw) // 2, (h0 - ch) // 2
            im = im.resize((w, h), Image.Resampling.LANCZOS, box=(left, top, left + cw, top + ch))
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"{path}: cannot read the image ({e}); remove or fix the file.") from None


def _manifest(root: Path, files: Sequence[str], hw: tuple[int, int], channels: int | None
              ) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([_CACHE_VERSION, list(hw), channels]).encode())
    for f in files:
        try:
            st = (root / f).stat()
        except OSError:
            raise DataError(f"{root / f}: the image file does not exist.") from None
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def read_image_folder(
    root: str | os.PathLike[str],
    files: Sequence[str] | None = None,
    size: int | Sequence[int] | None = None,
    channels: int | None = None,
    cache: bool | str | os.PathLike[str] = "auto",
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """``(images uint8 (N, C, H, W), files)`` of the images in ``root`` (or the ``files``
    given, relative to it); resized and cached as described in the module docstring."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist or is not a folder.")
    hw = _size(size)
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1, 3 or None (automatic), got {channels!r}.")
    files = list(files) if files is not None else _list_images(root)
    if not files:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) found.")
    cache_file: Path | None = None
    if cache is not False and cache is not None:
        folder = root / CACHE_FOLDER if cache in ("auto", True) else Path(cache)
        key = _manifest(root, files, hw, channels)
        cache_file = folder / f"images-{hw[0]}x{hw[1]}-{channels or 'auto'}-{key}.npy"
        if cache_file.is_file():
            try:
                arr = np.load(cache_file, mmap_mode="r", allow_pickle=False)
                if arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[0] == len(files):
                    return arr, files
            except (OSError, ValueError):
                pass  # unreadable cache: decode again and overwrite it
    out = np.empty((len(files), 3, *hw), dtype=np.uint8)
    grey = np.zeros(len(files), dtype=bool)

    def job(i: int) -> None:
        x = _read_one(root / files[i], hw)
        out[i] = x
        grey[i] = bool(np.array_equal(x[0], x[1]) and np.array_equal(x[0], x[2]))

    bar = None
    if progress and len(files) > 256:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(files), desc=f"reading {root.name}", unit="img")
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for fut in [pool.submit(job, i) for i in range(len(files))]:
            fut.result()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    c = channels or (1 if grey.all() else 3)
    images = np.ascontiguousarray(out[:, :1]) if c == 1 else out
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            from dislab.io import atomic_path

            with atomic_path(cache_file) as tmp, open(tmp, "wb") as f:
                np.save(f, images, allow_pickle=False)
        except OSError as e:
            warnings.warn(f"could not write the image cache {cache_file} ({e}); reading "
                          "without a cache (pass cache=False or cache=FOLDER).", stacklevel=2)
    return images, files


_FILE_COLUMNS = ("file", "filename", "image", "path", "name")


def from_folder(
    path: str | os.PathLike[str],
    factors: str | os.PathLike[str] = "factors.csv",
    file_column: str | None = None,
    names: Sequence[str] | None = None,
    bins: int | Mapping[str, int] | None = None,
    size: int | Sequence[int] | None = None,
    channels: int | None = None,
    cache: bool | str | os.PathLike[str] = "auto",
    min_rows_per_value: int = 2,
) -> LabelledData:
    """Images in folder ``path`` plus a CSV of their factors.

    ``factors``: the CSV (relative to ``path`` unless absolute), one row per image: a column
    naming the image file relative to ``path`` (``file_column``; default the first of
    ``file``, ``filename``, ``image``, ``path``, ``name``) and one column per factor (all
    other columns, or ``names``). Numeric columns are read as numbers, others as strings.
    Images are read, resized and cached as :func:`dislab.data.images.load_images` does
    (``size``: default 64x64, ``channels``, ``cache``). ``bins``/``min_rows_per_value`` as
    :func:`~dislab.data.labelled.from_arrays`.
    """
    root = Path(path)
    csv_path = Path(factors)
    if not csv_path.is_absolute():
        csv_path = root / csv_path
    if not csv_path.is_file():
        raise DataError(f"factor table {str(csv_path)!r} does not exist; from_folder needs a CSV "
                        "with one row per image (a file column and one column per factor).")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{csv_path}: cannot read the CSV ({e}).") from None
    if len(rows) < 2:
        raise DataError(f"{csv_path}: needs a header row and at least one data row.")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise DataError(f"{csv_path}: row {i + 2} has {len(r)} fields, the header "
                            f"{len(header)}.")
    if file_column is None:
        lower = [h.lower() for h in header]
        file_column = next((header[lower.index(c)] for c in _FILE_COLUMNS if c in lower), None)
        if file_column is None:
            raise DataError(f"{csv_path}: no file column (one of {list(_FILE_COLUMNS)}); name "
                            "it with file_column=.")
    if file_column not in header:
        raise DataError(f"{csv_path}: no column {file_column!r}; columns are {header}.")
    fc = header.index(file_column)
    wanted = list(names) if names is not None else [h for h in header if h != file_column]
    missing = [w for w in wanted if w not in header]
    if missing:
        raise DataError(f"{csv_path}: no column(s) {missing}; columns are {header}.")
    if not wanted:
        raise DataError(f"{csv_path}: no factor columns besides {file_column!r}.")
    files = [r[fc].strip() for r in body]
    columns: dict[str, np.ndarray] = {}
    for w in wanted:
        raw = [r[header.index(w)].strip() for r in body]
        try:
            num = np.asarray([float(x) for x in raw])
            columns[w] = num.astype(np.int64) if np.all(num == np.round(num)) else num
        except ValueError:
            columns[w] = np.asarray(raw)
    images, _ = read_image_folder(root, files=files, size=size, channels=channels, cache=cache)
    data = from_arrays(images, columns, bins=bins, name=root.name or "folder",
                       min_rows_per_value=min_rows_per_value)
    data.source = "folder"
    return data


@register("images", "a folder of PNG/JPEG images without labels (resized, cached as uint8)")
def load_images(
    path: str | None = None,
    size: int | Sequence[int] | None = 64,
    channels: int | None = None,
    cache: bool | str = "auto",
    **options: Any,
) -> LabelledData:
    """Images under folder ``path``, no factors (see the module docstring for resizing and
    the cache in ``path/.dislab-cache``)."""
    if path is None:
        raise DataError("data set 'images' needs path=DIR, the folder of PNG/JPEG images "
                        "(`--data-path DIR` on the command line).")
    if options:
        raise DataError(f"unknown option(s) {sorted(options)} for 'images'; options: size, "
                        "channels, cache.")
    images, files = read_image_folder(path, size=size, channels=channels, cache=cache)

    def observe(rows: np.ndarray) -> np.ndarray:
        return np.asarray(images[rows])

    data = LabelledData(observe, len(files), images.shape[1:], np.zeros((len(files), 0)), (),
                        (), name="images", source="folder")
    data.files = files  # type: ignore[attr-defined]
    return data


@register("folder", "a folder of images plus a CSV of their factors (factors=factors.csv)")
def load_folder(path: str | None = None, **options: Any) -> LabelledData:
    """:func:`dislab.data.from_folder` by name: ``load("folder", path=DIR, factors=...)``."""
    if path is None:
        raise DataError("data set 'folder' needs path=DIR (images plus factors.csv).")
    return from_folder(path, **options)
