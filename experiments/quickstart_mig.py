"""How fast does each candidate quickstart setting disentangle dSprites? MIG against work.

Trains each setting (a method, architecture, batch size, learning rate, β, latent size) on the
procedural dSprites with :class:`dislab.train.Trainer` and scores MIG (disentanglement_lib's
histogram estimator, 10 000 points, :func:`dislab.metrics.evaluate`) every ``--eval-every``
images. Each row of the output records the step, the images seen, the wall seconds and the
**CPU seconds** spent training (evaluation excluded). Images seen and CPU seconds transfer to
another (e.g. unloaded) machine: on ``T`` idle cores a run gets about ``T`` CPU seconds per wall
second (less the threads' scaling loss), so the MIG reached after ``c`` CPU seconds here is the
MIG an idle 2-core machine reaches after roughly ``c / 1.7`` wall seconds.

Usage (one setting per ``--setting``; fields ``name:model:arch:batch:lr:beta:latent``)::

    python experiments/quickstart_mig.py --cpu-seconds 900 --seeds 0 \
        --setting tc_mlp256:beta_tcvae:mlp:256:1e-3:6:10 \
        --setting tc_conv64:beta_tcvae:conv:64:5e-4:6:10 --out /tmp/qs/mig

Writes ``<out>/<name>_s<seed>.jsonl`` (one line per evaluation) and prints a table; ``--plot``
draws MIG against images seen and CPU seconds from the JSONL files of ``--out``.
Several invocations may run side by side (``--threads 1`` each) to share a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: keys of a setting's ``key=value`` list that go to the pair sampler, not the method
PAIR_KEYS = ("rate", "edge", "changes")
#: keys renamed before they reach the method (Slow-VAE's Laplace rate is its ``rate``, which
#: would clash with the pair sampler's)
METHOD_ALIASES = {"lambda": "rate"}


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def parse_setting(text: str) -> dict:
    """``name:model:arch:batch:lr:hp:latent``; ``hp`` is β, or ``key=value[,key=value]``
    (hyper-parameters of the method; ``rate``/``edge``/``changes`` go to the pair sampler,
    ``lambda`` is Slow-VAE's Laplace rate)."""
    try:
        name, model, arch, batch, lr, hp, latent = text.split(":")
        if "=" in hp:
            hparams = {k: _value(v) for k, v in (kv.split("=", 1) for kv in hp.split(","))}
        else:
            hparams = {"beta": float(hp)}
        return {"name": name, "model": model, "arch": arch, "batch_size": int(batch),
                "lr": float(lr), "hparams": hparams, "latent_dim": int(latent)}
    except ValueError:
        raise SystemExit(f"bad --setting {text!r}; expected "
                         "name:model:arch:batch:lr:beta:latent (beta may be "
                         "key=value[,key=value], e.g. gamma=35)") from None


def mig_of(model, data, seed: int) -> dict:
    from dislab.metrics import evaluate, model_representation

    rep = model_representation(model)
    res = evaluate(rep, data, metrics=["mig"], seed=seed, cache=False)["mig"]
    model.train()
    return res


def run_one(setting: dict, seed: int, cpu_budget: float, eval_every: int, out: Path,
            threads: int) -> list[dict]:
    import torch

    from dislab.train import Trainer

    torch.set_num_threads(threads)
    cfg = {"model": setting["model"], "arch": setting["arch"], "batch_size": setting["batch_size"],
           "lr": setting["lr"], "latent_dim": setting["latent_dim"],
           "hparams": {METHOD_ALIASES.get(k, k): v for k, v in setting["hparams"].items()
                       if k not in PAIR_KEYS},
           "pair_options": {k: v for k, v in setting["hparams"].items() if k in PAIR_KEYS},
           "seed": seed, "steps": 10**9,
           "out": str(out / "unused"), "tensorboard": False, "threads": threads,
           "compile": False}
    tr = Trainer(cfg)
    path = out / f"{setting['name']}_s{seed}.jsonl"
    path.unlink(missing_ok=True)
    rows: list[dict] = []
    images = 0
    next_eval = eval_every
    cpu = wall = 0.0
    logs: dict = {}
    try:
        while cpu < cpu_budget:
            c0, w0 = time.process_time(), time.perf_counter()
            tr.train_step()
            if tr.step % 50 == 0:
                logs = tr.flush_window()  # NaN check, window means (recon, kl, ...)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            images += tr.images_per_batch
            if images >= next_eval or cpu >= cpu_budget:
                next_eval += eval_every
                t0 = time.perf_counter()
                res = mig_of(tr.model, tr.data, seed)
                row = {"setting": setting["name"], "seed": seed, "step": tr.step,
                       "images": images, "train_cpu_s": round(cpu, 1),
                       "train_wall_s": round(wall, 1), "eval_wall_s": round(
                           time.perf_counter() - t0, 1), "mig": res["discrete_mig"],
                       "recon": logs.get("recon"), "kl": logs.get("kl"),
                       **{k: v for k, v in res.items() if k != "discrete_mig"}, **setting}
                rows.append(row)
                with open(path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{setting['name']} s{seed} step {tr.step:6d} images {images:8d} "
                      f"cpu {cpu:7.0f}s wall {wall:7.0f}s recon {row['recon'] or 0:7.1f} "
                      f"MIG {row['mig']:.3f}", flush=True)
    finally:
        tr.close()
    return rows


def plot(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for p in sorted(out.glob("*.jsonl"))
            for line in p.read_text().splitlines() if line.strip()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["setting"], r["seed"]), []).append(r)
    for (name, seed), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["images"])
        for ax, key in zip(axes, ("images", "train_cpu_s")):
            ax.plot([r[key] for r in rs], [r["mig"] for r in rs], marker="o", ms=3,
                    label=f"{name} (seed {seed})")
    for ax, label in zip(axes, ("images seen", "training CPU seconds")):
        ax.set_xlabel(label)
        ax.set_ylabel("MIG (histogram, 10k points)")
        ax.axhline(0.2, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    path = out / "mig_vs_work.png"
    fig.savefig(path, dpi=130)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setting", action="append", default=[],
                    help="name:model:arch:batch:lr:beta:latent (repeatable)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--cpu-seconds", type=float, default=900.0,
                    help="training CPU-second budget per run (evaluation excluded)")
    ap.add_argument("--eval-every", type=int, default=50_000, help="images between MIG scores")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="experiments/out/quickstart_mig")
    ap.add_argument("--plot", action="store_true", help="only draw the plot of --out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plot:
        print(plot(out))
        return
    settings = [parse_setting(s) for s in args.setting] or [
        parse_setting("tc_mlp256:beta_tcvae:mlp:256:1e-3:6:10")]
    summary = []
    for s in settings:
        for seed in (int(x) for x in args.seeds.split(",")):
            rows = run_one(s, seed, args.cpu_seconds, args.eval_every, out, args.threads)
            best = max(rows, key=lambda r: r["mig"]) if rows else None
            if best:
                summary.append((s["name"], seed, rows[-1]["mig"], best["mig"], best["images"],
                                rows[-1]["train_cpu_s"]))
    print(f"{'setting':<16}{'seed':>5}{'final MIG':>10}{'best MIG':>10}{'at images':>11}"
          f"{'cpu s':>8}")
    for name, seed, final, best, at, cpu in summary:
        print(f"{name:<16}{seed:>5}{final:>10.3f}{best:>10.3f}{at:>11d}{cpu:>8.0f}")


if __name__ == "__main__":
    main()
