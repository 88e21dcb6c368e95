"""Training throughput: dislab's training loop vs a bare PyTorch loop, measured in one run.

Both train the study's β-VAE (disentanglement_lib conv encoder / deconv decoder from
``dislab.nets``, batch 64, 64×64×1, Bernoulli reconstruction, β = 4, Adam 1e-4) on the SAME
in-memory data (procedural dSprites images rendered once as uint8), with the same number of
PyTorch threads. The bare loop is what one writes first: NCHW tensors, ``torch.optim.Adam``
with its defaults, ``zero_grad / loss / backward / step``, a uint8 gather converted to float
each step. dislab's loop is :class:`dislab.train.Trainer` (what ``dislab train`` runs) with its
default settings.

The two loops are timed alternately, ``--rounds`` times ``--steps`` steps each after a warm-up,
so that load from other processes on a shared machine hits both alike; the script prints the
median images/s of each, and the median of the per-round ratios.

    python benchmarks/train_throughput.py                # CPU, PyTorch's default threads
    python benchmarks/train_throughput.py --threads 2 --rounds 7 --steps 40
    python benchmarks/train_throughput.py --variants     # also each optimisation alone
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dislab.data.base import GroundTruthData
from dislab.nets import ConvEncoder, DeconvDecoder
from dislab.train import TrainConfig, Trainer

BETA = 4.0


class ArrayData(GroundTruthData):
    """A fixed array of uint8 images ``(N, C, H, W)`` as a one-factor data set."""

    name = "array"
    factor_names = ("index",)

    def __init__(self, images: np.ndarray) -> None:
        self.array = images
        self.factor_sizes = (len(images),)
        self.observation_shape = tuple(images.shape[1:])

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        return self.array[index]


def render_images(n: int, seed: int = 0) -> np.ndarray:
    """``n`` procedural dSprites images (uint8), or random sparse images if unavailable."""
    try:
        import dislab.data as dd

        data = dd.load("dsprites")
        return data.images_uint8_from_index(data.sample_index(n, np.random.default_rng(seed)))
    except Exception:  # dSprites renderer missing: binary noise of similar sparsity
        rng = np.random.default_rng(seed)
        return ((rng.random((n, 1, 64, 64)) > 0.9) * 255).astype(np.uint8)


def bare_loop(images: torch.Tensor, batch_size: int, device: torch.device, seed: int = 0
              ) -> Callable[[], None]:
    """The plain loop: returns ``step()``."""
    torch.manual_seed(seed)
    enc = ConvEncoder((1, 64, 64), 10).to(device)
    dec = DeconvDecoder((1, 64, 64), 10).to(device)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(seed)

    def step() -> None:
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        x = images[idx].to(device).float().div(255.0)
        mean, logvar = enc(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        logits = dec(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / batch_size
        kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(1).mean()
        loss = recon + BETA * kl
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def dislab_loop(data: ArrayData, batch_size: int, device: str, seed: int = 0,
                **options: object) -> tuple[Callable[[], None], Trainer]:
    """dislab's Trainer (the loop of ``dislab train``): returns ``step()``."""
    cfg = TrainConfig(model="beta_vae", hparams={"beta": BETA}, batch_size=batch_size,
                      seed=seed, device=device, compile=False, tensorboard=False,
                      out="unused", **options)  # type: ignore[arg-type]
    trainer = Trainer(cfg, data=data)
    log_every = cfg.log_every

    def step() -> None:
        trainer.train_step()
        if trainer.step % log_every == 0:
            trainer.flush_window()  # what fit does at each history line

    return step, trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    ap.add_argument("--steps", type=int, default=30, help="steps per loop per round")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps per loop first")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads for both loops (default: PyTorch's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", type=int, default=4096, help="size of the in-memory data set")
    ap.add_argument("--variants", action="store_true",
                    help="also time dislab with each optimisation switched off")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    arr = render_images(args.images)
    data = ArrayData(arr)
    images = torch.from_numpy(arr)

    loops: dict[str, Callable[[], None]] = {"bare": bare_loop(images, args.batch_size, device)}
    loops["dislab"], trainer = dislab_loop(data, args.batch_size, str(device))
    if args.variants:
        loops["dislab -channels_last"], _ = dislab_loop(data, args.batch_size, str(device),
                                                        channels_last=False)
        loops["dislab -accelerate"], _ = dislab_loop(data, args.batch_size, str(device),
                                                     accelerate=False)
        loops["dislab -prefetch"], _ = dislab_loop(data, args.batch_size, str(device),
                                                   prefetch=False)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps, "
          f"load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    print("command: python " + " ".join(sys.argv))
    for name, step in loops.items():
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            step()
        sync(device)
        print(f"  warm-up {name}: {time.perf_counter() - t0:.1f} s", flush=True)

    speeds: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(args.rounds):
        for name, step in loops.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync(device)
            speeds[name].append(args.steps * args.batch_size / (time.perf_counter() - t0))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in speeds.items())
              + " images/s", flush=True)
    trainer.close()

    base = speeds["bare"]
    print("\nimages/s (median over rounds)        ratio to bare (median of per-round ratios)")
    for name, v in speeds.items():
        ratio = statistics.median(a / b for a, b in zip(v, base))
        print(f"  {name:<28} {statistics.median(v):8.1f}        {ratio:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
