"""Slow-VAE, Ada-GVAE and FactorVAE at their reference settings: dislab's training loss against
the reference code's loss (our transcription of it) on the same first batches.

Each model is trained for ``--steps`` updates with the reference settings (Slow-VAE:
bethgelab/slow_disentanglement ``main.py`` defaults, 64 images = 32 pairs of Laplace-jump
pairs; Ada-GVAE: disentanglement_lib ``methods/weak``, 64 pairs of ``simple_dynamics`` with
``k = -1``; FactorVAE: disentanglement_lib ``methods/unsupervised/vae.py``, γ = 10, batch 64).
Before and after training, on the first ``--batches`` training batches, the loss that dislab
optimises and the loss the reference code computes (transcribed below from its source:
``scripts/solver.py`` ``Solver.train``; ``weak_vae.py`` ``GroupVAEBase.model_fn`` with
``aggregate_argmax``; ``vae.py`` ``FactorVAE.model_fn``) are evaluated on the same encoder
outputs and the same sampling noise. Prints the largest relative difference per model.

    PYTHONPATH=src python benchmarks/fidelity_losses.py --steps 200
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch
import torch.nn.functional as F

from dislab.train import TrainConfig, fit, load_run
from dislab.train.batches import BatchSource, pair_batch_settings


def bce_sum(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-image ``Σ_pixels sigmoid_cross_entropy_with_logits``, mean over the batch."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


# -- the reference losses (transcriptions) ------------------------------------------------
def slow_reference(model, batch, seed):
    """scripts/solver.py: 2·recon + β·(CE_normal − H) + γ·(CE_laplace both ways − H), with
    H the mean per-image entropy and CE_laplace per pair."""
    x = batch.reshape(-1, *batch.shape[2:])  # interleaved x0, x1, x0, x1, ...
    torch.manual_seed(seed)
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = bce_sum(x, model.decode(z))
    rate = float(model.hp["rate"])
    normal = torch.distributions.Normal(0.0, 1.0)

    def ce_lap(mean, lv):
        var = torch.exp(lv)
        sigma = torch.sqrt(var)
        return (-math.log(rate / 2) + rate * sigma * math.sqrt(2 / math.pi)
                * torch.exp(-mean ** 2 / (2 * var))
                - rate * mean * (1 - 2 * normal.cdf(mean / sigma)))

    ent = (0.5 * (logvar + math.log(2 * math.pi * math.e))).sum(1).mean()
    ce_n = (0.5 * (mu ** 2 + torch.exp(logvar)) + math.log(math.sqrt(2 * math.pi))).sum(1).mean()
    ce_l = (ce_lap(mu[::2] - mu[1::2], logvar[::2])
            + ce_lap(mu[1::2] - mu[::2], logvar[1::2])).sum(1).mean()
    return 2 * recon + model.hp["beta"] * (ce_n - ent) + model.hp["gamma"] * (ce_l - ent)


def ada_reference(model, batch, seed):
    """weak_vae.py GroupVAEBase.model_fn + aggregate_argmax: ½(recon_1 + recon_2) +
    β·½(KL_1 + KL_2); latents whose (unhalved) pair KL falls in the lower of two equal-width
    bins between its min and max are averaged."""
    b = batch.shape[0]
    x = batch.reshape(-1, *batch.shape[2:])
    torch.manual_seed(seed)
    mean, logvar = model.encode(x)
    m1, m2 = mean[0::2], mean[1::2]
    l1, l2 = logvar[0::2], logvar[1::2]
    v1, v2 = torch.exp(l1), torch.exp(l2)
    kl = v1 / v2 + (m2 - m1) ** 2 / v2 - 1 + l2 - l1
    lo, hi = kl.min(1, keepdim=True).values, kl.max(1, keepdim=True).values
    keep = ((kl - lo) / (hi - lo) * 2).floor().clamp(0, 1) == 1  # bin 1: not shared
    nm, nl = 0.5 * m1 + 0.5 * m2, torch.log(0.5 * v1 + 0.5 * v2)
    a1m, a1l = torch.where(keep, m1, nm), torch.where(keep, l1, nl)
    a2m, a2l = torch.where(keep, m2, nm), torch.where(keep, l2, nl)
    # dislab samples both frames in one call, interleaved; draw the noise the same way
    am = torch.stack([a1m, a2m], 1).reshape(2 * b, -1)
    al = torch.stack([a1l, a2l], 1).reshape(2 * b, -1)
    z = am + torch.exp(0.5 * al) * torch.randn_like(am)
    logits = model.decode(z)
    r1, r2 = bce_sum(x[0::2], logits[0::2]), bce_sum(x[1::2], logits[1::2])

    def kl_n(m, lv):
        return (0.5 * (m ** 2 + torch.exp(lv) - lv - 1)).sum(1).mean()

    return 0.5 * r1 + 0.5 * r2 + model.hp["beta"] * (0.5 * kl_n(a1m, a1l) + 0.5 * kl_n(a2m, a2l))


def factor_reference(model, batch, seed):
    """vae.py FactorVAE.model_fn: the VAE loss recon + KL + γ·mean(logit_0 − logit_1) on the
    sampled codes (the discriminator loss needs the permutation; its formula is shared)."""
    torch.manual_seed(seed)
    mean, logvar = model.encode(batch)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    recon = bce_sum(batch, model.decode(z))
    kl = (0.5 * (mean ** 2 + torch.exp(logvar) - logvar - 1)).sum(1).mean()
    logits = model.discriminator(z)
    return recon + kl + model.hp["gamma"] * (logits[:, 0] - logits[:, 1]).mean()


def dislab_loss(model, batch, seed, key):
    torch.manual_seed(seed)
    loss, logs = model.loss(batch, 0)
    return logs[key] if key else loss


CASES = {
    # name: (config, reference, dislab's value to compare, dislab / reference)
    "slow_vae": (dict(model="slow_vae", batch_size=64), slow_reference, None, 1.0),
    "ada_gvae": (dict(model="ada_gvae", batch_size=64), ada_reference, None, 2.0),
    "factor_vae": (dict(model="factor_vae", batch_size=64, hparams={"gamma": 10.0}),
                   factor_reference, "vae_loss", 1.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--models", default=",".join(CASES))
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in args.models.split(","):
        extra, reference, key, ratio = CASES[name]
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(data="dsprites", steps=args.steps, seed=0, out=f"{tmp}/{name}",
                              log_every=50, image_every=0, checkpoint_every=args.steps,
                              compile=False, tensorboard=False, threads=1, **extra)
            model, _ = load_run(fit(TrainConfig.from_dict({**cfg.to_dict(), "steps": 1,
                                                           "out": f"{tmp}/init"}),
                                    progress=False), device="cpu")
            t0 = time.perf_counter()
            run = fit(cfg, progress=False)
            seconds = time.perf_counter() - t0
            trained, _ = load_run(run, device="cpu")
            import dislab.data as dd

            data = dd.load("dsprites")
            per, options = pair_batch_settings(type(trained), cfg)
            src = BatchSource(data, per, cfg.seed, trained.batch_kind, options, prefetch=False)
            batches = [src._draw()[0] for _ in range(args.batches)]
            for label, m in (("after 1 step", model), (f"after {args.steps} steps", trained)):
                m.eval()
                rows = []
                with torch.no_grad():
                    for i, x in enumerate(batches):
                        ours = float(dislab_loss(m, x, 100 + i, key)) / ratio
                        ref = float(reference(m, x, 100 + i))
                        rows.append((ours, ref, abs(ours - ref) / abs(ref)))
                worst = max(r[2] for r in rows)
                print(f"{name:10s} {label:18s} dislab/{ratio:g}: "
                      + ", ".join(f"{r[0]:.4f}" for r in rows) + "  reference: "
                      + ", ".join(f"{r[1]:.4f}" for r in rows)
                      + f"  max rel. diff {worst:.1e}")
            print(f"{name:10s} trained {args.steps} steps in {seconds:.0f} s")


if __name__ == "__main__":
    main()
