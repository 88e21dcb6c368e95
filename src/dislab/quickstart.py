"""``dislab quickstart``: a disentangled dSprites model, its metrics and its report, in minutes.

:func:`run` renders dSprites procedurally (no download), trains for a wall-clock budget,
evaluates the default metric suite and writes the HTML run report. The budget covers
everything: training gets what is left after a reserve for evaluation and the report, and its
number of steps is set from the measured speed (a short probe, then re-plans), so the run
ends on time on a slow laptop and early on a GPU (at :data:`MAX_STEPS`).

The defaults (:data:`QUICKSTART`) were chosen by experiment (``experiments/quickstart_mig.py``;
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

On a CPU with two or more cores it trains two seeds side by side, one process and one core
each, through the study's local backend (:func:`dislab.study.backends.run_in_pool`; two
1-thread runs process more images per second than one 2-thread run;
docs/quickstart.md has the figures), and keeps the one with the lower training loss on
held-out pairs (:func:`objective`; no labels): about one seed in five of this setting gets
stuck (docs/quickstart.md).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dislab.errors import DislabError

__all__ = ["QUICKSTART", "MAX_STEPS", "run", "plan_reserve", "default_runs", "objective"]

#: The quickstart's training config (fields of :class:`dislab.train.TrainConfig`).
QUICKSTART: dict[str, Any] = {
    "model": "slow_vae",
    "data": "dsprites",
    "arch": "conv",
    "latent_dim": 10,
    "batch_size": 64,  # images: 32 pairs per update (Slow-VAE's batch_size counts images)
    "lr": 5e-4,
    # the paper's β, γ, λ; one_change: the Laplace penalty once more on every latent's change
    # but the largest (the pairs change one factor, so one latent should change)
    # entropy_share=1: the exact KL in both directions (the reference's 0.5 was tried and
    # scored lower, docs/quickstart.md)
    "hparams": {"beta": 1.0, "gamma": 10.0, "rate": 6.0, "one_change": 1.0,
                "entropy_share": 1.0},
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

#: Training stops here even with time left: 1.6 M images at 64 per update, about what one of the
#: two CPU seeds gets in 30 minutes; on a GPU the default's MIG had levelled off by then
#: (experiments/quickstart_sweep.py; figures in docs/quickstart.md, "On a GPU").
MAX_STEPS = 25_000

#: Seconds of evaluation and report that do not depend on the model's speed: the default metric
#: suite on the dSprites codes plus the report's figures, used to reserve time before training
#: (sized for a 2-core CPU; the measured times are in docs/quickstart.md and docs/metrics.md).
METRICS_SECONDS = 200.0

_PROBE_STEPS = 30


def plan_reserve(num_images: int, encode_images_per_s: float) -> float:
    """Seconds to keep for evaluation + report: encode ``num_images`` + :data:`METRICS_SECONDS`."""
    return num_images / max(encode_images_per_s, 1.0) + METRICS_SECONDS


def _encode_speed(model: Any, data: Any, device: str) -> float:
    """Images per second of the evaluation's encoder path (:func:`encode_rows`) on up to
    4096 images, tracing included (so slightly pessimistic)."""
    import numpy as np

    from dislab.representation.encode import encode_rows

    index = np.arange(min(4096, len(data)))
    t0 = time.perf_counter()
    encode_rows(model, data, index, progress=False)
    return len(index) / max(time.perf_counter() - t0, 1e-6)


def _status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _cores() -> int:
    from dislab.study.plan import default_workers  # the usable cores

    return default_workers()


def default_runs(device: str = "auto") -> int:
    """Candidates trained side by side: 2 on a CPU with at least 2 cores (one process and
    one core each: together more images per second than one 2-thread run, and a
    second seed in case the first one gets stuck), else 1."""
    from dislab.train.loop import resolve_device

    return 2 if resolve_device(device).type == "cpu" and _cores() >= 2 else 1


def _fit_one(cfg: dict[str, Any], progress: bool) -> None:
    """Train ``cfg`` to its ``steps``, resuming its run folder if it holds one."""
    from dislab.train import fit

    fit(cfg, progress=progress, resume=(Path(cfg["out"]) / "config.json").exists())


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """This process's stdout and stderr (file descriptors 1 and 2, so warnings of C code
    too) appended to ``log`` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def _train_candidate(cfg: dict[str, Any], data_module: str, log: str) -> dict[str, Any]:
    """A candidate's job in the study's process pool: train ``cfg`` to its ``steps``, its
    output going to ``log``. A failure is returned (``error``), not raised, so the other
    candidates finish (as a study records a failed run and goes on)."""
    with _output_to(Path(log)):
        try:
            if data_module:
                importlib.import_module(data_module)  # a data set registered outside dislab
            _fit_one(cfg, progress=False)
        except Exception as e:  # noqa: BLE001 - recorded, reported by the parent
            traceback.print_exc()
            return {"out": cfg["out"], "error": f"{type(e).__name__}: {e}"}
    return {"out": cfg["out"], "error": None}


def _logged_step(run_dir: Path) -> int:
    """The step of the last line of ``history.jsonl`` (0 if none yet)."""
    try:
        with open(run_dir / "history.jsonl", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def _fit_all(cfgs: list[dict[str, Any]], target: int, progress: bool) -> None:
    """Train every candidate to step ``target``: in this process when there is one, else
    side by side through the study's local backend (:func:`dislab.study.backends.run_in_pool`:
    one spawned process per candidate, each on ``cfg["threads"]`` threads), with a progress
    bar of their summed steps."""
    if len(cfgs) == 1:
        _fit_one({**cfgs[0], "steps": target}, progress)
        return
    import dislab.data as dd
    from dislab.study.backends import run_in_pool

    module = getattr(dd.base._REGISTRY.get(str(cfgs[0]["data"]).lower()), "__module__", None)
    module = module if module and not module.startswith("dislab.") else ""
    dirs = [Path(c["out"]) for c in cfgs]
    start = [int(_status(d).get("step", 0)) for d in dirs]
    todo = [c for c, s0 in zip(cfgs, start) if s0 < target]
    if not todo:
        return
    logs = {c["out"]: Path(str(c["out"]) + ".log") for c in todo}
    for log in logs.values():
        log.parent.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(target - s0 for s0 in start), unit="step", smoothing=0.1,
                   desc=f"training {len(todo)} seeds side by side")

    def show_progress() -> None:
        if bar is not None:
            bar.update(sum(max(s0, _logged_step(d)) for d, s0 in zip(dirs, start))
                       - sum(start) - bar.n)

    try:
        # Ctrl-C reaches the candidates too; any other error stops them the same way (each
        # saves a checkpoint), waiting up to a minute for them
        results = run_in_pool(
            _train_candidate,
            [({**c, "steps": target}, module, str(logs[c["out"]])) for c in todo],
            workers=len(todo), threads=int(todo[0].get("threads") or 1),
            name=lambda args: f"the candidate {args[0]['out']}", on_wait=show_progress,
            grace=60.0, hint=f" (the logs: {', '.join(str(p) for p in logs.values())})")
    finally:
        if bar is not None:
            bar.close()
    for r in sorted(results, key=lambda r: [c["out"] for c in todo].index(r["out"])):
        if r["error"] is not None:
            log = logs[r["out"]]
            why = _status(Path(r["out"])).get("error") or r["error"]
            raise DislabError(f"training the candidate {r['out']} failed: {why} (its log: "
                              f"{log}). The other candidates' runs are kept; run the same "
                              "command again to resume.")


#: Held-out pairs on which :func:`objective` compares the candidates.
OBJECTIVE_PAIRS = 2048


def objective(run_dir: str | os.PathLike[str], data: Any, pairs: int = OBJECTIVE_PAIRS,
              seed: int = 12345) -> float:
    """The run's training loss (its own objective, no labels) on ``pairs`` held-out pairs
    (methods on pairs) or ``2 x pairs`` images, the same draws for every run given ``seed``:
    lower is better. Used to pick among the quickstart's candidates."""
    import numpy as np
    import torch

    from dislab.data.pairs import sample_pairs
    from dislab.train import load_run
    from dislab.train.loop import pair_batch_settings

    model, cfg = load_run(run_dir)
    model.eval()
    options = pair_batch_settings(type(model), cfg)[1]  # the run's own pair sampler
    rng = np.random.default_rng(seed)
    step = int(_status(Path(run_dir)).get("step", 0))  # for step-dependent weights (warm-ups)
    total, count = 0.0, 0
    with torch.no_grad():
        state = torch.get_rng_state()
        torch.manual_seed(seed)  # the same posterior samples for every run
        try:
            for s in range(0, pairs, 256):
                n = min(256, pairs - s)
                if getattr(model, "batch_kind", "single") == "pairs":
                    x = torch.from_numpy(sample_pairs(data, n, rng, **options)[1])
                else:
                    idx = data.sample_index(2 * n, rng)
                    x = torch.from_numpy(data.images_from_index(idx))
                loss, _ = model.loss(x, step)
                total += float(loss) * n
                count += n
        finally:
            torch.set_rng_state(state)
    value = total / max(count, 1)
    if not math.isfinite(value):
        return math.inf
    return value


def _redirect(out: Path, index: Path) -> Path:
    """``out/index.html``: a page that opens the chosen candidate's report."""
    rel = os.path.relpath(index, out).replace(os.sep, "/")
    page = out / "index.html"
    page.write_text(
        "<!doctype html><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"refresh\" content=\"0; url={rel}\">"
        f"<title>dislab quickstart</title><p>The report is <a href=\"{rel}\">{rel}</a>.\n")
    return page


def run(
    out: str | os.PathLike[str] = "quickstart",
    minutes: float = 30.0,
    seed: int = 0,
    device: str = "auto",
    steps: int | None = None,
    metrics: str | list[str] | None = None,
    progress: bool = True,
    max_steps: int = MAX_STEPS,
    runs: int | None = None,
    **overrides: Any,
) -> Path:
    """Train, evaluate and report within ``minutes``; return the report's ``index.html``.

    ``out``: the quickstart folder (an interrupted quickstart in the same folder is resumed).
    ``runs``: candidates trained side by side with seeds ``seed, seed + 1, ...``, one process
    each (default :func:`default_runs`: 2 on a multi-core CPU, 1 on a GPU). The processes are
    spawned as a study's workers are, so a script that calls this with ``runs > 1`` needs the
    usual ``if __name__ == "__main__":`` guard. With one, ``out``
    is the run folder; with more, each candidate is ``out/seed_<s>``, and the one with the
    lowest :func:`objective` (its training loss on held-out pairs: no labels) is evaluated and
    reported. Either way ``out/index.html`` opens the report.
    ``steps``: a fixed number of steps instead of the time budget (smoke tests).
    ``metrics``: metric names, ``"all"`` or ``None`` (the default suite). ``overrides``:
    other :class:`~dislab.train.TrainConfig` fields (e.g. ``model="beta_tcvae"``,
    ``data="shapes3d"``, ``latent_dim=6``) replacing :data:`QUICKSTART`'s (another ``model``
    starts from its own defaults and :data:`OTHER_METHODS`).
    """
    from dislab import tiny
    from dislab.metrics import evaluate_run
    from dislab.train import TrainConfig, Trainer
    from dislab.viz.run_report import build_report

    t_start = time.perf_counter()
    if steps is None and tiny.enabled():  # DISLAB_TINY: fixed toy steps, not the time budget
        steps = tiny.STEPS
    if minutes <= 0:
        raise DislabError(f"--minutes must be positive, got {minutes}.")
    out_dir = Path(out)
    if (out_dir / "config.json").exists():
        runs = 1  # a single-run quickstart folder from before: resume it as it is
    elif runs is None:
        runs = default_runs(device)
    if int(runs) < 1:
        raise DislabError(f"--runs must be at least 1, got {runs}.")
    runs = int(runs)
    cfg = dict(QUICKSTART)
    model = overrides.get("model", QUICKSTART["model"])
    if model != QUICKSTART["model"]:  # another method: its own defaults, not Slow-VAE's
        cfg.pop("hparams")
        cfg.pop("pair_options")
        cfg.update(OTHER_METHODS.get(model, {}))
    cfg.update(seed=int(seed), device=device, out=str(out_dir), log_every=50,
               checkpoint_every=2000, image_every=0)
    cfg.update(overrides)
    if runs > 1 and not cfg.get("threads"):
        cfg["threads"] = max(1, _cores() // runs)  # one core each
    cfg = TrainConfig.from_dict(cfg).to_dict()
    seeds = [int(seed) + i for i in range(runs)]
    dirs = [out_dir] if runs == 1 else [out_dir / f"seed_{s}" for s in seeds]
    cfgs = [{**cfg, "seed": s, "out": str(d)} for s, d in zip(seeds, dirs)]
    deadline = t_start + 60.0 * minutes
    say = print if progress else (lambda *a, **k: None)

    def step_of() -> int:
        return min(int(_status(d).get("step", 0)) for d in dirs)

    finished = all(_status(d).get("status") == "done" and (d / "model.safetensors").exists()
                   for d in dirs)
    if finished and steps is None:
        say(f"dislab quickstart: {out_dir} already holds a finished run; evaluating/reporting it.")
    elif steps is not None:
        _fit_all(cfgs, int(steps), progress)
    else:
        # 1. probe the speed (also the first steps of the run) and the encoder's speed
        done = step_of()
        trained = [float(_status(d).get("train_seconds") or 0.0) for d in dirs]
        t0 = time.perf_counter()
        _fit_all(cfgs, done + _PROBE_STEPS, progress=False)
        wall = time.perf_counter() - t0
        if runs > 1:  # process start-up is paid once per chunk, not per step
            wall = max(float(_status(d).get("train_seconds") or 0.0) - t
                       for d, t in zip(dirs, trained)) or wall
        rate = _PROBE_STEPS / max(wall, 1e-6)  # steps/s of each candidate
        trainer = Trainer({**cfgs[0], "steps": 1, "tensorboard": False, "threads": None})
        data = trainer.data
        enc = _encode_speed(trainer.model.eval(), data, device)
        per_step = trainer.images_per_batch * runs  # 2 x batch_size for pair methods
        trainer.close()
        reserve = plan_reserve(len(data), enc) + (60.0 if runs > 1 else 0.0)
        # 2. train to the time left in chunks, each re-planned from the speed just measured
        #    (the machine's load may change), the last ones to the full remaining time
        for share in (0.5, 0.8, 1.0, 1.0):
            now = time.perf_counter()
            left = deadline - reserve - now
            step = step_of()
            target = min(max_steps, step + int(max(0.0, left) * rate * share))
            if target <= step or (share == 1.0 and target - step < _PROBE_STEPS
                                  and step > _PROBE_STEPS):
                break
            what = f"{runs} seeds side by side, " if runs > 1 else ""
            say(f"dislab quickstart: training to step {target} ({what}{rate * per_step:.0f} "
                f"images/s; {left / 60:.1f} min for training, {reserve / 60:.1f} min kept for "
                "evaluation and report)")
            t1 = time.perf_counter()
            _fit_all(cfgs, target, progress)
            rate = (target - step) / max(time.perf_counter() - t1, 1e-6)
            if target >= max_steps:
                break
    for d in dirs:
        status = _status(d)
        if status.get("status") != "done":
            raise DislabError(f"training in {d} did not finish (status "
                              f"{status.get('status')!r}); run the same command again to "
                              "resume.")
    candidates: list[dict[str, Any]] = []
    chosen = dirs[0]
    if runs > 1:
        from dislab.representation import run_data

        say("dislab quickstart: choosing the seed with the lowest loss on held-out pairs ...")
        data, _ = run_data(TrainConfig.from_dict(cfgs[0]))
        pairs = tiny.OBJECTIVE_PAIRS if tiny.enabled() else OBJECTIVE_PAIRS
        for s, d in zip(seeds, dirs):
            candidates.append({"seed": s, "run": str(d),
                               "objective": objective(d, data, pairs=pairs),
                               "steps": _status(d).get("step")})
        best = min(range(runs), key=lambda i: candidates[i]["objective"])
        chosen = dirs[best]
        say("  " + ", ".join(f"seed {c['seed']}: {c['objective']:.1f}" for c in candidates)
            + f" -> seed {seeds[best]}")
    status = _status(chosen)
    say("dislab quickstart: evaluating the default metrics ...")
    record = evaluate_run(chosen, metrics=metrics, seed=seed, device=device, progress=progress)
    say("dislab quickstart: writing the report ...")
    index = build_report(chosen, evaluate=False, seed=seed, progress=progress)
    _redirect(out_dir, index)
    elapsed = time.perf_counter() - t_start
    mig = record.get("metrics", {}).get("mig", {}).get("values", {}).get("discrete_mig")
    summary = {"minutes_budget": minutes, "seconds_total": round(elapsed, 1),
               "steps": status.get("step"), "train_seconds": status.get("train_seconds"),
               "mig": mig, "report": str(index), "run": str(chosen),
               "candidates": candidates, "config": cfgs[dirs.index(chosen)]}
    from dislab.io import write_json

    write_json(out_dir / "quickstart.json", summary, indent=2)
    mig_text = f"MIG {mig:.3f}, " if isinstance(mig, float) else ""
    say(f"dislab quickstart: done in {elapsed / 60:.1f} min ({mig_text}{status.get('step')} "
        f"steps of {cfg['model']}).\n  report: {index}\n  run:    {chosen}")
    return index

