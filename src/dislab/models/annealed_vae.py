"""AnnealedVAE (Burgess et al. 2018): ``loss = recon + γ · |KL − C(t)|``.

``C(t) = min(c_max, c_max · t / iteration_threshold)``, ``t`` = the training step (0 at the
start; disentanglement_lib uses the global step). Study: γ = 1000, iteration_threshold =
100 000, c_max ∈ {5, 10, 25, 50, 75, 100} (disentanglement_lib
``config/unsupervised_study_v1/sweep.py``).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from dislab.models.base import HParam, register
from dislab.models.losses import anneal
from dislab.models.vae import VAE, Forward


@register
class AnnealedVAE(VAE):
    """AnnealedVAE: ``recon + gamma * |kl - C(step)|``; logs ``capacity``."""

    name: ClassVar[str] = "annealed_vae"
    packed_hparams: ClassVar[tuple[str, ...]] = ("gamma", "c_max")
    hparams: ClassVar[dict[str, HParam]] = {
        "gamma": HParam(1000.0, "weight of |KL - C|", "study (annealed_vae.gamma = 1000)",
                        low=0.0),
        "c_max": HParam(
            25.0, "final capacity C in nats",
            "Burgess et al. 2018 dSprites (25 nats); study sweep {5, 10, 25, 50, 75, 100}",
            low=0.0,
        ),
        "iteration_threshold": HParam(
            100000, "steps over which C grows linearly from 0 to c_max",
            "study (annealed_vae.iteration_threshold = 100000)",
            kind=int, low=1,
        ),
    }

    def capacity(self, step: int | torch.Tensor) -> float | torch.Tensor:
        """``C(step)``, see :func:`dislab.models.losses.anneal`."""
        return anneal(self.hp["c_max"], step, self.hp["iteration_threshold"])

    def regularizer(
        self, f: Forward, step: int | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.capacity(step)
        c_t = torch.as_tensor(c, dtype=f.kl.dtype, device=f.kl.device)
        return self.hp["gamma"] * (f.kl - c_t).abs(), {"capacity": c_t}
