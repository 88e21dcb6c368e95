"""dislab.nets: the disentanglement_lib architectures (shapes, layer sizes, TF init)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dislab.errors import DislabError
from dislab.nets import ConvEncoder, DeconvDecoder, Discriminator, MLPDecoder, MLPEncoder, build


@pytest.mark.parametrize("channels", [1, 3])
def test_conv_shapes(channels: int) -> None:
    enc, dec = build("conv", (channels, 64, 64), 10)
    x = torch.rand(5, channels, 64, 64)
    mean, logvar = enc(x)
    assert mean.shape == logvar.shape == (5, 10)
    assert dec(mean).shape == (5, channels, 64, 64)


def test_conv_encoder_spatial_sizes_follow_dlib() -> None:
    enc = ConvEncoder((1, 64, 64), 10)
    convs = [m for m in enc.features if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (32, 4, 2), (32, 4, 2), (64, 2, 2), (64, 2, 2)]
    h = torch.rand(2, 1, 64, 64)
    sizes = []
    for m in enc.features:
        h = m(h)
        if isinstance(m, nn.Conv2d):
            sizes.append(h.shape[-1])
    assert sizes == [32, 16, 8, 4]
    assert h.shape == (2, 256)  # dense 256 after flattening 4*4*64 = 1024
    assert enc.features[-2].in_features == 1024


def test_deconv_decoder_layers_follow_dlib() -> None:
    dec = DeconvDecoder((3, 64, 64), 7)
    lin = [m for m in dec.fc if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(7, 256), (256, 1024)]
    deconvs = [m for m in dec.deconv if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [64, 32, 32, 3]
    assert all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in deconvs)


def test_mlp_is_1200_1200_and_shapes() -> None:
    enc, dec = build("mlp", (1, 64, 64), 10)
    assert isinstance(enc, MLPEncoder) and isinstance(dec, MLPDecoder)
    enc_lin = [m for m in enc.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in enc_lin] == [1200, 1200, 10, 10]
    dec_lin = [m for m in dec.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in dec_lin] == [1200, 1200, 1200, 4096]
    assert sum(isinstance(m, nn.Tanh) for m in dec.modules()) == 3
    mean, _ = enc(torch.rand(4, 1, 64, 64))
    assert dec(mean).shape == (4, 1, 64, 64)
    enc_v, dec_v = build("mlp", (6,), 2)  # vector data
    assert dec_v(enc_v(torch.rand(3, 6))[0]).shape == (3, 6)


@pytest.mark.parametrize("layers", [6, 5])
def test_discriminator(layers: int) -> None:
    disc = Discriminator(10, num_layers=layers)
    lin = [m for m in disc.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in lin] == [1000] * layers + [2]
    acts = [m for m in disc.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == layers and all(a.negative_slope == 0.2 for a in acts)
    assert disc(torch.randn(8, 10)).shape == (8, 2)


def test_glorot_uniform_init_and_zero_bias() -> None:
    torch.manual_seed(0)
    enc, dec = build("conv", (3, 64, 64), 10)
    for m in list(enc.modules()) + list(dec.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            w = m.weight.detach()
            rf = w[0, 0].numel() if w.dim() > 2 else 1
            fan_sum = (w.shape[0] + w.shape[1]) * rf
            bound = math.sqrt(6.0 / fan_sum)
            assert float(w.abs().max()) <= bound + 1e-6
            if w.numel() > 1000:  # uniform on [-a, a]: variance a^2 / 3
                assert float(w.var()) == pytest.approx(bound**2 / 3, rel=0.15)
            assert torch.count_nonzero(m.bias) == 0


def test_channels_last_gives_same_output() -> None:
    torch.manual_seed(0)
    enc, dec = build("conv", (3, 64, 64), 10)
    x = torch.rand(4, 3, 64, 64)
    mean, logvar = enc(x)
    out = dec(mean)
    enc_cl = enc.to(memory_format=torch.channels_last)
    dec_cl = dec.to(memory_format=torch.channels_last)
    mean_cl, _ = enc_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(mean_cl, mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(dec_cl(mean), out, atol=1e-4, rtol=1e-4)


def test_forward_is_traceable() -> None:
    """No Python-side shape logic in forward: symbolic tracing sees a plain graph."""
    for module in [*build("conv", (1, 64, 64), 10), *build("mlp", (1, 64, 64), 10),
                   Discriminator(10)]:
        torch.fx.symbolic_trace(module)


def test_bad_architecture_inputs() -> None:
    with pytest.raises(DislabError, match="Unknown architecture"):
        build("resnet", (1, 64, 64), 10)
    with pytest.raises(DislabError, match="divisible by 16"):
        build("conv", (1, 60, 60), 10)
    with pytest.raises(DislabError, match="arch='mlp'"):
        build("conv", (6,), 10)
    with pytest.raises(DislabError, match="latent_dim"):
        build("conv", (1, 64, 64), 0)
