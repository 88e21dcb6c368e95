"""Low-level Gaussian estimators shared by models and metrics (pure torch, batched).

Notation: a batch of ``B`` data points ``x_i`` with factorised Gaussian posteriors
``q(z|x_i) = N(mu_i, diag(exp(logvar_i)))`` (``mu``, ``logvar``: ``(B, d)``) and one sample
``z_j ~ q(z|x_j)`` per point (``z``: ``(B, d)``). The aggregate posterior over a data set of
``N`` points is ``q(z) = (1/N) sum_n q(z|x_n)``.

* :func:`gaussian_log_density`, :func:`gaussian_kl`: element-wise.
* :func:`pairwise_log_density`: ``[j, i, l] = log q(z_jl | x_i)``, the ``(B, B, d)`` tensor all
  minibatch estimators start from.
* :func:`log_qz_mws` / :func:`log_qz_mss`: ``log q(z_j)`` and ``log prod_l q(z_jl)`` by
  minibatch weighted / stratified sampling (Chen et al. 2018, §C.1 / §C.2).
* :func:`total_correlation`: ``mean_j [log q(z_j) - log prod_l q(z_jl)]``.

Conventions (disentanglement_lib ``methods/unsupervised/vae.py``, ``total_correlation``;
Chen et al. 2018 and rtqichen/beta-tcvae ``vae_quant.py``): disentanglement_lib's
``total_correlation`` is MWS *without* the ``-log(N B)`` constant; it is biased downward by
``(d - 1) log(N B)`` (``include_constant=False`` reproduces it; its unit test gives
``-9 log(10000) = -82.89`` for d=10, B=10000, all posteriors N(0, I)). MSS uses the weights the
paper defines (1/N for the point that generated the sample, (N-M)/(NM) for one stratum point,
1/M for the other M-1 points, M = B-1; every row sums to 1), not the ones the authors' released
code builds.
"""

from __future__ import annotations

import math

import torch

from dislab.errors import DislabError

__all__ = [
    "LOG_2PI",
    "gaussian_log_density",
    "gaussian_kl",
    "pairwise_log_density",
    "mss_log_weights",
    "log_qz_mws",
    "log_qz_mss",
    "total_correlation",
]

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise ``log N(x; mu, exp(logvar))`` (broadcasting).

    ``-0.5 * ((x - mu)^2 exp(-logvar) + logvar + log 2 pi)``; e.g. ``x=1, mu=0, logvar=0`` gives
    ``-1.4189`` (disentanglement_lib ``vae_test``).
    """
    return -0.5 * ((x - mu).square() * torch.exp(-logvar) + logvar + LOG_2PI)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-dimension ``KL(N(mu, exp(logvar)) || N(0, 1))``, same shape as ``mu``.

    ``0.5 * (mu^2 + exp(logvar) - logvar - 1)``. The study's ``kl_loss`` is
    ``gaussian_kl(mu, logvar).sum(1).mean()`` (``methods/unsupervised/vae.py``,
    ``compute_gaussian_kl``).
    """
    return 0.5 * (mu.square() + torch.exp(logvar) - logvar - 1.0)


def pairwise_log_density(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """``(B, B, d)`` tensor with ``[j, i, l] = log q(z_jl | x_i)``.

    ``z``: ``(B, d)`` samples; ``mu``, ``logvar``: ``(B', d)`` posterior parameters (``B'`` may
    differ from ``B``; the result is then ``(B, B', d)``).
    """
    return gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))


def _check(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> None:
    if z.dim() != 2 or mu.shape != z.shape or logvar.shape != z.shape:
        raise DislabError(
            f"z, mu and logvar must all have shape (batch, latent_dim); got {tuple(z.shape)}, "
            f"{tuple(mu.shape)}, {tuple(logvar.shape)}."
        )


def _check_dataset_size(dataset_size: int | None, batch_size: int) -> int:
    if dataset_size is None:
        raise DislabError(
            "This estimator needs the data set size N (dataset_size=len(data)); pass it, or use "
            "estimator='mws' with include_constant=False (disentanglement_lib's convention)."
        )
    if int(dataset_size) < batch_size:
        raise DislabError(
            f"dataset_size={dataset_size} is smaller than the batch size {batch_size}; pass the "
            "number of points in the whole data set."
        )
    return int(dataset_size)


def mss_log_weights(
    batch_size: int, dataset_size: int, device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Log of the ``(B, B)`` minibatch-stratified-sampling weight matrix (Chen et al. §C.2).

    Row ``j`` weighs the posteriors of the batch when estimating ``q(z_j)``, with ``M = B - 1``:
    ``1/N`` on the diagonal (the point that generated ``z_j``), ``(N - M)/(N M)`` for one
    stratum point (here column ``(j + 1) mod B``) and ``1/M`` for the remaining ``M - 1``
    points; each row sums to ``1/N + (M-1)/M + (N-M)/(NM) = 1``.
    """
    b = int(batch_size)
    if b < 2:
        raise DislabError(f"Minibatch stratified sampling needs a batch of at least 2; got {b}.")
    n = float(_check_dataset_size(dataset_size, b))
    m = float(b - 1)
    w = torch.full((b, b), 1.0 / m, dtype=torch.float64)
    idx = torch.arange(b)
    w[idx, idx] = 1.0 / n
    w[idx, (idx + 1) % b] = (n - m) / (n * m)
    return torch.log(w).to(device=device, dtype=dtype)


def log_qz_mws(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int | None = None,
    include_constant: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch weighted sampling (Chen et al. §C.1): ``(log q(z_j), log prod_l q(z_jl))``.

    ``log q(z_j) ~= logsumexp_i sum_l log q(z_jl|x_i) - log(N B)`` and
    ``log q(z_jl) ~= logsumexp_i log q(z_jl|x_i) - log(N B)``; both ``(B,)``. With
    ``include_constant=False`` the ``log(N B)`` terms are dropped (disentanglement_lib's
    convention, ``dataset_size`` then unused). Biased low: the generating point gets weight
    ``1/(N B)`` instead of ``1/N``.
    """
    _check(z, mu, logvar)
    lp = pairwise_log_density(z, mu, logvar)
    log_qz = torch.logsumexp(lp.sum(2), dim=1)
    log_prod = torch.logsumexp(lp, dim=1).sum(1)
    if include_constant:
        b = z.shape[0]
        c = math.log(_check_dataset_size(dataset_size, b) * b)
        log_qz = log_qz - c
        log_prod = log_prod - z.shape[1] * c
    return log_qz, log_prod


def log_qz_mss(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch stratified sampling (Chen et al. §C.2): ``(log q(z_j), log prod_l q(z_jl))``.

    ``log q(z_j) ~= logsumexp_i [log W_ji + sum_l log q(z_jl|x_i)]`` with ``W`` from
    :func:`mss_log_weights`; the marginals likewise per dimension. Both ``(B,)``.
    """
    _check(z, mu, logvar)
    lw = mss_log_weights(z.shape[0], dataset_size, device=z.device, dtype=z.dtype)
    lp = pairwise_log_density(z, mu, logvar)
    log_qz = torch.logsumexp(lp.sum(2) + lw, dim=1)
    log_prod = torch.logsumexp(lp + lw.unsqueeze(2), dim=1).sum(1)
    return log_qz, log_prod


def total_correlation(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int | None = None,
    estimator: str = "mws", include_constant: bool = True,
) -> torch.Tensor:
    """Total correlation ``mean_j [log q(z_j) - log prod_l q(z_jl)]`` (scalar tensor).

    ``estimator="mws"`` (default, as disentanglement_lib and the β-TCVAE paper's training) or
    ``"mss"``. For MWS, ``include_constant=False`` gives disentanglement_lib's value, lower by
    ``(d - 1) log(N B)``; it needs no ``dataset_size``. MSS always needs ``dataset_size``.
    """
    if estimator == "mws":
        log_qz, log_prod = log_qz_mws(z, mu, logvar, dataset_size, include_constant)
    elif estimator == "mss":
        log_qz, log_prod = log_qz_mss(z, mu, logvar, dataset_size)
    else:
        raise DislabError(f"Unknown total-correlation estimator {estimator!r}; use 'mws' or 'mss'.")
    return (log_qz - log_prod).mean()
