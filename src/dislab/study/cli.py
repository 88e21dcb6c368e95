"""``dislab study plan | run | collect | report``: sweeps from a laptop to Ray or Slurm."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

_SPEC_HELP = ("a study spec YAML file or a built-in preset name (presets: see `dislab study "
              "plan --list`; format: docs/studies.md)")


def _add_scaling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per run (overrides the spec's steps, e.g. 2000 for a "
                        "laptop)")
    p.add_argument("--seeds", type=int, default=None,
                   help="use only seeds 0..N-1 (overrides the spec's seeds)")
    p.add_argument("--data", default=None,
                   help="comma-separated data sets to keep (labels of the spec) or to use "
                        "instead, e.g. --data dsprites")
    p.add_argument("--workers", type=int, default=None,
                   help="runs in parallel (default: the number of usable cores)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default: cores // workers, at least 1)")


def _load(args: argparse.Namespace) -> Any:
    from dislab.study.spec import load_spec

    spec = load_spec(args.spec)
    data = args.data.split(",") if args.data else None
    return spec.scaled(steps=args.steps, seeds=args.seeds, data=data)


def _plan(args: argparse.Namespace) -> int:
    from dislab.errors import DislabError
    from dislab.study.plan import default_workers, estimate, expand, format_seconds
    from dislab.study.spec import check_data_names, presets

    if args.list:
        for name, path in presets().items():
            print(f"{name}\t{path}")
        return 0
    if not args.spec:
        print("dislab study plan: give a SPEC (file or preset name), or --list", file=sys.stderr)
        return 2
    spec = _load(args)
    check_data_names(spec)  # what `study run` checks before it starts
    if args.workers is not None and args.workers < 1:
        raise DislabError(f"--workers must be >= 1, not {args.workers}.")
    if args.threads is not None and args.threads < 1:
        raise DislabError(f"--threads must be >= 1, not {args.threads}.")
    runs = expand(spec)
    cores = default_workers()
    workers = args.workers or cores
    threads = args.threads or max(1, cores // workers)
    print(f"study {spec.name}: {len(runs)} runs = {len(spec.data)} data set(s) × "
          f"{sum(len(m.points) for m in spec.methods)} method configs × {len(spec.seeds)} "
          f"seed(s); {spec.steps} steps each, batch {spec.batch_size}, latent {spec.latent_dim}")
    print(f"  data: {', '.join(d.label for d in spec.data)}")
    for m in spec.methods:
        print(f"  {m.name}: {len(m.points)} point(s): "
              + "; ".join(", ".join(f"{k}={v}" for k, v in p.items()) or "defaults"
                          for p in m.points))
    print(f"  metrics: {', '.join(spec.metrics) if spec.metrics else 'all'}; seeds "
          f"{spec.seeds[0]}..{spec.seeds[-1]}")
    from dislab.study.packs import auto_pack, parse_pack

    pack = parse_pack(args.pack)
    if pack == "auto":
        pack = auto_pack(runs)
    est = estimate(runs, workers=workers, threads=threads, measure=not args.no_measure,
                   pack=pack if isinstance(pack, int) and pack > 1 else None)
    how = ("training step measured here (3 steps per method on random images)"
           if est["source"] == "measured" else
           "documented constant seconds per step (dislab.study.plan.SECONDS_PER_STEP_FALLBACK)")
    per_step = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in est["per_step"].items())
    print(f"estimated time on this machine with {workers} worker(s) × {threads} thread(s): "
          f"{format_seconds(est['seconds'])}")
    print(f"  ({how}: {per_step}; plus {est['eval_seconds_per_run']:.0f} s evaluation per run "
          "for these metrics, from per-metric and encoding times measured on a 2-core CPU: "
          "dislab.study.plan.METRIC_SECONDS)")
    if "pack_per_step" in est:
        per_pack = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in est["pack_per_step"].items())
        print(f"  packed: {est['tasks']} task(s) (packs of at most {pack} runs); a pack's step "
              f"estimated as one model's step on K × {spec.batch_size} images: {per_pack}")
    if args.list_runs:
        for r in runs:
            print(r["run_id"])
    return 0


def _run(args: argparse.Namespace) -> int:
    from dislab.study.driver import run_study

    spec = _load(args)
    from dislab.train import tracking

    study_tracking = tracking.overrides_from_args(args)
    if study_tracking:  # reaches the runs' training configs without changing their ids
        os.environ[tracking.STUDY_ENV] = json.dumps(study_tracking)
    slurm = None
    if args.backend == "slurm":
        slurm = {"partition": args.slurm_partition, "time_min": args.slurm_time,
                 "mem_gb": args.slurm_mem, "account": args.slurm_account,
                 "qos": args.slurm_qos, "setup": args.slurm_setup,
                 "executor": "local" if args.slurm_local else "slurm"}
    gpus = args.slurm_gpus if args.backend == "slurm" and args.slurm_gpus else args.gpus
    summary = run_study(spec, args.out, backend=args.backend, workers=args.workers,
                        threads=args.threads, address=args.address, gpus=gpus,
                        run_fn=args.run_fn,
                        retry_failed=args.retry_failed, slurm=slurm, pack=args.pack)
    return 1 if summary["failed"] else 0


def _collect(args: argparse.Namespace) -> int:
    from dislab.study.collect import collect, write_table

    path = write_table(args.dir, args.out)
    frame = collect(args.dir)
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    print(f"{path}: {len(frame)} runs ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
          f"{frame.shape[1]} columns")
    return 0


def _report(args: argparse.Namespace) -> int:
    from dislab.viz.study_report import write_report

    out = Path(args.out) if args.out else Path(args.dir) / "report.html"
    path = write_report(args.dir, out)
    print(f"report: {path} (figures in {path.parent / (path.stem + '_files')})")
    return 0


def register(subparsers: Any) -> None:
    """Add ``dislab study ...`` to the dislab command line."""
    study = subparsers.add_parser(
        "study", help="plan, run, collect and report sweeps (methods × hparams × seeds × data)",
        description="Studies in the style of Locatello et al. 2019: a YAML spec names data "
                    "sets, methods with hyper-parameter grids, seeds, steps and metrics; every "
                    "run trains and evaluates one model in its own folder.")
    sub = study.add_subparsers(dest="study_command", metavar="SUBCOMMAND")
    study.set_defaults(func=lambda a: (study.print_help(), 0)[1])

    p = sub.add_parser("plan", help="count the runs of a spec and estimate the time",
                       description="Print the runs a spec expands to and an estimate of the "
                                   "time they take on this machine.")
    p.add_argument("spec", nargs="?", help=_SPEC_HELP)
    _add_scaling(p)
    p.add_argument("--list", action="store_true", help="list the built-in presets")
    p.add_argument("--list-runs", action="store_true", help="print every run id")
    p.add_argument("--no-measure", action="store_true",
                   help="use the documented seconds-per-step constant instead of measuring")
    p.add_argument("--pack", default=None, metavar="auto|K",
                   help="estimate for runs trained in packs of at most K (see study run)")
    p.set_defaults(func=_plan)

    p = sub.add_parser(
        "run", help="train and evaluate every run of a spec (resumable)",
        description="Train and evaluate every run of SPEC into DIR/runs/<run_id>/. Re-running "
                    "the same command skips finished runs and resumes unfinished ones; a failing "
                    "run is recorded (status.json) and the others go on. The table "
                    "DIR/results.parquet is written at the end.")
    p.add_argument("spec", help=_SPEC_HELP)
    p.add_argument("--out", required=True, help="study folder (created; reuse it to resume)")
    p.add_argument("--backend", choices=["local", "ray", "slurm"], default="local",
                   help="local: a process pool on this machine (default); ray: Ray tasks "
                        "(install with pip install 'dislab[ray]'); slurm: one Slurm job "
                        "array, one task per run (pip install 'dislab[slurm]'; --out on a "
                        "file system the nodes see)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (e.g. auto, ray://head:10001); default: start a "
                        "local Ray. On a cluster, --out must be on a shared file system.")
    p.add_argument("--gpus", type=float, default=0.0,
                   help="Ray: GPUs per run (e.g. 0.25 = four runs share a GPU); Slurm: GPUs "
                        "per task (whole number)")
    g = p.add_argument_group("Slurm (--backend slurm)", "resources of each array task; "
                             "--threads is its CPUs, --workers how many run at once")
    g.add_argument("--slurm-partition", default=None, help="partition (sbatch --partition)")
    g.add_argument("--slurm-time", type=int, default=240,
                   help="time limit per run in minutes (default 240); a run stopped by it "
                        "resumes from its checkpoint when the command is re-run")
    g.add_argument("--slurm-gpus", type=int, default=None,
                   help="GPUs per task (same as --gpus)")
    g.add_argument("--slurm-mem", type=float, default=None, help="memory per task in GB")
    g.add_argument("--slurm-account", default=None, help="account (sbatch --account)")
    g.add_argument("--slurm-qos", default=None, help="QOS (sbatch --qos)")
    g.add_argument("--slurm-setup", action="append", default=[], metavar="LINE",
                   help="shell line run before each task, e.g. 'module load cuda' or "
                        "'source ~/venv/bin/activate' (repeatable)")
    g.add_argument("--slurm-local", action="store_true",
                   help="run the job array through submitit's local executor on this machine "
                        "instead of Slurm (to try a set-up)")
    _add_scaling(p)
    p.add_argument("--pack", default=None, metavar="auto|K",
                   help="train compatible runs (same method, data, batch, steps; any seeds "
                        "and hyper-parameters) together, at most K per pack, one task each: "
                        "one GPU per pack locally, num_gpus=1 per pack on Ray. auto: 1 on "
                        "CPU, as many as fit in GPU memory on CUDA (at most 64)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed runs again (default: keep their recorded error)")
    from dislab.train import tracking

    tracking.add_arguments(p)
    p.add_argument("--run-fn", default="dislab.study.runner:train_and_evaluate",
                   help="advanced: 'module:function' doing one run (default: train then "
                        "evaluate; dislab.study.fake:fake_run tries the machinery in seconds)")
    p.set_defaults(func=_run)

    p = sub.add_parser("collect", help="build the results table (Parquet) of a study folder",
                       description="One row per run: config fields, hyper-parameters, every "
                                   "metric value, training time, final losses, status, error.")
    p.add_argument("dir", help="the study folder (--out of `dislab study run`)")
    p.add_argument("--out", default=None, help="table path (default DIR/results.parquet)")
    p.set_defaults(func=_collect)

    p = sub.add_parser("report", help="write the HTML report with the study's analyses",
                       description="Rank correlations between metrics, metric distributions "
                                   "per method and hyper-parameter, seed vs hyper-parameter "
                                   "variance, TC of sampled vs mean codes, downstream accuracy "
                                   "and sample efficiency, reconstruction trade-off, TC vs MIG.")
    p.add_argument("dir", help="the study folder (--out of `dislab study run`)")
    p.add_argument("--out", default=None, help="HTML path (default DIR/report.html); the PNG "
                                               "figures go to <name>_files/ beside it")
    p.set_defaults(func=_report)
