import math

import numpy as np
import pytest

import dislab.data as dd
from dislab.data import mpi3d

SIZES = (2, 3, 1, 2, 1, 3, 2)  # a 72-image sub-grid of the official 7 factors


def _official_like(sizes):
    """(N, 64, 64, 3) uint8 in C order whose first pixels spell out each image's factors."""
    n = math.prod(sizes)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
    grid = np.stack([g.reshape(-1) for g in np.meshgrid(*map(np.arange, sizes), indexing="ij")],
                    axis=1)
    images[:, 0, : len(sizes), 0] = grid
    return images


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "mpi3d_toy.npz"
    np.savez_compressed(path, images=_official_like(SIZES))
    return path


def test_registered_variants_and_official_sizes():
    names = dd.available()
    assert {"mpi3d_toy", "mpi3d_realistic", "mpi3d_real"} <= set(names)
    assert math.prod(mpi3d.FACTOR_SIZES["mpi3d_toy"]) == 460_800
    assert math.prod(mpi3d.FACTOR_SIZES["mpi3d_real"]) == 1_036_800
    assert mpi3d.FACTOR_SIZES["mpi3d_real"][:2] == (6, 6)


@pytest.mark.parametrize("name", ["mpi3d_toy", "mpi3d_realistic", "mpi3d_real"])
def test_no_path_says_where_to_get_the_file(name):
    with pytest.raises(dd.DataError, match=rf"no procedural.*{name}\.npz.*path="):
        dd.load(name)


def test_loader_reads_official_format(npz):
    data = dd.load("mpi3d_toy", path=str(npz), factor_sizes=SIZES)
    assert data.factor_names == mpi3d.FACTOR_NAMES and data.factor_sizes == SIZES
    assert data.observation_shape == (3, 64, 64) and data.source == "file"
    idx = np.arange(len(data))
    f = data.factors(idx)
    assert np.array_equal(data.index(f), idx)
    x = data.images_uint8(f[::-1])
    assert x.shape == (72, 3, 64, 64) and x.dtype == np.uint8
    # the image of factors f is the file's row at the C-order index of f
    assert np.array_equal(x[:, 0, 0, :7], f[::-1])
    raw = np.load(npz)["images"]
    assert np.array_equal(x, raw[::-1].transpose(0, 3, 1, 2))
    assert np.array_equal(data.images_uint8(f), data.images_uint8(f))


def test_each_factor_changes_the_image(npz):
    data = dd.load("mpi3d_toy", path=str(npz), factor_sizes=SIZES)
    base = np.zeros(7, np.int64)
    for j, size in enumerate(SIZES):
        if size == 1:
            continue
        other = base.copy()
        other[j] = size - 1
        a, b = data.images_uint8(np.stack([base, other]))
        assert not np.array_equal(a, b)


def test_npy_is_memory_mapped(tmp_path):
    path = tmp_path / "real.npy"
    images = _official_like(SIZES)
    np.save(path, images)
    data = dd.load("mpi3d_real", path=str(path), factor_sizes=SIZES)
    idx = np.array([5, 0, 5, 71])
    assert np.array_equal(data.images_uint8_from_index(idx), images[idx].transpose(0, 3, 1, 2))


def test_file_errors(tmp_path, npz):
    with pytest.raises(dd.DataError, match="file not found.*mpi3d_real.npz"):
        dd.load("mpi3d_real", path=str(tmp_path / "nope.npz"))
    with pytest.raises(dd.DataError, match="holds 72 images but the grid.*460800"):
        dd.load("mpi3d_toy", path=str(npz))
    with pytest.raises(dd.DataError, match="7 positive integers"):
        dd.load("mpi3d_toy", path=str(npz), factor_sizes=(72,))
    np.savez(tmp_path / "key.npz", imgs=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(dd.DataError, match=r"no 'images'"):
        dd.load("mpi3d_toy", path=str(tmp_path / "key.npz"))
    np.savez(tmp_path / "shape.npz", images=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(dd.DataError, match=r"shape \(2, 64, 64\)"):
        dd.load("mpi3d_toy", path=str(tmp_path / "shape.npz"))
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(dd.DataError, match="unpickling"):
        dd.load("mpi3d_toy", path=str(tmp_path / "obj.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(dd.DataError, match="not a readable"):
        dd.load("mpi3d_toy", path=str(tmp_path / "junk.npz"))
    with pytest.raises(dd.DataError, match="unknown option"):
        dd.load("mpi3d_toy", path=str(npz), sizes=SIZES)
