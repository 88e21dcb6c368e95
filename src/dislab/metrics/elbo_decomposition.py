"""ELBO decomposition of Chen et al. 2018 (*Isolating Sources of Disentanglement in VAEs*).

The KL term of the ELBO averaged over the data set splits into three parts
(Chen et al. 2018; official code rtqichen/beta-tcvae ``elbo_decomposition.py``)::

    E_x KL(q(z|x) || p(z)) = I_q(x; z)                          index-code mutual information
                           + KL(q(z) || prod_j q(z_j))            total correlation
                           + sum_j KL(q(z_j) || p(z_j))           dimension-wise KL

with the aggregate posterior ``q(z) = (1/N) sum_n q(z|x_n)`` over the whole grid and
``p = N(0, I)``. Every term is an expectation over ``z ~ q(z|x)``, ``x`` uniform; the sum of the
three estimates equals the Monte-Carlo estimate of the left side sample by sample.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from dislab.data.base import GroundTruthData, as_rng
from dislab.estimators import log_qz_mss, log_qz_mws
from dislab.metrics.base import MetricError, Representation, posterior_index
from dislab.metrics.infotheory import (
    LOG_2PI,
    choose_components,
    gaussian_mixture_logs,
    sample_posterior,
)
from dislab.metrics.registry import Kind, register_metric
from dislab.metrics.utils import check_data
from dislab.threads import torch_threads

__all__ = ["elbo_decomposition", "decompose", "decompose_minibatch"]


def decompose(
    mean: np.ndarray,
    logvar: np.ndarray,
    rng: np.random.Generator,
    num_samples: int | None = 10_000,
    max_components: int | None = 10_000,
    progress: str | None = None,
    num_neighbours: int | None = 64,
) -> dict[str, np.ndarray | float]:
    """Full-data-set decomposition of a posterior table ``(N, d)`` (stratified mixture).

    Returns ``mi``, ``tc``, ``dimwise_kl`` (floats, nats) and ``dimwise_kl_per_dim`` ``(d,)``,
    ``kl_estimate`` (their sum, the Monte-Carlo ``E log q(z|x)/p(z)``).
    """
    gen, z = sample_posterior(mean, logvar, num_samples, rng)
    comps = choose_components(mean.shape[0], max_components, rng)
    res = gaussian_mixture_logs(z, gen, mean, logvar, comps, dims=True, joint=True,
                                progress=progress, num_neighbours=num_neighbours)
    log_qzx = res["self"].sum(axis=1)
    log_pz_dim = -0.5 * (z * z + LOG_2PI)
    log_qz = res["joint"]
    log_qzj = res["dim"]
    dim_kl = (log_qzj - log_pz_dim).mean(axis=0)
    mi = float(np.mean(log_qzx - log_qz))
    tc = float(np.mean(log_qz - log_qzj.sum(axis=1)))
    return {
        "mi": mi,
        "tc": tc,
        "dimwise_kl": float(dim_kl.sum()),
        "dimwise_kl_per_dim": dim_kl,
        "kl_estimate": mi + tc + float(dim_kl.sum()),
    }


def decompose_minibatch(
    mean: np.ndarray,
    logvar: np.ndarray,
    rng: np.random.Generator,
    batch_size: int,
    num_batches: int,
    estimator: str,
) -> dict[str, float]:
    """Decomposition by minibatch weighted (``"mws"``) or stratified (``"mss"``) sampling.

    Each of ``num_batches`` batches holds ``batch_size`` distinct random rows and one sample
    per row; ``log q(z)`` and ``log prod_j q(z_j)`` come from
    :func:`dislab.estimators.log_qz_mws` / :func:`~dislab.estimators.log_qz_mss` with the true
    ``N`` (MWS with its ``-log(N B)`` constant). Returns the batch averages ``mi``, ``tc``,
    ``dimwise_kl``.
    """
    n = mean.shape[0]
    if batch_size < 2 or batch_size > n:
        raise MetricError(
            f"minibatch_size must be in 2..{n} (the data set size), got {batch_size}."
        )
    fn = {"mws": log_qz_mws, "mss": log_qz_mss}[estimator]
    acc = np.zeros(3)
    with torch_threads(1):  # tiny tensors: thread start-up would dominate
        for _ in range(num_batches):
            acc += _minibatch_terms(mean, logvar, rng, batch_size, fn, n)
    acc /= num_batches
    return {"mi": float(acc[0]), "tc": float(acc[1]), "dimwise_kl": float(acc[2])}


def _minibatch_terms(mean: np.ndarray, logvar: np.ndarray, rng: np.random.Generator,
                     batch_size: int, fn: Any, n: int) -> np.ndarray:
    """``(mi, tc, dimwise_kl)`` of one random minibatch (one sample per row)."""
    idx = rng.choice(n, size=batch_size, replace=False)
    mu = torch.from_numpy(mean[idx].astype(np.float64))
    lv = torch.from_numpy(logvar[idx].astype(np.float64))
    z = mu + torch.exp(0.5 * lv) * torch.from_numpy(rng.standard_normal(mu.shape))
    log_qzx = (-0.5 * ((z - mu) ** 2 * torch.exp(-lv) + lv + LOG_2PI)).sum(1)
    log_pz = (-0.5 * (z * z + LOG_2PI)).sum(1)
    log_qz, log_prod = fn(z, mu, lv, n)
    return np.array([float((log_qzx - log_qz).mean()), float((log_qz - log_prod).mean()),
                     float((log_prod - log_pz).mean())])


@register_metric("elbo_decomposition", default=True, needs_posterior=True,
                 needs_factors=False, headline="tc", label="Total correlation of q(z)",
                 kind=Kind("lower", None, None), disentanglement=False,
                 keys=("mi", "tc", "dimwise_kl", "kl", "kl_estimate", "log_dataset_size",
                       "mi_mss", "tc_mss", "dimwise_kl_mss", "mi_mws", "tc_mws",
                       "dimwise_kl_mws", "dimwise_kl_z{z}", "kl_z{z}"))
def elbo_decomposition(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_samples: int | None = 2_000,
    max_components: int | None = 5_000,
    minibatch_size: int = 64,
    num_minibatches: int = 100,
    num_neighbours: int | None = 512,
) -> dict[str, float]:
    """Index-code MI, total correlation and dimension-wise KL of q(z) (needs q(z|x)).

    Full-data-set estimate: ``num_samples`` samples ``z ~ q(z|x)`` (default 2 000 for
    speed; Chen et al.'s entropy estimates use 10 000; ``None`` = one per grid point) and the
    aggregate posterior of all ``N`` grid points, each sample's own component kept exactly
    and the other ``N - 1`` stood in for by ``max_components`` random ones (stratified
    estimate, :mod:`~dislab.metrics.infotheory`; ``None`` = all ``N``, exact and slow); for
    ``log q(z)`` and ``log q(z_j)`` the ``num_neighbours`` rows with the nearest posterior
    means are also summed exactly.
    Minibatch estimates as in training:
    ``num_minibatches`` batches of ``minibatch_size`` (64, the study's training batch) with
    MWS and MSS, under ``*_mws`` / ``*_mss``. ``kl`` is the exact ``E_x KL(q(z|x)||p(z))``;
    ``kl_estimate`` = ``mi + tc + dimwise_kl`` (its Monte-Carlo estimate). All in nats.
    """
    data = check_data(data, needs_factors=False)
    rng = as_rng(rng)
    mean, logvar = posterior_index(data, representation, np.arange(len(data)))
    mean = mean.astype(np.float64)
    logvar = logvar.astype(np.float64)
    kl_dim = 0.5 * (mean**2 + np.exp(logvar) - logvar - 1.0).mean(axis=0)
    full = decompose(mean, logvar, rng, num_samples, max_components,
                     progress="elbo_decomposition", num_neighbours=num_neighbours)
    out: dict[str, float] = {
        "kl": float(kl_dim.sum()),
        "mi": float(full["mi"]),
        "tc": float(full["tc"]),
        "dimwise_kl": float(full["dimwise_kl"]),
        "kl_estimate": float(full["kl_estimate"]),
    }
    for j, v in enumerate(np.asarray(full["dimwise_kl_per_dim"])):
        out[f"dimwise_kl_z{j}"] = float(v)
    for j, v in enumerate(kl_dim):
        out[f"kl_z{j}"] = float(v)
    if num_minibatches > 0:
        bs = min(int(minibatch_size), len(data))
        for est in ("mws", "mss"):
            mb = decompose_minibatch(mean, logvar, rng, bs, int(num_minibatches), est)
            for key, val in mb.items():
                out[f"{key}_{est}"] = val
    out["log_dataset_size"] = math.log(len(data))
    return out
