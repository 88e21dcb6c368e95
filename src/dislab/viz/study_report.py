"""``dislab study report``: one self-contained HTML page with the study's analyses.

The page (``--out report.html``) embeds every figure as a base64 PNG, so it can be mailed or
archived alone; the same PNGs are written beside it in ``<name>_files/`` for papers and
slides. Sections: the runs (status per method, failures with their error), a table of the
metrics' mean ± sd per setting (each metric's headline, labelled as its registry entry says),
and the figures of :mod:`dislab.viz.study_plots`.
"""

from __future__ import annotations

import base64
import html
import io
import time
from importlib import resources
from pathlib import Path
from string import Template

import pandas as pd

from dislab.errors import DislabError
from dislab.io import atomic_write_text
from dislab.study.collect import TABLE_NAME, collect, write_table
from dislab.viz import study_plots as sp

__all__ = ["write_report", "SECTIONS"]

#: (file stem, title, what the figure shows and which paper it reproduces, plot function name)
SECTIONS = [
    ("rank_correlation", "Rank correlation between metrics",
     "Spearman rank correlation of the disentanglement scores (and downstream accuracy) across "
     "all runs of a data set (Locatello et al. 2019, Fig. 4-5: most metrics agree, "
     "Modularity less so).", "plot_rank_correlation"),
    ("distributions", "Metric distributions per method and hyper-parameter",
     "Each box: the runs (seeds) of one method and hyper-parameter value (Locatello et al. "
     "2019, Fig. 7-8: seeds spread as widely as hyper-parameters).",
     "plot_metric_distributions"),
    ("variance", "Seed versus hyper-parameters",
     "Share of each metric's variance explained by the method + hyper-parameter setting "
     "(one-way ANOVA η²) versus the seed (what is left); the black bar is the method alone.",
     "plot_variance_explained"),
    ("tc_sampled_mean", "Total correlation: sampled vs mean representation",
     "Gaussian total correlation of z ~ q(z|x) and of μ(x) per method (Locatello et al. 2019, "
     "Fig. 1: regularising the sampled TC does not make the mean representation "
     "uncorrelated).", "plot_tc_sampled_vs_mean"),
    ("downstream", "Downstream accuracy and sample efficiency",
     "Accuracy of a classifier of the factors from the codes, and its sample efficiency "
     "(accuracy with 100 points ÷ with the most), against each disentanglement score "
     "(Locatello et al. 2019, Fig. 9-10).", "plot_downstream"),
    ("reconstruction", "Reconstruction versus disentanglement",
     "Final reconstruction loss against each score; lines join the seed means of a method's "
     "settings (Kim & Mnih 2018, Fig. 4: β-VAE buys disentanglement with reconstruction, "
     "FactorVAE less so).", "plot_reconstruction_tradeoff"),
    ("tc_vs_mig", "Total correlation versus MIG",
     "Total correlation of the representation against MIG (Chen et al. 2018, Fig. 6: lower TC "
     "tends to go with higher MIG).", "plot_tc_vs_mig"),
]


def _png(fig: object) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return buf.getvalue()


def _table_html(frame: pd.DataFrame, left: int = 1, float_fmt: str = "{:.3g}") -> str:
    head = "".join(f"<th class='l'>{html.escape(str(c))}</th>" if i < left else
                   f"<th>{html.escape(str(c))}</th>" for i, c in enumerate(frame.columns))
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for i, v in enumerate(row):
            text = float_fmt.format(v) if isinstance(v, float) else str(v)
            cls = " class='l'" if i < left else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _summary(frame: pd.DataFrame) -> str:
    parts = ["<h2>Runs</h2>"]
    if "compat" in frame:
        modes = sorted(str(m) for m in frame["compat"].dropna().unique())
        parts.append(f"<p>Metric settings mode (compat): <b>{html.escape(', '.join(modes))}"
                     "</b> (<code>dlib</code>: disentanglement_lib's 2019 settings; see "
                     "docs/fidelity.md).</p>")
    counts = frame.pivot_table(index=["data", "method"], columns="status", values="run_id",
                               aggfunc="count", fill_value=0).reset_index()
    counts.columns.name = None
    parts.append(_table_html(counts, left=2, float_fmt="{:.0f}"))
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        items = "".join(f"<li><code>{html.escape(r.run_id)}</code>: "
                        f"{html.escape(str(r.error))}</li>" for r in failed.itertuples())
        parts.append(f"<div class='fail'><b>{len(failed)} failed run(s)</b> (kept in the "
                     f"table with their error; <code>--retry-failed</code> reruns them):"
                     f"<ul>{items}</ul></div>")
    unfinished = frame[~frame["status"].isin(["done", "failed"])]
    if len(unfinished):
        parts.append(f"<div class='note'>{len(unfinished)} run(s) not finished (status "
                     f"{', '.join(sorted(unfinished['status'].unique()))}); run the same "
                     "<code>dislab study run</code> command again to finish them.</div>")
    done = frame[frame["status"] == "done"]
    cols = sp.headline_metrics(done)
    if len(done) and cols:
        done = done.assign(_config=sp._config_labels(done))
        rank = {c: i for i, c in enumerate(sp._config_order(done))}
        done = done.assign(_rank=done["_config"].map(rank)).sort_values(["data", "_rank"])
        done = done.assign(setting=done["_config"].str.replace("\n", " ", regex=False))
        agg = done.groupby(["data", "setting"], sort=False)[cols]
        mean, std, n = agg.mean(), agg.std(), agg.size()
        table = pd.DataFrame(index=mean.index)
        table["runs"] = n
        for c in cols:
            table[sp._pretty(c)] = [
                f"{m:.3f} ± {s:.3f}" if pd.notna(s) else f"{m:.3f}"
                for m, s in zip(mean[c], std[c])]
        parts.append("<h2>Scores (mean ± sd over seeds)</h2>")
        parts.append(_table_html(table.reset_index(), left=2, float_fmt="{:.0f}"))
    return "\n".join(parts)


def write_report(study_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of ``study_dir`` (and its PNGs); returns the HTML path.

    Reads ``study_dir/results.parquet``, collecting it first when it is missing or older than
    a run folder.
    """
    study_dir = Path(study_dir)
    table = study_dir / TABLE_NAME
    if not (study_dir / "runs").is_dir() and not table.exists():
        raise DislabError(f"{study_dir} is not a study folder (no runs/ and no {TABLE_NAME}); "
                          "give the --out folder of `dislab study run`.")
    if (study_dir / "runs").is_dir():
        write_table(study_dir)  # always current: cheap, and never duplicates a run
    frame = pd.read_parquet(table) if table.exists() else collect(study_dir)
    if frame.empty:
        raise DislabError(f"{study_dir} has no runs yet; run `dislab study run` first.")
    out = Path(out) if out else study_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = out.parent / f"{out.stem}_files"
    figures.mkdir(exist_ok=True)
    sections = []
    for stem, title, why, fn_name in SECTIONS:
        result = getattr(sp, fn_name)(frame)
        body = [f"<h2>{html.escape(title)}</h2>", f"<p class='why'>{html.escape(why)}</p>"]
        png_path = figures / f"{stem}.png"
        if result.fig is not None:
            png = _png(result.fig)
            png_path.write_bytes(png)
            data = base64.b64encode(png).decode()
            body.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
        else:
            if png_path.exists():
                png_path.unlink()  # a figure of an earlier, larger table would mislead
            body.append(f"<div class='note'>{html.escape(result.note)}</div>")
        sections.append("\n".join(body))
    names = sorted(frame["study"].dropna().unique()) if "study" in frame else []
    n_done = int((frame["status"] == "done").sum())
    meta = (f"{len(frame)} runs ({n_done} finished), data: "
            f"{', '.join(sorted(frame['data'].dropna().unique()))}; methods: "
            f"{', '.join(sorted(frame['method'].dropna().unique()))}; written "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    template = Template(resources.files("dislab.viz").joinpath("study_report_template.html")
                        .read_text())
    page = template.substitute(
        title=html.escape(f"Study report: {', '.join(names) or study_dir.name}"),
        meta=html.escape(meta),
        summary=_summary(frame),
        sections="\n".join(sections),
        table=html.escape(str(table)),
    )
    atomic_write_text(out, page)
    return out
