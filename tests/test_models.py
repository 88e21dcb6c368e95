"""The methods: each regulariser against its formula, shapes, errors, and a falling loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dislab.errors import DislabError
from dislab.estimators import total_correlation
from dislab.models import available, create
from dislab.models.losses import (
    anneal,
    batch_covariance,
    clipped_log_probs,
    dip_regularizer,
    discriminator_accuracy,
    discriminator_loss,
    discriminator_tc,
    reconstruction_loss,
    shuffle_codes,
)
from dislab.nets import Discriminator

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Small ops on a shared 2-core machine: one intra-op thread avoids spin-wait contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


METHODS = ["beta_vae", "annealed_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tcvae",
           "aae"]


def blobs(n: int = 16, channels: int = 1, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Procedural images: one bright square of random position and size per image."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, channels, size, size), dtype=np.float32)
    for i in range(n):
        s = int(rng.integers(size // 8, size // 3))
        r, c = rng.integers(0, size - s, size=2)
        x[i, :, r:r + s, c:c + s] = rng.uniform(0.5, 1.0, size=(channels, 1, 1))
    return torch.from_numpy(x)


def _manual_terms(model, x: torch.Tensor, seed: int):  # type: ignore[no-untyped-def]
    """Recompute mean, logvar, z, recon and KL by hand with the RNG state the loss used."""
    torch.manual_seed(seed)
    with torch.no_grad():
        mean, logvar = model.encode(x)
        z = mean + torch.exp(logvar / 2) * torch.randn_like(mean)
        logits = model.decode(z)
        p = torch.sigmoid(logits)
        bce = -(x * torch.log(p) + (1 - x) * torch.log(1 - p))
        recon = bce.flatten(1).sum(1).mean()
        kl = (0.5 * (mean**2 + logvar.exp() - logvar - 1)).sum(1).mean()
    return mean, logvar, z, recon, kl


def _loss(model, x: torch.Tensor, step: int, seed: int):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    return model.loss(x, step)


# -- registry, options, shapes -------------------------------------------------------------

def test_all_methods_registered_with_documented_hparams() -> None:
    names = set(available())
    assert set(METHODS) <= names
    for name in METHODS:
        cls = available()[name]
        assert cls.__doc__ and cls.hparams is not None
        for key, hp in cls.hparams.items():
            assert hp.help and hp.source, (name, key)


@pytest.mark.parametrize("name", METHODS)
def test_unknown_hparam_names_the_valid_ones(name: str) -> None:
    with pytest.raises(DislabError) as err:
        create(name, (1, 64, 64), 10, not_a_param=3)
    msg = str(err.value)
    assert "not_a_param" in msg
    for key in available()[name].hparams:
        assert key in msg


def test_bad_option_values() -> None:
    with pytest.raises(DislabError, match="reconstruction"):
        create("beta_vae", (1, 64, 64), reconstruction="poisson")
    with pytest.raises(DislabError, match="architecture"):
        create("beta_vae", (1, 64, 64), arch="vit")
    with pytest.raises(DislabError, match="permute"):
        create("factor_vae", (1, 64, 64), permute="other")
    with pytest.raises(DislabError, match="estimator"):
        create("beta_tcvae", (1, 64, 64), estimator="exact")
    with pytest.raises(DislabError, match="encoder"):
        create("aae", (1, 64, 64), encoder="vq")
    model = create("beta_tcvae", (1, 64, 64), estimator="mss")  # N unknown: error at the loss
    with pytest.raises(DislabError, match="dataset_size"):
        model.loss(blobs(4), 0)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_logs(name: str, channels: int) -> None:
    torch.manual_seed(0)
    model = create(name, (channels, 64, 64), 6, dataset_size=1000)
    x = blobs(4, channels)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (4, 6)
    assert model.decode(mean).shape == (4, channels, 64, 64)
    images = model.decode_images(mean).detach()
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert model.representation(x).shape == (4, 6)
    loss, logs = model.loss(x, 0)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert "recon" in logs
    if name != "aae" or model.hp["encoder"] == "gaussian":
        assert {f"kl_{i}" for i in range(6)} <= set(logs)
        assert float(sum(logs[f"kl_{i}"] for i in range(6))) == pytest.approx(float(logs["kl"]),
                                                                             rel=1e-5)
    assert all(v.dim() == 0 and not v.requires_grad for v in logs.values())


def test_mlp_and_gaussian_options() -> None:
    torch.manual_seed(0)
    model = create("beta_vae", (1, 64, 64), 5, arch="mlp", reconstruction="gaussian", beta=2)
    x = blobs(4)
    loss, logs = _loss(model, x, 0, seed=3)
    mean, logvar, z, _, kl = _manual_terms(model, x, seed=3)
    recon = (x - torch.sigmoid(model.decode(z))).square().flatten(1).sum(1).mean()
    assert float(logs["recon"]) == pytest.approx(float(recon.detach()), rel=1e-5)
    assert float(loss) == pytest.approx(float(recon.detach() + 2 * kl.detach()), rel=1e-5)


# -- reconstruction and β-VAE --------------------------------------------------------------

def test_bernoulli_reconstruction_is_summed_bce_mean_over_batch() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 4, generator=g)
    logits = torch.randn(3, 1, 4, 4, generator=g)
    p = torch.sigmoid(logits)
    direct = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1).mean()
    assert float(reconstruction_loss(x, logits)) == pytest.approx(float(direct), rel=1e-5)
    with pytest.raises(DislabError, match="reconstruction"):
        reconstruction_loss(x, logits, "l1")


def test_beta_vae_loss_is_recon_plus_beta_kl() -> None:
    torch.manual_seed(0)
    model = create("beta_vae", (1, 64, 64), 10, beta=6)
    x = blobs(4)
    loss, logs = _loss(model, x, 0, seed=7)
    _, _, _, recon, kl = _manual_terms(model, x, seed=7)
    assert float(logs["recon"]) == pytest.approx(float(recon), rel=1e-5)
    assert float(logs["kl"]) == pytest.approx(float(kl), rel=1e-4)
    assert float(loss) == pytest.approx(float(recon + 6 * kl), rel=1e-5)
    assert float(logs["elbo"]) == pytest.approx(-float(recon + kl), rel=1e-5)


# -- AnnealedVAE ---------------------------------------------------------------------------

def test_anneal_dlib_values() -> None:
    assert [anneal(100, t, 100) for t in (0, 10, 100, 101)] == [0, 10, 100, 100]
    got = anneal(100.0, torch.tensor([0, 10, 100, 101]), 100)
    torch.testing.assert_close(got, torch.tensor([0.0, 10.0, 100.0, 100.0]))


def test_annealed_vae_loss() -> None:
    torch.manual_seed(0)
    model = create("annealed_vae", (1, 64, 64), 10, c_max=25, iteration_threshold=1000,
                   gamma=1000)
    x = blobs(4)
    for step, cap in [(0, 0.0), (400, 10.0), (5000, 25.0)]:
        loss, logs = _loss(model, x, step, seed=1)
        _, _, _, recon, kl = _manual_terms(model, x, seed=1)
        assert float(logs["capacity"]) == pytest.approx(cap)
        assert float(loss) == pytest.approx(float(recon + 1000 * (kl - cap).abs()), rel=1e-5)


# -- DIP-VAE -------------------------------------------------------------------------------

def test_batch_covariance_is_biased_sample_covariance() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 4, generator=g,
                                                                             dtype=torch.float64)
    ref = np.cov(x.numpy(), rowvar=False, bias=True)
    np.testing.assert_allclose(batch_covariance(x).numpy(), ref, atol=1e-10)


def test_batch_covariance_dlib_sampling_case() -> None:
    g = torch.Generator().manual_seed(1)
    m = torch.rand(10, 10, generator=g, dtype=torch.float64)
    cov = 0.5 * (m + m.T) + 10 * torch.eye(10, dtype=torch.float64)
    z = torch.distributions.MultivariateNormal(torch.ones(10, dtype=torch.float64), cov)
    sample = z.sample((100_000,))
    assert float((batch_covariance(sample) - cov).square().sum()) < 1.0  # dlib: 1e6 pts, < 0.1


@pytest.mark.parametrize(("matrix", "value"), [
    (torch.ones(10, 10), 90.0), (torch.zeros(10, 10), 10.0), (torch.eye(10), 0.0),
    (2 * torch.eye(10), 10.0)])
def test_dip_regularizer_dlib_values(matrix: torch.Tensor, value: float) -> None:
    assert float(dip_regularizer(matrix, 1.0, 1.0)) == pytest.approx(value)


def test_dip_regularizer_weights() -> None:
    c = torch.tensor([[2.0, 0.5], [0.5, 0.0]])
    # off-diagonal: 2 * 0.25; diagonal: (2-1)^2 + (0-1)^2
    assert float(dip_regularizer(c, 3.0, 7.0)) == pytest.approx(3 * 0.5 + 7 * 2.0)


@pytest.mark.parametrize(("name", "factor"), [("dip_vae_i", 10.0), ("dip_vae_ii", 1.0)])
def test_dip_vae_loss(name: str, factor: float) -> None:
    torch.manual_seed(0)
    model = create(name, (1, 64, 64), 4, lambda_od=3)
    x = blobs(8)
    loss, logs = _loss(model, x, 0, seed=2)
    mean, logvar, _, recon, kl = _manual_terms(model, x, seed=2)
    centred = mean - mean.mean(0)
    cov = centred.T @ centred / mean.shape[0]
    if name == "dip_vae_ii":
        cov = cov + torch.diag(logvar.exp().mean(0))
    off = sum(cov[i, j] ** 2 for i in range(4) for j in range(4) if i != j)
    diag = sum((cov[i, i] - 1) ** 2 for i in range(4))
    expected = recon + kl + 3 * off + 3 * factor * diag
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(logs["dip_offdiag"]) == pytest.approx(float(off), rel=1e-3, abs=1e-9)


def test_dip_vae_ii_covariance_is_the_aggregate_posterior_covariance() -> None:
    model = create("dip_vae_ii", (1, 64, 64), 3)
    g = torch.Generator().manual_seed(4)
    mean = torch.randn(6, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(6, 3, generator=g, dtype=torch.float64)
    # Monte Carlo: covariance of z over the batch's mixture of posteriors
    idx = torch.randint(0, 6, (400_000,), generator=g)
    z = mean[idx] + torch.exp(0.5 * logvar[idx]) * torch.randn(400_000, 3, generator=g,
                                                                dtype=torch.float64)
    torch.testing.assert_close(model.covariance(mean, logvar), batch_covariance(z), atol=0.03,
                               rtol=0.03)


# -- FactorVAE -----------------------------------------------------------------------------

def test_permute_dims_keeps_marginals_and_breaks_dependence() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5000, 1, generator=g)
    z = torch.cat([base, base, -base, torch.randn(5000, 1, generator=g)], 1)
    shuffled = shuffle_codes(z, generator=g)
    torch.testing.assert_close(shuffled.sort(0).values, z.sort(0).values)  # same column values
    assert not torch.equal(shuffled, z)
    corr = np.corrcoef(shuffled.numpy(), rowvar=False)
    assert np.abs(corr - np.eye(4)).max() < 0.06  # columns 0, 1, 2 were perfectly dependent


def test_discriminator_objective_and_tc() -> None:
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 7, 2, generator=g)
    direct = -(0.5 * F.log_softmax(real, 1)[:, 0].mean()
               + 0.5 * F.log_softmax(fake, 1)[:, 1].mean())
    assert float(discriminator_loss(real, fake)) == pytest.approx(float(direct), rel=1e-6)
    assert float(discriminator_tc(real)) == pytest.approx(float((real[:, 0] - real[:, 1]).mean()))
    # the clip at 1e-6 (dlib's wrapper)
    extreme = torch.tensor([[100.0, -100.0]])
    assert float(clipped_log_probs(extreme)[0, 1]) == pytest.approx(math.log(1e-6))
    acc = discriminator_accuracy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
                                 torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    assert float(acc) == pytest.approx(0.75)


def _grads(model, params, loss) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if gr is None else gr for p, gr in zip(params, gs)]


@pytest.mark.parametrize("permute", ["same_batch", "second_batch"])
def test_factor_vae_losses_and_disjoint_gradients(permute: str) -> None:
    torch.manual_seed(0)
    model = create("factor_vae", (1, 64, 64), 5, gamma=20, permute=permute, disc_layers=2)
    x = blobs(8)
    loss, logs = _loss(model, x, 0, seed=5)
    _, _, z, recon, kl = _manual_terms(model, x, seed=5)
    tc = (lambda lg: (lg[:, 0] - lg[:, 1]).mean())(model.discriminator(z))
    assert float(logs["tc"]) == pytest.approx(float(tc), rel=1e-5, abs=1e-6)
    assert float(logs["vae_loss"]) == pytest.approx(float(recon + kl + 20 * tc), rel=1e-5)
    assert float(loss) == pytest.approx(float(logs["vae_loss"] + logs["disc_loss"]), rel=1e-6)
    # gradients of the sum: VAE params only from the VAE loss, discriminator only from its own
    vae_params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    disc_params = list(model.discriminator.parameters())
    g_sum_vae = _grads(model, vae_params, loss)
    g_sum_disc = _grads(model, disc_params, loss)
    # reference: rebuild both losses by hand with the same noise (randn for z, then rand for
    # the permutation)
    torch.manual_seed(5)
    mean, logvar = model.encode(x)
    z = mean + torch.exp(logvar / 2) * torch.randn_like(mean)
    logits = model.decode(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    kl = (0.5 * (mean**2 + logvar.exp() - logvar - 1)).sum(1).mean()
    d_z = model.discriminator(z)
    vae_loss = recon + kl + 20 * (d_z[:, 0] - d_z[:, 1]).mean()
    zd = z.detach()
    if permute == "same_batch":
        real, fake = zd, shuffle_codes(zd)
    else:
        real, fake = zd[:4], shuffle_codes(zd[4:])
    disc_loss = -(0.5 * F.log_softmax(model.discriminator(real), 1)[:, 0].mean()
                  + 0.5 * F.log_softmax(model.discriminator(fake), 1)[:, 1].mean())
    assert float(logs["disc_loss"]) == pytest.approx(float(disc_loss), rel=1e-5)
    for a, b in zip(g_sum_vae, _grads(model, vae_params, vae_loss)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_sum_disc, _grads(model, disc_params, disc_loss)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert all(float(g.abs().sum()) > 0 for g in g_sum_disc)


def test_factor_vae_discriminator_learns_dependence() -> None:
    """Trained on permute-dims of strongly dependent codes, the discriminator's accuracy rises
    and its TC estimate becomes positive."""
    torch.manual_seed(0)
    disc = Discriminator(4, num_layers=2, hidden=64)  # narrow, for speed
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(150):
        base = torch.randn(128, 1)
        z = base + 0.05 * torch.randn(128, 4)  # all columns nearly equal
        logits = disc(torch.cat([z, shuffle_codes(z)]))
        loss = discriminator_loss(logits[:128], logits[128:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    base = torch.randn(512, 1)
    z = base + 0.05 * torch.randn(512, 4)
    with torch.no_grad():
        lr_, lf = disc(z), disc(shuffle_codes(z))
    assert float(discriminator_accuracy(lr_, lf)) > 0.8
    assert float(discriminator_tc(lr_)) > 0.5


def test_factor_vae_optimizers() -> None:
    model = create("factor_vae", (1, 64, 64), 4)
    opts = model.configure_optimizers(lr=1e-4)
    disc_ids = {id(p) for p in model.discriminator.parameters()}
    main_ids = {id(p) for grp in opts["model"].param_groups for p in grp["params"]}
    assert not disc_ids & main_ids
    assert main_ids | disc_ids == {id(p) for p in model.parameters()}
    group = opts["discriminator"].param_groups[0]
    assert group["lr"] == 1e-4 and group["betas"] == (0.5, 0.9)


# -- β-TCVAE ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("estimator", "n"), [("mws", 1000), ("mss", 1000), ("mws", None)])
def test_beta_tcvae_loss_uses_the_estimators(estimator: str, n: int | None) -> None:
    torch.manual_seed(0)
    model = create("beta_tcvae", (1, 64, 64), 5, beta=4, estimator=estimator, dataset_size=n)
    x = blobs(8)
    loss, logs = _loss(model, x, 0, seed=4)
    mean, logvar, z, recon, kl = _manual_terms(model, x, seed=4)
    tc = total_correlation(z, mean, logvar, n, estimator=estimator,
                           include_constant=n is not None)
    assert float(logs["tc"]) == pytest.approx(float(tc), rel=1e-4, abs=1e-4)
    assert float(loss) == pytest.approx(float(recon + kl + 3 * tc), rel=1e-5)


def test_beta_tcvae_at_beta_one_is_the_vae() -> None:
    torch.manual_seed(0)
    tcvae = create("beta_tcvae", (1, 64, 64), 5, beta=1, dataset_size=100)
    vae = create("beta_vae", (1, 64, 64), 5, beta=1)
    vae.load_state_dict(tcvae.state_dict())
    x = blobs(4)
    assert float(_loss(tcvae, x, 0, 9)[0]) == pytest.approx(float(_loss(vae, x, 0, 9)[0]))


# -- AAE -------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoder", ["gaussian", "deterministic"])
def test_aae_losses(encoder: str) -> None:
    torch.manual_seed(0)
    model = create("aae", (1, 64, 64), 5, encoder=encoder, gen_weight=10, disc_layers=2)
    x = blobs(8)
    loss, logs = _loss(model, x, 0, seed=6)
    torch.manual_seed(6)
    mean, logvar = model.encode(x)
    if encoder == "deterministic":
        torch.testing.assert_close(logvar, torch.full_like(mean, math.log(1e-8)))
        z = mean
    else:
        z = mean + torch.exp(logvar / 2) * torch.randn_like(mean)
    recon = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum") / 8
    p_prior = torch.softmax(model.discriminator(z), 1)[:, 0].clamp(1e-6, 1 - 1e-6)
    gen = -p_prior.log().mean()
    prior = torch.randn_like(z)
    real, fake = model.discriminator(prior), model.discriminator(z)
    disc = -(0.5 * torch.softmax(real, 1)[:, 0].clamp(1e-6, 1 - 1e-6).log().mean()
             + 0.5 * torch.softmax(fake, 1)[:, 1].clamp(1e-6, 1 - 1e-6).log().mean())
    assert float(logs["recon"]) == pytest.approx(float(recon), rel=1e-5)
    assert float(logs["gen_loss"]) == pytest.approx(float(gen), rel=1e-5)
    assert float(logs["disc_loss"]) == pytest.approx(float(disc), rel=1e-5)
    assert float(loss) == pytest.approx(float(recon + 10 * gen + disc), rel=1e-5)
    assert ("kl" in logs) == (encoder == "gaussian")


# -- training ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METHODS)
def test_loss_falls(name: str) -> None:
    torch.manual_seed(0)
    opts_kw = {"disc_layers": 2} if name in ("factor_vae", "aae") else {}
    if name == "annealed_vae":
        opts_kw = {"iteration_threshold": 1000}
    model = create(name, (1, 32, 32), 6, dataset_size=5000, **opts_kw)  # 32x32 for speed
    optimizers = model.configure_optimizers(lr=1e-3)
    x = blobs(8, size=32)
    losses, recon = [], []
    for step in range(30):
        logs = model.training_step(x, step, optimizers)
        assert torch.isfinite(logs["loss"])
        losses.append(float(logs["loss"]))
        recon.append(float(logs["recon"]))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert np.mean(recon[-3:]) < 0.7 * np.mean(recon[:3])


def test_hparam_defaults_and_coercion() -> None:
    model = create("beta_vae", (1, 32, 32), 3, beta=6)
    assert model.hp == {"beta": 6.0} and isinstance(model.hp["beta"], float)
    defaults = create("annealed_vae", (1, 32, 32), 3).hp
    assert defaults == {"gamma": 1000.0, "c_max": 25.0, "iteration_threshold": 100000}
    assert create("dip_vae_i", (1, 32, 32), 3).hp["lambda_d_factor"] == 10.0
    assert create("dip_vae_ii", (1, 32, 32), 3).hp["lambda_d_factor"] == 1.0


def test_annealed_vae_accepts_a_tensor_step() -> None:
    torch.manual_seed(0)
    model = create("annealed_vae", (1, 32, 32), 3, c_max=10, iteration_threshold=100)
    x = blobs(4, size=32)
    loss_int, logs_int = _loss(model, x, 50, seed=1)
    loss_t, logs_t = _loss(model, x, torch.tensor(50), seed=1)
    assert float(logs_t["capacity"]) == pytest.approx(5.0)
    assert float(loss_t) == pytest.approx(float(loss_int), rel=1e-6)
