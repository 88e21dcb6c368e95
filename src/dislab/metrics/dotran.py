"""Do & Tran 2020, *Theory and Evaluation Metrics for Learning Disentangled Representations*.

Informativeness, separability and interpretability of a stochastic encoder ``q(z|x)`` over a
full-grid data set (Do & Tran 2020, ICLR; official code clarken92/DisentanglementMetrics):

* informativeness ``I(x, z_i)`` of each latent; weights ``rho_i = I(x,z_i) / sum_j I(x,z_j)``;
* separability ``SEP_i = I(z_i, z_!i) = H(z_i) + H(z_!i) - H(z)`` (``WSEP``, lower is better),
  ``SEPIN_i = I(x, z) - I(x, z_!i)`` (``WSEPIN``), ``INDIN_i = I(x, z_i) - SEP_i`` (``WINDIN``);
* interpretability: for each factor ``y_k`` the two latents with the largest ``I(z_i, y_k)``,
  ``RMIG_k = I(z_i*, y_k) - I(z_j°, y_k)`` (normalised by ``H(y_k)``) and
  ``JEMMIG_k = H(z_i*, y_k) - I(z_i*, y_k) + I(z_j°, y_k)`` (normalised by
  ``H(y_k) + log #bins``; lower is better). Headlines are means over factors.

Clamping as in the official code: ``I(x, z_i)``, ``I(x, z)``, ``I(x, z_!i)`` and ``SEP_i`` at
``>= 0``; ``SEPIN``/``INDIN`` are differences of clamped terms. For a factorised encoder
``SEPIN_i == INDIN_i`` before clamping (both are ``H(z) - H(z_!i) - H(z_i|x)``), and dislab's
estimators keep that identity exactly.

Two estimators (see :func:`dotran`): the quantised one (default) and the sampling one
(:func:`dotran_sampling`, opt-in).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData, as_rng
from dislab.metrics.base import MetricError, Representation, posterior_index
from dislab.metrics.infotheory import (
    bin_edges,
    bin_probability,
    choose_components,
    draw_rows,
    entropy,
    gaussian_mixture_logs,
    grid_factor_values,
    neighbour_rows,
    neighbour_stratified_log,
    parallel_map,
    quantised_stats,
    row_labels,
    sample_posterior,
)
from dislab.metrics.registry import Kind, register_metric
from dislab.metrics.utils import check_data

__all__ = ["dotran", "dotran_sampling", "separability_quantised", "separability_official",
           "combine"]

#: WINDIN and the other scores are in nats (higher is better), not bounded above.
NATS = Kind("higher", None, None)
#: Result keys of :func:`dotran` and :func:`dotran_sampling` (per latent ``{z}``, per factor).
DOTRAN_KEYS = ("wsep", "wsepin", "windin", "rmig", "jemmig", "rmig_nats", "jemmig_nats",
               "mi_x_z", "sampling_estimator", "informativeness_z{z}", "weights_z{z}",
               "sep_z{z}", "sepin_z{z}", "indin_z{z}", "rmig_factor_{factor}",
               "jemmig_factor_{factor}", "top_latent_{factor}")

#: values of :func:`dotran`'s ``separability`` option
SEPARABILITY = ("quantised", "official")


def _sample_bins(q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One bin per row of probabilities ``q`` ``(S, B)`` (inverse CDF)."""
    cdf = np.cumsum(q.astype(np.float64), axis=1)
    u = rng.random(q.shape[0]) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), q.shape[1] - 1)


def _products(vals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(prod_i v_i, stack_i prod_{j != i} v_j)`` of same-shape arrays, shapes ``X``, ``X+(d,)``
    (prefix/suffix products: no division by zero)."""
    d = len(vals)
    pre = [np.ones_like(vals[0])]
    for i in range(d - 1):
        pre.append(pre[-1] * vals[i])
    suf = np.ones_like(vals[0])
    not_i = np.empty(vals[0].shape + (d,), dtype=vals[0].dtype)
    for i in range(d - 1, -1, -1):
        not_i[..., i] = pre[i] * suf
        suf = suf * vals[i]
    return suf, not_i


def separability_quantised(
    mean: np.ndarray,
    std: np.ndarray,
    log_norm: np.ndarray,
    onehot: np.ndarray,
    edges: np.ndarray,
    rng: np.random.Generator,
    num_samples: int | None,
    max_components: int | None,
    num_neighbours: int | None,
) -> tuple[float, np.ndarray]:
    """Monte-Carlo ``(H(b), H(b_!i) for each i)`` of the quantised joint code ``b``, in nats.

    The joint bin distribution is the mixture ``Q(b) = (1/N) sum_n prod_i Q_i(b_i|x_n)``
    (``B^d`` cells: not enumerable). ``num_samples`` cells ``b_s ~ Q`` (a row, then one bin per
    latent); ``Q(b_s)`` sums the ``num_neighbours`` rows nearest the generating row (in
    posterior means scaled by the typical posterior width) exactly and stands in for the other
    rows with ``max_components`` random rows (:func:`~dislab.metrics.infotheory.
    neighbour_stratified_log`: unbiased for ``Q(b_s)``, exact with ``None``).
    ``log_norm``, ``onehot``: ``(N, d)`` normalisers from the informativeness pass.
    """
    n, d = mean.shape
    nb_bins = len(edges) - 1
    all_bins = np.arange(nb_bins)
    gen = draw_rows(n, num_samples, rng)
    s_total = len(gen)
    comps = choose_components(n, max_components, rng)
    m = len(comps)
    in_comp = np.zeros(n, dtype=bool)
    in_comp[comps] = True
    width = float(edges[1] - edges[0])
    scale = np.maximum(np.median(std, axis=0), width)
    nbr = neighbour_rows(mean, scale, gen, num_neighbours)
    k = nbr.shape[1]
    # Rows close to the generator except in latent i matter for H(b_!i): own neighbour sets for
    # the latents narrow enough to tell rows apart (dropping a wide latent changes little).
    own = [d > 1 and k < n and scale[i] < 0.5 for i in range(d)]
    nbr_not = [neighbour_rows(np.delete(mean, i, axis=1), np.delete(scale, i), gen,
                              num_neighbours) if own[i] else None for i in range(d)]

    def probs(i: int, bins: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return bin_probability(bins, mean[rows, i], std[rows, i], log_norm[rows, i],
                               onehot[rows, i], edges)

    bins = np.empty((s_total, d), dtype=np.int64)
    tables = []
    for i in range(d):
        bins[:, i] = _sample_bins(probs(i, all_bins[None, :], gen[:, None]), rng)
        tables.append(probs(i, all_bins[:, None], comps[None, :]).astype(np.float64))
    log_joint = np.empty(s_total)
    log_not_i = np.empty((s_total, d))
    sc = max(1, (1 << 20) // max(1, (m + k) * d))
    for a in range(0, s_total, sc):
        b = min(s_total, a + sc)
        rows = nbr[a:b]
        mask = in_comp[rows]
        p_c, p_c_not = _products([tables[i][bins[a:b, i]] for i in range(d)])
        p_n, p_n_not = _products([probs(i, bins[a:b, i][:, None], rows).astype(np.float64)
                                  for i in range(d)])
        cnt = mask.sum(axis=1)
        log_joint[a:b] = neighbour_stratified_log(
            p_n.sum(axis=1), (p_n * mask).sum(axis=1), cnt, p_c.sum(axis=1), m, k, n)
        for i in range(d):
            if own[i]:
                rows_i = nbr_not[i][a:b]
                mask_i = in_comp[rows_i]
                p_i = np.ones(rows_i.shape)
                for j in range(d):
                    if j != i:
                        p_i *= probs(j, bins[a:b, j][:, None], rows_i)
            else:
                mask_i, p_i = mask, p_n_not[..., i]
            log_not_i[a:b, i] = neighbour_stratified_log(
                p_i.sum(axis=1), (p_i * mask_i).sum(axis=1), mask_i.sum(axis=1),
                p_c_not[..., i].sum(axis=1), m, k, n)
    return float(-log_joint.mean()), -log_not_i.mean(axis=0)


def separability_official(
    mean: np.ndarray,
    std: np.ndarray,
    num_samples: int = 10_000,
    rng: np.random.Generator | int | None = None,
    eps: float = 1e-8,
    chunk: int = 2_000_000,
) -> dict[str, Any]:
    """WSEP, WSEPIN, WINDIN by the official sampling estimator of Do & Tran
    (clarken92/DisentanglementMetrics ``utils/metrics/sampling.py``, ``estimate_SEPIN_cupy``),
    transcribed: ``num_samples`` rows ``n`` uniform with replacement, ``z = mean_n + std_n·ε``;
    every entropy ``-mean log max(q, eps)`` with ``q`` the mixture over *all* ``N`` rows of the
    per-latent Gaussian densities, products of densities as ``exp Σ log max(q_j, eps)``;
    ``H(z_i|x)`` etc. by the same Monte Carlo at the generating row. Clamping and weights as
    there. ``mean``, ``std``: ``(N, d)``. Cost ``O(S N d)`` (float64, in chunks of about
    ``chunk`` densities): a toy or a subsampled grid on the CPU, full dSprites is a GPU job
    as in the official code. Returns the official names (``wsep``, ``wsepin``, ``windin``,
    ``sep``, ``sepin``, ``indin``, ``weights``, ``informativeness``, ``mi_x_z``) in nats.
    """
    rng = as_rng(rng)
    n, d = np.shape(mean)
    rows = rng.integers(0, n, size=int(num_samples))
    return official_from_draws(mean, std, rows, rng.standard_normal((len(rows), d)), eps,
                               chunk)


def official_from_draws(
    mean: np.ndarray, std: np.ndarray, rows: np.ndarray, noise: np.ndarray,
    eps: float = 1e-8, chunk: int = 2_000_000,
) -> dict[str, Any]:
    """:func:`separability_official` for given draws: generating rows ``(S,)`` and standard
    normal ``noise`` ``(S, d)`` (``z = mean[rows] + noise · std[rows]``)."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    n, d = mean.shape
    rows = np.asarray(rows)
    z = mean[rows] + np.asarray(noise, dtype=np.float64) * std[rows]
    log_norm = -0.5 * np.log(2.0 * np.pi) - np.log(std)  # (N, d)

    def dens(zs: np.ndarray, m: np.ndarray, sd: np.ndarray, ln: np.ndarray) -> np.ndarray:
        return np.exp(ln - 0.5 * np.square((zs - m) / sd))

    leps = np.log(eps)
    own = dens(z, mean[rows], std[rows], log_norm[rows])  # (S, d)
    lown = np.log(np.maximum(own, eps))
    h_zi_x = -lown.mean(0)
    h_not_x = -np.maximum(lown.sum(1, keepdims=True) - lown, leps).mean(0)
    h_z_x = float(-np.maximum(lown.sum(1), leps).mean())
    q_i = np.zeros((len(rows), d))
    q_not = np.zeros((len(rows), d))
    q_all = np.zeros(len(rows))
    step = max(1, int(chunk) // max(1, n * d))
    for s0 in range(0, len(rows), step):
        zs = z[s0:s0 + step, None, :]  # (b, 1, d)
        q = dens(zs, mean[None], std[None], log_norm[None])  # (b, N, d)
        lq = np.maximum(np.log(np.maximum(q, 1e-300)), leps)
        tot = lq.sum(2, keepdims=True)
        q_i[s0:s0 + step] = q.mean(1)
        q_not[s0:s0 + step] = np.exp(tot - lq).mean(1)
        q_all[s0:s0 + step] = np.exp(tot[..., 0]).mean(1)
    h_zi = -np.log(np.maximum(q_i, eps)).mean(0)
    h_not = -np.log(np.maximum(q_not, eps)).mean(0)
    h_z = float(-np.log(np.maximum(q_all, eps)).mean())
    info = np.maximum(h_zi - h_zi_x, 0.0)
    total = info.sum()
    rho = info / total if total > 0 else np.full(d, np.nan)
    mi_not = np.maximum(h_not - h_not_x, 0.0)
    mi_z = max(h_z - h_z_x, 0.0)
    sep = np.maximum(h_zi + h_not - h_z, 0.0)
    sepin = mi_z - mi_not
    indin = info - sep
    return {"informativeness": info, "weights": rho, "sep": sep, "sepin": sepin,
            "indin": indin, "mi_x_z": mi_z, "wsep": float(np.sum(rho * sep)),
            "wsepin": float(np.sum(rho * sepin)), "windin": float(np.sum(rho * indin))}


def combine(
    h_zi: np.ndarray,
    h_zi_x: np.ndarray,
    h_z: float,
    h_z_not_i: np.ndarray,
    mi_zy: np.ndarray,
    h_zy: np.ndarray,
    h_y: np.ndarray,
    jemmig_offset: np.ndarray,
) -> dict[str, Any]:
    """All Do & Tran scores from entropies (nats).

    ``h_zi``, ``h_zi_x``, ``h_z_not_i``: ``(d,)`` ``H(z_i)``, ``H(z_i|x)``, ``H(z_!i)``;
    ``h_z``: ``H(z)``; ``mi_zy``, ``h_zy``: ``(d, K)`` ``I(z_i, y_k)`` and ``H(z_i, y_k)``;
    ``h_y``: ``(K,)``; ``jemmig_offset``: ``(K,)`` JEMMIG normaliser minus ``H(y_k)``
    (``log #bins``). Returns raw (``*_raw``, unclamped) and official (clamped) arrays.
    """
    d = len(h_zi)
    h_zx = float(np.sum(h_zi_x))
    h_not_x = h_zx - h_zi_x
    info_raw = h_zi - h_zi_x
    mi_x_z_raw = h_z - h_zx
    mi_x_not_raw = h_z_not_i - h_not_x
    sep_raw = h_zi + h_z_not_i - h_z
    info = np.maximum(info_raw, 0.0)
    total = info.sum()
    rho = info / total if total > 0 else np.full(d, 1.0 / d)
    sep = np.maximum(sep_raw, 0.0)
    sepin = max(mi_x_z_raw, 0.0) - np.maximum(mi_x_not_raw, 0.0)
    indin = info - sep
    order = np.argsort(-mi_zy, axis=0, kind="stable")
    k_idx = np.arange(mi_zy.shape[1])
    top = mi_zy[order[0], k_idx]
    second = mi_zy[order[1], k_idx] if d > 1 else np.zeros_like(top)
    h_top = h_zy[order[0], k_idx]
    rmig = top - second
    jemmig = h_top - top + second
    return {
        "informativeness": info, "informativeness_raw": info_raw, "weights": rho,
        "sep": sep, "sep_raw": sep_raw, "sepin": sepin, "sepin_raw": mi_x_z_raw - mi_x_not_raw,
        "indin": indin, "indin_raw": info_raw - sep_raw,
        "mi_x_z": max(mi_x_z_raw, 0.0),
        "wsep": float(rho @ sep), "wsepin": float(rho @ sepin), "windin": float(rho @ indin),
        "rmig_k": rmig, "rmig_norm_k": np.where(h_y > 0, rmig / np.maximum(h_y, 1e-300), np.nan),
        "jemmig_k": jemmig,
        "jemmig_norm_k": np.where(h_y > 0, jemmig / (h_y + jemmig_offset), np.nan),
        "top_latent_k": order[0],
    }


def _report(res: dict[str, Any], data: GroundTruthData, estimator: str) -> dict[str, float]:
    scored = np.asarray(data.factor_sizes) > 1  # a constant factor has nothing to explain
    if not scored.any():
        raise MetricError("every factor of the data set has a single value; nothing to score.")
    out: dict[str, float] = {
        "wsep": res["wsep"], "wsepin": res["wsepin"], "windin": res["windin"],
        "rmig": float(np.mean(res["rmig_norm_k"][scored])),
        "rmig_nats": float(np.mean(res["rmig_k"][scored])),
        "jemmig": float(np.mean(res["jemmig_norm_k"][scored])),
        "jemmig_nats": float(np.mean(res["jemmig_k"][scored])),
        "mi_x_z": float(res["mi_x_z"]),
        "sampling_estimator": float(estimator == "sampling"),
    }
    for key in ("informativeness", "weights", "sep", "sepin", "indin"):
        for i, v in enumerate(res[key]):
            out[f"{key}_z{i}"] = float(v)
    for k, name in enumerate(data.factor_names):
        if not scored[k]:
            continue
        out[f"rmig_factor_{name}"] = float(res["rmig_norm_k"][k])
        out[f"jemmig_factor_{name}"] = float(res["jemmig_norm_k"][k])
        out[f"top_latent_{name}"] = float(res["top_latent_k"][k])
    return out


def _quantised(
    data: GroundTruthData, mean: np.ndarray, std: np.ndarray, rng: np.random.Generator,
    num_bins: int, num_bins_interpretability: int, bin_limits: Sequence[float], bin_mass: str,
    sep_samples: int | None, sep_components: int | None, sep_neighbours: int | None,
) -> dict[str, Any]:
    d = mean.shape[1]
    sizes = data.factor_sizes
    e_info = bin_edges(num_bins, bin_limits)
    e_int = bin_edges(num_bins_interpretability, bin_limits)
    same = num_bins == num_bins_interpretability
    labels = row_labels(data)

    def per_latent(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        a = quantised_stats(mean[:, i], std[:, i], sizes, e_info, bin_mass,
                            factor_joints=same, conditional_entropy=True,
                            normalisers=bin_mass == "density", labels=labels)
        b = a if same else quantised_stats(mean[:, i], std[:, i], sizes, e_int, bin_mass,
                                           factor_joints=True, labels=labels)
        return a, b

    stats = parallel_map(per_latent, list(range(d)))
    h_zi = np.array([entropy(a["marginal"]) for a, _ in stats])
    h_zi_x = np.array([a["h_cond"] for a, _ in stats])
    k_n = len(sizes)
    mi_zy = np.empty((d, k_n))
    h_zy = np.empty((d, k_n))
    h_y = np.empty(k_n)
    for k in range(k_n):
        for i, (_, b) in enumerate(stats):
            joint = b["joints"][k]
            joint = joint / joint.sum()
            p_y = joint.sum(axis=1)
            h_y[k] = entropy(p_y)
            h_zy[i, k] = entropy(joint, axis=None)
            mi_zy[i, k] = entropy(joint.sum(axis=0)) + h_y[k] - h_zy[i, k]
    if d > 1:
        if bin_mass != "density":
            raise MetricError("the separability scores need bin_mass='density' (the official "
                              "rule); 'cdf' is only supported for a quick check of the rest.")
        log_norm = np.stack([a["log_norm"] for a, _ in stats], axis=1)
        onehot = np.stack([a["onehot"] for a, _ in stats], axis=1)
        h_z, h_not = separability_quantised(mean, std, log_norm, onehot, e_info, rng,
                                            sep_samples, sep_components, sep_neighbours)
    else:
        h_z, h_not = float(h_zi[0]), np.zeros(1)
    return combine(h_zi, h_zi_x, h_z, h_not, mi_zy, h_zy, h_y,
                   np.full(k_n, np.log(num_bins_interpretability)))


def _sampling(
    data: GroundTruthData, mean: np.ndarray, logvar: np.ndarray, rng: np.random.Generator,
    num_samples: int | None, max_components: int | None, num_bins_interpretability: int,
    bin_limits: Sequence[float], num_neighbours: int | None = 64,
) -> dict[str, Any]:
    labels = row_labels(data)
    if labels is None:
        labels = grid_factor_values(data.factor_sizes)
    gen, z = sample_posterior(mean, logvar, num_samples, rng)
    comps = choose_components(mean.shape[0], max_components, rng)
    res = gaussian_mixture_logs(
        z, gen, mean, logvar, comps, dims=True, joint=True, not_i=True,
        groups=[labels[:, k] for k in range(labels.shape[1])], progress="dotran_sampling",
        num_neighbours=num_neighbours,
    )
    h_zi = -res["dim"].mean(axis=0)
    h_zi_x = np.mean(0.5 * (np.log(2 * np.pi * np.e) + logvar.astype(np.float64)), axis=0)
    h_z = float(-res["joint"].mean())
    h_not = -res["not_i"].mean(axis=0)
    d, k_n = mean.shape[1], labels.shape[1]
    mi_zy = np.empty((d, k_n))
    h_zy = np.empty((d, k_n))
    h_y = np.empty(k_n)
    for k in range(k_n):
        p_y = np.bincount(labels[:, k], minlength=data.factor_sizes[k]) / len(labels)
        h_y[k] = entropy(p_y)
        log_p_v = np.log(p_y[labels[gen, k]])
        h_zy[:, k] = -(res["cond"][k] + log_p_v[:, None]).mean(axis=0)
        mi_zy[:, k] = h_zi + h_y[k] - h_zy[:, k]
    # Differential -> quantised joint entropy: H_q ~= H_diff - log(width) (Do & Tran 2020),
    # so the normalised JEMMIG is comparable with the quantised estimator's.
    width = (bin_limits[1] - bin_limits[0]) / num_bins_interpretability
    out = combine(h_zi, h_zi_x, h_z, h_not, mi_zy, h_zy - np.log(width), h_y,
                  np.full(k_n, np.log(num_bins_interpretability)))
    out["jemmig_k"] = out["jemmig_k"] + np.log(width)  # report nats in differential form
    return out


def _posterior(data: GroundTruthData, representation: Representation
               ) -> tuple[np.ndarray, np.ndarray]:
    mean, logvar = posterior_index(data, representation, np.arange(len(data)))
    if min(data.factor_sizes) < 1 or len(data) < 2:
        raise MetricError("Do & Tran's metrics need a data set with at least 2 grid points.")
    return mean.astype(np.float32), logvar.astype(np.float32)


@register_metric("dotran", default=True, needs_posterior=True, headline="windin", label="WINDIN",
                 kind=NATS, keys=DOTRAN_KEYS + ("separability_official",))
def dotran(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_bins: int = 100,
    num_bins_interpretability: int = 200,
    bin_limits: Sequence[float] = (-4.0, 4.0),
    bin_mass: str = "density",
    sep_samples: int | None = 2_000,
    sep_components: int | None = 10_000,
    sep_neighbours: int | None = 64,
    separability: str = "quantised",
    official_samples: int = 10_000,
) -> dict[str, float]:
    """Do & Tran's WSEP, WSEPIN, WINDIN, RMIG, JEMMIG, quantisation estimator (default).

    Over the whole grid (as the paper on dSprites). ``Q(b|x)``: Gaussian density at the bin
    centres of ``linspace(*bin_limits, num_bins + 1)`` times the width, renormalised, one-hot on
    ``mu``'s bin if every density is ``< 1e-5`` (official code; ``bin_mass="cdf"`` uses the exact
    mass). Defaults from the paper's dSprites runs: ``num_bins=100`` (informativeness,
    separability), ``num_bins_interpretability=200`` (RMIG/JEMMIG), ``bin_limits=(-4, 4)``.

    ``I(x, z_i)``, ``I(z_i, y_k)``, ``H(z_i, y_k)`` are exact sums over all ``N`` grid points.
    ``H(z)`` and ``H(z_!i)`` of the ``100^d`` joint cells cannot be enumerated; the official code
    gets them (and SEP/SEPIN/INDIN) from its sampling estimator over all ``N`` on a GPU. Here
    they are Monte-Carlo entropies of the *quantised* joint, ``sep_samples`` cells with the
    stratified mixture over ``sep_components`` random rows (each cell's own row exact;
    ``None`` = all rows: exact mixture, ``O(S N d)``). With the defaults SEP/SEPIN/INDIN carry
    Monte-Carlo noise of a few hundredths of a nat; ``SEPIN_i == INDIN_i`` before clamping holds
    exactly for any setting. ``rng`` draws those samples only.

    ``separability="official"``: WSEP/WSEPIN/WINDIN (and their per-latent terms and weights)
    from the official code's sampling estimator instead (:func:`separability_official`,
    ``official_samples`` samples, the exact mixture over all ``N``: slow, ``O(S N d)``), the
    numbers as published; informativeness, RMIG and JEMMIG stay quantised, as there
    (the official informativeness/interpretability scripts quantise). docs/fidelity.md has
    the measured difference.

    Returns headline ``wsep``, ``wsepin``, ``windin``, ``rmig``, ``jemmig`` (normalised, mean
    over factors), ``rmig_nats``/``jemmig_nats`` (unnormalised), ``mi_x_z`` = ``I(x, z)``, and
    per latent ``informativeness_z<i>``, ``weights_z<i>``, ``sep_z<i>``, ``sepin_z<i>``,
    ``indin_z<i>``; per factor ``rmig_factor_<name>``, ``jemmig_factor_<name>``,
    ``top_latent_<name>``. Nats throughout.
    """
    data = check_data(data)
    rng = as_rng(rng)
    if separability not in SEPARABILITY:
        raise MetricError(f"dotran: separability must be one of {SEPARABILITY}, got "
                          f"{separability!r}.")
    mean, logvar = _posterior(data, representation)
    std = np.exp(0.5 * logvar)
    res = _quantised(data, mean, std, rng, int(num_bins), int(num_bins_interpretability),
                     bin_limits, bin_mass, sep_samples, sep_components, sep_neighbours)
    out = _report(res, data, "quantised")
    if separability == "official":
        off = separability_official(mean, std, int(official_samples), rng)
        out.update({k: off[k] for k in ("wsep", "wsepin", "windin")})
        for key in ("weights", "sep", "sepin", "indin"):
            for i, v in enumerate(off[key]):
                out[f"{key}_z{i}"] = float(v)
    out["separability_official"] = float(separability == "official")
    return out


@register_metric("dotran_sampling", default=False, needs_posterior=True, headline="windin",
                 label="WINDIN (sampling)", kind=NATS, keys=DOTRAN_KEYS)
def dotran_sampling(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_samples: int | None = 10_000,
    max_components: int | None = 10_000,
    num_bins_interpretability: int = 200,
    bin_limits: Sequence[float] = (-4.0, 4.0),
    num_neighbours: int | None = 256,
) -> dict[str, float]:
    """Do & Tran's metrics with the sampling estimator (opt-in; differential entropies).

    ``num_samples`` draws ``x`` uniform, ``z ~ q(z|x)`` (paper: 10 000), every entropy
    ``-mean log q`` of the Gaussian mixture over the grid. The paper sums all ``N`` components
    (``O(S N d)``, ~7·10^10 densities on dSprites, a GPU job); dislab keeps each sample's own
    component exactly and ``max_components`` random others (stratified estimate; ``None`` =
    all ``N``); every entropy also sums the ``num_neighbours`` nearest rows exactly.
    ``H(z_i|x)`` is the exact Gaussian entropy. ``I(z_i, y_k)`` uses the mixture
    over the rows with ``y_k = v``. JEMMIG is normalised after the shift
    ``H_quantised ~= H_differential - log(bin width)`` with ``num_bins_interpretability`` bins on
    ``bin_limits``, so ``jemmig`` is comparable with :func:`dotran`'s; ``jemmig_nats`` is the
    differential value. Same keys as :func:`dotran`.
    """
    data = check_data(data)
    rng = as_rng(rng)
    mean, logvar = _posterior(data, representation)
    res = _sampling(data, mean, logvar, rng, num_samples, max_components,
                    int(num_bins_interpretability), bin_limits, num_neighbours)
    return _report(res, data, "sampling")
