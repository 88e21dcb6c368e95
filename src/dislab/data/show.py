"""Pictures of a ground-truth data set: random samples plus one sweep per factor.

Used by ``dislab data show``; works for every registered image data set.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, as_rng

__all__ = ["sweep_factors", "value_labels", "show_grid"]


def sweep_factors(data: GroundTruthData, base: np.ndarray, j: int, steps: int) -> np.ndarray:
    """Factor vectors ``(m, K)``: ``base`` with factor ``j`` swept over ``m <= steps`` values.

    The values are evenly spaced over the factor's grid (all of them when it has at most
    ``steps`` values); the other factors keep their value in ``base``.
    """
    size = data.factor_sizes[j]
    vals = np.unique(np.round(np.linspace(0, size - 1, min(steps, size))).astype(np.int64))
    out = np.repeat(np.asarray(base, dtype=np.int64).reshape(1, -1), len(vals), axis=0)
    out[:, j] = vals
    return out


def value_labels(data: GroundTruthData, j: int, positions: np.ndarray) -> list[str]:
    """Short labels of grid positions of factor ``j`` (the factor's values where known)."""
    names = getattr(data, "value_names", {}).get(data.factor_names[j])
    if names is not None:
        return [str(names[int(p)]) for p in positions]
    fv: Any = getattr(data, "factor_values", None)
    values = None
    if isinstance(fv, dict):
        values = fv.get(data.factor_names[j])
    elif isinstance(fv, (list, tuple)) and len(fv) == data.num_factors:
        values = fv[j]
    if values is None:
        return [str(int(p)) for p in positions]
    values = np.asarray(values)[positions]
    if values.dtype.kind not in "fiub":  # labelled data: strings and other labels
        return [str(x) for x in values]
    return [f"{x:.3g}" for x in values.astype(np.float64)]


def _nearest_rows(data: GroundTruthData, base: np.ndarray, j: int, values: np.ndarray
                  ) -> np.ndarray:
    """Labelled rows (not a grid): for each value of factor ``j``, the row with that value that
    differs from ``base`` in the fewest other factors (the first such row)."""
    codes = data.factors(np.arange(len(data)))
    other = np.arange(data.num_factors) != j
    mismatch = (codes[:, other] != base[other][None, :]).sum(axis=1)
    big = data.num_factors + 1
    return np.asarray([int(np.argmin(np.where(codes[:, j] == v, mismatch, big)))
                       for v in values], dtype=np.int64)


def _to_display(x: np.ndarray) -> np.ndarray:
    """(C, H, W) float [0, 1] -> (H, W) or (H, W, 3) for imshow."""
    if x.shape[0] == 1:
        return x[0]
    return np.clip(np.transpose(x[:3], (1, 2, 0)), 0.0, 1.0)


def show_grid(
    data: GroundTruthData,
    out: str | os.PathLike[str],
    samples: int = 16,
    steps: int = 10,
    seed: int = 0,
    title: str | None = None,
    dpi: int = 80,
) -> str:
    """Save a PNG: ``samples`` random images, then one row per factor sweeping that factor.

    Each sweep row starts from the same random factor vector (drawn with ``seed``) and shows up
    to ``steps`` evenly spaced values of one factor, labelled with the factor's name and values.
    Returns the path written.
    """
    if not data.is_image:
        raise DataError(
            f"{data.name}: observations have shape {data.observation_shape}; `data show` draws "
            "image data sets only."
        )
    for name, value, low in (("samples", samples, 0), ("steps", steps, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DataError(f"{name}={value!r}: give an integer >= {low}.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = as_rng(seed)
    cols = max(1, min(steps, max(data.factor_sizes, default=1)), min(samples, 10))
    grid = getattr(data, "is_grid", True)
    sample_rows = int(np.ceil(samples / cols)) if samples > 0 else 0
    nrows = sample_rows + data.num_factors
    cell = 0.95
    fig, axes = plt.subplots(nrows, cols + 1, figsize=(cell * (cols + 1.6), cell * nrows + 0.5),
                             gridspec_kw={"width_ratios": [1.6] + [1] * cols}, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for sp in ax.spines.values():
            sp.set_visible(False)
    grey = dict(cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if samples > 0:
        x = (data.images(data.sample_factors(samples, rng)) if grid
             else data.images_from_index(data.sample_index(samples, rng)))
        for k in range(samples):
            r, c = divmod(k, cols)
            axes[r, c + 1].imshow(_to_display(x[k]), **grey)
        axes[0, 0].text(0.95, 0.5, "random\nsamples", ha="right", va="center", fontsize=9,
                        transform=axes[0, 0].transAxes)
    base = data.sample_factors(1, rng)[0]
    for j, name in enumerate(data.factor_names):
        r = sample_rows + j
        f = sweep_factors(data, base, j, steps)  # (cols >= the values shown)
        if grid:
            x = data.images(f)
        else:  # not every combination exists: the closest row with each value
            x = data.images_from_index(_nearest_rows(data, base, j, f[:, j]))
        labels = value_labels(data, j, f[:, j])
        for k in range(len(f)):
            ax = axes[r, k + 1]
            ax.imshow(_to_display(x[k]), **grey)
            ax.set_xlabel(labels[k], fontsize=6, labelpad=1)
        axes[r, 0].text(0.95, 0.5, f"{name}\n({data.factor_sizes[j]} values)", ha="right",
                        va="center", fontsize=8, transform=axes[r, 0].transAxes)
    src = getattr(data, "source", "")
    fig.suptitle(title or f"{data.name} ({src}): samples and one sweep per factor "
                 f"(others fixed)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=0.6, w_pad=0.2)
    path = os.fspath(out)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        plt.close(fig)
        raise DataError(f"Folder {parent} does not exist; create it first.")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
