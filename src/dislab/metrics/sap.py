"""Separated Attribute Predictability (Kumar et al., 2018) as in disentanglement_lib's
``sap_score.py``.

Score matrix ``S[i, k]``: how well code ``i`` alone predicts factor ``k``. For discrete
factors (the study), the test accuracy of a ``LinearSVC(C=0.01, class_weight="balanced")`` fit
on code ``i``; for continuous factors, ``cov(z_i, v_k)^2 / (var z_i var v_k)``. SAP is the mean
over factors of the gap between the two largest entries of the column.
"""

from __future__ import annotations

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import Representation
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import (
    check_count,
    check_data,
    fit_or_constant,
    linear_svc,
    sample_codes,
)

__all__ = ["sap_score", "sap_from_matrix", "sap_score_matrix"]


def sap_score_matrix(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
    sklearn: str = "current",
) -> np.ndarray:
    """Score matrix ``(d, K)`` of single-code predictability (``sklearn``: the SVM's
    settings, :func:`dislab.metrics.utils.linear_svc`)."""
    d, num_factors = codes.shape[1], factors.shape[1]
    s = np.zeros((d, num_factors))
    for i in range(d):
        z = codes[:, i]
        for k in range(num_factors):
            y = factors[:, k]
            if continuous_factors:
                var_z = np.var(z, ddof=1)
                var_y = np.var(y, ddof=1)
                if var_z > 1e-12 and var_y > 0:
                    cov = np.cov(z, y, ddof=1)[0, 1]
                    s[i, k] = cov**2 / (var_z * var_y)
            else:
                clf = fit_or_constant(
                    lambda: linear_svc(sklearn), z[:, None], y,
                )
                s[i, k] = np.mean(clf.predict(codes_test[:, i:i + 1]) == factors_test[:, k])
    return s


def sap_from_matrix(s: np.ndarray) -> float:
    """Mean over factors of (largest - second largest) score per column of ``s (d, K)``."""
    top = np.sort(s, axis=0)[::-1]
    second = top[1] if s.shape[0] > 1 else np.zeros(s.shape[1])
    return float(np.mean(top[0] - second))


@register_metric("sap", headline="SAP_score", label="SAP", keys=("SAP_score",))
def sap_score(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_test: int = 5_000,
    continuous_factors: bool = False,
    sklearn: str = "current",
) -> dict[str, float]:
    """Separated attribute predictability: per factor, the gap in prediction score between the
    two latents that predict it best (Kumar et al. 2018).

    Defaults from the study's ``sap_score.gin``: num_train 10000, num_test 5000, continuous_factors
    False (disentanglement_lib ``config/unsupervised_study_v1/metric_configs/sap_score.gin``). The
    SVM is solved in the primal (``dual=False``): the squared-hinge objective has one optimum, so
    this gives the dual solver's answer (dlib's sklearn default) up to tolerance, many times faster
    on one feature, and does not depend on sklearn's changing ``dual`` default. SAP is not invariant
    to rescaling a code (C is fixed). ``sklearn="2019"``: ``dual=True`` as the study's scikit-learn,
    which stops at 1000 iterations on large codes before converging (docs/fidelity.md has the
    effect). Returns ``SAP_score``.
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    num_test = check_count(num_test, 1, "num_test")
    codes, factors = sample_codes(data, representation, num_train, rng, split="train")
    codes_test, factors_test = sample_codes(data, representation, num_test, rng,
                                            split="test")
    s = sap_score_matrix(codes, factors, codes_test, factors_test, continuous_factors,
                         sklearn)
    return {"SAP_score": sap_from_matrix(s)}
