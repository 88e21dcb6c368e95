"""PCL, permutation contrastive learning (Hyvärinen & Morioka 2017): a non-variational
representation ``h(x)`` trained by logistic regression to tell true pairs from shuffled ones.

Batches are pairs ``(B, 2, *obs)`` (:func:`dislab.data.pairs.pair_batches`), frame 0 the
earlier ``x_{t-1}`` and frame 1 the later ``x_t``. Positives are ``y = (x_t, x_{t-1})``;
negatives ``y* = (x_t, x_{t*})`` pair each ``x_t`` with the earlier frame of another pair of the
batch (a random derangement, so no negative is accidentally a true pair). The regression
function is the paper's

    r(y) = -Σ_i |w1_i h_i(y1) + w2_i h_i(y2) + b_i| + a Σ_i h_i(y1)² + m

and the loss is the mean binary cross-entropy of ``sigmoid(r)`` against 1 (positives) and 0
(negatives). ``h`` is the encoder's mean head (``arch`` as for the VAEs; the log-variance
head is unused). Initial values w1 = 1, w2 = -1, b = 0, a = 1, m = 0 and ``a`` fixed
(``learn_a=False``) follow bethgelab/slow_disentanglement's PCL; Adam as every method.

The representation is ``h``. ``encode`` returns ``(h, logvar)`` with the constant
``logvar = DETERMINISTIC_LOGVAR = -20`` (σ ≈ 4.5e-5): a deterministic code in the Gaussian
convention the metrics accept (samples equal the mean to float precision). There is no
decoder: ``decode`` raises a clear error (``has_decoder = False``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dislab.errors import DislabError
from dislab.models import noise
from dislab.models.base import HParam, Method, register
from dislab.nets import build

__all__ = ["PCL", "DETERMINISTIC_LOGVAR", "pcl_regression", "derangement"]

DETERMINISTIC_LOGVAR = -20.0


def pcl_regression(
    h1: torch.Tensor, h2: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, b: torch.Tensor,
    a: torch.Tensor | float, m: torch.Tensor | float,
) -> torch.Tensor:
    """``r = -Σ_i |w1_i h1_i + w2_i h2_i + b_i| + a Σ_i h1_i² + m`` per row: ``(B, d) -> (B,)``."""
    return -(w1 * h1 + w2 * h2 + b).abs().sum(-1) + a * h1.square().sum(-1) + m


def derangement(n: int, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """A random permutation of ``0..n-1`` without fixed points (one cycle), ``n >= 2``."""
    order = noise.randperm(n, device, generator)
    out = torch.empty_like(order)
    out[order] = torch.roll(order, -1)
    return out


@register
class PCL(Method):
    """Permutation contrastive learning; representation ``h`` = encoder mean head."""

    name: ClassVar[str] = "pcl"
    batch_kind: ClassVar[str] = "pairs"
    has_decoder: ClassVar[bool] = False
    hparams: ClassVar[dict[str, HParam]] = {
        "learn_a": HParam(False, "learn the coefficient a of Σ h_i(y1)² (else fixed at 1)",
                          "bethgelab/slow_disentanglement PCL (a fixed at 1)"),
    }

    def __init__(self, observation_shape: tuple[int, ...], latent_dim: int = 10,
                 **options: Any) -> None:
        # ``reconstruction`` is accepted like every method's and unused (no decoder)
        super().__init__(observation_shape, latent_dim, **options)
        self.encoder, _ = build(self.arch, self.observation_shape, self.latent_dim)
        d = self.latent_dim
        self.w1 = nn.Parameter(torch.ones(d))
        self.w2 = nn.Parameter(-torch.ones(d))
        self.b = nn.Parameter(torch.zeros(d))
        self.m = nn.Parameter(torch.zeros(()))
        if self.hp["learn_a"]:
            self.a = nn.Parameter(torch.ones(()))
        else:
            self.register_buffer("a", torch.ones(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``h(x)``: ``(B, *obs) -> (B, latent_dim)``."""
        return self.encoder(x)[0]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, logvar)`` with the constant ``DETERMINISTIC_LOGVAR`` (see module doc)."""
        h = self.features(x)
        return h, torch.full_like(h, DETERMINISTIC_LOGVAR)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise DislabError(
            "pcl has no decoder (it is trained contrastively), so it cannot reconstruct, "
            "sample or draw latent traversals; use its codes (encode) for evaluation."
        )

    def regression(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        """``r(y)`` for ``y = (y1, y2)`` with features ``h1``, ``h2`` ``(B, d)``: ``(B,)``."""
        return pcl_regression(h1, h2, self.w1, self.w2, self.b, self.a, self.m)

    def loss(
        self, batch: torch.Tensor, step: int | torch.Tensor = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``batch``: ``(B, 2, *obs)``, ``B >= 2``. Logs the accuracy and mean logits."""
        n = batch.shape[0]
        h = self.features(self.pair_frames(batch, min_pairs=2)).reshape(n, 2, -1)
        prev, cur = h[:, 0], h[:, 1]
        neg_prev = prev[derangement(n, device=batch.device)]
        logits = torch.cat([self.regression(cur, prev), self.regression(cur, neg_prev)])
        labels = torch.cat([torch.ones(n, device=batch.device),
                            torch.zeros(n, device=batch.device)])
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        with torch.no_grad():
            acc = ((logits > 0).float() == labels).float().mean()
            logs = {"pcl_bce": loss.detach(), "accuracy": acc,
                    "logit_pos": logits[:n].mean(), "logit_neg": logits[n:].mean()}
        return loss, logs
