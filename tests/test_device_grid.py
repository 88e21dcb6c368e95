"""The data set's grid on a torch device (dislab.data.device), checked on the CPU: gathered
images equal the host's images bit for bit, the bit-packed and byte forms agree, the draw is
a pure function of (seed, step) and uniform, and a grid that does not fit is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dislab.data as dd
from dislab.data.device import DeviceBatches, DeviceGrid, grid_nbytes, splitmix64
from dislab.data.dsprites import _mix64
from dislab.train.loop import BatchSource

TINY = {"scales": 2, "orientations": 3, "positions": 4}  # 3 * 2 * 3 * 4 * 4 = 288 sprites


def _index(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, size, n))


def test_bit_packed_dsprites_gathers_the_host_images_exactly() -> None:
    data = dd.load("dsprites", **TINY)
    grid = DeviceGrid.from_data(data, "cpu", chunk=50, progress=False)
    assert grid.mode == "bits" and grid.storage.shape == (288, 1, 64, 8)
    assert grid.nbytes == grid_nbytes(data) == 288 * 64 * 8
    idx = _index(500, len(data))
    x = grid.gather(idx)
    assert x.dtype == torch.float32 and x.shape == (500, 1, 64, 64)
    want = data.images_from_index(idx.numpy())
    assert np.array_equal(x.numpy(), want)  # bit for bit
    assert np.array_equal(grid.gather_uint8(idx).numpy(), data.images_uint8_from_index(idx.numpy()))
    # a (K, B) index gives (K, B, C, H, W)
    xk = grid.gather(idx[:12].reshape(3, 4))
    assert xk.shape == (3, 4, 1, 64, 64) and torch.equal(xk.reshape(12, 1, 64, 64), x[:12])


def test_byte_grid_equals_the_trainer_host_batches() -> None:
    # colour dSprites: 3 channels, values other than 0/255, stored as bytes
    data = dd.load("color_dsprites", **TINY)
    grid = DeviceGrid.from_data(data, "cpu", progress=False)
    assert grid.mode == "uint8" and grid.nbytes == 288 * 3 * 64 * 64
    host = BatchSource(data, 16, seed=3, prefetch=False)
    rng = np.random.default_rng(3)
    for _ in range(3):
        idx = data.sample_index(16, rng)  # what the host source draws, in the same order
        assert torch.equal(grid.gather(torch.from_numpy(idx)), next(host))
    with pytest.raises(dd.DataError, match="binary"):
        DeviceGrid.from_data(data, "cpu", packed=True, progress=False)


def test_packed_and_byte_forms_agree_and_file_bits_are_copied(tmp_path) -> None:
    data = dd.load("dsprites", **TINY)
    bits = DeviceGrid.from_data(data, "cpu", progress=False)
    raw = DeviceGrid.from_data(data, "cpu", packed=False, progress=False)
    assert raw.mode == "uint8" and raw.nbytes == 8 * bits.nbytes
    idx = torch.arange(len(data))
    assert torch.equal(bits.gather(idx), raw.gather(idx))
    path = data.write(tmp_path / "tiny.npz", progress=False)
    from_file = dd.load("dsprites", path=path)
    fgrid = DeviceGrid.from_data(from_file, "cpu", progress=False)
    assert torch.equal(fgrid.storage, bits.storage)


def test_vector_observations_are_kept_as_floats() -> None:
    data = dd.from_function([3, 4, 5])
    grid = DeviceGrid.from_data(data, "cpu", progress=False)
    idx = _index(40, len(data))
    assert grid.mode == "float32"
    assert np.array_equal(grid.gather(idx).numpy(), data.images_from_index(idx.numpy()))


def test_grid_that_does_not_fit_and_fresh_variants_are_refused() -> None:
    data = dd.load("dsprites", **TINY)
    with pytest.raises(dd.DataError, match="needs .* GiB .* free"):
        DeviceGrid.from_data(data, "cpu", max_fraction=1e-12, progress=False)
    with pytest.raises(dd.DataError, match="fresh=True"):
        DeviceGrid.from_data(dd.load("noisy_dsprites", fresh=True, **TINY), "cpu",
                             progress=False)


def test_splitmix64_matches_the_numpy_hash() -> None:
    x = np.array([0, 1, 2, 12345, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64)
    got = splitmix64(torch.from_numpy(x.view(np.int64))).numpy().view(np.uint64)
    with np.errstate(over="ignore"):
        assert np.array_equal(got, _mix64(x))


def test_device_draw_is_per_seed_stateless_and_uniform() -> None:
    draw = DeviceBatches([0, 1, 7], batch_size=64, size=288)
    a = draw.indices(5)
    assert a.shape == (3, 64) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 288
    # a function of (seed, step): another drawer, or the same step again, gives the same
    assert torch.equal(DeviceBatches([0, 1, 7], 64, 288).indices(5), a)
    # a member's stream does not depend on the other members
    assert torch.equal(DeviceBatches([1], 64, 288).indices(5)[0], a[1])
    assert not torch.equal(a[0], a[1]) and not torch.equal(draw.indices(6), a)
    # uniform over the grid: chi-square per degree of freedom near 1 over 2000 steps
    counts = np.bincount(torch.cat([draw.indices(t)[0] for t in range(2000)]).numpy(),
                         minlength=288)
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum() / 287
    assert 0.8 < chi2 < 1.25
