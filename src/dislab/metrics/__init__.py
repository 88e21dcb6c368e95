"""Disentanglement metrics: one file each, pure functions over a representation.

Every metric is ``score(data, representation, rng, **params) -> dict[str, float]``; see
:mod:`dislab.metrics.base` for the shared contract, :func:`evaluate` for the suite,
:func:`evaluate_run` for a training run, :func:`encode_grid` for a model's codes of the grid
(from :mod:`dislab.representation`, the layer between a run and its codes) and :func:`score`
for codes and factors you already have as arrays. What a metric returns and how it is shown
is declared where it is registered (:mod:`dislab.metrics.registry`).
"""

from dislab.metrics.arrays import score, score_records
from dislab.metrics.base import (
    CodeTable,
    MetricError,
    Representation,
    check_codes,
    encode_factors,
    encode_index,
    posterior_index,
)
from dislab.metrics.registry import (
    Kind,
    available,
    default_metrics,
    get,
    get_metric,
    names,
    register,
    register_metric,
)
from dislab.metrics.suite import evaluate, evaluate_run, run_metrics
from dislab.representation import encode_grid, model_representation

__all__ = [
    "CodeTable",
    "Kind",
    "MetricError",
    "Representation",
    "available",
    "check_codes",
    "default_metrics",
    "encode_factors",
    "encode_grid",
    "encode_index",
    "evaluate",
    "evaluate_run",
    "get",
    "get_metric",
    "model_representation",
    "names",
    "posterior_index",
    "register",
    "register_metric",
    "run_metrics",
    "score",
    "score_records",
]

# Each module registers its metric(s) on import. The imports are explicit: a module that fails
# to import raises here instead of dropping its metrics silently.
from dislab.metrics import (  # noqa: E402, F401
    beta_vae,
    chen_mig,
    dci,
    dci_es,
    dcimig,
    dotran,
    downstream,
    elbo_decomposition,
    factor_vae,
    fairness,
    infomec,
    irs,
    mcc,
    mig,
    mig_sup,
    modularity,
    reduced_downstream,
    sap,
    strong_downstream,
    unsupervised,
)
