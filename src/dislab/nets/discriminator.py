"""The FactorVAE discriminator (disentanglement_lib ``fc_discriminator``,
``methods/shared/architectures.py``).

``num_layers`` (default 6, disentanglement_lib; 5 in Do & Tran's and other PyTorch code) dense
layers of ``hidden`` = 1000 units with leaky ReLU (slope 0.2, the TF default), then a dense layer
with 2 logits. Glorot-uniform weights, zero biases.
"""

from __future__ import annotations

import torch
from torch import nn

from dislab.errors import DislabError
from dislab.nets.conv import glorot_init

__all__ = ["Discriminator"]


class Discriminator(nn.Module):
    """``(B, latent_dim) -> logits (B, 2)``."""

    def __init__(
        self, latent_dim: int, num_layers: int = 6, hidden: int = 1000, slope: float = 0.2
    ) -> None:
        super().__init__()
        if int(num_layers) < 1:
            raise DislabError(
                f"The discriminator needs at least one hidden layer; got {num_layers}."
            )
        layers: list[nn.Module] = []
        n_in = latent_dim
        for _ in range(int(num_layers)):
            layers += [nn.Linear(n_in, hidden), nn.LeakyReLU(slope)]
            n_in = hidden
        layers.append(nn.Linear(n_in, 2))
        self.net = nn.Sequential(*layers)
        glorot_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
