"""How close the procedural Shapes3D renderer is to real official frames: per-frame PSNR.

Run (needs the shared reference images; ``--shared`` or ``$DISLAB_SHARED`` points at them):
``PYTHONPATH=src .venv/bin/python benchmarks/shapes3d_fidelity.py [--shared ../shared]
[--search grid|neighbours] [--figure docs/img/shapes3d_fidelity.png]``

For each of the 27 official frames (``reference_images/shapes3d_official_frames.npz``, the
README animation of deepmind/3d-shapes), box-filtered back to 64x64, prints the PSNR of the
rendered image with the frame's factors (``FRAME_FACTORS`` in
``tests/test_shapes3d_fidelity.py``) and the factors and PSNR of the best-matching rendered
image: over the whole grid of 480,000 images (``--search grid``, about 2 minutes on one core)
or over the 52 images that differ from the frame's factors in at most one factor
(``--search neighbours``, a few seconds). ``--figure`` writes official frames (top rows)
above the renders with the same factors (bottom rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from dislab.data import shapes3d as s3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("DISLAB_SHARED", str(Path(__file__).resolve().parents[2] / "shared"))


def grid_search(data: s3.Shapes3D, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best grid index and its PSNR for each frame ``(m, 64, 64, 3)``, over all 480,000 images.

    Per geometry (scale, shape, orientation: 480), renders its 1000 hue combinations and
    scores them against every frame with one matrix product.
    """
    m = frames.shape[0]
    ref = frames.reshape(m, -1).astype(np.float32)
    ref2 = (ref * ref).sum(axis=1)
    hue = np.stack(np.meshgrid(*[np.arange(10)] * 3, indexing="ij"), -1).reshape(-1, 3)
    best_mse = np.full(m, np.inf)
    best_idx = np.zeros(m, dtype=np.int64)
    data.precompute(progress=False)
    for geo in range(data._geo.maps.shape[0]):
        scale_i, rest = divmod(geo, 4 * 15)
        shape_i, orient_i = divmod(rest, 15)
        maps = np.broadcast_to(data._geo.maps[geo], (len(hue),) + data._geo.maps.shape[1:])
        x = s3._colourise(maps, hue[:, 0], hue[:, 1], hue[:, 2])
        x = x.transpose(0, 2, 3, 1).reshape(len(hue), -1).astype(np.float32)
        mse = ((x * x).sum(axis=1)[:, None] - 2.0 * (x @ ref.T) + ref2[None, :]) / x.shape[1]
        k = mse.argmin(axis=0)
        better = mse[k, np.arange(m)] < best_mse
        f = np.column_stack([hue[k], np.full((m, 3), (scale_i, shape_i, orient_i))])
        best_mse = np.where(better, mse[k, np.arange(m)], best_mse)
        best_idx = np.where(better, data.index(f), best_idx)
    return best_idx, 10.0 * np.log10(255.0**2 / np.maximum(best_mse, 1e-12))


def neighbour_search(data: s3.Shapes3D, frames: np.ndarray,
                     factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best index and PSNR over the images differing from each frame's factors in <= 1 factor."""
    from test_shapes3d_fidelity import one_factor_neighbours, psnr

    idx, score = [], []
    for frame, f in zip(frames, factors):
        cands = one_factor_neighbours(f)
        p = psnr(data.images_uint8(cands).transpose(0, 2, 3, 1), frame[None])
        idx.append(data.index(cands[np.argmax(p)][None])[0])
        score.append(p.max())
    return np.array(idx), np.array(score)


def figure(frames: np.ndarray, rendered: np.ndarray, path: str, per_row: int = 9) -> None:
    """Official frames above the renders with the same factors, ``per_row`` pairs per band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(frames)
    bands = -(-n // per_row)
    fig, axes = plt.subplots(2 * bands, per_row, figsize=(per_row * 1.1, 2 * bands * 1.15))
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        b, c = divmod(i, per_row)
        axes[2 * b, c].imshow(frames[i], interpolation="nearest")
        axes[2 * b + 1, c].imshow(rendered[i], interpolation="nearest")
        axes[2 * b, c].set_title(f"#{i}", fontsize=7)
    for b in range(bands):
        axes[2 * b, 0].text(-4, 32, "official", rotation=90, va="center", ha="right", fontsize=7)
        axes[2 * b + 1, 0].text(-4, 32, "dislab", rotation=90, va="center", ha="right",
                                fontsize=7)
    fig.subplots_adjust(left=0.03, right=0.995, top=0.96, bottom=0.01, wspace=0.04, hspace=0.2)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", help="the shared/ folder (default: $DISLAB_SHARED or ../shared)")
    ap.add_argument("--search", choices=("grid", "neighbours"), default="grid")
    ap.add_argument("--figure", help="write the side-by-side picture here (PNG)")
    args = ap.parse_args()
    if args.shared:
        os.environ["DISLAB_SHARED"] = args.shared
    from test_shapes3d_fidelity import FRAME_FACTORS, official_frames_64, psnr

    frames = official_frames_64()
    data = s3.Shapes3D()
    t = time.perf_counter()
    own = data.images_uint8(FRAME_FACTORS).transpose(0, 2, 3, 1)
    own_psnr = psnr(own, frames)
    if args.search == "grid":
        idx, best = grid_search(data, frames)
    else:
        idx, best = neighbour_search(data, frames, FRAME_FACTORS)
    found = data.factors(idx)
    print(f"search: {args.search} ({time.perf_counter() - t:.0f} s)")
    print("frame  factors (fl wa ob sc sh or)  PSNR own  best match           PSNR best  same")
    for i, f in enumerate(FRAME_FACTORS):
        same = np.array_equal(found[i], f)
        print(f"{i:5d}  {' '.join(f'{v:2d}' for v in f)}        {own_psnr[i]:6.2f}    "
              f"{' '.join(f'{v:2d}' for v in found[i])}    {best[i]:6.2f}     "
              f"{'yes' if same else 'NO'}")
    print(f"PSNR of the frames' own factors: min {own_psnr.min():.2f} dB, median "
          f"{np.median(own_psnr):.2f} dB, max {own_psnr.max():.2f} dB; best match has the "
          f"frame's factors for {int((found == FRAME_FACTORS).all(axis=1).sum())}/"
          f"{len(FRAME_FACTORS)} frames")
    if args.figure:
        figure(frames, own, args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
