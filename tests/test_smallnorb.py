import gzip
import itertools
import shutil

import numpy as np
import pytest
from PIL import Image

import dislab.data as dd
from dislab.data import smallnorb as sn

MAGIC_OF = {np.dtype("u1"): 507333717, np.dtype("<i4"): 507333716}
TRAIN_INST, TEST_INST = (1, 2), (0,)


def write_binary_matrix(path, array):
    """Write ``array`` in the NORB binary-matrix format (header: magic, ndim, >= 3 dims)."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([MAGIC_OF[np.dtype(dtype)], array.ndim, *dims], "<i4")
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(array.astype(dtype).tobytes())


def _value(cat, inst, elev, azi, light):
    """A distinct grey level for every (category, instance, elevation, azimuth, lighting)."""
    return 3 + 5 * ((((cat * 3 + inst) * 2 + elev) * 2 + azi) * 2 + light)


def write_norb(directory, cats=2, elevs=2, azis=2, lights=2, size=96, seed=0, image=None):
    """Tiny official-format files: constant left images (value above), inverted right ones."""
    directory.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for chunk, insts in (("training", TRAIN_INST), ("testing", TEST_INST)):
        rows = list(itertools.product(range(cats), insts, range(elevs), range(azis), range(lights)))
        rows = [rows[i] for i in rng.permutation(len(rows))]  # official files are not sorted
        dat = np.empty((len(rows), 2, size, size), np.uint8)
        for k, (c, i, e, a, li) in enumerate(rows):
            dat[k, 0] = _value(c, i, e, a, li) if image is None else image
            dat[k, 1] = 255 - dat[k, 0]
        lab = np.array(rows, np.int32)
        info = np.column_stack([lab[:, 1], lab[:, 2], 2 * lab[:, 3], lab[:, 4]]).astype(np.int32)
        name = directory / sn.FILES[chunk]
        write_binary_matrix(str(name).format("dat"), dat)
        write_binary_matrix(str(name).format("cat"), lab[:, 0])
        write_binary_matrix(str(name).format("info"), info)
    return directory


@pytest.fixture
def norb(tmp_path):
    return write_norb(tmp_path / "norb")


def test_binary_matrix_round_trip(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_binary_matrix(tmp_path / "a.mat", a)
    assert np.array_equal(sn.read_binary_matrix(str(tmp_path / "a.mat")), a)
    v = np.array([7, 8, 9], np.int32)  # 1-d: header still carries three dimensions
    write_binary_matrix(tmp_path / "v.mat", v)
    assert (tmp_path / "v.mat").stat().st_size == 4 * 5 + 12
    assert np.array_equal(sn.read_binary_matrix(str(tmp_path / "v.mat")), v)
    b = np.array([[0, 200, 255]], np.uint8)  # bytes are unsigned
    write_binary_matrix(tmp_path / "b.mat", b)
    assert sn.read_binary_matrix(str(tmp_path / "b.mat")).tolist() == [[0, 200, 255]]


def test_grid_round_trip_and_left_camera(norb):
    data = dd.load("smallnorb", path=str(norb))
    assert data.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert data.factor_sizes == (2, 2, 2, 2) and data.num_instances == 3
    assert data.observation_shape == (1, 64, 64)
    assert data.factor_values["azimuth"].tolist() == [0.0, 20.0]
    assert data.factor_values["elevation"].tolist() == [30.0, 35.0]
    assert data.value_names["category"] == ("animal", "human")
    idx = np.arange(len(data))
    f = data.factors(idx)
    assert np.array_equal(data.index(f), idx)
    x = data.images_uint8(f)
    inst = data.instances(idx)
    expected = [_value(c, i, e, a, li) for (c, e, a, li), i in zip(f, inst)]
    # constant left-camera images survive the LANCZOS resize; right camera (255 - v) unused
    assert np.array_equal(x, np.broadcast_to(np.array(expected, np.uint8)[:, None, None, None],
                                             x.shape))


def test_images_deterministic_in_factors(norb):
    a = dd.load("smallnorb", path=str(norb))
    b = dd.load("smallnorb", path=str(norb))
    f = a.sample_factors(50, rng=1)
    assert np.array_equal(a.images_uint8(f), a.images_uint8(f))
    assert np.array_equal(a.images_uint8(f), b.images_uint8(f))
    # the fixed choice still uses several instances over the grid (not always the first)
    assert len(set(a.instances(np.arange(len(a))).tolist())) > 1


def test_each_factor_changes_the_image(norb):
    data = dd.load("smallnorb", path=str(norb), instance=0)
    base = np.zeros(4, np.int64)
    for j in range(4):
        other = base.copy()
        other[j] = 1
        a, b = data.images_uint8(np.stack([base, other]))
        assert not np.array_equal(a, b)


def test_instance_options(norb):
    fixed = dd.load("smallnorb", path=str(norb), instance=2)
    assert np.all(fixed.instances(np.arange(len(fixed))) == 2)
    f = np.zeros((200, 4), np.int64)
    x = fixed.images_uint8(f)
    assert np.all(x == _value(0, 2, 0, 0, 0))
    rand = dd.load("smallnorb", path=str(norb), instance="random", seed=3)
    got = {int(v) for v in rand.images_uint8(f)[:, 0, 0, 0]}
    assert got == {_value(0, i, 0, 0, 0) for i in range(3)}  # the nuisance is sampled
    with pytest.raises(dd.DataError, match="instance must be"):
        dd.load("smallnorb", path=str(norb), instance="first")
    with pytest.raises(dd.DataError, match="instance 7 is not present"):
        dd.load("smallnorb", path=str(norb), instance=7)


def test_resize_is_pillow_lanczos(tmp_path):
    rng = np.random.default_rng(0)
    pic = rng.integers(0, 256, size=(96, 96), dtype=np.uint8)
    d = write_norb(tmp_path / "one", cats=1, elevs=1, azis=1, lights=1, image=pic)
    data = dd.load("smallnorb", path=str(d), instance=1)
    want = np.asarray(Image.fromarray(pic).resize((64, 64), Image.LANCZOS))
    assert np.array_equal(data.images_uint8([[0, 0, 0, 0]])[0, 0], want)


def test_gzipped_files_and_chunks(norb):
    for p in norb.iterdir():
        with open(p, "rb") as src, gzip.open(str(p) + ".gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        p.unlink()
    data = dd.load("smallnorb", path=str(norb), chunks=["testing"])
    assert data.factor_sizes == (2, 2, 2, 2) and data.num_instances == 1
    assert data.images_uint8([[1, 1, 1, 1]])[0, 0, 5, 5] == _value(1, 0, 1, 1, 1)


def test_errors(tmp_path, norb):
    with pytest.raises(dd.DataError, match="no procedural version.*ylclab"):
        dd.load("smallnorb")
    with pytest.raises(dd.DataError, match="not a directory"):
        dd.load("smallnorb", path=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(dd.DataError, match="file not found.*training-dat.mat"):
        dd.load("smallnorb", path=str(tmp_path / "empty"))
    with pytest.raises(dd.DataError, match="unknown option"):
        dd.load("smallnorb", path=str(norb), camera="right")
    cat = str(norb / sn.FILES["training"].format("cat"))
    raw = open(cat, "rb").read()
    open(cat, "wb").write(raw[:-4])
    with pytest.raises(dd.DataError, match="truncated"):
        dd.load("smallnorb", path=str(norb))
    open(cat, "wb").write(b"\x00" * 4 + raw[4:])
    with pytest.raises(dd.DataError, match="magic number 0"):
        dd.load("smallnorb", path=str(norb))
    write_binary_matrix(cat, np.zeros(3, np.int32))
    with pytest.raises(dd.DataError, match="disagree"):
        dd.load("smallnorb", path=str(norb))


def test_incomplete_grid(tmp_path):
    d = write_norb(tmp_path / "n")
    info_path = str(d / sn.FILES["testing"].format("info"))
    info = sn.read_binary_matrix(info_path).copy()
    cat = sn.read_binary_matrix(str(d / sn.FILES["testing"].format("cat")))
    assert len(cat) == 16
    info[0, 1] = 3  # an elevation 3 appears, but nothing has elevation 2
    write_binary_matrix(info_path, info)
    with pytest.raises(dd.DataError, match="do not cover the grid.*'elevation': 2"):
        dd.load("smallnorb", path=str(d), chunks=("testing",), progress=False)
    info[0, 1] = info[1, 1]
    info[0, 2] = info[1, 2]
    info[0, 3] = info[1, 3]
    write_binary_matrix(info_path, info)
    write_binary_matrix(str(d / sn.FILES["testing"].format("cat")), np.full(16, cat[1]))
    with pytest.raises(dd.DataError, match="twice"):
        dd.load("smallnorb", path=str(d), chunks=("testing",), progress=False)
