"""Slow-VAE: the closed-form Gaussian–Laplace terms against numeric integrals, and the loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from dislab.errors import DislabError
from dislab.models import create
from dislab.models.slow_vae import gaussian_laplace_cross_entropy, gaussian_laplace_kl


@pytest.mark.parametrize("mean,logvar,centre,rate", [
    (0.0, 0.0, 0.0, 6.0), (0.7, -1.3, -0.2, 6.0), (-2.0, 0.5, 1.0, 1.0), (0.01, -6.0, 0.0, 3.0),
])
def test_gaussian_laplace_kl_matches_numeric_integral(mean, logvar, centre, rate):
    sigma = math.exp(0.5 * logvar)
    q = stats.norm(mean, sigma)
    lap = stats.laplace(centre, 1.0 / rate)
    lo, hi = mean - 12 * sigma, mean + 12 * sigma
    pts = [centre] if lo < centre < hi else None
    ce = integrate.quad(lambda z: -q.pdf(z) * lap.logpdf(z), lo, hi, points=pts,
                        epsabs=1e-12, epsrel=1e-10, limit=200)[0]
    kl = integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - lap.logpdf(z)), lo, hi,
                        points=pts, epsabs=1e-12, epsrel=1e-10, limit=200)[0]
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    got_ce = gaussian_laplace_cross_entropy(t(mean), t(logvar), t(centre), rate).item()
    got_kl = gaussian_laplace_kl(t(mean), t(logvar), t(centre), rate).item()
    assert got_ce == pytest.approx(ce, rel=1e-7, abs=1e-9)
    assert got_kl == pytest.approx(kl, rel=1e-7, abs=1e-9)
    assert got_kl >= 0


def test_kl_minimised_near_centre_with_laplace_matched_variance():
    # For fixed sigma the KL is smallest when the Gaussian sits on the Laplace centre.
    m = torch.linspace(-1, 1, 201, dtype=torch.float64)
    kl = gaussian_laplace_kl(m, torch.full_like(m, -2.0), torch.zeros_like(m), 6.0)
    assert abs(m[kl.argmin()].item()) < 1e-12


def _pairs(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 2, 1, 64, 64, generator=g)


def test_loss_is_sum_of_its_terms_and_backpropagates():
    torch.manual_seed(0)
    model = create("slow_vae", (1, 64, 64), latent_dim=5, gamma=3.0, beta=2.0, rate=4.0,
                   entropy_share=1.0)
    assert model.batch_kind == "pairs" and model.has_decoder
    batch = _pairs()
    torch.manual_seed(1)
    loss, logs = model.loss(batch, 0)
    assert 2 * logs["recon"] + 2.0 * logs["kl"] + 3.0 * logs["kl_laplace"] == \
        pytest.approx(loss.item(), rel=1e-5)
    # the Laplace term recomputed by hand from the encoder's outputs
    with torch.no_grad():
        mean, logvar = model.encode(batch.reshape(8, 1, 64, 64))
        mean, logvar = mean.reshape(4, 2, -1), logvar.reshape(4, 2, -1)
        want = (gaussian_laplace_kl(mean[:, 0], logvar[:, 0], mean[:, 1], 4.0)
                + gaussian_laplace_kl(mean[:, 1], logvar[:, 1], mean[:, 0], 4.0)).sum(1).mean()
    assert logs["kl_laplace"].item() == pytest.approx(want.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_identical_frames_vs_distant_frames():
    # Identical frames give a smaller Laplace term than unrelated frames (same posteriors
    # otherwise): the term rewards slow codes.
    torch.manual_seed(0)
    model = create("slow_vae", (1, 64, 64), latent_dim=4)
    x = _pairs(6, seed=3)
    same = torch.stack([x[:, 0], x[:, 0]], dim=1)
    with torch.no_grad():
        mean, _ = model.encode(x.reshape(12, 1, 64, 64))
    torch.manual_seed(2)
    _, logs_same = model.loss(same, 0)
    torch.manual_seed(2)
    _, logs_diff = model.loss(x, 0)
    assert logs_same["kl_laplace"] < logs_diff["kl_laplace"]
    assert np.isfinite(mean.numpy()).all()


def test_wrong_batch_shape_raises():
    model = create("slow_vae", (1, 64, 64), latent_dim=3)
    with pytest.raises(DislabError, match="pairs"):
        model.loss(torch.rand(4, 1, 64, 64), 0)


def test_trains_on_perturbed_pairs_with_the_trainer(tmp_path):
    import json

    from dislab.train import TrainConfig, fit

    for model in ("slow_vae", "pcl"):
        run = fit(TrainConfig(model=model, data="dsprites_perturbed", steps=3, batch_size=4,
                              latent_dim=3, out=str(tmp_path / model), log_every=1,
                              image_every=0, checkpoint_every=3), progress=False)
        status = json.loads((run / "status.json").read_text())
        assert status["status"] == "done" and status["step"] == 3
        assert np.isfinite(status["final_logs"]["loss"])


def _twins(common: dict, **variant):
    """Two 4-latent Slow-VAEs with the same weights: ``common`` hyper-parameters, and the
    second one also ``variant``."""
    torch.manual_seed(0)
    base = create("slow_vae", (1, 64, 64), latent_dim=4, **common)
    other = create("slow_vae", (1, 64, 64), latent_dim=4, **{**common, **variant})
    other.load_state_dict(base.state_dict())
    return base, other


def _seeded_loss(model, batch):
    """``model.loss(batch)`` with the same sampling noise every call."""
    torch.manual_seed(1)
    return model.loss(batch, 0)


def test_entropy_share_half_is_the_reference_codes_laplace_term():
    # entropy_share=0.5: both directions' cross-entropies minus the two frames' entropies
    # once (the reference code, the default); 1.0 is the exact KL of both directions.
    exact, half = _twins(dict(rate=5.0, entropy_share=1.0), entropy_share=0.5)
    batch = _pairs(3, seed=4)
    with torch.no_grad():
        _, le = _seeded_loss(exact, batch)
        _, lh = _seeded_loss(half, batch)
        _, logvar = exact.encode(batch.reshape(6, 1, 64, 64))
        lv = logvar.reshape(3, 2, -1)
        ent = (0.5 * (lv + math.log(2 * math.pi * math.e))).sum(1).sum(1).mean()
    assert lh["kl_laplace"].item() == pytest.approx((le["kl_laplace"] + 0.5 * ent).item(),
                                                    rel=1e-5)


def test_tc_penalty_adds_the_weighted_total_correlation():
    from dislab.estimators import total_correlation

    plain, with_tc = _twins(dict(dataset_size=1000), tc=3.0)
    batch = _pairs(5, seed=6)
    loss0, _ = _seeded_loss(plain, batch)
    loss1, logs = _seeded_loss(with_tc, batch)
    assert loss1.item() == pytest.approx(loss0.item() + 2 * 3.0 * logs["tc"].item(), rel=1e-5)
    # the logged TC is the minibatch weighted estimate on the same sampled codes
    torch.manual_seed(1)
    with torch.no_grad():
        mean, logvar = plain.encode(batch.reshape(10, 1, 64, 64))
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        want = total_correlation(z, mean, logvar, 1000, estimator="mws")
    assert logs["tc"].item() == pytest.approx(want.item(), rel=1e-4)


def test_mean_transition_is_an_l1_penalty_on_the_change_of_the_means():
    torch.manual_seed(0)
    model = create("slow_vae", (1, 64, 64), latent_dim=4, rate=5.0, transition="mean")
    batch = _pairs(3, seed=8)
    with torch.no_grad():
        _, logs = model.loss(batch, 0)
        mean, _ = model.encode(batch.reshape(6, 1, 64, 64))
        m = mean.reshape(3, 2, -1)
        want = 2 * (5.0 * (m[:, 0] - m[:, 1]).abs() - math.log(2.5)).sum(1).mean()
    assert logs["kl_laplace"].item() == pytest.approx(want.item(), rel=1e-5)
    # identical frames: only the constant is left, whatever the posterior widths
    same = torch.stack([batch[:, 0], batch[:, 0]], dim=1)
    with torch.no_grad():
        _, logs_same = model.loss(same, 0)
    assert logs_same["kl_laplace"].item() == pytest.approx(-2 * 4 * math.log(2.5), rel=1e-6)
    with pytest.raises(DislabError, match="transition"):
        create("slow_vae", (1, 64, 64), latent_dim=4, transition="l2")


def test_kl_fixed_width_keeps_the_value_and_stops_the_width_gradient():
    torch.manual_seed(0)
    ref = create("slow_vae", (1, 64, 64), latent_dim=4)
    batch = _pairs(3, seed=9)
    g = torch.Generator().manual_seed(2)
    mean0, logvar0 = torch.randn(6, 4, generator=g), -1.0 + 0.3 * torch.randn(6, 4, generator=g)

    def grads(transition: str, gamma: float):
        model = create("slow_vae", (1, 64, 64), latent_dim=4, transition=transition,
                       gamma=gamma)
        model.load_state_dict(ref.state_dict())
        mean, logvar = mean0.clone().requires_grad_(), logvar0.clone().requires_grad_()
        model.encode = lambda x: (mean, logvar)
        torch.manual_seed(1)
        loss, _ = model.loss(batch, 0)
        loss.backward()
        return loss.item(), mean.grad, logvar.grad

    loss_kl, gm_kl, gl_kl = grads("kl", 10.0)
    loss_fw, gm_fw, gl_fw = grads("kl_fixed_width", 10.0)
    _, _, gl_none = grads("kl", 0.0)
    assert loss_fw == pytest.approx(loss_kl, rel=1e-6)
    assert torch.allclose(gm_fw, gm_kl, atol=1e-5)  # the means get the full penalty
    assert torch.allclose(gl_fw, gl_none, atol=1e-5)  # the widths see no transition term
    assert not torch.allclose(gl_kl, gl_none, atol=1e-3)


def test_one_change_penalises_every_change_but_the_largest():
    # the extra term is 2·c·γ·λ·mean over pairs of (Σ_i |Δμ_i| − max_i |Δμ_i|): zero when one
    # latent changes, and for the same L1 change a change split over two latents costs more
    torch.manual_seed(0)
    ref = create("slow_vae", (1, 64, 64), latent_dim=4)
    batch = _pairs(2, seed=10)
    logvar = torch.full((4, 4), -2.0)

    def loss_of(one_change: float, deltas: list[list[float]]):
        model = create("slow_vae", (1, 64, 64), latent_dim=4, one_change=one_change,
                       gamma=3.0, rate=4.0)
        model.load_state_dict(ref.state_dict())
        base = torch.tensor([[0.1, -0.2, 0.3, 0.0], [0.5, 0.4, -0.6, 0.2]])
        d = torch.tensor(deltas)
        mean = torch.stack([base, base + d], dim=1).reshape(4, 4)  # x0, x1 interleaved
        model.encode = lambda x: (mean, logvar)
        return _seeded_loss(model, batch)

    single = [[0.0, 0.8, 0.0, 0.0], [0.0, 0.0, -0.3, 0.0]]
    split = [[0.0, 0.4, 0.4, 0.0], [0.1, 0.0, -0.2, 0.0]]
    with torch.no_grad():
        assert loss_of(2.0, single)[0].item() == pytest.approx(loss_of(0.0, single)[0].item(),
                                                               rel=1e-6)
        plain, _ = loss_of(0.0, split)
        penalised, logs = loss_of(2.0, split)
    others = (0.4 + 0.1) / 2  # per pair: Σ|Δ| − max|Δ| = 0.4 and 0.1
    assert logs["l1_others"].item() == pytest.approx(others, rel=1e-6)
    assert penalised.item() == pytest.approx(plain.item() + 2 * 2.0 * 3.0 * 4.0 * others,
                                             rel=1e-5)


def test_warmup_ramps_the_transition_terms_linearly():
    # loss(step) = 2·recon + β·KL + min(1, step/warmup)·(γ·KL_laplace + one_change term); at
    # step 0 only the VAE terms remain, from step = warmup on the loss is the plain one
    torch.manual_seed(0)
    ref = create("slow_vae", (1, 64, 64), latent_dim=4, one_change=1.0)
    batch = _pairs(3, seed=11)

    def loss_at(warmup: int, step: int):
        model = create("slow_vae", (1, 64, 64), latent_dim=4, one_change=1.0, warmup=warmup)
        model.load_state_dict(ref.state_dict())
        torch.manual_seed(5)
        return model.loss(batch, step)

    with torch.no_grad():
        full, logs = loss_at(0, 0)
        extra = 10.0 * logs["kl_laplace"] + 2 * 1.0 * 10.0 * 6.0 * logs["l1_others"]
        vae = full - extra
        assert loss_at(100, 0)[0].item() == pytest.approx(vae.item(), rel=1e-5)
        assert loss_at(100, 25)[0].item() == pytest.approx((vae + 0.25 * extra).item(), rel=1e-5)
        assert loss_at(100, 100)[0].item() == pytest.approx(full.item(), rel=1e-6)
        assert loss_at(100, 10_000)[0].item() == pytest.approx(full.item(), rel=1e-6)
        tensor_step = loss_at(100, torch.tensor(25))[0].item()
        assert tensor_step == pytest.approx((vae + 0.25 * extra).item(), rel=1e-5)
