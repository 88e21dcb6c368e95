"""DIP-VAE-I and DIP-VAE-II (Kumar et al. 2018), as disentanglement_lib implements them.

``loss = recon + KL + λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)²``, ``λ_d = lambda_d_factor · λ_od``,

* DIP-VAE-I: ``C = Cov_batch[μ(x)]`` (biased batch covariance of the posterior means);
* DIP-VAE-II: ``C = Cov_batch[μ(x)] + mean_batch diag(exp(logvar(x)))`` (covariance of z under
  the aggregate posterior).

Study: λ_od ∈ {1, 2, 5, 10, 20, 50}; lambda_d_factor 10 (I) and 1 (II) (disentanglement_lib
``config/unsupervised_study_v1/sweep.py``).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from dislab.models.base import HParam, register
from dislab.models.losses import batch_covariance, dip_terms
from dislab.models.vae import VAE, Forward


class _DIPVAE(VAE):
    dip_type: ClassVar[str] = "i"
    packed_hparams: ClassVar[tuple[str, ...]] = ("lambda_od", "lambda_d_factor")

    def covariance(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The ``(d, d)`` matrix C pushed towards the identity."""
        cov = batch_covariance(mean)
        if self.dip_type == "ii":
            cov = cov + torch.diag(torch.exp(logvar).mean(0))
        return cov

    def regularizer(
        self, f: Forward, step: int | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        lambda_od = self.hp["lambda_od"]
        lambda_d = self.hp["lambda_d_factor"] * lambda_od
        cov = self.covariance(f.mean, f.logvar)
        off, diag_term = dip_terms(cov)
        reg = lambda_od * off + lambda_d * diag_term
        return f.kl + reg, {"dip_offdiag": off, "dip_diag": diag_term, "dip_reg": reg}


@register
class DIPVAEI(_DIPVAE):
    """DIP-VAE-I: C = batch covariance of the posterior means."""

    name: ClassVar[str] = "dip_vae_i"
    dip_type: ClassVar[str] = "i"
    hparams: ClassVar[dict[str, HParam]] = {
        "lambda_od": HParam(
            10.0, "weight of the off-diagonal covariance penalty",
            "disentanglement_lib train_test (10); study sweep {1, 2, 5, 10, 20, 50}",
            low=0.0,
        ),
        "lambda_d_factor": HParam(
            10.0, "λ_d = lambda_d_factor · λ_od", "study (dip_vae.lambda_d_factor = 10 for type i)",
            low=0.0,
        ),
    }


@register
class DIPVAEII(_DIPVAE):
    """DIP-VAE-II: C = covariance of z under the batch's aggregate posterior."""

    name: ClassVar[str] = "dip_vae_ii"
    dip_type: ClassVar[str] = "ii"
    hparams: ClassVar[dict[str, HParam]] = {
        "lambda_od": HParam(
            10.0, "weight of the off-diagonal covariance penalty",
            "disentanglement_lib train_test (10); study sweep {1, 2, 5, 10, 20, 50}",
            low=0.0,
        ),
        "lambda_d_factor": HParam(
            1.0, "λ_d = lambda_d_factor · λ_od", "study (dip_vae.lambda_d_factor = 1 for type ii)",
            low=0.0,
        ),
    }
