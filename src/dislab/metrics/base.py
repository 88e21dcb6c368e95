"""What every metric shares: representations, code look-up and input validation.

A *representation* is either

* a function ``images (n, *observation_shape) float32 -> codes (n, d)`` (any encoder, any
  framework), optionally returning ``(mean, logvar)`` when the metric needs q(z|x); or
* a :class:`CodeTable`: codes of the points of a full-grid data set, looked up by flat grid
  index instead of encoding images again; a lazy table encodes the rows a metric asks for
  the first time and keeps them.

A metric is ``score(data, representation, rng, **params) -> dict[str, float]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.errors import MetricError
from dislab.representation.table import CodeTable, _as_array, check_codes

__all__ = [
    "CodeTable",
    "Representation",
    "MetricError",
    "encode_index",
    "encode_factors",
    "posterior_index",
    "check_codes",
]

#: What a metric scores: a :class:`CodeTable` or a function ``images -> codes`` (see above).
Representation = CodeTable | Callable[[np.ndarray], Any]


def _call(representation: Callable[[np.ndarray], Any], images: np.ndarray) -> Any:
    out = representation(images)
    if isinstance(out, (tuple, list)):
        return tuple(_as_array(o) for o in out)
    return _as_array(out)


def encode_index(
    data: GroundTruthData,
    representation: Representation,
    index: np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """Codes ``(n, d)`` of grid points ``index (n,)``: look-up or batched encoding."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if isinstance(representation, CodeTable):
        return representation.lookup(data, index)[0]
    outs = []
    for start in range(0, len(index), batch_size):
        out = _call(representation, data.images_from_index(index[start:start + batch_size]))
        outs.append(out[0] if isinstance(out, tuple) else out)
    if not outs:
        raise MetricError("no points to encode (n = 0).")
    codes = np.concatenate(outs, axis=0)
    if codes.ndim == 1:
        codes = codes[:, None]
    if codes.shape[0] != len(index):
        raise MetricError(
            f"representation returned {codes.shape[0]} codes for {len(index)} observations; "
            "it must return one row per observation."
        )
    return check_codes(codes)


def encode_factors(
    data: GroundTruthData,
    representation: Representation,
    factors: np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """Codes ``(n, d)`` of factor vectors ``(n, K)``."""
    return encode_index(data, representation, data.index(factors), batch_size)


def posterior_index(
    data: GroundTruthData,
    representation: Representation,
    index: np.ndarray,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``(mean, logvar)``, each ``(n, d)``, for metrics that need q(z|x).

    Requires a :class:`CodeTable` with ``logvar`` or a function returning ``(mean, logvar)``.
    """
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if isinstance(representation, CodeTable):
        if representation.logvar is None:
            raise MetricError(
                "this metric needs the posterior q(z|x) (mean and log-variance), but the code "
                "table has means only; encode with a Gaussian encoder (log-variances kept)."
            )
        mean, logvar = representation.lookup(data, index)
        assert logvar is not None
        return mean, logvar
    means, logvars = [], []
    for start in range(0, len(index), batch_size):
        out = _call(representation, data.images_from_index(index[start:start + batch_size]))
        if not isinstance(out, tuple) or len(out) != 2:
            raise MetricError(
                "this metric needs the posterior q(z|x): the representation must return "
                "(mean, logvar) arrays, or pass a CodeTable with logvar."
            )
        means.append(out[0])
        logvars.append(out[1])
    return check_codes(np.concatenate(means)), check_codes(np.concatenate(logvars))
