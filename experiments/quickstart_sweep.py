"""Which setting learns which dSprites factor, and when? One training run per process.

Trains one setting from scratch (the quickstart's Slow-VAE config, overridden by ``--cfg``) on
the procedural dSprites and, every ``--eval-every`` images, scores 10 000 fixed grid points:

* MIG per factor (disentanglement_lib's estimator: 20-bin histogram of each posterior mean,
  mutual information with each factor divided by the factor's entropy, gap of the top two);
* ``mi_<factor>``: the largest normalised mutual information of any latent with the factor
  (a factor can be encoded, duplicated or mixed, and still have a small MIG);
* ``orientation_<shape>``: the same for orientation within each shape, taken modulo the
  shape's symmetry (square 90°, ellipse 180°, heart 360°), since a square turned by 90° is the
  same image and no encoder can tell those orientations apart;
* ``orientation_r2_<shape>``: whether the angle is in the code at all, axis-aligned or not: R²
  of a 10-nearest-neighbour regression from the whole code to the cosine and sine of the angle
  (modulo the symmetry), fitted on half of the shape's points and scored on the other half;
* the mean KL of each latent and the reconstruction term.

It stops at ``--images`` or after ``--seconds`` of wall time and writes
``OUT/NAME.jsonl`` (one line per evaluation) and the weights ``OUT/NAME.safetensors``.
``--rescore W.safetensors ...`` prints the same figures for saved weights (the method is read
from ``--cfg``) instead of training.
Several processes can share one GPU (each uses one CPU thread plus its batch thread)::

    for s in 0 1; do python experiments/quickstart_sweep.py --name def_s$s --seed $s \\
        --device cuda --images 1600000 --out sweep & done
    python experiments/quickstart_sweep.py --name g1_s0 --device cuda --out sweep \\
        --cfg '{"hparams": {"beta": 1, "gamma": 1, "rate": 6, "one_change": 1}}'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import mutual_info_score
from sklearn.neighbors import KNeighborsRegressor

#: orientation values (of dSprites' 40 over 360°) after which each shape looks the same again
SYMMETRY_PERIOD = {"square": 10, "ellipse": 20, "heart": 40}
SHAPES = ("square", "ellipse", "heart")


def trainer_config(name: str, cfg: str, seed: int, device: str) -> dict[str, Any]:
    """The quickstart's training config with ``cfg`` (JSON) laid over it."""
    from dislab import models
    from dislab.quickstart import QUICKSTART

    over = json.loads(cfg)
    base = {**QUICKSTART, **over}
    pairs = getattr(models.get_class(base["model"]), "batch_kind", "single") == "pairs"
    if not pairs and "pair_options" not in over:
        base["pair_options"] = {}  # methods trained on single images take no pair options
    return {**base, "seed": seed, "steps": 10**9, "out": f"/tmp/quickstart_sweep_{name}",
            "tensorboard": False, "threads": 1, "compile": False, "device": device}


def _bins(v: np.ndarray, n: int = 20) -> np.ndarray:
    return np.digitize(v, np.histogram(v, n)[1][:-1])


def score(mean: np.ndarray, logvar: np.ndarray, factors: np.ndarray,
          names: list[str]) -> dict[str, Any]:
    """The figures listed in the module docstring, for codes ``(n, d)`` of ``factors (n, K)``."""
    d, k = mean.shape[1], factors.shape[1]
    entropy = np.array([mutual_info_score(factors[:, j], factors[:, j]) for j in range(k)])
    binned = [_bins(mean[:, i]) for i in range(d)]
    mi = np.array([[mutual_info_score(factors[:, j], binned[i]) for j in range(k)]
                   for i in range(d)]) / entropy
    top = np.sort(mi, axis=0)
    gap = top[-1] - top[-2]
    out: dict[str, Any] = {"mig": float(gap.mean())}
    out.update({f"mig_{n}": round(float(g), 3) for n, g in zip(names, gap)})
    out.update({f"mi_{n}": round(float(mi[:, j].max()), 3) for j, n in enumerate(names)})
    shape_col, orient_col = names.index("shape"), names.index("orientation")
    for s, shape in enumerate(SHAPES):
        sel = factors[:, shape_col] == s
        o = factors[sel, orient_col] % SYMMETRY_PERIOD[shape]
        h = mutual_info_score(o, o)
        best = max(mutual_info_score(o, _bins(mean[sel, i])) / h for i in range(d))
        out[f"orientation_{shape}"] = round(float(best), 3)
        angle = 2 * np.pi * o / SYMMETRY_PERIOD[shape]
        target = np.stack([np.cos(angle), np.sin(angle)], 1)
        half = int(sel.sum()) // 2
        fit = KNeighborsRegressor(10).fit(mean[sel][:half], target[:half])
        resid = ((fit.predict(mean[sel][half:]) - target[half:]) ** 2).sum()
        spread = ((target[half:] - target[half:].mean(0)) ** 2).sum()
        out[f"orientation_r2_{shape}"] = round(float(1 - resid / spread), 3)
    kl = 0.5 * (mean ** 2 + np.exp(logvar) - 1 - logvar)
    out["kl"] = [round(float(v), 2) for v in kl.mean(0)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True, help="names the output files")
    ap.add_argument("--cfg", default="{}", help="JSON laid over the quickstart config")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=1_600_000, help="stop after this many")
    ap.add_argument("--seconds", type=float, default=float("inf"), help="or after this long")
    ap.add_argument("--eval-every", type=int, default=250_000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="experiments/out/quickstart_sweep")
    ap.add_argument("--rescore", nargs="+", default=None, metavar="WEIGHTS",
                    help="score saved weights instead of training")
    a = ap.parse_args()

    from dislab.train import Trainer
    from dislab.train.checkpoint import save_weights

    torch.set_num_threads(1)
    tr = Trainer(trainer_config(a.name, a.cfg, a.seed, a.device))
    data = tr.data
    idx = np.random.default_rng(1234).choice(len(data), 10_000, replace=False)
    factors = data.factors(idx)
    images = data.images_from_index(idx)
    names = list(data.factor_names)

    def evaluate(model: Any = None) -> dict[str, Any]:
        model = tr.model if model is None else model
        model.eval()
        with torch.no_grad():
            outs = [model.encode(torch.from_numpy(images[s:s + 1000]).to(tr.device))
                    for s in range(0, len(images), 1000)]
        model.train()
        mean = torch.cat([o[0] for o in outs]).float().cpu().numpy()
        logvar = torch.cat([o[1] for o in outs]).float().cpu().numpy()
        return score(mean, logvar, factors, names)

    if a.rescore:
        from dislab.train.checkpoint import load_weights

        for w in a.rescore:
            load_weights(w, tr.model)
            row = {k: v for k, v in evaluate().items() if k != "kl"}
            print(w, json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
        tr.close()
        return

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{a.name}.jsonl"
    path.unlink(missing_ok=True)
    seen, next_eval, t0, logs = 0, a.eval_every, time.time(), {}
    try:
        while True:
            tr.train_step()
            seen += tr.images_per_batch
            if tr.step % 50 == 0:
                logs = tr.flush_window()
            done = seen >= a.images or time.time() - t0 > a.seconds
            if seen >= next_eval or done:
                next_eval += a.eval_every
                row = {"name": a.name, "seed": a.seed, "images": seen, "step": tr.step,
                       "wall": round(time.time() - t0), "recon": round(logs.get("recon", 0), 1),
                       "cfg": json.loads(a.cfg), **evaluate()}
                with open(path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
                save_weights(out / f"{a.name}.safetensors", tr.model, {"images": str(seen)})
            if done:
                break
    finally:
        tr.close()


if __name__ == "__main__":
    main()
