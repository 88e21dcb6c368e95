"""The ground-truth data interface that every data set, model and metric shares.

A ground-truth data set is a two-step generative model: factors are drawn on a finite
factorial grid, and an observation is a deterministic function of the factor vector
(as in disentanglement_lib's ``GroundTruthData``,
``data/ground_truth/ground_truth_data.py``).

Conventions (everywhere in dislab):

* factors are ``int64`` arrays of shape ``(n, num_factors)``, value ``k`` of factor ``j`` in
  ``0 .. factor_sizes[j] - 1``;
* observations are channels-first: ``observation_shape == (C, H, W)`` for images, or
  ``(D,)`` for vector observations (e.g. :func:`from_function`);
* :meth:`GroundTruthData.images` returns ``float32`` in ``[0, 1]``;
  :meth:`GroundTruthData.images_uint8` returns ``uint8`` in ``[0, 255]`` for image data sets
  (the compact form the fast training path moves around);
* the flat index of a factor vector is its mixed-radix (C-order) position in the full grid,
  the order of the official files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from dislab.data.sampling import as_rng, as_sampler
from dislab.errors import DataError

__all__ = [
    "DataError",
    "GroundTruthData",
    "FunctionData",
    "from_function",
    "register",
    "load",
    "observation_shape",
    "available",
    "as_rng",
]


class GroundTruthData:
    """Abstract ground-truth data set on a full factorial grid.

    Subclasses set ``name``, ``factor_names``, ``factor_sizes``, ``observation_shape`` and
    implement :meth:`_images_from_index` (flat grid indices -> observations). Everything else
    (grid arithmetic, sampling, validation, torch loaders) lives here.
    """

    name: str = "abstract"
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    observation_shape: tuple[int, ...] = ()
    #: "file" for a data set read from the user's official file, "procedural" when rendered.
    source: str = "procedural"

    # -- grid arithmetic ---------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return int(math.prod(self.factor_sizes))

    def factor_index(self, name_or_index: str | int, what: str = "factor") -> int:
        """Position ``0 .. num_factors - 1`` of a factor given by its name or its index.

        ``what`` names the argument in the error (e.g. ``"fixed factor"``). Raises
        :class:`DataError` listing the valid names for an unknown name or an index out of range.
        """
        f = name_or_index
        names = list(self.factor_names)
        if isinstance(f, (int, np.integer)) and not isinstance(f, bool):
            if 0 <= int(f) < self.num_factors:
                return int(f)
            raise DataError(f"{self.name}: {what} index {int(f)} out of range "
                            f"0..{self.num_factors - 1}; factors are {names}.")
        if isinstance(f, str) and f in names:
            return names.index(f)
        raise DataError(f"{self.name}: unknown {what} {f!r}; use one of the names {names} "
                        f"or an index 0..{self.num_factors - 1}.")

    @property
    def _strides(self) -> np.ndarray:
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

    def check_factors(self, factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Validate factors; return them as ``int64`` of shape ``(n, num_factors)``."""
        arr = np.asarray(factors)
        if arr.ndim == 1 and arr.shape[0] == self.num_factors:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.num_factors:
            raise DataError(
                f"{self.name}: factors must have shape (n, {self.num_factors}) "
                f"for factors {list(self.factor_names)}, got shape {tuple(arr.shape)}."
            )
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise DataError(
                    f"{self.name}: factors are grid positions (integers 0..size-1), "
                    "got non-integer values; use the factor's value index, not its value."
                )
        elif arr.dtype.kind not in "iu":
            raise DataError(f"{self.name}: factors must be integers, got dtype {arr.dtype}.")
        arr = arr.astype(np.int64)
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        bad = (arr < 0) | (arr >= sizes[None, :])
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"{self.name}: factor '{self.factor_names[col]}' has value {arr[row, col]} "
                f"(row {row}) but must be in 0..{sizes[col] - 1} ({sizes[col]} values)."
            )
        return arr

    def index(self, factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Flat grid index (C order) of each factor vector: ``(n, K) -> (n,) int64``."""
        return self.check_factors(factors) @ self._strides

    def factors(self, index: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """Factor vectors of flat grid indices: ``(n,) -> (n, K) int64`` (inverse of index)."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DataError(
                f"{self.name}: index out of range 0..{len(self) - 1} "
                f"(got min {idx.min()}, max {idx.max()})."
            )
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return (idx[:, None] // self._strides[None, :]) % sizes[None, :]

    # -- sampling ----------------------------------------------------------------------
    _sampler: Any = None

    def set_sampler(self, sampler: Any) -> GroundTruthData:
        """Use ``sampler(n, rng) -> (n, K) int64`` instead of the uniform grid; returns self.

        ``None`` restores uniform sampling. See :mod:`dislab.data.sampling` for joints.
        """
        self._sampler = sampler
        return self

    def sample_factors(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw ``n`` factor vectors, ``(n, K) int64``; uniform over the grid by default."""
        rng = as_rng(rng)
        if self._sampler is not None:
            return self.check_factors(self._sampler(n, rng))
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return rng.integers(0, sizes[None, :], size=(n, self.num_factors), dtype=np.int64)

    def sample_index(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Flat indices of ``n`` sampled factor vectors, ``(n,) int64``."""
        rng = as_rng(rng)
        if self._sampler is None:
            return rng.integers(0, len(self), size=n, dtype=np.int64)
        return self.index(self.sample_factors(n, rng))

    def sample(
        self, n: int, rng: np.random.Generator | int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(factors (n, K), images (n, *observation_shape) float32)``."""
        f = self.sample_factors(n, rng)
        return f, self.images(f)

    # -- interventions (BetaVAE / FactorVAE scores) -----------------------------------
    #: ``True`` when row ``i`` is flat grid index ``i`` of a full factorial grid; ``False`` for
    #: labelled rows (:mod:`dislab.data.labelled`), where a row index is just a row.
    is_grid: bool = True

    def sample_index_pairs(
        self, k: np.ndarray, batch_size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Two index arrays ``(n * batch_size,)``; pair ``(a[i], b[i])`` shares factor
        ``k[i // batch_size]`` and is otherwise drawn independently (``k``: ``(n,)``).

        On a grid: two batches from the sampler with factor ``k`` copied from the first, as
        disentanglement_lib's ``beta_vae._generate_training_sample``.
        """
        k = np.asarray(k, dtype=np.int64)
        n = len(k)
        f1 = self.sample_factors(n * batch_size, rng).reshape(n, batch_size, -1)
        f2 = self.sample_factors(n * batch_size, rng).reshape(n, batch_size, -1)
        rows = np.arange(n)
        f2[rows, :, k] = f1[rows, :, k]
        return (self.index(f1.reshape(n * batch_size, -1)),
                self.index(f2.reshape(n * batch_size, -1)))

    def sample_index_fixing(
        self, k: np.ndarray, batch_size: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Indices ``(n * batch_size,)``: ``n`` batches, batch ``i`` sharing the value of factor
        ``k[i]`` (the first point's), the other factors drawn freely.

        On a grid: disentanglement_lib's ``factor_vae._generate_training_sample``.
        """
        k = np.asarray(k, dtype=np.int64)
        n = len(k)
        f = self.sample_factors(n * batch_size, rng).reshape(n, batch_size, -1)
        rows = np.arange(n)
        f[rows, :, k] = f[rows, 0, k][:, None]
        return self.index(f.reshape(n * batch_size, -1))

    # -- observations ------------------------------------------------------------------
    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        """Observations for flat indices; uint8 (0..255) for images or float32. Override."""
        raise NotImplementedError

    def images_uint8_from_index(self, index: np.ndarray) -> np.ndarray:
        """uint8 images ``(n, C, H, W)`` for flat indices (image data sets only)."""
        out = self._images_from_index(np.asarray(index, dtype=np.int64).reshape(-1))
        if out.dtype != np.uint8:
            out = np.clip(np.rint(np.asarray(out, dtype=np.float32) * 255.0), 0, 255)
            out = out.astype(np.uint8)
        return out

    def images_from_index(self, index: np.ndarray) -> np.ndarray:
        """Observations ``(n, *observation_shape)`` as float32 in [0, 1] for flat indices."""
        out = self._images_from_index(np.asarray(index, dtype=np.int64).reshape(-1))
        if out.dtype == np.uint8:
            return out.astype(np.float32) * np.float32(1.0 / 255.0)
        return np.asarray(out, dtype=np.float32)

    def images(self, factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Observations of factor vectors: ``(n, K) -> (n, *observation_shape)`` float32 [0,1]."""
        return self.images_from_index(self.index(factors))

    def images_uint8(self, factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Observations of factor vectors as uint8 0..255, ``(n, C, H, W)``."""
        return self.images_uint8_from_index(self.index(factors))

    # -- torch -------------------------------------------------------------------------
    def batches(
        self,
        batch_size: int = 64,
        seed: int = 0,
        device: str | Any = "cpu",
        num_batches: int | None = None,
    ) -> Iterator[Any]:
        """Endless (or ``num_batches``) float32 torch batches ``(B, *observation_shape)``.

        Sampling is i.i.d. with replacement over the grid, as disentanglement_lib's input pipeline
        (``data/ground_truth/util.py``, ``tf_data_set_from_ground_truth_data``). Deterministic for a
        given ``seed``.
        """
        import torch

        rng = as_rng(seed)
        made = 0
        while num_batches is None or made < num_batches:
            idx = self.sample_index(batch_size, rng)
            x = torch.from_numpy(self.images_uint8_from_index(idx) if self.is_image else
                                 self.images_from_index(idx))
            x = x.to(device, non_blocking=True)
            if x.dtype == torch.uint8:
                x = x.float().mul_(1.0 / 255.0)
            made += 1
            yield x

    @property
    def is_image(self) -> bool:
        return len(self.observation_shape) == 3

    def torch_dataset(self) -> Any:
        """A ``torch.utils.data.Dataset`` over the full grid: item ``i`` -> (image, factors)."""
        from dislab.data.torch_data import GridDataset

        return GridDataset(self)

    def describe(self) -> dict[str, Any]:
        """Name, factors, sizes, shape and source, for listings."""
        return {
            "name": self.name,
            "factor_names": list(self.factor_names),
            "factor_sizes": list(self.factor_sizes),
            "observation_shape": list(self.observation_shape),
            "num_images": len(self),
            "source": self.source,
        }

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes))
        return f"<{type(self).__name__} {self.name!r} ({sizes}) obs={self.observation_shape}>"


class FunctionData(GroundTruthData):
    """Full-grid data set whose observation of a factor vector is ``observe(factors)``."""

    source = "function"

    def __init__(
        self,
        factor_sizes: Sequence[int],
        observe: Callable[[np.ndarray], np.ndarray],
        factor_names: Sequence[str] | None = None,
        name: str = "function",
    ) -> None:
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        if not self.factor_sizes or min(self.factor_sizes) < 1:
            raise DataError(f"factor_sizes must be positive integers, got {factor_sizes}.")
        self.factor_names = tuple(
            factor_names if factor_names is not None
            else [f"factor_{i}" for i in range(len(self.factor_sizes))]
        )
        if len(self.factor_names) != len(self.factor_sizes):
            raise DataError("factor_names and factor_sizes must have the same length.")
        self.name = name
        self._observe = observe
        probe = np.asarray(observe(np.zeros((1, len(self.factor_sizes)), dtype=np.int64)))
        if probe.ndim < 2 or probe.shape[0] != 1:
            raise DataError(
                "observe(factors) must return an array with one row per factor vector, "
                f"got shape {probe.shape} for one input row."
            )
        self.observation_shape = tuple(probe.shape[1:])

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self._observe(self.factors(index)), dtype=np.float32)


def from_function(
    factor_sizes: Sequence[int],
    observe: Callable[[np.ndarray], np.ndarray] | None = None,
    factor_names: Sequence[str] | None = None,
    name: str = "function",
) -> FunctionData:
    """A full-grid data set whose observations are ``observe(factors)``.

    ``observe`` maps ``(n, K) int64`` factors to ``(n, *shape)`` arrays; by default the
    factors themselves (as float32), which is how metrics are tested on analytic
    representations and how users bring their own simulators.
    """
    if observe is None:
        def observe(f: np.ndarray) -> np.ndarray:
            return f.astype(np.float32)
    return FunctionData(factor_sizes, observe, factor_names, name)


# -- registry ------------------------------------------------------------------------------
_REGISTRY: dict[str, Callable[..., GroundTruthData]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_CLASSES: dict[str, type[GroundTruthData]] = {}


def register(name: str, description: str = "",
             data_class: type[GroundTruthData] | None = None
             ) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: register a factory ``f(path=None, **options) -> GroundTruthData``.

    ``data_class`` (optional): the class the factory returns, when its class attribute
    ``observation_shape`` holds for every instance; :func:`observation_shape` then answers
    for a data set read from a file without opening the file.
    """

    def deco(factory: Callable[..., Any]) -> Any:
        _REGISTRY[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().split("\n")[0]
        if data_class is not None:
            _CLASSES[name] = data_class
        return factory

    return deco


def available() -> dict[str, str]:
    """Registered data set names with a one-line description."""
    return dict(sorted(_DESCRIPTIONS.items()))


def names() -> list[str]:
    """Registered data set names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Callable[..., GroundTruthData]:
    """The factory registered as ``name`` (:class:`DataError` listing the known names)."""
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise DataError(
            f"Unknown data set {name!r}. Known data sets: {', '.join(sorted(_REGISTRY))} "
            "(see `dislab data list`)."
        )
    return _REGISTRY[key]


def observation_shape(name: str, path: str | None = None, **options: Any) -> tuple[int, ...]:
    """Observation shape ``(C, H, W)`` or ``(D,)`` of data set ``name``, without reading a file
    or rendering an image: a procedural data set (``path=None``) is opened (lazily, cheaply)
    and asked; a data set read from a file answers with its registered ``data_class``. Raises
    :class:`DataError` when neither is possible (the data set needs its file to know)."""
    key = name.lower().replace("-", "_")
    get(key)  # an unknown name raises, listing the known ones
    if path is None:
        try:
            return tuple(int(s) for s in load(key, **options).observation_shape)
        except DataError:
            if key not in _CLASSES:
                raise
    cls = _CLASSES.get(key)
    if cls is None or not cls.observation_shape:
        raise DataError(f"{name}: the observation shape is known only once the data set is "
                        "read (pass its file, or register it with data_class=).")
    return tuple(int(s) for s in cls.observation_shape)


def load(name: str, path: str | None = None, **options: Any) -> GroundTruthData:
    """Load a data set by name: from the official file at ``path``, or rendered if ``None``.

    ``sampler=`` (optional): a :mod:`dislab.data.sampling` sampler, a callable
    ``(n, rng) -> factors`` or a spec dict, installed with ``set_sampler``.
    Raises :class:`DataError` for an unknown name (listing the known ones).
    """
    factory = get(name)
    from dislab import tiny

    # DISLAB_TINY: a toy grid; else the options as given
    options = tiny.data_options(name.lower().replace("-", "_"), path, options)
    sampler = options.pop("sampler", None)
    data = factory(path=path, **options)
    if sampler is not None:
        data.set_sampler(as_sampler(sampler, data))
    return data
