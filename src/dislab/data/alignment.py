"""How well the local principal directions of a data set line up with its factor axes.

Rolinek et al. (2019) argue that VAEs align their latents with the *local principal
directions* of the data; Zietlow et al. (2021) perturb dSprites / Shapes3D so that those
directions become mixtures of factors. This module measures that property of the data itself,
before any model is trained.

At a grid point ``w`` the Jacobian of the image with respect to factor steps is estimated by
finite differences, column ``k`` being

    J[:, k] = (x(w + e_k) - x(w - e_k)) / 2        (one-sided at the grid edges),

in units of one grid step of factor ``k`` (``D = C·H·W`` rows). The local Gram matrix
``G = JᵀJ`` (``K x K``) is the image variance along each direction of factor space; its
eigenvectors are the local principal directions. Three scores per point, averaged over
``num_points`` uniformly drawn grid points:

* ``axis_alignment`` = Σ_i λ_i max_k V_ki² / Σ_i λ_i: how close the principal directions
  (eigenvectors ``V[:, i]``, eigenvalues ``λ_i``) are to factor axes, each weighted by the
  variance it carries. 1 = every principal direction is a factor axis; ``1/K`` = every
  direction spreads evenly over all factors.
* ``top_alignment`` = max_k V_k1²: the same for the leading direction alone.
* ``offdiag`` = RMS over ``k != l`` of ``G_kl / sqrt(G_kk G_ll)``: the cosine between the image
  changes of two factor steps. 0 = factor steps change orthogonal sets of pixel values (the
  factor axes are principal directions whatever the step sizes); 1 = they change the image in
  the same way.

``global_axis_alignment`` / ``global_offdiag`` are the same scores for the Gram matrix averaged
over the points. Categorical factors (dSprites' shape) have no local direction and are left out
by default (``factors="auto"``, the names in :data:`dislab.data.pairs.AUTO_FIXED`), as are
factors with one value.

CLI: ``python -m dislab.data.alignment dsprites dsprites_perturbed dsprites_noise
[--points 256] [--out results.json] [--plot figure.png]``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from dislab.data.base import DataError, GroundTruthData, as_rng
from dislab.data.pairs import AUTO_FIXED

__all__ = ["resolve_factors", "factor_jacobian", "local_gram", "scores_from_gram",
           "mixing_angles", "alignment", "plot_alignment", "main"]


def resolve_factors(data: GroundTruthData, factors: str | Sequence[str | int] = "auto"
                    ) -> list[int]:
    """Indices of the factors to analyse: ``"auto"`` = all with > 1 value except categorical
    ones (names in ``AUTO_FIXED``), ``"all"`` = all with > 1 value, or names / indices."""
    sizes = data.factor_sizes
    if isinstance(factors, str) and factors in ("auto", "all"):
        out = [k for k, n in enumerate(sizes) if n > 1
               and (factors == "all" or data.factor_names[k].lower() not in AUTO_FIXED)]
    else:
        out = [k for k in (data.factor_index(f) for f in factors) if sizes[k] > 1]
    if len(out) < 2:
        raise DataError(f"alignment: need at least two factors with more than one value, got "
                        f"{[data.factor_names[k] for k in out]}.")
    return out


def factor_jacobian(data: GroundTruthData, factors: np.ndarray, which: Sequence[int]
                    ) -> np.ndarray:
    """Finite-difference Jacobian ``(n, D, len(which))`` float64 at grid points ``(n, K)``."""
    f = data.check_factors(factors)
    n = f.shape[0]
    sizes = np.asarray(data.factor_sizes)
    cols = []
    for k in which:
        up, down = f.copy(), f.copy()
        up[:, k] = np.minimum(f[:, k] + 1, sizes[k] - 1)
        down[:, k] = np.maximum(f[:, k] - 1, 0)
        span = (up[:, k] - down[:, k]).astype(np.float64)  # 2 inside, 1 at an edge
        diff = data.images(up).reshape(n, -1).astype(np.float64) \
            - data.images(down).reshape(n, -1).astype(np.float64)
        cols.append(diff / span[:, None])
    return np.stack(cols, axis=-1)


def local_gram(data: GroundTruthData, factors: np.ndarray, which: Sequence[int],
               chunk: int = 64) -> np.ndarray:
    """``G = JᵀJ`` per point, ``(n, len(which), len(which))`` float64."""
    f = data.check_factors(factors)
    out = []
    for start in range(0, f.shape[0], chunk):
        j = factor_jacobian(data, f[start:start + chunk], which)
        out.append(np.einsum("ndk,ndl->nkl", j, j))
    return np.concatenate(out)


def scores_from_gram(gram: np.ndarray) -> dict[str, np.ndarray]:
    """Per-matrix scores (see module doc) of Gram matrices ``(n, K, K)``: arrays ``(n,)``."""
    g = np.asarray(gram, dtype=np.float64)
    k = g.shape[-1]
    lam, vec = np.linalg.eigh(g)
    lam = np.clip(lam, 0.0, None)
    best = (vec**2).max(axis=-2)  # (n, K): max_k V_ki^2 per eigenvector i
    total = lam.sum(-1)
    safe = np.where(total > 0, total, 1.0)
    axis = np.where(total > 0, (lam * best).sum(-1) / safe, 1.0)
    top = best[..., -1]
    d = np.sqrt(np.clip(np.diagonal(g, axis1=-2, axis2=-1), 1e-300, None))
    corr = g / (d[..., :, None] * d[..., None, :])
    off = ~np.eye(k, dtype=bool)
    offdiag = np.sqrt((corr[..., off] ** 2).mean(-1))
    return {"axis_alignment": axis, "top_alignment": top, "offdiag": offdiag}


def mixing_angles(gram: np.ndarray) -> np.ndarray:
    """Per pair of factors, the angle (degrees) between the principal directions of the 2 x 2
    block ``G[[a, b]][:, [a, b]]`` and the factor axes: ``½ |atan2(2 G_ab, G_aa - G_bb)|``
    folded into [0, 45]; 0 = the two axes are principal directions, 45 = the principal
    directions are the sum and difference of the two factors. ``(n, K, K) -> (n, K, K)``."""
    g = np.asarray(gram, dtype=np.float64)
    diag = np.diagonal(g, axis1=-2, axis2=-1)
    ang = 0.5 * np.degrees(np.abs(np.arctan2(2.0 * g, diag[..., :, None] - diag[..., None, :])))
    ang = np.where(ang > 45.0, 90.0 - ang, ang)
    k = g.shape[-1]
    ang[..., np.arange(k), np.arange(k)] = 0.0
    return ang


def alignment(
    data: GroundTruthData,
    num_points: int = 256,
    seed: int = 0,
    factors: str | Sequence[str | int] = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Alignment of local principal directions with the factor axes (module doc).

    Returns ``{"data", "factors", "num_points", "axis_alignment", "axis_alignment_sd",
    "top_alignment", "offdiag", "global_axis_alignment", "global_offdiag",
    "chance_axis_alignment" (= 1/K), "mean_gram" (K x K list), "mixing_angle" (K x K list of
    mean :func:`mixing_angles`, degrees)}``.
    """
    which = resolve_factors(data, factors)
    pts = data.sample_factors(num_points, as_rng(seed))
    chunks = range(0, num_points, 32)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"alignment {data.name}", unit="chunk")
    gram = np.concatenate([local_gram(data, pts[s:s + 32], which) for s in chunks])
    per = scores_from_gram(gram)
    mean_gram = gram.mean(0)
    glob = scores_from_gram(mean_gram[None])
    angles = mixing_angles(gram).mean(0)
    return {
        "data": data.name,
        "factors": [data.factor_names[k] for k in which],
        "num_points": int(num_points),
        "axis_alignment": float(per["axis_alignment"].mean()),
        "axis_alignment_sd": float(per["axis_alignment"].std()),
        "top_alignment": float(per["top_alignment"].mean()),
        "offdiag": float(per["offdiag"].mean()),
        "global_axis_alignment": float(glob["axis_alignment"][0]),
        "global_offdiag": float(glob["offdiag"][0]),
        "chance_axis_alignment": 1.0 / len(which),
        "mean_gram": mean_gram.tolist(),
        "mixing_angle": angles.tolist(),
    }


def plot_alignment(datas: Sequence[GroundTruthData], results: Sequence[dict[str, Any]],
                   path: str, seed: int = 0) -> None:
    """PNG with, per data set, a sample image (same factors for all), the scores as bars and
    the mean mixing angles (degrees) as a heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(datas)
    fig, axes = plt.subplots(3, n, figsize=(2.6 * n, 7.6), squeeze=False)
    shared = {}
    for j, (data, res) in enumerate(zip(datas, results)):
        key = (data.factor_sizes, data.observation_shape)
        if key not in shared:
            shared[key] = data.sample_factors(1, as_rng(seed))
        img = data.images(shared[key])[0]
        ax = axes[0, j]
        ax.imshow(img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1),
                  cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(res["data"], fontsize=9)
        ax.axis("off")
        ax = axes[1, j]
        names = ["global_axis_alignment", "axis_alignment", "top_alignment", "offdiag"]
        vals = [res[k] for k in names]
        ax.bar(range(4), vals, color=["C0", "C0", "C0", "C3"])
        ax.axhline(res["chance_axis_alignment"], color="gray", ls=":", lw=1)
        ax.set_xticks(range(4), ["global\nalign", "point\nalign", "top\nalign", "off-\ndiag"],
                      fontsize=7)
        ax.set_ylim(0, 1.05)
        for i, v in enumerate(vals):
            ax.text(i, v + 0.02, f"{v:.2f}", ha="center", fontsize=7)
        ax = axes[2, j]
        ang = np.asarray(res["mixing_angle"])
        im = ax.imshow(ang, vmin=0, vmax=45, cmap="viridis")
        labels = [f[:6] for f in res["factors"]]
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for (a, b), v in np.ndenumerate(ang):
            if a != b:
                ax.text(b, a, f"{v:.0f}", ha="center", va="center", fontsize=6, color="w")
    axes[1, 0].set_ylabel("score (dotted: chance 1/K)", fontsize=8)
    axes[2, 0].set_ylabel("mean mixing angle (deg)", fontsize=8)
    fig.colorbar(im, ax=axes[2, :].tolist(), shrink=0.8, label="0 aligned, 45 mixed")
    fig.suptitle("Local principal directions vs factor axes (finite-difference J, eig of JᵀJ)",
                 fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dislab.data.alignment NAME [NAME ...]``: print the scores as JSON lines."""
    parser = argparse.ArgumentParser(
        prog="python -m dislab.data.alignment",
        description="Measure how well the local principal directions of data sets (finite-"
                    "difference Jacobian w.r.t. factor steps, eigenvectors of J^T J) align with "
                    "the factor axes. 1 = aligned, 1/K = fully mixed.")
    parser.add_argument("names", nargs="+", help="registered data set names, e.g. dsprites "
                        "dsprites_perturbed dsprites_noise")
    parser.add_argument("--points", type=int, default=256, help="grid points (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the grid points")
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    parser.add_argument("--plot", default=None, help="also draw a PNG figure to this path")
    args = parser.parse_args(argv)
    from dislab.data import load

    results, datas = [], []
    for name in args.names:
        data = load(name)
        res = alignment(data, args.points, args.seed, progress=True)
        short = {k: v for k, v in res.items() if k not in ("mean_gram", "mixing_angle")}
        print(json.dumps(short))
        results.append(res)
        datas.append(data)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)
    if args.plot:
        plot_alignment(datas, results, args.plot, args.seed)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
