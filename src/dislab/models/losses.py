"""Loss terms shared by the methods, as pure functions (each tested against its formula).

Reconstruction (disentanglement_lib ``methods/shared/losses.py``): decoders output logits.

* ``"bernoulli"`` (study default): per sample ``sum_pixels BCE_with_logits(logits, x)`` with
  ``x`` in [0, 1] (not binarised), mean over the batch.
* ``"gaussian"``: disentanglement_lib's ``l2_loss``, per sample ``sum_pixels (x - sigmoid(l))^2``,
  mean over the batch: a fixed-variance Gaussian (σ² = 1/2) negative log-likelihood up to a
  constant, with mean ``sigmoid(logits)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dislab.errors import DislabError
from dislab.models import noise

__all__ = [
    "RECONSTRUCTIONS", "reconstruction_loss", "anneal", "batch_covariance",
    "dip_regularizer", "dip_terms", "shuffle_codes", "clipped_log_probs", "discriminator_tc",
    "discriminator_loss", "discriminator_accuracy",
]

RECONSTRUCTIONS = ("bernoulli", "gaussian")
_LOG_MIN = math.log(1e-6)
_LOG_MAX = math.log1p(-1e-6)


def reconstruction_loss(x: torch.Tensor, logits: torch.Tensor, kind: str = "bernoulli"
                        ) -> torch.Tensor:
    """Mean over the batch of the per-sample summed reconstruction loss (scalar).

    ``x`` and ``logits``: ``(B, *obs)``; ``kind`` in ``RECONSTRUCTIONS``.
    """
    batch = x.shape[0]
    if kind == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / batch
    if kind == "gaussian":
        return (x - torch.sigmoid(logits)).square().sum() / batch
    raise DislabError(
        f"Unknown reconstruction {kind!r}; choose one of {', '.join(RECONSTRUCTIONS)}."
    )


def anneal(c_max: float, step: int | torch.Tensor, iteration_threshold: int
           ) -> float | torch.Tensor:
    """AnnealedVAE capacity ``C(t) = min(c_max, c_max * t / iteration_threshold)``.

    disentanglement_lib's test: c_max=100, threshold=100 gives C(0)=0, C(10)=10, C(100)=100,
    C(101)=100. A tensor ``step`` gives a tensor (no graph break under ``torch.compile``).
    """
    if isinstance(step, torch.Tensor):
        return torch.clamp(c_max * step.to(torch.float32) / iteration_threshold, max=c_max)
    return min(float(c_max), float(c_max) * float(step) / float(iteration_threshold))


def batch_covariance(x: torch.Tensor) -> torch.Tensor:
    """Biased batch covariance ``E[x x^T] - E[x] E[x]^T`` of ``(B, d)`` rows, ``(d, d)``.

    disentanglement_lib ``compute_covariance_z_mean`` (divides by B).
    """
    mean = x.mean(0)
    return x.T @ x / x.shape[0] - torch.outer(mean, mean)


def dip_terms(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum_{i!=j} C_ij^2, sum_i (C_ii - 1)^2)`` of a ``(d, d)`` matrix."""
    diag = torch.diagonal(cov)
    off = (cov - torch.diag_embed(diag)).square().sum()
    return off, (diag - 1.0).square().sum()


def dip_regularizer(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """``lambda_od * sum_{i!=j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2`` (scalar).

    disentanglement_lib ``regularize_diag_off_diag_dip``; its test (λ=1, 1): ones(10,10) → 90,
    zeros → 10, I → 0, 2I → 10.
    """
    off, diag = dip_terms(cov)
    return lambda_od * off + lambda_d * diag


def shuffle_codes(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """FactorVAE's permute-dims: each column of ``z`` ``(B, d)`` permuted independently.

    Keeps every column's marginal (the same multiset of values) and breaks the dependence
    between columns.
    """
    keys = noise.rand(z.shape, z.device, generator)
    return torch.gather(z, 0, keys.argsort(dim=0))


def clipped_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``log(clip(softmax(logits), 1e-6, 1 - 1e-6))`` as disentanglement_lib's discriminator
    wrapper (gradients vanish where the clip is active)."""
    return torch.clamp(F.log_softmax(logits, dim=1), _LOG_MIN, _LOG_MAX)


def discriminator_tc(logits: torch.Tensor) -> torch.Tensor:
    """FactorVAE's TC estimate ``mean_batch (logit_0 - logit_1)`` (class 0 = joint q(z))."""
    return (logits[:, 0] - logits[:, 1]).mean()


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Negative of ``0.5 mean log p_0(real) + 0.5 mean log p_1(fake)`` (to minimise).

    FactorVAE: real = codes ``z ~ q(z)``, fake = their permute-dims; AAE: real = prior samples,
    fake = encoder codes. Probabilities clipped as :func:`clipped_log_probs`.
    """
    return -(0.5 * clipped_log_probs(logits_real)[:, 0].mean()
             + 0.5 * clipped_log_probs(logits_fake)[:, 1].mean())


def discriminator_accuracy(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Fraction of real (class 0) and fake (class 1) inputs classified correctly."""
    right = (logits_real.argmax(1) == 0).float().sum() + (logits_fake.argmax(1) == 1).float().sum()
    return right / (logits_real.shape[0] + logits_fake.shape[0])
