"""What every metric shares: representations, code look-up and input validation.

A *representation* is either

* a function ``images (n, *observation_shape) float32 -> codes (n, d)`` (any encoder, any
  framework), optionally returning ``(mean, logvar)`` when the metric needs q(z|x); or
* a :class:`CodeTable`: the codes of every point of a full-grid data set, row ``i`` for flat
  grid index ``i``, so a metric looks codes up instead of encoding images again.

A metric is ``score(data, representation, rng, **params) -> dict[str, float]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.errors import DislabError

__all__ = [
    "CodeTable",
    "Representation",
    "MetricError",
    "encode_index",
    "encode_factors",
    "posterior_index",
    "check_codes",
]


class MetricError(DislabError):
    """A metric cannot run on the given input; the message says why and what to do."""


@dataclass
class CodeTable:
    """Codes of every grid point of a data set.

    ``mean``: ``(N, d)`` float32, posterior means (or any deterministic codes);
    ``logvar``: ``(N, d)`` float32 posterior log-variances, or ``None`` for deterministic
    encoders. ``N`` must equal ``len(data)`` of the data set it is used with.
    """

    mean: np.ndarray
    logvar: np.ndarray | None = None
    #: Where the codes come from (data set, weights hash, ...), saved with the table as JSON.
    meta: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.mean = check_codes(np.asarray(self.mean, dtype=np.float32), "CodeTable.mean")
        if self.logvar is not None:
            self.logvar = check_codes(np.asarray(self.logvar, dtype=np.float32),
                                      "CodeTable.logvar")
            if self.logvar.shape != self.mean.shape:
                raise MetricError(
                    f"CodeTable: logvar shape {self.logvar.shape} differs from mean shape "
                    f"{self.mean.shape}."
                )

    @property
    def num_codes(self) -> int:
        return int(self.mean.shape[1])

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def save(self, path: str) -> None:
        """Write as ``.npz`` atomically (arrays and JSON ``meta`` only; see :meth:`load`)."""
        import json
        import os

        arrays: dict[str, Any] = {"mean": self.mean}
        if self.logvar is not None:
            arrays["logvar"] = self.logvar
        if self.meta is not None:
            arrays["meta"] = np.array(json.dumps(self.meta, sort_keys=True))
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> CodeTable:
        """Read a table written by :meth:`save` (no pickle)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                if "mean" not in f:
                    raise MetricError(f"{path}: not a code table (no 'mean' array); "
                                      "delete it to re-encode.")
                meta = None
                if "meta" in f:
                    import json

                    meta = json.loads(str(f["meta"][()]))
                return cls(f["mean"], f["logvar"] if "logvar" in f else None, meta)
        except (OSError, ValueError) as e:
            if isinstance(e, DislabError):
                raise
            raise MetricError(
                f"{path}: cannot read code table ({e}); delete it to re-encode."
            ) from e


Representation = CodeTable | Callable[[np.ndarray], Any]


def check_codes(codes: np.ndarray, what: str = "representation") -> np.ndarray:
    """Validate a code matrix ``(n, d)``: finite, 2-D. Returns it unchanged."""
    if codes.ndim != 2:
        raise MetricError(
            f"{what} must return codes of shape (n, num_codes), got shape {codes.shape}; "
            "flatten the code of each observation to one row."
        )
    if not np.all(np.isfinite(codes)):
        bad = int((~np.isfinite(codes)).any(axis=1).sum())
        raise MetricError(
            f"{what} produced NaN or infinite codes for {bad} of {codes.shape[0]} points; "
            "check the model (a diverged training run?) before scoring it."
        )
    return codes


def _check_table(data: GroundTruthData, table: CodeTable) -> None:
    if len(table) != len(data):
        raise MetricError(
            f"CodeTable has {len(table)} rows but data set {data.name!r} has {len(data)} grid "
            "points; a code table must hold the codes of the full grid of the same data set."
        )


def _call(representation: Callable[[np.ndarray], Any], images: np.ndarray) -> Any:
    out = representation(images)
    if isinstance(out, tuple):
        return tuple(np.asarray(o) for o in out)
    return np.asarray(out)


def encode_index(
    data: GroundTruthData,
    representation: Representation,
    index: np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """Codes ``(n, d)`` of grid points ``index (n,)``: look-up or batched encoding."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if isinstance(representation, CodeTable):
        _check_table(data, representation)
        return representation.mean[index]
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
        _check_table(data, representation)
        if representation.logvar is None:
            raise MetricError(
                "this metric needs the posterior q(z|x) (mean and log-variance), but the code "
                "table has means only; encode with a Gaussian encoder (log-variances kept)."
            )
        return representation.mean[index], representation.logvar[index]
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
