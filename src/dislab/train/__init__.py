"""Training: one config (:class:`TrainConfig`) in, one run folder out.

>>> from dislab.train import TrainConfig, fit, load_run
>>> run = fit(TrainConfig(model="beta_vae", hparams={"beta": 4}, steps=3000, out="runs/b4"))
>>> model, config = load_run(run)
"""

from dislab.train.config import TrainConfig
from dislab.train.loop import Trainer, fit, load_run

__all__ = ["TrainConfig", "Trainer", "fit", "load_run"]
