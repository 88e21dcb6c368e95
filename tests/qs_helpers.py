"""Tiny data and runs shared by tests/test_run_report.py, test_analyze.py, test_quickstart.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import dislab.data as dd
from dislab.train import fit


def _sprites(f: np.ndarray) -> np.ndarray:
    """Shape (square / bar) of 4x4 pixels at (2x, 2y) on a 16x16 black image, float32 [0, 1]."""
    img = np.zeros((len(f), 1, 16, 16), np.float32)
    for i, (s, a, b) in enumerate(f):
        if s == 0:
            img[i, 0, 2 * a: 2 * a + 4, 2 * b: 2 * b + 4] = 1.0
        else:
            img[i, 0, 2 * a + 1: 2 * a + 3, 2 * b: 2 * b + 4] = 1.0
    return img


def tiny_sprites() -> dd.GroundTruthData:
    return dd.from_function([2, 6, 6], _sprites, ["shape", "x", "y"], name="qs_sprites16")


@dd.register("test_qs_sprites16", "2 shapes x 6x6 positions, 1x16x16 (tests only)")
def _load(path: str | None = None, **options: object) -> dd.GroundTruthData:
    return tiny_sprites()


def tiny_run(tmp_path: Path, name: str = "run", steps: int = 30, **kw: object) -> Path:
    """A few β-VAE steps on the tiny sprites (seconds)."""
    cfg = dict(model="beta_vae", data="test_qs_sprites16", arch="conv", latent_dim=4,
               steps=steps, batch_size=32, lr=1e-3, log_every=5, checkpoint_every=1000,
               image_every=0, compile=False, tensorboard=False, threads=1,
               out=str(tmp_path / name))
    cfg.update(kw)
    return fit(cfg, progress=False)
