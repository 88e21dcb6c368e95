"""Shared base of the VAE-family methods: Gaussian encoder, decoder of logits, ELBO terms.

The common objective (disentanglement_lib ``methods/unsupervised/vae.py``,
``BaseVAE.model_fn``)::

    z = mu + exp(logvar / 2) * eps,   eps ~ N(0, I)
    recon = mean_batch sum_pixels -log p(x | z)          (see dislab.models.losses)
    kl_l  = mean_batch 0.5 (mu_l^2 + exp(logvar_l) - logvar_l - 1),   kl = sum_l kl_l
    loss  = recon + regularizer(...)

How to write a method on top of :class:`VAE`
--------------------------------------------
* Set ``name`` and ``hparams`` (``{name: HParam(default, help, source)}``) and decorate with
  :func:`dislab.models.base.register`. The resolved values are in ``self.hp`` (a dict).
* Usually override only :meth:`VAE.regularizer`, which receives a :class:`Forward` (``x``,
  ``mean``, ``logvar``, ``z``, ``logits``, ``recon``, ``kl_dims``, ``kl``) and the step and
  returns ``(regularizer, logs)``; the base adds recon, kl, kl_0..kl_{d-1} and elbo to the logs.
* Methods with a different batch layout (``batch_kind = "pairs"``) or objective override
  :meth:`VAE.loss` and can reuse :meth:`VAE.forward_terms` on any ``(B, *obs)`` tensor.
* Extra networks (discriminators) are ordinary sub-modules created in ``__init__`` after
  ``super().__init__(...)``; override ``configure_optimizers`` / ``training_step`` for them.
* ``__init__(observation_shape, latent_dim=10, **options)``: the shared options (``arch``,
  ``reconstruction``, ``dataset_size``) and the hyper-parameters are taken by
  :meth:`dislab.models.base.Method.__init__` (unknown hparams raise a DislabError naming the
  valid ones); build methods with :func:`dislab.models.create`.

Logs are detached tensors (no ``.item()`` inside ``loss``, so it can run under
``torch.compile``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from dislab.estimators import gaussian_kl
from dislab.models import noise
from dislab.models.base import HParam, Method
from dislab.models.losses import reconstruction_loss
from dislab.nets import build

__all__ = ["VAE", "Forward", "sample_gaussian"]


def sample_gaussian(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Reparameterised sample ``mean + exp(logvar / 2) * eps``."""
    return mean + torch.exp(0.5 * logvar) * noise.randn_like(mean)


@dataclass
class Forward:
    """Everything one forward pass of a VAE computes (shapes for a batch of B)."""

    x: torch.Tensor  # (B, *obs)
    mean: torch.Tensor  # (B, d)
    logvar: torch.Tensor  # (B, d)
    z: torch.Tensor  # (B, d) sampled code
    logits: torch.Tensor  # (B, *obs)
    recon: torch.Tensor  # scalar
    kl_dims: torch.Tensor  # (d,) batch mean of the per-dimension KL
    kl: torch.Tensor  # scalar, kl_dims.sum()


class VAE(Method):
    """A VAE whose loss is ``recon + regularizer``; the plain regulariser is the KL (β = 1).

    Not registered itself; subclasses are the methods.
    """

    name: ClassVar[str] = "vae"
    hparams: ClassVar[dict[str, HParam]] = {}

    def __init__(self, observation_shape: tuple[int, ...], latent_dim: int = 10,
                 **options: Any) -> None:
        """The shared options and hyper-parameters (:meth:`Method.__init__`), then the
        encoder and decoder of ``arch`` (:func:`dislab.nets.build`)."""
        super().__init__(observation_shape, latent_dim, **options)
        self.encoder, self.decoder = build(self.arch, self.observation_shape, self.latent_dim)

    # -- the Method contract -------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, *obs) -> (mean, logvar)``, each ``(B, latent_dim)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, latent_dim) -> logits (B, *obs)`` (images are ``sigmoid(logits)``)."""
        return self.decoder(z)

    def forward_terms(self, x: torch.Tensor) -> Forward:
        """Encode, sample, decode and compute the reconstruction and KL terms."""
        mean, logvar = self.encode(x)
        z = sample_gaussian(mean, logvar)
        logits = self.decode(z)
        recon = reconstruction_loss(x, logits, self.reconstruction)
        kl_dims = gaussian_kl(mean, logvar).mean(0)
        return Forward(x, mean, logvar, z, logits, recon, kl_dims, kl_dims.sum())

    def regularizer(
        self, f: Forward, step: int | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The term added to the reconstruction loss, and its logs (default: the KL)."""
        return f.kl, {}

    def loss(
        self, batch: torch.Tensor, step: int | torch.Tensor = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(recon + regularizer, logs)``; logs hold recon, kl, kl_0.., elbo and the
        regulariser's own terms, all detached."""
        f = self.forward_terms(batch)
        reg, reg_logs = self.regularizer(f, step)
        loss = f.recon + reg
        logs = self.elbo_logs(f)
        logs.update({k: v.detach() for k, v in reg_logs.items()})
        return loss, logs

    @staticmethod
    def elbo_logs(f: Forward) -> dict[str, torch.Tensor]:
        """recon, kl, elbo (= -(recon + kl), as disentanglement_lib logs it) and kl_0..kl_{d-1}."""
        logs = {"recon": f.recon.detach(), "kl": f.kl.detach(),
                "elbo": -(f.recon + f.kl).detach()}
        kl_dims = f.kl_dims.detach()
        for i in range(kl_dims.shape[0]):
            logs[f"kl_{i}"] = kl_dims[i]
        return logs
