"""FactorVAE (Kim & Mnih 2018), as disentanglement_lib implements it
(``methods/unsupervised/vae.py``, ``FactorVAE.model_fn``).

VAE:            ``loss_vae  = recon + KL + γ · TC``,  ``TC ≈ mean_batch [D(z)_0 − D(z)_1]``
Discriminator:  ``loss_disc = −(½ mean log p_0(z) + ½ mean log p_1(z̃))``

``z`` are the *sampled* codes, ``z̃ = permute_dims(z)`` (each latent column permuted
independently), class 0 = samples of q(z), class 1 = samples of ∏_j q(z_j); probabilities are
clipped to [1e-6, 1 − 1e-6] as disentanglement_lib does. ``permute="same_batch"``
(disentanglement_lib) permutes the batch's own codes; ``permute="second_batch"`` (the paper's
Algorithm 2: an independent batch for the permuted samples) uses the first half of the batch as
the discriminator's real samples and the permuted second half as its fake ones (the VAE loss
still uses the whole batch). Discriminator: 6 × 1000 leaky ReLU (``disc_layers=5`` for Do &
Tran's variant), its own Adam (lr 1e-4, β1 0.5, β2 0.9).

Both losses come from one forward pass. :meth:`FactorVAE.loss` returns ``loss_vae + loss_disc``
built so that their gradients are disjoint: the TC term sees the discriminator through detached
weights, the discriminator sees detached codes. One backward and one step of each optimiser is
one training step (disentanglement_lib's double global-step increment is not reproduced).
Study sweep γ ∈ {10, 20, 30, 40, 50, 100}.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch.func import functional_call

from dislab.errors import DislabError
from dislab.models.base import HParam, register
from dislab.models.losses import (
    discriminator_accuracy,
    discriminator_loss,
    discriminator_tc,
    shuffle_codes,
)
from dislab.models.vae import VAE
from dislab.nets import Discriminator

PERMUTE = ("same_batch", "second_batch")


def frozen_call(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with detached parameters: gradients reach ``x`` but not the module."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    return functional_call(module, params, (x,))


def step_all(
    model: torch.nn.Module, batch: torch.Tensor, step: int,
    optimizers: dict[str, torch.optim.Optimizer],
) -> dict[str, torch.Tensor]:
    """One backward of ``model.loss`` and one step of every optimiser (disjoint gradients)."""
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    loss, logs = model.loss(batch, step)
    loss.backward()
    for opt in optimizers.values():
        opt.step()
    logs = dict(logs)
    logs["loss"] = loss.detach()
    return logs


DISC_HPARAMS: dict[str, HParam] = {
    "disc_layers": HParam(6, "hidden layers of the discriminator (1000 units each)",
                          "disentanglement_lib fc_discriminator (6; Do & Tran use 5)",
                          kind=int, low=1),
    "disc_lr": HParam(1e-4, "discriminator Adam learning rate",
                      "disentanglement_lib discriminator/AdamOptimizer", low=0.0, low_open=True),
    "disc_beta1": HParam(0.5, "discriminator Adam beta1",
                         "disentanglement_lib discriminator/AdamOptimizer",
                         low=0.0, high=1.0, high_open=True),
    "disc_beta2": HParam(0.9, "discriminator Adam beta2",
                         "disentanglement_lib discriminator/AdamOptimizer",
                         low=0.0, high=1.0, high_open=True),
}


class _AdversarialMixin:
    """Two optimisers: the study's Adam on encoder + decoder, the discriminator's own Adam."""

    discriminator: Discriminator
    hp: dict[str, Any]
    #: its step is one backward of ``loss`` and one update of each optimiser (disjoint
    #: gradients), which is what packed training does
    packable: ClassVar[bool | str] = True

    def configure_optimizers(
        self, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> dict[str, torch.optim.Optimizer]:
        disc = set(id(p) for p in self.discriminator.parameters())
        main = [p for p in self.parameters() if id(p) not in disc]  # type: ignore[attr-defined]
        return {
            "model": torch.optim.Adam(main, lr=lr, betas=betas, eps=eps),
            "discriminator": torch.optim.Adam(
                self.discriminator.parameters(), lr=self.hp["disc_lr"],
                betas=(self.hp["disc_beta1"], self.hp["disc_beta2"]), eps=1e-8,
            ),
        }

    def training_step(
        self, batch: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        """One update of the model and one of the discriminator, from one forward pass."""
        return step_all(self, batch, step, optimizers)  # type: ignore[arg-type]


@register
class FactorVAE(_AdversarialMixin, VAE):
    """FactorVAE: ``recon + kl + gamma * tc`` plus the discriminator's loss (disjoint grads)."""

    name: ClassVar[str] = "factor_vae"
    packed_hparams: ClassVar[tuple[str, ...]] = ("gamma",)
    hparams: ClassVar[dict[str, HParam]] = {
        "gamma": HParam(
            10.0, "weight of the discriminator's total-correlation estimate",
            "disentanglement_lib train_test (10); study sweep {10, 20, 30, 40, 50, 100}",
            low=0.0,
        ),
        "permute": HParam(
            "same_batch", "permuted samples from 'same_batch' (dlib) or 'second_batch' (paper)",
            "disentanglement_lib shuffle_codes",
            choices=PERMUTE,
        ),
        **DISC_HPARAMS,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.hp["permute"] not in PERMUTE:
            raise DislabError(
                f"Unknown permute={self.hp['permute']!r} for factor_vae; choose one of "
                f"{', '.join(PERMUTE)}."
            )
        self.discriminator = Discriminator(self.latent_dim, num_layers=self.hp["disc_layers"])

    def loss(
        self, batch: torch.Tensor, step: int | torch.Tensor = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss_vae + loss_disc, logs)``; logs: recon, kl, kl_i, elbo, tc, vae_loss,
        disc_loss, disc_accuracy."""
        f = self.forward_terms(batch)
        tc = discriminator_tc(frozen_call(self.discriminator, f.z))
        vae_loss = f.recon + f.kl + self.hp["gamma"] * tc
        z = f.z.detach()
        if self.hp["permute"] == "same_batch":
            real, fake = z, shuffle_codes(z)
        else:
            half = z.shape[0] // 2
            real, fake = z[:half], shuffle_codes(z[half:])
        logits = self.discriminator(torch.cat([real, fake]))
        logits_real, logits_fake = logits[: real.shape[0]], logits[real.shape[0]:]
        disc_loss = discriminator_loss(logits_real, logits_fake)
        logs = self.elbo_logs(f)
        logs.update({
            "tc": tc.detach(), "vae_loss": vae_loss.detach(), "disc_loss": disc_loss.detach(),
            "disc_accuracy": discriminator_accuracy(logits_real, logits_fake).detach(),
        })
        return vae_loss + disc_loss, logs
