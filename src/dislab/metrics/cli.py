"""``dislab evaluate`` and ``dislab metrics``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dislab.errors import DislabError

__all__ = ["register"]


def _parse_params(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``metric.param=value`` (value parsed as JSON, else kept as a string)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        metric, dot, param = key.partition(".")
        if not sep or not dot or not metric or not param:
            raise DislabError(f"--param {item!r}: write METRIC.PARAM=VALUE, e.g. "
                              "dci.num_train=1000.")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(metric, {})[param] = value
    return out


def _evaluate(args: argparse.Namespace) -> int:
    if len(args.run_dir) > 1:
        return _evaluate_many(args)
    from dislab.metrics.suite import evaluate_run

    record = evaluate_run(
        args.run_dir[0],
        metrics=args.metrics,
        seed=args.seed,
        data=args.data,
        data_path=args.path,
        device=args.device,
        params=_parse_params(args.param),
        progress=not args.quiet,
        reencode=args.reencode,
        batch_size=args.batch_size,
        compat=args.compat,
    )
    _print_record(record)
    return 0


def _evaluate_many(args: argparse.Namespace) -> int:
    """Several runs: one vectorised encoding pass, suites in parallel (dislab.metrics.many)."""
    from dislab.metrics.many import evaluate_runs

    if args.data or args.path or args.batch_size != 128:
        raise DislabError("--data, --path and --batch-size are for one RUN_DIR; several runs "
                          "are scored on their own data sets (give one RUN_DIR to change it).")
    out = evaluate_runs(args.run_dir, metrics=args.metrics, seed=args.seed,
                        params=_parse_params(args.param), compat=args.compat,
                        device=args.device, pack=args.pack, workers=args.workers,
                        progress=not args.quiet, reencode=args.reencode, errors="return")
    failed = 0
    for run_dir, record in zip(args.run_dir, out):
        print(f"== {run_dir}")
        if isinstance(record, BaseException):
            failed += 1
            print(f"failed: {record}")
            continue
        _print_record(record)
    if failed:
        print(f"{failed} of {len(out)} runs could not be scored (see above)")
    return 1 if failed else 0


def _print_record(record: dict[str, Any]) -> None:
    for name, r in record["metrics"].items():
        values = r.get("values", {})
        shown = {k: v for k, v in values.items() if not k[:1].isdigit() or "mean_test" in k}
        text = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in list(shown.items())[:6])
        print(f"{name:32s} {r.get('seconds', 0.0):7.1f}s  {text}")
    for name, why in record["skipped"].items():
        print(f"{name:32s} skipped: {why}")
    print(f"compat mode: {record['compat']}")
    codes = record["codes"]
    print(f"wrote {record['run_dir']}/metrics.json (total {record['total_seconds']:.1f}s, "
          f"codes: {codes.get('rows_encoded', 0):,} encoded, {codes.get('rows_reused', 0):,} "
          f"reused of {codes.get('grid_points', 0):,})")
    if "run_status" in record:
        rs = record["run_status"]
        print(f"note: this run {rs.get('status')} (step {rs.get('step')}); the scores are of "
              "its last saved weights (recorded in metrics.json as run_status)")


def _list(args: argparse.Namespace) -> int:
    from dislab.metrics.registry import available, get_metric

    for name in available():
        spec = get_metric(name)
        flags = []
        if spec.default:
            flags.append("default")
        if spec.needs_posterior:
            flags.append("needs q(z|x)")
        print(f"{name}  [{', '.join(flags) or 'opt-in'}]")
        if spec.description:
            print(f"    {spec.description}")
        role = "" if spec.disentanglement else "; not a disentanglement score"
        print(f"    headline: {spec.headline} ({spec.label}; {spec.kind.describe()}{role})")
        params = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items())
        print(f"    defaults: {params}")
    # a score of several runs, not of one representation: not in the registry
    print("udr  [across runs: `dislab analyze udr RUN_DIR...`]\n"
          "    Unsupervised disentanglement ranking (Duan et al. 2020), dislab.metrics.udr.\n"
          "    defaults: num_data_points=1000, correlation='lasso', kl_filter_threshold=0.01")
    return 0


def register(subparsers: Any) -> None:
    """Add ``evaluate`` and ``metrics`` to the ``dislab`` command line."""
    from dislab.representation.many import DEFAULT_PACK_CPU, DEFAULT_PACK_CUDA

    p = subparsers.add_parser(
        "evaluate",
        help="score a training run with disentanglement metrics (writes metrics.json)",
        description="Encode the grid points the metrics look at (kept in RUN_DIR/codes.npz, "
        "which later evaluations reuse and extend), run the metrics and write "
        "RUN_DIR/metrics.json with every value, the parameters, seed, time and dislab version. "
        "Results of other metrics already in metrics.json are kept.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="+",
                   help="a folder written by `dislab train`; several are scored together: "
                   "their grids encoded in one vectorised pass per data set and "
                   "architecture, their metric suites in parallel processes")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names, 'all', or omitted for the default "
                   "suite (`dislab metrics` lists them)")
    p.add_argument("--data", default=None, metavar="NAME",
                   help="score on this data set instead of the run's own (`dislab data list`)")
    p.add_argument("--path", default=None, metavar="FILE",
                   help="official data file (of --data, or of the run's data set); omitted: the "
                   "run's own file, or rendered procedurally for --data")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    p.add_argument("--param", action="append", metavar="METRIC.PARAM=VALUE",
                   help="override a metric parameter, e.g. dci.num_train=1000 "
                   "(repeatable; VALUE is JSON)")
    p.add_argument("--compat", choices=["default", "dlib"], default="default",
                   help="settings mode: 'default' (dislab's), or 'dlib' = the numbers as "
                   "disentanglement_lib's 2019 study made them (scikit-learn 0.20-era "
                   "classifiers, scikit-learn's own gradient boosting); recorded in "
                   "metrics.json. docs/fidelity.md lists every difference")
    p.add_argument("--device", default="auto", help="device to encode on (default auto)")
    p.add_argument("--batch-size", type=int, default=128,
                   help="images per encoder batch (default 128)")
    p.add_argument("--reencode", action="store_true",
                   help="encode afresh even if codes.npz matches the weights and data")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--workers", type=int, default=None,
                   help="several RUN_DIRs: metric suites run at once in separate processes "
                   "(default: the usable cores)")
    p.add_argument("--pack", type=int, default=None,
                   help="several RUN_DIRs: models encoded together per pass (default "
                   f"{DEFAULT_PACK_CUDA} on CUDA, {DEFAULT_PACK_CPU} on CPU)")
    p.set_defaults(func=_evaluate)

    q = subparsers.add_parser(
        "metrics",
        help="list the metrics with their defaults",
        description="List every registered metric: whether it runs by default, whether it "
        "needs the posterior q(z|x), its headline value (the one reports show) and its "
        "default parameters (published defaults).",
    )
    q.set_defaults(func=_list)
