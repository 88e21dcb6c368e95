"""Shapes3D (3dshapes): the official ``3dshapes.h5`` loader and a procedural renderer.

Factors (C order of the official file, REFERENCE.md §2.2):

=============  ======  ==================================================================
factor         values  official label values
=============  ======  ==================================================================
floor_hue      10      ``linspace(0, 1, 10, endpoint=False)`` (HSV hue, full S and V)
wall_hue       10      same
object_hue     10      same
scale          8       ``linspace(0.75, 1.25, 8)``
shape          4       0 cube, 1 cylinder, 2 sphere, 3 capsule
orientation    15      ``linspace(-30, 30, 15)`` degrees (camera azimuth around the object)
=============  ======  ==================================================================

Observations are RGB images ``(3, 64, 64)``.

* ``dislab.data.load("shapes3d", path="3dshapes.h5")`` reads the official file (datasets
  ``images`` (480000, 64, 64, 3) uint8 and ``labels`` (480000, 6) float64; download from
  https://github.com/deepmind/3d-shapes). A smaller file on a sub-grid is accepted: the grid
  is deduced from ``labels``.
* ``dislab.data.load("shapes3d")`` renders the images procedurally on the same grid: a
  vectorised numpy ray caster of a room (floor, back and side walls) with the object standing
  on the floor, lit by a directional light (ambient + Lambert + a little specular, soft shadow),
  seen by a camera that orbits the object. It is not pixel-identical to the real set (which
  was rendered with MuJoCo) but has the same factors, layout and colours.
* :func:`render_to_file` writes the procedural images in the official h5 format (full grid or
  a sub-grid); the loader reads them back identically. The data CLI
  (``dislab data render shapes3d --out FILE.h5``) calls ``render_to_file(path, **options)``.

Speed: the image of a factor vector is ``sum_s shading_s(geometry) * colour_s(hue)`` over the
surfaces floor, wall, object (+ white specular), where the geometry is (shape, scale,
orientation): only 4 x 8 x 15 = 480 shading maps exist. With ``cache="geometry"`` (default)
each map is ray-cast once, on first use (``precompute=True`` does all 480 up front, about
10 s; the maps are shared by every instance in the process and, with ``cache_dir=``, kept on
disk), and every later image is a cheap colourisation (~10,000 images/s on one core; see
``benchmarks/shapes3d_render.py``). ``cache="none"`` ray-casts every image (~30-60 images/s).
Both give bit-identical images.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, register

__all__ = [
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "FACTOR_VALUES",
    "SHAPE_NAMES",
    "Shapes3D",
    "Shapes3DFile",
    "render_geometry",
    "render_to_file",
]

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
#: Official label values of each factor (the ``labels`` columns of ``3dshapes.h5``).
FACTOR_VALUES: tuple[np.ndarray, ...] = (
    np.linspace(0.0, 1.0, 10, endpoint=False),
    np.linspace(0.0, 1.0, 10, endpoint=False),
    np.linspace(0.0, 1.0, 10, endpoint=False),
    np.linspace(0.75, 1.25, 8),
    np.arange(4, dtype=np.float64),
    np.linspace(-30.0, 30.0, 15),
)
IMAGE_SIZE = 64

# -- scene (world: y up, object standing on the floor y = 0 at the origin) -------------------
_ROOM_HALF = 4.0  # back wall at z = -4, side walls at x = +-4
_CAM_DIST = 5.0  # camera distance from the object's vertical axis
_CAM_HEIGHT = 2.2
_LOOK_AT = np.array([0.0, 1.0, 0.0])
_FOV_DEG = 36.0
_LIGHT = np.array([-0.4, 1.0, 0.9])
_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)
_AMBIENT = 0.42
_DIFFUSE = 0.6
_SPECULAR = 0.25  # object only, white
_SHININESS_SQUARINGS = 5  # exponent 2**5 = 32, by repeated squaring (exact, batch-independent)
_SOFT_SHADOW = 0.06  # spread of the jittered light directions (radians, roughly)
_EPS = 1e-6


def _hue_rgb(h: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(float(h), 1.0, 1.0), dtype=np.float32)


_HUE_RGB = np.stack([_hue_rgb(h) for h in FACTOR_VALUES[0]])  # (10, 3)


def _light_samples() -> np.ndarray:
    """Deterministic jittered light directions for the soft shadow, ``(5, 3)``."""
    up = np.array([0.0, 1.0, 0.0])
    a = np.cross(_LIGHT, up)
    a /= np.linalg.norm(a)
    b = np.cross(_LIGHT, a)
    out = [_LIGHT]
    for da, db in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        v = _LIGHT + _SOFT_SHADOW * (da * a + db * b)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


_LIGHTS = _light_samples()


# -- analytic ray / object intersections (all arrays (M, 3) or (M,)) ----------------------------
def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


_RADIUS = np.array([0.55, 0.5, 0.62, 0.42])  # cube half width, cylinder, sphere, capsule radius
_HEIGHT = np.array([1.1, 1.15, 1.24, 1.55])


def _shape_dims(shape: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radius (half width) and height of each object from its shape id and scale."""
    radius = _RADIUS[shape] * s
    height = _HEIGHT[shape] * s
    return radius, height


def _hit_sphere(o, d, cy, r):
    oc = o.copy()
    oc[:, 1] -= cy
    b = _dot(oc, d)
    c = _dot(oc, oc) - r * r
    disc = b * b - c
    ok = disc >= 0
    t = np.where(ok, -b - np.sqrt(np.where(ok, disc, 0.0)), np.inf)
    t = np.where(t > _EPS, t, np.inf)
    p = o + t[:, None] * d
    n = p.copy()
    n[:, 1] -= cy
    n = n / r[:, None]
    return t, n


def _hit_vertical_cylinder(o, d, r, y0, y1):
    """Side of a vertical cylinder of radius r around the y axis with y in [y0, y1]."""
    a = d[:, 0] * d[:, 0] + d[:, 2] * d[:, 2]
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    c = o[:, 0] * o[:, 0] + o[:, 2] * o[:, 2] - r * r
    disc = b * b - a * c
    ok = (disc >= 0) & (a > 1e-12)
    t = np.where(ok, (-b - np.sqrt(np.where(ok, disc, 0.0))) / np.where(ok, a, 1.0), np.inf)
    y = o[:, 1] + t * d[:, 1]
    t = np.where((t > _EPS) & (y >= y0) & (y <= y1), t, np.inf)
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    n = np.stack([p[:, 0], np.zeros_like(t), p[:, 2]], axis=1) / r[:, None]
    return t, n


def _hit_top_disk(o, d, r, h):
    dy = np.where(np.abs(d[:, 1]) > 1e-12, d[:, 1], 1e-12)
    t = (h - o[:, 1]) / dy
    x = o[:, 0] + t * d[:, 0]
    z = o[:, 2] + t * d[:, 2]
    t = np.where((t > _EPS) & (x * x + z * z <= r * r) & (d[:, 1] < 0), t, np.inf)
    n = np.zeros_like(o)
    n[:, 1] = 1.0
    return t, n


def _hit_box(o, d, r, h):
    lo = np.stack([-r, np.zeros_like(r), -r], axis=1)
    hi = np.stack([r, h, r], axis=1)
    dd = np.where(np.abs(d) > 1e-12, d, 1e-12)
    t1 = (lo - o) / dd
    t2 = (hi - o) / dd
    tnear = np.minimum(t1, t2)
    tfar = np.maximum(t1, t2)
    tmin = tnear.max(axis=1)
    tmax = tfar.min(axis=1)
    t = np.where((tmax >= tmin) & (tmin > _EPS), tmin, np.inf)
    axis = tnear.argmax(axis=1)
    n = np.zeros_like(o)
    rows = np.arange(o.shape[0])
    n[rows, axis] = -np.sign(dd[rows, axis])
    return t, n


def _closest(*hits):
    t = hits[0][0].copy()
    n = hits[0][1].copy()
    for ti, ni in hits[1:]:
        closer = ti < t
        t = np.where(closer, ti, t)
        n = np.where(closer[:, None], ni, n)
    return t, n


def _hit_object(o: np.ndarray, d: np.ndarray, shape: np.ndarray, s: np.ndarray):
    """Nearest hit ``t`` (inf = miss) and unit normal of each ray with its own object."""
    t = np.full(o.shape[0], np.inf)
    n = np.zeros_like(o)
    radius, height = _shape_dims(shape, s)
    # cull with the bounding sphere first: exact tests only for rays that may hit
    bound2 = radius * radius * 2.0 + height * height / 4.0
    bt, _ = _hit_sphere(o, d, height / 2.0, np.sqrt(bound2))
    inside = o[:, 0] ** 2 + (o[:, 1] - height / 2.0) ** 2 + o[:, 2] ** 2 <= bound2
    cand = np.isfinite(bt) | inside
    for k in range(4):
        m = (shape == k) & cand
        if not m.any():
            continue
        oo, dk, r, h = o[m], d[m], radius[m], height[m]
        if k == 0:
            tk, nk = _hit_box(oo, dk, r, h)
        elif k == 1:
            tk, nk = _closest(_hit_vertical_cylinder(oo, dk, r, 0.0, h),
                              _hit_top_disk(oo, dk, r, h))
        elif k == 2:
            tk, nk = _hit_sphere(oo, dk, h / 2.0, r)
        else:
            tk, nk = _closest(
                _hit_vertical_cylinder(oo, dk, r, r, h - r),
                _hit_sphere(oo, dk, r, r),
                _hit_sphere(oo, dk, h - r, r),
            )
        t[m] = tk
        n[m] = nk
    return t, n


def _hit_room(o: np.ndarray, d: np.ndarray):
    """Nearest room surface: ``t``, normal and ``is_floor`` of each ray (walls otherwise)."""
    big = 1e9

    def plane(num, den, cond):
        den = np.where(np.abs(den) > 1e-12, den, 1e-12)
        t = num / den
        return np.where(cond & (t > _EPS), t, big)

    t_floor = plane(-o[:, 1], d[:, 1], d[:, 1] < 0)
    t_back = plane(-_ROOM_HALF - o[:, 2], d[:, 2], d[:, 2] < 0)
    t_left = plane(-_ROOM_HALF - o[:, 0], d[:, 0], d[:, 0] < 0)
    t_right = plane(_ROOM_HALF - o[:, 0], d[:, 0], d[:, 0] > 0)
    ts = np.stack([t_floor, t_back, t_left, t_right], axis=1)
    which = ts.argmin(axis=1)
    t = ts[np.arange(len(which)), which]
    normals = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    return t, normals[which], which == 0


def _camera(azimuth_deg: np.ndarray):
    """Camera origins ``(n, 3)`` and bases (right, up, forward) ``(n, 3, 3)``."""
    a = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    origin = np.stack([_CAM_DIST * np.sin(a), np.full_like(a, _CAM_HEIGHT), _CAM_DIST * np.cos(a)],
                      axis=1)
    fwd = _LOOK_AT[None, :] - origin
    fwd /= np.sqrt(_dot(fwd, fwd))[:, None]
    up0 = np.array([0.0, 1.0, 0.0])
    right = np.cross(fwd, up0)
    right /= np.sqrt(_dot(right, right))[:, None]
    up = np.cross(right, fwd)
    return origin, np.stack([right, up, fwd], axis=1)


def render_geometry(
    shape: np.ndarray,
    scale: np.ndarray,
    orientation: np.ndarray,
    size: int = IMAGE_SIZE,
    supersample: int = 2,
) -> np.ndarray:
    """Ray-cast the shading maps of ``n`` geometries: ``(n, 4, size, size)`` float32.

    ``shape`` (n,) int in 0..3, ``scale`` (n,) the scale *value* (0.75..1.25), ``orientation``
    (n,) the azimuth in degrees. The 4 maps weight the floor colour, the wall colour, the
    object colour and white (specular); an image is ``sum_s map_s * colour_s``. Each pixel
    averages ``supersample**2`` rays (anti-aliasing).
    """
    shape = np.asarray(shape, dtype=np.int64).reshape(-1)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    n = shape.shape[0]
    ss = int(supersample)
    res = size * ss
    origin, basis = _camera(np.asarray(orientation, dtype=np.float64).reshape(-1))
    half = math.tan(math.radians(_FOV_DEG) / 2.0)
    coords = (np.arange(res, dtype=np.float64) + 0.5) / res * 2.0 - 1.0
    px = np.broadcast_to(coords[None, :] * half, (res, res)).reshape(-1)
    py = np.broadcast_to(-coords[:, None] * half, (res, res)).reshape(-1)
    p = res * res
    # ray directions (n * p, 3)
    d = (px[None, :, None] * basis[:, None, 0, :] + py[None, :, None] * basis[:, None, 1, :]
         + basis[:, None, 2, :]).reshape(-1, 3)
    d = d / np.sqrt(_dot(d, d))[:, None]
    o = np.repeat(origin, p, axis=0)
    shp = np.repeat(shape, p)
    scl = np.repeat(scale, p)

    t_obj, n_obj = _hit_object(o, d, shp, scl)
    t_room, n_room, is_floor = _hit_room(o, d)
    on_obj = t_obj < t_room
    t = np.where(on_obj, t_obj, t_room)
    nrm = np.where(on_obj[:, None], n_obj, n_room)
    hit = o + t[:, None] * d

    # soft shadow on the room: fraction of jittered light directions not blocked by the object
    vis = np.ones(o.shape[0])
    room = np.flatnonzero(~on_obj)
    if room.size:
        # keep only points whose light ray passes near the object's bounding sphere (with a
        # margin for the jittered directions); the rest are lit by every light sample
        r_b, h_b = _shape_dims(shp[room], scl[room])
        w = -hit[room]
        w[:, 1] += h_b / 2.0
        ww = _dot(w, w)
        proj = np.maximum(_dot(w, np.broadcast_to(_LIGHT, w.shape)), 0.0)
        reach = np.sqrt(2.0 * r_b * r_b + h_b * h_b / 4.0) + 0.15 * np.sqrt(ww)
        room = room[ww - proj * proj <= reach * reach]
    if room.size:
        start = hit[room] + 1e-4 * nrm[room]
        blocked = np.zeros(room.size)
        for light in _LIGHTS:
            dl = np.broadcast_to(light, start.shape)
            tb, _ = _hit_object(start, dl, shp[room], scl[room])
            blocked += np.isfinite(tb)
        vis[room] = 1.0 - blocked / len(_LIGHTS)
    ndotl = np.maximum(_dot(nrm, np.broadcast_to(_LIGHT, nrm.shape)), 0.0)
    shade = _AMBIENT + _DIFFUSE * ndotl * vis
    # Blinn-Phong highlight on the object (white)
    hv = _LIGHT[None, :] - d
    hv = hv / np.sqrt(_dot(hv, hv))[:, None]
    spec = np.maximum(_dot(nrm, hv), 0.0)
    for _ in range(_SHININESS_SQUARINGS):
        spec = spec * spec
    spec = np.where(on_obj, _SPECULAR * spec, 0.0)

    maps = np.zeros((4, n * p))
    maps[0] = np.where(~on_obj & is_floor, shade, 0.0)
    maps[1] = np.where(~on_obj & ~is_floor, shade, 0.0)
    maps[2] = np.where(on_obj, shade, 0.0)
    maps[3] = spec
    maps = maps.reshape(4, n, size, ss, size, ss)
    acc = np.zeros((4, n, size, size))
    for i in range(ss):  # explicit sum: same result whatever the batch
        for j in range(ss):
            acc = acc + maps[:, :, :, i, :, j]
    acc = acc * (1.0 / (ss * ss))
    return np.ascontiguousarray(acc.transpose(1, 0, 2, 3)).astype(np.float32)


def _colourise(
    maps: np.ndarray, floor: np.ndarray, wall: np.ndarray, obj: np.ndarray
) -> np.ndarray:
    """uint8 images ``(n, 3, H, W)`` from shading maps ``(n, 4, H, W)`` and hue ids ``(n,)``."""
    cf = _HUE_RGB[floor][:, :, None, None]
    cw = _HUE_RGB[wall][:, :, None, None]
    co = _HUE_RGB[obj][:, :, None, None]
    img = (maps[:, 0:1] * cf + maps[:, 1:2] * cw) + (maps[:, 2:3] * co + maps[:, 3:4])
    img *= np.float32(255.0)
    np.clip(img, 0.0, 255.0, out=img)
    return np.rint(img, out=img).astype(np.uint8)


def _scene_key() -> str:
    """Short hash of every scene constant: names the on-disk cache of shading maps."""
    import hashlib

    consts = (_ROOM_HALF, _CAM_DIST, _CAM_HEIGHT, tuple(_LOOK_AT), _FOV_DEG, tuple(_LIGHT),
              _AMBIENT, _DIFFUSE, _SPECULAR, _SHININESS_SQUARINGS, _SOFT_SHADOW,
              tuple(_RADIUS), tuple(_HEIGHT), IMAGE_SIZE, 1)
    return hashlib.sha1(repr(consts).encode()).hexdigest()[:12]


class _GeometryCache:
    """The 480 shading maps of one ``supersample`` setting, filled on demand."""

    def __init__(self, supersample: int) -> None:
        n_geo = FACTOR_SIZES[3] * FACTOR_SIZES[4] * FACTOR_SIZES[5]
        self.supersample = supersample
        self.maps = np.zeros((n_geo, 4, IMAGE_SIZE, IMAGE_SIZE), np.float32)
        self.have = np.zeros(n_geo, dtype=bool)

    def _file(self, cache_dir: str) -> str:
        return os.path.join(cache_dir, f"shapes3d_maps_{_scene_key()}_ss{self.supersample}.npy")

    def load(self, cache_dir: str) -> None:
        path = self._file(cache_dir)
        if self.have.all() or not os.path.isfile(path):
            return
        try:
            maps = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return  # unreadable cache: it is rebuilt (and rewritten) on use
        if maps.shape == self.maps.shape and maps.dtype == np.float32:
            self.maps[...] = maps
            self.have[:] = True

    def save(self, cache_dir: str) -> None:
        os.makedirs(cache_dir, exist_ok=True)
        path = self._file(cache_dir)
        tmp = f"{path}.{os.getpid()}.partial.npy"
        np.save(tmp, self.maps)
        os.replace(tmp, path)


_SHARED: dict[int, _GeometryCache] = {}


def _shared_cache(supersample: int) -> _GeometryCache:
    if supersample not in _SHARED:
        _SHARED[supersample] = _GeometryCache(supersample)
    return _SHARED[supersample]


def _check_options(name: str, options: Mapping[str, Any], allowed: Sequence[str]) -> None:
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise DataError(
            f"{name}: unknown option(s) {bad}; valid options are {sorted(allowed)}."
        )


class Shapes3D(GroundTruthData):
    """Procedurally rendered Shapes3D on the official grid (10, 10, 10, 8, 4, 15).

    ``cache``: ``"geometry"`` (default) ray-casts each of the 480 (shape, scale,
    orientation) shading maps once and colourises per image; ``"none"`` ray-casts every
    image (slow; same pixels). The geometry cache is shared by all instances in a process.
    ``precompute=True`` fills it now (with a progress bar). ``cache_dir`` (optional) keeps
    the complete cache on disk (31 MB ``.npy``, named by a hash of the scene) so other
    processes skip the ~10 s build. ``supersample`` = rays per pixel side (2: 4 rays/pixel).
    """

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    observation_shape = (3, IMAGE_SIZE, IMAGE_SIZE)
    source = "procedural"

    def __init__(self, cache: str = "geometry", precompute: bool = False,
                 supersample: int = 2, cache_dir: str | os.PathLike[str] | None = None) -> None:
        if cache not in ("geometry", "none"):
            raise DataError(f"shapes3d: cache must be 'geometry' or 'none', got {cache!r}.")
        if int(supersample) < 1:
            raise DataError(f"shapes3d: supersample must be >= 1, got {supersample}.")
        self.cache = cache
        self.supersample = int(supersample)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self._geo = _shared_cache(self.supersample)
        if self.cache_dir is not None and cache == "geometry":
            self._geo.load(self.cache_dir)
        if precompute:
            self.precompute()

    @property
    def factor_values(self) -> dict[str, np.ndarray]:
        """Official label values of each factor, by name (see the module docstring)."""
        return dict(zip(FACTOR_NAMES, FACTOR_VALUES))

    @property
    def value_names(self) -> dict[str, tuple[str, ...]]:
        """Names of the grid positions of the categorical factor ``shape``."""
        return {"shape": SHAPE_NAMES}

    def _render_geo(self, geo: np.ndarray) -> np.ndarray:
        scale_i, rest = np.divmod(geo, FACTOR_SIZES[4] * FACTOR_SIZES[5])
        shape_i, orient_i = np.divmod(rest, FACTOR_SIZES[5])
        return render_geometry(shape_i, FACTOR_VALUES[3][scale_i], FACTOR_VALUES[5][orient_i],
                               supersample=self.supersample)

    def _ensure(self, geo: np.ndarray, progress: bool = False) -> None:
        c = self._geo
        todo = np.unique(geo[~c.have[geo]])
        if todo.size == 0:
            return
        chunks = [todo[i:i + 16] for i in range(0, len(todo), 16)]
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="shapes3d: rendering geometry", unit="chunk")
        for chunk in chunks:
            c.maps[chunk] = self._render_geo(chunk)
            c.have[chunk] = True
        if self.cache_dir is not None and c.have.all():
            c.save(self.cache_dir)

    def precompute(self, progress: bool = True) -> Shapes3D:
        """Ray-cast all 480 shading maps now (30 MB, shared by every instance); returns self."""
        self._ensure(np.arange(len(self._geo.have)), progress=progress)
        return self

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        f = self.factors(index)
        geo = (f[:, 3] * FACTOR_SIZES[4] + f[:, 4]) * FACTOR_SIZES[5] + f[:, 5]
        if self.cache == "geometry":
            self._ensure(geo)
            maps = self._geo.maps[geo]
        else:
            uniq, inv = np.unique(geo, return_inverse=True)
            maps = self._render_geo(uniq)[inv.reshape(-1)]
        return _colourise(maps, f[:, 0], f[:, 1], f[:, 2])


def _read_grid(labels: np.ndarray, path: str) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Deduce the factor grid from ``labels`` (N, 6) and check it is complete and in C order."""
    values = [np.unique(labels[:, j]) for j in range(labels.shape[1])]
    sizes = tuple(int(len(v)) for v in values)
    n = labels.shape[0]
    if math.prod(sizes) != n:
        raise DataError(
            f"shapes3d: {path}: labels do not form a full factorial grid: {n} rows but the "
            f"distinct values per factor {dict(zip(FACTOR_NAMES, sizes))} give "
            f"{math.prod(sizes)} combinations. Use the official 3dshapes.h5 or a file written "
            "by dislab.data.shapes3d.render_to_file."
        )
    grids = np.meshgrid(*values, indexing="ij")
    expected = np.stack([g.reshape(-1) for g in grids], axis=1)
    if not np.allclose(labels, expected, rtol=0, atol=1e-6):
        raise DataError(
            f"shapes3d: {path}: rows are not in the official C order (floor_hue slowest, "
            "orientation fastest); re-create the file with render_to_file or the official data."
        )
    return sizes, values


class Shapes3DFile(GroundTruthData):
    """Shapes3D read from the official ``3dshapes.h5`` (or a sub-grid file of the same format).

    ``in_memory=True`` (default, as disentanglement_lib) reads all images into RAM
    (5.9 GB for the full file); ``in_memory=False`` reads each batch from disk with h5py.
    """

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    observation_shape = (3, IMAGE_SIZE, IMAGE_SIZE)
    source = "file"

    def __init__(self, path: str | os.PathLike[str], in_memory: bool = True) -> None:
        import h5py

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise DataError(
                f"shapes3d: file not found: {self.path!r}. Download 3dshapes.h5 from "
                "https://github.com/deepmind/3d-shapes (or write one with `dislab data render "
                "shapes3d --out FILE.h5`) and pass its path (path= / --path), or leave the "
                "path out to render Shapes3D procedurally."
            )
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as e:
            raise DataError(f"shapes3d: {self.path!r} is not a readable HDF5 file ({e}).") from e
        missing = [k for k in ("images", "labels") if k not in self._h5]
        if missing:
            raise DataError(
                f"shapes3d: {self.path!r} lacks dataset(s) {missing} (has "
                f"{sorted(self._h5.keys())}); the official 3dshapes.h5 holds 'images' "
                "(N, 64, 64, 3) uint8 and 'labels' (N, 6) float64."
            )
        images, labels = self._h5["images"], self._h5["labels"]
        if (images.ndim != 4 or tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE, 3)
                or images.dtype != np.uint8):
            raise DataError(
                f"shapes3d: {self.path!r}: 'images' has shape {images.shape} dtype "
                f"{images.dtype}; expected (N, 64, 64, 3) uint8 as in the official file."
            )
        if labels.ndim != 2 or labels.shape != (images.shape[0], 6):
            raise DataError(
                f"shapes3d: {self.path!r}: 'labels' has shape {labels.shape}; expected "
                f"({images.shape[0]}, 6) (one row of 6 factor values per image)."
            )
        self.factor_sizes, self._values = _read_grid(np.asarray(labels, np.float64), self.path)
        self.in_memory = bool(in_memory)
        if self.in_memory:
            self._images = images[()]
            self._h5.close()
            self._h5 = None
        else:
            self._images = images

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles cannot be pickled (DataLoader workers): reopen them on unpickling
        state = dict(self.__dict__)
        if not self.in_memory:
            state["_h5"] = state["_images"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if not self.in_memory:
            import h5py

            self._h5 = h5py.File(self.path, "r")
            self._images = self._h5["images"]

    @property
    def factor_values(self) -> dict[str, np.ndarray]:
        """The label values of each factor found in the file, by name."""
        return dict(zip(FACTOR_NAMES, self._values))

    @property
    def value_names(self) -> dict[str, tuple[str, ...]]:
        """Names of the shapes present in the file."""
        return {"shape": tuple(SHAPE_NAMES[int(round(v))] if 0 <= v <= 3 else str(v)
                               for v in self._values[4])}

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        if self.in_memory:
            out = self._images[index]
        else:
            uniq, inv = np.unique(index, return_inverse=True)
            out = self._images[uniq][inv.reshape(-1)]
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _subset_indices(subset: Mapping[str, Sequence[int]] | None) -> list[np.ndarray]:
    subset = dict(subset or {})
    unknown = sorted(set(subset) - set(FACTOR_NAMES))
    if unknown:
        raise DataError(f"shapes3d: unknown factor(s) {unknown} in subset; factors are "
                        f"{list(FACTOR_NAMES)}.")
    out = []
    for name, size in zip(FACTOR_NAMES, FACTOR_SIZES):
        idx = np.asarray(subset.get(name, range(size)), dtype=np.int64).reshape(-1)
        bad = idx.size == 0 or idx.min() < 0 or idx.max() >= size
        if bad or len(set(idx.tolist())) != idx.size:
            raise DataError(f"shapes3d: subset[{name!r}] must be distinct value indices in "
                            f"0..{size - 1}, got {idx.tolist()}.")
        out.append(np.sort(idx))
    return out


def render_to_file(
    path: str | os.PathLike[str],
    subset: Mapping[str, Sequence[int]] | None = None,
    batch_size: int = 4096,
    progress: bool = True,
    overwrite: bool = False,
    **options: Any,
) -> str:
    """Render Shapes3D and write it in the official ``3dshapes.h5`` format; returns the path.

    ``subset`` maps factor names to the value indices to keep (e.g. ``{"scale": [0, 7]}``);
    the default is the full official grid (480,000 images, 5.9 GB). ``options`` go to
    :class:`Shapes3D` (``supersample``; ``cache``/``precompute`` are accepted and ignored).
    Refuses to overwrite an existing file unless ``overwrite=True``; writes to ``path.partial``
    first, so an interrupted run leaves no half file under ``path``. Written: ``images``
    (N, 64, 64, 3) uint8 and ``labels`` (N, 6) float64 in C order, as the official file.
    """
    import h5py

    _check_options("shapes3d render_to_file", options,
                   ["cache", "precompute", "supersample", "cache_dir"])
    options["cache"] = "geometry"  # writing the grid uses every geometry: always cache them
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise DataError(f"shapes3d: {path!r} exists; choose another path or pass overwrite=True.")
    keep = _subset_indices(subset)
    data = Shapes3D(**options)
    grids = np.meshgrid(*keep, indexing="ij")
    factors = np.stack([g.reshape(-1) for g in grids], axis=1)
    labels = np.stack([FACTOR_VALUES[j][factors[:, j]] for j in range(6)], axis=1)
    n = factors.shape[0]
    tmp = path + ".partial"
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"shapes3d -> {os.path.basename(path)}", unit="batch")
    try:
        with h5py.File(tmp, "w") as f:
            images = f.create_dataset("images", shape=(n, IMAGE_SIZE, IMAGE_SIZE, 3),
                                      dtype=np.uint8)
            f.create_dataset("labels", data=labels.astype(np.float64))
            for s in starts:
                x = data.images_uint8(factors[s:s + batch_size])
                images[s:s + len(x)] = x.transpose(0, 2, 3, 1)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
    return path


@register("shapes3d", "Shapes3D / 3dshapes: floor, wall, object hue, scale, shape, azimuth "
                      "(official .h5 or procedural)")
def _load_shapes3d(path: str | None = None, **options: Any) -> GroundTruthData:
    if path is None:
        _check_options("shapes3d", options, ["cache", "precompute", "supersample", "cache_dir"])
        return Shapes3D(**options)
    _check_options("shapes3d", options, ["in_memory"])
    return Shapes3DFile(path, **options)
