"""How close a procedural data set is to official images of the real one.

dislab renders dSprites and Shapes3D itself when no official file is given. This module
scores those renders against official frames (e.g. the animations and figures published in
deepmind/dsprites-dataset and deepmind/3d-shapes):

* binary data (dSprites): intersection over union (IoU) of the sprite masks;
* colour data (Shapes3D, ...): PSNR in dB, after box-downsampling frames larger than the data
  set's images to its size.

For each frame it reports the score of the render at the frame's known factors (when given)
and the best score over a search set of grid images: the whole grid, or a neighbourhood of
the known (or estimated) factors. Command line::

    python -m dislab.data.fidelity --data dsprites \\
        --frames shared/reference_images/dsprites_official_frames.npz --factors dsprites-gif
    python -m dislab.data.fidelity --data shapes3d --crop 2 --search none \\
        --frames shared/reference_images/shapes3d_official_frames.npz --factors shapes3d-gif

Python::

    from dislab.data import fidelity, load
    rep = fidelity.evaluate(load("dsprites"), frames, factors)

Frames are ``(n, H, W)`` (binary, any values: non-zero is "on") or ``(n, H, W, 3)`` uint8 or
float in [0, 1]. Factors are official-grid classes ``(n, K)`` in the data set's factor order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData

__all__ = [
    "iou",
    "psnr",
    "box_downsample",
    "render_frames",
    "neighbourhood",
    "best_match",
    "estimate_dsprites_position",
    "dsprites_gif_factors",
    "SHAPES3D_GIF_FACTORS",
    "shapes3d_gif_factors",
    "evaluate",
    "summary",
    "side_by_side",
    "main",
]


# -- scores -------------------------------------------------------------------------------------
def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of binary masks ``(..., H, W)`` -> ``(...)`` float64.

    Non-zero entries are "on"; ``a`` and ``b`` broadcast. Two empty masks have IoU 1.
    """
    a = np.asarray(a) != 0
    b = np.asarray(b) != 0
    inter = np.count_nonzero(a & b, axis=(-2, -1))
    union = np.count_nonzero(a | b, axis=(-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0, ndim: int = 3) -> np.ndarray:
    """Peak signal-to-noise ratio ``10 log10(peak^2 / MSE)`` in dB over the last ``ndim`` axes.

    ``a``, ``b``: images in the same range (``peak`` 1.0 for [0, 1], 255 for uint8), shapes
    broadcasting to ``(..., *image)`` with ``len(image) == ndim`` (3 for ``(H, W, C)``).
    Identical images give ``inf``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mse = np.mean((a - b) ** 2, axis=tuple(range(-ndim, 0)))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak * peak / mse)


def _box_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights: output pixel ``i`` averages input ``[i, i+1) * n_in/n_out``."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    k = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, k + 1) - np.maximum(lo, k), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def box_downsample(img: np.ndarray, size: int | tuple[int, int] = 64,
                   axes: tuple[int, int] | None = None) -> np.ndarray:
    """Area-average ``img`` down to ``size`` along two axes (a box filter) -> float64.

    Each output pixel is the mean of the input area it covers, input pixels cut by an output
    edge counted with their overlap, so non-integer factors work (227 -> 64). ``axes``: the
    (height, width) axes; default ``(-3, -2)`` for ``ndim >= 3`` (``(..., H, W, C)``) and
    ``(-2, -1)`` for a 2-D image. A constant image stays that constant.
    """
    x = np.asarray(img, dtype=np.float64)
    if axes is None:
        axes = (-3, -2) if x.ndim >= 3 else (-2, -1)
    h_out, w_out = (size, size) if isinstance(size, (int, np.integer)) else size
    ah, aw = (ax % x.ndim for ax in axes)
    if h_out > x.shape[ah] or w_out > x.shape[aw]:
        raise DataError(
            f"box_downsample: cannot shrink {x.shape[ah]} x {x.shape[aw]} to {h_out} x {w_out}; "
            "the target must not be larger than the image."
        )
    x = np.moveaxis(x, (ah, aw), (-2, -1))
    x = _box_weights(x.shape[-2], h_out) @ x @ _box_weights(x.shape[-1], w_out).T
    return np.moveaxis(x, (-2, -1), (ah, aw))


# -- renders ------------------------------------------------------------------------------------
def _is_binary(data: GroundTruthData) -> bool:
    return hasattr(data, "binary_from_index")


def render_frames(data: GroundTruthData, index: np.ndarray) -> np.ndarray:
    """Grid images in the frames' layout: ``(n, H, W)`` bool (binary) or ``(n, H, W, C)``.

    Colour images are float64 in [0, 1], channels last like image files.
    """
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    if _is_binary(data):
        return data.binary_from_index(idx).astype(bool)  # type: ignore[attr-defined]
    x = data.images_from_index(idx)
    return np.moveaxis(x, 1, -1).astype(np.float64)


def _prepare_frames(data: GroundTruthData, frames: np.ndarray) -> np.ndarray:
    """Frames as the renders are: binary masks, or colour in [0, 1] at the data's size."""
    f = np.asarray(frames)
    _, h, w = data.observation_shape
    if _is_binary(data):
        if f.ndim != 3:
            raise DataError(f"binary frames must be (n, H, W), got {f.shape}.")
        if f.shape[1:] != (h, w):
            raise DataError(
                f"binary frames must be {h} x {w} like {data.name}, got {f.shape[1:]}; "
                "binary frames cannot be resampled without changing them."
            )
        return f != 0
    if f.ndim != 4 or f.shape[-1] != data.observation_shape[0]:
        raise DataError(
            f"colour frames must be (n, H, W, {data.observation_shape[0]}), got {f.shape}."
        )
    x = f.astype(np.float64)
    if f.dtype == np.uint8 or x.max(initial=0) > 1.0:
        x = x / 255.0
    if x.shape[1:3] != (h, w):
        x = box_downsample(x, (h, w))
    return x


def _score(data: GroundTruthData, frames: np.ndarray, renders: np.ndarray) -> np.ndarray:
    if _is_binary(data):
        return iou(frames, renders)
    return psnr(frames, renders)


# -- search -------------------------------------------------------------------------------------
def neighbourhood(data: GroundTruthData, centre: Sequence[int],
                  radius: dict[str, int]) -> np.ndarray:
    """Flat indices of grid images whose factors in ``radius`` lie within ``+-r`` of ``centre``.

    ``centre``: one factor vector ``(K,)`` (classes); ``radius``: factor name -> steps. Other
    factors take every value. Returns sorted flat indices.
    """
    axes = []
    for j, (name, size) in enumerate(zip(data.factor_names, data.factor_sizes)):
        if name in radius:
            c, r = int(centre[j]), int(radius[name])
            axes.append(np.arange(max(c - r, 0), min(c + r, size - 1) + 1))
        else:
            axes.append(np.arange(size))
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    return np.sort(data.index(grid))


def best_match(data: GroundTruthData, frame: np.ndarray,
               candidates: np.ndarray | None = None,
               chunk: int = 8192) -> tuple[int, float]:
    """``(flat index, score)`` of the grid image closest to one prepared frame.

    ``frame``: ``(H, W)`` bool (binary data, IoU) or ``(H, W, C)`` float in [0, 1] (PSNR).
    ``candidates``: flat indices to search (default the whole grid, streamed ``chunk`` at a
    time). Ties go to the lowest index.
    """
    cand = np.arange(len(data)) if candidates is None else np.asarray(candidates, np.int64)
    best_i, best_s = -1, -np.inf
    for s in range(0, cand.size, chunk):
        idx = cand[s:s + chunk]
        sc = _score(data, frame[None], render_frames(data, idx))
        k = int(np.argmax(sc))
        if sc[k] > best_s:
            best_i, best_s = int(idx[k]), float(sc[k])
    return best_i, best_s


def _best_match_packed(grid: np.ndarray, frames: np.ndarray,
                       chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Exact full-grid IoU search for binary frames against a bit-packed grid ``(N, H, W/8)``."""
    fp = np.packbits(frames, axis=-1)  # (n, H, W/8)
    fa = np.bitwise_count(fp).sum(axis=(1, 2), dtype=np.int64)
    best_i = np.zeros(len(frames), dtype=np.int64)
    best_s = np.full(len(frames), -1.0)
    for s in range(0, grid.shape[0], chunk):
        g = grid[s:s + chunk]
        ga = np.bitwise_count(g).sum(axis=(1, 2), dtype=np.int64)
        for t, f in enumerate(fp):
            inter = np.bitwise_count(g & f).sum(axis=(1, 2), dtype=np.int64)
            union = ga + fa[t] - inter
            sc = inter / np.maximum(union, 1)
            k = int(np.argmax(sc))
            if sc[k] > best_s[t]:
                best_i[t], best_s[t] = s + k, sc[k]
    return best_i, best_s


# -- dSprites specifics -------------------------------------------------------------------------
def estimate_dsprites_position(frame: np.ndarray) -> tuple[int, int]:
    """posX, posY classes whose sprite centre (``16 + 32 k / 31`` px) is nearest the centre of
    the frame's bounding box (``(64, 64)`` binary; the heart's box is off by ~2 px)."""
    ys, xs = np.nonzero(frame)
    if xs.size == 0:
        return 15, 15
    cx = (xs.min() + xs.max() + 1) / 2
    cy = (ys.min() + ys.max() + 1) / 2

    def k(c: float) -> int:
        return int(np.clip(np.rint((c - 16.0) * 31 / 32), 0, 31))

    return k(cx), k(cy)


def dsprites_gif_factors(frame_numbers: Sequence[int]) -> np.ndarray:
    """Official classes ``(n, 5)`` of frames of deepmind/dsprites-dataset's ``dsprites.gif``.

    The animation (320 frames) shows, for the heart, then the ellipse, then the square, one
    factor at a time from the state (scale 5, orientation 0, posX 0, posY 0): scale 0..5,
    5..0, 0..5; orientation 0..39; for the heart only posY 0..31, posX 0..31, posY 31..0,
    posX 31..0; then scale 5..0. Each leg starts at the value the last one ended on, so a
    value repeats where legs meet (frames 5 and 6 both have scale 5). Read off the official
    frames: areas grow as scale^2, centroids move 32/31 px per position step.
    """
    seq: list[tuple[int, int, int, int, int]] = []
    for shape in (2, 1, 0):  # heart, ellipse, square
        st = {"s": 5, "o": 0, "x": 0, "y": 0}
        legs: list[tuple[str, range]] = [("s", range(6)), ("s", range(5, -1, -1)),
                                         ("s", range(6)), ("o", range(40))]
        if shape == 2:
            legs += [("y", range(32)), ("x", range(32)), ("y", range(31, -1, -1)),
                     ("x", range(31, -1, -1))]
        legs += [("s", range(5, -1, -1))]
        for key, values in legs:
            for val in values:
                st[key] = val
                seq.append((shape, st["s"], st["o"], st["x"], st["y"]))
    fn = np.asarray(frame_numbers, dtype=np.int64).reshape(-1)
    if fn.size and (fn.min() < 0 or fn.max() >= len(seq)):
        raise DataError(f"dsprites.gif has frames 0..{len(seq) - 1}, got {fn.min()}..{fn.max()}.")
    return np.asarray(seq, dtype=np.int64)[fn]


#: (floor_hue, wall_hue, object_hue, scale, shape, orientation) classes of the even frames
#: 0, 2, ..., 52 of the animation in deepmind/3d-shapes' README, read off the frames: hues are
#: exact multiples of 0.1 in HSV; orientation steps by two grid positions (frames 0..14); the
#: shape sweep shows the sphere (frame 16), the capsule's scale sweep scales 1, 3, 5, 7. Where
#: the skipped odd frame changed another factor, two factors differ between stored frames.
SHAPES3D_GIF_FACTORS = np.array(
    [(0, 6, 3, 0, 0, o) for o in range(0, 15, 2)]           # orientation sweep (cube)
    + [(0, 6, 3, 0, 2, 14)]                                  # shape: sphere
    + [(0, 6, 3, k, 3, 14) for k in (1, 3, 5, 7)]            # scale sweep (capsule)
    + [(0, 6, h, 7, 3, 14) for h in (5, 7, 9, 1)]            # object hue
    + [(0, w, 2, 7, 3, 14) for w in (7, 9, 1)]               # wall hue
    + [(1, 5, 2, 7, 3, 14), (3, 5, 2, 7, 3, 14), (0, 3, 2, 7, 3, 14), (0, 5, 2, 7, 3, 14)]
    + [(f, 5, 2, 7, 3, 14) for f in (5, 7, 9)],              # floor hue
    dtype=np.int64,
)


def shapes3d_gif_factors(frame_numbers: Sequence[int]) -> np.ndarray:
    """Official classes ``(n, 6)`` of the even frames ``0, 2, ..., 52`` of deepmind/3d-shapes'
    README animation (:data:`SHAPES3D_GIF_FACTORS`); the odd frames are not identified."""
    fn = np.asarray(frame_numbers, dtype=np.int64).reshape(-1)
    last = 2 * (len(SHAPES3D_GIF_FACTORS) - 1)
    if fn.size and (fn.min() < 0 or fn.max() > last or np.any(fn % 2)):
        raise DataError(f"the Shapes3D animation's identified frames are 0, 2, ..., {last}; got "
                        f"{fn.tolist()}.")
    return SHAPES3D_GIF_FACTORS[fn // 2]


def _same_picture(data: GroundTruthData, i: int, j: int) -> bool:
    return bool(np.array_equal(render_frames(data, [i]), render_frames(data, [j])))


# -- the report ---------------------------------------------------------------------------------
def evaluate(data: GroundTruthData, frames: np.ndarray, factors: np.ndarray | None = None,
             search: str = "local", radius: dict[str, int] | None = None,
             ) -> list[dict[str, Any]]:
    """Per-frame fidelity rows.

    ``frames``: see the module docstring; ``factors``: ``(n, K)`` classes or None. ``search``:
    ``"none"`` (only the known factors), ``"local"`` (the neighbourhood ``radius`` around the
    known factors or, for dSprites without factors, around the position read off the frame;
    default ``{"posX": 2, "posY": 2}`` for dSprites, else 1 step in every factor) or
    ``"full"`` (the whole grid; exact, minutes for dSprites). Each row has ``known`` (score at
    the given factors), ``best`` (best score in the search set), ``best_factors`` and
    ``best_is_known`` (the best image is the known factors' picture, ties included).
    """
    x = _prepare_frames(data, frames)
    n = x.shape[0]
    f = None if factors is None else data.check_factors(np.asarray(factors).reshape(n, -1))
    if search not in ("none", "local", "full"):
        raise DataError(f"search must be 'none', 'local' or 'full', got {search!r}.")
    if search == "none" and f is None:
        raise DataError("search='none' needs the frames' factors (--factors).")
    rows: list[dict[str, Any]] = [{"frame": i} for i in range(n)]
    if f is not None:
        known = _score(data, x, render_frames(data, data.index(f)))
        for r, k, fac in zip(rows, known, f):
            r["factors"] = [int(v) for v in fac]
            r["known"] = float(k)
    if search == "none":
        return rows
    dsp = _is_binary(data) and data.factor_names[-2:] == ("posX", "posY")
    if search == "full" and _is_binary(data) and hasattr(data, "to_array"):
        grid = data.to_array(packed=True, progress=False)  # type: ignore[attr-defined]
        bi, bs = _best_match_packed(grid, x)
        found = list(zip(bi.tolist(), bs.tolist()))
    else:
        if radius is None:
            radius = ({"posX": 2, "posY": 2} if dsp else
                      {nm: 1 for nm in data.factor_names})
        found = []
        for i in range(n):
            if search == "full":
                cand = None
            else:
                if f is not None:
                    centre = f[i]
                elif dsp:
                    centre = np.zeros(data.num_factors, dtype=np.int64)
                    centre[-2:] = estimate_dsprites_position(x[i])
                else:
                    raise DataError("search='local' needs factors for this data set; pass "
                                    "--factors or use --search full.")
                cand = neighbourhood(data, centre, radius)
            found.append(best_match(data, x[i], cand))
    for r, (bi, bs) in zip(rows, found):
        r["best"] = float(bs)
        r["best_factors"] = [int(v) for v in data.factors([bi])[0]]
        if f is not None:
            ki = int(data.index(np.asarray(r["factors"])[None])[0])
            r["best_is_known"] = bool(ki == bi or r["known"] >= bs or _same_picture(data, ki, bi))
    return rows


def summary(rows: list[dict[str, Any]], binary: bool = True) -> dict[str, Any]:
    """Min / median / mean of the ``known`` and ``best`` scores, and counts."""
    out: dict[str, Any] = {"frames": len(rows), "metric": "IoU" if binary else "PSNR dB"}
    for key in ("known", "best"):
        v = np.array([r[key] for r in rows if key in r], dtype=np.float64)
        if v.size:
            out[key] = {"min": float(v.min()), "median": float(np.median(v)),
                        "mean": float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any()
                        else float("inf")}
            if binary:
                out[key]["exact"] = int(np.sum(v >= 1.0))
    if rows and "best_is_known" in rows[0]:
        out["best_is_known"] = int(sum(r["best_is_known"] for r in rows))
    return out


def side_by_side(frames: np.ndarray, renders: np.ndarray, path: str | os.PathLike[str],
                 labels: Sequence[str] | None = None, scores: Sequence[float] | None = None,
                 columns: int = 8, unit: str = "IoU") -> str:
    """Save a picture: official frames above, the renders at the same factors below.

    ``frames``, ``renders``: ``(n, H, W)`` or ``(n, H, W, C)`` in [0, 1] (or bool), shown
    ``columns`` per block; ``labels`` under each official frame, ``scores`` under each render.
    Returns the path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(frames)
    blocks = -(-n // columns)
    fig, axes = plt.subplots(2 * blocks, columns, figsize=(1.3 * columns, 2.9 * blocks),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    for i in range(n):
        b, c = divmod(i, columns)
        for row, img in ((2 * b, frames[i]), (2 * b + 1, renders[i])):
            ax = axes[row, c]
            ax.imshow(np.asarray(img, dtype=np.float64), cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.axis("on")
            for sp in ax.spines.values():
                sp.set_color("0.6")
        if labels is not None:
            axes[2 * b, c].set_title(labels[i], fontsize=7)
        if scores is not None:
            axes[2 * b + 1, c].set_title(f"{unit} {scores[i]:.3f}", fontsize=7)
    for b in range(blocks):
        axes[2 * b, 0].set_ylabel("official", fontsize=8)
        axes[2 * b + 1, 0].set_ylabel("dislab", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)



# -- command line -------------------------------------------------------------------------------
def _read_frames(path: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(imgs, frame numbers or None, factors or None)`` from an ``.npz`` (never unpickled)."""
    if not os.path.exists(path):
        raise DataError(f"frames file not found: {path}. Pass an .npz with an 'imgs' array.")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable .npz ({e}).") from None
    with z:
        if "imgs" not in z.files:
            raise DataError(f"{path}: no 'imgs' array (found {z.files}).")
        imgs = z["imgs"]
        fn = z["frame"] if "frame" in z.files else None
        fac = z["factors"] if "factors" in z.files else None
    return imgs, fn, fac


def _read_factors(spec: str, frame_numbers: np.ndarray | None, n: int) -> np.ndarray:
    if spec in ("dsprites-gif", "shapes3d-gif"):
        if spec == "dsprites-gif":
            fn = np.arange(n) if frame_numbers is None else frame_numbers
            return dsprites_gif_factors(fn)
        fn = 2 * np.arange(n) if frame_numbers is None else frame_numbers
        return shapes3d_gif_factors(fn)
    if not os.path.exists(spec):
        raise DataError(f"--factors: {spec} is neither 'dsprites-gif', 'shapes3d-gif' nor an "
                        "existing file.")
    if spec.endswith(".npy"):
        arr = np.load(spec, allow_pickle=False)
    elif spec.endswith(".json"):
        with open(spec) as fh:
            arr = np.asarray(json.load(fh))
    else:
        arr = np.loadtxt(spec, delimiter=",", ndmin=2)
    return np.asarray(arr, dtype=np.int64)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dislab.data.fidelity``: print per-frame scores and a summary."""
    p = argparse.ArgumentParser(
        prog="python -m dislab.data.fidelity",
        description="Score dislab's procedural renderer against official frames: IoU for "
        "binary data (dSprites), PSNR for colour data (frames larger than the data set's "
        "images are box-downsampled first). For each frame: the score at its known factors "
        "and the best score over a search set of grid images.",
    )
    p.add_argument("--data", required=True, help="registered data set name, e.g. dsprites")
    p.add_argument("--frames", required=True,
                   help=".npz with 'imgs' (n,H,W) or (n,H,W,3), optional 'frame' numbers and "
                   "'factors' (n,K) classes")
    p.add_argument("--factors", default=None,
                   help="factor classes of the frames: 'dsprites-gif' (frame numbers of "
                   "deepmind/dsprites-dataset's dsprites.gif), 'shapes3d-gif' (even frames of "
                   "deepmind/3d-shapes' README animation), or a .npy/.json/.csv (n,K) "
                   "file; default: the npz's 'factors' array if any")
    p.add_argument("--crop", type=int, default=0, metavar="PX",
                   help="trim PX pixels from every edge of the frames first (the shared "
                   "Shapes3D frames carry a 2-pixel frame)")
    p.add_argument("--search", choices=("none", "local", "full"), default="local",
                   help="grid images searched for the best match: none, a neighbourhood of "
                   "the known/estimated factors (default), or the whole grid (exact, slow)")
    p.add_argument("--radius", action="append", default=[], metavar="FACTOR=STEPS",
                   help="neighbourhood half-width per factor for --search local (repeatable; "
                   "default posX=2 and posY=2 for dSprites, 1 step in every factor otherwise)")
    p.add_argument("--json", default=None, help="also write the rows and summary here")
    p.add_argument("--quiet", action="store_true", help="print the summary only")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also save official frames above the renders at their factors")
    p.add_argument("--figure-frames", default=None, metavar="I,J,...",
                   help="positions (0-based) in the frames file to draw (default: 16 spread "
                   "evenly)")
    a = p.parse_args(argv)
    from dislab.data import load
    from dislab.errors import DislabError

    try:
        data = load(a.data)
        imgs, fn, fac = _read_frames(a.frames)
        if a.crop < 0 or 2 * a.crop >= min(imgs.shape[1:3]):
            raise DataError(f"--crop {a.crop}: give 0 <= PX < half the frame size "
                            f"{imgs.shape[1:3]}.")
        if a.crop:
            imgs = imgs[:, a.crop:-a.crop, a.crop:-a.crop]
        if a.factors is not None:
            fac = _read_factors(a.factors, fn, len(imgs))
        radius = None
        if a.radius:
            radius = {}
            for item in a.radius:
                k, _, v = item.partition("=")
                if k not in data.factor_names or not v.strip().isdigit():
                    raise DataError(f"--radius {item!r}: use FACTOR=STEPS with a factor of "
                                    f"{list(data.factor_names)}.")
                radius[k] = int(v)
        rows = evaluate(data, imgs, fac, search=a.search, radius=radius)
    except DislabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    binary = _is_binary(data)
    unit = "IoU" if binary else "PSNR dB"
    if not a.quiet:
        print(f"frame  {'factors':<22} known ({unit})  best ({unit})  best factors")
        for r, row in enumerate(rows):
            num = int(fn[r]) if fn is not None else r
            fs = " ".join(str(v) for v in row.get("factors", [])) or "-"
            kn = f"{row['known']:.4f}" if "known" in row else "-"
            be = f"{row['best']:.4f}" if "best" in row else "-"
            bf = " ".join(str(v) for v in row.get("best_factors", []))
            mark = "" if row.get("best_is_known", True) else "  (differs)"
            print(f"{num:5d}  {fs:<22} {kn:>12}  {be:>11}  {bf}{mark}")
    if a.figure and fac is not None:
        if a.figure_frames:
            pick = [int(v) for v in a.figure_frames.split(",")]
        else:
            pick = np.unique(np.linspace(0, len(imgs) - 1, 16).round().astype(int)).tolist()
        x = _prepare_frames(data, imgs)
        fk = data.check_factors(np.asarray(fac).reshape(len(imgs), -1))
        ren = render_frames(data, data.index(fk[pick]))
        labels = [f"#{int(fn[i]) if fn is not None else i}: "
                  + ",".join(str(v) for v in fk[i]) for i in pick]
        side_by_side(x[pick], ren, a.figure, labels, [rows[i]["known"] for i in pick],
                     unit=unit.split()[0])
        print(f"figure: {a.figure}")
    elif a.figure:
        print("error: --figure needs the frames' factors (--factors).", file=sys.stderr)
        return 2
    s = summary(rows, binary)
    s["data"], s["search"] = a.data, a.search
    print(json.dumps(s, indent=1))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"summary": s, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
