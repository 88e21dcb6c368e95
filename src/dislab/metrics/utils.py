"""Shared pieces of the metrics: sampling codes, discretisation, discrete information, splits.

Conventions: codes are ``(n, d)`` and factors ``(n, K)`` (one row per observation; note that
disentanglement_lib transposes both: ``evaluation/metrics/utils.py``,
``generate_batch_factor_code``). Information is in nats.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from dislab.data.base import GroundTruthData
from dislab.metrics.base import MetricError, Representation, encode_index

__all__ = [
    "SKLEARN_ERAS",
    "logistic_regression",
    "logistic_regression_cv",
    "linear_svc",
    "sample_codes",
    "histogram_discretize",
    "discretize",
    "discrete_entropy",
    "discrete_mutual_info",
    "mutual_info",
    "entropy",
    "normalize_data",
    "split_train_test",
    "check_data",
    "check_count",
    "quiet_sklearn",
    "sklearn_seed",
]


def check_data(data: Any, needs_factors: bool = True) -> GroundTruthData:
    """Require a :class:`GroundTruthData` (a factor grid or labelled rows); unless
    ``needs_factors=False``, one with at least one factor."""
    if not isinstance(data, GroundTruthData):
        raise MetricError(
            f"metrics need a ground-truth data set on a full factor grid (a "
            f"dislab.data.GroundTruthData), got {type(data).__name__}; wrap a simulator with "
            "dislab.data.from_function(factor_sizes, observe)."
        )
    if needs_factors and data.num_factors == 0:
        raise MetricError(NO_FACTORS.format(name=data.name))
    return data


#: Why a metric that needs factor labels cannot run on unlabelled data.
NO_FACTORS = ("data set {name!r} has no factors (unlabelled images); this metric compares codes "
              "with factor labels. Without labels use the unsupervised metrics "
              "('unsupervised', 'elbo_decomposition'), or give factors with "
              "dislab.data.from_arrays / from_folder.")


def check_count(n: int, minimum: int, what: str) -> int:
    """Require ``n >= minimum`` points for ``what``; return ``int(n)``."""
    if int(n) != n or n < minimum:
        raise MetricError(
            f"{what} must be an integer >= {minimum} (got {n}); this metric cannot be "
            "estimated from fewer points."
        )
    return int(n)


def sample_codes(
    data: GroundTruthData,
    representation: Representation,
    num_points: int,
    rng: np.random.Generator,
    batch_size: int = 256,
    split: str = "all",
) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(n, d)`` and factors ``(n, K)`` of ``num_points`` points drawn from ``data``.

    The counterpart of disentanglement_lib's ``generate_batch_factor_code`` (untransposed).
    Points are drawn with the data set's sampler (uniform over the grid by default).
    ``split`` ("train", "test" or "all") says what the points are for: a data set of fixed
    samples (:class:`dislab.metrics.arrays.SampleData`) draws them from that part of its
    train/test split; a grid ignores it.
    """
    by_split = getattr(data, "sample_split_index", None)
    index = (by_split(num_points, rng, split) if by_split is not None
             else data.sample_index(num_points, rng))
    return encode_index(data, representation, index, batch_size), data.factors(index)


# -- discretisation --------------------------------------------------------------------------
def histogram_discretize(target: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Equal-width histogram labels ``1..num_bins`` of each column of ``target (n, d)``.

    As disentanglement_lib's ``_histogram_discretize`` (``np.digitize`` against ``np.histogram``'s
    edges without the last), but column-wise on ``(n, d)``. Default 20 bins: the study's
    ``discretizer.num_bins`` (``config/unsupervised_study_v1/metric_configs/mig.gin``).
    """
    target = np.asarray(target)
    if target.ndim == 1:
        target = target[:, None]
    out = np.zeros(target.shape, dtype=np.int64)
    for j in range(target.shape[1]):
        edges = np.histogram_bin_edges(target[:, j], num_bins)
        out[:, j] = np.digitize(target[:, j], edges[:-1])
    return out


def discretize(target: np.ndarray, discretizer: str = "histogram", num_bins: int = 20
               ) -> np.ndarray:
    """Discretise columns: ``"histogram"`` (equal width, ``num_bins``) or ``"identity"``.

    ``"identity"`` keeps the values as labels (each distinct value is one class), as the
    disentanglement_lib unit tests do with their identity discretizer.
    """
    if discretizer == "histogram":
        return histogram_discretize(target, num_bins)
    if discretizer == "identity":
        target = np.asarray(target)
        return target[:, None] if target.ndim == 1 else target
    raise MetricError(f"unknown discretizer {discretizer!r}; use 'histogram' or 'identity'.")


def _labels(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels of a 1-D array as ``0..m-1`` and ``m``."""
    values, inverse = np.unique(np.asarray(x).reshape(-1), return_inverse=True)
    return inverse.reshape(-1), len(values)


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Discrete mutual information (nats) of two label vectors ``(n,)``.

    Equal to ``sklearn.metrics.mutual_info_score(a, b)`` (the estimator disentanglement_lib
    uses), computed from the joint histogram.
    """
    la, na = _labels(a)
    lb, nb = _labels(b)
    n = la.shape[0]
    if n == 0:
        raise MetricError("mutual information of empty label vectors.")
    joint = np.bincount(la * nb + lb, minlength=na * nb).reshape(na, nb) / n
    pa = joint.sum(axis=1, keepdims=True)
    pb = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    value = float(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])))
    return max(value, 0.0)


def entropy(a: np.ndarray) -> float:
    """Discrete entropy (nats) of a label vector ``(n,)``."""
    la, na = _labels(a)
    p = np.bincount(la, minlength=na) / la.shape[0]
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """MI matrix ``(d, K)`` of discrete code columns ``(n, d)`` and factor columns ``(n, K)``."""
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    if codes.shape[0] != factors.shape[0]:
        raise MetricError(f"codes have {codes.shape[0]} rows but factors {factors.shape[0]}.")
    m = np.zeros((codes.shape[1], factors.shape[1]))
    for i in range(codes.shape[1]):
        for j in range(factors.shape[1]):
            m[i, j] = mutual_info(codes[:, i], factors[:, j])
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Entropy ``(K,)`` of each discrete column of ``factors (n, K)``."""
    factors = np.asarray(factors)
    return np.array([entropy(factors[:, j]) for j in range(factors.shape[1])])


# -- preprocessing ---------------------------------------------------------------------------
def normalize_data(train: np.ndarray, test: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Z-score columns of ``train (n, d)`` (and ``test``) with the train mean and std.

    Constant columns are centred only (disentanglement_lib divides by 0 there).
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, None if test is None else (test - mean) / std


def split_train_test(observations: np.ndarray, train_percentage: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """First ``ceil(n * train_percentage)`` rows for training, the rest for testing."""
    n = observations.shape[0]
    n_train = int(math.ceil(n * train_percentage))
    return observations[:n_train], observations[n_train:]


# -- sklearn glue ----------------------------------------------------------------------------
def sklearn_seed(rng: np.random.Generator) -> int:
    """An ``int`` random_state for an sklearn estimator, drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))


_QUIET_LOCK = threading.Lock()
_QUIET: dict[str, Any] = {"depth": 0, "stack": None}


@contextmanager
def quiet_sklearn() -> Iterator[None]:
    """Silence sklearn's convergence warnings (the metrics fix the iteration budgets) and run
    its fits on one BLAS/OpenMP thread: the metrics' problems are too small to gain from
    threads, and on a busy 2-core machine threaded fits of ``LogisticRegressionCV`` took 7x
    the CPU time of single-threaded ones (same result).

    Warning filters and thread limits are process-wide, so nested and concurrent uses (fits on
    worker threads) share one setting: the first entry applies it, the last exit restores it.
    """
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            _QUIET["stack"] = _quiet_stack()
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0:
                _QUIET["stack"].close()
                _QUIET["stack"] = None


def _quiet_stack() -> ExitStack:
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    stack = ExitStack()
    stack.enter_context(warnings.catch_warnings())
    stack.enter_context(threadpool_limits(1))
    warnings.simplefilter("ignore", ConvergenceWarning)
    # sklearn 1.9 announces default changes of LogisticRegressionCV; the metrics pin theirs
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    warnings.filterwarnings("ignore", message=".*least populated class.*")
    warnings.filterwarnings("ignore", message=".*number of unique classes.*")
    return stack


def fit_or_constant(make: Callable[[], Any], x: np.ndarray, y: np.ndarray) -> Any:
    """Fit ``make()`` on ``(x, y)``; if ``y`` has a single class, a constant predictor.

    Tiny training sets (the downstream task's 10 points) can see one value of a factor only;
    sklearn classifiers refuse to fit then, so the metric predicts that value.
    """
    classes = np.unique(y)
    if len(classes) < 2:
        return _Constant(classes[0])
    with quiet_sklearn():
        return make().fit(x, y)


class _Constant:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.classes_ = np.array([value])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(x.shape[0], self.value)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.ones((x.shape[0], 1))


#: values of the metrics' ``sklearn`` option: "current" pins scikit-learn's defaults since
#: 0.22; "2019" reproduces those of the scikit-learn that disentanglement_lib's study ran on
#: (0.20/0.21: ``LogisticRegression()`` = liblinear one-vs-rest, ``LogisticRegressionCV()`` =
#: lbfgs one-vs-rest, ``LinearSVC()`` = dual coordinate descent).
SKLEARN_ERAS = ("current", "2019")


def _check_era(era: str) -> str:
    if era not in SKLEARN_ERAS:
        raise MetricError(f"sklearn must be one of {SKLEARN_ERAS} ('2019': the classifier "
                          f"settings of disentanglement_lib's study), got {era!r}.")
    return era


def logistic_regression(era: str, seed: int) -> Any:
    """disentanglement_lib's ``LogisticRegression()`` (BetaVAE score, explicitness).

    ``"current"``: lbfgs, multinomial, C=1, max_iter=100 (scikit-learn >= 0.22). ``"2019"``:
    liblinear one-vs-rest (scikit-learn 0.20/0.21's default), built as
    ``OneVsRestClassifier(LogisticRegression(solver="liblinear"))`` because current
    scikit-learn deprecates ``multi_class``; same fits, same argmax/normalised predictions.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if _check_era(era) == "2019":
        return OneVsRestClassifier(LogisticRegression(C=1.0, solver="liblinear", max_iter=100,
                                                      random_state=seed))
    return LogisticRegression(C=1.0, solver="lbfgs", max_iter=100, random_state=seed)


def logistic_regression_cv(era: str, folds: int, seed: int) -> Any:
    """disentanglement_lib ``utils.logistic_regression_cv``:
    ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))`` (downstream task). ``"current"``:
    multinomial lbfgs; ``"2019"``: one-vs-rest lbfgs (scikit-learn 0.20/0.21's
    ``multi_class`` default; each class picks its own C), built with ``OneVsRestClassifier``."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold
    from sklearn.multiclass import OneVsRestClassifier

    base = LogisticRegressionCV(Cs=10, cv=KFold(n_splits=folds), scoring="accuracy",
                                random_state=seed)
    return OneVsRestClassifier(base) if _check_era(era) == "2019" else base


def linear_svc(era: str) -> Any:
    """disentanglement_lib's SAP classifier ``LinearSVC(C=0.01, class_weight="balanced")``.
    ``"current"``: solved in the primal (``dual=False``); ``"2019"``: ``dual=True`` (the
    scikit-learn default then; it can stop at ``max_iter=1000`` before converging)."""
    from sklearn.svm import LinearSVC

    # random_state fixed: the dual solver shuffles its coordinates (disentanglement_lib left it
    # to numpy's global generator, which made SAP vary between calls)
    return LinearSVC(C=0.01, class_weight="balanced", dual=_check_era(era) == "2019",
                     random_state=0)
