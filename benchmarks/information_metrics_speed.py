"""Time the information-theoretic metrics on a dSprites-sized posterior table.

    python benchmarks/information_metrics_speed.py [--sampling] [--size 3,6,40,32,32]

Builds a synthetic ``CodeTable`` on the grid (default dSprites' 737 280 points): latents 0..K-1
are noisy copies of the standardised factors (posterior sd ~0.1), the other latents collapsed
(sd ~1), 10 latents in all. Prints wall and CPU seconds (``time.process_time``, all threads)
and the headline values of ``dotran``, ``mig_chen``, ``elbo_decomposition`` (and the opt-in
``dotran_sampling`` with ``--sampling``). CPU seconds are the robust figure on a shared machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dislab.data.base import from_function
from dislab.metrics.base import CodeTable
from dislab.metrics.chen_mig import mig_chen
from dislab.metrics.dotran import dotran, dotran_sampling
from dislab.metrics.elbo_decomposition import elbo_decomposition

HEADLINES = ("wsep", "wsepin", "windin", "rmig", "jemmig", "mig_chen", "mi", "tc", "dimwise_kl")


def synthetic_table(sizes: tuple[int, ...], latents: int = 10, seed: int = 0) -> CodeTable:
    """Posterior table ``(N, latents)`` in grid order: factor copies, then collapsed latents."""
    data = from_function(sizes)
    n, k = len(data), len(sizes)
    rng = np.random.default_rng(seed)
    f = data.factors(np.arange(n)).astype(np.float32)
    mean = np.empty((n, latents), np.float32)
    logvar = np.empty((n, latents), np.float32)
    mean[:, :k] = (f - f.mean(0)) / f.std(0) + 0.05 * rng.standard_normal((n, k))
    logvar[:, :k] = np.log(0.1**2) + 0.2 * rng.standard_normal((n, k))
    mean[:, k:] = 0.05 * rng.standard_normal((n, latents - k))
    logvar[:, k:] = -0.01 * np.abs(rng.standard_normal((n, latents - k)))
    return CodeTable(mean, logvar)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="3,6,40,32,32", help="factor sizes of the grid")
    parser.add_argument("--sampling", action="store_true", help="also time dotran_sampling")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.size.split(","))
    data = from_function(sizes)
    table = synthetic_table(sizes)
    metrics = [dotran, mig_chen, elbo_decomposition] + ([dotran_sampling] if args.sampling
                                                         else [])
    total_wall = total_cpu = 0.0
    for fn in metrics:
        wall, cpu = time.perf_counter(), time.process_time()
        res = fn(data, table, 0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall += wall
        total_cpu += cpu
        heads = {k: round(v, 4) for k, v in res.items() if k in HEADLINES}
        print(f"{fn.__name__:20s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  {heads}", flush=True)
    print(f"{'total':20s} wall {total_wall:7.2f} s  cpu {total_cpu:7.2f} s")


if __name__ == "__main__":
    main()
