"""FactorVAE score (Kim & Mnih, 2018) as in disentanglement_lib's ``factor_vae.py``.

Codes are divided by their global standard deviation (estimated on ``num_variance_estimate``
points, ``ddof=1``); collapsed dimensions (std below ``prune_threshold``) are dropped. One
vote: fix one factor ``k`` in a batch of ``batch_size`` factor vectors; the code dimension
with the least normalised variance votes for ``k`` (batches from
:meth:`~dislab.data.GroundTruthData.sample_index_fixing`: on labelled rows, rows sharing the
factor's value). The majority-vote classifier maps each
dimension to the factor it voted for most; its accuracy is reported on the training votes and
on ``num_eval`` fresh votes.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import Representation, encode_index
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import check_count, check_data

__all__ = ["factor_vae_score"]

_CHUNK = 2048


def _votes(
    data: GroundTruthData,
    representation: Representation,
    num_votes: int,
    batch_size: int,
    active: np.ndarray,
    global_var: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Vote matrix ``(num_active_dims, K)``."""
    votes = np.zeros((int(active.sum()), data.num_factors), dtype=np.int64)
    k_all = rng.integers(0, data.num_factors, size=num_votes)
    for start in range(0, num_votes, _CHUNK):
        k = k_all[start:start + _CHUNK]
        n = len(k)
        index = data.sample_index_fixing(k, batch_size, rng)
        codes = encode_index(data, representation, index)
        codes = codes.reshape(n, batch_size, -1)[:, :, active]
        local_var = codes.var(axis=1, ddof=1)
        dim = np.argmin(local_var / global_var[active][None, :], axis=1)
        np.add.at(votes, (dim, k), 1)
    return votes


@register_metric("factor_vae", headline="eval_accuracy", label="FactorVAE score",
                 keys=("train_accuracy", "eval_accuracy", "num_active_dims"))
def factor_vae_score(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> dict[str, float]:
    """FactorVAE score: majority-vote accuracy of the least-variance dimension.

    Defaults from the study's ``factor_vae_metric.gin`` (batch_size 64, num_train 10000, num_eval
    5000, num_variance_estimate 10000, ``prune_dims.threshold`` 0.05; the function default in
    disentanglement_lib is 0). Fixes against disentanglement_lib
    (``evaluation/metrics/factor_vae.py``, ``compute_factor_vae``): ``num_active_dims`` is the
    number of active dimensions (dlib reports the total), and a dimension with zero global variance
    is never active (dlib divides 0/0 when the threshold is 0 and every vote goes to dimension 0).

    Returns ``train_accuracy``, ``eval_accuracy``, ``num_active_dims``; all 0 when no
    dimension is active.
    """
    data = check_data(data)
    batch_size = check_count(batch_size, 2, "batch_size")
    num_train = check_count(num_train, 1, "num_train")
    num_eval = check_count(num_eval, 1, "num_eval")
    num_variance_estimate = check_count(num_variance_estimate, 2, "num_variance_estimate")
    index = data.sample_index(num_variance_estimate, rng)
    global_var = encode_index(data, representation, index).var(axis=0, ddof=1)
    active = (np.sqrt(global_var) >= prune_threshold) & (global_var > 0)
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    train = _votes(data, representation, num_train, batch_size, active, global_var, rng)
    classifier = np.argmax(train, axis=1)
    train_acc = float(train.max(axis=1).sum() / train.sum())
    evals = _votes(data, representation, num_eval, batch_size, active, global_var, rng)
    eval_acc = float(evals[np.arange(len(classifier)), classifier].sum() / evals.sum())
    return {
        "train_accuracy": train_acc,
        "eval_accuracy": eval_acc,
        "num_active_dims": float(active.sum()),
    }
