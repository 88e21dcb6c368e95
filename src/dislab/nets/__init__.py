"""Encoder / decoder / discriminator architectures.

* ``arch="conv"``: disentanglement_lib's ``conv_encoder`` / ``deconv_decoder`` (the study's).
* ``arch="mlp"``: ``fc_encoder`` / ``fc_decoder`` (1200-1200, the β-TCVAE paper's MLP).
* :class:`Discriminator`: FactorVAE's 6 × 1000 leaky-ReLU discriminator.

``build(arch, observation_shape, latent_dim) -> (encoder, decoder)``; encoders map
``(B, *obs)`` to ``(mean, logvar)``, decoders map ``(B, latent_dim)`` to logits ``(B, *obs)``.
Your own networks: ``arch="mypkg.nets:MyEncoder,mypkg.nets:MyDecoder"`` or
:func:`register_arch` (:mod:`dislab.nets.custom`).
"""

from __future__ import annotations

from torch import nn

from dislab.errors import DislabError
from dislab.nets.conv import ConvEncoder, DeconvDecoder, glorot_init
from dislab.nets.custom import register_arch, trust_modules
from dislab.nets.discriminator import Discriminator
from dislab.nets.mlp import MLPDecoder, MLPEncoder

__all__ = [
    "ARCHITECTURES", "ConvEncoder", "DeconvDecoder", "Discriminator", "MLPDecoder",
    "MLPEncoder", "build", "glorot_init", "register_arch", "trust_modules",
]

ARCHITECTURES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "conv": (ConvEncoder, DeconvDecoder),
    "mlp": (MLPEncoder, MLPDecoder),
}


def build(
    arch: str, observation_shape: tuple[int, ...], latent_dim: int
) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder of architecture ``arch``: "conv", "mlp", a name registered
    with :func:`register_arch`, or ``"module:Encoder,module:Decoder"``
    (:mod:`dislab.nets.custom`)."""
    if not isinstance(arch, str):
        raise DislabError(f"arch must be a string, got {type(arch).__name__}.")
    if int(latent_dim) < 1:
        raise DislabError(f"latent_dim must be a positive integer; got {latent_dim}.")
    if arch not in ARCHITECTURES:
        from dislab.nets.custom import build_custom

        return build_custom(arch, tuple(int(s) for s in observation_shape), int(latent_dim))
    enc_cls, dec_cls = ARCHITECTURES[arch]
    shape = tuple(int(s) for s in observation_shape)
    return enc_cls(shape, int(latent_dim)), dec_cls(shape, int(latent_dim))
