import numpy as np
import pytest

import dislab.data as dd


def test_index_factor_round_trip_and_c_order():
    data = dd.from_function([2, 3, 4])
    idx = np.arange(len(data))
    f = data.factors(idx)
    assert f.shape == (24, 3)
    # C order: last factor varies fastest
    assert f[1].tolist() == [0, 0, 1] and f[4].tolist() == [0, 1, 0]
    assert np.array_equal(data.index(f), idx)
    # StateSpaceAtomIndex test of disentanglement_lib (data/ground_truth/util_test.py)
    d2 = dd.from_function([2, 2])
    assert d2.index([[0, 1], [1, 0], [1, 1], [0, 0]]).tolist() == [1, 2, 3, 0]


def test_from_function_observation_is_factors():
    data = dd.from_function([3, 5], factor_names=["a", "b"])
    f = data.sample_factors(100, rng=0)
    assert data.observation_shape == (2,)
    assert np.array_equal(data.images(f), f.astype(np.float32))
    assert np.array_equal(data.sample_factors(100, rng=0), f)


def test_factor_out_of_range_names_factor():
    data = dd.from_function([3, 5], factor_names=["a", "b"])
    with pytest.raises(dd.DataError, match="'b'.*0..4"):
        data.index([[0, 5]])
    with pytest.raises(dd.DataError, match="shape"):
        data.index(np.zeros((2, 3), dtype=int))
    with pytest.raises(dd.DataError, match="out of range"):
        data.factors([15])


def test_unknown_name_lists_known():
    with pytest.raises(dd.DataError, match="Unknown data set 'nope'"):
        dd.load("nope")


def test_custom_sampler_is_used():
    data = dd.from_function([4, 4])
    data.set_sampler(lambda n, rng: np.zeros((n, 2), dtype=np.int64))
    assert np.all(data.sample_factors(10, 0) == 0)
    assert np.all(data.sample_index(10, 0) == 0)


def test_factor_index_by_name_or_index_on_every_kind_of_data():
    grid = dd.from_function([3, 5, 2], factor_names=["a", "b", "c"])
    rows = dd.from_arrays(np.zeros((6, 2), np.float32),
                          {"p": [0, 1, 2, 0, 1, 2], "q": [5, 5, 6, 6, 7, 7]})
    for data in (grid, rows):
        for k, name in enumerate(data.factor_names):
            assert data.factor_index(name) == k
            assert data.factor_index(k) == data.factor_index(np.int64(k)) == k
        with pytest.raises(dd.DataError) as e:
            data.factor_index("nope")
        assert all(repr(n) in str(e.value) for n in data.factor_names)  # lists the valid names
        with pytest.raises(dd.DataError, match="out of range"):
            data.factor_index(data.num_factors)
        with pytest.raises(dd.DataError, match="out of range"):
            data.factor_index(-1)
        with pytest.raises(dd.DataError, match="unknown"):
            data.factor_index(True)  # a bool is not an index
    with pytest.raises(dd.DataError, match="unknown fixed factor 'x'"):
        grid.factor_index("x", "fixed factor")


def test_observation_shape_from_the_registry_without_the_data():
    for name in dd.names():
        try:
            loaded = dd.load(name)
        except dd.DataError:  # needs its file (or folder)
            continue
        assert dd.observation_shape(name) == tuple(loaded.observation_shape)
    # data sets read from files answer with their class, without a file
    assert dd.observation_shape("smallnorb") == (1, 64, 64)
    assert dd.observation_shape("cars3d") == dd.observation_shape("mpi3d_toy") == (3, 64, 64)
    assert dd.observation_shape("dsprites", path="no/such/file.npz") == (1, 64, 64)
    with pytest.raises(dd.DataError, match="path=DIR"):
        dd.observation_shape("images")
    with pytest.raises(dd.DataError, match="Unknown data set"):
        dd.observation_shape("dsprits")
