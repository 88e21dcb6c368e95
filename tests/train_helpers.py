"""Shared helpers of tests/test_train.py and tests/test_checkpoint.py: tiny data, configs and
test-local methods (registered under ``test_*`` names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import dislab.data as dd
from dislab import models
from dislab.models.beta_vae import BetaVAE
from dislab.testing import tiny_squares


def tiny_data() -> dd.GroundTruthData:
    """6x6 positions of a 4x4 square on 16x16 (:func:`dislab.testing.tiny_squares`)."""
    return tiny_squares()


@dd.register("test_squares16", "6x6 positions of a square, 1x16x16 (tests only)")
def _load_test_squares(path: str | None = None, **options: object) -> dd.GroundTruthData:
    return tiny_data()


def cfg(tmp_path: Path, name: str = "run", **kw: object) -> dict:
    base = dict(model="beta_vae", data="test_squares16", steps=20, batch_size=16,
                log_every=2, checkpoint_every=5, image_every=0, compile=False,
                tensorboard=False, threads=1, out=str(tmp_path / name))
    base.update(kw)
    return base


def history(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("images_per_s")
    return rows


# -- test-local methods ----------------------------------------------------------------------
@models.register
class NaNAfter(BetaVAE):
    """β-VAE whose loss becomes NaN from update ``nan_at`` (0-based) on (tests only)."""

    name: ClassVar[str] = "test_nan_after"
    hparams: ClassVar[dict] = {**BetaVAE.hparams,
                               "nan_at": models.HParam(7, "first NaN update (0-based)")}

    def loss(self, batch, step=0):
        loss, logs = super().loss(batch, step)
        if step >= self.hp["nan_at"]:
            loss = loss * float("nan")
        return loss, logs


@models.register
class InterruptAt(BetaVAE):
    """β-VAE that raises KeyboardInterrupt once at update ``stop_at`` (tests only)."""

    name: ClassVar[str] = "test_interrupt_at"
    hparams: ClassVar[dict] = {**BetaVAE.hparams,
                               "stop_at": models.HParam(-1, "update that is interrupted")}
    armed: ClassVar[bool] = False

    def training_step(self, batch, step, optimizers):
        if step == self.hp["stop_at"] and InterruptAt.armed:
            InterruptAt.armed = False
            raise KeyboardInterrupt
        return super().training_step(batch, step, optimizers)
