"""Ada-GVAE (Locatello et al. 2020, *Weakly-Supervised Disentanglement Without Compromises*):
a β-VAE on pairs of observations that differ in a few factors, whose posteriors share the
latents that the pair does not change.

Batches are pairs ``(B, 2, *obs)`` (:func:`dislab.data.pairs.pair_batches`). By default
(``pair_defaults``, used when a config gives no ``pair_options``) the pairs are the paper's:
disentanglement_lib's ``simple_dynamics`` (``methods/weak/train_weak_lib.py``; pair options
``dynamics="locatello", k=-1``: 1 or k factors redrawn uniformly, shape included);
``batch_size`` counts pairs as there (64 pairs = 128 images). With ``q_t = N(mu_t,
diag s2_t)`` the encoder's posterior of frame ``t``, per pair:

1. ``delta_i = KL(q_0,i || q_1,i)`` for each latent ``i``;
2. the adaptive threshold ``tau = (max_i delta_i + min_i delta_i) / 2``: latents with
   ``delta_i < tau`` are taken as shared by the pair;
3. for shared latents both frames use the average posterior (GVAE averaging, Hosoya 2019:
   mean ``(mu_0 + mu_1)/2``, variance ``(s2_0 + s2_1)/2``); the other latents keep each
   frame's own posterior;
4. loss ``= recon(x_0) + recon(x_1) + β · [KL(q~_0 || N(0, I)) + KL(q~_1 || N(0, I))]``,
   averaged over the pairs, with ``q~`` the adapted posteriors.

disentanglement_lib's ``GroupVAEBase.model_fn`` (``methods/weak/weak_vae.py``) averages
over the two frames instead, ``½(recon_0 + recon_1) + β·½(KL~_0 + KL~_1)``: dislab's loss is
exactly twice the reference's (same gradients up to that factor; Adam's updates are
invariant to it up to its ε). The reference's pair KL omits the ½ (it only sets the
threshold, which is scale-free).

The posterior of a single image (evaluation, traversals) is the encoder's own. Default β = 1
(the paper sweeps β over 1, 2, 4, 6, 8, 16).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from dislab.estimators import gaussian_kl
from dislab.models.base import HParam, register
from dislab.models.losses import reconstruction_loss
from dislab.models.vae import VAE, Forward, sample_gaussian

__all__ = ["AdaGVAE", "gaussian_pair_kl", "adaptive_average"]


def gaussian_pair_kl(mean0: torch.Tensor, logvar0: torch.Tensor, mean1: torch.Tensor,
                     logvar1: torch.Tensor) -> torch.Tensor:
    """Element-wise ``KL(N(mean0, e^logvar0) || N(mean1, e^logvar1))``, shape of the inputs."""
    return 0.5 * (torch.exp(logvar0 - logvar1) + (mean1 - mean0).square() * torch.exp(-logvar1)
                  - 1.0 + logvar1 - logvar0)


def adaptive_average(mean: torch.Tensor, logvar: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ada-GVAE's adapted posteriors of pairs.

    ``mean``, ``logvar``: ``(B, 2, d)``. Returns the adapted ``(mean, logvar)`` ``(B, 2, d)``
    and the boolean mask ``(B, d)`` of latents taken as shared (``delta < tau``).
    """
    delta = gaussian_pair_kl(mean[:, 0], logvar[:, 0], mean[:, 1], logvar[:, 1])
    tau = 0.5 * (delta.max(dim=1, keepdim=True).values + delta.min(dim=1, keepdim=True).values)
    shared = delta < tau
    avg_mean = mean.mean(dim=1, keepdim=True).expand_as(mean)
    avg_logvar = torch.logsumexp(logvar, dim=1, keepdim=True).sub(
        torch.log(torch.tensor(2.0, dtype=logvar.dtype, device=logvar.device))
    ).expand_as(logvar)
    s = shared[:, None, :]
    return torch.where(s, avg_mean, mean), torch.where(s, avg_logvar, logvar), shared


@register
class AdaGVAE(VAE):
    """Ada-GVAE on pairs: ``recon_0 + recon_1 + β (KL~_0 + KL~_1)`` with adapted posteriors."""

    name: ClassVar[str] = "ada_gvae"
    packed_hparams: ClassVar[tuple[str, ...]] = ("beta",)
    batch_kind: ClassVar[str] = "pairs"
    pair_defaults: ClassVar[dict[str, Any]] = {"dynamics": "locatello", "k": -1}
    hparams: ClassVar[dict[str, HParam]] = {
        "beta": HParam(1.0, "weight of the KL to the N(0, I) prior",
                       "Locatello et al. 2020 (sweep 1, 2, 4, 6, 8, 16)", low=0.0),
    }

    def loss(
        self, batch: torch.Tensor, step: int | torch.Tensor = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``batch``: ``(B, 2, *obs)``. Returns the loss and logs (recon, kl, elbo, kl_i,
        shared: mean number of latents taken as shared per pair)."""
        b = batch.shape[0]
        x = self.pair_frames(batch)  # frames interleaved: x0, x1, x0, x1, ...
        mean, logvar = self.encode(x)
        d = mean.shape[1]
        m, lv, shared = adaptive_average(mean.reshape(b, 2, d), logvar.reshape(b, 2, d))
        m, lv = m.reshape(2 * b, d), lv.reshape(2 * b, d)
        z = sample_gaussian(m, lv)
        logits = self.decode(z)
        recon = reconstruction_loss(x, logits, self.reconstruction)  # mean per image
        kl_dims = gaussian_kl(m, lv).mean(0)
        f = Forward(x, m, lv, z, logits, recon, kl_dims, kl_dims.sum())
        loss = 2.0 * (recon + self.hp["beta"] * f.kl)  # per pair: both frames
        logs = self.elbo_logs(f)
        logs["shared"] = shared.float().sum(1).mean().detach()
        return loss, logs
