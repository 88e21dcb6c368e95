"""The training loop's parts: one model factory, the batch source on the data's own batch
stream and the global random state round trip (that train imports nothing above it is
tests/test_layers.py's check of every layer)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from dislab import models
from dislab.errors import DislabError
from dislab.train import checkpoint as ckpt
from dislab.train.batches import BatchSource
from train_helpers import tiny_data


# -- models.create ------------------------------------------------------------------------
@pytest.mark.parametrize("name", models.names())
def test_create_builds_every_method_with_the_shared_options(name: str) -> None:
    cls = models.get(name)
    options = {k: v for k, v in {"arch": "mlp", "reconstruction": "gaussian",
                                 "dataset_size": 36}.items() if k in cls.shared_options}
    m = models.create(name, (1, 16, 16), 3, **options)
    assert type(m) is cls and m.hp == cls.resolve_hparams({})
    assert (m.observation_shape, m.latent_dim) == ((1, 16, 16), 3)
    for key, value in options.items():
        assert getattr(m, key) == value
    mean, _ = m.encode(torch.rand(2, 1, 16, 16))
    assert mean.shape == (2, 3)


class _FixedNet(models.Method):
    """A method with no choice of network or likelihood (tests only, not registered)."""

    name: ClassVar[str] = "test_fixed_net"
    shared_options: ClassVar[tuple[str, ...]] = ("latent_dim", "dataset_size")

    def __init__(self, observation_shape: tuple[int, ...], latent_dim: int = 10,
                 **options: object) -> None:
        super().__init__(observation_shape, latent_dim, **options)  # type: ignore[arg-type]
        self.net = torch.nn.Linear(int(np.prod(observation_shape)), 2 * latent_dim)


@pytest.fixture
def fixed_net():
    models.register(_FixedNet)
    yield _FixedNet.name
    models.base._REGISTRY.pop(_FixedNet.name)


def test_a_method_without_an_arch_choice_refuses_another_arch(fixed_net: str) -> None:
    m = models.create(fixed_net, (1, 4, 4), 2, arch="conv", reconstruction="bernoulli",
                      dataset_size=10)  # the defaults: dropped silently
    assert m.arch == "conv" and m.dataset_size == 10
    with pytest.raises(DislabError, match=r"test_fixed_net.*no 'arch' option.*arch='mlp'"):
        models.create(fixed_net, (1, 4, 4), 2, arch="mlp")
    with pytest.raises(DislabError, match="no 'reconstruction' option"):
        models.create(fixed_net, (1, 4, 4), 2, reconstruction="gaussian")


def test_create_rejects_unknown_options() -> None:
    with pytest.raises(DislabError, match="Unknown hyper-parameter.*betta"):
        models.create("beta_vae", (1, 16, 16), 3, betta=2.0)
    with pytest.raises(DislabError, match="Unknown reconstruction 'poisson'"):
        models.create("pcl", (1, 16, 16), 3, reconstruction="poisson")


# -- batches ------------------------------------------------------------------------------
@pytest.mark.parametrize("prefetch", [False, True])
def test_batch_source_draws_the_data_sets_own_batches(prefetch: bool) -> None:
    data = tiny_data()
    source = BatchSource(data, 5, seed=3, prefetch=prefetch)
    expected = data.batches(5, seed=3)
    try:
        for _ in range(4):
            assert torch.equal(next(source), next(expected))
        state = source.state()
        after = [next(source) for _ in range(2)]
        source.set_state(state)  # resume from the saved state: the same batches again
        assert all(torch.equal(next(source), x) for x in after)
    finally:
        source.close()


def test_batch_source_rewind_redraws_the_last_batch() -> None:
    source = BatchSource(tiny_data(), 4, seed=0, prefetch=False)
    next(source)
    x = next(source)
    source.rewind()
    assert torch.equal(next(source), x)


# -- random state -------------------------------------------------------------------------
def test_random_state_round_trip(tmp_path: Path) -> None:
    def draw() -> tuple:
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())

    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    tensors, meta = ckpt.random_state(torch.device("cpu"))
    ckpt.save_tensors(tmp_path / "rng.safetensors", tensors, meta)  # through the file format
    first = draw()
    loaded_tensors, loaded_meta = ckpt.load_tensors(tmp_path / "rng.safetensors")
    ckpt.set_random_state(loaded_tensors, loaded_meta, torch.device("cpu"))
    assert draw() == first
