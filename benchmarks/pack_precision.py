"""bf16 autocast in packed training: its effect on the losses, against fp32, in one run.

Trains the same pack twice with :func:`dislab.train.packed.fit_pack`: the study's conv β-VAE
on procedural dSprites (64×64, batch ``--batch-size``), ``--k`` members (seeds 0.., β from
the study's sweep), ``--steps`` updates, once in fp32 and once with
``PackOptions(precision="bf16")``. Both draw the same batches and noise, so every difference
comes from bf16. Prints, per member, the mean loss over the last ``--last`` logged windows of
each and their relative difference (the final reconstruction and KL too).

    python benchmarks/pack_precision.py --steps 300 --k 2 --device cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from dislab.train.packed import PackOptions, fit_pack


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--last", type=int, default=4, help="logged windows averaged at the end")
    args = ap.parse_args(argv)
    betas = (1.0, 4.0, 8.0, 16.0)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for precision in ("fp32", "bf16"):
            configs = [dict(model="beta_vae", data="dsprites", seed=i,
                            hparams={"beta": betas[i % len(betas)]}, steps=args.steps,
                            batch_size=args.batch_size, device=args.device,
                            log_every=args.log_every, checkpoint_every=args.steps,
                            image_every=0, tensorboard=False, compile=False,
                            out=str(Path(tmp) / precision / str(i))) for i in range(args.k)]
            fit_pack(configs, progress=False, options=PackOptions(precision=precision))
            results[precision] = [
                [json.loads(x) for x in (Path(c["out"]) / "history.jsonl").read_text()
                 .splitlines()] for c in configs]
    print(f"conv β-VAE pack of {args.k}, {args.steps} steps, batch {args.batch_size}, "
          f"device {args.device}; means of the last {args.last} windows of {args.log_every} "
          "steps")
    print(f"{'member':>6} {'beta':>5} {'loss fp32':>10} {'loss bf16':>10} {'rel diff':>9} "
          f"{'recon rel':>9} {'kl rel':>8}")
    for i in range(args.k):
        row = []
        for key in ("loss", "recon", "kl"):
            a = np.mean([r[key] for r in results["fp32"][i][-args.last:]])
            b = np.mean([r[key] for r in results["bf16"][i][-args.last:]])
            row.append((a, b, (b - a) / abs(a)))
        print(f"{i:6d} {betas[i % len(betas)]:5g} {row[0][0]:10.3f} {row[0][1]:10.3f} "
              f"{row[0][2]:+9.2%} {row[1][2]:+9.2%} {row[2][2]:+8.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
