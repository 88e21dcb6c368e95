import numpy as np
import pytest
import scipy.io
from PIL import Image

import dislab.data as dd

NAMES = ["car_c_mesh.mat", "car_a_mesh.mat", "car_b_mesh.mat"]  # written out of order


def _value(obj_name, az, el):
    """A distinct RGB colour per (file, azimuth, elevation)."""
    return np.array([1 + 40 * NAMES.index(obj_name), 10 * az, 5 + 50 * el], np.uint8)


def write_cars(directory, size=16, pattern=None):
    """Tiny official-format files: ``im`` (size, size, 3, 24, 4) uint8, constant per view."""
    directory.mkdir(exist_ok=True)
    for name in NAMES:
        im = np.zeros((size, size, 3, 24, 4), np.uint8)
        for az in range(24):
            for el in range(4):
                im[:, :, :, az, el] = _value(name, az, el) if pattern is None else pattern
        scipy.io.savemat(directory / name, {"im": im})
    return directory


@pytest.fixture
def cars(tmp_path):
    return write_cars(tmp_path / "cars")


def test_grid_round_trip_and_sorted_objects(cars):
    data = dd.load("cars3d", path=str(cars))
    assert data.factor_names == ("elevation", "azimuth", "object")
    assert data.factor_sizes == (4, 24, 3) and data.observation_shape == (3, 64, 64)
    assert data.files == tuple(sorted(NAMES))
    idx = np.arange(len(data))
    f = data.factors(idx)
    assert np.array_equal(data.index(f), idx)
    x = data.images_uint8(f)
    # object id k is the k-th file in sorted order; im[..., azimuth, elevation]
    want = np.stack([_value(sorted(NAMES)[o], a, e) for e, a, o in f])
    assert np.array_equal(x, np.broadcast_to(want[:, :, None, None], x.shape))


def test_deterministic_and_each_factor_changes_image(cars):
    data = dd.load("cars3d", path=str(cars))
    f = data.sample_factors(30, rng=0)
    assert np.array_equal(data.images_uint8(f), data.images_uint8(f))
    base = np.array([1, 5, 1])
    for j, size in enumerate(data.factor_sizes):
        other = base.copy()
        other[j] = size - 1
        a, b = data.images_uint8(np.stack([base, other]))
        assert not np.array_equal(a, b)


def test_resize_is_pillow_lanczos(tmp_path):
    pic = np.random.default_rng(0).integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    d = write_cars(tmp_path / "c", size=128, pattern=pic)
    data = dd.load("cars3d", path=str(d), num_objects=3)
    want = np.asarray(Image.fromarray(pic).resize((64, 64), Image.LANCZOS)).transpose(2, 0, 1)
    assert np.array_equal(data.images_uint8([[2, 7, 1]])[0], want)


def test_errors(tmp_path, cars):
    with pytest.raises(dd.DataError, match="no procedural version.*--path"):
        dd.load("cars3d")
    with pytest.raises(dd.DataError, match="not a directory"):
        dd.load("cars3d", path=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(dd.DataError, match="no .mat files"):
        dd.load("cars3d", path=str(tmp_path / "empty"))
    with pytest.raises(dd.DataError, match="found 3 .mat files.*num_objects=183"):
        dd.load("cars3d", path=str(cars), num_objects=183)
    with pytest.raises(dd.DataError, match="unknown option"):
        dd.load("cars3d", path=str(cars), size=64)
    scipy.io.savemat(cars / "car_d_mesh.mat", {"images": np.zeros((4, 4, 3, 24, 4), np.uint8)})
    with pytest.raises(dd.DataError, match="has no 'im'"):
        dd.load("cars3d", path=str(cars))
    scipy.io.savemat(cars / "car_d_mesh.mat", {"im": np.zeros((4, 4, 3, 24), np.uint8)})
    with pytest.raises(dd.DataError, match=r"'im' has shape \(4, 4, 3, 24\)"):
        dd.load("cars3d", path=str(cars))
    (cars / "car_d_mesh.mat").write_bytes(b"garbage")
    with pytest.raises(dd.DataError, match="cannot read"):
        dd.load("cars3d", path=str(cars))
