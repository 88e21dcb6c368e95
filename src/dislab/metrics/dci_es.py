"""Explicitness (E) and size (S) of the DCI-ES framework: Eastwood et al. 2023, *DCI-ES: An
Extended Disentanglement Framework with Connections to Identifiability* (ICLR), §4.

Explicitness is the ease of using a representation: probes of increasing capacity
``kappa_1 < ... < kappa_n`` predict a factor from the codes; their test losses form the
loss-capacity curve. With ``l*`` the lowest loss (first reached at ``kappa*``) and ``l^b`` the
loss of a baseline that ignores the codes (majority class; mean for continuous factors),

    AULCC = integral from kappa_1 to kappa* of (loss(kappa) - l*)   (trapezoids),
    Z     = (l^b - l*) (kappa_n - kappa_1) / 2                       (the triangle under the
                                                                       line from (kappa_1, l^b)
                                                                       to (kappa_n, l*)),
    E     = 1 - AULCC / Z,

so ``E = 1`` when the smallest probe already reaches the lowest loss. The construction of
``AULCC`` and its normaliser follows the authors' figure code (cianeastwood/loss_capacity_curves,
``plot.py``, ``lc_curve``). Size is ``S = K / d``, the number of factors over the code size
(1 for a code as small as the factors, smaller for larger codes).

Probes: decision trees of ``max_depth`` = each capacity (``DecisionTreeClassifier`` for
discrete factors with the 0-1 loss, ``DecisionTreeRegressor`` for continuous ones with the
squared error of the standardised factor); the paper's experiments use other probe families
(its point is the curve, not the family), so ``E`` is comparable between representations
scored with the same ``capacities`` only. E is reported per factor and averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.arrays import sample_codes_values
from dislab.metrics.base import MetricError, Representation
from dislab.metrics.registry import register_metric
from dislab.metrics.utils import check_count, check_data, sklearn_seed

__all__ = ["dci_es", "explicitness_from_curve", "loss_capacity_curve"]


def explicitness_from_curve(capacities: Sequence[float], losses: Sequence[float],
                            baseline_loss: float) -> float:
    """``E = 1 - AULCC / Z`` of a loss-capacity curve (see the module docstring).

    ``capacities`` increasing, ``losses`` the probes' test losses, ``baseline_loss`` ``l^b``.
    A curve whose best loss is no better than the baseline has ``E = 0``.
    """
    k = np.asarray(capacities, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    if k.ndim != 1 or k.shape != loss.shape or len(k) < 2 or np.any(np.diff(k) <= 0):
        raise MetricError("a loss-capacity curve needs at least 2 strictly increasing "
                          "capacities, one loss each.")
    best = int(np.argmin(loss))
    l_star = loss[best]
    z = 0.5 * (baseline_loss - l_star) * (k[-1] - k[0])
    if z <= 0:
        return 0.0
    gap = loss[:best + 1] - l_star
    aulcc = float(np.sum(0.5 * (gap[1:] + gap[:-1]) * np.diff(k[:best + 1])))
    return float(1.0 - aulcc / z)


def loss_capacity_curve(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    capacities: Sequence[int], continuous: bool, seed: int,
) -> tuple[np.ndarray, float]:
    """Test losses of trees of each ``max_depth`` in ``capacities`` and the baseline loss."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    losses = []
    if continuous:
        mu, sd = y.mean(), y.std()
        sd = sd if sd > 0 else 1.0
        y, y_test = (y - mu) / sd, (y_test - mu) / sd
        baseline = float(np.mean((y_test - y.mean()) ** 2))
        for c in capacities:
            tree = DecisionTreeRegressor(max_depth=int(c), random_state=seed).fit(x, y)
            losses.append(float(np.mean((tree.predict(x_test) - y_test) ** 2)))
    else:
        values, counts = np.unique(y, return_counts=True)
        baseline = float(np.mean(y_test != values[np.argmax(counts)]))
        for c in capacities:
            tree = DecisionTreeClassifier(max_depth=int(c), random_state=seed).fit(x, y)
            losses.append(float(np.mean(tree.predict(x_test) != y_test)))
    return np.asarray(losses), baseline


@register_metric("dci_es", default=False, headline="explicitness", label="DCI-ES explicitness",
                 keys=("explicitness", "explicitness_factor_{factor}", "size"))
def dci_es(
    data: GroundTruthData,
    representation: Representation,
    rng: np.random.Generator,
    num_train: int = 10_000,
    num_test: int = 5_000,
    capacities: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
) -> dict[str, float]:
    """DCI-ES explicitness E (area under the loss-capacity curve) and size S = K / d.

    ``num_train``/``num_test`` as DCI's (disentanglement_lib's ``dci.gin``); ``capacities``:
    the tree depths of the probes. Continuous factors (given to :func:`dislab.metrics.score`
    as such) use regression trees on their values. Returns ``explicitness``, ``size`` and
    ``explicitness_factor_<name>``.
    """
    data = check_data(data)
    num_train = check_count(num_train, 2, "num_train")
    num_test = check_count(num_test, 1, "num_test")
    caps = [check_count(c, 1, "each capacity (tree depth)") for c in capacities]
    x, labels, values = sample_codes_values(data, representation, num_train, rng, "train")
    xt, labels_t, values_t = sample_codes_values(data, representation, num_test, rng, "test")
    kinds = getattr(data, "factor_kinds", ("discrete",) * data.num_factors)
    seed = sklearn_seed(rng)
    out: dict[str, float] = {}
    per = []
    for k, name in enumerate(data.factor_names):
        cont = kinds[k] == "continuous"
        y, yt = (values[:, k], values_t[:, k]) if cont else (labels[:, k], labels_t[:, k])
        if len(np.unique(y)) < 2:
            continue  # a constant factor: nothing to predict
        losses, base = loss_capacity_curve(x, y, xt, yt, caps, cont, seed)
        e = explicitness_from_curve(caps, losses, base)
        per.append(e)
        out[f"explicitness_factor_{name}"] = e
    if not per:
        raise MetricError("every factor is constant in the sample; explicitness is undefined.")
    return {"explicitness": float(np.mean(per)),
            "size": data.num_factors / x.shape[1], **out}
