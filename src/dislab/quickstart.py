"""``dislab quickstart``: a disentangled dSprites model, its metrics and its report, in minutes.

:func:`run` renders dSprites procedurally (no download), trains for a wall-clock budget,
evaluates the default metric suite and writes the HTML run report. The budget covers
everything: training gets what is left after a reserve for evaluation and the report, and its
number of steps is set from the measured speed (a short probe, then re-plans), so the run
ends on time on a slow laptop and early on a GPU (at :data:`MAX_STEPS`).

The defaults (:data:`QUICKSTART`) were chosen by experiment (``benchmarks/quickstart_mig.py``;
docs/quickstart.md has MIG against images seen for every candidate, on several seeds):
Slow-VAE (Klindt et al. 2021) with the paper's β = 1, γ = 10, λ = 6 and dislab's
``one_change=1`` (the Laplace penalty once more on every latent's change but the largest), on
pairs of dSprites images that differ in exactly one factor (``changes=1``; shape never
changes) by a large Laplace jump (``rate=0.3``), rendered on the fly; the study's conv encoder /
deconv decoder, 32 pairs (64 images) per update, Adam lr 5e-4, 10 latents. Unsupervised
objectives (β-TCVAE β = 10, FactorVAE γ = 35) had not found the factors' axes after 100 000
images (MIG ≤ 0.03). Slow-VAE on one-factor pairs with the reference's small jumps and without
``one_change`` reached MIG 0.28 on one seed and stayed below 0.1 on another: position was
duplicated in two or three latents, or split over two latents, one per half of its range.
``one_change`` makes two latents moving in one pair cost more, and large jumps make a split
factor move both of its latents. It is weakly supervised by the pairs; ``model="beta_tcvae"``
gives the unsupervised β-TCVAE (β = 6) instead.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from dislab.errors import DislabError

__all__ = ["QUICKSTART", "MAX_STEPS", "run", "plan_reserve"]

#: The quickstart's training config (fields of :class:`dislab.train.TrainConfig`).
QUICKSTART: dict[str, Any] = {
    "model": "slow_vae",
    "data": "dsprites",
    "arch": "conv",
    "latent_dim": 10,
    "batch_size": 32,  # pairs: 64 images per update
    "lr": 5e-4,
    # the paper's β, γ, λ; one_change: the Laplace penalty once more on every latent's change
    # but the largest (the pairs change one factor, so one latent should change)
    "hparams": {"beta": 1.0, "gamma": 10.0, "rate": 6.0, "one_change": 1.0},
    # one factor changes per pair (dislab.data.pairs, option ``changes``), by a Laplace jump of
    # scale log(n_k)/0.3 (``rate``; the reference's 1 gives a scale of 3.5 of posX's 32 values):
    # large jumps cross the whole range, so a factor split over two latents (one per half of
    # its range) moves both and pays ``one_change``
    "pair_options": {"changes": 1, "rate": 0.3},
}

#: Hyper-parameters used when the quickstart trains another method (``model=...``).
OTHER_METHODS: dict[str, dict[str, Any]] = {
    "beta_tcvae": {"batch_size": 64, "hparams": {"beta": 6.0}},
}

#: Training stops here even with time left (3.8 M images at 64 per update, ~5 passes over
#: dSprites: a GPU gets there in minutes).
MAX_STEPS = 60_000

#: Seconds of evaluation and report that do not depend on the model's speed: the default metric
#: suite on the dSprites codes plus the report's figures, used to reserve time before training
#: (on the idle AVX2 2-core CPU the 13 metrics took 169 s, and encoding + metrics + report
#: together about 5.5 minutes; docs/quickstart.md).
METRICS_SECONDS = 200.0

_PROBE_STEPS = 30


def plan_reserve(num_images: int, encode_images_per_s: float) -> float:
    """Seconds to keep for evaluation + report: encode ``num_images`` + :data:`METRICS_SECONDS`."""
    return num_images / max(encode_images_per_s, 1.0) + METRICS_SECONDS


def _encode_speed(model: Any, data: Any, device: str) -> float:
    """Images per second of the evaluation's encoder path (:func:`encode_rows`) on up to
    4096 images, tracing included (so slightly pessimistic)."""
    import numpy as np

    from dislab.metrics.cache import encode_rows

    index = np.arange(min(4096, len(data)))
    t0 = time.perf_counter()
    encode_rows(model, data, index, progress=False)
    return len(index) / max(time.perf_counter() - t0, 1e-6)


def _status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def run(
    out: str | os.PathLike[str] = "quickstart",
    minutes: float = 30.0,
    seed: int = 0,
    device: str = "auto",
    steps: int | None = None,
    metrics: str | list[str] | None = None,
    progress: bool = True,
    max_steps: int = MAX_STEPS,
    **overrides: Any,
) -> Path:
    """Train, evaluate and report within ``minutes``; return the report's ``index.html``.

    ``out``: the run folder (an interrupted quickstart in the same folder is resumed).
    ``steps``: a fixed number of steps instead of the time budget (smoke tests).
    ``metrics``: metric names, ``"all"`` or ``None`` (the default suite). ``overrides``:
    other :class:`~dislab.train.TrainConfig` fields (e.g. ``model="beta_tcvae"``,
    ``data="shapes3d"``, ``latent_dim=6``) replacing :data:`QUICKSTART`'s (another ``model``
    starts from its own defaults and :data:`OTHER_METHODS`).
    """
    from dislab.metrics import evaluate_run
    from dislab.train import TrainConfig, Trainer, fit
    from dislab.viz.run_report import build_report

    t_start = time.perf_counter()
    if minutes <= 0:
        raise DislabError(f"--minutes must be positive, got {minutes}.")
    run_dir = Path(out)
    cfg = dict(QUICKSTART)
    model = overrides.get("model", QUICKSTART["model"])
    if model != QUICKSTART["model"]:  # another method: its own defaults, not Slow-VAE's
        cfg.pop("hparams")
        cfg.pop("pair_options")
        cfg.update(OTHER_METHODS.get(model, {}))
    cfg.update(seed=int(seed), device=device, out=str(run_dir), log_every=50,
               checkpoint_every=2000, image_every=0)
    cfg.update(overrides)
    cfg = TrainConfig.from_dict(cfg).to_dict()
    deadline = t_start + 60.0 * minutes
    say = print if progress else (lambda *a, **k: None)

    status = _status(run_dir)
    resume = (run_dir / "config.json").exists()
    if resume and status.get("status") == "done" and (run_dir / "model.safetensors").exists() \
            and steps is None:
        say(f"dislab quickstart: {run_dir} already holds a finished run; evaluating/reporting it.")
    elif steps is not None:
        fit({**cfg, "steps": int(steps)}, progress=progress, resume=resume)
    else:
        # 1. probe the speed (also the first steps of the run) and the encoder's speed
        done = int(status.get("step", 0)) if resume else 0
        t0 = time.perf_counter()
        fit({**cfg, "steps": done + _PROBE_STEPS}, progress=False, resume=resume)
        rate = _PROBE_STEPS / max(time.perf_counter() - t0, 1e-6)  # steps/s incl. overheads
        trainer = Trainer({**cfg, "steps": 1, "tensorboard": False})
        data = trainer.data
        enc = _encode_speed(trainer.model.eval(), data, device)
        per_step = trainer.images_per_batch  # 2 x batch_size for pair methods
        trainer.close()
        reserve = plan_reserve(len(data), enc)
        # 2. train to the time left in chunks, each re-planned from the speed just measured
        #    (the machine's load may change), the last ones to the full remaining time
        for share in (0.5, 0.8, 1.0, 1.0):
            now = time.perf_counter()
            left = deadline - reserve - now
            step = int(_status(run_dir).get("step", 0))
            target = min(max_steps, step + int(max(0.0, left) * rate * share))
            if target <= step or (share == 1.0 and target - step < _PROBE_STEPS
                                  and step > _PROBE_STEPS):
                break
            say(f"dislab quickstart: training to step {target} "
                f"({rate * per_step:.0f} images/s; {left / 60:.1f} min for training, "
                f"{reserve / 60:.1f} min kept for evaluation and report)")
            t1 = time.perf_counter()
            fit({**cfg, "steps": target}, progress=progress, resume=True)
            rate = (target - step) / max(time.perf_counter() - t1, 1e-6)
            if target >= max_steps:
                break
    status = _status(run_dir)
    if status.get("status") != "done":
        raise DislabError(f"training in {run_dir} did not finish (status "
                          f"{status.get('status')!r}); run the same command again to resume.")
    say("dislab quickstart: evaluating the default metrics ...")
    record = evaluate_run(run_dir, metrics=metrics, seed=seed, device=device, progress=progress)
    say("dislab quickstart: writing the report ...")
    index = build_report(run_dir, evaluate=False, seed=seed, progress=progress)
    elapsed = time.perf_counter() - t_start
    mig = record.get("metrics", {}).get("mig", {}).get("values", {}).get("discrete_mig")
    summary = {"minutes_budget": minutes, "seconds_total": round(elapsed, 1),
               "steps": status.get("step"), "train_seconds": status.get("train_seconds"),
               "mig": mig, "report": str(index), "config": cfg}
    (run_dir / "quickstart.json").write_text(json.dumps(summary, indent=2) + "\n")
    mig_text = f"MIG {mig:.3f}, " if isinstance(mig, float) else ""
    say(f"dislab quickstart: done in {elapsed / 60:.1f} min ({mig_text}{status.get('step')} "
        f"steps of {cfg['model']}).\n  report: {index}\n  run:    {run_dir}")
    return index
