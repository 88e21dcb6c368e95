"""β-VAE (Higgins et al. 2017): ``loss = recon + β · KL(q(z|x) || N(0, I))``.

disentanglement_lib ``BetaVAE`` (gin name ``vae``); study sweep β ∈ {1, 2, 4, 6, 8, 16}
(``config/unsupervised_study_v1/sweep.py``).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from dislab.models.base import HParam, register
from dislab.models.vae import VAE, Forward


@register
class BetaVAE(VAE):
    """β-VAE: ``recon + beta * kl`` (β = 1 is the plain VAE)."""

    name: ClassVar[str] = "beta_vae"
    packed_hparams: ClassVar[tuple[str, ...]] = ("beta",)
    hparams: ClassVar[dict[str, HParam]] = {
        "beta": HParam(
            4.0, "weight of the KL term",
            "Higgins et al. 2017 (β = 4 on dSprites); study sweep {1, 2, 4, 6, 8, 16}",
            low=0.0,
        ),
    }

    def regularizer(
        self, f: Forward, step: int | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.hp["beta"] * f.kl, {}
