"""Contract tests over the registries (issue 16, item 8), in the style of scikit-learn's
``check_estimator``: every registered data set (on a tiny grid) and every registered method
(a few training steps, save and load) runs :mod:`dislab.testing`'s checks. The cases are read
from ``dislab.data.names()`` and ``dislab.models.names()``, so a new entry is tested the
moment it is registered; a data set that cannot load without a file needs a tiny recipe in
``TINY`` below (its test says so)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

import dislab.data as dd
from dislab import models, tiny
from dislab.data import dsprites as ds
from dislab.data import shapes3d as s3
from dislab.errors import DislabError
from dislab.models.beta_vae import BetaVAE
from dislab.testing import ContractError, check_dataset, check_method, tiny_squares
from test_cars3d import write_cars
from test_images_data import _folder
from test_mpi3d import SIZES as MPI3D_SIZES
from test_mpi3d import _official_like
from test_smallnorb import write_norb

SUBSET = dict(tiny.DSPRITES_SUBSET)  # 192 points of the official dSprites grid
SHAPES3D_SUBSET = {name: [0, size - 1] for name, size in zip(s3.FACTOR_NAMES, s3.FACTOR_SIZES)}

Recipe = Callable[[Path], tuple[str | None, dict[str, Any]]]


def _mpi3d(tmp: Path) -> tuple[str, dict[str, Any]]:
    path = tmp / "mpi3d.npz"
    np.savez_compressed(path, images=_official_like(MPI3D_SIZES))
    return str(path), {"factor_sizes": MPI3D_SIZES}


def _factor_folder(tmp: Path) -> tuple[str, dict[str, Any]]:
    """Twelve 16x16 PNGs with two labelled factors, each value on at least two rows."""
    rng = np.random.default_rng(0)
    root = tmp / "labelled"
    root.mkdir()
    lines = ["file,colour,size"]
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
            root / f"p{i}.png")
        lines.append(f"p{i}.png,{'red' if i % 2 else 'blue'},{i % 3}")
    (root / "factors.csv").write_text("\n".join(lines) + "\n")
    return str(root), {"size": 16}


def _dsprites_file(tmp: Path) -> tuple[str, dict[str, Any]]:
    path = str(tmp / "dsprites.npz")
    ds.write_npz(ds.DSprites(subset=SUBSET), path, progress=False)
    return path, {}


def _shapes3d_file(tmp: Path) -> tuple[str, dict[str, Any]]:
    path = s3.render_to_file(tmp / "3dshapes.h5", subset=SHAPES3D_SUBSET, progress=False,
                             supersample=1)
    return path, {}


def _given(path: str | None = None, **options: Any) -> Recipe:
    return lambda tmp: (path, options)


_DSPRITES = _given(subset=SUBSET)
_DSPRITES_BASE = _given(base_options={"subset": SUBSET})
_SHAPES3D_BASE = _given(base_options={"supersample": 1})

#: How each shipped data set is built small: tmp folder -> (path, options) for dd.load.
TINY: dict[str, Recipe] = {
    "dsprites": _DSPRITES, "dsprites_full": _DSPRITES, "dsprites_noshape": _DSPRITES,
    "color_dsprites": _DSPRITES, "noisy_dsprites": _DSPRITES, "scream_dsprites": _DSPRITES,
    "dsprites_noise": _DSPRITES_BASE, "dsprites_perturbed": _DSPRITES_BASE,
    "perturbed": _given(base="dsprites", kind="noise", base_options={"subset": SUBSET}),
    "shapes3d": _given(supersample=1),  # the full procedural grid: checks visit a sample
    "shapes3d_noise": _SHAPES3D_BASE, "shapes3d_perturbed": _SHAPES3D_BASE,
    "mpi3d_toy": _mpi3d, "mpi3d_realistic": _mpi3d, "mpi3d_real": _mpi3d,
    "cars3d": lambda tmp: (str(write_cars(tmp / "cars")), {}),
    "smallnorb": lambda tmp: (str(write_norb(tmp / "norb")), {}),
    "images": lambda tmp: (str(_folder(tmp / "imgs", n=12)), {"size": 16}),
    "folder": _factor_folder,
}
#: The same loaders on their official-file path (ids ``name[file]``).
FILE_VARIANTS: dict[str, Recipe] = {
    "dsprites": _dsprites_file,
    "color_dsprites": _dsprites_file,  # a variant wrapping the file reader
    "dsprites_perturbed": lambda tmp: (_dsprites_file(tmp)[0], {}),
    "shapes3d": _shapes3d_file,
}

DATA_CASES = [pytest.param(name, TINY.get(name), id=name) for name in dd.names()] + [
    pytest.param(name, recipe, id=f"{name}[file]") for name, recipe in FILE_VARIANTS.items()]


@pytest.mark.filterwarnings("ignore:.*procedural texture")  # scream_dsprites without the image
@pytest.mark.parametrize("name, recipe", DATA_CASES)
def test_data_set_contract(name: str, recipe: Recipe | None, tmp_path: Path) -> None:
    path, options = recipe(tmp_path) if recipe is not None else (None, {})
    try:
        data = dd.load(name, path=path, **options)
    except dd.DataError as e:
        if recipe is not None:
            raise
        pytest.fail(f"data set {name!r} does not load without options ({e}); add a tiny "
                    "recipe for it to TINY in tests/test_contracts.py (reuse the fixture its "
                    "own tests write).")
    result = check_dataset(name, path=path, **options)
    # every check runs, except those that do not apply to labelled rows or to no factors
    allowed = set()
    if not data.is_grid:
        allowed |= {"grid_size", "pairs"}
        if data.num_factors == 0:
            allowed |= {"index_round_trip", "interventions"}
    skipped = {k for k, v in result.items() if v != "passed"}
    assert skipped <= allowed, result


def test_every_recipe_names_a_registered_data_set() -> None:
    assert set(TINY) | set(FILE_VARIANTS) <= set(dd.names())


@pytest.mark.parametrize("name", models.names())
def test_method_contract(name: str, tmp_path: Path) -> None:
    result = check_method(name, out=str(tmp_path / "run"))
    assert set(result.values()) == {"passed"}, result


# -- the checks can fail ------------------------------------------------------------------------
def _squares(f: np.ndarray) -> np.ndarray:
    return tiny_squares().images(f)


class _Unseeded(dd.FunctionData):
    """A grey level per index keyed by an unseeded draw: consistent within one object, but a
    freshly built data set gives other images for the same indices."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.key = int(np.random.default_rng().integers(1, 2**20))

    def _images_from_index(self, index: np.ndarray) -> np.ndarray:
        x = super()._images_from_index(index)
        grey = ((index * 7919 + self.key) % 97).astype(np.float32) / 970.0
        return np.clip(x + grey[:, None, None, None], 0, 1)


class _OffByOne(dd.FunctionData):
    """Grid arithmetic broken: factors() of index i is the factors of i + 1."""

    def factors(self, index: Any) -> np.ndarray:
        idx = (np.asarray(index, dtype=np.int64).reshape(-1) + 1) % len(self)
        return super().factors(idx)


@pytest.mark.parametrize("make, check", [
    (lambda: _Unseeded([6, 6], _squares, ["x", "y"]), "determinism"),
    (lambda: _OffByOne([6, 6], _squares, ["x", "y"]), "index_round_trip"),
    (lambda: dd.from_function([6, 6], lambda f: 2 * _squares(f), ["x", "y"]), "observations"),
    (lambda: dd.from_function([6, 6], _squares, ["x", "x"]), "factors_declared"),
])
def test_a_broken_data_set_fails_its_check(make: Callable[[], Any], check: str) -> None:
    with pytest.raises(ContractError, match=f"check '{check}' failed"):
        check_dataset(make)
    check_dataset(tiny_squares)  # the same checks pass on the sound version


def test_check_dataset_accepts_a_data_set_object() -> None:
    result = check_dataset(tiny_squares())
    assert result["determinism"].startswith("skipped: fresh-instance")
    with pytest.raises(DislabError, match="checked as it is"):
        check_dataset(tiny_squares(), subset={})


class _AttachedLogs(BetaVAE):
    name: ClassVar[str] = "contract_attached_logs"

    def loss(self, batch: torch.Tensor, step: int = 0) -> Any:
        loss, logs = super().loss(batch, step)
        return loss, {**logs, "raw": loss}  # not detached


class _FlatDecoder(BetaVAE):
    name: ClassVar[str] = "contract_flat_decoder"

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return super().decode(z).flatten(1)


class _BadDefault(BetaVAE):
    name: ClassVar[str] = "contract_bad_default"
    hparams: ClassVar[dict] = {**BetaVAE.hparams,
                               "gamma": models.HParam(-1.0, "a weight", low=0.0)}


class _NoUpdate(BetaVAE):
    name: ClassVar[str] = "contract_no_update"

    def training_step(self, batch: torch.Tensor, step: int, optimizers: Any) -> Any:
        loss, logs = self.loss(batch, step)
        return {**logs, "loss": loss.detach()}


class _UnsavedState(BetaVAE):
    """Training moves a non-persistent buffer the representation uses: not saved, so the
    loaded model encodes differently although every saved weight matches."""

    name: ClassVar[str] = "contract_unsaved_state"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("shift", torch.zeros(()), persistent=False)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = super().encode(x)
        return mean + self.shift, logvar

    def training_step(self, batch: torch.Tensor, step: int, optimizers: Any) -> Any:
        self.shift += 1.0
        return super().training_step(batch, step, optimizers)


@pytest.mark.parametrize("cls, check", [
    (_AttachedLogs, "loss"), (_FlatDecoder, "encode_decode"), (_BadDefault, "hparams"),
    (_NoUpdate, "training_step"), (_UnsavedState, "fit_save_load"),
])
def test_a_broken_method_fails_its_check(cls: type, check: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # registered for this test only, so that other tests' listings never see it
    monkeypatch.setitem(models.base._REGISTRY, cls.name, cls)
    with pytest.raises(ContractError, match=f"check '{check}' failed"):
        check_method(cls.name, out=str(tmp_path / "run"))


def test_the_grid_checks_visit_every_index_of_a_tiny_grid() -> None:
    visited: list[np.ndarray] = []

    class Spy(dd.FunctionData):
        def factors(self, index: Any) -> np.ndarray:
            visited.append(np.asarray(index).reshape(-1))
            return super().factors(index)

    check_dataset(lambda: Spy([6, 6], _squares, ["x", "y"]))
    assert set(np.concatenate(visited).tolist()) == set(range(math.prod((6, 6))))
