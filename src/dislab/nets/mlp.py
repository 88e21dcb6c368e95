"""Fully connected encoder / decoder: disentanglement_lib's ``fc_encoder`` / ``fc_decoder``.

These are the MLPs of the β-TCVAE paper (Chen et al. 2018, dSprites; disentanglement_lib
``methods/shared/architectures.py``):
encoder flatten → 1200 ReLU → 1200 ReLU → heads (mean, logvar); decoder 1200 tanh ×3 →
prod(observation_shape) logits → reshape. Glorot-uniform weights, zero biases (TF1 defaults).
Work for any observation shape (images or vectors).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dislab.nets.conv import glorot_init

__all__ = ["MLPEncoder", "MLPDecoder"]


class MLPEncoder(nn.Module):
    """``(B, *observation_shape) -> (mean, logvar)``, each ``(B, latent_dim)``."""

    def __init__(
        self, observation_shape: tuple[int, ...], latent_dim: int, hidden: int = 1200
    ) -> None:
        super().__init__()
        n_in = math.prod(int(s) for s in observation_shape)
        self.features = nn.Sequential(
            nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.mean = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        glorot_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.logvar(h)


class MLPDecoder(nn.Module):
    """``(B, latent_dim) -> logits (B, *observation_shape)``."""

    def __init__(
        self, observation_shape: tuple[int, ...], latent_dim: int, hidden: int = 1200
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in observation_shape)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, math.prod(shape)),
            nn.Unflatten(1, shape),
        )
        glorot_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
