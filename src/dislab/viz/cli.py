"""``dislab report``, ``dislab traverse`` and ``dislab analyze …`` (thin over dislab.viz)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def _report(args: argparse.Namespace) -> int:
    from dislab.viz.run_report import _check_run, build_report

    for run in args.run_dir:
        _check_run(run)
    for run in args.run_dir:
        path = build_report(run, out=args.out if len(args.run_dir) == 1 else None,
                            evaluate=not args.no_evaluate, metrics=args.metrics,
                            seed=args.seed, limit=args.range, n_steps=args.steps,
                            progress=not args.quiet)
        print(f"report: {path}")
    return 0


def _traverse(args: argparse.Namespace) -> int:
    from dislab.viz.run_report import traverse

    path = traverse(args.run_dir, latents=args.latents, limit=args.range, n_steps=args.steps,
                    out=args.out, gif=args.gif, index=args.index, seed=args.seed,
                    scale=args.scale, labels=not args.no_labels)
    print(f"traversal: {path}")
    return 0


def _print_table(df: Any, columns: list[str]) -> None:
    import pandas as pd

    with pd.option_context("display.max_columns", None, "display.width", 160,
                           "display.max_colwidth", 40, "display.float_format", "{:.3f}".format):
        print(df[[c for c in columns if c in df.columns]].to_string(index=False))


def _effective(args: argparse.Namespace) -> int:
    from dislab.viz.analyze import analyze_effective_factors

    df = analyze_effective_factors(args.run_dir, out=args.out, threshold=args.threshold,
                                   progress=not args.quiet)
    _print_table(df, ["group", "latent_dim", "seed", "active", "effective",
                      "total_informativeness", "run"])
    print(f"table and plots: {args.out}/effective_factors.csv, effective_factors.png, "
          "informativeness_profiles.png")
    return 0


def _order(args: argparse.Namespace) -> int:
    from dislab.viz.analyze import analyze_latent_order

    df = analyze_latent_order(args.run_dir, out=args.out, top_k=args.top_k,
                              progress=not args.quiet)
    _print_table(df, ["group", "latent_dim", "seed", "spearman", "top_overlap",
                      "top_factors_info", "consistent_info", "consistent_var", "run"])
    print(f"table and plot: {args.out}/latent_order.csv, latent_order.png")
    return 0


def _udr(args: argparse.Namespace) -> int:
    from dislab.viz.analyze import analyze_udr

    df = analyze_udr(args.run_dir, out=args.out, num_data_points=args.num_data_points,
                     correlation=args.correlation, by=args.by, seed=args.seed,
                     write=not args.no_write, progress=not args.quiet)
    _print_table(df, ["group", "seed", "num_models", "udr", "run"])
    print(f"table: {args.out}/udr.csv")
    return 0


def register(subparsers: Any) -> None:
    """Add ``report``, ``traverse`` and ``analyze`` to the ``dislab`` command."""
    p = subparsers.add_parser(
        "report", help="HTML report of a trained run (reconstructions, traversals, metrics)",
        description="Write RUN_DIR/report/index.html (self-contained) and its figures: "
        "reconstructions; latent traversals (grid and GIF) with the latents ordered by "
        "informativeness I(x, z_i) (Do & Tran 2020) and labelled with the factor they align "
        "with; a table of each latent's informativeness, mean KL and aligned factor; the "
        "latent x factor mutual-information heat map; every metric of metrics.json with what "
        "it measures; the training curves. Runs the default metric suite first when the run "
        "has no metrics.json (disable with --no-evaluate).",
    )
    p.add_argument("run_dir", nargs="+", help="run folder(s) written by `dislab train`")
    p.add_argument("--out", help="report folder (default RUN_DIR/report; one run only)")
    p.add_argument("--no-evaluate", action="store_true",
                   help="do not run metrics when metrics.json is missing")
    p.add_argument("--metrics", default=None,
                   help="metrics to run when metrics.json is missing: names 'a,b', 'all' "
                   "(default: the default suite)")
    p.add_argument("--seed", type=int, default=0, help="seed of metrics and example images")
    p.add_argument("--range", type=float, default=2.5,
                   help="traversal range: latent values in [-R, R] (default 2.5)")
    p.add_argument("--steps", type=int, default=10, help="traversal columns (default 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_report)

    p = subparsers.add_parser(
        "traverse", help="latent traversal image (or GIF) of a trained run",
        description="Decode one image's posterior mean with chosen latents swept over "
        "[-RANGE, RANGE]: one row per latent, --steps columns (PNG), or an animation with "
        "one column per latent (--gif). Example: dislab traverse runs/b4 --latents 0,3 "
        "--range 2.5",
    )
    p.add_argument("run_dir", help="run folder written by `dislab train`")
    p.add_argument("--latents", default="all",
                   help="comma-separated latent indices, 'all' (default, index order) or "
                   "'info' (all, by decreasing informativeness)")
    p.add_argument("--range", type=float, default=2.5, help="sweep [-R, R] (default 2.5)")
    p.add_argument("--steps", type=int, default=10, help="values per latent (default 10)")
    p.add_argument("--out", help="output file (default RUN_DIR/traversal.png or .gif)")
    p.add_argument("--gif", action="store_true", help="write an animated GIF")
    p.add_argument("--index", type=int, default=None,
                   help="grid index of the image to traverse (default: drawn with --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed that picks the image")
    p.add_argument("--scale", type=int, default=1, help="integer pixel scale-up (default 1)")
    p.add_argument("--no-labels", action="store_true",
                   help="PNG without the margin naming each row's latent and each column's "
                   "value")
    p.set_defaults(func=_traverse)

    p = subparsers.add_parser(
        "analyze", help="analyses across runs: effective factors, latent order (Do & Tran 2020), "
        "UDR (Duan et al. 2020)",
        description="Analyses of informativeness across trained runs.",
    )
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    q = sub.add_parser(
        "effective-factors", help="how many latents carry information, against latent size",
        description="For each run: the number of latents with informativeness I(x, z_i) above "
        "--threshold nats, and the threshold-free effective number exp(H(rho)) with "
        "rho_i = I(x, z_i) / sum_j I(x, z_j) (equals m when m latents share the information "
        "equally). Train the same method with several --latent-dim values (and seeds) to see "
        "whether the count saturates near the number of factors as the latent size grows. "
        "Writes OUT/effective_factors.csv/.parquet, effective_factors.png, "
        "informativeness_profiles.png and prints the table.",
    )
    q.add_argument("run_dir", nargs="+", help="run folders")
    q.add_argument("--out", default="analysis", help="output folder (default ./analysis)")
    q.add_argument("--threshold", type=float, default=0.1,
                   help="informativeness threshold in nats (default 0.1)")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=_effective)
    q = sub.add_parser(
        "latent-order", help="order latents by informativeness vs posterior-mean variance",
        description="Per run: Spearman correlation between each latent's informativeness and "
        "the variance of its posterior mean, the overlap of the top-k latents of both orders "
        "(k = number of factors unless --top-k), and the factors those top latents align "
        "with; across seeds of the same method/hyper-parameters/latent size: whether each "
        "run's top latents align with the group's usual factors. Writes "
        "OUT/latent_order.csv/.parquet and latent_order.png and prints the table.",
    )
    q.add_argument("run_dir", nargs="+", help="run folders")
    q.add_argument("--out", default="analysis", help="output folder (default ./analysis)")
    q.add_argument("--top-k", type=int, default=None, help="top latents compared")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=_order)
    q = sub.add_parser(
        "udr", help="unsupervised disentanglement ranking (Duan et al. 2020) across seeds",
        description="UDR of each run: how well its latents are matched one-to-one by the "
        "latents of the other runs of its group (same method, hyper-parameters, data set and "
        "latent size; other seeds), from Lasso (or Spearman) similarities of their posterior "
        "means on the same grid points, latents with mean KL <= 0.01 left out; the median "
        "over the other runs (disentanglement_lib's udr_sklearn). Needs no factors. Writes "
        "OUT/udr.csv/.parquet, a 'udr' entry in each run's metrics.json and, for a study's "
        "runs/<id>/ folders, in result.json (so `dislab study report` shows a udr column). "
        "Example: dislab analyze udr studies/loc/runs/*",
    )
    q.add_argument("run_dir", nargs="+", help="run folders (or a study's runs/<id>/ folders)")
    q.add_argument("--out", default="analysis", help="output folder (default ./analysis)")
    q.add_argument("--num-data-points", type=int, default=1000,
                   help="grid points encoded by every run (default 1000)")
    q.add_argument("--correlation", choices=["lasso", "spearman"], default="lasso",
                   help="latent similarity (default lasso)")
    q.add_argument("--by", choices=["hparams", "all"], default="hparams",
                   help="compare runs with the same hyper-parameters (default) or all of them")
    q.add_argument("--seed", type=int, default=0, help="seed that draws the points")
    q.add_argument("--no-write", action="store_true",
                   help="only write the table, not the runs' metrics.json / result.json")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=_udr)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])
