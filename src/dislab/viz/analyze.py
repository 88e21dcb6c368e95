"""Per-latent information of a trained model, and Do & Tran's analyses across runs.

* :func:`latent_summary` — for one run: each latent's informativeness ``I(x, z_i)`` (Do & Tran
  2020, quantised estimator of :mod:`dislab.metrics.dotran`: 100 bins on ``[-4, 4]``), its mean
  KL to the prior, the variance of its posterior mean, and the latent × factor mutual
  information ``I(z_i, y_k)`` (also normalised by ``H(y_k)``), all over the full factor grid.
  Cached as ``RUN_DIR/latents.json`` (the codes come from ``codes.npz``, the cache of
  :func:`dislab.metrics.evaluate_run`).
* :func:`effective_factors` — how many latents carry information: the count above a threshold
  and the threshold-free **effective number** ``exp(H(rho))`` of the normalised informativeness
  ``rho_i = I(x, z_i) / sum_j I(x, z_j)`` (the perplexity of rho: equals ``m`` when ``m``
  latents share the information equally and the rest carry none; between the extremes it
  counts latents weighted by their share). Do & Tran (2020, §6.3) show the number of
  informative latents saturating as the latent size grows.
* :func:`ordering_agreement` — ordering latents by informativeness vs by the variance of the
  posterior mean (the usual heuristic): Spearman rank correlation, overlap of the top ``k``,
  and whether the top latents align with the same factors across seeds.
* :func:`analyze_effective_factors` / :func:`analyze_latent_order` — the two analyses over many
  run folders: a table (CSV + Parquet) and figures.
* :func:`analyze_udr` — Duan et al.'s (2020) unsupervised disentanglement ranking of runs
  against the other seeds of their hyper-parameters (:mod:`dislab.metrics.udr`), written into
  each run's ``metrics.json`` (and a study run's ``result.json``, so that the study table and
  report get a ``udr`` column).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dislab.errors import DislabError
from dislab.io import jsonable, write_json

__all__ = [
    "DEFAULT_THRESHOLD",
    "latent_information",
    "latent_summary",
    "effective_count",
    "active_count",
    "effective_factors",
    "ordering_agreement",
    "analyze_effective_factors",
    "analyze_latent_order",
    "analyze_udr",
]

#: Informativeness (nats) above which a latent counts as carrying information. A latent whose
#: posterior is as wide as the prior has ``I(x, z_i) = 0``; a posterior of standard deviation
#: 0.9 against a unit-variance marginal carries about ``log(1 / 0.9) ~= 0.1`` nats, i.e. next to
#: nothing, while the latents that encode a dSprites factor carry 1.5–4 nats.
DEFAULT_THRESHOLD = 0.1

SUMMARY_FILE = "latents.json"
_VERSION = 1


# -- one run --------------------------------------------------------------------------------
def latent_information(
    mean: np.ndarray, logvar: np.ndarray | None, factor_sizes: Sequence[int],
    num_bins: int = 100, bin_limits: Sequence[float] = (-4.0, 4.0),
    labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-latent information of grid codes ``mean``/``logvar`` ``(N, d)`` (grid order).

    Returns ``informativeness`` ``(d,)`` = ``I(x, z_i) = H(z_i) - H(z_i|x)`` (quantised, nats,
    clamped at 0, as :func:`dislab.metrics.dotran.dotran`), ``mi`` ``(d, K)`` = ``I(z_i, y_k)``,
    ``factor_entropy`` ``(K,)`` = ``H(y_k)``, ``mi_normalised`` = ``mi / H(y_k)``, ``kl``
    ``(d,)`` = the mean over the grid of ``KL(q(z_i|x) || N(0, 1))`` and ``variance`` ``(d,)``
    = the variance of the posterior mean. A deterministic encoder (``logvar=None``) gets the
    quantised code's entropy as informativeness and no KL (NaN). ``labels`` ``(N, K)``: the
    factor classes of rows that are not a full grid (labelled data; ``K = 0`` when unlabelled).
    """
    from dislab.metrics.infotheory import bin_edges, entropy, quantised_stats

    mean = np.asarray(mean, dtype=np.float32)
    if mean.ndim != 2:
        raise DislabError(f"codes must have shape (N, d), got {mean.shape}.")
    deterministic = logvar is None
    if deterministic:
        std = np.full(mean.shape, 1e-3, np.float32)
    else:
        logvar = np.asarray(logvar, dtype=np.float32)
        std = np.exp(0.5 * logvar)
    edges = bin_edges(num_bins, bin_limits)
    d, k_n = mean.shape[1], len(factor_sizes)
    info = np.zeros(d)
    mi = np.zeros((d, k_n))
    h_y = np.zeros(k_n)
    for i in range(d):
        st = quantised_stats(mean[:, i], std[:, i], factor_sizes, edges, "density",
                             factor_joints=True, conditional_entropy=True, labels=labels)
        h_zi = float(entropy(st["marginal"]))
        info[i] = max(h_zi - st["h_cond"], 0.0)
        for k, joint in enumerate(st["joints"]):
            joint = joint / joint.sum()
            p_y = joint.sum(axis=1)
            h_y[k] = float(entropy(p_y))
            mi[i, k] = max(float(entropy(joint.sum(axis=0))) + h_y[k]
                           - float(entropy(joint, axis=None)), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mi_norm = np.where(h_y > 0, mi / np.where(h_y > 0, h_y, 1.0), 0.0)
    if deterministic:
        kl = np.full(d, np.nan)
    else:
        kl = np.mean(0.5 * (mean.astype(np.float64) ** 2 + np.exp(logvar) - logvar - 1.0),
                     axis=0)
    return {"informativeness": info, "mi": mi, "factor_entropy": h_y,
            "mi_normalised": mi_norm, "kl": np.asarray(kl, dtype=np.float64),
            "variance": mean.astype(np.float64).var(axis=0)}


def _codes_for(run_dir: Path, progress: bool, data: Any = None) -> tuple[Any, Any, Any]:
    """``(CodeTable of the grid, data set, config)``: from ``codes.npz`` or encoded now (and
    cached there, with the key of :func:`dislab.metrics.evaluate_run`)."""
    from dislab.representation import open_run

    run = open_run(run_dir, data=data)
    return run.grid_codes(progress=progress), run.data, run.config


def latent_summary(run_dir: str | os.PathLike[str], progress: bool = True,
                   refresh: bool = False, data: Any = None) -> dict[str, Any]:
    """Per-latent information of a run (see :func:`latent_information`), cached.

    Reads ``RUN_DIR/latents.json`` when it is newer than the weights; otherwise encodes the
    grid (reusing ``codes.npz``), computes, and writes it. ``data`` overrides the data set of
    the run's config (a :class:`~dislab.data.GroundTruthData`). Returns a dict of lists with
    ``factor_names``, ``order`` (latents by decreasing informativeness) and the arrays above.
    """
    run_dir = Path(run_dir)
    cache = run_dir / SUMMARY_FILE
    weights = run_dir / "model.safetensors"
    if (cache.exists() and not refresh and weights.exists()
            and cache.stat().st_mtime >= weights.stat().st_mtime):
        try:
            out = json.loads(cache.read_text())
            if out.get("version") == _VERSION:
                return out
        except (OSError, ValueError):
            pass
    table, data, config = _codes_for(run_dir, progress, data)
    from dislab.metrics.infotheory import row_labels

    info = latent_information(table.mean, table.logvar, data.factor_sizes,
                              labels=row_labels(data))
    order = np.argsort(-info["informativeness"], kind="stable")
    out = {"version": _VERSION, "run_dir": str(run_dir), "model": config.model,
           "latent_dim": int(table.mean.shape[1]), "seed": int(config.seed),
           "hparams": dict(config.hparams), "data": config.data,
           "factor_names": list(data.factor_names),
           "deterministic": table.logvar is None, "order": [int(i) for i in order],
           **{k: np.asarray(v).tolist() for k, v in info.items()}}
    out = jsonable(json.loads(json.dumps(out, default=float)))
    write_json(cache, out, indent=1)
    return out


# -- counts -----------------------------------------------------------------------------------
def _check_info(informativeness: Sequence[float]) -> np.ndarray:
    x = np.asarray(informativeness, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise DislabError("informativeness must be a non-empty vector of finite numbers.")
    return np.maximum(x, 0.0)


def active_count(informativeness: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> int:
    """Number of latents with ``I(x, z_i) > threshold`` nats (:data:`DEFAULT_THRESHOLD`)."""
    return int(np.sum(_check_info(informativeness) > threshold))


def effective_count(informativeness: Sequence[float]) -> float:
    """``exp(H(rho))``, ``rho = I / sum(I)``: the threshold-free number of informative latents.

    ``m`` latents with equal informativeness and the rest zero give exactly ``m``; a single
    informative latent gives 1; all-zero informativeness gives 0.
    """
    x = _check_info(informativeness)
    total = x.sum()
    if total <= 0:
        return 0.0
    rho = x[x > 0] / total
    return float(np.exp(-np.sum(rho * np.log(rho))))


def effective_factors(summary: dict[str, Any], threshold: float = DEFAULT_THRESHOLD
                      ) -> dict[str, Any]:
    """Counts of one run's :func:`latent_summary`: latent size, active and effective counts."""
    info = summary["informativeness"]
    return {"latent_dim": int(summary["latent_dim"]),
            "active": active_count(info, threshold),
            "effective": effective_count(info),
            "total_informativeness": float(np.sum(_check_info(info)))}


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x)


def ordering_agreement(summary: dict[str, Any], top_k: int | None = None,
                       min_alignment: float = 0.1) -> dict[str, Any]:
    """Ordering by informativeness vs by posterior-mean variance for one run.

    ``spearman``: rank correlation of the two scores over the latents; ``top_overlap``: the
    share of the ``top_k`` latents (default: the number of factors) that both orders put on
    top; ``top_factors_info`` / ``top_factors_var``: the factors the top-``k`` latents of each
    order align with (largest ``I(z_i, y_k) / H(y_k)``; ``"-"`` below ``min_alignment``),
    sorted, the run's signature that :func:`analyze_latent_order` compares across seeds.
    """
    from scipy.stats import spearmanr

    info = np.asarray(summary["informativeness"], dtype=np.float64)
    var = np.asarray(summary["variance"], dtype=np.float64)
    mi = np.asarray(summary["mi_normalised"], dtype=np.float64)
    names = summary["factor_names"]
    k = int(top_k or min(len(names), len(info)))
    by_info = np.argsort(-info, kind="stable")[:k]
    by_var = np.argsort(-var, kind="stable")[:k]
    if len(info) > 1 and np.ptp(info) > 0 and np.ptp(var) > 0:
        rho = float(spearmanr(info, var).statistic)
    else:
        rho = float("nan")

    def factors(latents: np.ndarray) -> list[str]:
        out = []
        for i in latents:
            j = int(np.argmax(mi[i])) if mi.shape[1] else 0
            out.append(names[j] if mi.shape[1] and mi[i, j] >= min_alignment else "-")
        return sorted(out)

    return {"spearman": rho, "top_k": k,
            "top_overlap": len(set(by_info.tolist()) & set(by_var.tolist())) / k,
            "top_latents_info": by_info.tolist(), "top_latents_var": by_var.tolist(),
            "top_factors_info": factors(by_info), "top_factors_var": factors(by_var)}


# -- across runs --------------------------------------------------------------------------------
def _group_key(s: dict[str, Any]) -> str:
    hp = ",".join(f"{k}={v}" for k, v in sorted(s.get("hparams", {}).items())
                  if not isinstance(v, (dict, list)))
    return f"{s['model']}({hp})" if hp else str(s["model"])


def _summaries(run_dirs: Sequence[Any], progress: bool) -> list[dict]:
    if not run_dirs:
        raise DislabError("give at least one run folder.")
    out = []
    for r in run_dirs:
        if isinstance(r, dict):  # an already computed latent_summary
            out.append(r)
            continue
        if not Path(r).is_dir():
            raise DislabError(f"run folder {str(r)!r} does not exist.")
        out.append(latent_summary(r, progress=progress))
    return out


def _save_table(rows: list[dict[str, Any]], out: Path, name: str) -> Any:
    import pandas as pd

    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{name}.csv", index=False)
    try:
        df.to_parquet(out / f"{name}.parquet", index=False)
    except (ImportError, ValueError):  # pyarrow missing or unconvertible column: CSV suffices
        pass
    return df


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def analyze_effective_factors(run_dirs: Sequence[Any],
                              out: str | os.PathLike[str] = "analysis",
                              threshold: float = DEFAULT_THRESHOLD,
                              progress: bool = True) -> Any:
    """Active and effective latent counts of every run against its latent size.

    Writes ``effective_factors.csv``/``.parquet`` (one row per run) and
    ``effective_factors.png`` (counts against latent size, one colour per model and
    hyper-parameters; the diagonal is "every latent used", the dashed line the number of
    ground-truth factors) and ``informativeness_profiles.png`` (each run's sorted
    informativeness). ``run_dirs``: run folders (or :func:`latent_summary` dicts). Returns the
    table as a pandas DataFrame.
    """
    out = Path(out)
    sums = _summaries(run_dirs, progress)
    rows = []
    for s in sums:
        c = effective_factors(s, threshold)
        rows.append({"run": s["run_dir"], "group": _group_key(s), "model": s["model"],
                     "seed": s["seed"], "num_factors": len(s["factor_names"]), **c,
                     "threshold_nats": threshold})
    df = _save_table(rows, out, "effective_factors")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), constrained_layout=True, sharey=True)
    groups = sorted(df["group"].unique())
    colours = plt.get_cmap("tab10")
    lim = int(df["latent_dim"].max()) + 1
    for ax, col, title in ((axes[0], "active", f"latents with I(x, z_i) > {threshold:g} nats"),
                           (axes[1], "effective", "effective number exp(H(ρ))")):
        for g_i, g in enumerate(groups):
            sub = df[df["group"] == g]
            ax.scatter(sub["latent_dim"], sub[col], color=colours(g_i % 10), alpha=0.6, s=18)
            means = sub.groupby("latent_dim")[col].mean()
            ax.plot(means.index, means.values, color=colours(g_i % 10), label=g, lw=1.5)
        ax.plot([0, lim], [0, lim], color="grey", lw=0.8, ls=":", label="all latents used")
        ax.axhline(int(df["num_factors"].max()), color="black", lw=0.8, ls="--",
                   label="ground-truth factors")
        ax.set_xlabel("latent size d")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, lim)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("number of informative latents")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.savefig(out / "effective_factors.png", dpi=150)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    for s in sums:
        g_i = groups.index(_group_key(s))
        info = np.sort(np.asarray(s["informativeness"]))[::-1]
        ax.plot(np.arange(1, len(info) + 1), info, color=colours(g_i % 10), alpha=0.6,
                marker="o", ms=2.5, lw=1)
    ax.axhline(threshold, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("latent rank (by informativeness)")
    ax.set_ylabel("I(x, z_i) [nats]")
    ax.set_title("informativeness profiles (one line per run)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.savefig(out / "informativeness_profiles.png", dpi=150)
    plt.close(fig)
    return df


def analyze_latent_order(run_dirs: Sequence[Any],
                         out: str | os.PathLike[str] = "analysis", top_k: int | None = None,
                         progress: bool = True) -> Any:
    """Informativeness vs posterior-mean-variance ordering, per run and across seeds.

    Writes ``latent_order.csv``/``.parquet`` (one row per run: Spearman correlation of the two
    scores, top-``k`` overlap, the factors of the top-``k`` latents by each order, and
    ``consistent_info``/``consistent_var``: whether those factors equal the most common set of
    the runs with the same model, hyper-parameters and latent size, i.e. across seeds) and
    ``latent_order.png``. ``run_dirs``: run folders (or :func:`latent_summary` dicts).
    Returns the table.
    """
    out = Path(out)
    sums = _summaries(run_dirs, progress)
    rows = []
    for s in sums:
        a = ordering_agreement(s, top_k)
        rows.append({"run": s["run_dir"], "group": _group_key(s), "model": s["model"],
                     "latent_dim": s["latent_dim"], "seed": s["seed"],
                     "spearman": a["spearman"], "top_k": a["top_k"],
                     "top_overlap": a["top_overlap"],
                     "top_factors_info": "+".join(a["top_factors_info"]),
                     "top_factors_var": "+".join(a["top_factors_var"]),
                     "top_latents_info": ",".join(map(str, a["top_latents_info"])),
                     "top_latents_var": ",".join(map(str, a["top_latents_var"]))})
    for key in ("info", "var"):
        common: dict[tuple, str] = {}
        for gk in {(r["group"], r["latent_dim"]) for r in rows}:
            sets = [r[f"top_factors_{key}"] for r in rows if (r["group"], r["latent_dim"]) == gk]
            common[gk] = Counter(sets).most_common(1)[0][0]
        for r in rows:
            r[f"consistent_{key}"] = r[f"top_factors_{key}"] == common[(r["group"],
                                                                        r["latent_dim"])]
    df = _save_table(rows, out, "latent_order")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    labels = [f"{r['group']} d={r['latent_dim']} s{r['seed']}" for r in rows]
    y = np.arange(len(rows))
    axes[0].barh(y, df["spearman"].fillna(0), color="tab:blue")
    axes[0].set_yticks(y, labels, fontsize=7)
    axes[0].set_xlim(-1, 1)
    axes[0].set_xlabel("Spearman ρ (informativeness vs Var[μ_i])")
    axes[0].axvline(0, color="grey", lw=0.8)
    axes[1].barh(y - 0.2, df["top_overlap"], height=0.4, label="top-k overlap", color="tab:green")
    consist = df[["consistent_info", "consistent_var"]].astype(float)
    axes[1].barh(y + 0.2, consist["consistent_info"], height=0.4, color="tab:orange",
                 label="top-k factors = the group's usual set")
    axes[1].set_yticks(y, [""] * len(y))
    axes[1].set_xlim(0, 1.05)
    axes[1].set_xlabel("share")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    fig.savefig(out / "latent_order.png", dpi=150)
    plt.close(fig)
    return df


# -- UDR ------------------------------------------------------------------------------------
def _model_dir(r: Any) -> Path:
    """A training run folder, given it or a study run folder (``runs/<id>/`` with ``model/``)."""
    r = Path(r)
    if (r / "model.safetensors").exists():
        return r
    if (r / "model" / "model.safetensors").exists():
        return r / "model"
    raise DislabError(f"{str(r)!r} is not a trained run folder (no model.safetensors there or "
                      "in its model/ folder); give folders written by `dislab train` or a "
                      "study's runs/<id>/ folders.")


def _udr_group(config: Any) -> str:
    hp = ",".join(f"{k}={v}" for k, v in sorted(dict(config.hparams).items()))
    opts = ",".join(f"{k}={v}" for k, v in sorted(dict(config.data_options).items()))
    return (f"{config.model}({hp}) on {config.data}"
            + (f"[{opts}]" if opts else "") + f" d={config.latent_dim}")


def _record_udr(model_dir: Path, values: dict[str, float], params: dict[str, Any]) -> None:
    from dislab.study.runner import read_json, write_json_atomic

    path = model_dir / "metrics.json"
    record = read_json(path) or {}
    record.setdefault("metrics", {})["udr"] = {"values": values, "params": params,
                                               "seed": params["seed"]}
    write_json_atomic(path, record)
    result_path = model_dir.parent / "result.json"  # a study run: runs/<id>/model
    result = read_json(result_path) if model_dir.name == "model" else None
    if isinstance(result, dict):
        result.setdefault("metrics", {})["udr"] = values
        write_json_atomic(result_path, result)


def analyze_udr(run_dirs: Sequence[Any], out: str | os.PathLike[str] = "analysis",
                num_data_points: int = 1000, correlation: str = "lasso",
                filter_low_kl: bool = True, kl_filter_threshold: float = 0.01,
                by: str = "hparams", seed: int = 0, write: bool = True,
                progress: bool = True) -> Any:
    """UDR of each run against the other runs of its group (:mod:`dislab.metrics.udr`).

    Groups: ``by="hparams"`` (the paper's: same method, hyper-parameters, data set and latent
    size; the seeds differ) or ``"all"`` (every given run against every other). All runs of a
    group are encoded on the same ``num_data_points`` grid points (drawn with ``seed``) from
    their ``codes.npz`` (encoded and cached first if missing). A run alone in its group gets
    no score. Writes ``OUT/udr.csv``/``.parquet`` and, with ``write``, a ``udr`` entry in
    each scored run's ``metrics.json`` (and a study run's ``result.json``). Returns the table.
    """
    from dislab.metrics.udr import mean_kl, udr_scores

    if by not in ("hparams", "all"):
        raise DislabError(f"by must be 'hparams' or 'all', got {by!r}.")
    if int(num_data_points) < 10:
        raise DislabError(f"num_data_points must be at least 10, got {num_data_points}.")
    if not run_dirs:
        raise DislabError("give at least two run folders.")
    runs = []
    for r in run_dirs:
        model_dir = _model_dir(r)
        table, data, config = _codes_for(model_dir, progress)
        runs.append({"dir": model_dir, "table": table, "data": data, "config": config,
                     "group": "all" if by == "all" else _udr_group(config)})
    rows = []
    params = {"num_data_points": int(num_data_points), "correlation": correlation,
              "filter_low_kl": bool(filter_low_kl),
              "kl_filter_threshold": float(kl_filter_threshold), "by": by, "seed": int(seed)}
    for group in dict.fromkeys(r["group"] for r in runs):
        members = [r for r in runs if r["group"] == group]
        sizes = {len(r["table"]) for r in members}
        if len(sizes) > 1:
            raise DislabError(f"runs of group {group!r} were encoded on data sets of different "
                              f"sizes {sorted(sizes)}; UDR compares codes of the same inputs.")
        scores = [float("nan")] * len(members)
        if len(members) > 1:
            index = np.random.default_rng(seed).integers(0, sizes.pop(), int(num_data_points))
            means = [m["table"].mean[index] for m in members]
            kls = [mean_kl(m["table"].mean[index],
                           None if m["table"].logvar is None else m["table"].logvar[index])
                   for m in members]
            scores = list(udr_scores(means, kls, correlation, filter_low_kl,
                                     kl_filter_threshold)[0])
        for m, sc in zip(members, scores):
            rows.append({"run": str(m["dir"]), "group": group, "seed": m["config"].seed,
                         "num_models": len(members), "udr": sc})
            if write and np.isfinite(sc):
                _record_udr(m["dir"], {"udr": float(sc), "num_models": float(len(members))},
                            params)
    return _save_table(rows, Path(out), "udr")
