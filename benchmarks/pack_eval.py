"""Evaluation at pack scale: K runs scored together against the same runs scored one by one.

For each K of ``--k``, K run folders of the study's β-VAE (conv encoder, 10 latents,
randomly initialised, each from its own seed; written directly: no training is needed to time
scoring) are scored two ways, in one process, on the same device:

* **one by one**: :func:`dislab.metrics.evaluate_run` on each run, as ``dislab evaluate RUN``
  does (the grid points the metrics ask for encoded by the run's model, then its suite);
  timed on ``min(K, --baseline-runs)`` runs;
* **together**: :func:`dislab.metrics.many.evaluate_runs` on all K (``dislab evaluate RUN...``):
  one vectorised encoding pass of the full grid for the K models, then the K suites in
  ``--workers`` processes.

It prints models scored per minute both ways and their ratio, plus the encoding alone:
images/s (K models × grid points) of :func:`dislab.representation.many.encode_runs` (the vectorised
pass on CUDA; model by model on CPU, where it is faster) against one model's
:func:`dislab.representation.encode.encode_grid`. Both ways write the same ``metrics.json`` format;
the values agree to the codes' float rounding (tests/test_pack_eval.py).

    python benchmarks/pack_eval.py --device cpu --k 1,4
    python benchmarks/pack_eval.py --device cuda --k 1,8,32 --metrics default
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dislab import models  # noqa: E402
from dislab.data import load as load_data  # noqa: E402
from dislab.metrics.many import evaluate_runs  # noqa: E402
from dislab.metrics.suite import evaluate_run, resolve_metrics  # noqa: E402
from dislab.representation.encode import encode_grid  # noqa: E402
from dislab.representation.many import encode_runs  # noqa: E402
from dislab.train import TrainConfig  # noqa: E402
from dislab.train.checkpoint import save_weights  # noqa: E402
from dislab.train.loop import load_run  # noqa: E402

#: a dSprites sub-grid for CPU runs (3 * 2 * 10 * 16 * 16 = 15 360 images)
CPU_GRID = {"scales": 2, "orientations": 10, "positions": 16}


def make_runs(root: Path, k: int, data_options: dict, device: str) -> list[Path]:
    """K run folders with random study β-VAEs (seeds 0..K-1), as `dislab train` writes them."""
    data = load_data("dsprites", **data_options)
    runs = []
    for seed in range(k):
        cfg = TrainConfig(model="beta_vae", data="dsprites", data_options=dict(data_options),
                          steps=1, seed=seed, device=device, out=str(root / f"run{seed}"))
        torch.manual_seed(seed)
        model = models.create(cfg.model, tuple(data.observation_shape), cfg.latent_dim,
                              arch=cfg.arch, reconstruction=cfg.reconstruction,
                              dataset_size=len(data), **cfg.hparams)
        out = Path(cfg.out)
        out.mkdir(parents=True)
        cfg.save(out / "config.json")
        save_weights(out / "model.safetensors", model,
                     {"model": cfg.model, "observation_shape": list(data.observation_shape),
                      "latent_dim": cfg.latent_dim, "arch": cfg.arch,
                      "reconstruction": cfg.reconstruction, "hparams": cfg.hparams,
                      "dataset_size": len(data), "data": cfg.data, "step": 1})
        (out / "status.json").write_text('{"status": "done", "step": 1}')
        runs.append(out)
    return runs


def _fresh(runs: list[Path]) -> None:
    for r in runs:
        for name in ("codes.npz", "metrics.json"):
            (r / name).unlink(missing_ok=True)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--k", default="1,4", help="comma-separated pack sizes")
    ap.add_argument("--metrics", default="mig,sap,modularity",
                    help="metrics of each suite ('default' = dislab's default suite)")
    ap.add_argument("--baseline-runs", type=int, default=2,
                    help="runs timed one by one per K (models/min is per model)")
    ap.add_argument("--workers", type=int, default=None,
                    help="suite processes (default: the usable cores)")
    ap.add_argument("--full-grid", action="store_true",
                    help="the full dSprites grid (default on CUDA; on CPU a 15 360-image "
                         "sub-grid)")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    metrics = None if args.metrics == "default" else args.metrics
    names = resolve_metrics(metrics)
    options = {} if (args.full_grid or args.device.startswith("cuda")) else dict(CPU_GRID)
    data = load_data("dsprites", **options)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, cores "
          f"{len(os.sched_getaffinity(0))}; dSprites grid {len(data):,} images; metrics "
          f"{','.join(names)}")
    print(f"{'K':>4} {'one by one':>16} {'together':>16} {'ratio':>7}   "
          f"{'encode 1 model':>16} {'encode K together':>18} {'ratio':>7}")
    root = Path(tempfile.mkdtemp(prefix="pack_eval_"))
    try:
        for k in ks:
            runs = make_runs(root / f"k{k}", k, options, args.device)
            # encoding alone: one model's full grid vs the vectorised pass over K models
            model, _ = load_run(runs[0], device=args.device)
            encode_grid(model, data, progress=False)  # warm-up (tracing, threading choice)
            _sync(args.device)
            t = time.perf_counter()
            encode_grid(model, data, progress=False)
            _sync(args.device)
            one = len(data) / (time.perf_counter() - t)
            encode_runs(runs[:1], device=args.device, progress=False)  # warm-up
            _fresh(runs)
            _sync(args.device)
            t = time.perf_counter()
            encode_runs(runs, device=args.device, progress=False)
            _sync(args.device)
            many = k * len(data) / (time.perf_counter() - t)
            # scoring: one by one (as `dislab evaluate RUN`) vs together
            _fresh(runs)
            base = runs[:max(1, min(k, args.baseline_runs))]
            t = time.perf_counter()
            for r in base:
                evaluate_run(r, metrics=names, device=args.device, progress=False)
            alone = len(base) * 60.0 / (time.perf_counter() - t)
            _fresh(runs)
            t = time.perf_counter()
            evaluate_runs(runs, metrics=names, device=args.device, workers=args.workers,
                          progress=False)
            together = k * 60.0 / (time.perf_counter() - t)
            print(f"{k:>4} {alone:>10.2f} mod/min {together:>10.2f} mod/min "
                  f"{together / alone:>6.2f}x   {one:>12.0f} img/s {many:>14.0f} img/s "
                  f"{many / one:>6.2f}x", flush=True)
            shutil.rmtree(root / f"k{k}", ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
