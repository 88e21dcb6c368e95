import colorsys
import pickle

import h5py
import numpy as np
import pytest

import dislab.data as dd
from dislab.data import shapes3d as s3

BASE = [2, 5, 8, 4, 0, 7]  # floor, wall, object hue, scale, shape, orientation


@pytest.fixture(scope="module")
def data():
    return dd.load("shapes3d")


def test_grid_and_round_trip(data):
    assert data.factor_names == s3.FACTOR_NAMES
    assert data.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert len(data) == 480_000 and data.observation_shape == (3, 64, 64)
    idx = np.arange(len(data))
    f = data.factors(idx)
    assert np.array_equal(data.index(f), idx)
    # C order: orientation fastest, floor hue slowest
    assert f[1].tolist() == [0, 0, 0, 0, 0, 1] and f[15].tolist() == [0, 0, 0, 0, 1, 0]
    assert f[-1].tolist() == [9, 9, 9, 7, 3, 14]


def test_official_factor_values(data):
    assert np.array_equal(data.factor_values["scale"], s3.FACTOR_VALUES[3])
    assert data.value_names["shape"] == ("cube", "cylinder", "sphere", "capsule")
    assert np.allclose(s3.FACTOR_VALUES[0], np.arange(10) / 10)
    assert np.allclose(s3.FACTOR_VALUES[3][[0, -1]], [0.75, 1.25])
    assert np.allclose(s3.FACTOR_VALUES[5][[0, 7, -1]], [-30, 0, 30])


def test_images_are_deterministic_and_cache_independent(data):
    f = np.array([BASE, [9, 0, 3, 7, 3, 14], [0, 9, 1, 0, 2, 0]])
    x = data.images_uint8(f)
    assert x.shape == (3, 3, 64, 64) and x.dtype == np.uint8
    assert np.array_equal(x, data.images_uint8(f[::-1])[::-1])  # batch order does not matter
    fresh = s3.Shapes3D(cache="none")
    assert np.array_equal(x, fresh.images_uint8(f))  # ray-cast per image == cached maps
    xf = data.images(f)
    assert xf.dtype == np.float32 and np.allclose(xf, x / 255.0)


def _with(j, v):
    f = list(BASE)
    f[j] = v
    return f


def test_each_factor_changes_the_image(data):
    base = data.images_uint8([BASE])[0]
    for j, size in enumerate(data.factor_sizes):
        for v in (0, size - 1):
            if v == BASE[j]:
                continue
            other = data.images_uint8([_with(j, v)])[0]
            assert not np.array_equal(base, other), s3.FACTOR_NAMES[j]


def _hue(pixel):
    return colorsys.rgb_to_hsv(*(pixel / 255.0))[0]


def test_hues_colour_their_own_surface(data):
    """Floor hue changes only the floor, wall hue only the wall, with the official HSV hue;
    the sky band across the top is the same light blue whatever the hues."""
    base = data.images_uint8([BASE])[0].astype(int)
    floor = data.images_uint8([_with(0, 6)])[0].astype(int)
    wall = data.images_uint8([_with(1, 1)])[0].astype(int)
    obj = data.images_uint8([_with(2, 3)])[0].astype(int)
    sky, band = (slice(None), slice(0, 3)), (slice(None), slice(22, 25), slice(0, 8))
    bottom = (slice(None), slice(61, 64))
    for x in (floor, wall, obj):
        assert np.array_equal(base[sky], x[sky])
    assert np.array_equal(base[band], floor[band]) and not np.array_equal(base[bottom],
                                                                          floor[bottom])
    assert np.array_equal(base[bottom], wall[bottom]) and not np.array_equal(base[band],
                                                                             wall[band])
    assert np.array_equal(base[band], obj[band]) and np.array_equal(base[bottom], obj[bottom])
    assert not np.array_equal(base, obj)
    assert _hue(floor[:, 62, 32]) == pytest.approx(0.6, abs=0.01)
    assert _hue(wall[:, 23, 2]) == pytest.approx(0.1, abs=0.01)
    r, g, b = base[:, 1, 32]  # light blue sky: blue brightest, then green, then red
    assert b > g > r > 100
    # full saturation: the smallest channel of a lit floor pixel is 0
    assert floor[:, 62, 32].min() == 0 and floor[:, 62, 32].max() > 150


def test_scale_grows_the_object(data):
    """The object covers more pixels at a larger scale (its hue is the only blue)."""
    f = np.array([[0, 0, 6, 0, s, 7] for s in range(4)] + [[0, 0, 6, 7, s, 7] for s in range(4)])
    x = data.images_uint8(f).astype(int)
    blue = (x[:, 2] > x[:, 0] + 40) & (x[:, 2] > x[:, 1] + 40)
    area = blue.reshape(8, -1).sum(axis=1)
    assert np.all(area[:4] > 30) and np.all(area[4:] > area[:4] * 1.5)


def test_render_to_file_round_trip(tmp_path, data):
    subset = {"floor_hue": [0, 3], "object_hue": [2, 5], "scale": [0, 7],
              "wall_hue": [4], "orientation": [0, 14]}
    path = s3.render_to_file(tmp_path / "small.h5", subset=subset, progress=False)
    with h5py.File(path, "r") as f:
        assert f["images"].shape == (64, 64, 64, 3) and f["images"].dtype == np.uint8
        assert f["labels"].shape == (64, 6) and f["labels"].dtype == np.float64
        assert np.allclose(f["labels"][1], [0.0, 0.4, 0.2, 0.75, 0.0, 30.0])
    for in_memory in (True, False):
        loaded = dd.load("shapes3d", path=str(path), in_memory=in_memory)
        assert loaded.source == "file" and loaded.factor_sizes == (2, 1, 2, 2, 4, 2)
        assert np.allclose(loaded.factor_values["floor_hue"], [0.0, 0.3])
        assert np.allclose(loaded.factor_values["orientation"], [-30.0, 30.0])
        assert loaded.value_names["shape"] == s3.SHAPE_NAMES
        idx = np.arange(len(loaded))
        local = loaded.factors(idx)
        official = np.stack([np.asarray(subset.get(n, range(s)))[local[:, j]]
                             for j, (n, s) in enumerate(zip(s3.FACTOR_NAMES, s3.FACTOR_SIZES))],
                            axis=1)
        shuffled = np.random.default_rng(0).permutation(idx)
        assert np.array_equal(loaded.images_uint8_from_index(shuffled),
                              data.images_uint8(official[shuffled]))
    with pytest.raises(dd.DataError, match="exists"):
        s3.render_to_file(path, subset=subset, progress=False)
    lazy = pickle.loads(pickle.dumps(dd.load("shapes3d", path=str(path), in_memory=False)))
    assert np.array_equal(lazy.images_uint8_from_index(shuffled),
                          data.images_uint8(official[shuffled]))


def _write(path, images, labels):
    with h5py.File(path, "w") as f:
        if images is not None:
            f["images"] = images
        if labels is not None:
            f["labels"] = labels


def _grid_labels(sizes):
    g = np.meshgrid(*[np.arange(s, dtype=float) for s in sizes], indexing="ij")
    return np.stack([a.reshape(-1) for a in g], axis=1)


def test_file_errors(tmp_path):
    with pytest.raises(dd.DataError, match="not found.*3d-shapes"):
        dd.load("shapes3d", path=str(tmp_path / "missing.h5"))
    good_labels = _grid_labels([1, 1, 2, 1, 1, 2])
    imgs = np.zeros((4, 64, 64, 3), np.uint8)
    _write(tmp_path / "nokey.h5", imgs, None)
    with pytest.raises(dd.DataError, match=r"lacks dataset\(s\) \['labels'\]"):
        dd.load("shapes3d", path=str(tmp_path / "nokey.h5"))
    _write(tmp_path / "shape.h5", np.zeros((4, 32, 32, 3), np.uint8), good_labels)
    with pytest.raises(dd.DataError, match=r"'images' has shape \(4, 32, 32, 3\)"):
        dd.load("shapes3d", path=str(tmp_path / "shape.h5"))
    _write(tmp_path / "labels.h5", imgs, good_labels[:, :5])
    with pytest.raises(dd.DataError, match="'labels' has shape"):
        dd.load("shapes3d", path=str(tmp_path / "labels.h5"))
    bad = good_labels.copy()
    bad[3, 5] = 7.0  # a third orientation value: 4 rows cannot fill a 1x1x2x1x1x3 grid
    _write(tmp_path / "grid.h5", imgs, bad)
    with pytest.raises(dd.DataError, match="full factorial grid"):
        dd.load("shapes3d", path=str(tmp_path / "grid.h5"))
    _write(tmp_path / "order.h5", imgs, good_labels[::-1])
    with pytest.raises(dd.DataError, match="C order"):
        dd.load("shapes3d", path=str(tmp_path / "order.h5"))
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(dd.DataError, match="not a readable HDF5"):
        dd.load("shapes3d", path=str(tmp_path / "text.h5"))


def test_option_errors(tmp_path):
    with pytest.raises(dd.DataError, match="unknown option"):
        dd.load("shapes3d", colour=True)
    with pytest.raises(dd.DataError, match="cache must be"):
        dd.load("shapes3d", cache="lots")
    with pytest.raises(dd.DataError, match=r"subset\['scale'\]"):
        s3.render_to_file(tmp_path / "x.h5", subset={"scale": [8]}, progress=False)
    with pytest.raises(dd.DataError, match="unknown factor"):
        s3.render_to_file(tmp_path / "x.h5", subset={"size": [0]}, progress=False)
    assert not (tmp_path / "x.h5").exists()


def test_geometry_cache_is_shared_and_kept_on_disk(tmp_path, monkeypatch):
    assert s3.Shapes3D()._geo is s3.Shapes3D()._geo  # one cache per process
    monkeypatch.setattr(s3, "_SHARED", {})
    calls = []

    def fake_render(shape, scale, orientation, supersample=2):
        calls.append(len(shape))
        maps = np.full((len(shape), s3.N_MAPS, 64, 64), 0.25, np.float32)
        return maps * (1 + shape[:, None, None, None])

    monkeypatch.setattr(s3, "render_geometry", fake_render)
    d = s3.Shapes3D(supersample=1, cache_dir=tmp_path, precompute=True)
    assert sum(calls) == 480
    files = list(tmp_path.glob("shapes3d_maps_*_ss1.npy"))
    assert len(files) == 1
    monkeypatch.setattr(s3, "_SHARED", {})  # a new process: reads the maps from disk
    e = s3.Shapes3D(supersample=1, cache_dir=tmp_path)
    assert e._geo.have.all() and np.array_equal(e._geo.maps, d._geo.maps)
    f = e.sample_factors(20, rng=0)
    assert np.array_equal(e.images_uint8(f), d.images_uint8(f)) and sum(calls) == 480
    files[0].write_bytes(b"broken")  # an unreadable cache is rebuilt, not an error
    monkeypatch.setattr(s3, "_SHARED", {})
    g = s3.Shapes3D(supersample=1, cache_dir=tmp_path)
    assert not g._geo.have.any()
