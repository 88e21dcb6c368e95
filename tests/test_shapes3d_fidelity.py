"""The procedural Shapes3D renderer against real official frames (``shared/reference_images``).

The 27 frames are the even frames of the animation in the deepmind/3d-shapes README, upscaled
from 64x64 (with a 2-pixel frame drawn around them) and GIF-quantised. Their factors are
read from the frames themselves: the hues are exact multiples of 0.1 in HSV, the orientation
sweep runs over indices 0, 2, ..., 14 (GIF frames 0..14), the shape sweep shows the sphere
(GIF frame 16), and the capsule's scale sweep shows scales 1, 3, 5, 7 (its height grows as
the scale value, 0.82 to 1.25). Skipped when the shared folder is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from dislab.data import shapes3d as s3
from shared_data import require_shared

# (floor_hue, wall_hue, object_hue, scale, shape, orientation) of each frame, in file order
FRAME_FACTORS = np.array(
    [(0, 6, 3, 0, 0, o) for o in range(0, 15, 2)]           # orientation sweep (cube)
    + [(0, 6, 3, 0, 2, 14)]                                  # shape: sphere
    + [(0, 6, 3, k, 3, 14) for k in (1, 3, 5, 7)]            # scale sweep (capsule)
    + [(0, 6, h, 7, 3, 14) for h in (5, 7, 9, 1)]            # object hue
    + [(0, w, 2, 7, 3, 14) for w in (7, 9, 1)]               # wall hue
    + [(1, 5, 2, 7, 3, 14), (3, 5, 2, 7, 3, 14), (0, 3, 2, 7, 3, 14), (0, 5, 2, 7, 3, 14)]
    + [(f, 5, 2, 7, 3, 14) for f in (5, 7, 9)]               # floor hue
)
PSNR_TARGET = 20.0  # dB, issue 21's "done when"


def _box_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` area weights of a box filter mapping ``n_in`` samples to ``n_out``."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def official_frames_64() -> np.ndarray:
    """The frames without their 2-pixel frame, box-filtered to ``(27, 64, 64, 3)`` uint8."""
    with np.load(require_shared("reference_images/shapes3d_official_frames.npz")) as f:
        imgs = f["imgs"].astype(np.float64)
    inner = imgs[:, 2:-2, 2:-2]
    wr = _box_weights(inner.shape[1], 64)
    wc = _box_weights(inner.shape[2], 64)
    out = np.einsum("ri,nijc->nrjc", wr, inner, optimize=True)
    out = np.einsum("nrjc,sj->nrsc", out, wc, optimize=True)
    return np.rint(out).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 images ``a`` against ``b`` (broadcast over leading axes)."""
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = (d * d).reshape(*d.shape[:-3], -1).mean(axis=-1)
    return 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-12))


def test_box_weights_average_blocks():
    w = _box_weights(6, 2)
    assert np.allclose(w, [[1 / 3] * 3 + [0] * 3, [0] * 3 + [1 / 3] * 3])
    w = _box_weights(7, 2)  # 3.5 samples per output: the middle one is split in half
    assert np.allclose(w.sum(axis=1), 1) and np.isclose(w[0, 3], w[1, 3])


def test_frame_factors_follow_the_sweep():
    """Consecutive frames differ in one factor, or two where the skipped odd frame of the
    animation changed the other one (shape then scale, object then wall hue, wall then floor
    hue); the orientation sweep steps by two grid positions."""
    changed = (np.diff(FRAME_FACTORS, axis=0) != 0).sum(axis=1)
    assert np.all(changed >= 1) and np.all(changed <= 2) and (changed == 1).sum() == 22
    assert np.array_equal(FRAME_FACTORS[:8, 5], np.arange(0, 15, 2))


@pytest.fixture(scope="module")
def frames():
    return official_frames_64()


def test_every_frame_is_matched_by_its_own_factors(frames):
    """Each frame's best match among the grid images that differ from its factors in at most
    one factor (all values of that factor: 52 candidates per frame) is the image with the
    frame's factors, at >= 20 dB PSNR."""
    data = s3.Shapes3D()
    for i, f in enumerate(FRAME_FACTORS):
        cands = [f]
        for j, size in enumerate(s3.FACTOR_SIZES):
            for v in range(size):
                if v != f[j]:
                    g = f.copy()
                    g[j] = v
                    cands.append(g)
        cands = np.array(cands)
        x = data.images_uint8(cands).transpose(0, 2, 3, 1)
        score = psnr(x, frames[i][None])
        best = int(np.argmax(score))
        assert np.array_equal(cands[best], f), (i, cands[best].tolist(), f.tolist())
        assert score[0] >= PSNR_TARGET, (i, float(score[0]))
