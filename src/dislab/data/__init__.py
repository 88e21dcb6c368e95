"""Ground-truth data sets: one interface (factors in, images out), one file per data set.

>>> import dislab.data as dd
>>> data = dd.load("dsprites")          # rendered procedurally; path=... reads the official file
>>> factors = data.sample_factors(8, rng=0)
>>> x = data.images(factors)            # (8, 1, 64, 64) float32 in [0, 1]

Labelled data that is not a grid: ``from_arrays(images, factors)``, ``from_folder(DIR)``,
``partial_grid(data, keep)``; unlabelled images: ``load("images", path=DIR)``.
"""

from __future__ import annotations

from dislab.data.base import (
    DataError,
    FunctionData,
    GroundTruthData,
    as_rng,
    available,
    from_function,
    get,
    load,
    names,
    observation_shape,
    register,
)
from dislab.data.images import from_folder
from dislab.data.labelled import LabelledData, from_arrays, partial_grid

__all__ = [
    "DataError",
    "FunctionData",
    "GroundTruthData",
    "LabelledData",
    "as_rng",
    "available",
    "from_arrays",
    "from_folder",
    "from_function",
    "get",
    "load",
    "names",
    "observation_shape",
    "partial_grid",
    "register",
]

# Each module registers its data sets with ``@register``. The imports are explicit: a module
# that fails to import raises here instead of dropping its data sets silently.
from dislab.data import (  # noqa: E402, F401
    cars3d,
    dsprites,
    images,
    mpi3d,
    perturbed,
    shapes3d,
    smallnorb,
)
