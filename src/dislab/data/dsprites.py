"""dSprites and its disentanglement_lib variants: loader for the official file and a renderer.

Registered names (``dislab.data.load(name, path=None, **options)``):

``dsprites`` (alias ``dsprites_full``)
    disentanglement_lib's ``dsprites_full``: factors shape 3, scale 6, orientation 40,
    posX 32, posY 32 (737,280 images); observations ``(1, 64, 64)``, white sprite on black.
``dsprites_noshape``
    the same images with shape a nuisance factor (factors scale, orientation, posX, posY).
``color_dsprites``, ``noisy_dsprites``, ``scream_dsprites``
    ``(3, 64, 64)`` variants (REFERENCE.md §2.2).

With ``path=None`` the sprites are *rendered procedurally* on exactly the official factor grid;
with ``path=FILE`` the official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or a file
written by :func:`write_npz`) is read, never unpickled.

Official grid (dSprites README and the file's ``latents_values``): colour 1 (white);
shape {square, ellipse, heart} (values 1, 2, 3); scale ``linspace(0.5, 1, 6)``;
orientation ``linspace(0, 2*pi, 40)`` *including* the end point, so orientation 0 and 39 give
the same picture in the official file (deepmind/dsprites-dataset issue #7) and here as well;
posX, posY ``linspace(0, 1, 32)``.

Renderer layout (the published description gives no pixel geometry, so these are dislab's
choices, made to look like the official images; constants below):

* the sprite's centre moves from pixel 8.75 to 55.25 in steps of 1.5 pixels as posX/posY go
  from 0 to 1 (continuous image coordinates, pixel ``i`` spans ``[i, i+1]``); posX grows to
  the right, posY grows downwards (image rows);
* at scale 1 the square has side 12 px, the ellipse axes 17 x 8.5 px, the heart a largest
  radius of 8.5 px about its area centre; no sprite leaves the canvas at any position;
* a sprite rotates counter-clockwise (as seen on screen) about its area centre (centroid),
  so the centroid does not move with orientation;
* each pixel's coverage is estimated with 4 x 4 sub-samples (anti-aliasing) and the result
  binarised at coverage >= 0.5, giving 0/1 images like the official file.

The renderer is not pixel-identical to the official file; results meant to be compared with
the literature should use the official file (``path=...``).
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, register

__all__ = [
    "FACTOR_NAMES",
    "OFFICIAL_SIZES",
    "SHAPE_NAMES",
    "official_values",
    "DSprites",
    "DSpritesFile",
    "DSpritesNoShape",
    "ColorDSprites",
    "NoisyDSprites",
    "ScreamDSprites",
    "render_official",
    "write_npz",
    "read_npz",
    "render_to_file",
    "geometry_summary",
    "procedural_scream_texture",
    "keyed_uniform",
]

OFFICIAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "posX", "posY")
OFFICIAL_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")
_FILE_LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")

# -- layout constants (see module docstring) ---------------------------------------------------
CANVAS = 64
POS_START = 8.75  # sprite centre (pixels) at pos value 0
POS_STEP = 1.5  # pixels per position step (32 steps span 8.75 .. 55.25)
SQUARE_SIDE = 12.0  # pixels at scale 1
ELLIPSE_SEMI_AXES = (8.5, 4.25)  # pixels at scale 1 (horizontal, vertical at orientation 0)
HEART_RADIUS = 8.5  # largest distance of the heart from its centroid, pixels at scale 1
SUBSAMPLES = 4  # per axis, for the coverage estimate
_PATCH = 20  # side of the square patch holding one sprite (>= 2 * (8.75 + 0.75))
_HALF = _PATCH // 2

# Heart: the implicit curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (y up).  Its area centre is at
# (0, 0.29347) and its farthest point 1.29031 from there (computed numerically, 3000^2 grid).
_HEART_CY = 0.29347
_HEART_RMAX = 1.29031

_DOCS_URL = "https://github.com/deepmind/dsprites-dataset"


def official_values() -> dict[str, np.ndarray]:
    """The value of every grid position of every factor, as in the official ``latents_values``."""
    return {
        "shape": np.array([1.0, 2.0, 3.0]),
        "scale": np.linspace(0.5, 1.0, 6),
        "orientation": np.linspace(0.0, 2.0 * np.pi, 40),
        "posX": np.linspace(0.0, 1.0, 32),
        "posY": np.linspace(0.0, 1.0, 32),
    }


# -- keyed randomness ---------------------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def keyed_uniform(seed: int, salt: int, index: np.ndarray, m: int) -> np.ndarray:
    """``(n, m)`` float64 uniforms in [0, 1), a fixed function of ``(seed, salt, index[i], j)``.

    This is how dislab keeps colour, noise, crops and nuisance factors a deterministic function
    of the flat grid index: a SplitMix64 hash, independent of numpy's generator versions.
    """
    with np.errstate(over="ignore"):
        key = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
        key = _mix64(key ^ np.uint64(salt & 0xFFFFFFFF))
        k = _mix64(np.asarray(index, dtype=np.int64).astype(np.uint64) ^ key)
        z = _mix64(k[:, None] + np.arange(1, m + 1, dtype=np.uint64)[None, :] * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


# -- the renderer -------------------------------------------------------------------------------
def _inside(shape: int, u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Whether points ``(u, v)`` (pixels from the sprite centre, y up, unrotated) are inside."""
    if shape == 0:
        h = 0.5 * SQUARE_SIDE * scale
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    if shape == 1:
        a, b = ELLIPSE_SEMI_AXES[0] * scale, ELLIPSE_SEMI_AXES[1] * scale
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    s = _HEART_RMAX / (HEART_RADIUS * scale)
    x = u * s
    y = v * s + _HEART_CY
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


def _centre(k: np.ndarray | int) -> np.ndarray:
    return POS_START + POS_STEP * np.asarray(k, dtype=np.float64)


def _render_patches(shape: int, scale_i: int, orient_i: np.ndarray) -> np.ndarray:
    """Binary patches ``(len(orient_i), 2, 2, P, P)`` for both sub-pixel phases of x and y.

    Phase ``p`` (0 or 1) is the phase of a position index of parity ``p``: the sprite centre
    sits at ``_HALF + frac(centre)`` inside the patch.
    """
    scale = float(official_values()["scale"][scale_i])
    thetas = official_values()["orientation"][orient_i]
    s = SUBSAMPLES
    sub = (np.arange(_PATCH * s) + 0.5) / s  # sub-sample coordinates inside the patch
    fracs = [float(_centre(p) % 1.0) for p in (0, 1)]
    out = np.zeros((len(thetas), 2, 2, _PATCH, _PATCH), dtype=np.uint8)
    for px in (0, 1):
        x = sub - (_HALF + fracs[px])  # right
        for py in (0, 1):
            y = -(sub - (_HALF + fracs[py]))  # up
            X = x[None, None, :]
            Y = y[None, :, None]
            c = np.cos(thetas)[:, None, None]
            sn = np.sin(thetas)[:, None, None]
            # rotate the sample points by -theta = rotate the sprite by +theta (ccw on screen)
            u = c * X + sn * Y
            v = -sn * X + c * Y
            ins = _inside(shape, u, v, scale).reshape(len(thetas), _PATCH, s, _PATCH, s)
            cover = ins.mean(axis=(2, 4))
            out[:, px, py] = cover >= 0.5
    return out


_PATCHES = np.zeros((3, 6, 40, 2, 2, _PATCH, _PATCH), dtype=np.uint8)
_HAVE = np.zeros((3, 6, 40), dtype=bool)


def _ensure_patches(shape_i: np.ndarray, scale_i: np.ndarray, orient_i: np.ndarray) -> None:
    need = np.zeros_like(_HAVE)
    need[shape_i, scale_i, orient_i] = True
    need &= ~_HAVE
    if not need.any():
        return
    for sh in range(3):
        for sc in range(6):
            orients = np.flatnonzero(need[sh, sc])
            if orients.size:
                _PATCHES[sh, sc, orients] = _render_patches(sh, sc, orients)
                _HAVE[sh, sc, orients] = True


def render_official(classes: np.ndarray, on: int = 1) -> np.ndarray:
    """Render official-grid factor classes ``(n, 5)`` to ``(n, 64, 64)`` uint8 images.

    ``classes`` are positions in the *official* grid (shape, scale, orientation, posX, posY);
    pixels are 0 or ``on``. Base sprites are rendered once per process and cached; placing a
    sprite is an integer shift, so this is a vectorised gather.
    """
    c = np.asarray(classes, dtype=np.int64).reshape(-1, 5)
    n = c.shape[0]
    _ensure_patches(c[:, 0], c[:, 1], c[:, 2])
    patches = _PATCHES[c[:, 0], c[:, 1], c[:, 2], c[:, 3] % 2, c[:, 4] % 2]  # (n, P, P)
    # patch origin = floor(centre) - _HALF; the canvas is padded by _HALF on each side
    pad = _HALF
    ox = np.floor(_centre(c[:, 3])).astype(np.int64) - _HALF + pad
    oy = np.floor(_centre(c[:, 4])).astype(np.int64) - _HALF + pad
    size = CANVAS + 2 * pad
    canvas = np.zeros((n, size, size), dtype=np.uint8)
    ar = np.arange(_PATCH)
    rows = (oy[:, None] + ar[None, :])[:, :, None]
    cols = (ox[:, None] + ar[None, :])[:, None, :]
    canvas[np.arange(n)[:, None, None], rows, cols] = patches
    out = canvas[:, pad:pad + CANVAS, pad:pad + CANVAS]
    if on != 1:
        out = out * np.uint8(on)
    return np.ascontiguousarray(out)


def _grid_choice(name: str, spec: int | Sequence[int] | None, size: int) -> np.ndarray:
    """Official indices kept for one factor: all, ``n`` evenly spaced, or an explicit list."""
    if spec is None:
        return np.arange(size, dtype=np.int64)
    if isinstance(spec, (int, np.integer)):
        n = int(spec)
        if not 1 <= n <= size:
            raise DataError(f"dsprites: {name} must keep 1..{size} values, got {n}.")
        # a thinned orientation grid skips value 39 (= 2 pi, the same picture as value 0)
        top = size - 2 if (name == "orientation" and n < size) else size - 1
        idx = np.unique(np.round(np.linspace(0, top, n)).astype(np.int64))
        if idx.size != n:  # cannot happen for n <= size, but keep the grid honest
            raise DataError(f"dsprites: cannot choose {n} distinct {name} values.")
        return idx
    idx = np.asarray(list(spec), dtype=np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= size or np.unique(idx).size != idx.size:
        raise DataError(
            f"dsprites: {name} must be distinct official indices in 0..{size - 1}, got {spec!r}."
        )
    return np.sort(idx)


class _BinarySprites(GroundTruthData):
    """Shared part of the renderer and the file loader: binary 0/1 sprites ``(n, 64, 64)``."""

    factor_names = FACTOR_NAMES
    observation_shape = (1, CANVAS, CANVAS)
    factor_values: dict[str, np.ndarray]

    @property
    def value_names(self) -> dict[str, tuple[str, ...]]:
        """Names of the grid positions of categorical factors (shape)."""
        vals = self.factor_values["shape"]
        return {"shape": tuple(SHAPE_NAMES[int(round(v)) - 1] if 1 <= v <= 3 else str(v)
                               for v in vals)}

    def binary_from_index(self, index: np.ndarray) -> np.ndarray:
        """Binary images ``(n, 64, 64)`` uint8 with values 0/1 for flat indices."""
        raise NotImplementedError

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        return (self.binary_from_index(index) * np.uint8(255))[:, None]

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["factor_values"] = {k: [float(x) for x in v] for k, v in self.factor_values.items()}
        return d

    def to_array(self, packed: bool = True, progress: bool = True,
                 chunk: int = 16384) -> np.ndarray:
        """The whole grid at once, in flat-index order (only when asked: it is big).

        ``packed=True``: ``(N, 64, 8)`` uint8, ``np.packbits`` of the 0/1 images along x
        (377 MB for the full grid); ``packed=False``: ``(N, 64, 64)`` uint8 0/1 (3 GB).
        """
        n = len(self)
        out = np.empty((n, CANVAS, CANVAS // 8 if packed else CANVAS), dtype=np.uint8)
        starts = range(0, n, chunk)
        if progress and n > chunk:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"{self.name}: all images", unit="chunk")
        for s in starts:
            b = self.binary_from_index(np.arange(s, min(s + chunk, n)))
            out[s:s + len(b)] = np.packbits(b, axis=-1) if packed else b
        return out

    def write(self, path: str | os.PathLike[str], progress: bool = True,
              overwrite: bool = False) -> str:
        """Write this grid in the official ``.npz`` format (see :func:`write_npz`)."""
        return write_npz(self, path, progress=progress, overwrite=overwrite)


class DSprites(_BinarySprites):
    """dSprites rendered procedurally on the official grid (or an evenly thinned sub-grid).

    Each of ``shapes``, ``scales``, ``orientations``, ``positions`` (posX and posY together)
    is ``None`` (all official values), an int ``n`` (``n`` evenly spaced official values,
    for small test files) or a list of official value indices. ``subset`` maps factor names
    (``shape``, ``scale``, ``orientation``, ``posX``, ``posY``) to the same kind of spec and
    takes precedence.
    """

    name = "dsprites"
    source = "procedural"

    def __init__(
        self,
        shapes: int | Sequence[int] | None = None,
        scales: int | Sequence[int] | None = None,
        orientations: int | Sequence[int] | None = None,
        positions: int | Sequence[int] | None = None,
        subset: Mapping[str, int | Sequence[int]] | None = None,
    ) -> None:
        specs: list[Any] = [shapes, scales, orientations, positions, positions]
        for key, spec in (subset or {}).items():
            if key not in FACTOR_NAMES:
                raise DataError(
                    f"dsprites: unknown factor {key!r} in subset; factors are {list(FACTOR_NAMES)}."
                )
            specs[FACTOR_NAMES.index(key)] = spec
        self.grid_index = tuple(
            _grid_choice(n, s, size) for n, s, size in zip(FACTOR_NAMES, specs, OFFICIAL_SIZES)
        )
        self.factor_sizes = tuple(int(g.size) for g in self.grid_index)
        vals = official_values()
        self.factor_values = {n: vals[n][g] for n, g in zip(FACTOR_NAMES, self.grid_index)}

    def official_classes(self, index: np.ndarray) -> np.ndarray:
        """Official-grid classes ``(n, 5)`` of flat indices of this (possibly thinned) grid."""
        f = self.factors(index)
        return np.stack([g[f[:, j]] for j, g in enumerate(self.grid_index)], axis=1)

    def binary_from_index(self, index: np.ndarray) -> np.ndarray:
        return render_official(self.official_classes(index))

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        return render_official(self.official_classes(index), on=255)[:, None]


# -- the official file --------------------------------------------------------------------------
def _open_member(zf: zipfile.ZipFile, key: str, path: str) -> Any:
    try:
        return zf.open(f"{key}.npy")
    except KeyError:
        raise DataError(f"{path}: no array {key!r} in the file.") from None


def _read_small(zf: zipfile.ZipFile, key: str, path: str) -> np.ndarray:
    with _open_member(zf, key, path) as f:
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except ValueError as e:
            raise DataError(
                f"{path}: array {key!r} cannot be read without unpickling ({e}); dislab never "
                "unpickles files. Re-save it as a plain numeric array."
            ) from None


def read_npz(path: str | os.PathLike[str], chunk: int = 16384,
             progress: bool = True) -> dict[str, Any]:
    """Read a dSprites ``.npz`` without unpickling (see :func:`_read_npz`); a member that is
    damaged (bad CRC-32, bad compressed stream, cut short) raises :class:`DataError`."""
    try:
        return _read_npz(path, chunk, progress)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        p = os.fspath(path)
        raise DataError(
            f"{p} is damaged ({type(e).__name__}: {e}); the file is corrupt or was cut short. "
            f"Download {OFFICIAL_FILE} again from {_DOCS_URL}, or write one with "
            "`dislab data render dsprites --out FILE.npz`."
        ) from None


def _read_npz(path: str | os.PathLike[str], chunk: int = 16384,
              progress: bool = True) -> dict[str, Any]:
    """Read a dSprites ``.npz`` without unpickling; images are returned bit-packed.

    Returns ``{"packed": (N, 64, 8) uint8 (np.packbits of the 0/1 images along x),
    "factor_sizes": tuple, "factor_values": {name: values}}``. ``metadata`` (a pickled object
    in the official file) is never read: the grid comes from ``latents_classes``, whose rows
    must enumerate the full grid in C order (last factor fastest), as in the official file.
    Images are streamed ``chunk`` rows at a time, so the 3 GB official array is never held
    unpacked.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise DataError(
            f"dSprites file not found: {p}. Download {OFFICIAL_FILE} from {_DOCS_URL}, write "
            "one with `dislab data render dsprites --out FILE.npz`, or pass no path to render "
            "the sprites procedurally."
        )
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{p} is not a .npz (zip) file ({e}); expected {OFFICIAL_FILE}.") from None
    with zf:
        names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
        missing = [k for k in ("imgs", "latents_values", "latents_classes") if k not in names]
        if missing:
            raise DataError(
                f"{p}: missing key(s) {missing}; found {sorted(names)}. A dSprites file needs "
                "'imgs' (N, 64, 64), 'latents_values' and 'latents_classes' (N, 6)."
            )
        classes = _read_small(zf, "latents_classes", p)
        values = _read_small(zf, "latents_values", p)
        if classes.ndim != 2 or classes.shape[1] not in (5, 6) or classes.dtype.kind not in "iu":
            raise DataError(
                f"{p}: 'latents_classes' must be an integer array (N, 6) (colour, shape, scale, "
                f"orientation, posX, posY), got {classes.dtype} {classes.shape}."
            )
        if values.shape != classes.shape:
            raise DataError(
                f"{p}: 'latents_values' has shape {values.shape} but 'latents_classes' has "
                f"{classes.shape}; they must match row for row."
            )
        classes = classes.astype(np.int64)
        values = values.astype(np.float64)
        if classes.shape[1] == 6:
            if classes.size and np.any(classes[:, 0] != classes[0, 0]):
                raise DataError(f"{p}: the colour column of 'latents_classes' is not constant.")
            classes, values = classes[:, 1:], values[:, 1:]
        n = classes.shape[0]
        if n == 0 or classes.min() < 0:
            raise DataError(f"{p}: 'latents_classes' is empty or has negative classes.")
        sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
        strides = np.concatenate([np.cumprod(np.asarray(sizes)[::-1])[::-1][1:], [1]])
        flat = classes @ strides
        if math.prod(sizes) != n or not np.array_equal(flat, np.arange(n)):
            bad = int(np.flatnonzero(flat != np.arange(n))[0]) if math.prod(sizes) == n else -1
            where = f" (first wrong row {bad})" if bad >= 0 else ""
            raise DataError(
                f"{p}: 'latents_classes' rows are not the full factor grid {list(sizes)} in "
                f"C order{where}; dislab needs every factor combination once, last factor "
                "fastest, as in the official file."
            )
        fvals = {}
        for j, name in enumerate(FACTOR_NAMES):
            first = np.zeros(sizes[j], dtype=np.int64)
            first[classes[::-1, j]] = np.arange(n)[::-1]
            fvals[name] = values[first, j]

        with _open_member(zf, "imgs", p) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
            except ValueError as e:
                raise DataError(f"{p}: 'imgs' is not a valid .npy array ({e}).") from None
            if dtype.kind not in "iub" or dtype.hasobject or fortran:
                raise DataError(f"{p}: 'imgs' must be a C-order uint8 array, got {dtype}.")
            if len(shape) != 3 or shape[1:] != (CANVAS, CANVAS) or shape[0] != n:
                raise DataError(
                    f"{p}: 'imgs' must have shape ({n}, 64, 64) to match 'latents_classes', "
                    f"got {shape}."
                )
            row = CANVAS * CANVAS * dtype.itemsize
            packed = np.empty((n, CANVAS, CANVAS // 8), dtype=np.uint8)
            starts = range(0, n, chunk)
            if progress and n > 4 * chunk:
                from tqdm import tqdm

                starts = tqdm(starts, desc=f"reading {os.path.basename(p)}", unit="chunk")
            for start in starts:
                m = min(chunk, n - start)
                buf = f.read(m * row)
                if len(buf) != m * row:
                    raise DataError(f"{p}: 'imgs' is truncated at image {start}.")
                block = np.frombuffer(buf, dtype=dtype).reshape(m, CANVAS, CANVAS)
                if block.max(initial=0) > 1 or block.min(initial=0) < 0:
                    raise DataError(
                        f"{p}: 'imgs' must hold 0/1 pixels like the official file "
                        f"(found values up to {block.max()} near image {start})."
                    )
                packed[start:start + m] = np.packbits(block.astype(np.uint8), axis=-1)
    return {"packed": packed, "factor_sizes": sizes, "factor_values": fvals}


class DSpritesFile(_BinarySprites):
    """dSprites read from the official ``.npz`` (or one written by :func:`write_npz`).

    Images are kept bit-packed in RAM (377 MB for the full 737,280-image file instead of
    3 GB as uint8, or 12 GB as float32 in disentanglement_lib).
    """

    name = "dsprites"
    source = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        got = read_npz(path)
        self.path = os.fspath(path)
        self._packed = got["packed"]
        self.factor_sizes = got["factor_sizes"]
        self.factor_values = got["factor_values"]

    def binary_from_index(self, index: np.ndarray) -> np.ndarray:
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        return np.unpackbits(self._packed[idx], axis=-1)


def _meta(data: _BinarySprites) -> dict[str, Any]:
    vals = {"color": np.array([1.0]), **data.factor_values}
    return {
        "date": "written by dislab",
        "description": "dSprites grid rendered by dislab (procedural renderer, not the "
        "official pixels)" if data.source == "procedural" else "dSprites grid re-written by "
        "dislab",
        "version": 1,
        "latents_names": _FILE_LATENT_NAMES,
        "latents_possible_values": vals,
        "latents_sizes": np.array([1, *data.factor_sizes], dtype=np.int64),
        "author": "dislab",
        "title": "dSprites",
    }


def write_npz(
    data: _BinarySprites,
    path: str | os.PathLike[str],
    progress: bool = True,
    overwrite: bool = False,
    chunk: int = 8192,
) -> str:
    """Write ``data`` (a dSprites grid) as an official-format ``.npz``; returns the path.

    Keys: ``imgs`` ``(N, 64, 64)`` uint8 0/1, ``latents_classes`` ``(N, 6)`` int64 (colour
    column 0, then the grid position of each factor), ``latents_values`` ``(N, 6)`` float64
    (colour 1, shape 1..3, scale, orientation, posX, posY) and ``metadata``: a 0-d object array
    holding a dict with ``latents_sizes`` etc., which the official loaders (including
    disentanglement_lib) read with ``allow_pickle=True``. dislab itself never reads it.
    The images are streamed into the zip member (the full grid is never held in RAM) and the
    file is written under a temporary name and renamed at the end, so an interrupted write
    leaves nothing half-written.
    """
    if not isinstance(data, _BinarySprites):
        raise DataError(
            f"write_npz writes dSprites grids only, got {data!r}; load 'dsprites' (procedural "
            "or from a file) and write that."
        )
    p = os.fspath(path)
    if os.path.exists(p) and not overwrite:
        raise DataError(f"{p} exists; choose another --out or pass --force to overwrite it.")
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent):
        raise DataError(f"Folder {parent} does not exist; create it first.")
    n = len(data)
    factors = data.factors(np.arange(n))
    classes = np.concatenate([np.zeros((n, 1), dtype=np.int64), factors], axis=1)
    values = np.empty((n, 6), dtype=np.float64)
    values[:, 0] = 1.0
    for j, name in enumerate(FACTOR_NAMES):
        values[:, j + 1] = data.factor_values[name][factors[:, j]]
    meta = np.empty((), dtype=object)
    meta[()] = _meta(data)
    tmp = p + ".partial"
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
              "fortran_order": False, "shape": (n, CANVAS, CANVAS)}
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                             allowZip64=True) as zf:
            with zf.open("imgs.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, header)
                starts = range(0, n, chunk)
                if progress and n > chunk:
                    from tqdm import tqdm

                    starts = tqdm(starts, desc=f"render {data.name}", unit="chunk")
                for s in starts:
                    idx = np.arange(s, min(s + chunk, n))
                    f.write(np.ascontiguousarray(data.binary_from_index(idx)).tobytes())
            for key, arr, pick in (("latents_classes", classes, False),
                                   ("latents_values", values, False),
                                   ("metadata", meta, True)):
                with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, arr, allow_pickle=pick)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return p


def render_to_file(
    path: str | os.PathLike[str],
    subset: Mapping[str, int | Sequence[int]] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    **grid: Any,
) -> str:
    """Render dSprites (full official grid by default) into an official-format ``.npz``.

    ``subset`` / ``grid`` (``shapes``, ``scales``, ``orientations``, ``positions``) thin the
    grid as in :class:`DSprites`, e.g. ``subset={"posX": 4, "posY": 4}`` for a small test file.
    The full grid (737,280 images) takes a few seconds to render and is streamed to disk.
    """
    unknown = sorted(set(grid) - set(_GRID_OPTIONS))
    if unknown:
        raise DataError(f"dsprites render_to_file: unknown option(s) {unknown}.")
    return write_npz(DSprites(subset=subset, **grid), path, progress=progress,
                     overwrite=overwrite)


def geometry_summary(data: _BinarySprites, n: int = 20000, seed: int = 0) -> dict[str, Any]:
    """Measured layout of a dSprites grid, to compare the renderer with the official file.

    From ``n`` random images: mean sprite centroid (pixels, x right / y down) per posX and per
    posY value, and mean area (pixels) per shape and scale. Example::

        ours = geometry_summary(load("dsprites"))
        real = geometry_summary(load("dsprites", path=OFFICIAL_FILE))  # your copy

    If they differ, the layout constants at the top of this module are the knobs.
    """
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.integers(0, len(data), n))
    f = data.factors(idx)
    img = data.binary_from_index(idx).astype(np.float64)
    area = img.sum(axis=(1, 2))
    grid = np.arange(CANVAS) + 0.5
    cx = (img.sum(axis=1) @ grid) / np.maximum(area, 1)
    cy = (img.sum(axis=2) @ grid) / np.maximum(area, 1)

    def by(values: np.ndarray, k: np.ndarray, size: int) -> np.ndarray:
        tot = np.bincount(k, weights=values, minlength=size)
        cnt = np.bincount(k, minlength=size)
        return tot / np.maximum(cnt, 1)

    sizes = data.factor_sizes
    shape_scale = f[:, 0] * sizes[1] + f[:, 1]
    return {
        "centre_x_by_posX": by(cx, f[:, 3], sizes[3]),
        "centre_y_by_posY": by(cy, f[:, 4], sizes[4]),
        "area_by_shape_scale": by(area, shape_scale, sizes[0] * sizes[1]).reshape(sizes[:2]),
        "mean_pixel": float(area.mean() / CANVAS**2),
    }


# -- variants -----------------------------------------------------------------------------------
_SALT_COLOR, _SALT_NOISE, _SALT_SCREAM, _SALT_SHAPE = 1, 2, 3, 4


class _Variant(GroundTruthData):
    """A dSprites variant computed from the binary sprites of ``base``.

    ``fresh=False`` (dislab's default): the random colour / noise / crop of an image is a
    fixed function of ``(seed, flat index)`` (:func:`keyed_uniform`), so the image is a
    deterministic function of its factors. ``fresh=True``: drawn anew at every call from a
    generator seeded with ``seed``, as disentanglement_lib does (its images then are *not* a
    function of the factors).
    """

    def __init__(self, base: _BinarySprites, seed: int = 0, fresh: bool = False) -> None:
        self.base = base
        self.seed = int(seed)
        self.fresh = bool(fresh)
        self._rng = np.random.default_rng(self.seed)
        self.factor_names = base.factor_names
        self.factor_sizes = base.factor_sizes
        self.factor_values = base.factor_values
        self.value_names = base.value_names
        self.source = base.source

    def _uniform(self, salt: int, index: np.ndarray, m: int) -> np.ndarray:
        if self.fresh:
            return self._rng.random((index.size, m))
        return keyed_uniform(self.seed, salt, index, m)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["randomness"] = "fresh per call" if self.fresh else f"keyed on index (seed {self.seed})"
        return d


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 0..255, rounding to nearest."""
    return (np.asarray(x, dtype=np.float32) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


class DSpritesNoShape(_Variant):
    """``dsprites_noshape``: factors scale, orientation, posX, posY; shape is a nuisance.

    disentanglement_lib draws the shape uniformly at random at every call. Here (default) the
    shape of the image with flat index ``i`` is ``floor(3 * keyed_uniform(seed, 4, i))``, a
    fixed, uniformly spread choice, so images stay a function of the four factors;
    ``fresh=True`` restores the random draw per call.
    """

    name = "dsprites_noshape"

    def __init__(self, base: _BinarySprites, seed: int = 0, fresh: bool = False) -> None:
        super().__init__(base, seed, fresh)
        self.factor_names = base.factor_names[1:]
        self.factor_sizes = base.factor_sizes[1:]
        self.factor_values = {k: v for k, v in base.factor_values.items() if k != "shape"}
        self.observation_shape = base.observation_shape

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        f = self.factors(index)
        k = self.base.factor_sizes[0]
        shape = np.minimum((self._uniform(_SALT_SHAPE, index, 1)[:, 0] * k).astype(np.int64),
                           k - 1)
        full = np.concatenate([shape[:, None], f], axis=1)
        return self.base._images_from_index(self.base.index(full))


class ColorDSprites(_Variant):
    """``color_dsprites``: the sprite in one colour per image, each channel ``U(0.5, 1)``.

    As disentanglement_lib's ``ColorDSprites``; background black; ``(3, 64, 64)``.
    """

    name = "color_dsprites"
    observation_shape = (3, CANVAS, CANVAS)

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        mask = self.base.binary_from_index(index)[:, None]  # 0/1
        color = _to_uint8(0.5 + 0.5 * self._uniform(_SALT_COLOR, index, 3))
        return mask * color[:, :, None, None]


class NoisyDSprites(_Variant):
    """``noisy_dsprites``: ``min(sprite + U(0, 1) noise, 1)`` per pixel and channel.

    As disentanglement_lib's ``NoisyDSprites``; ``(3, 64, 64)``; stored as uint8 (the noise
    is drawn directly as a level ``k / 255`` with ``k`` uniform on 0..255, bytes of a
    SplitMix64 hash of ``(seed, flat index, position)`` unless ``fresh=True``).
    """

    name = "noisy_dsprites"
    observation_shape = (3, CANVAS, CANVAS)

    def _noise8(self, index: np.ndarray) -> np.ndarray:
        """Noise as uint8 levels ``(n, 3, 64, 64)``, uniform on 0..255."""
        shape = (index.size, 3, CANVAS, CANVAS)
        if self.fresh:
            return self._rng.integers(0, 256, size=shape, dtype=np.uint8)
        words = 3 * CANVAS * CANVAS // 8  # 8 noise bytes per 64-bit hash
        with np.errstate(over="ignore"):
            key = _mix64(np.array([self.seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
                         ^ np.uint64(_SALT_NOISE))
            k = _mix64(index.astype(np.uint64) ^ key)
            z = _mix64(k[:, None] + np.arange(1, words + 1, dtype=np.uint64)[None, :] * _GOLDEN)
        return z.view(np.uint8).reshape(shape)

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        mask = self.base.binary_from_index(index)[:, None]  # 0/1
        return np.maximum(self._noise8(index), mask * np.uint8(255))


_WARNED_TEXTURE = False


def procedural_scream_texture(height: int = 274, width: int = 350, seed: int = 0) -> np.ndarray:
    """A swirling painted-looking texture ``(height, width, 3)`` float in [0, 1].

    Stand-in for ``scream.jpg`` when the user gives none: a procedural texture, not the
    painting. Sizes default to the 350 x 274 thumbnail disentanglement_lib makes of the jpg.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y /= height
    x /= width
    warp = np.zeros_like(x)
    for _ in range(6):
        fx, fy = rng.uniform(2, 9, size=2)
        ph = rng.uniform(0, 2 * np.pi, size=2)
        warp += np.sin(2 * np.pi * fx * x + ph[0] + 3 * np.sin(2 * np.pi * fy * y + ph[1]))
    warp /= 6
    swirl = np.sin(10 * y + 4 * warp + 6 * np.sin(3 * x + 2 * warp))
    t = 0.5 + 0.5 * swirl
    sky = np.stack([0.9 + 0.1 * t, 0.35 + 0.4 * t, 0.1 + 0.2 * t], axis=-1)  # orange-red
    water = np.stack([0.1 + 0.3 * t, 0.2 + 0.35 * t, 0.45 + 0.45 * t], axis=-1)  # blue
    mix = (1 / (1 + np.exp(-12 * (y - 0.45 + 0.1 * warp))))[..., None]
    img = (1 - mix) * sky + mix * water
    return np.clip(img, 0.0, 1.0)


def _load_scream(path: str | os.PathLike[str]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    p = os.fspath(path)
    if not os.path.exists(p):
        raise DataError(
            f"Scream image not found: {p}. Pass the path of scream.jpg (or any RGB picture at "
            "least 64 x 64), or leave scream_path unset to use a procedural texture."
        )
    try:
        with Image.open(p) as im:
            im = im.convert("RGB")
            im.thumbnail((350, 274))  # as disentanglement_lib: fits in 350 x 274
            arr = np.asarray(im, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{p} is not a readable image ({e}).") from None
    if arr.shape[0] <= CANVAS or arr.shape[1] <= CANVAS:
        raise DataError(f"{p}: the image must be larger than 64 x 64 pixels, got {arr.shape}.")
    return arr


class ScreamDSprites(_Variant):
    """``scream_dsprites``: sprite on a crop of "The Scream" (disentanglement_lib's definition).

    Per image: a random 64 x 64 crop of the picture (shrunk to fit 350 x 274), background =
    (crop + a ``U(0, 1)`` RGB colour) / 2, sprite pixels = 1 - background. ``scream_path``: the
    user's ``scream.jpg`` (any picture works). Without it a *procedural texture* stands in
    (:func:`procedural_scream_texture`, not the painting); a one-time warning says so.
    """

    name = "scream_dsprites"
    observation_shape = (3, CANVAS, CANVAS)

    def __init__(self, base: _BinarySprites, seed: int = 0, fresh: bool = False,
                 scream_path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(base, seed, fresh)
        global _WARNED_TEXTURE
        if scream_path is None:
            self.texture = procedural_scream_texture()
            self.texture_source = "procedural texture (no scream_path given)"
            if not _WARNED_TEXTURE:
                _WARNED_TEXTURE = True
                warnings.warn(
                    "scream_dsprites: no scream_path given, using a procedural texture instead "
                    "of the painting; pass scream_path='scream.jpg' for disentanglement_lib's "
                    "data set.", stacklevel=4,
                )
        else:
            self.texture = _load_scream(scream_path)
            self.texture_source = os.fspath(scream_path)
        self._tex = _to_uint8(np.ascontiguousarray(self.texture.transpose(2, 0, 1)))
        # every 64 x 64 crop as a view: (H - 63, W - 63, 3, 64, 64)
        self._windows = np.lib.stride_tricks.sliding_window_view(
            self._tex, (CANVAS, CANVAS), axis=(1, 2)).transpose(1, 2, 0, 3, 4)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["texture"] = self.texture_source
        return d

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        mask = self.base.binary_from_index(index).astype(bool)[:, None]
        u = self._uniform(_SALT_SCREAM, index, 5)
        h, w = self._tex.shape[1:]
        oy = (u[:, 0] * (h - CANVAS)).astype(np.int64)
        ox = (u[:, 1] * (w - CANVAS)).astype(np.int64)
        crop = self._windows[oy, ox].astype(np.uint16)  # (n, 3, 64, 64), 0..255
        col = _to_uint8(u[:, 2:5]).astype(np.uint16)[:, :, None, None]
        bg = ((crop + col + 1) >> 1).astype(np.uint8)  # (crop + colour) / 2, rounded
        return np.where(mask, np.uint8(255) - bg, bg)


# -- registry -----------------------------------------------------------------------------------
_GRID_OPTIONS = ("shapes", "scales", "orientations", "positions", "subset")


def _base(path: str | os.PathLike[str] | None, name: str, options: dict[str, Any],
          allowed: tuple[str, ...] = ()) -> _BinarySprites:
    unknown = sorted(set(options) - set(_GRID_OPTIONS) - set(allowed))
    if unknown:
        raise DataError(
            f"{name}: unknown option(s) {unknown}; known: "
            f"{sorted(set(_GRID_OPTIONS) | set(allowed))}."
        )
    grid = {k: options.pop(k) for k in _GRID_OPTIONS if k in options}
    if path is None:
        return DSprites(**grid)
    if grid:
        raise DataError(
            f"{name}: {sorted(grid)} thin the renderer's grid; a file's grid is read from the "
            "file. Drop these options or the path."
        )
    return DSpritesFile(path)


@register("dsprites", "dSprites: shape 3, scale 6, orientation 40, posX 32, posY 32 (1x64x64)")
def load_dsprites(path: str | None = None, **options: Any) -> _BinarySprites:
    """dSprites (disentanglement_lib ``dsprites_full``): the official file or the renderer."""
    return _base(path, "dsprites", options)


@register("dsprites_full", "alias of dsprites (disentanglement_lib's name)")
def load_dsprites_full(path: str | None = None, **options: Any) -> _BinarySprites:
    """Alias of ``dsprites``."""
    return _base(path, "dsprites_full", options)


@register("dsprites_noshape", "dSprites with shape a nuisance: scale, orientation, posX, posY")
def load_dsprites_noshape(path: str | None = None, **options: Any) -> DSpritesNoShape:
    """dSprites with the shape a nuisance factor (see :class:`DSpritesNoShape`)."""
    base = _base(path, "dsprites_noshape", options, ("seed", "fresh"))
    return DSpritesNoShape(base, **options)


@register("color_dsprites", "dSprites in a random colour per image (3x64x64)")
def load_color_dsprites(path: str | None = None, **options: Any) -> ColorDSprites:
    """Colour-dSprites (see :class:`ColorDSprites`)."""
    base = _base(path, "color_dsprites", options, ("seed", "fresh"))
    return ColorDSprites(base, **options)


@register("noisy_dsprites", "dSprites plus uniform pixel noise (3x64x64)")
def load_noisy_dsprites(path: str | None = None, **options: Any) -> NoisyDSprites:
    """Noisy-dSprites (see :class:`NoisyDSprites`)."""
    base = _base(path, "noisy_dsprites", options, ("seed", "fresh"))
    return NoisyDSprites(base, **options)


@register("scream_dsprites", "dSprites on crops of The Scream (scream_path=...) (3x64x64)")
def load_scream_dsprites(path: str | None = None, **options: Any) -> ScreamDSprites:
    """Scream-dSprites (see :class:`ScreamDSprites`); ``scream_path`` = the user's picture."""
    base = _base(path, "scream_dsprites", options, ("seed", "fresh", "scream_path"))
    return ScreamDSprites(base, **options)
