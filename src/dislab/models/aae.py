"""Adversarial autoencoder (Makhzani et al. 2016), the AAE of Do & Tran's comparisons.

Autoencoder:    ``loss_ae   = recon − w · mean log p_0(D(z))``          (non-saturating)
Discriminator:  ``loss_disc = −(½ mean log p_0(D(z_p)) + ½ mean log p_1(D(z)))``

``z`` are the encoder's codes (``encoder="gaussian"``: ``z ~ q(z|x)``, default;
``"deterministic"``: ``z = μ(x)`` and ``encode`` reports ``logvar = log 1e-8``),
``z_p ~ N(0, I)`` prior samples, class 0 = prior, class 1 = encoder. ``w`` = ``gen_weight``,
default 10 (Do & Tran's dSprites sweep {10, 20, 50}; REFERENCE.md Part B). There is no KL term
(the KL is logged for the Gaussian encoder as a diagnostic). Discriminator and its Adam as
FactorVAE's. :meth:`AAE.loss` returns ``loss_ae + loss_disc`` with disjoint gradients (see
:mod:`dislab.models.factor_vae`); one step updates both networks once.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from dislab.errors import DislabError
from dislab.estimators import gaussian_kl
from dislab.models.base import HParam, register
from dislab.models.factor_vae import DISC_HPARAMS, _AdversarialMixin, frozen_call
from dislab.models.losses import (
    clipped_log_probs,
    discriminator_accuracy,
    discriminator_loss,
    reconstruction_loss,
)
from dislab.models.vae import VAE, sample_gaussian
from dislab.nets import Discriminator

ENCODERS = ("gaussian", "deterministic")
DETERMINISTIC_LOGVAR = math.log(1e-8)


@register
class AAE(_AdversarialMixin, VAE):
    """Adversarial autoencoder: ``recon + gen_weight * gen_loss`` plus the discriminator's
    loss (disjoint gradients)."""

    name: ClassVar[str] = "aae"
    hparams: ClassVar[dict[str, HParam]] = {
        "gen_weight": HParam(
            10.0, "weight of the encoder's adversarial (generator) loss",
            "Do & Tran 2020 code, dSprites sweep {10, 20, 50}",
            low=0.0,
        ),
        "encoder": HParam(
            "gaussian", "'gaussian' (z ~ q(z|x)) or 'deterministic' (z = mean)",
            "Makhzani et al. 2016 (both variants)",
            choices=ENCODERS,
        ),
        **DISC_HPARAMS,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.hp["encoder"] not in ENCODERS:
            raise DislabError(
                f"Unknown encoder={self.hp['encoder']!r} for aae; choose one of "
                f"{', '.join(ENCODERS)}."
            )
        self.deterministic = self.hp["encoder"] == "deterministic"
        self.discriminator = Discriminator(self.latent_dim, num_layers=self.hp["disc_layers"])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x)
        if self.deterministic:
            logvar = torch.full_like(mean, DETERMINISTIC_LOGVAR)
        return mean, logvar

    def loss(
        self, batch: torch.Tensor, step: int | torch.Tensor = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss_ae + loss_disc, logs)``; logs: recon, gen_loss, ae_loss, disc_loss,
        disc_accuracy (and kl, kl_i for the Gaussian encoder)."""
        mean, logvar = self.encode(batch)
        z = mean if self.deterministic else sample_gaussian(mean, logvar)
        recon = reconstruction_loss(batch, self.decode(z), self.reconstruction)
        gen_loss = -clipped_log_probs(frozen_call(self.discriminator, z))[:, 0].mean()
        ae_loss = recon + self.hp["gen_weight"] * gen_loss
        prior = torch.randn_like(z)
        logits = self.discriminator(torch.cat([prior, z.detach()]))
        n = prior.shape[0]
        logits_real, logits_fake = logits[:n], logits[n:]
        disc_loss = discriminator_loss(logits_real, logits_fake)
        logs: dict[str, torch.Tensor] = {
            "recon": recon.detach(), "gen_loss": gen_loss.detach(), "ae_loss": ae_loss.detach(),
            "disc_loss": disc_loss.detach(),
            "disc_accuracy": discriminator_accuracy(logits_real, logits_fake).detach(),
        }
        if not self.deterministic:
            kl_dims = gaussian_kl(mean, logvar).mean(0).detach()
            logs["kl"] = kl_dims.sum()
            for i in range(kl_dims.shape[0]):
                logs[f"kl_{i}"] = kl_dims[i]
        return ae_loss + disc_loss, logs
