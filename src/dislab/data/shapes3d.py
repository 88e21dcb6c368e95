"""Shapes3D (3dshapes): the official ``3dshapes.h5`` loader and a procedural renderer.

Factors (C order of the official file, as the deepmind/3d-shapes README lists them):

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
  vectorised numpy ray caster of the official scene (sky band, walls with their corner, floor,
  the object at the centre), with the scene constants of :class:`Scene` fitted to real
  official frames (the animation in the deepmind/3d-shapes README). It is not pixel-identical
  to the real set (rendered with MuJoCo, with a faint wall texture) but matches its layout,
  sizes, colours and shading closely; ``docs/data.md`` gives the PSNR per frame and
  ``benchmarks/shapes3d_fidelity.py`` measures it.
* :func:`render_to_file` writes the procedural images in the official h5 format (full grid or
  a sub-grid); the loader reads them back identically. The data CLI
  (``dislab data render shapes3d --out FILE.h5``) calls ``render_to_file(path, **options)``.

Speed: the image of a factor vector is ``sum_s shading_s(geometry) * colour_s(hue)`` over the
surfaces floor, wall, object (+ white highlight and the fixed sky colour), where the
geometry is (shape, scale, orientation): only 4 x 8 x 15 = 480 shading maps exist. With
``cache="geometry"`` (default) each map is ray-cast once, on first use (``precompute=True``
does all 480 up front; the maps are shared by every instance in the process and, with
``cache_dir=``, kept on disk), and every later image is a cheap colourisation
(``benchmarks/shapes3d_render.py`` measures both; figures in ``docs/data.md``).
``cache="none"`` ray-casts every image. Both give bit-identical images.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, register

__all__ = [
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "FACTOR_VALUES",
    "SCENE",
    "SHAPE_NAMES",
    "Scene",
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
@dataclass(frozen=True)
class Scene:
    """Every constant of the procedural scene (world: y up, the object on the floor y = 0 at
    the origin; lengths in the units of the object sizes at scale 1).

    The camera orbits the object's vertical axis (``orientation`` = azimuth; 0 deg looks along
    -z at the back wall) at distance ``cam_dist`` and height ``cam_height``, looking
    horizontally (``cam_pitch_deg`` down). The room: floor ``y = 0``, back wall
    ``z = -room_back``, side walls ``x = +-room_side``, all walls ``wall_height`` high, a
    uniform sky above. Object sizes are multiplied by the scale value (0.75..1.25). Lighting,
    after MuJoCo's model (the official set was rendered with MuJoCo): ``ambient`` + a
    headlight shining along the view (``head_diffuse``) + a point light (``light_diffuse``,
    Lambert, hard shadow of the object on floor and walls) that moves with the camera:
    ``light_pos`` is its position when the azimuth is 0 (so shadows keep their direction in
    the image, as in the official frames); a white Blinn-Phong highlight on the object.

    Where the values come from: the 27 official frames of the deepmind/3d-shapes README's
    animation (see ``docs/data.md``, "How close the renderer is"). The room corner's image
    position over the orientation sweep gave ``room_side``/``room_back`` relative to
    ``cam_dist`` and the field of view; the rows of the sky/wall and wall/floor edges gave
    ``cam_height`` and ``wall_height``; object sizes came from the objects' extents; then all
    of them and the lighting were refined together by minimising the mean squared error of
    the rendered frames (``benchmarks/shapes3d_fit.py``). ``sky_rgb`` is the frames' mean sky
    colour. The cylinder is not in the frames: it is as wide as the cube and 1.15x as tall as
    wide (the README's sample grid).
    """

    cam_dist: float = 4.845  # the length unit is fixed by this choice; fitted below
    cam_height: float = 1.302  # fitted
    cam_pitch_deg: float = 0.1521  # fitted (the horizon is at mid-height of the image)
    fov_deg: float = 46.72  # vertical = horizontal field of view, fitted
    room_back: float = 6.128  # fitted (room corner)
    room_side: float = 6.04  # fitted (room corner)
    wall_height: float = 3.447  # fitted (sky/wall edge)
    sky_rgb: tuple[float, float, float] = (0.610, 0.884, 0.936)  # measured mean
    ambient: float = 0.3814  # fitted (the floor in the object's shadow)
    head_diffuse: float = 0.6138  # fitted (walls facing the camera vs side walls)
    light_pos: tuple[float, float, float] = (-4.007, 25.46, -7.586)  # fitted (shadows)
    light_diffuse: float = 0.5877  # fitted
    specular: float = 0.2154  # fitted
    shininess_squarings: int = 5  # Blinn-Phong exponent 2**5 = 32 (exact repeated squaring)
    cube_half: float = 0.6356  # fitted: cube half width (height = 2 * cube_half)
    cylinder_radius: float = 0.6356  # = cube_half (not in the frames)
    cylinder_height: float = 1.462  # = 2.3 * cube_half (not in the frames)
    sphere_radius: float = 0.7488  # fitted
    capsule_radius: float = 0.5902  # fitted
    capsule_height: float = 2.3  # fitted: total height, both hemispherical ends included


SCENE = Scene()
N_MAPS = 5  # shading maps per geometry: floor, wall, object, white highlight, sky
_EPS = 1e-6


def _hue_rgb(h: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(float(h), 1.0, 1.0), dtype=np.float32)


_HUE_RGB = np.stack([_hue_rgb(h) for h in FACTOR_VALUES[0]])  # (10, 3)


# -- analytic ray / object intersections (all arrays (M, 3) or (M,)) ----------------------------
def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _shape_dims(shape: np.ndarray, s: np.ndarray, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Radius (half width) and height of each object from its shape id and scale value."""
    radius = np.array([scene.cube_half, scene.cylinder_radius, scene.sphere_radius,
                       scene.capsule_radius])[shape] * s
    height = np.array([2.0 * scene.cube_half, scene.cylinder_height, 2.0 * scene.sphere_radius,
                       scene.capsule_height])[shape] * s
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




def _hit_object(o: np.ndarray, d: np.ndarray, shape: np.ndarray, s: np.ndarray, scene: Scene):
    """Nearest hit ``t`` (inf = miss) and unit normal of each ray with its own object."""
    t = np.full(o.shape[0], np.inf)
    n = np.zeros_like(o)
    radius, height = _shape_dims(shape, s, scene)
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


def _hit_room(o: np.ndarray, d: np.ndarray, scene: Scene):
    """Nearest room surface of each ray: ``t``, normal and kind (0 floor, 1 wall, 2 sky)."""
    big = 1e9

    def plane(num, den, cond):
        den = np.where(np.abs(den) > 1e-12, den, 1e-12)
        t = num / den
        return np.where(cond & (t > _EPS), t, big)

    t_floor = plane(-o[:, 1], d[:, 1], d[:, 1] < 0)
    t_back = plane(-scene.room_back - o[:, 2], d[:, 2], d[:, 2] < 0)
    t_left = plane(-scene.room_side - o[:, 0], d[:, 0], d[:, 0] < 0)
    t_right = plane(scene.room_side - o[:, 0], d[:, 0], d[:, 0] > 0)
    ts = np.stack([t_floor, t_back, t_left, t_right], axis=1)
    which = ts.argmin(axis=1)
    t = ts[np.arange(len(which)), which]
    normals = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    kind = np.where(which == 0, 0, 1)
    y = o[:, 1] + np.where(t < big, t, 0.0) * d[:, 1]
    kind = np.where((t >= big) | ((kind == 1) & (y > scene.wall_height)), 2, kind)
    return t, normals[which], kind


def _camera(azimuth_deg: np.ndarray, scene: Scene):
    """Camera origins ``(n, 3)`` and bases (right, up, forward) ``(n, 3, 3)``."""
    p = math.radians(scene.cam_pitch_deg)
    origin, basis = [], []
    for az in np.asarray(azimuth_deg, dtype=np.float64).reshape(-1).tolist():
        a = math.radians(az)
        sa, ca = math.sin(a), math.cos(a)
        origin.append([scene.cam_dist * sa, scene.cam_height, scene.cam_dist * ca])
        fwd = [-sa * math.cos(p), -math.sin(p), -ca * math.cos(p)]
        right = [ca, 0.0, -sa]
        up = np.cross(right, fwd)
        basis.append([right, up.tolist(), fwd])
    return np.array(origin).reshape(-1, 3), np.array(basis).reshape(-1, 3, 3)


def render_geometry(
    shape: np.ndarray,
    scale: np.ndarray,
    orientation: np.ndarray,
    size: int = IMAGE_SIZE,
    supersample: int = 2,
    scene: Scene = SCENE,
) -> np.ndarray:
    """Ray-cast the shading maps of ``n`` geometries: ``(n, N_MAPS, size, size)`` float32.

    ``shape`` (n,) int in 0..3, ``scale`` (n,) the scale *value* (0.75..1.25), ``orientation``
    (n,) the azimuth in degrees. The 5 maps weight the floor colour, the wall colour, the
    object colour, white (highlight) and the sky colour; an image is ``sum_s map_s * colour_s``
    (clipped to 1). Each pixel averages ``supersample**2`` rays (anti-aliasing).
    """
    shape = np.asarray(shape, dtype=np.int64).reshape(-1)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    n = shape.shape[0]
    ss = int(supersample)
    res = size * ss
    origin, basis = _camera(np.asarray(orientation, dtype=np.float64).reshape(-1), scene)
    half = math.tan(math.radians(scene.fov_deg) / 2.0)
    coords = (np.arange(res, dtype=np.float64) + 0.5) / res * 2.0 - 1.0
    px = np.broadcast_to(coords[None, :] * half, (res, res)).reshape(-1)
    py = np.broadcast_to(-coords[:, None] * half, (res, res)).reshape(-1)
    p = res * res
    # ray directions (n * p, 3)
    d = (px[None, :, None] * basis[:, None, 0, :] + py[None, :, None] * basis[:, None, 1, :]
         + basis[:, None, 2, :]).reshape(-1, 3)
    d = d / np.sqrt(_dot(d, d))[:, None]
    o = np.repeat(origin, p, axis=0)
    fwd = np.repeat(basis[:, 2, :], p, axis=0)
    shp = np.repeat(shape, p)
    scl = np.repeat(scale, p)

    t_obj, n_obj = _hit_object(o, d, shp, scl, scene)
    t_room, n_room, kind = _hit_room(o, d, scene)
    on_obj = t_obj < t_room
    kind = np.where(on_obj, 3, kind)  # 0 floor, 1 wall, 2 sky, 3 object
    t = np.where(on_obj, t_obj, np.where(kind == 2, 0.0, t_room))
    nrm = np.where(on_obj[:, None], n_obj, n_room)
    hit = o + t[:, None] * d

    # the light moves with the camera: light_pos is its place when the azimuth is 0
    az = [math.radians(a) for a in np.asarray(orientation, dtype=np.float64).reshape(-1).tolist()]
    lx, ly, lz = scene.light_pos
    light = np.array([[lx * math.cos(a) + lz * math.sin(a), ly,
                       -lx * math.sin(a) + lz * math.cos(a)] for a in az]).reshape(-1, 3)
    to_light = np.repeat(light, p, axis=0) - hit
    dist = np.sqrt(_dot(to_light, to_light))
    ldir = to_light / dist[:, None]
    # hard shadow of the object on the room (floor and walls)
    vis = np.ones(o.shape[0])
    room = np.flatnonzero((kind == 0) | (kind == 1))
    if room.size:
        start = hit[room] + 1e-4 * nrm[room]
        tb, _ = _hit_object(start, ldir[room], shp[room], scl[room], scene)
        vis[room] = np.where(tb < dist[room], 0.0, 1.0)
    ndotl = np.maximum(_dot(nrm, ldir), 0.0)
    ndoth = np.maximum(-_dot(nrm, fwd), 0.0)  # headlight: shines along the view direction
    shade = scene.ambient + scene.head_diffuse * ndoth + scene.light_diffuse * ndotl * vis
    # Blinn-Phong highlight of the point light on the object (white)
    hv = ldir - d
    hv = hv / np.sqrt(_dot(hv, hv))[:, None]
    spec = np.maximum(_dot(nrm, hv), 0.0)
    for _ in range(scene.shininess_squarings):
        spec = spec * spec
    spec = np.where(on_obj & (ndotl > 0), scene.specular * spec, 0.0)

    maps = np.zeros((N_MAPS, n * p))
    maps[0] = np.where(kind == 0, shade, 0.0)
    maps[1] = np.where(kind == 1, shade, 0.0)
    maps[2] = np.where(kind == 3, shade, 0.0)
    maps[3] = spec
    maps[4] = np.where(kind == 2, 1.0, 0.0)
    maps = maps.reshape(N_MAPS, n, size, ss, size, ss)
    acc = np.zeros((N_MAPS, n, size, size))
    for i in range(ss):  # explicit sum: same result whatever the batch
        for j in range(ss):
            acc = acc + maps[:, :, :, i, :, j]
    acc = acc * (1.0 / (ss * ss))
    return np.ascontiguousarray(acc.transpose(1, 0, 2, 3)).astype(np.float32)


def _colourise(
    maps: np.ndarray, floor: np.ndarray, wall: np.ndarray, obj: np.ndarray,
    scene: Scene = SCENE,
) -> np.ndarray:
    """uint8 images ``(n, 3, H, W)`` from shading maps ``(n, N_MAPS, H, W)`` and hue ids.

    Each image is its ``(3, N_MAPS)`` matrix of surface colours (floor, wall and object hue,
    white, sky) times its maps: one small matrix product per image, clipped to 0..255.
    """
    n = maps.shape[0]
    colours = np.empty((n, 3, N_MAPS), np.float32)
    colours[:, :, 0] = _HUE_RGB[floor]
    colours[:, :, 1] = _HUE_RGB[wall]
    colours[:, :, 2] = _HUE_RGB[obj]
    colours[:, :, 3] = 1.0
    colours[:, :, 4] = np.asarray(scene.sky_rgb, dtype=np.float32)
    colours *= np.float32(255.0)
    img = np.matmul(colours, maps.reshape(n, N_MAPS, -1)).reshape(n, 3, *maps.shape[2:])
    np.clip(img, 0.0, 255.0, out=img)
    return np.rint(img, out=img).astype(np.uint8)


def _scene_key() -> str:
    """Short hash of every scene constant: names the on-disk cache of shading maps."""
    import hashlib

    consts = (repr(SCENE), N_MAPS, IMAGE_SIZE, 2)
    return hashlib.sha1(repr(consts).encode()).hexdigest()[:12]


class _GeometryCache:
    """The 480 shading maps of one ``supersample`` setting, filled on demand."""

    def __init__(self, supersample: int) -> None:
        n_geo = FACTOR_SIZES[3] * FACTOR_SIZES[4] * FACTOR_SIZES[5]
        self.supersample = supersample
        self.maps = np.zeros((n_geo, N_MAPS, IMAGE_SIZE, IMAGE_SIZE), np.float32)
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
        from dislab.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, self.maps)


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
    Refuses to overwrite an existing file unless ``overwrite=True``; writes a temporary file beside
    it first (:mod:`dislab.io`), so an interrupted run leaves no half file under ``path``. Written:
    ``images`` (N, 64, 64, 3) uint8 and ``labels`` (N, 6) float64 in C order, as the official file.
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
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"shapes3d -> {os.path.basename(path)}", unit="batch")
    from dislab.io import atomic_path

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        images = f.create_dataset("images", shape=(n, IMAGE_SIZE, IMAGE_SIZE, 3),
                                  dtype=np.uint8)
        f.create_dataset("labels", data=labels.astype(np.float64))
        for s in starts:
            x = data.images_uint8(factors[s:s + batch_size])
            images[s:s + len(x)] = x.transpose(0, 2, 3, 1)
    return path


@register("shapes3d", "Shapes3D / 3dshapes: floor, wall, object hue, scale, shape, azimuth "
                      "(official .h5 or procedural)", Shapes3D)
def _load_shapes3d(path: str | None = None, **options: Any) -> GroundTruthData:
    if path is None:
        _check_options("shapes3d", options, ["cache", "precompute", "supersample", "cache_dir"])
        return Shapes3D(**options)
    _check_options("shapes3d", options, ["in_memory"])
    return Shapes3DFile(path, **options)
