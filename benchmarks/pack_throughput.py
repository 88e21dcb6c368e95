"""Packed training throughput: a pack of K models against K separate loops and the bare loop.

All loops train the study's conv β-VAE (``dislab.nets`` conv encoder / deconv decoder, 64×64×1,
Bernoulli reconstruction, β = 4, Adam 1e-4) at ``--batch-size`` on the same in-memory images
(procedural dSprites rendered once as uint8; see benchmarks/train_throughput.py, whose data and
bare loop this script reuses). Every loop runs in its own process (process-wide settings such
as dislab's allocator tuning do not leak between them); all are started first, then timed in
turn, ``--steps`` steps each, for ``--rounds`` rounds after ``--warmup`` steps, so that load
from other processes on a shared machine hits them alike; medians of the rates and of the
per-round ratios are printed. Per K:

* ``pack``: aggregate images/s of :func:`dislab.train.packed.pack_trainer` with K members
  (different seeds and β), ``--threads`` threads;
* ``vs sequential``: against K single runs one after the other, each with ``--threads``
  threads (dislab's loop measured once: K runs in sequence train at its images/s);
* ``vs processes``: against separate single-run processes sharing the machine, each with one
  thread (``--procs`` of them, default: one per core, run at once and timed together: more
  processes than cores only time-slice them);
* ``vs bare``: against the bare PyTorch loop (plain nn.Modules, no dislab), ``--threads``.

    python benchmarks/pack_throughput.py --device cpu --k 1,4,8 --steps 10
    python benchmarks/pack_throughput.py --device cuda --k 1,8,32,64,128 --steps 50

``--eval-k 1,16`` adds the second part, evaluation per model of a pack against runs scored
one by one (``benchmarks/pack_eval.py``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_throughput import BETA, ArrayData, bare_loop, render_images  # noqa: E402


def _configs(k: int, batch_size: int, device: str) -> list[dict[str, Any]]:
    betas = (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)  # the study's β sweep
    return [dict(model="beta_vae", hparams={"beta": betas[i % len(betas)]}, seed=i,
                 batch_size=batch_size, device=device, compile=False, tensorboard=False,
                 out=f"unused/{i}") for i in range(k)]


def _worker(kind: str, k: int, arr: np.ndarray, batch_size: int, device: str, threads: int,
            options: dict[str, Any], conn: Any) -> None:
    """One loop in its own process. ``conn`` receives a step count (0: stop) and sends back
    the wall seconds of that many steps; the first message is the images per step."""
    options = {k: v for k, v in options.items() if v is not None}
    torch.set_num_threads(threads)
    dev = torch.device(device)
    closing: Any = None
    if kind == "bare":
        step = bare_loop(torch.from_numpy(arr), batch_size, dev)
        per_step = batch_size
    elif kind == "single":
        from dislab.train import Trainer

        trainer = Trainer({**_configs(1, batch_size, device)[0], "hparams": {"beta": BETA}},
                          data=ArrayData(arr))
        closing = trainer

        def step() -> None:
            trainer.train_step()
            if trainer.step % 100 == 0:
                trainer.flush_window()  # what fit does at each history line

        per_step = batch_size
    else:
        from dislab.train.packed import PackOptions, pack_trainer

        pack = pack_trainer(_configs(k, batch_size, device), data=ArrayData(arr),
                            options=PackOptions(**options))
        closing = pack

        def step() -> None:
            pack.train_step()
            if pack.step % 100 == 0:
                pack.bad_members()
                pack.flush_window()

        per_step = k * batch_size
    conn.send(per_step)
    while True:
        n = conn.recv()
        if not n:
            break
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        conn.send(time.perf_counter() - t0)
    if closing is not None:
        closing.close()


class Loop:
    """``copies`` processes of one loop, started once and timed together on demand."""

    def __init__(self, kind: str, arr: np.ndarray, args: argparse.Namespace, k: int = 1,
                 threads: int | None = None, copies: int = 1) -> None:
        ctx = mp.get_context("spawn")
        options = {"precision": args.precision, "compile": args.compile,
                   "execution": args.execution, "workers": args.workers, "data": args.data}
        self.pipes, self.procs = [], []
        for _ in range(copies):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(kind, k, arr, args.batch_size, args.device,
                                                  threads or args.threads, options, child))
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)
        self.per_step = [c.recv() for c in self.pipes][0]
        self.copies = copies
        self.run(args.warmup)

    def run(self, steps: int) -> float:
        """Aggregate images/s of ``steps`` steps of every copy, run at once."""
        for c in self.pipes:
            c.send(steps)
        walls = [c.recv() for c in self.pipes]
        return self.copies * self.per_step * steps / max(walls)

    def close(self) -> None:
        for c in self.pipes:
            c.send(0)
        for p in self.procs:
            p.join()


# -- evaluation timing (the second part): benchmarks/pack_eval.py -----------------------------
def time_evaluation(device: str, ks: str) -> None:
    """Evaluation per model of a pack against scoring the runs one by one
    (``benchmarks/pack_eval.py``, run here with the same device and pack sizes)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "pack_eval", os.path.join(os.path.dirname(os.path.abspath(__file__)), "pack_eval.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--device", device, "--k", ks])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--k", default="1,8,32,64,128", help="pack sizes, comma-separated")
    ap.add_argument("--eval-k", default="",
                    help="also time evaluation per model for these pack sizes (e.g. 1,4; "
                         "benchmarks/pack_eval.py)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds (median)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads of the pack, single and bare loops (default: all cores)")
    ap.add_argument("--procs", type=int, default=None,
                    help="separate 1-thread processes (default: one per core; CPU only)")
    ap.add_argument("--images", type=int, default=4096, help="size of the in-memory data")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--execution", default="auto", choices=("auto", "vmap", "members"),
                    help="how the pack runs (PackOptions.execution)")
    ap.add_argument("--compile", default="auto", type=lambda s: {"on": True, "off": False}
                    .get(s, s), help="on, off or auto (CUDA graphs on CUDA)")
    ap.add_argument("--workers", type=int, default=None,
                    help="members run at once in threads of one core each (PackOptions.workers; "
                         "default: the pack's default)")
    ap.add_argument("--data", default="auto", choices=("auto", "host", "device"),
                    help="where a pack's batches are drawn (PackOptions.data; auto: the device "
                         "on CUDA, the host on the CPU)")
    args = ap.parse_args(argv)
    ks = [int(x) for x in args.k.split(",") if x]
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available here; use --device cpu.", file=sys.stderr)
        return 2
    arr = render_images(args.images)
    print(f"conv β-VAE, batch {args.batch_size}, 64x64, device {args.device}, "
          f"{args.threads} thread(s), {args.precision}, execution {args.execution}; medians "
          f"of {args.rounds} alternating rounds x {args.steps} steps, torch {torch.__version__}")
    loops = {"bare": Loop("bare", arr, args), "single": Loop("single", arr, args)}
    n_procs = args.procs or (os.cpu_count() or 1)
    if args.device == "cpu":
        loops["procs"] = Loop("single", arr, args, threads=1, copies=n_procs)
    for k in ks:
        loops[f"pack{k}"] = Loop("pack", arr, args, k=k)
    rates: dict[str, list[float]] = {name: [] for name in loops}
    ratios: dict[str, list[float]] = {}
    try:
        for _ in range(args.rounds):  # every loop once per round: load hits all alike
            now = {name: loop.run(args.steps) for name, loop in loops.items()}
            for name, r in now.items():
                rates[name].append(r)
            for k in ks:
                for base in ("single", "procs", "bare"):
                    if base in now:
                        ratios.setdefault(f"{k}/{base}", []).append(now[f"pack{k}"] / now[base])
    finally:
        for loop in loops.values():
            loop.close()

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    bare, single = med(rates["bare"]), med(rates["single"])
    print(f"bare PyTorch loop      {bare:10.1f} img/s")
    print(f"dislab single loop     {single:10.1f} img/s")
    if "procs" in rates:
        print(f"{n_procs} single processes    {med(rates['procs']):10.1f} img/s  "
              "(1 thread each, together)")
    print(f"{'K':>4} {'pack img/s':>11} {'per model':>10} {'vs sequential':>14} "
          f"{'vs processes':>13} {'vs bare':>8}   (ratios: medians of per-round ratios)")
    for k in ks:
        rate = med(rates[f"pack{k}"])
        vs_procs = (f"{med(ratios[f'{k}/procs']):13.2f}" if f"{k}/procs" in ratios
                    else f"{'-':>13}")
        print(f"{k:4d} {rate:11.1f} {rate / k:10.1f} {med(ratios[f'{k}/single']):14.2f} "
              f"{vs_procs} {med(ratios[f'{k}/bare']):8.2f}")
    if args.eval_k:
        print("\n-- evaluation per model (benchmarks/pack_eval.py) --")
        time_evaluation(args.device, args.eval_k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
