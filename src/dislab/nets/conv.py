"""disentanglement_lib's convolutional encoder and decoder
(``methods/shared/architectures.py``: ``conv_encoder``, ``deconv_decoder``).

The study architecture ("row 3 of Table 1 of the β-VAE paper"), for 64×64 images with 1 or 3
channels (any size divisible by 16 works; the fully connected sizes follow). TF "same" padding
becomes ``padding=1`` for kernel 4 / stride 2 and ``padding=0`` for kernel 2 / stride 2. The
flatten order is PyTorch's (C, H, W) instead of TF's (H, W, C): a fixed permutation of the FC
weights, irrelevant when training from scratch. Weights are Glorot-uniform and biases zero, as
TF1 ``tf.layers`` defaults. The forward passes have no Python-side shape logic (friendly to
``torch.compile`` and ``channels_last``).
"""

from __future__ import annotations

import torch
from torch import nn

from dislab.errors import DislabError

__all__ = ["ConvEncoder", "DeconvDecoder", "glorot_init"]


def glorot_init(module: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Linear / Conv / ConvTranspose (TF1)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def _check_image_shape(observation_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(observation_shape) != 3:
        raise DislabError(
            f"arch='conv' needs image observations (C, H, W); got shape {observation_shape}. "
            "Use arch='mlp' for vector data."
        )
    c, h, w = (int(s) for s in observation_shape)
    if h % 16 or w % 16:
        raise DislabError(
            f"arch='conv' needs image sides divisible by 16 (the study uses 64x64); got {h}x{w}."
        )
    return c, h, w


class ConvEncoder(nn.Module):
    """``conv_encoder``: ``(B, C, 64, 64) -> (mean, logvar)``, each ``(B, latent_dim)``.

    conv 32 k4 s2 → conv 32 k4 s2 → conv 64 k2 s2 → conv 64 k2 s2 (ReLU each) → flatten
    (1024) → dense 256 ReLU → two dense heads of ``latent_dim`` (no activation).
    """

    def __init__(self, observation_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        c, h, w = _check_image_shape(observation_shape)
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 2, 2, 0), nn.ReLU(),
            nn.Conv2d(64, 64, 2, 2, 0), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * (h // 16) * (w // 16), 256), nn.ReLU(),
        )
        self.mean = nn.Linear(256, latent_dim)
        self.logvar = nn.Linear(256, latent_dim)
        glorot_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.logvar(h)


class DeconvDecoder(nn.Module):
    """``deconv_decoder``: ``(B, latent_dim) -> logits (B, C, 64, 64)``.

    dense 256 ReLU → dense 1024 ReLU → reshape (64, 4, 4) → deconv 64, 32, 32 (k4 s2, ReLU) →
    deconv C k4 s2 (logits).
    """

    def __init__(self, observation_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        c, h, w = _check_image_shape(observation_shape)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(),
            nn.Linear(256, 64 * (h // 16) * (w // 16)), nn.ReLU(),
            nn.Unflatten(1, (64, h // 16, w // 16)),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, c, 4, 2, 1),
        )
        glorot_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z))
