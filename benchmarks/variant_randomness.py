"""What does keyed-per-image randomness do to the metrics of the dSprites variants?

disentanglement_lib draws the colour (Color-dSprites), the noise background (Noisy-dSprites)
and the crop (Scream-dSprites) afresh at every call of ``sample_observations_from_factors``
(disentanglement_lib ``data/ground_truth/dsprites.py``, classes ``ColorDSprites``,
``NoisyDSprites``, ``ScreamDSprites``), so the same grid point gives a new image each time a
metric asks for it. dislab's default (``fresh=False``) makes that draw a deterministic function
of the grid index and a seed. This script trains one model on a variant (or takes ``--run``)
and scores it, with the same metric seeds, on:

* ``keyed``: the default data set (``fresh=False``);
* ``keyed_seed1``: keyed with another seed (how far two keyings are apart: the noise floor);
* ``fresh``: ``fresh=True``, with no code cache (every image a metric asks for is drawn anew,
  as disentanglement_lib does).

Usage::

    python benchmarks/variant_randomness.py --data noisy_dsprites --steps 3000 \\
        --out /tmp/variant_run --metrics mig,sap,dci,modularity,beta_vae
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="noisy_dsprites",
                    help="color_dsprites, noisy_dsprites or scream_dsprites")
    ap.add_argument("--run", default=None, help="score this trained run instead of training")
    ap.add_argument("--out", default="benchmarks/out/variant_run", help="run folder to train")
    ap.add_argument("--model", default="beta_vae")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--metrics", default="mig,sap,dci,modularity,beta_vae")
    ap.add_argument("--seed", type=int, default=0, help="metric seed")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch

    import dislab.data as dd
    import dislab.metrics as dm
    from dislab.train import TrainConfig, fit, load_run

    torch.set_num_threads(a.threads)
    run = Path(a.run) if a.run else None
    if run is None:
        t0 = time.perf_counter()
        run = fit(TrainConfig(model=a.model, data=a.data, steps=a.steps, out=a.out, seed=0,
                              threads=a.threads, image_every=0), progress=False)
        print(f"trained {a.model} on {a.data} for {a.steps} steps in "
              f"{time.perf_counter() - t0:.0f} s: {run}")
    model, cfg = load_run(run, device="cpu")
    names = [m for m in a.metrics.split(",") if m]
    rows = {}
    for label, options in (("keyed", {}), ("keyed_seed1", {"seed": 1}),
                           ("fresh", {"fresh": True})):
        data = dd.load(cfg.data, **options)
        t0 = time.perf_counter()
        scores = dm.evaluate(model, data, names, seed=a.seed, cache=False)
        rows[label] = scores
        print(f"{label:12s} ({time.perf_counter() - t0:.0f} s) "
              + json.dumps({m: {k: round(v, 4) for k, v in s.items()}
                            for m, s in scores.items()}), flush=True)
    print("\nmetric value                    keyed  keyed(seed 1)  fresh   fresh-keyed")
    for m in names:
        for k, v in rows["keyed"][m].items():
            if not isinstance(v, float):
                continue
            k1, fr = rows["keyed_seed1"][m][k], rows["fresh"][m][k]
            print(f"{m + ':' + k:30s} {v:7.4f}  {k1:12.4f}  {fr:7.4f}  {fr - v:+8.4f}")


if __name__ == "__main__":
    main()
