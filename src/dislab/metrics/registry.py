"""The metric registry: ``@register_metric`` and look-up by name.

A metric is a function ``score(data, representation, rng, **params) -> dict[str, float]`` with
keyword defaults equal to the published ones. Register it with one line::

    @register_metric("mig", headline="discrete_mig", label="MIG",
                     keys=("discrete_mig", "mig_factor_{factor}"))
    def mig(data, representation, rng, num_train=10_000, num_bins=20): ...

The entry says everything the rest of dislab needs to know about the metric, so that nothing
else is edited to add one:

* what it runs on: ``default=True`` puts it in the suite that :func:`dislab.metrics.evaluate`
  runs when no metric names are given; ``needs_posterior=True`` marks metrics that need q(z|x)
  (a :class:`~dislab.representation.CodeTable` with ``logvar``, or a function returning
  ``(mean, logvar)``), skipped with a note for deterministic encoders; ``needs_factors=False``
  marks metrics that need no factor labels (they run on unlabelled data,
  ``dislab.data.load("images", path=DIR)``; the others are skipped there with the reason);
  ``needs_grid=True`` marks metrics that set factors to arbitrary values (fairness, the strong
  downstream task), skipped with the reason on labelled rows that are not a full grid;
* what it returns: ``keys``, the result keys as patterns (:func:`key_pattern`: ``{z}`` a latent
  index, ``{k}``/``{i}`` a factor index, ``{n}`` a training-set size, ``{factor}`` a factor name,
  any other ``{...}`` a part without ``:``), checked by ``tests/test_metric_contracts.py``;
* how it is shown: the ``headline`` key (a pattern with ``{n}`` picks the largest ``n``
  present), its ``label``, its :class:`Kind` (``better``: ``"higher"`` or ``"lower"``, and the
  range of values) and ``disentanglement``: whether it is a disentanglement score (a headline
  card of the run report, a column of the study's score table and figures) or another
  evaluation that has figures of its own (downstream tasks, total correlation, fairness);
* its random stream: ``stream`` (default: its name). Metrics on the same stream draw the same
  points for a seed (:func:`dislab.metrics.suite.metric_rng`).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dislab.errors import MetricError

__all__ = ["Kind", "MetricSpec", "register", "unregister", "get", "names", "register_metric",
           "get_metric", "available", "default_metrics", "key_pattern"]

#: Placeholders of result-key patterns that stand for a number; any other ``{name}`` matches a
#: factor name (``{factor}``) or a part of the key without ``:``.
_NUMBER_PLACEHOLDERS = frozenset({"z", "k", "i", "n"})
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def key_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a result-key pattern (see the module docstring)."""
    out, last = [], 0
    for m in _PLACEHOLDER.finditer(pattern):
        out.append(re.escape(pattern[last:m.start()]))
        name = m.group(1)
        out.append(r"(\d+)" if name in _NUMBER_PLACEHOLDERS
                   else "(.+)" if name == "factor" else "([^:]+)")
        last = m.end()
    out.append(re.escape(pattern[last:]))
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class Kind:
    """How to read a metric's headline: which direction is better, and its range (``None``:
    unbounded on that side)."""

    better: str = "higher"
    low: float | None = 0.0
    high: float | None = 1.0

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower"):
            raise MetricError(f"Kind.better must be 'higher' or 'lower', got {self.better!r}.")

    def describe(self) -> str:
        """E.g. ``"higher is better, in [0, 1]"``."""
        if self.low is None and self.high is None:
            return f"{self.better} is better"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{self.better} is better, in [{lo}, {hi}]"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the range (a small tolerance for rounding)."""
        tol = 1e-9
        return ((self.low is None or value >= self.low - tol)
                and (self.high is None or value <= self.high + tol))


#: The usual kind: a score in [0, 1], higher is better.
UNIT = Kind()


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its function, what it runs on, what it returns and how it is shown
    (see the module docstring)."""

    name: str
    fn: Callable[..., dict[str, float]]
    default: bool = True
    needs_posterior: bool = False
    description: str = ""
    needs_factors: bool = True
    needs_grid: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    headline: str = ""
    label: str = ""
    kind: Kind = UNIT
    disentanglement: bool = True
    stream: str = ""
    keys: tuple[str, ...] = ()

    def key_of(self, key: str) -> str | None:
        """The pattern of :attr:`keys` that result key ``key`` matches, or None."""
        return next((p for p in self.keys if key_pattern(p).match(key)), None)

    def headline_key(self, keys: Iterable[str]) -> str | None:
        """The headline among result keys ``keys``: :attr:`headline` itself, or for a pattern
        the match with the largest numbers (e.g. the largest training set); None if absent."""
        keys = list(keys)
        if "{" not in self.headline:
            return self.headline if self.headline in keys else None
        pattern = key_pattern(self.headline)
        found = [(m, k) for k in keys if (m := pattern.match(k))]
        if not found:
            return None

        def numbers(m: re.Match[str]) -> tuple[float, ...]:
            return tuple(float(g) if g.isdigit() else math.inf for g in m.groups())

        return max(found, key=lambda mk: numbers(mk[0]))[1]

    def headline_value(self, values: dict[str, Any]) -> float | None:
        """The headline value of a result dict (``None`` if absent or not finite)."""
        key = self.headline_key(values)
        v = values.get(key) if key is not None else None
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)


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
    needs_grid: bool = False, *, headline: str | None = None, label: str | None = None,
    kind: Kind = UNIT, disentanglement: bool = True, stream: str | None = None,
    keys: Iterable[str] | None = None,
) -> Callable[[Callable[..., dict[str, float]]], Callable[..., dict[str, float]]]:
    """Decorator registering ``score(data, representation, rng, **params)`` under ``name``.

    ``headline`` defaults to ``name``, ``label`` to ``name``, ``keys`` to ``(headline,)``,
    ``stream`` to ``name`` (see the module docstring for each). A name registered twice, or a
    headline that is not among the keys, raises :class:`~dislab.errors.MetricError`.
    """
    headline = headline or name
    key_list = tuple(keys) if keys is not None else (headline,)
    if headline not in key_list:
        raise MetricError(f"metric {name!r}: its headline {headline!r} is not among its keys "
                          f"{list(key_list)}; list it in keys=.")
    if name in _REGISTRY:
        raise MetricError(f"metric {name!r} is registered already (by "
                          f"{_REGISTRY[name].fn.__module__}); pick another name, or unregister "
                          "the old one first (dislab.metrics.registry.unregister).")

    def wrap(fn: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[name] = MetricSpec(
            name=name,
            fn=fn,
            default=default,
            needs_posterior=needs_posterior,
            description=" ".join(doc.split("\n\n")[0].split()),
            defaults=_keyword_defaults(fn),
            needs_factors=needs_factors,
            needs_grid=needs_grid,
            headline=headline,
            label=label or name,
            kind=kind,
            disentanglement=disentanglement,
            stream=stream or name,
            keys=key_list,
        )
        return fn

    return wrap


def unregister(name: str) -> None:
    """Remove metric ``name`` from the registry (tests that register a metric of their own
    clean up with it); unknown names raise :class:`~dislab.errors.MetricError`."""
    get_metric(name)
    del _REGISTRY[name]


def get_metric(name: str) -> MetricSpec:
    """The :class:`MetricSpec` registered as ``name``; :class:`MetricError` if unknown."""
    if name not in _REGISTRY:
        raise MetricError(
            f"unknown metric {name!r}; available: {', '.join(sorted(_REGISTRY))} "
            "(`dislab metrics` lists them with their defaults)."
        )
    return _REGISTRY[name]


def available() -> list[str]:
    """Names of all registered metrics, sorted."""
    return sorted(_REGISTRY)


#: The registry vocabulary shared with :mod:`dislab.data` and :mod:`dislab.models`:
#: ``register`` (decorator), ``get`` (one entry, clear error if unknown), ``names`` (sorted).
register = register_metric
get = get_metric
names = available


def default_metrics() -> list[str]:
    """Names of the metrics in the default suite, sorted."""
    return sorted(n for n, s in _REGISTRY.items() if s.default)
