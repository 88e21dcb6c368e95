"""The study's figures, from the results table of :mod:`dislab.study.collect`.

Every ``plot_*`` function takes the table (one row per run; only ``status == "done"`` rows
are used) and returns a :class:`Figure`: a matplotlib figure, or ``None`` with a ``note``
saying why nothing was drawn (too few runs to show more than noise, a missing metric).

Which column is which (the metric helper names the metrics; these look-ups find them):

* headline disentanglement scores (:func:`headline_metrics`): one column per metric, the
  headline key of its registry entry (:mod:`dislab.metrics.registry`), e.g.
  ``metric.beta_vae.eval_accuracy``, ``metric.mig.discrete_mig``, ``metric.dotran.windin``,
  labelled with the entry's label;
* total correlation of the fitted Gaussian of the codes: ``metric.*gaussian_total_correlation``
  and ``…_sampled`` (the sampled representation); TC of the aggregate posterior:
  ``metric.elbo_decomposition.tc``;
* downstream accuracy: ``metric.<downstream>.<n>:mean_test_accuracy`` (largest ``n``) and
  sample efficiency = accuracy with 100 points ÷ accuracy with the largest ``n`` (Locatello
  et al. 2019: 100 vs 10 000);
* reconstruction: the ``final.*`` training log whose name contains ``recon``.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dislab.metrics import registry as metric_registry  # noqa: E402
from dislab.metrics.registry import MetricSpec  # noqa: E402

__all__ = [
    "Figure",
    "MIN_RUNS",
    "headline_metrics",
    "tc_columns",
    "downstream_columns",
    "reconstruction_column",
    "hparam_label",
    "variance_explained",
    "plot_rank_correlation",
    "plot_metric_distributions",
    "plot_variance_explained",
    "plot_tc_sampled_vs_mean",
    "plot_downstream",
    "plot_reconstruction_tradeoff",
    "plot_tc_vs_mig",
]

#: Fewest finished runs (with both values) for a correlation, scatter trend or variance split;
#: fewer runs would show noise, so the plot says so instead.
MIN_RUNS = 5

#: Metric results that are not a disentanglement score, for metrics that are not in the registry
#: (registered ones say so in their entry: ``disentanglement=False``).
_NON_HEADLINE = re.compile(r"unsupervised|downstream|fairness|total_correlation|sampled|"
                           r"elbo_decomposition")


@dataclass
class Figure:
    """A drawn figure (``fig``) or, when nothing sensible can be drawn, ``note`` saying why."""

    fig: plt.Figure | None
    note: str = ""


def _done(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" not in frame:
        return frame
    return frame[frame["status"] == "done"]


def _spec(name: str) -> MetricSpec | None:
    """The registry entry of metric ``name``, or None for results of unregistered scores
    (``udr``, written by ``dislab analyze udr``; metrics of another dislab version)."""
    return metric_registry.get(name) if name in metric_registry.names() else None


def _pretty(column: str) -> str:
    """``metric.<name>.<key>`` -> the metric's registry label (else its name)."""
    parts = column.split(".")
    if len(parts) >= 3 and parts[0] == "metric":
        spec = _spec(parts[1])
        return spec.label if spec is not None else parts[1]
    return column


def headline_metrics(frame: pd.DataFrame) -> list[str]:
    """One numeric column per disentanglement metric: its registry entry's headline key.

    Results of metrics not in the registry (e.g. ``udr``) take the key named as the metric,
    or their only column. A metric whose headline cannot be found is left out with a
    warning naming it, never silently.
    """
    groups: dict[str, list[str]] = {}
    for c in frame.columns:
        if c.startswith("metric.") and c.count(".") >= 2 \
                and pd.api.types.is_numeric_dtype(frame[c]):
            groups.setdefault(c.split(".")[1], []).append(c)
    out = []
    for name, columns in groups.items():
        keys = {c.split(".", 2)[2]: c for c in columns}
        spec = _spec(name)
        if spec is not None:
            if not spec.disentanglement:
                continue
            key = spec.headline_key(keys)
            chosen = keys[key] if key is not None else None
        elif _NON_HEADLINE.search(name):
            continue
        else:
            chosen = keys.get(name, columns[0] if len(columns) == 1 else None)
        if chosen is None:
            want = spec.headline if spec is not None else f"{name!r} or a single column"
            warnings.warn(f"metric {name!r} has results {sorted(keys)} but not its headline "
                          f"({want}); it is left out of the study's score table and figures.",
                          UserWarning, stacklevel=2)
            continue
        out.append(chosen)
    return out


def tc_columns(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """(mean-representation TC column, sampled-representation TC column)."""
    cols = sorted(c for c in frame.columns if c.startswith("metric.")
                  and re.search(r"gaussian_total_correlation(_sampled)?$", c))
    sampled = next((c for c in cols if "sampled" in c), None)
    mean = next((c for c in cols if "sampled" not in c), None)
    return mean, sampled


def downstream_columns(frame: pd.DataFrame) -> tuple[str | None, str | None, str]:
    """(accuracy column with the most training points, column with 100 (or the fewest)
    points, a description). Sample efficiency = second / first."""
    found: dict[str, dict[int, str]] = {}
    for c in frame.columns:
        m = re.match(r"metric\.(.+)\.(\d+):mean_test_accuracy$", c)
        if m:
            found.setdefault(m.group(1), {})[int(m.group(2))] = c
    if not found:
        return None, None, ""
    # logistic regression first: the study's main downstream predictor (Locatello et al. 2019)
    name = sorted(found, key=lambda n: ("logistic" not in n, n))[0]
    sizes = found[name]
    large = max(sizes)
    small = 100 if 100 in sizes and large != 100 else min(sizes)
    if small == large:
        return sizes[large], None, f"{name}, {large} training points"
    return sizes[large], sizes[small], f"{name}: accuracy with {large} points; " \
                                       f"efficiency = acc({small}) / acc({large})"


def reconstruction_column(frame: pd.DataFrame) -> str | None:
    """The final training log of the reconstruction term (``final.*recon*``)."""
    cols = [c for c in frame.columns if c.startswith("final.") and "recon" in c.lower()
            and pd.api.types.is_numeric_dtype(frame[c])]
    return sorted(cols, key=len)[0] if cols else None


def hparam_label(row: pd.Series, frame_columns: list[str]) -> str:
    """``"beta=4"``: the run's hyper-parameters that vary within its method."""
    parts = []
    for c in frame_columns:
        v = row.get(c)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            parts.append(f"{c[3:]}={_fmt(v)}")
    return ", ".join(parts) or "default"


def _fmt(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _varying_hparams(frame: pd.DataFrame, method: str) -> list[str]:
    sub = frame[frame["method"] == method]
    return [c for c in frame.columns if c.startswith("hp.")
            and sub[c].dropna().astype(str).nunique() > 1]


def _config_labels(frame: pd.DataFrame) -> pd.Series:
    """``method (hparams)`` per row: the hyper-parameter point, without the seed."""
    labels = {}
    for method in frame["method"].dropna().unique():
        cols = _varying_hparams(frame, method)
        for idx, row in frame[frame["method"] == method].iterrows():
            labels[idx] = f"{method}\n{hparam_label(row, cols)}"
    return pd.Series(labels, dtype=object).reindex(frame.index)


def _config_order(frame: pd.DataFrame) -> list[str]:
    """The ``_config`` labels ordered by method, then hyper-parameter values (numerically)."""
    hp = [c for c in frame.columns if c.startswith("hp.")]
    ordered = frame.sort_values(["method"] + hp, na_position="first", kind="stable")
    return list(dict.fromkeys(ordered["_config"].dropna()))


def _too_few(what: str, have: int, need: int = MIN_RUNS) -> Figure:
    return Figure(None, f"Not drawn: {what} needs at least {need} finished runs with the "
                        f"values it uses; this study has {have}. Run more seeds or "
                        f"hyper-parameters (e.g. --seeds 5).")


def _method_colors(methods: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(sorted(methods))}


# -- 1. rank correlation between metrics ---------------------------------------------------

def plot_rank_correlation(frame: pd.DataFrame) -> Figure:
    """Spearman rank correlation between the metrics, one heat map per data set
    (Locatello et al. 2019, Fig. 4/5). Downstream accuracy is included when present."""
    frame = _done(frame)
    cols = headline_metrics(frame)
    acc, _, _ = downstream_columns(frame)
    if acc:
        cols = cols + [acc]
    if len(cols) < 2:
        return Figure(None, "Not drawn: rank correlations need at least two metrics in the "
                            f"table (found {len(cols)}).")
    datasets = [d for d in sorted(frame["data"].dropna().unique())
                if frame[frame["data"] == d][cols].dropna().shape[0] >= MIN_RUNS]
    if not datasets:
        best = max((frame[frame["data"] == d][cols].dropna().shape[0]
                    for d in frame["data"].dropna().unique()), default=0)
        return _too_few("a rank correlation", best)
    n = len(datasets)
    size = 1.0 + 0.55 * len(cols)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 1, size), squeeze=False)
    labels = [_pretty(c) if not c.endswith("mean_test_accuracy") else "downstream acc."
              for c in cols]
    for ax, d in zip(axes[0], datasets):
        sub = frame[frame["data"] == d][cols].dropna()
        rho = sub.rank().corr(method="pearson").to_numpy()  # Spearman = Pearson of ranks
        im = ax.imshow(rho, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(cols)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(cols)), labels, fontsize=8)
        for i in range(len(cols)):
            for j in range(len(cols)):
                if np.isfinite(rho[i, j]):
                    ax.text(j, i, f"{rho[i, j]:.2f}".replace("0.", "."), ha="center",
                            va="center", fontsize=7,
                            color="white" if abs(rho[i, j]) > 0.6 else "black")
        ax.set_title(f"{d} ({len(sub)} runs)", fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="Spearman ρ")
    return Figure(fig)


# -- 2. distributions per method and hyper-parameter ---------------------------------------

def plot_metric_distributions(frame: pd.DataFrame) -> Figure:
    """Each metric's distribution over seeds per method and hyper-parameter (box plots;
    Locatello et al. 2019, Fig. 7-8). A box needs at least 2 runs (seeds)."""
    frame = _done(frame)
    cols = headline_metrics(frame)
    if not cols:
        return Figure(None, "Not drawn: no disentanglement metric in the table.")
    frame = frame.assign(_config=_config_labels(frame))
    sizes = frame.groupby(["data", "_config"]).size()
    if sizes.empty or sizes.max() < 2:
        return Figure(None, "Not drawn: a distribution needs at least 2 seeds per "
                            "hyper-parameter setting; this study has "
                            f"{0 if sizes.empty else int(sizes.max())}. Use --seeds 2 or more.")
    datasets = sorted(frame["data"].dropna().unique())
    configs = _config_order(frame)
    colors = _method_colors(list(frame["method"].dropna().unique()))
    # One data set: metrics on a grid of up to 3 columns; several: a row per metric and a
    # column per data set.
    if len(datasets) == 1:
        ncols = min(3, len(cols))
        nrows = math.ceil(len(cols) / ncols)
        cells = [(c, datasets[0], divmod(i, ncols)) for i, c in enumerate(cols)]
    else:
        ncols, nrows = len(datasets), len(cols)
        cells = [(c, d, (i, j)) for j, d in enumerate(datasets) for i, c in enumerate(cols)]
    width = max(3.6, 0.45 * len(configs) + 1.0)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(width * ncols, 2.4 * nrows + 1.0))
    for c, d, (i, j) in cells:
        sub = frame[frame["data"] == d]
        ax = axes[i, j]
        data, pos, cols_ = [], [], []
        for k, cfg in enumerate(configs):
            vals = sub.loc[sub["_config"] == cfg, c].dropna().to_numpy()
            if len(vals) >= 2:
                data.append(vals)
                pos.append(k)
                cols_.append(colors[cfg.split("\n")[0]])
        if data:
            parts = ax.boxplot(data, positions=pos, widths=0.6, patch_artist=True,
                               showfliers=False, medianprops={"color": "k"})
            for patch, color in zip(parts["boxes"], cols_):
                patch.set_facecolor(color)
                patch.set_alpha(0.6)
            for k, vals in zip(pos, data):
                ax.scatter(np.full(len(vals), k), vals, s=8, color="k", zorder=3)
        ax.set_xlim(-0.7, len(configs) - 0.3)
        ax.set_ylabel(_pretty(c), fontsize=8)
        if len(datasets) > 1 and i == 0:
            ax.set_title(d, fontsize=10)
        last_row = i == nrows - 1 or (len(datasets) == 1 and (i + 1) * ncols + j >= len(cols))
        ax.set_xticks(range(len(configs)), configs if last_row else [""] * len(configs),
                      rotation=70, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for i in range(nrows):
        for j in range(ncols):
            if not any(cell[2] == (i, j) for cell in cells):
                axes[i, j].set_visible(False)
    if len(datasets) == 1:
        fig.suptitle(datasets[0], fontsize=10)
    fig.tight_layout()
    return Figure(fig)


# -- 3. seed vs hyper-parameter variance ----------------------------------------------------

def variance_explained(frame: pd.DataFrame, column: str, by: str = "config") -> dict[str, float]:
    """Share of the variance of ``column`` explained by the hyper-parameter setting and by the
    seed (within-setting residual): one-way ANOVA sums of squares, η² = SS_between / SS_total.

    ``by="config"``: settings are method + hyper-parameters; ``by="method"``: methods only.
    Returns ``{"hyper-parameters": η², "seed": 1 - η², "n": runs}`` (NaN when undefined).
    """
    frame = _done(frame)
    key = _config_labels(frame) if by == "config" else frame["method"]
    sub = pd.DataFrame({"y": frame[column], "g": key}).dropna()
    n = len(sub)
    total = float(((sub["y"] - sub["y"].mean()) ** 2).sum())
    if n < 2 or total <= 0:
        return {"hyper-parameters": math.nan, "seed": math.nan, "n": n}
    means = sub.groupby("g")["y"].transform("mean")
    within = float(((sub["y"] - means) ** 2).sum())
    share = 1.0 - within / total
    return {"hyper-parameters": share, "seed": within / total, "n": n}


def plot_variance_explained(frame: pd.DataFrame) -> Figure:
    """Per data set, each metric's variance split into method + hyper-parameters vs seed
    (Locatello et al. 2019: seed and hyper-parameters matter more than the method)."""
    frame = _done(frame)
    cols = headline_metrics(frame)
    if not cols:
        return Figure(None, "Not drawn: no disentanglement metric in the table.")
    frame = frame.assign(_config=_config_labels(frame))
    datasets = []
    for d in sorted(frame["data"].dropna().unique()):
        sub = frame[frame["data"] == d]
        sizes = sub.groupby("_config").size()
        if len(sub) >= MIN_RUNS and (sizes >= 2).sum() >= 2:
            datasets.append(d)
    if not datasets:
        return Figure(None, "Not drawn: splitting the variance needs at least two "
                            "hyper-parameter settings with 2+ seeds each and "
                            f"{MIN_RUNS}+ finished runs per data set.")
    fig, axes = plt.subplots(1, len(datasets), figsize=(1.0 + 0.8 * len(cols) * len(datasets)
                                                       + 2, 3.6), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        sub = frame[frame["data"] == d]
        hp, seed, method_share = [], [], []
        for c in cols:
            v = variance_explained(sub, c, by="config")
            m = variance_explained(sub, c, by="method")
            hp.append(v["hyper-parameters"])
            seed.append(v["seed"])
            method_share.append(m["hyper-parameters"])
        x = np.arange(len(cols))
        ax.bar(x, hp, color="tab:blue", label="method + hyper-parameters")
        ax.bar(x, seed, bottom=hp, color="tab:orange", label="seed (residual)")
        ax.scatter(x, method_share, color="k", marker="_", s=300, zorder=3,
                   label="method alone")
        ax.set_xticks(x, [_pretty(c) for c in cols], rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of variance")
        ax.set_title(f"{d} ({len(sub)} runs)", fontsize=10)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return Figure(fig)


# -- 4. TC of sampled vs mean representation ------------------------------------------------

def plot_tc_sampled_vs_mean(frame: pd.DataFrame) -> Figure:
    """Gaussian total correlation of the sampled vs the mean representation, per method
    (Locatello et al. 2019, Fig. 1: the mean representation is correlated even when the
    sampled one is not)."""
    frame = _done(frame)
    mean_col, sampled_col = tc_columns(frame)
    if mean_col is None or sampled_col is None:
        return Figure(None, "Not drawn: needs the Gaussian total correlation of both the mean "
                            "and the sampled representation (metric columns "
                            "'…gaussian_total_correlation', one of them named 'sampled'); "
                            f"found mean={mean_col}, sampled={sampled_col}.")
    sub = frame[["data", "method", mean_col, sampled_col]].dropna()
    if len(sub) < MIN_RUNS:
        return _too_few("comparing TC distributions", len(sub))
    datasets = sorted(sub["data"].unique())
    methods = sorted(sub["method"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(1.5 + 1.3 * len(methods) * len(datasets),
                                                        3.6), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        s = sub[sub["data"] == d]
        for k, m in enumerate(methods):
            for off, col, color in ((-0.18, sampled_col, "tab:green"),
                                    (0.18, mean_col, "tab:purple")):
                vals = s.loc[s["method"] == m, col].to_numpy()
                if len(vals) >= 2:
                    bp = ax.boxplot([vals], positions=[k + off], widths=0.3, patch_artist=True,
                                    showfliers=False, medianprops={"color": "k"})
                    bp["boxes"][0].set_facecolor(color)
                    bp["boxes"][0].set_alpha(0.6)
                ax.scatter(np.full(len(vals), k + off), vals, s=8, color="k", zorder=3)
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("Gaussian total correlation (nats)")
        ax.set_title(d, fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color="tab:green", alpha=0.6),
               plt.Rectangle((0, 0), 1, 1, color="tab:purple", alpha=0.6)]
    axes[0, -1].legend(handles, ["sampled z ~ q(z|x)", "mean μ(x)"], fontsize=7)
    fig.tight_layout()
    return Figure(fig)


# -- 5. downstream accuracy and sample efficiency ------------------------------------------

def _scatter_grid(frame: pd.DataFrame, xs: list[str], ys: list[tuple[str, str]],
                  colors: dict[str, tuple], max_cols: int = 4) -> plt.Figure:
    """One scatter per (y, x) pair, at most ``max_cols`` per row (each y starts a new row)."""
    ncols = min(max_cols, len(xs))
    rows_per_y = math.ceil(len(xs) / ncols)
    fig, axes = plt.subplots(rows_per_y * len(ys), ncols, squeeze=False,
                             figsize=(2.9 * ncols + 1.6, 2.5 * rows_per_y * len(ys)))
    for a in axes.ravel():
        a.set_visible(False)
    for i, (ycol, ylabel) in enumerate(ys):
        for j, xcol in enumerate(xs):
            r, c = divmod(j, ncols)
            ax = axes[i * rows_per_y + r, c]
            ax.set_visible(True)
            sub = frame[[xcol, ycol, "method"]].dropna()
            for m, s in sub.groupby("method"):
                ax.scatter(s[xcol], s[ycol], s=12, color=colors[m], label=m, alpha=0.8)
            if len(sub) >= MIN_RUNS:
                rho = sub[[xcol, ycol]].rank().corr().iloc[0, 1]
                ax.set_title(f"ρ = {rho:.2f} (n={len(sub)})", fontsize=8)
            else:
                ax.set_title(f"n={len(sub)}: too few for ρ", fontsize=8)
            ax.set_xlabel(_pretty(xcol), fontsize=8)
            if c == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="upper right")
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    return fig


def plot_downstream(frame: pd.DataFrame) -> Figure:
    """Downstream accuracy and sample efficiency against each disentanglement metric
    (Locatello et al. 2019, Fig. 9-10), one point per run, Spearman ρ in the titles."""
    frame = _done(frame)
    acc, small, _ = downstream_columns(frame)
    cols = headline_metrics(frame)
    if acc is None or not cols:
        return Figure(None, "Not drawn: needs a downstream metric ('<n>:mean_test_accuracy') "
                            "and at least one disentanglement metric.")
    frame = frame.copy()
    ys = [(acc, "downstream accuracy")]
    if small is not None:
        frame["_efficiency"] = frame[small] / frame[acc]
        ys.append(("_efficiency", "sample efficiency"))
    n = len(frame[[acc] + cols].dropna())
    if n < MIN_RUNS:
        return _too_few("a downstream comparison", n)
    return Figure(_scatter_grid(frame, cols, ys,
                                _method_colors(list(frame["method"].dropna().unique()))))


# -- 6. reconstruction vs disentanglement ---------------------------------------------------

def plot_reconstruction_tradeoff(frame: pd.DataFrame) -> Figure:
    """Reconstruction error against each disentanglement score (Kim & Mnih 2018, Fig. 4):
    one point per run, coloured by method, mean over seeds per setting joined by a line."""
    frame = _done(frame)
    rec = reconstruction_column(frame)
    cols = headline_metrics(frame)
    if rec is None or not cols:
        return Figure(None, "Not drawn: needs a final reconstruction loss ('final.*recon*') and "
                            "a disentanglement metric.")
    n = len(frame[[rec] + cols[:1]].dropna())
    if n < MIN_RUNS:
        return _too_few("the reconstruction trade-off", n)
    colors = _method_colors(list(frame["method"].dropna().unique()))
    ncols = min(4, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols + 1.6, 2.6 * nrows),
                             squeeze=False)
    for a in axes.ravel()[len(cols):]:
        a.set_visible(False)
    for ax, c in zip(axes.ravel(), cols):
        for m, s in frame[[rec, c, "method"] + [x for x in frame.columns
                                                if x.startswith("hp.")]].groupby("method"):
            s = s.dropna(subset=[rec, c])
            ax.scatter(s[rec], s[c], s=10, color=colors[m], alpha=0.5, label=m)
            hp_cols = _varying_hparams(frame, m)
            if hp_cols:
                means = s.groupby(hp_cols)[[rec, c]].mean().sort_values(rec)
                ax.plot(means[rec], means[c], "-o", color=colors[m], ms=4, lw=1)
        ax.set_xlabel(f"{rec[6:]} (lower = better)", fontsize=8)
        ax.set_ylabel(_pretty(c), fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper right")
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    return Figure(fig)


# -- 7. TC vs MIG -----------------------------------------------------------------------------

def plot_tc_vs_mig(frame: pd.DataFrame) -> Figure:
    """Total correlation against MIG (Chen et al. 2018, Fig. 6: lower TC tends to go with
    higher MIG), one point per run coloured by method. TC: Chen et al.'s estimate of the
    aggregate posterior's TC (``elbo_decomposition.tc``), else the Gaussian TC of the mean
    representation, else the final training-log TC."""
    frame = _done(frame)
    mig = next((c for c in headline_metrics(frame) if c.startswith("metric.mig.")), None)
    tc = "metric.elbo_decomposition.tc" if "metric.elbo_decomposition.tc" in frame else None
    if tc is None:
        tc, _ = tc_columns(frame)
    if tc is None:
        tc = next((c for c in frame.columns if c.startswith("final.") and "tc" in c.lower()
                   and pd.api.types.is_numeric_dtype(frame[c])), None)
    if mig is None or tc is None:
        return Figure(None, f"Not drawn: needs MIG and a total correlation (found MIG={mig}, "
                            f"TC={tc}).")
    sub = frame[["data", "method", tc, mig]].dropna()
    if len(sub) < MIN_RUNS:
        return _too_few("TC vs MIG", len(sub))
    colors = _method_colors(list(sub["method"].unique()))
    datasets = sorted(sub["data"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets) + 1.5, 3.2),
                             squeeze=False)
    for ax, d in zip(axes[0], datasets):
        s = sub[sub["data"] == d]
        for m, g in s.groupby("method"):
            ax.scatter(g[tc], g[mig], s=14, color=colors[m], label=m, alpha=0.8)
        if len(s) >= MIN_RUNS:
            rho = s[[tc, mig]].rank().corr().iloc[0, 1]
            ax.set_title(f"{d}: ρ = {rho:.2f} (n={len(s)})", fontsize=9)
        ax.set_xlabel(f"total correlation ({tc.split('.', 1)[1]})", fontsize=8)
        ax.set_ylabel("MIG", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return Figure(fig)
