"""Named metric modes: dislab's defaults, or the numbers as disentanglement_lib's study made them.

``compat="default"`` runs every metric with its own defaults. ``compat="dlib"`` selects, for
the metrics that have them, the settings of the code that produced Locatello et al. 2019's
numbers (google-research/disentanglement_lib, run on the scikit-learn of 2019):

* ``sklearn="2019"`` for ``beta_vae``, ``modularity`` (explicitness), ``sap`` and
  ``downstream_logistic_regression``: ``LogisticRegression()`` as liblinear one-vs-rest,
  ``LogisticRegressionCV`` one-vs-rest, ``LinearSVC(dual=True)``
  (:mod:`dislab.metrics.utils`: ``logistic_regression``, ``logistic_regression_cv``,
  ``linear_svc``; disentanglement_lib ``evaluation/metrics/utils.py``,
  ``beta_vae.py``, ``modularity_explicitness.py``, ``sap_score.py``);
* ``booster="reference"`` for ``dci`` and ``downstream_boosted_trees``: scikit-learn's own
  ``GradientBoostingClassifier()`` (``utils.gradient_boosting_classifier``), whose ties
  between equal splits the compiled booster breaks differently.

Parameters a caller passes explicitly win over the mode's. Results carry the mode they were
made in (``metrics.json``: ``"compat"`` at the top and per metric; a study's table: column
``compat``). docs/fidelity.md lists every difference and its measured effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dislab.metrics.base import MetricError

__all__ = ["COMPAT_MODES", "MODE_PARAMS", "check_compat", "compat_params"]

#: the named modes
COMPAT_MODES = ("default", "dlib")

#: per mode: parameter -> value, applied to every metric that has that parameter
MODE_PARAMS: dict[str, dict[str, Any]] = {
    "default": {},
    "dlib": {"sklearn": "2019", "booster": "reference"},
}


def check_compat(compat: str | None) -> str:
    """The mode name (``None`` -> ``"default"``); :class:`MetricError` for an unknown one."""
    if compat is None:
        return "default"
    if compat not in COMPAT_MODES:
        raise MetricError(f"unknown compat mode {compat!r}; choose one of "
                          f"{', '.join(COMPAT_MODES)} ('dlib': disentanglement_lib's 2019 "
                          "settings).")
    return compat


def compat_params(
    compat: str | None,
    names: Iterable[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-metric parameters of mode ``compat`` for metrics ``names``, with the explicit
    ``params`` on top (only metrics in ``names`` that have a parameter get an entry)."""
    from dislab.metrics.registry import get_metric

    mode = MODE_PARAMS[check_compat(compat)]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        defaults = get_metric(name).defaults
        chosen = {k: v for k, v in mode.items() if k in defaults}
        chosen.update((params or {}).get(name, {}))
        if chosen:
            out[name] = chosen
    for name, given in (params or {}).items():
        if name not in out and given:
            out[name] = dict(given)
    return out
