"""β-TCVAE (Chen et al. 2018): ``loss = recon + KL + (β − 1) · TC(z)``.

The ELBO decomposition ``KL = index-code MI + TC + dimension-wise KL`` with α = γ = 1 and the TC
weighted by β, i.e. ``ELBO − (β − 1) TC`` as disentanglement_lib's ``BetaTCVAE``. TC is
estimated on the sampled codes of the batch (:func:`dislab.estimators.total_correlation`):
minibatch weighted sampling (``estimator="mws"``, default, as disentanglement_lib and the paper's
training) or minibatch stratified sampling (``"mss"``, with the paper's weights). Both use the
data set size N, which the trainer passes as ``dataset_size=len(data)``.

The logged ``tc`` includes the ``log(N B)`` constants when N is known; without N, MWS falls back
to disentanglement_lib's constant-free convention (lower by ``(d − 1) log(N B)``; gradients are
identical). MSS requires N (a clear error at the first loss otherwise).
Study sweep β ∈ {1, 2, 4, 6, 8, 10} (disentanglement_lib ``config/unsupervised_study_v1/sweep.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from dislab.errors import DislabError
from dislab.estimators import total_correlation
from dislab.models.base import HParam, register
from dislab.models.vae import VAE, Forward

ESTIMATORS = ("mws", "mss")


@register
class BetaTCVAE(VAE):
    """β-TCVAE: ``recon + kl + (beta - 1) * tc``; logs ``tc``."""

    name: ClassVar[str] = "beta_tcvae"
    packed_hparams: ClassVar[tuple[str, ...]] = ("beta",)
    hparams: ClassVar[dict[str, HParam]] = {
        "beta": HParam(
            6.0, "weight of the total correlation (objective KL + (β-1)·TC)",
            "a middle value of the study sweep {1, 2, 4, 6, 8, 10}",
            low=0.0,
        ),
        "estimator": HParam(
            "mws", "TC estimator: 'mws' (minibatch weighted) or 'mss' (stratified)",
            "Chen et al. 2018 / disentanglement_lib (mws)",
            choices=ESTIMATORS,
        ),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.hp["estimator"] not in ESTIMATORS:
            raise DislabError(
                f"Unknown estimator {self.hp['estimator']!r} for beta_tcvae; choose 'mws' or 'mss'."
            )

    def regularizer(
        self, f: Forward, step: int | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with_constant = self.dataset_size is not None
        tc = total_correlation(
            f.z, f.mean, f.logvar, self.dataset_size, estimator=self.hp["estimator"],
            include_constant=with_constant,
        )
        return f.kl + (self.hp["beta"] - 1.0) * tc, {"tc": tc}
