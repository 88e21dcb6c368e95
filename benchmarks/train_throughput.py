"""Training throughput: dislab's training loop vs a bare PyTorch loop, measured in one run.

Both train the study's β-VAE (disentanglement_lib conv encoder / deconv decoder from
``dislab.nets``, batch 64, 64×64×1, Bernoulli reconstruction, β = 4, Adam 1e-4) on the SAME
in-memory data (procedural dSprites images rendered once as uint8), with the same number of
PyTorch threads. The bare loop is what one writes first: NCHW tensors, ``torch.optim.Adam``
with its defaults, ``zero_grad / loss / backward / step``, a uint8 gather converted to float
each step. dislab's loop is :class:`dislab.train.Trainer` (what ``dislab train`` runs) with its
default settings.

Each loop runs in its own process (so process-wide settings such as dislab's allocator tuning
do not leak into the bare loop); the parent times them alternately, ``--rounds`` times
``--steps`` steps each after a warm-up, so that load from other processes on a shared machine
hits both alike. It prints the median images/s of each loop and the median of the per-round
ratios, by wall clock (the figure that matters) and per CPU-second of the loop's process (less
sensitive to other processes on a busy machine).

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


def _worker(kind: str, arr: np.ndarray, batch_size: int, device: str, threads: int | None,
            options: dict, conn: object) -> None:
    """One loop in its own process: ``conn`` receives a step count (0: stop) and sends back
    ``(wall seconds, CPU seconds)``. Separate processes keep process-wide settings (threads,
    allocator) of one loop from helping or hurting the other."""
    import resource

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    if options.pop("_no_inplace_relu", False):  # variant: sub-pixel layer only
        import dislab.train.fast as fast

        plain = fast.accelerate
        fast.accelerate = lambda m, **kw: plain(m, inplace_relu=False)  # type: ignore
    if kind == "bare":
        step = bare_loop(torch.from_numpy(arr), batch_size, dev)
        trainer = None
    else:
        step, trainer = dislab_loop(ArrayData(arr), batch_size, device, **options)
    conn.send(torch.get_num_threads())  # type: ignore[attr-defined]
    while True:
        n = conn.recv()  # type: ignore[attr-defined]
        if not n:
            break
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync(dev)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        conn.send((wall, cpu))  # type: ignore[attr-defined]
    if trainer is not None:
        trainer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="alternating timing rounds")
    ap.add_argument("--steps", type=int, default=30, help="steps per loop per round")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps per loop first")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads in both loops (default: PyTorch's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", type=int, default=4096, help="size of the in-memory data set")
    ap.add_argument("--variants", action="store_true",
                    help="also time dislab with each optimisation switched off")
    args = ap.parse_args(argv)

    import multiprocessing as mp

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else (
        "cpu" if args.device == "auto" else args.device)
    arr = render_images(args.images)
    loops: dict[str, dict] = {"bare": {}, "dislab": {}}
    if args.variants:
        for opt in ("channels_last", "accelerate", "tune_malloc", "prefetch"):
            loops[f"dislab without {opt}"] = {opt: False}
        loops["dislab without inplace ReLU"] = {"_no_inplace_relu": True}
    ctx = mp.get_context("spawn")
    workers = {}
    for name, options in loops.items():
        parent, child = ctx.Pipe()
        kind = "bare" if name == "bare" else "dislab"
        proc = ctx.Process(target=_worker, daemon=True,
                           args=(kind, arr, args.batch_size, device, args.threads, options,
                                 child))
        proc.start()
        workers[name] = (proc, parent)
    threads = {name: conn.recv() for name, (_, conn) in workers.items()}
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"torch {torch.__version__}, device {device}, threads {threads['bare']}, "
          f"batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps{load}")
    print("command: python " + " ".join(sys.argv))
    for name, (_, conn) in workers.items():
        conn.send(args.warmup)
        wall, _ = conn.recv()
        print(f"  warm-up {name}: {wall:.1f} s", flush=True)

    speeds: dict[str, list[float]] = {name: [] for name in loops}
    cpu_speeds: dict[str, list[float]] = {name: [] for name in loops}
    images = args.steps * args.batch_size
    for r in range(args.rounds):
        for name, (_, conn) in workers.items():
            conn.send(args.steps)
            wall, cpu = conn.recv()
            speeds[name].append(images / wall)
            cpu_speeds[name].append(images / max(cpu, 1e-9))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in speeds.items())
              + " images/s", flush=True)
    for proc, conn in workers.values():
        conn.send(0)
        proc.join(timeout=30)

    base, cpu_base = speeds["bare"], cpu_speeds["bare"]
    print("\n                                 images/s  ratio   images per CPU-second  ratio")
    for name in loops:
        ratio = statistics.median(a / b for a, b in zip(speeds[name], base))
        cpu_ratio = statistics.median(a / b for a, b in zip(cpu_speeds[name], cpu_base))
        print(f"  {name:<30} {statistics.median(speeds[name]):8.1f}  {ratio:5.2f}x"
              f"   {statistics.median(cpu_speeds[name]):12.1f}          {cpu_ratio:5.2f}x")
    print("(medians over rounds; ratios are medians of the per-round ratios to the bare loop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
