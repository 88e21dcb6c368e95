"""The metric registry: ``@register_metric`` and look-up by name.

A metric is a function ``score(data, representation, rng, **params) -> dict[str, float]`` with
keyword defaults equal to the published ones. Register it with::

    @register_metric("mig", default=True)
    def mig(data, representation, rng, num_train=10_000, num_bins=20): ...

``default=True`` puts it in the suite that :func:`dislab.metrics.evaluate` runs when no
metric names are given; ``needs_posterior=True`` marks metrics that need q(z|x) (a
:class:`~dislab.metrics.base.CodeTable` with ``logvar``, or a function returning
``(mean, logvar)``); such metrics are skipped with a note for deterministic encoders.
``needs_factors=False`` marks metrics that need no factor labels (they run on unlabelled
data, ``dislab.data.load("images", path=DIR)``; the others are skipped there with the reason).
``needs_grid=True`` marks metrics that set factors to arbitrary values (fairness, the strong
downstream task): they are skipped with the reason on labelled rows that are not a full grid.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dislab.metrics.base import MetricError

__all__ = ["MetricSpec", "register", "get", "names", "register_metric", "get_metric", "available",
           "default_metrics"]


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its function, whether it is in the default suite, its defaults."""

    name: str
    fn: Callable[..., dict[str, float]]
    default: bool = True
    needs_posterior: bool = False
    description: str = ""
    needs_factors: bool = True
    needs_grid: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, MetricSpec] = {}


def _keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    out = {}
    for i, (name, p) in enumerate(inspect.signature(fn).parameters.items()):
        if i < 3 or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue  # data, representation, rng
        if p.default is not p.empty:
            out[name] = p.default
    return out


def register_metric(
    name: str, default: bool = True, needs_posterior: bool = False, needs_factors: bool = True,
    needs_grid: bool = False,
) -> Callable[[Callable[..., dict[str, float]]], Callable[..., dict[str, float]]]:
    """Decorator registering ``score(data, representation, rng, **params)`` under ``name``."""

    def wrap(fn: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[name] = MetricSpec(
            name=name,
            fn=fn,
            default=default,
            needs_posterior=needs_posterior,
            description=doc.splitlines()[0] if doc else "",
            defaults=_keyword_defaults(fn),
            needs_factors=needs_factors,
            needs_grid=needs_grid,
        )
        return fn

    return wrap


def _load_all() -> None:
    # Importing the package imports every metric module, which registers itself.
    import dislab.metrics  # noqa: F401


def get_metric(name: str) -> MetricSpec:
    """The :class:`MetricSpec` registered as ``name``; :class:`MetricError` if unknown."""
    _load_all()
    if name not in _REGISTRY:
        raise MetricError(
            f"unknown metric {name!r}; available: {', '.join(sorted(_REGISTRY))} "
            "(`dislab metrics` lists them with their defaults)."
        )
    return _REGISTRY[name]


def available() -> list[str]:
    """Names of all registered metrics, sorted."""
    _load_all()
    return sorted(_REGISTRY)


#: The registry vocabulary shared with :mod:`dislab.data` and :mod:`dislab.models`:
#: ``register`` (decorator), ``get`` (one entry, clear error if unknown), ``names`` (sorted).
register = register_metric
get = get_metric
names = available


def default_metrics() -> list[str]:
    """Names of the metrics in the default suite, sorted."""
    _load_all()
    return sorted(n for n, s in _REGISTRY.items() if s.default)
