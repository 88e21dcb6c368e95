"""Slow-VAE (Klindt et al. 2021, "Towards nonlinear disentanglement in natural data with
temporal sparse coding"): a VAE on pairs ``(x_t, x_{t+1})`` whose transition prior is a
Laplace distribution centred on the other frame's posterior mean.

Batches are pairs ``(B, 2, *obs)`` from :func:`dislab.data.pairs.pair_batches`. With
``q_t = N(mu_t, diag exp(logvar_t))`` the posterior of frame ``t`` and
``L(m) = Laplace(m, 1/λ)`` (density ``λ/2 · exp(-λ|z - m|)``) per latent, the loss per pair is

    recon(x_0) + recon(x_1)
    + β · ½ [KL(q_0 || N(0, I)) + KL(q_1 || N(0, I))]
    + γ · [KL(q_0 || L(mu_1)) + KL(q_1 || L(mu_0))]          (both directions)

averaged over the ``B`` pairs (so ``recon`` and the normal KL are per-image means, as the
reference code's ``2·recon + β·KL`` on a batch of 2B images). The Gaussian–Laplace KL is in
closed form (:func:`gaussian_laplace_kl`); the centre ``mu`` of the other frame is not
detached (the reference code's choice).

Defaults β = 1, γ = 10, λ = 6: bethgelab/slow_disentanglement ``main.py``. The Laplace term
is the reference's (``scripts/solver.py``, ``Solver.train``: both directions'
cross-entropies minus the mean per-image posterior entropy, i.e. the entropy once per pair):
``entropy_share=0.5``, the default. ``entropy_share=1`` subtracts each direction's own
entropy (the exact KL of both directions; dislab's earlier default), which makes a narrow
posterior cheaper: an unused latent then settles near σ ≈ 1/(λ·sqrt(2/π)) ≈ 0.21.

``batch_size`` counts images, two per pair (``batch_counts = "images"``): the reference's
``--batch-size 64`` is 32 pairs (``scripts/dataset.py``, ``return_data`` halves it).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from dislab.errors import DislabError
from dislab.estimators import gaussian_kl, total_correlation
from dislab.models.base import HParam, register
from dislab.models.losses import anneal, reconstruction_loss
from dislab.models.vae import VAE, Forward, sample_gaussian

__all__ = ["SlowVAE", "gaussian_laplace_cross_entropy", "gaussian_laplace_kl"]

#: values of the ``transition`` hyper-parameter
TRANSITIONS = ("kl", "mean", "kl_fixed_width")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_LOG_2PI_E = math.log(2.0 * math.pi * math.e)


def gaussian_laplace_cross_entropy(
    mean: torch.Tensor, logvar: torch.Tensor, centre: torch.Tensor, rate: float
) -> torch.Tensor:
    """Element-wise ``E_{z ~ N(mean, exp(logvar))}[-log Laplace(z; centre, 1/rate)]``.

    ``= -log(rate/2) + rate · E|z - centre|`` with the folded-normal mean
    ``E|z - c| = σ √(2/π) exp(-δ²/2σ²) + δ (1 - 2Φ(-δ/σ))``, ``δ = mean - centre``.
    """
    sigma = torch.exp(0.5 * logvar)
    delta = mean - centre
    folded = sigma * _SQRT_2_OVER_PI * torch.exp(-0.5 * (delta / sigma).square()) \
        + delta * torch.erf(delta / (sigma * math.sqrt(2.0)))
    return -math.log(rate / 2.0) + rate * folded


def gaussian_laplace_kl(
    mean: torch.Tensor, logvar: torch.Tensor, centre: torch.Tensor, rate: float
) -> torch.Tensor:
    """Element-wise ``KL(N(mean, exp(logvar)) || Laplace(centre, 1/rate))`` (closed form):
    the cross-entropy minus the Gaussian entropy ``½ log(2πe σ²)``."""
    entropy = 0.5 * (logvar + _LOG_2PI_E)
    return gaussian_laplace_cross_entropy(mean, logvar, centre, rate) - entropy


@register
class SlowVAE(VAE):
    """Slow-VAE on pairs: ``2·recon + β·KL_normal + γ·(Laplace term, both directions)``."""

    name: ClassVar[str] = "slow_vae"
    packed_hparams: ClassVar[tuple[str, ...]] = ("beta", "gamma")
    batch_kind: ClassVar[str] = "pairs"
    batch_counts: ClassVar[str] = "images"
    hparams: ClassVar[dict[str, HParam]] = {
        "beta": HParam(1.0, "weight of the KL to the N(0, I) prior",
                       "Klindt et al. 2021 / bethgelab/slow_disentanglement", low=0.0),
        "gamma": HParam(10.0, "weight of the KL to the Laplace transition prior",
                        "Klindt et al. 2021 / bethgelab/slow_disentanglement", low=0.0),
        "rate": HParam(6.0, "rate λ of the Laplace transition prior (scale 1/λ)",
                       "Klindt et al. 2021 / bethgelab/slow_disentanglement",
                       low=0.0, low_open=True),
        "tc": HParam(0.0, "weight of an added total-correlation penalty on the sampled codes "
                     "(β-TCVAE's minibatch weighted estimator, per image, like its β − 1); "
                     "0 = Slow-VAE as published", "dislab (0: off)", low=0.0),
        "transition": HParam("kl", "Laplace transition term: 'kl' (the paper's KL of the "
                             "posteriors), 'mean' (its cross-entropy at the posterior means "
                             "only, an L1 penalty on their change that leaves the widths free) "
                             "or 'kl_fixed_width' (the KL with no gradient to the widths)",
                             "Klindt et al. 2021 ('kl'); dislab (the others)",
                             choices=TRANSITIONS),
        "one_change": HParam(0.0, "extra Laplace (L1) penalty on the change of the posterior "
                             "means of every latent but the one that changes most, as a multiple "
                             "of γ·λ: pairs where one factor changes (pair option changes=1) "
                             "then cost least when one latent changes; 0 = Slow-VAE as published",
                             "dislab (0: off)", low=0.0),
        "warmup": HParam(0, "updates over which the transition terms (γ and one_change) ramp "
                         "linearly from 0 to their values, so the reconstruction is learned "
                         "before the transition prior squeezes the latents; 0 = Slow-VAE as "
                         "published", "dislab (0: off)", kind=int, low=0),
        "entropy_share": HParam(0.5, "posterior entropy subtracted in the Laplace term, per "
                                "frame: 0.5 = the reference code's (once per pair), 1 = the "
                                "exact KL of both directions",
                                "bethgelab/slow_disentanglement scripts/solver.py (0.5)",
                                low=0.0, high=1.0),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.hp["transition"] not in TRANSITIONS:
            raise DislabError(f"slow_vae: unknown transition {self.hp['transition']!r}; "
                              f"choose one of {', '.join(TRANSITIONS)}.")

    def loss(
        self, batch: torch.Tensor, step: int | torch.Tensor = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``batch``: ``(B, 2, *obs)``. Returns the loss and logs (recon, kl, elbo, kl_i,
        kl_laplace; l1_others with ``one_change``, tc with ``tc``)."""
        b = batch.shape[0]
        x = self.pair_frames(batch)  # frames interleaved: x0, x1, x0, x1, ...
        mean, logvar = self.encode(x)
        z = sample_gaussian(mean, logvar)
        logits = self.decode(z)
        recon = reconstruction_loss(x, logits, self.reconstruction)
        kl_dims = gaussian_kl(mean, logvar).mean(0)
        f = Forward(x, mean, logvar, z, logits, recon, kl_dims, kl_dims.sum())
        m = mean.reshape(b, 2, -1)
        lv = logvar.reshape(b, 2, -1)
        rate = float(self.hp["rate"])
        change = (m[:, 0] - m[:, 1]).abs()  # (B, d): how far each latent's mean moves
        if self.hp["transition"] == "mean":
            # Laplace cross-entropy of the posterior means only (both directions): an L1
            # penalty on the change of the means that leaves the posterior widths free
            kl_lap = 2.0 * (rate * change - math.log(rate / 2.0)).sum(1).mean()
        else:
            # "kl_fixed_width": the same value, but no gradient reaches the posterior widths
            # through this term (they are set by the reconstruction and the N(0, I) KL alone)
            w = lv.detach() if self.hp["transition"] == "kl_fixed_width" else lv
            kl_lap = (gaussian_laplace_kl(m[:, 0], w[:, 0], m[:, 1], rate)
                      + gaussian_laplace_kl(m[:, 1], w[:, 1], m[:, 0], rate))
            share = float(self.hp["entropy_share"])
            if share != 1.0:  # subtract only `share` of both frames' entropies
                kl_lap = kl_lap + (1.0 - share) * (w[:, 0] + w[:, 1] + 2 * _LOG_2PI_E) / 2
            kl_lap = kl_lap.sum(1).mean()
        ramp = anneal(1.0, step, int(self.hp["warmup"])) if self.hp["warmup"] else 1.0
        loss = 2.0 * recon + self.hp["beta"] * f.kl + ramp * self.hp["gamma"] * kl_lap
        logs = self.elbo_logs(f)
        logs["kl_laplace"] = kl_lap.detach()
        if float(self.hp["one_change"]) != 0.0:
            others = (change.sum(1) - change.max(1).values).mean()
            loss = loss + ramp * 2.0 * float(self.hp["one_change"]) * self.hp["gamma"] * rate \
                * others
            logs["l1_others"] = others.detach()
        if float(self.hp["tc"]) != 0.0:
            tc = total_correlation(z, mean, logvar, self.dataset_size, estimator="mws",
                                   include_constant=self.dataset_size is not None)
            loss = loss + 2.0 * float(self.hp["tc"]) * tc
            logs["tc"] = tc.detach()
        return loss, logs
