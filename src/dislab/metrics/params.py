"""Checking metric parameters (``--param METRIC.PARAM=VALUE``, ``params=`` of :func:`evaluate`).

Each parameter's type and range follow from its registered default (see
:mod:`dislab.metrics.registry`): an integer default takes whole numbers >= 1 (all are counts:
points, bins, neighbours, batch sizes); a float default takes finite numbers >= 0 (a
``*_quantile`` in (0, 1]); a pair of floats (``bin_limits``) two finite numbers, low < high; a
tuple of integers (the downstream tasks' training sizes) whole numbers >= 1; a bool a bool; a
string a string (its allowed values are checked by the metric). A ``None`` default is checked by
the metric itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from dislab.metrics.base import MetricError

__all__ = ["check_params"]


def _fail(metric: str, name: str, value: Any, want: str, default: Any) -> MetricError:
    return MetricError(
        f"metric parameter {metric}.{name}={value!r}: {want} (default {default!r}); "
        f"e.g. --param {metric}.{name}={_example(default)}.")


def _example(default: Any) -> str:
    if isinstance(default, (tuple, list)):
        return "[" + ",".join(str(v) for v in default) + "]"
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer():
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _check_one(metric: str, name: str, value: Any, default: Any) -> Any:
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(metric, name, value, "must be true or false", default)
        return value
    if isinstance(default, Integral):
        v = _as_int(value)
        if v is None or v < 1:
            raise _fail(metric, name, value, "must be a whole number >= 1", default)
        return v
    if isinstance(default, Real):
        f = _as_float(value)
        if f is None or f < 0:
            raise _fail(metric, name, value, "must be a finite number >= 0", default)
        if name.endswith("quantile") and not 0 < f <= 1:
            raise _fail(metric, name, value, "must be a number in (0, 1]", default)
        return f
    if isinstance(default, str):
        if not isinstance(value, str):
            raise _fail(metric, name, value, "must be a string", default)
        return value
    if isinstance(default, (tuple, list)):
        if not isinstance(value, (tuple, list)) or not value:
            raise _fail(metric, name, value, "must be a non-empty list", default)
        if all(isinstance(d, Integral) and not isinstance(d, bool) for d in default):
            ints = [_as_int(v) for v in value]
            if any(v is None or v < 1 for v in ints):
                raise _fail(metric, name, value, "must be a list of whole numbers >= 1",
                            default)
            return tuple(ints)
        if all(isinstance(d, Real) and not isinstance(d, bool) for d in default):
            floats = [_as_float(v) for v in value]
            if any(v is None for v in floats):
                raise _fail(metric, name, value, "must be a list of finite numbers", default)
            if len(default) == 2 and (len(floats) != 2 or not floats[0] < floats[1]):  # type: ignore[operator]
                raise _fail(metric, name, value, "must be [low, high] with low < high",
                            default)
            return tuple(floats)
    return value


def check_params(metric: str, defaults: Mapping[str, Any],
                 given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` checked against the metric's ``defaults``: known names, types, ranges.

    Returns the values converted to the default's type (``1e4`` -> ``10000``, a list -> a
    tuple); raises :class:`~dislab.metrics.base.MetricError` naming the parameter and the fix.
    """
    unknown = set(given) - set(defaults)
    if unknown:
        raise MetricError(f"metric {metric!r} has no parameter(s) {sorted(unknown)}; "
                          f"its parameters: {sorted(defaults)}.")
    return {k: _check_one(metric, k, v, defaults[k]) for k, v in given.items()}
