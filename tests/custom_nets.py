"""A small user-defined encoder and decoder for tests/test_custom_nets.py (the constructor
contract of dislab.nets.custom: ``(observation_shape, latent_dim)``)."""

from __future__ import annotations

import math

import torch
from torch import nn


class TinyEncoder(nn.Module):
    """``(B, C, H, W) -> (B, 2 * latent_dim)``: one hidden layer; halves = mean, logvar."""

    def __init__(self, observation_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(observation_shape), 32),
                                 nn.ReLU(), nn.Linear(32, 2 * latent_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TupleEncoder(TinyEncoder):
    """Same network, returning ``(mean, logvar)``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)
        return h[:, : h.shape[1] // 2], h[:, h.shape[1] // 2:]


class WrongEncoder(TinyEncoder):
    """Breaks the contract: returns the mean only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, :1]


class TinyDecoder(nn.Module):
    """``(B, latent_dim) -> logits (B, C, H, W)``."""

    def __init__(self, observation_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        self.shape = tuple(observation_shape)
        self.net = nn.Sequential(nn.Linear(latent_dim, 32), nn.ReLU(),
                                 nn.Linear(32, math.prod(observation_shape)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(-1, *self.shape)


class WrongDecoder(TinyDecoder):
    """Breaks the contract: returns flat logits."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def not_a_module(observation_shape: tuple[int, ...], latent_dim: int) -> None:
    """A plain function: an arch spec may only name nn.Module classes."""
