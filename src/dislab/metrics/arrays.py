"""Score codes you already have: :func:`score` (``codes (N, d)``, ``factors (N, K)`` arrays).

The arrays are wrapped in a :class:`SampleData` (a :class:`~dislab.data.GroundTruthData` whose
"grid" is the ``N`` rows) and a :class:`~dislab.metrics.base.CodeTable`, and every metric runs
through the same :func:`~dislab.metrics.suite.run_metrics` as :func:`~dislab.metrics.evaluate`,
with the same per-metric random streams. Only where the points come from differs:

* ``sampling="split"`` (default): the rows are shuffled with ``seed`` and split into a training
  part (``1 - test_fraction``) and a test part. A metric's training draws (DCI's, SAP's, the
  downstream tasks' training points, ...) come from the training rows, its test draws from the
  test rows, and metrics without a held-out evaluation (MIG, modularity, MCC, ...) draw from
  all rows; each draw is without replacement (a metric asking for more points than the part
  holds gets all of them).
* ``sampling="resample"``: every draw is i.i.d. uniform over all rows, exactly as a metric
  draws grid points of a full-grid data set (disentanglement_lib's procedure; train and test
  points may coincide). With the codes and factors of every point of a grid, in grid order,
  this gives bit-for-bit the numbers of :func:`~dislab.metrics.evaluate` with the same seed.

Factors: discrete factors are class labels (any values; mapped to ``0..m-1`` in sorted order).
Continuous factors are discretised for the metrics that treat factors as classes (MIG, SAP,
DCI, modularity/explicitness, the downstream tasks, MIG-sup, DCIMIG, InfoMEC) with
disentanglement_lib's default discretizer (``utils.make_discretizer`` with
``_histogram_discretize``: equal-width histogram, ``num_bins`` = 20 bins); MCC and DCI-ES use the
values themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import CodeTable, MetricError
from dislab.metrics.utils import histogram_discretize

__all__ = ["score", "score_records", "SampleData", "INTERVENTION_METRICS", "GRID_METRICS",
           "infer_factor_kinds"]

#: Metrics that draw pairs of observations sharing a factor value (interventions): they need a
#: data set that can render any factor combination, not a fixed set of samples.
INTERVENTION_METRICS = {
    "beta_vae": "pairs of observations that share one factor's value (Higgins et al. 2017)",
    "factor_vae": "batches of observations with one factor fixed (Kim & Mnih 2018)",
    "irs": "observations with some factors intervened on (Suter et al. 2019)",
    "fairness": "observations with the sensitive factor set to each of its values "
                "(Locatello et al. 2019, fairness)",
    "strong_downstream": "training observations with one factor fixed and test observations "
                         "with its other values",
}
#: Metrics whose estimators sum over a full factor grid in grid order (allowed when the rows
#: are exactly such a grid).
GRID_METRICS = {"dotran", "dotran_sampling", "mig_chen"}

SAMPLINGS = ("split", "resample")


def _to_numpy(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - ragged lists etc.
        raise MetricError(f"{what} must be an array of shape (N, columns): {e}") from e
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise MetricError(f"{what} must have shape (N, columns), got shape {arr.shape}; "
                          "flatten each row's values to one row.")
    return arr


def _integral(col: np.ndarray) -> bool:
    if col.dtype.kind in "biuUSO":
        return True
    return bool(np.all(col == np.round(col)))


def infer_factor_kinds(factors: np.ndarray) -> list[str]:
    """``"discrete"`` for a column of integers, booleans or strings, else ``"continuous"``."""
    return ["discrete" if _integral(factors[:, k]) else "continuous"
            for k in range(factors.shape[1])]


class SampleData(GroundTruthData):
    """``N`` labelled samples seen as a data set whose "grid points" are the rows.

    ``factors(index)`` gives class labels ``(n, K)`` (continuous factors discretised);
    ``row_values(index)`` the values as given (float). Used by :func:`score`; it has no
    observations.
    """

    source = "arrays"

    def __init__(self, factors: np.ndarray, factor_kinds: Sequence[str],
                 factor_names: Sequence[str], num_bins: int, sampling: str,
                 test_fraction: float, seed: int) -> None:
        self.name = "arrays"
        self.factor_names = tuple(factor_names)
        self.factor_kinds = tuple(factor_kinds)
        self.observation_shape = ()
        n, k = factors.shape
        self._n = n
        labels = np.empty((n, k), dtype=np.int64)
        for j in range(k):
            col = factors[:, j]
            if factor_kinds[j] == "continuous":
                col = histogram_discretize(col.astype(np.float64), num_bins)[:, 0]
            labels[:, j] = np.unique(col, return_inverse=True)[1].reshape(-1)
        self._labels = labels
        self.factor_sizes = tuple(int(labels[:, j].max()) + 1 for j in range(k))
        numeric = np.empty((n, k), dtype=np.float64)
        for j in range(k):
            col = factors[:, j]
            numeric[:, j] = col if col.dtype.kind in "biuf" else labels[:, j]
        self._values = numeric
        self.sampling = sampling
        order = np.random.default_rng(seed).permutation(n)
        n_test = int(round(n * test_fraction)) if sampling == "split" else 0
        self._pools = {"all": np.arange(n), "train": order[:n - n_test],
                       "test": order[n - n_test:]}

    def __len__(self) -> int:
        return self._n

    @property
    def is_full_grid(self) -> bool:
        """Whether the rows are every combination of the factor labels, in C order."""
        from dislab.metrics.infotheory import grid_factor_values

        if self._n != int(np.prod(self.factor_sizes)):
            return False
        return bool(np.array_equal(grid_factor_values(self.factor_sizes), self._labels))

    def factors(self, index: Any) -> np.ndarray:
        return self._labels[np.asarray(index, dtype=np.int64).reshape(-1)]

    def row_values(self, index: Any) -> np.ndarray:
        """The factor values as given ``(n, K)`` float64 (labels for non-numeric factors)."""
        return self._values[np.asarray(index, dtype=np.int64).reshape(-1)]

    def sample_index(self, n: int, rng: Any = None) -> np.ndarray:
        return self.sample_split_index(n, rng, "all")

    def sample_split_index(self, n: int, rng: Any, split: str = "all") -> np.ndarray:
        """Rows for a metric's ``split`` draw ("train", "test" or "all"); see the module doc."""
        from dislab.data.base import as_rng

        rng = as_rng(rng)
        if self.sampling == "resample":
            return rng.integers(0, self._n, size=n, dtype=np.int64)
        pool = self._pools[split]
        if len(pool) == 0:
            raise MetricError(f"the {split} part of the split is empty ({self._n} rows, "
                              "test_fraction too small or too large); give more rows or "
                              "another test_fraction.")
        return pool[rng.permutation(len(pool))[:n]]

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        raise MetricError("dislab.metrics.score has codes only, no observations; a metric "
                          "that encodes images needs a GroundTruthData and evaluate().")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "num_rows": self._n, "factor_names": list(self.factor_names),
                "factor_kinds": list(self.factor_kinds), "factor_sizes": list(self.factor_sizes)}


def _prepare(
    codes: Any, factors: Any, metrics: str | Iterable[str] | None, factor_kinds: Any,
    factor_names: Sequence[str] | None, logvar: Any, seed: int, sampling: str,
    test_fraction: float, num_bins: int,
) -> tuple[CodeTable, SampleData, list[str]]:
    from dislab.metrics.suite import resolve_metrics

    if sampling not in SAMPLINGS:
        raise MetricError(f"unknown sampling {sampling!r}; use one of {', '.join(SAMPLINGS)}.")
    if not 0.0 < float(test_fraction) < 1.0:
        raise MetricError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    codes = _to_numpy(codes, "codes")
    factors = _to_numpy(factors, "factors")
    if codes.dtype.kind not in "biuf":
        raise MetricError(f"codes must be numbers, got dtype {codes.dtype}.")
    if codes.shape[0] != factors.shape[0]:
        raise MetricError(f"codes have {codes.shape[0]} rows but factors {factors.shape[0]}; "
                          "row i of both must describe the same observation.")
    if codes.shape[0] < 4:
        raise MetricError(f"need at least 4 rows to score, got {codes.shape[0]}.")
    if factors.dtype.kind == "f" and not np.all(np.isfinite(factors)):
        bad = int((~np.isfinite(factors)).any(axis=1).sum())
        raise MetricError(f"factors have NaN or infinite values in {bad} rows; drop or fill "
                          "those rows first.")
    k = factors.shape[1]
    if factor_kinds is None:
        kinds = infer_factor_kinds(factors)
    else:
        kinds = [factor_kinds] * k if isinstance(factor_kinds, str) else list(factor_kinds)
        if len(kinds) != k or any(x not in ("discrete", "continuous") for x in kinds):
            raise MetricError(f"factor_kinds must be 'discrete' or 'continuous', or a list of "
                              f"those with one entry per factor ({k}), got {factor_kinds!r}.")
        for j, kind in enumerate(kinds):
            if kind == "continuous" and factors[:, j].dtype.kind not in "biuf":
                raise MetricError(f"factor {j} is declared continuous but holds "
                                  f"{factors.dtype} values; declare it 'discrete'.")
    names = [f"f{j}" for j in range(k)] if factor_names is None else [str(n) for n in factor_names]
    if len(names) != k:
        raise MetricError(f"factor_names has {len(names)} names for {k} factors.")
    data = SampleData(factors, kinds, names, int(num_bins), sampling, float(test_fraction),
                      int(seed))
    table = CodeTable(codes.astype(np.float32),
                      None if logvar is None else _to_numpy(logvar, "logvar").astype(np.float32))
    if metrics == "all":  # every registered metric that can run on these samples
        from dislab.metrics.registry import available

        full_grid = data.is_full_grid
        metrics = [m for m in available() if m not in INTERVENTION_METRICS
                   and (m not in GRID_METRICS or full_grid)]
    names_run = resolve_metrics(metrics if metrics is not None else DEFAULT_SCORE_METRICS)
    for name in names_run:
        if name in INTERVENTION_METRICS:
            raise MetricError(
                f"metric {name!r} needs {INTERVENTION_METRICS[name]}, which fixed codes and "
                "factors cannot provide; score it with dislab.metrics.evaluate(representation, "
                "data) on a GroundTruthData (a data set that renders any factor combination).")
        if name in GRID_METRICS and not data.is_full_grid:
            raise MetricError(
                f"metric {name!r} sums over a full factor grid, and these rows are not every "
                "factor combination in grid order; score it with dislab.metrics.evaluate on a "
                "GroundTruthData, or pass the codes of the whole grid in grid order.")
    return table, data, names_run


#: What :func:`score` runs when ``metrics`` is None: the sample-based metrics of the README.
DEFAULT_SCORE_METRICS = ["mig", "sap", "dci", "modularity", "mcc", "dci_es", "infomec"]


def score_records(
    codes: Any,
    factors: Any,
    metrics: str | Iterable[str] | None = None,
    factor_kinds: str | Sequence[str] | None = None,
    seed: int = 0,
    *,
    factor_names: Sequence[str] | None = None,
    logvar: Any = None,
    sampling: str = "split",
    test_fraction: float = 0.2,
    num_bins: int = 20,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """As :func:`score`, with :func:`~dislab.metrics.suite.run_metrics`'s full records."""
    from dislab.metrics.suite import run_metrics

    table, data, names = _prepare(codes, factors, metrics, factor_kinds, factor_names, logvar,
                                  seed, sampling, test_fraction, num_bins)
    out = run_metrics(table, data, names, seed, params, progress)
    out["data"] = data.describe()
    out["sampling"] = sampling
    return out


def score(
    codes: Any,
    factors: Any,
    metrics: str | Iterable[str] | None = None,
    factor_kinds: str | Sequence[str] | None = None,
    seed: int = 0,
    *,
    factor_names: Sequence[str] | None = None,
    logvar: Any = None,
    sampling: str = "split",
    test_fraction: float = 0.2,
    num_bins: int = 20,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Score codes against factors: ``{metric name: {value name: float}}``.

    ``codes``: ``(N, d)`` numpy array or torch tensor (one row per observation);
    ``factors``: ``(N, K)`` (or ``(N,)``), discrete class labels or continuous values;
    ``factor_kinds``: ``"discrete"``/``"continuous"``, one per factor or one for all; by default
    a column of integers (or strings, booleans) is discrete, any other numeric column
    continuous. ``metrics``: names, ``"a,b"``, ``"all"`` (every metric that needs only samples;
    those that need q(z|x) only with ``logvar``) or ``None`` for MIG, SAP, DCI, modularity,
    MCC, DCI-ES and InfoMEC. ``seed`` fixes the train/test split and every metric's
    random stream. ``logvar`` ``(N, d)``: posterior log-variances for the metrics that need
    q(z|x). ``sampling``/``test_fraction``: see the module docstring (default: 80/20 split).
    ``num_bins``: bins of the discretiser of continuous factors. ``params`` overrides metric
    defaults, e.g. ``{"dci": {"num_train": 1000}}``.

    Metrics that need interventions (BetaVAE, FactorVAE, IRS) raise :class:`MetricError`
    saying so; use :func:`dislab.metrics.evaluate` on a data set for them.
    """
    out = score_records(codes, factors, metrics, factor_kinds, seed, factor_names=factor_names,
                        logvar=logvar, sampling=sampling, test_fraction=test_fraction,
                        num_bins=num_bins, params=params, progress=progress)
    return {name: r["values"] for name, r in out["results"].items()}


def sample_codes_values(
    data: GroundTruthData, representation: Any, num_points: int, rng: np.random.Generator,
    split: str = "all",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes ``(n, d)``, factor labels ``(n, K)`` and factor values ``(n, K)`` float64.

    The values are those given to :func:`score` (continuous factors undiscretised); on a grid
    data set they are the grid positions.
    """
    from dislab.metrics.base import encode_index

    by_split = getattr(data, "sample_split_index", None)
    index = (by_split(num_points, rng, split) if by_split is not None
             else data.sample_index(num_points, rng))
    codes = encode_index(data, representation, index)
    labels = data.factors(index)
    values_of = getattr(data, "row_values", None)
    values = values_of(index) if values_of is not None else labels.astype(np.float64)
    return codes, labels, values
