"""Shapes3D procedural rendering speed: geometry cache vs ray casting every image.

Run: ``.venv/bin/python benchmarks/shapes3d_render.py [--batch 256] [--batches 20]``

Prints images/s of ``images_uint8_from_index`` on random batches (the training input path)
for ``cache="none"`` (baseline: ray-cast each image) and ``cache="geometry"`` (480 shading
maps ray-cast once, then colourised), and their ratio, all measured in this run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dislab.data.shapes3d import Shapes3D


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    slow = Shapes3D(cache="none")
    idx = slow.sample_index(args.batch, rng)
    t = time.perf_counter()
    ref = slow.images_uint8_from_index(idx)
    none_rate = args.batch / (time.perf_counter() - t)

    fast = Shapes3D(cache="geometry")
    t = time.perf_counter()
    fast.precompute(progress=False)
    build = time.perf_counter() - t
    assert np.array_equal(fast.images_uint8_from_index(idx), ref), "cache changed the pixels"
    batches = [fast.sample_index(args.batch, rng) for _ in range(args.batches)]
    t = time.perf_counter()
    for b in batches:
        fast.images_uint8_from_index(b)
    cached_rate = args.batch * args.batches / (time.perf_counter() - t)

    print(f"ray-cast every image (cache='none'): {none_rate:10.0f} images/s")
    print(f"geometry cache (cache='geometry'):   {cached_rate:10.0f} images/s "
          f"(one-off build of all 480 maps: {build:.1f} s)")
    print(f"ratio cached / ray-cast:             {cached_rate / none_rate:10.0f}x")


if __name__ == "__main__":
    main()
