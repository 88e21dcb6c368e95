"""The table of Zietlow et al. (2021): MIG mean ± sd, original / perturbed / noise.

Rows are (base data set, method), columns the three variants of the data set, read from a
study's results table (:mod:`dislab.study.collect`). A data set label ``X_perturbed`` is the
perturbed version of ``X``, ``X_noise`` its pixel-noise version, anything else an original.

    python -m dislab.study.zietlow studies/zietlow2021          # prints a Markdown table
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from dislab.errors import DislabError

__all__ = ["VARIANTS", "split_label", "zietlow_table", "to_markdown", "main"]

VARIANTS = ("original", "perturbed", "noise")
DEFAULT_METRIC = "metric.mig.discrete_mig"


def split_label(label: str) -> tuple[str, str]:
    """``"dsprites_perturbed" -> ("dsprites", "perturbed")``; no suffix = ``"original"``."""
    for variant in VARIANTS[1:]:
        if label.endswith("_" + variant):
            return label[: -len(variant) - 1], variant
    return label, "original"


def zietlow_table(frame: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """``(data, method) x variant`` table of ``"mean ± sd (n)"`` strings over the done runs,
    plus numeric ``<variant>_mean`` columns. ``frame``: a results table (columns ``data``,
    ``method``, ``status`` and ``metric``)."""
    missing = {"data", "method", metric} - set(frame.columns)
    if missing:
        raise DislabError(f"results table lacks column(s) {sorted(missing)}; run the study "
                          "with the metric (e.g. metrics: [mig]) and `dislab study collect`.")
    done = frame[frame["status"] == "done"] if "status" in frame.columns else frame
    parts = done["data"].map(split_label)
    work = pd.DataFrame({"data": [p[0] for p in parts], "variant": [p[1] for p in parts],
                         "method": done["method"].to_numpy(),
                         "value": pd.to_numeric(done[metric], errors="coerce").to_numpy()})
    stats = work.groupby(["data", "method", "variant"])["value"].agg(["mean", "std", "count"])
    rows = []
    for (data, method), sub in stats.groupby(level=[0, 1]):
        row: dict[str, object] = {"data": data, "method": method}
        for variant in VARIANTS:
            key = (data, method, variant)
            if key in sub.index:
                mean, sd, n = sub.loc[key]
                sd_text = "–" if pd.isna(sd) else f"{sd:.2f}"
                row[variant] = f"{mean:.2f} ± {sd_text} ({int(n)})"
                row[f"{variant}_mean"] = float(mean)
            else:
                row[variant] = ""
                row[f"{variant}_mean"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown (data, method, original, perturbed, noise)."""
    lines = ["| data | method | original | perturbed | noise |", "|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['data']} | {r['method']} | {r['original']} | {r['perturbed']} | "
                     f"{r['noise']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of a study folder (collects the results table first)."""
    parser = argparse.ArgumentParser(
        prog="python -m dislab.study.zietlow",
        description="MIG mean ± sd (n runs), original / perturbed / noise, per data set and "
                    "method, from a study folder (e.g. of the zietlow2021 preset).")
    parser.add_argument("dir", help="study folder (--out of `dislab study run`)")
    parser.add_argument("--metric", default=DEFAULT_METRIC,
                        help=f"results column to tabulate (default {DEFAULT_METRIC})")
    args = parser.parse_args(argv)
    from dislab.study.collect import collect

    print(to_markdown(zietlow_table(collect(args.dir), args.metric)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
