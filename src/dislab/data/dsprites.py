"""dSprites and its disentanglement_lib variants: loader for the official file and a renderer.

Registered names (``dislab.data.load(name, path=None, **options)``):

``dsprites`` (alias ``dsprites_full``)
    disentanglement_lib's ``dsprites_full``: factors shape 3, scale 6, orientation 40,
    posX 32, posY 32 (737,280 images); observations ``(1, 64, 64)``, white sprite on black.
``dsprites_noshape``
    the same images with shape a nuisance factor (factors scale, orientation, posX, posY).
``color_dsprites``, ``noisy_dsprites``, ``scream_dsprites``
    ``(3, 64, 64)`` variants as in google-research/disentanglement_lib,
    ``disentanglement_lib/data/ground_truth/dsprites.py`` (``ColorDSprites``, ...).

With ``path=None`` the sprites are *rendered procedurally* on exactly the official factor grid;
with ``path=FILE`` the official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or a file
written by :func:`write_npz`) is read, never unpickled.

Official grid (dSprites README and the file's ``latents_values``): colour 1 (white);
shape {square, ellipse, heart} (values 1, 2, 3); scale ``linspace(0.5, 1, 6)``;
orientation ``linspace(0, 2*pi, 40)`` *including* the end point, so orientation 0 and 39 give
the same picture in the official file (deepmind/dsprites-dataset issue #7) and here as well;
posX, posY ``linspace(0, 1, 32)``.

Renderer (calibrated on official frames of deepmind/dsprites-dataset's ``dsprites.gif``; the
generator itself is described in that repository's issue #2: LOVE2D vector drawing on a unit
canvas, a rectangle, an ellipse and a mesh of heart vertices, no anti-aliasing). Lengths in
pixels of the 64 x 64 canvas, pixel ``i`` spanning ``[i, i+1]``; constants below:

* the sprite centre is at ``16 + 32 * pos`` px (a quarter to three quarters of the canvas),
  posX to the right, posY downwards (image rows);
* square: side ``19.2 * scale`` (0.3 of the canvas); ellipse: a 46-gon on semi-axes
  ``12.8 * scale`` by ``7.23 * scale``; heart: the parametric curve
  ``(16 sin^3 t, 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t)`` scaled by ``0.6 x 0.6625`` px and
  raised ``1.44`` px (times ``scale``), a 128-gon: two round lobes, a pointed bottom;
* a sprite turns counter-clockwise on screen by ``orientation`` about its centre;
* a pixel is on exactly when its centre is inside the outline (OpenGL's rule without
  anti-aliasing), giving 0/1 images like the official file.

On 160 official frames the rendered image at the same factors has IoU >= 0.989 (149 of them
pixel-identical), and the mean pixel over the whole grid is 0.04252 (official 0.0425); see
docs/data.md, "How close the renderer is". Results meant to be compared with the literature
should still use the official file (``path=...``) where it is available.
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
    "shape_polygon",
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
# Measured on official frames (deepmind/dsprites-dataset's dsprites.gif); see docs/data.md,
# "How close the renderer is". Lengths in pixels of the 64 x 64 canvas (pixel i spans [i, i+1]).
CANVAS = 64
POS_LO = 16.0  # sprite centre at pos value 0: a quarter of the canvas
POS_SPAN = 32.0  # ... and at pos value 1: three quarters (16 + 32)
SQUARE_SIDE = 19.2  # side at scale 1 (0.3 of the canvas)
ELLIPSE_RADII = (12.8, 7.23)  # semi-axes at scale 1 (horizontal, vertical at orientation 0)
ELLIPSE_SEGMENTS = 46  # the ellipse is a regular polygon in angle, a vertex on the long axis
HEART_SCALE = (0.6, 0.6625)  # x, y pixels per unit of the parametric heart at scale 1
HEART_SHIFT = 1.44  # the heart's origin lies this far above the sprite centre (scale 1)
HEART_VERTICES = 128  # points of the parametric heart outline (a polygon)
# Exact lattice: with 32 positions the centre moves 32/31 px per step, so every offset
# between a pixel centre and a sprite centre is an odd multiple of 1/62 px.
_DEN = 62
_VMAX = 15  # rows farther than this from the centre (px) are always empty
_M0 = _VMAX * _DEN // 2  # table row of lattice index 0
_ROWS = 2 * _M0  # table rows; row _ROWS is the empty sentinel
_WIN = 16  # half side of the window rendered around a sprite (> _VMAX)

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
def shape_polygon(shape: int, scale: float = 1.0) -> np.ndarray:
    """Outline ``(V, 2)`` (pixels, x right / y up, about the sprite centre) of an unrotated shape.

    ``shape`` 0 square, 1 ellipse, 2 heart (official order). As the dSprites author describes
    the generator (deepmind/dsprites-dataset issue #2: LOVE2D vector drawing, a rectangle, an
    ellipse and a mesh of heart vertices, rasterised without anti-aliasing), every shape is a
    polygon star-shaped about its centre, vertices counter-clockwise. The heart is the classic
    parametric curve ``x = 16 sin^3 t``, ``y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t``.
    """
    s = float(scale)
    if shape == 0:
        h = 0.5 * SQUARE_SIDE * s
        return np.array([[h, -h], [h, h], [-h, h], [-h, -h]])
    if shape == 1:
        a = 2.0 * np.pi * np.arange(ELLIPSE_SEGMENTS) / ELLIPSE_SEGMENTS
        return np.stack([ELLIPSE_RADII[0] * s * np.cos(a), ELLIPSE_RADII[1] * s * np.sin(a)], 1)
    if shape == 2:
        t = 2.0 * np.pi * np.arange(HEART_VERTICES) / HEART_VERTICES
        x = 16.0 * np.sin(t) ** 3
        y = 13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t)
        pts = np.stack([HEART_SCALE[0] * x, HEART_SCALE[1] * y + HEART_SHIFT], 1) * s
        return pts[::-1]  # t runs clockwise; make it counter-clockwise
    raise DataError(f"dsprites: shape index must be 0, 1 or 2, got {shape}.")


def _row_spans(poly: np.ndarray) -> np.ndarray:
    """Pixel spans ``(_ROWS + 1, 2, 2)`` int16 of a polygon, one row per lattice height.

    Row ``r`` is the horizontal line ``v = (2 (r - _M0) + 1) / 62`` px above the centre; its
    (at most two) inside intervals are stored as inclusive bounds on the pixel-centre offset
    ``u`` in units of 1/62 px, so a pixel is on exactly when its centre is inside the polygon
    (OpenGL's rasterisation rule without anti-aliasing). Empty intervals are (1, 0).
    """
    out = np.empty((_ROWS + 1, 2, 2), dtype=np.int16)
    out[..., 0], out[..., 1] = 1, 0
    # only rows between the lowest and the highest vertex can meet the outline
    r0 = max(int(np.floor(poly[:, 1].min() * _DEN / 2)) + _M0, 0)
    r1 = min(int(np.ceil(poly[:, 1].max() * _DEN / 2)) + _M0 + 1, _ROWS)
    if r1 <= r0:
        return out
    v = (2.0 * (np.arange(r0, r1) - _M0) + 1.0) / _DEN
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    vv = v[:, None]
    hit = ((y0 <= vv) & (vv < y1)) | ((y1 <= vv) & (vv < y0))
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x0 + (vv - y0) * (x1 - x0) / (y1 - y0)
    xc = np.where(hit, xc, np.inf)
    if xc.shape[1] > 4:
        xc = np.partition(xc, 3, axis=1)[:, :4]
    xc.sort(axis=1)
    count = hit.sum(axis=1)
    if count.max(initial=0) > 4 or np.any(count % 2):
        raise AssertionError("dsprites: a sprite outline crosses a row more than 4 times")
    part = out[r0:r1]
    for k in range(2):
        ok = count >= 2 * (k + 1)
        lo = xc[ok, 2 * k] * _DEN
        hi = xc[ok, 2 * k + 1] * _DEN
        part[ok, k, 0] = np.floor(lo).astype(np.int16) + 1  # smallest integer > lo
        part[ok, k, 1] = np.ceil(hi).astype(np.int16) - 1  # largest integer < hi
    return out


_SPANS = np.zeros((3, 6, 40, _ROWS + 1, 2, 2), dtype=np.int16)
_HAVE = np.zeros((3, 6, 40), dtype=bool)


def _ensure_spans(shape_i: np.ndarray, scale_i: np.ndarray, orient_i: np.ndarray) -> None:
    need = np.zeros_like(_HAVE)
    need[shape_i, scale_i, orient_i] = True
    need &= ~_HAVE
    if not need.any():
        return
    vals = official_values()
    for sh, sc, o in zip(*np.nonzero(need)):
        poly = shape_polygon(int(sh), float(vals["scale"][sc]))
        th = float(vals["orientation"][o])
        c, s = math.cos(th), math.sin(th)
        rot = poly @ np.array([[c, s], [-s, c]])  # counter-clockwise by th (y up)
        _SPANS[sh, sc, o] = _row_spans(rot)
        _HAVE[sh, sc, o] = True


def render_official(classes: np.ndarray, on: int = 1) -> np.ndarray:
    """Render official-grid factor classes ``(n, 5)`` to ``(n, 64, 64)`` uint8 images.

    ``classes`` are positions in the *official* grid (shape, scale, orientation, posX, posY);
    pixels are 0 or ``on``. Each (shape, scale, orientation) is scan-converted once per process
    into per-row spans on an exact 1/62-px lattice (:func:`_row_spans`). An image row is then
    a 64-bit word: the spans become first/last pixel columns, then bit masks; vectorised over
    the batch and unpacked to bytes at the end.
    """
    c = np.asarray(classes, dtype=np.int64).reshape(-1, 5)
    n = c.shape[0]
    _ensure_spans(c[:, 0], c[:, 1], c[:, 2])
    w = 2 * _WIN
    ar = np.arange(w, dtype=np.int64)
    step = int(round(_DEN * POS_SPAN / 31))
    cx = int(_DEN * POS_LO) + step * c[:, 3]  # 62 * centre (pixels)
    cy = int(_DEN * POS_LO) + step * c[:, 4]
    fy = cy // _DEN  # canvas row holding the centre
    rows = (fy - _WIN)[:, None] + ar[None, :]  # (n, w) canvas rows of the window
    v = cy[:, None] - _DEN * rows - _DEN // 2  # 62 * (centre - pixel centre), y up
    r = (v - 1) // 2 + _M0
    r = np.where((r >= 0) & (r < _ROWS) & (rows >= 0) & (rows < CANVAS), r, _ROWS)
    sp = _SPANS[c[:, 0:1], c[:, 1:2], c[:, 2:3], r].astype(np.int64)  # (n, w, 2, 2)
    # pixel column q has 62 * (q + 1/2 - centre) = 62 q + 31 - cx; inside a span [lo, hi]
    # for q from ceil((lo - 31 + cx) / 62) to floor((hi - 31 + cx) / 62)
    off = (cx - _DEN // 2)[:, None, None]
    first = np.maximum(-((off + sp[..., 0]) // -_DEN), 0)
    last = np.minimum((off + sp[..., 1]) // _DEN, CANVAS - 1)
    empty = first > last
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    last_u = np.where(empty, 0, last).astype(np.uint64)
    first_u = np.where(empty, 0, first).astype(np.uint64)
    mask = (ones >> (np.uint64(CANVAS - 1) - last_u)) & ~((np.uint64(1) << first_u) - np.uint64(1))
    mask = np.where(empty, np.uint64(0), mask)
    words = mask[..., 0] | mask[..., 1]  # (n, w) one 64-bit row each
    canvas = np.zeros((n, CANVAS + 2 * _WIN), dtype=np.uint64)
    canvas[np.arange(n)[:, None], rows + _WIN] = words
    out = canvas[:, _WIN:_WIN + CANVAS].astype("<u8")
    bits = np.unpackbits(out.view(np.uint8).reshape(n, CANVAS, 8), axis=-1, bitorder="little")
    if on != 1:
        bits *= np.uint8(on)
    return bits


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
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
              "fortran_order": False, "shape": (n, CANVAS, CANVAS)}
    from dislab.io import atomic_path

    with atomic_path(p) as tmp:
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


@register("dsprites", "dSprites: shape 3, scale 6, orientation 40, posX 32, posY 32 (1x64x64)",
          _BinarySprites)
def load_dsprites(path: str | None = None, **options: Any) -> _BinarySprites:
    """dSprites (disentanglement_lib ``dsprites_full``): the official file or the renderer."""
    return _base(path, "dsprites", options)


@register("dsprites_full", "alias of dsprites (disentanglement_lib's name)", _BinarySprites)
def load_dsprites_full(path: str | None = None, **options: Any) -> _BinarySprites:
    """Alias of ``dsprites``."""
    return _base(path, "dsprites_full", options)


@register("dsprites_noshape", "dSprites with shape a nuisance: scale, orientation, posX, posY")
def load_dsprites_noshape(path: str | None = None, **options: Any) -> DSpritesNoShape:
    """dSprites with the shape a nuisance factor (see :class:`DSpritesNoShape`)."""
    base = _base(path, "dsprites_noshape", options, ("seed", "fresh"))
    return DSpritesNoShape(base, **options)


@register("color_dsprites", "dSprites in a random colour per image (3x64x64)", ColorDSprites)
def load_color_dsprites(path: str | None = None, **options: Any) -> ColorDSprites:
    """Colour-dSprites (see :class:`ColorDSprites`)."""
    base = _base(path, "color_dsprites", options, ("seed", "fresh"))
    return ColorDSprites(base, **options)


@register("noisy_dsprites", "dSprites plus uniform pixel noise (3x64x64)", NoisyDSprites)
def load_noisy_dsprites(path: str | None = None, **options: Any) -> NoisyDSprites:
    """Noisy-dSprites (see :class:`NoisyDSprites`)."""
    base = _base(path, "noisy_dsprites", options, ("seed", "fresh"))
    return NoisyDSprites(base, **options)


@register("scream_dsprites", "dSprites on crops of The Scream (scream_path=...) (3x64x64)",
          ScreamDSprites)
def load_scream_dsprites(path: str | None = None, **options: Any) -> ScreamDSprites:
    """Scream-dSprites (see :class:`ScreamDSprites`); ``scream_path`` = the user's picture."""
    base = _base(path, "scream_dsprites", options, ("seed", "fresh", "scream_path"))
    return ScreamDSprites(base, **options)
