"""The procedural Shapes3D renderer against real official frames (``shared/reference_images``).

The 27 frames are the even frames of the animation in the deepmind/3d-shapes README, upscaled
from 64x64 (with a 2-pixel frame drawn around them) and GIF-quantised. Their factors are
read from the frames themselves: the hues are exact multiples of 0.1 in HSV, the orientation
sweep runs over indices 0, 2, ..., 14 (GIF frames 0..14), the shape sweep shows the sphere
(GIF frame 16), and the capsule's scale sweep shows scales 1, 3, 5, 7 (its height grows as
the scale value, 0.82 to 1.25). Skipped when the shared folder is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dislab.data import shapes3d as s3
from dislab.data.fidelity import SHAPES3D_GIF_FACTORS, box_downsample, shapes3d_gif_factors
from dislab.data.fidelity import main as fidelity_main
from shared_data import require_shared

FRAME_FACTORS = SHAPES3D_GIF_FACTORS  # in file order (the even frames 0..52)
PSNR_TARGET = 20.0  # dB, issue 21's "done when"


def official_frames_64() -> np.ndarray:
    """The frames without their 2-pixel frame, box-filtered to ``(27, 64, 64, 3)`` uint8."""
    with np.load(require_shared("reference_images/shapes3d_official_frames.npz")) as f:
        inner = f["imgs"][:, 2:-2, 2:-2].astype(np.float64)
    return np.rint(box_downsample(inner, 64)).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 images ``a`` against ``b`` (broadcast over leading axes)."""
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = (d * d).reshape(*d.shape[:-3], -1).mean(axis=-1)
    return 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-12))


def test_frame_factors_follow_the_sweep():
    """Consecutive frames differ in one factor, or two where the skipped odd frame of the
    animation changed the other one (shape then scale, object then wall hue, wall then floor
    hue); the orientation sweep steps by two grid positions."""
    changed = (np.diff(FRAME_FACTORS, axis=0) != 0).sum(axis=1)
    assert np.all(changed >= 1) and np.all(changed <= 2) and (changed == 1).sum() == 22
    assert np.array_equal(FRAME_FACTORS[:8, 5], np.arange(0, 15, 2))


def one_factor_neighbours(f: np.ndarray) -> np.ndarray:
    """``f`` first, then every grid point that differs from it in exactly one factor."""
    cands = [f]
    for j, size in enumerate(s3.FACTOR_SIZES):
        for v in range(size):
            if v != f[j]:
                g = f.copy()
                g[j] = v
                cands.append(g)
    return np.array(cands)


@pytest.fixture(scope="module")
def frames():
    return official_frames_64()


def test_every_frame_is_matched_by_its_own_factors(frames):
    """Each frame's best match among the grid images that differ from its factors in at most
    one factor (all values of that factor: 52 candidates per frame) is the image with the
    frame's factors, at >= 20 dB PSNR."""
    data = s3.Shapes3D()
    for i, f in enumerate(FRAME_FACTORS):
        cands = one_factor_neighbours(f)
        x = data.images_uint8(cands).transpose(0, 2, 3, 1)
        score = psnr(x, frames[i][None])
        best = int(np.argmax(score))
        assert np.array_equal(cands[best], f), (i, cands[best].tolist(), f.tolist())
        assert score[0] >= PSNR_TARGET, (i, float(score[0]))


def test_fidelity_cli_scores_the_frames_at_their_factors(capsys):
    path = require_shared("reference_images/shapes3d_official_frames.npz")
    assert np.array_equal(shapes3d_gif_factors([0, 16, 52]), FRAME_FACTORS[[0, 8, 26]])
    rc = fidelity_main(["--data", "shapes3d", "--frames", str(path), "--factors",
                        "shapes3d-gif", "--crop", "2", "--search", "none", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])
    assert summary["frames"] == 27 and summary["known"]["min"] >= PSNR_TARGET
