"""Unsupervised scores of Locatello et al. (2019), disentanglement_lib's
``unsupervised_metrics.py``: statistics of the codes alone (factors are not used).

* Gaussian total correlation of a Gaussian fitted to the codes:
  ``TC = 1/2 (sum_i log Sigma_ii - log det Sigma)``;
* Gaussian Wasserstein dependency: the squared 2-Wasserstein distance between that Gaussian and
  the product of its marginals, ``2 tr Sigma - 2 tr sqrt(D^1/2 Sigma D^1/2)`` with
  ``D = diag Sigma``, and its normalisation by ``tr Sigma``;
* mutual-information score: mean pairwise discrete MI of histogram-discretised codes.

Each is computed for the mean representation and, when the posterior is available, for the
sampled representation ``z = mu + exp(logvar / 2) eps`` (Locatello et al.'s "TC of the sampled
vs the mean representation"), with the suffix ``_sampled``.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import CodeTable, MetricError, Representation, posterior_index
from dislab.metrics.registry import Kind, register_metric
from dislab.metrics.utils import (
    check_count,
    check_data,
    discrete_mutual_info,
    discretize,
    encode_index,
)

__all__ = [
    "unsupervised_scores",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "code_statistics",
]

_STATISTICS = ("gaussian_total_correlation", "gaussian_wasserstein_correlation",
               "gaussian_wasserstein_correlation_norm", "mutual_info_score")
#: Result keys: each statistic of the mean codes and (``sampled=True``, with q(z|x)) of codes
#: sampled from the posterior.
UNSUPERVISED_KEYS = _STATISTICS + tuple(f"{k}_sampled" for k in _STATISTICS)


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """TC (nats) of ``N(0, cov)``: KL to the product of its marginals. ``cov (d, d)``."""
    cov = np.asarray(cov, dtype=np.float64)
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        return float("inf")  # singular: some code is a linear function of the others
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """``2 tr C - 2 tr sqrtm(C diag(C))`` for ``cov (d, d)``, always real.

    disentanglement_lib takes ``scipy.linalg.sqrtm`` of the non-symmetric ``C D``, which comes out
    complex for singular covariances (``evaluation/metrics/unsupervised_metrics.py``). ``C D`` has
    the eigenvalues of the symmetric PSD ``D^1/2 C D^1/2``, so the trace of its square root is the
    sum of their square roots (negative round-off clipped to 0).
    """
    cov = np.asarray(cov, dtype=np.float64)
    root = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    eig = np.linalg.eigvalsh(root[:, None] * cov * root[None, :])
    return float(2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(np.clip(eig, 0.0, None))))


def code_statistics(codes: np.ndarray, num_bins: int = 20, discretizer: str = "histogram"
                    ) -> dict[str, float]:
    """The four unsupervised scores of a code sample ``(n, d)``.

    Constant columns are left out of the Gaussian fits (a dimension with zero variance is
    independent of the rest; dlib takes log 0 there).
    """
    d = codes.shape[1]
    varying = codes[:, codes.var(axis=0) > 0]
    if varying.shape[1] == 0:
        tc = wass = wass_norm = 0.0
    else:
        cov = np.atleast_2d(np.cov(varying, rowvar=False))
        tc = gaussian_total_correlation(cov)
        wass = gaussian_wasserstein_correlation(cov)
        wass_norm = wass / float(np.trace(cov))
    if d > 1:
        disc = discretize(codes, discretizer, num_bins)
        m = discrete_mutual_info(disc, disc)
        np.fill_diagonal(m, 0.0)
        mi = float(m.sum() / (d * d - d))
    else:
        mi = 0.0
    return {
        "gaussian_total_correlation": tc,
        "gaussian_wasserstein_correlation": wass,
        "gaussian_wasserstein_correlation_norm": wass_norm,
        "mutual_info_score": mi,
    }


def _has_posterior(representation: Representation) -> bool:
    return not isinstance(representation, CodeTable) or representation.logvar is not None


@register_metric("unsupervised", needs_factors=False, headline="gaussian_total_correlation",
                 label="Gaussian total correlation", kind=Kind("lower", 0.0, None),
                 disentanglement=False, keys=UNSUPERVISED_KEYS)
def unsupervised_scores(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_bins: int = 20,
    sampled: bool = True,
) -> dict[str, float]:
    """Gaussian TC, Gaussian Wasserstein dependency and MI score of mean (and sampled) codes.

    Defaults from the study's ``unsupervised.gin``: num_train 10000, histogram discretizer with 20
    bins (``config/unsupervised_study_v1/metric_configs/unsupervised.gin``). The sampled codes use
    the same points and ``rng`` for the noise (dlib draws it in the TF graph, outside the evaluation
    seed: ``postprocessing/methods.py``, ``sampled_representation``). ``sampled`` is skipped
    silently when the representation has no posterior (a code table without logvar or a function
    returning one array).
    """
    data = check_data(data, needs_factors=False)
    num_train = check_count(num_train, 2, "num_train")
    index = data.sample_index(num_train, rng)
    out: dict[str, float] = {}
    if sampled and _has_posterior(representation):
        try:
            mean, logvar = posterior_index(data, representation, index)
        except MetricError:
            if isinstance(representation, CodeTable):
                raise
            mean, logvar = encode_index(data, representation, index), None
    else:
        mean, logvar = encode_index(data, representation, index), None
    out.update(code_statistics(mean, num_bins))
    if logvar is not None:
        z = mean + np.exp(0.5 * logvar) * rng.standard_normal(mean.shape)
        out.update({f"{k}_sampled": v for k, v in code_statistics(z, num_bins).items()})
    return out
