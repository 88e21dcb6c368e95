"""The run report: one self-contained HTML page (plus its PNGs and GIFs) about a trained model.

``build_report(run_dir)`` writes ``RUN_DIR/report/index.html`` with

* reconstructions (originals above, decoded posterior means below);
* latent traversals as a labelled grid and as animated GIFs, **latents ordered by their
  informativeness** ``I(x, z_i)`` (Do & Tran 2020), each row labelled with the latent, its
  informativeness and the factor it aligns with;
* a table of the latents: informativeness, share ``rho_i``, mean KL to the prior, variance of
  the posterior mean, best-aligned factor (``I(z_i, y_k) / H(y_k)``);
* the latent × factor mutual-information matrix as a heat map;
* the headline scores as cards (each disentanglement metric's headline key and label from its
  registry entry) and every metric of ``metrics.json`` with the one-line description from the
  metric registry;
* the training curves of ``history.jsonl``.

Images are embedded in the HTML (base64), so the page can be mailed or moved alone; the same
figures are also in ``report/`` as files for papers and slides. Methods without a decoder
(PCL) get a note instead of reconstructions and traversals.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from dislab.errors import DislabError
from dislab.io import atomic_write_text
from dislab.status import read_status

__all__ = ["build_report", "headline_metrics"]

_PER_ITEM = re.compile(r"(_z\d+$|_factor_|^top_latent_|^informativeness_|^weights_z)")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "history.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break
    return rows


def headline_metrics(record: dict[str, Any] | None) -> list[tuple[str, float]]:
    """``[(label, value)]`` of the headline scores found in a ``metrics.json`` record: the
    headline of every disentanglement metric there (registry entries: ``headline``, ``label``;
    the default suite first, then by name)."""
    from dislab.metrics import registry

    out = []
    metrics = (record or {}).get("metrics", {})
    specs = [registry.get(n) for n in metrics if n in registry.names()]
    for spec in sorted(specs, key=lambda s: (not s.default, s.name)):
        if not spec.disentanglement:
            continue
        v = spec.headline_value(metrics[spec.name].get("values", {}))
        if v is not None:
            out.append((spec.label, v))
    return out


# -- figures -------------------------------------------------------------------------------
def _img_tag(path: Path, alt: str, width: int | None = None) -> str:
    mime = {"png": "image/png", "gif": "image/gif"}[path.suffix[1:]]
    b64 = base64.b64encode(path.read_bytes()).decode()
    w = f' width="{width}"' if width else ""
    return f'<img src="data:{mime};base64,{b64}" alt="{html.escape(alt)}"{w}>'


def _figure(path: Path, caption: str, width: int | None = None) -> str:
    return (f"<figure>{_img_tag(path, caption, width)}<figcaption>{caption} "
            f"(<code>{html.escape(path.name)}</code>)</figcaption></figure>")


def _latent_label(i: int, summary: dict[str, Any], min_align: float = 0.1) -> str:
    info = summary["informativeness"][i]
    mi = np.asarray(summary["mi_normalised"][i])
    factor = ""
    if mi.size and mi.max() >= min_align:
        factor = f" · {summary['factor_names'][int(mi.argmax())]}"
    return f"z{i} · {info:.2f} nats{factor}"


def _traversal_figure(model: Any, images: np.ndarray, order: list[int], summary: dict[str, Any],
                      path: Path, limit: float, n_steps: int) -> Path:
    from dislab.viz import images as vi

    plt = _plt()
    grids = [vi.traversal_grid(model, x, dims=order, n_steps=n_steps, limit=limit)
             for x in images]
    h = images.shape[-2]
    pad = 2
    rows = len(order)
    fig_w = 2.0 + 3.2 * len(grids)
    fig_h = 0.5 + rows * 3.2 * (h + pad) / (n_steps * (images.shape[-1] + pad))
    fig, axes = plt.subplots(1, len(grids), figsize=(fig_w, max(fig_h, 1.5)),
                             constrained_layout=True, squeeze=False)
    centres = [pad + r * (h + pad) + h / 2 for r in range(rows)]
    for j, (ax, grid) in enumerate(zip(axes[0], grids)):
        ax.imshow(grid, interpolation="nearest")
        ax.set_xticks([pad + c * (images.shape[-1] + pad) + images.shape[-1] / 2
                       for c in (0, n_steps // 2, n_steps - 1)],
                      [f"{-limit:g}", "0", f"{limit:g}"], fontsize=7)
        ax.set_xlabel(f"latent value (image {j + 1})", fontsize=8)
        if j == 0:
            ax.set_yticks(centres, [_latent_label(i, summary) for i in order], fontsize=7)
        else:
            ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _traversal_gif(model: Any, images: np.ndarray, order: list[int], path: Path,
                   limit: float) -> Path:
    from dislab.viz import images as vi

    per_image = [vi.traversal_frames(model, x, dims=order, n_frames=24, limit=limit,
                                     ncol=len(order)) for x in images]
    frames = [np.concatenate([f[t] for f in per_image], axis=0)
              for t in range(len(per_image[0]))]
    scale = max(1, min(4, 64 // max(1, images.shape[-1])))  # 16 px -> 4x, 64 px -> 1x
    return vi.save_gif(frames, path, duration_ms=90, scale=scale)


def _latent_bars(summary: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    order = summary["order"]
    info = np.asarray(summary["informativeness"])[order]
    kl = np.asarray([np.nan if v is None else v for v in summary["kl"]], dtype=float)[order]
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(order) + 1.5), 3.0),
                           constrained_layout=True)
    ax.bar(x - 0.2, info, width=0.4, label="informativeness I(x, z_i)", color="tab:blue")
    if np.isfinite(kl).any():
        ax.bar(x + 0.2, kl, width=0.4, label="mean KL(q(z_i|x) ‖ p(z_i))", color="tab:orange")
    ax.set_xticks(x, [f"z{i}" for i in order])
    ax.set_xlabel("latent (ordered by informativeness)")
    ax.set_ylabel("nats")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _mi_heatmap(summary: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    order = summary["order"]
    m = np.asarray(summary["mi_normalised"], dtype=float)[order]
    names = summary["factor_names"]
    # Room for the longest factor name (rotated 30°) below the axes and for the colour bar.
    longest = max((len(str(n)) for n in names), default=1)
    fig, ax = plt.subplots(figsize=(3.0 + 0.9 * len(names),
                                    2.0 + 0.36 * len(order) + 0.06 * longest),
                           constrained_layout=True)
    im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(order)), [f"z{i}" for i in order])
    ax.set_xlabel("ground-truth factor y_k")
    ax.set_ylabel("latent (by informativeness)")
    for r in range(m.shape[0]):
        for c in range(m.shape[1]):
            ax.text(c, r, f"{m[r, c]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if m[r, c] < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="I(z_i; y_k) / H(y_k)")
    fig.savefig(path, dpi=150, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return path


def _training_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    if not history:
        return None
    plt = _plt()
    steps = np.array([r.get("step", 0) for r in history], dtype=float)
    keys = [k for k in history[-1] if k not in ("step", "images_per_s")
            and isinstance(history[-1][k], (int, float))]
    per_latent = sorted([k for k in keys if re.fullmatch(r"kl_\d+", k)],
                        key=lambda k: int(k[3:]))
    main = [k for k in ("loss", "recon") if k in keys]
    if "kl" in keys:
        per_latent = ["kl", *per_latent]
    other = [k for k in keys if k not in per_latent and k not in main and k != "elbo"]
    panels = [("objective", main), ("KL (total and per latent)", per_latent),
              ("other terms", other)]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2),
                             constrained_layout=True, squeeze=False)
    for ax, (title, ks) in zip(axes[0], panels):
        for k in ks:
            y = np.array([r.get(k, np.nan) for r in history], dtype=float)
            style = {"color": "black", "ls": "--"} if k == "kl" and len(ks) > 1 else {}
            ax.plot(steps, y, label=k, lw=1.2, **style)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("nats per image" if title != "other terms" else "value")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(ks) > 5 else 1)
        if title == "objective" and np.all(np.array([r.get(k, 1.0) for r in history
                                                     for k in ks], dtype=float) > 0):
            ax.set_yscale("log")
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


# -- HTML pieces -----------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for j, v in enumerate(r):
            cls = ' class="num"' if j in numeric else ""
            cells.append(f"<td{cls}>{v}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head_row = f"<tr>{head}</tr>" if any(h.strip() for h in header) else ""
    return f"<table>{head_row}{''.join(body)}</table>"


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    if not math.isfinite(f):
        return "–"
    return f"{f:.{digits}f}" if abs(f) < 1e4 else f"{f:.4g}"


def _metrics_html(record: dict[str, Any] | None) -> str:
    from dislab.metrics import get_metric
    from dislab.metrics.base import MetricError

    if not record:
        return ('<p class="note">No <code>metrics.json</code>: run <code>dislab evaluate '
                'RUN_DIR</code> (or <code>dislab report RUN_DIR</code> without '
                '<code>--no-evaluate</code>).</p>')
    rows = []
    for name, res in sorted(record.get("metrics", {}).items()):
        try:
            desc = get_metric(name).description
        except MetricError:
            desc = ""
        values = res.get("values", {})
        shown = [f"{html.escape(k)} = {_num(v)}" for k, v in values.items()
                 if not _PER_ITEM.search(k) and k != "sampling_estimator"]
        per_factor = [f"{html.escape(k.split('_factor_')[-1])}: {_num(v, 2)}"
                      for k, v in values.items() if "_factor_" in k
                      and not k.startswith(("rmig_", "jemmig_"))]
        detail = "<br>".join(shown)
        if per_factor:
            detail += f"<br><small>per factor: {', '.join(per_factor)}</small>"
        rows.append([f"<b>{html.escape(name)}</b>", html.escape(desc), detail,
                     _num(res.get("seconds"), 1)])
    out = _table(["metric", "what it measures", "values", "seconds"], rows, {3})
    skipped = record.get("skipped") or {}
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for k, v in skipped.items():
            by_reason.setdefault(str(v), []).append(k)
        out += "<p>Skipped: " + "; ".join(
            ", ".join(f"<b>{html.escape(k)}</b>" for k in names) + f" ({html.escape(v)})"
            for v, names in by_reason.items()) + "</p>"
    return out


def _latents_html(summary: dict[str, Any], bars: Path) -> str:
    total = sum(summary["informativeness"]) or 1.0
    rows = []
    for rank, i in enumerate(summary["order"], 1):
        mi = np.asarray(summary["mi_normalised"][i], dtype=float)
        j = int(mi.argmax()) if mi.size else 0
        factor = (f"{html.escape(summary['factor_names'][j])} ({mi[j]:.2f})"
                  if mi.size and mi[j] >= 0.1 else "–")
        rows.append([rank, f"z{i}", _num(summary["informativeness"][i]),
                     _num(summary["informativeness"][i] / total),
                     _num(summary["kl"][i]), _num(summary["variance"][i]), factor])
    note = ("<p>Informativeness <i>I(x, z<sub>i</sub>)</i> (Do &amp; Tran 2020, quantised "
            "estimator, 100 bins on [−4, 4], over the whole factor grid) is how much latent "
            "<i>i</i> tells about the image; ρ<sub>i</sub> is its share of the total. "
            "Mean KL is the average of KL(q(z<sub>i</sub>|x) ‖ N(0, 1)); Var[μ] the variance of "
            "the posterior mean; the aligned factor is the one with the largest "
            "<i>I(z<sub>i</sub>; y<sub>k</sub>) / H(y<sub>k</sub>)</i> (shown when ≥ 0.1).</p>")
    if summary.get("deterministic"):
        note += ('<p class="note">Deterministic encoder: informativeness is the entropy of '
                 "the quantised code and there is no KL.</p>")
    return note + _table(["rank", "latent", "I(x, z_i) [nats]", "ρ_i", "mean KL [nats]",
                          "Var[μ_i]", "aligned factor (normalised MI)"], rows,
                         {0, 2, 3, 4, 5}) + _figure(bars, "Informativeness and mean KL of each "
                                                    "latent, ordered by informativeness.")


# -- the report ----------------------------------------------------------------------------------
def build_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    evaluate: bool = True,
    metrics: str | list[str] | None = None,
    seed: int = 0,
    data: Any = None,
    limit: float = 2.5,
    n_steps: int = 10,
    n_images: int = 3,
    progress: bool = True,
) -> Path:
    """Write the run report of ``run_dir`` and return the path of its ``index.html``.

    ``out``: the report folder (default ``RUN_DIR/report``). ``evaluate``: run
    :func:`dislab.metrics.evaluate_run` first when ``metrics.json`` is missing (``metrics``:
    names, ``"all"`` or ``None`` for the default suite); ``False`` reports what is there.
    ``data`` overrides the run's data set (a GroundTruthData). Traversals go over
    ``[-limit, limit]`` in ``n_steps`` steps (2.5 prior standard deviations: every active
    latent's posterior means lie inside) for ``n_images`` images drawn with ``seed``.
    """
    from dislab import __version__
    from dislab.representation import open_run
    from dislab.viz import images as vi
    from dislab.viz.analyze import latent_summary

    run_dir = Path(run_dir)
    run = open_run(run_dir, data=data)
    model, config, data = run.model, run.config, run.data
    folder = Path(out) if out is not None else run_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    record = _read_json(run_dir / "metrics.json")
    if record is None and evaluate:
        from dislab.metrics import evaluate_run

        record = evaluate_run(run_dir, metrics=metrics, seed=seed, data=data, progress=progress)
    summary = latent_summary(run_dir, progress=progress, data=data)
    order = [int(i) for i in summary["order"]]
    status = read_status(run_dir)  # a killed run reads "interrupted", not "running"
    history = _history(run_dir)

    # figures
    has_decoder = bool(getattr(model, "has_decoder", True)) and getattr(data, "is_image", True)
    rng = np.random.default_rng([int(seed), 11])
    scale = 4 if data.observation_shape[-1] <= 32 else 1
    if has_decoder:
        x = data.images_from_index(data.sample_index(16, rng))
        rec_path = vi.save_png(vi.reconstruction_grid(model, x, ncol=8),
                               folder / "reconstructions.png", scale)
        reconstructions = _figure(rec_path, "Rows 1 and 3: images; rows 2 and 4: their "
                                  "reconstructions (decoded posterior means).")
        base = x[:n_images]
        trav = _traversal_figure(model, base, order, summary, folder / "traversals.png",
                                 limit, n_steps)
        gif = _traversal_gif(model, base, order, folder / "traversals.gif", limit)
        traversals = (
            _figure(trav, f"Each row changes one latent from −{limit:g} to {limit:g} "
                    "(the other latents at the image's posterior mean); rows ordered by "
                    "informativeness, labelled with the latent, its informativeness and the "
                    "factor it aligns with.")
            + '<div class="gifs">' + _figure(
                gif, "Animated: columns are the latents in informativeness order ("
                + ", ".join(f"z{i}" for i in order) + "), rows the images.") + "</div>")
    else:
        reconstructions = traversals = (
            f'<p class="note">{html.escape(str(config.model))} has no decoder (it learns an '
            "encoder only), so there are no reconstructions or latent traversals; the "
            "information analyses below still apply.</p>")
    bars = _latent_bars(summary, folder / "informativeness.png")
    labelled = bool(data.num_factors)
    heat = _mi_heatmap(summary, folder / "mutual_information.png") if labelled else None
    curves = _training_curves(history, folder / "training_curves.png")

    # HTML
    heads = headline_metrics(record)
    headline = "".join(f'<div class="card"><div class="v">{v:.3f}</div>'
                       f'<div class="k">{html.escape(k)}</div></div>' for k, v in heads)
    train_s = status.get("train_seconds")
    run_rows = [
        ["method", html.escape(str(config.model))],
        ["hyper-parameters", html.escape(json.dumps(config.hparams))],
        ["data", html.escape(f"{data.name} ({', '.join(data.factor_names) or 'no factors'}; "
                             f"{len(data)} images, {tuple(data.observation_shape)})")],
        ["latent size / architecture", f"{config.latent_dim} / {html.escape(config.arch)}"],
        ["steps × batch", f"{status.get('step', config.steps)} × {config.batch_size} "
                          f"(lr {config.lr:g}, seed {config.seed})"],
        ["training time", f"{train_s:.0f} s" if isinstance(train_s, (int, float)) else "–"],
        ["status", html.escape(str(status.get("status", "unknown")))],
    ]
    if heat is None:
        mi_html = ('<p class="note">The data set has no factor labels, so there is no latent '
                   "× factor information; the latents table above and the unsupervised "
                   "metrics still apply.</p>")
    else:
        mi_html = (_figure(heat, "Normalised mutual information I(z_i; y_k) / H(y_k) over the "
                           "whole factor grid; a disentangled model has one bright cell per row "
                           "and column for the informative latents.")
                   + "<p>MIG takes, per factor, the gap between the two largest entries of "
                     "its column (normalised by H(y_k)).</p>")
    sections = [("run", "Run"), ("reconstructions", "Reconstructions"),
                ("traversals", "Traversals"), ("latents", "Latents"),
                ("mi", "Latent × factor MI"), ("metrics", "Metrics"),
                ("training", "Training curves")]
    toc = "<p>" + " · ".join(f'<a href="#{a}">{t}</a>' for a, t in sections) + "</p>"
    template = Template(resources.files("dislab.viz").joinpath(
        "run_report_template.html").read_text(encoding="utf-8"))
    page = template.substitute(
        title=html.escape(f"{config.model} on {data.name}"),
        subtitle=html.escape(str(run_dir)),
        headline=headline, toc=toc, run_table=_table(["", ""], run_rows),
        reconstructions=reconstructions, traversals=traversals,
        latents=_latents_html(summary, bars), mi=mi_html, metrics=_metrics_html(record),
        training=(_figure(curves, "Training logs from history.jsonl (means over each logging "
                          "window).") if curves else "<p>No history.jsonl.</p>"),
        version=html.escape(__version__),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        folder=html.escape(str(folder)),
    )
    index = folder / "index.html"
    atomic_write_text(index, page)
    return index


def _check_run(run_dir: str | os.PathLike[str]) -> Path:
    p = Path(run_dir)
    if not (p / "config.json").exists():
        raise DislabError(f"{str(p)!r} is not a dislab run folder (no config.json).")
    return p


def traverse(
    run_dir: str | os.PathLike[str],
    latents: str | list[int] | None = None,
    limit: float = 2.5,
    n_steps: int = 10,
    out: str | os.PathLike[str] | None = None,
    gif: bool = False,
    index: int | None = None,
    seed: int = 0,
    scale: int = 1,
    labels: bool = True,
) -> Path:
    """Latent traversal of one image of the run's data set; returns the written file.

    ``latents``: indices (``[0, 3]`` or ``"0,3"``), ``"all"``/``None`` (every latent in index
    order) or ``"info"`` (every latent, by decreasing informativeness; computes
    ``latents.json``). The image is grid point ``index`` (default: one drawn with ``seed``).
    PNG: rows = latents, columns = ``n_steps`` values in ``[-limit, limit]``, i.e. an array
    of ``(rows·(H+2)+2, n_steps·(W+2)+2)`` pixels times ``scale`` (2-pixel white gaps).
    ``labels`` adds a margin naming each row's latent (``z3``) and each column's value
    (:func:`dislab.viz.images.label_grid`); ``labels=False`` writes the bare grid.
    ``gif=True`` writes an animated GIF (one column per latent) instead. ``out``: default
    ``RUN_DIR/traversal.png`` / ``.gif``.
    """
    from dislab.representation import run_data
    from dislab.train import load_run
    from dislab.viz import images as vi

    run_dir = _check_run(run_dir)
    model, config = load_run(run_dir)
    if not getattr(model, "has_decoder", True):
        raise DislabError(f"{config.model!r} has no decoder, so its latents cannot be "
                          "traversed; `dislab report` shows its information analyses instead.")
    if limit <= 0 or n_steps < 2 or scale < 1:
        raise DislabError(f"need --range > 0, --steps >= 2 and --scale >= 1; got range={limit}, "
                          f"steps={n_steps}, scale={scale}.")
    d = int(config.latent_dim)
    if latents is None or latents == "all":
        dims = list(range(d))
    elif latents == "info":
        from dislab.viz.analyze import latent_summary

        dims = [int(i) for i in latent_summary(run_dir)["order"]]
    else:
        try:
            dims = ([int(t) for t in latents.split(",") if t.strip()]
                    if isinstance(latents, str) else [int(t) for t in latents])
        except ValueError:
            raise DislabError(f"--latents must be comma-separated integers, 'all' or 'info'; "
                              f"got {latents!r}.") from None
        bad = [i for i in dims if not 0 <= i < d]
        if bad or not dims:
            raise DislabError(f"latent index(es) {bad or dims} out of range: the model has {d} "
                              f"latents (0..{d - 1}).")
    data = run_data(config)[0]
    if index is None:
        index = int(data.sample_index(1, np.random.default_rng(seed))[0])
    if not 0 <= int(index) < len(data):
        raise DislabError(f"--index {index} is outside the data set (0..{len(data) - 1}).")
    x = data.images_from_index(np.array([int(index)]))[0]
    suffix = ".gif" if gif else ".png"
    path = Path(out) if out is not None else run_dir / f"traversal{suffix}"
    if gif:
        frames = vi.traversal_frames(model, x, dims=dims, n_frames=2 * n_steps, limit=limit,
                                     ncol=len(dims))
        return vi.save_gif(frames, path, duration_ms=90, scale=scale)
    grid = vi.traversal_grid(model, x, dims=dims, n_steps=n_steps, limit=limit)
    if scale != 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    if labels:
        values = np.linspace(-limit, limit, n_steps)
        grid = vi.label_grid(grid, [f"z{i}" for i in dims], [f"{v:.2g}" for v in values],
                             cell=(x.shape[-2] * scale, x.shape[-1] * scale), pad=2 * scale)
    return vi.save_png(grid, path)
