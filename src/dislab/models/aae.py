"""Adversarial autoencoder (Makhzani et al. 2016), the AAE of Do & Tran's comparisons.

Autoencoder:    ``loss_ae   = recon − w · mean log p_0(D(z))``          (non-saturating)
Discriminator:  ``loss_disc = −(½ mean log p_0(D(z_p)) + ½ mean log p_1(D(z)))``

``z`` are the encoder's codes (``encoder="gaussian"``: ``z ~ q(z|x)``, default;
``"deterministic"``: ``z = μ(x)`` and ``encode`` reports ``logvar = log 1e-8``),
``z_p ~ N(0, I)`` prior samples, class 0 = prior, class 1 = encoder. ``w`` = ``gen_weight``, default
10 (Do & Tran's dSprites sweep {10, 20, 50} in clarken92/DisentanglementMetrics). There is no KL
term (the KL is logged for the Gaussian encoder as a diagnostic). Discriminator and its Adam as
FactorVAE's. :meth:`AAE.loss` returns ``loss_ae + loss_disc`` with disjoint gradients (see
:mod:`dislab.models.factor_vae`); one step updates both networks once.

``setup="dotran"`` reproduces Do & Tran's AAE (clarken92/DisentanglementMetrics
``models/generative/aae.py`` ``AAE.build``, ``models/enc_dec/dSprites.py``
``DiscriminatorZ_1Konny``, ``working/disentanglement/dSprites/AAE/_train.py``) where dislab's
default differs: a discriminator of 5 hidden layers × 1000 (leaky ReLU 0.2) with *one*
logit (sigmoid), every weight of the encoder, decoder and discriminator drawn from a normal
truncated at 2σ with σ = 0.02 (zero biases) instead of Glorot; the discriminator loss
``BCE(D(z_p), 1) + BCE(D(z), 0)`` without the ½ and without clipping the probabilities, the
generator loss ``BCE(D(z), 1)``; and the updates in sequence, each from its own forward
pass: first the discriminator, then the autoencoder against the updated discriminator. Their
depth and Adam settings are hyper-parameters of their own: reproduce them with
``disc_layers=5``, ``disc_beta2=0.99`` and the run's ``beta2=0.99`` (autoencoder Adam
β = (0.9, 0.99), discriminator (0.5, 0.99)); the ``dotran2020_aae`` study preset sets all
three. Not reproduced: their 1Konny
conv architecture (dislab uses its ``conv`` nets) and their epoch-wise shuffling (dislab
samples i.i.d.).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from dislab.errors import DislabError
from dislab.estimators import gaussian_kl
from dislab.models import noise
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
SETUPS = ("dislab", "dotran")


def truncated_normal_init(module: torch.nn.Module, std: float = 0.02) -> None:
    """Weights of every Linear / Conv / ConvTranspose layer ~ N(0, std²) truncated at ±2·std
    (TensorFlow's ``truncated_normal_initializer``), biases 0."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.trunc_normal_(m.weight, 0.0, std, -2.0 * std, 2.0 * std)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)


class SigmoidDiscriminator(torch.nn.Module):
    """Do & Tran's ``DiscriminatorZ_1Konny``: ``num_layers`` × 1000 leaky ReLU (0.2), one
    logit ``(B,)``."""

    def __init__(self, latent_dim: int, num_layers: int = 5, hidden: int = 1000) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        n_in = latent_dim
        for _ in range(int(num_layers)):
            layers += [torch.nn.Linear(n_in, hidden), torch.nn.LeakyReLU(0.2)]
            n_in = hidden
        layers.append(torch.nn.Linear(n_in, 1))
        self.net = torch.nn.Sequential(*layers)
        truncated_normal_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)[:, 0]
DETERMINISTIC_LOGVAR = math.log(1e-8)


@register
class AAE(_AdversarialMixin, VAE):
    """Adversarial autoencoder: ``recon + gen_weight * gen_loss`` plus the discriminator's
    loss (disjoint gradients)."""

    name: ClassVar[str] = "aae"
    packed_hparams: ClassVar[tuple[str, ...]] = ("gen_weight",)
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
        "setup": HParam(
            "dislab", "'dislab' or 'dotran' (Do & Tran's one-logit discriminator, N(0, 0.02) "
            "initialisation, losses and update order; with disc_layers=5, disc_beta2=0.99 and "
            "beta2=0.99 their whole setup)", "dislab; clarken92/DisentanglementMetrics (dotran)",
            choices=("dislab", "dotran"),
        ),
        **DISC_HPARAMS,
    }

    #: setup="dislab" packs (one backward, disjoint gradients); "dotran" does not
    packable: ClassVar[bool | str] = True

    @classmethod
    def pack_problem(cls, hparams: dict[str, Any]) -> str | None:
        if hparams.get("setup") == "dotran":
            return ("aae with setup='dotran' updates the discriminator and the autoencoder "
                    "in sequence, from two forward passes")
        return super().pack_problem(hparams)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.hp["encoder"] not in ENCODERS:
            raise DislabError(
                f"Unknown encoder={self.hp['encoder']!r} for aae; choose one of "
                f"{', '.join(ENCODERS)}."
            )
        if self.hp["setup"] not in SETUPS:
            raise DislabError(f"Unknown setup={self.hp['setup']!r} for aae; choose one of "
                              f"{', '.join(SETUPS)}.")
        self.deterministic = self.hp["encoder"] == "deterministic"
        self.dotran = self.hp["setup"] == "dotran"
        if self.dotran:
            self.discriminator = SigmoidDiscriminator(self.latent_dim, self.hp["disc_layers"])
            truncated_normal_init(self.encoder)
            truncated_normal_init(self.decoder)
        else:
            self.discriminator = Discriminator(self.latent_dim,
                                               num_layers=self.hp["disc_layers"])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x)
        if self.deterministic:
            logvar = torch.full_like(mean, DETERMINISTIC_LOGVAR)
        return mean, logvar

    def _codes(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean, logvar = self.encode(batch)
        z = mean if self.deterministic else sample_gaussian(mean, logvar)
        return mean, logvar, z

    def dotran_losses(self, batch: torch.Tensor, prior: torch.Tensor | None = None
                      ) -> dict[str, torch.Tensor]:
        """Do & Tran's terms on one forward pass: ``rec_x`` (BCE summed over pixels, batch
        mean), ``D_loss = BCE(D(z_p), 1) + BCE(D(z), 0)``, ``G_loss = BCE(D(z), 1)`` and
        ``AE_loss = rec_x + gen_weight · G_loss`` (``models/generative/aae.py``, ``build``)."""
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        mean, logvar, z = self._codes(batch)
        recon = reconstruction_loss(batch, self.decode(z), self.reconstruction)
        prior = torch.randn_like(z) if prior is None else prior
        d_prior, d_z = self.discriminator(prior), self.discriminator(z)
        ones, zeros = torch.ones_like(d_z), torch.zeros_like(d_z)
        d_loss = bce(d_prior, ones) + bce(d_z, zeros)
        g_loss = bce(d_z, ones)
        return {"recon": recon, "D_loss": d_loss, "G_loss": g_loss,
                "AE_loss": recon + self.hp["gen_weight"] * g_loss,
                "accuracy": 0.5 * ((d_prior > 0).float().mean() + (d_z < 0).float().mean()),
                "mean": mean, "logvar": logvar}

    def training_step(
        self, batch: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        """dislab: one update of both networks from one forward pass; ``setup="dotran"``:
        a discriminator update, then an autoencoder update, each from its own forward pass
        (``_train.py``: ``Dz_steps=1`` then ``AE_steps=1`` on the same batch and prior
        samples)."""
        if not self.dotran:
            return super().training_step(batch, step, optimizers)
        prior = torch.randn(batch.shape[0], self.latent_dim, device=batch.device)
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            z = self._codes(batch)[2]
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        d_prior, d_z = self.discriminator(prior), self.discriminator(z)
        d_loss = bce(d_prior, torch.ones_like(d_prior)) + bce(d_z, torch.zeros_like(d_z))
        d_loss.backward()
        optimizers["discriminator"].step()
        optimizers["model"].zero_grad(set_to_none=True)
        terms = self.dotran_losses(batch, prior)
        self.discriminator.requires_grad_(False)
        try:
            terms["AE_loss"].backward()
        finally:
            self.discriminator.requires_grad_(True)
        optimizers["model"].step()
        return {"loss": (terms["AE_loss"] + d_loss).detach(), "recon": terms["recon"].detach(),
                "gen_loss": terms["G_loss"].detach(), "ae_loss": terms["AE_loss"].detach(),
                "disc_loss": d_loss.detach(), "disc_accuracy": terms["accuracy"].detach()}

    def loss(
        self, batch: torch.Tensor, step: int | torch.Tensor = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss_ae + loss_disc, logs)``; logs: recon, gen_loss, ae_loss, disc_loss,
        disc_accuracy (and kl, kl_i for the Gaussian encoder). With ``setup="dotran"`` the
        sum of Do & Tran's two losses (:meth:`dotran_losses`; training uses
        :meth:`training_step`, which updates the networks in sequence)."""
        if self.dotran:
            t = self.dotran_losses(batch)
            return t["AE_loss"] + t["D_loss"], {
                "recon": t["recon"].detach(), "gen_loss": t["G_loss"].detach(),
                "ae_loss": t["AE_loss"].detach(), "disc_loss": t["D_loss"].detach(),
                "disc_accuracy": t["accuracy"].detach()}
        mean, logvar = self.encode(batch)
        z = mean if self.deterministic else sample_gaussian(mean, logvar)
        recon = reconstruction_loss(batch, self.decode(z), self.reconstruction)
        gen_loss = -clipped_log_probs(frozen_call(self.discriminator, z))[:, 0].mean()
        ae_loss = recon + self.hp["gen_weight"] * gen_loss
        prior = noise.randn_like(z)
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
