"""Ada-GVAE: the adaptive averaging rule and the loss (dislab.models.ada_gvae)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dislab.errors import DislabError
from dislab.models import create
from dislab.models.ada_gvae import adaptive_average, gaussian_pair_kl


def test_pair_kl_matches_the_closed_form_and_is_zero_for_equal_gaussians():
    m0, lv0, m1, lv1 = 0.3, -0.7, -1.1, 0.4
    v0, v1 = math.exp(lv0), math.exp(lv1)
    want = 0.5 * (v0 / v1 + (m1 - m0) ** 2 / v1 - 1 + math.log(v1 / v0))
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    assert gaussian_pair_kl(t(m0), t(lv0), t(m1), t(lv1)).item() == pytest.approx(want)
    assert gaussian_pair_kl(t(m0), t(lv0), t(m0), t(lv0)).item() == 0.0


def test_adaptive_average_shares_the_latents_the_pair_does_not_change():
    torch.manual_seed(0)
    b, d = 5, 6
    mean = torch.randn(b, 1, d).repeat(1, 2, 1) + 0.01 * torch.randn(b, 2, d)
    logvar = torch.full((b, 2, d), -2.0) + 0.05 * torch.randn(b, 2, d)
    changed = torch.tensor([0, 3, 5, 1, 2])
    mean[torch.arange(b), 1, changed] += 3.0  # each pair changes one latent a lot
    m, lv, shared = adaptive_average(mean, logvar)
    want_shared = torch.ones(b, d, dtype=torch.bool)
    want_shared[torch.arange(b), changed] = False
    assert torch.equal(shared, want_shared)
    # shared latents: both frames get the averaged mean and the averaged variance
    avg_m = mean.mean(1)
    avg_v = logvar.exp().mean(1)
    for t in (0, 1):
        assert torch.allclose(m[:, t][shared], avg_m[shared])
        assert torch.allclose(lv[:, t][shared].exp(), avg_v[shared])
        # changed latents keep each frame's own posterior
        assert torch.equal(m[:, t][~shared], mean[:, t][~shared])
        assert torch.equal(lv[:, t][~shared], logvar[:, t][~shared])


def test_loss_terms_and_identical_frames():
    torch.manual_seed(0)
    model = create("ada_gvae", (1, 64, 64), latent_dim=5, beta=3.0)
    assert model.batch_kind == "pairs" and model.has_decoder
    g = torch.Generator().manual_seed(0)
    batch = torch.rand(4, 2, 1, 64, 64, generator=g)
    loss, logs = model.loss(batch, 0)
    assert loss.item() == pytest.approx(2 * (logs["recon"] + 3.0 * logs["kl"]).item(), rel=1e-5)
    assert 0 < logs["shared"].item() < 5
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    # identical frames: the adapted posteriors are the encoder's own, so the KL term is the
    # plain β-VAE KL of the images
    same = torch.stack([batch[:, 0], batch[:, 0]], dim=1)
    with torch.no_grad():
        _, logs_same = model.loss(same, 0)
        mean, logvar = model.encode(batch[:, 0])
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(1).mean()
    assert logs_same["kl"].item() == pytest.approx(kl.item(), rel=1e-5)


def test_wrong_batch_shape_raises():
    model = create("ada_gvae", (1, 64, 64), latent_dim=3)
    with pytest.raises(DislabError, match="pairs"):
        model.loss(torch.rand(4, 1, 64, 64), 0)


def test_trains_with_one_factor_pairs(tmp_path):
    from dislab.train import TrainConfig, fit

    run = fit(TrainConfig(model="ada_gvae", data="dsprites", steps=3, batch_size=4,
                          latent_dim=3, out=str(tmp_path / "ada"), log_every=1, image_every=0,
                          checkpoint_every=3, pair_options={"changes": 1}), progress=False)
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "done" and status["step"] == 3
    assert np.isfinite(status["final_logs"]["loss"])
