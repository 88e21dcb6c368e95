"""Bad input on the data and metrics side: one DislabError naming the file or value and the fix.

Table-driven over every user-facing reader: the official-format loaders (dSprites ``.npz``,
Shapes3D ``.h5``, MPI3D ``.npz``, smallNORB, Cars3D), the code cache ``codes.npz``, metric
parameters (``--param``, ``params=``) and ``dislab evaluate`` on a bad run folder. Files are
missing, truncated, CRC-damaged, or have wrong keys, shapes, dtypes or values. Through the CLI
each gives exit status 2 with ``dislab: error: ...`` and no traceback, and a file that was
there before is left as it was. (Configs, specs and hyper-parameters:
``tests/test_bad_input_train.py``.)
"""

from __future__ import annotations

import gzip
import io
import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

import dislab.data as dd
from dislab.cli import main as dislab_main
from dislab.errors import DislabError
from dislab.metrics import CodeTable, MetricError, evaluate, evaluate_run
from dislab.train import fit
from test_cars3d import write_cars
from test_smallnorb import write_norb
from train_helpers import cfg, tiny_data

# -- damaging files ---------------------------------------------------------------------------


def truncate(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def flip_member_byte(path: Path, member: str) -> None:
    """Flip one byte inside a stored zip member's data: the file still opens, its CRC fails."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        assert info.compress_type == zipfile.ZIP_STORED
    raw = bytearray(path.read_bytes())
    header = info.header_offset
    name_len = int.from_bytes(raw[header + 26:header + 28], "little")
    extra_len = int.from_bytes(raw[header + 28:header + 30], "little")
    start = header + 30 + name_len + extra_len
    raw[start + info.file_size - 3] ^= 0xFF  # in the data, past the .npy header
    path.write_bytes(bytes(raw))


def write_npz_stored(path: Path, **arrays: np.ndarray) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
            zf.writestr(f"{key}.npy", buf.getvalue())
    return path


# -- tiny official-format files ---------------------------------------------------------------


def dsprites_arrays(sizes=(1, 2, 1, 1, 2, 2)) -> dict[str, np.ndarray]:
    n = math.prod(sizes)
    cls = np.stack(np.unravel_index(np.arange(n), sizes), axis=1).astype(np.int64)
    imgs = np.zeros((n, 64, 64), np.uint8)
    imgs[:, 10:20, 10:20] = 1
    return {"imgs": imgs, "latents_classes": cls, "latents_values": cls.astype(float)}


def dsprites_file(tmp: Path, **change) -> Path:
    arrays = {**dsprites_arrays(), **change}
    return write_npz_stored(tmp / "dsprites.npz", **{k: v for k, v in arrays.items()
                                                      if v is not None})


MPI_SIZES = (1, 2, 1, 1, 1, 2, 2)


def mpi3d_file(tmp: Path, key: str = "images", images: np.ndarray | None = None) -> Path:
    if images is None:
        images = np.zeros((math.prod(MPI_SIZES), 64, 64, 3), np.uint8)
    return write_npz_stored(tmp / "mpi3d.npz", **{key: images})


def shapes3d_file(tmp: Path, images: np.ndarray | None = None,
                  labels: np.ndarray | None = None, drop: str = "") -> Path:
    sizes = [1, 1, 2, 1, 1, 2]
    g = np.meshgrid(*[np.arange(s, dtype=float) for s in sizes], indexing="ij")
    good = {"images": np.zeros((4, 64, 64, 3), np.uint8),
            "labels": np.stack([a.reshape(-1) for a in g], axis=1)}
    if images is not None:
        good["images"] = images
    if labels is not None:
        good["labels"] = labels
    path = tmp / "3dshapes.h5"
    with h5py.File(path, "w") as f:
        for k, v in good.items():
            if k != drop:
                f[k] = v
    return path


def norb_dir(tmp: Path, gz: bool = False) -> Path:
    d = write_norb(tmp / "norb", cats=1, elevs=2, azis=1, lights=1, size=8)
    if gz:
        for f in d.iterdir():
            with gzip.open(f"{f}.gz", "wb") as out:
                out.write(f.read_bytes())
            f.unlink()
    return d


def norb_file(d: Path, part: str) -> Path:
    return next(p for p in sorted(d.iterdir()) if part in p.name)


def cars_dir(tmp: Path) -> Path:
    return write_cars(tmp / "cars", size=4)


def _gz_crc(d: Path) -> Path:
    """Change one byte of a gzipped member's payload: the file opens, gzip's CRC fails."""
    p = norb_file(d, "training-cat")
    raw = bytearray(gzip.decompress(p.read_bytes()))
    raw[-1] ^= 0x01
    good = gzip.compress(bytes(raw))
    orig = p.read_bytes()
    # keep the original CRC trailer with the changed payload
    p.write_bytes(good[:-8] + orig[-8:])
    return d


# name -> (build(tmp) -> (loader call), regex the message must match). Every message must
# also name the file it is about (its base name).
DATA_CASES: dict[str, tuple[Callable[[Path], tuple[Callable[[], object], str]], str]] = {}


def case(name: str, match: str):
    def wrap(fn):
        DATA_CASES[name] = (fn, match)
        return fn
    return wrap


def _dsprites(path: Path):
    return (lambda: dd.load("dsprites", path=str(path))), path.name


@case("dsprites missing", r"not found.*render")
def _(tmp):
    return _dsprites(tmp / "nope.npz")


@case("dsprites truncated", r"not a \.npz|damaged|truncated")
def _(tmp):
    p = dsprites_file(tmp)
    truncate(p)
    return _dsprites(p)


@case("dsprites CRC-damaged", r"damaged.*(download|render)")
def _(tmp):
    p = dsprites_file(tmp)
    flip_member_byte(p, "imgs.npy")
    return _dsprites(p)


@case("dsprites CRC-damaged labels", r"damaged.*(download|render)")
def _(tmp):
    p = dsprites_file(tmp)
    flip_member_byte(p, "latents_classes.npy")
    return _dsprites(p)


@case("dsprites wrong key", r"missing key")
def _(tmp):
    return _dsprites(dsprites_file(tmp, latents_classes=None))


@case("dsprites wrong shape", r"'imgs' must have shape")
def _(tmp):
    return _dsprites(dsprites_file(tmp, imgs=np.zeros((8, 32, 32), np.uint8)))


@case("dsprites wrong dtype", r"'imgs' must be .*uint8")
def _(tmp):
    return _dsprites(dsprites_file(tmp, imgs=np.zeros((8, 64, 64), np.float32)))


@case("dsprites labels wrong dtype", r"'latents_classes' must be an integer")
def _(tmp):
    a = dsprites_arrays()
    return _dsprites(dsprites_file(tmp, latents_classes=a["latents_classes"] + 0.5))


@case("dsprites out-of-range pixels", r"0/1 pixels")
def _(tmp):
    return _dsprites(dsprites_file(tmp, imgs=np.full((8, 64, 64), 7, np.uint8)))


def _mpi(path: Path):
    return (lambda: dd.load("mpi3d_toy", path=str(path), factor_sizes=MPI_SIZES)), path.name


@case("mpi3d missing", r"file not found")
def _(tmp):
    return _mpi(tmp / "nope.npz")


@case("mpi3d truncated", r"not a readable|damaged")
def _(tmp):
    p = mpi3d_file(tmp)
    truncate(p)
    return _mpi(p)


@case("mpi3d CRC-damaged", r"damaged|not a readable")
def _(tmp):
    p = mpi3d_file(tmp)
    flip_member_byte(p, "images.npy")
    return _mpi(p)


@case("mpi3d wrong key", r"no 'images'")
def _(tmp):
    return _mpi(mpi3d_file(tmp, key="imgs"))


@case("mpi3d wrong shape", r"shape")
def _(tmp):
    return _mpi(mpi3d_file(tmp, images=np.zeros((4, 64, 64), np.uint8)))


@case("mpi3d wrong dtype", r"uint8")
def _(tmp):
    return _mpi(mpi3d_file(tmp, images=np.zeros((4, 64, 64, 3), np.float64)))


def _shapes(path: Path):
    return (lambda: dd.load("shapes3d", path=str(path))), path.name


@case("shapes3d missing", r"not found")
def _(tmp):
    return _shapes(tmp / "nope.h5")


@case("shapes3d truncated", r"not a readable HDF5|truncated|damaged")
def _(tmp):
    p = shapes3d_file(tmp)
    truncate(p, 0.3)
    return _shapes(p)


@case("shapes3d wrong key", r"lacks dataset")
def _(tmp):
    return _shapes(shapes3d_file(tmp, drop="labels"))


@case("shapes3d wrong shape", r"'images' has shape")
def _(tmp):
    return _shapes(shapes3d_file(tmp, images=np.zeros((4, 32, 32, 3), np.uint8)))


@case("shapes3d wrong dtype", r"uint8")
def _(tmp):
    return _shapes(shapes3d_file(tmp, images=np.zeros((4, 64, 64, 3), np.float64)))


@case("shapes3d out-of-range labels", r"grid")
def _(tmp):
    labels = shapes3d_file(tmp).parent
    sizes = [1, 1, 2, 1, 1, 2]
    g = np.meshgrid(*[np.arange(s, dtype=float) for s in sizes], indexing="ij")
    lab = np.stack([a.reshape(-1) for a in g], axis=1)
    lab[3, 5] = 7.0
    return _shapes(shapes3d_file(labels, labels=lab))


def _norb(d: Path):
    return (lambda: dd.load("smallnorb", path=str(d))), d.name


@case("smallnorb missing", r"not a directory")
def _(tmp):
    return _norb(tmp / "nope")


@case("smallnorb truncated", r"truncated")
def _(tmp):
    d = norb_dir(tmp)
    truncate(norb_file(d, "training-dat"), 0.9)
    return _norb(d)


@case("smallnorb gz truncated", r"truncated|damaged")
def _(tmp):
    d = norb_dir(tmp, gz=True)
    truncate(norb_file(d, "training-dat"), 0.5)
    return _norb(d)


@case("smallnorb gz CRC-damaged", r"damaged")
def _(tmp):
    return _norb(_gz_crc(norb_dir(tmp, gz=True)))


@case("smallnorb wrong dtype", r"magic number")
def _(tmp):
    d = norb_dir(tmp)
    p = norb_file(d, "training-cat")
    raw = p.read_bytes()
    p.write_bytes(b"\x00" * 4 + raw[4:])
    return _norb(d)


def _cars(d: Path):
    return (lambda: dd.load("cars3d", path=str(d))), d.name


@case("cars3d missing", r"not a directory")
def _(tmp):
    return _cars(tmp / "nope")


@case("cars3d truncated", r"cannot read")
def _(tmp):
    d = cars_dir(tmp)
    truncate(d / "car_a_mesh.mat", 0.5)
    return _cars(d)


@case("cars3d wrong key", r"has no 'im'")
def _(tmp):
    d = cars_dir(tmp)
    scipy.io.savemat(d / "car_a_mesh.mat", {"images": np.zeros((4, 4, 3, 24, 4), np.uint8)})
    return _cars(d)


@case("cars3d wrong shape", r"'im' has shape")
def _(tmp):
    d = cars_dir(tmp)
    scipy.io.savemat(d / "car_a_mesh.mat", {"im": np.zeros((4, 4, 3, 24), np.uint8)})
    return _cars(d)


@case("cars3d wrong dtype", r"uint8|dtype|integer")
def _(tmp):
    d = cars_dir(tmp)
    scipy.io.savemat(d / "car_a_mesh.mat", {"im": np.full((4, 4, 3, 24, 4), "x")})
    return _cars(d)


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_data_loaders(name: str, tmp_path: Path) -> None:
    build, match = DATA_CASES[name]
    call, fname = build(tmp_path)
    with pytest.raises(DislabError, match=match) as err:
        call()
    assert fname in str(err.value)


@pytest.mark.parametrize("name", ["dsprites CRC-damaged", "mpi3d CRC-damaged",
                                  "smallnorb gz CRC-damaged", "dsprites missing"])
def test_data_cli_gives_one_line(name: str, tmp_path: Path, capsys) -> None:
    build, _ = DATA_CASES[name]
    build(tmp_path)
    loader = {"dsprites": ["dsprites", str(tmp_path / "dsprites.npz")],
              "mpi3d": ["mpi3d_toy", str(tmp_path / "mpi3d.npz")],
              "smallnorb": ["smallnorb", str(tmp_path / "norb")]}[name.split()[0]]
    if name == "dsprites missing":
        loader[1] = str(tmp_path / "nope.npz")
    extra = ["--option", f"factor_sizes={list(MPI_SIZES)}"] if loader[0] == "mpi3d_toy" else []
    code = dislab_main(["data", "show", loader[0], "--path", loader[1], *extra,
                        "--out", str(tmp_path / "show.png")])
    err = capsys.readouterr().err
    assert code == 2 and "dislab: error:" in err and "Traceback" not in err, err
    assert not (tmp_path / "show.png").exists()


# -- codes.npz --------------------------------------------------------------------------------

DATA = tiny_data()


def _table_file(tmp: Path, **arrays) -> Path:
    p = tmp / "codes.npz"
    base = {"mean": np.zeros((len(DATA), 3), np.float32),
            "logvar": np.zeros((len(DATA), 3), np.float32)}
    base.update(arrays)
    return write_npz_stored(p, **{k: v for k, v in base.items() if v is not None})


CODES_CASES = {
    "missing": (lambda t: t / "nope.npz", r"cannot read"),
    "truncated": (lambda t: (truncate(_table_file(t)), t / "codes.npz")[1],
                  r"damaged or truncated.*encode again"),
    "CRC-damaged": (lambda t: (flip_member_byte(_table_file(t), "mean.npy"),
                               t / "codes.npz")[1], r"damaged.*encode again"),
    "wrong key": (lambda t: _table_file(t, mean=None), r"no 'mean'"),
    "wrong shape": (lambda t: _table_file(t, logvar=np.zeros((len(DATA), 2), np.float32)),
                    r"logvar shape"),
    "wrong dtype": (lambda t: _table_file(t, mean=np.full((len(DATA), 3), "a")),
                    r"not floats"),
    "NaN codes": (lambda t: _table_file(t, mean=np.full((len(DATA), 3), np.nan, np.float32)),
                  r"NaN"),
    "index length": (lambda t: _table_file(t, index=np.arange(3)), r"index must be"),
    "index repeats": (lambda t: _table_file(t, index=np.zeros(len(DATA), np.int64)),
                      r"repeats"),
    "bad meta": (lambda t: _table_file(t, meta=np.array("[1, 2]")), r"meta"),
}


@pytest.mark.parametrize("name", sorted(CODES_CASES))
def test_code_table_files(name: str, tmp_path: Path) -> None:
    build, match = CODES_CASES[name]
    path = build(tmp_path)
    with pytest.raises(MetricError, match=match) as err:
        CodeTable.load(str(path))
    assert str(path) in str(err.value)


def test_code_table_rows_out_of_range_for_the_data(tmp_path: Path) -> None:
    table = CodeTable(np.zeros((2, 3), np.float32), index=np.array([0, len(DATA)]))
    with pytest.raises(MetricError, match="outside 0..35.*another data set"):
        evaluate(table, DATA, ["mig"])


# -- metric parameters ------------------------------------------------------------------------

PARAM_CASES = [
    ("mig.num_bins=abc", r"mig.num_bins='abc': must be a whole number >= 1"),
    ("mig.num_bins=-3", r"mig.num_bins=-3: must be a whole number >= 1"),
    ("mig.num_bins=2.5", r"whole number"),
    ("mig.num_bins=NaN", r"whole number"),
    ("mig.num_train=true", r"whole number"),
    ("mig.discretizer=3", r"must be a string"),
    ("sap.continuous_factors=1", r"true or false"),
    ("factor_vae.prune_threshold=-0.1", r"finite number >= 0"),
    ("factor_vae.prune_threshold=Infinity", r"finite number >= 0"),
    ("irs.diff_quantile=2", r"in \(0, 1\]"),
    ("downstream_logistic_regression.num_train=[10,0]", r"list of whole numbers"),
    ("downstream_logistic_regression.num_train=10", r"non-empty list"),
    ("dotran.bin_limits=[4,-4]", r"low < high"),
    ("mig.bins=3", r"no parameter"),
]


@pytest.mark.parametrize("item, match", PARAM_CASES)
def test_metric_params_checked(item: str, match: str) -> None:
    from dislab.metrics.cli import _parse_params

    params = _parse_params([item])
    metric = next(iter(params))
    with pytest.raises(MetricError, match=match):
        evaluate(lambda x: x.reshape(len(x), -1)[:, :4], DATA, [metric], params=params)


def test_metric_params_converted() -> None:
    from dislab.metrics.params import check_params
    from dislab.metrics.registry import get_metric

    got = check_params("mig", get_metric("mig").defaults, {"num_train": 1e3, "num_bins": 5})
    assert got == {"num_train": 1000, "num_bins": 5}
    assert isinstance(got["num_train"], int)


# -- dislab evaluate on a bad run folder -------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return fit(cfg(tmp_path_factory.mktemp("bad_eval"), steps=2), progress=False)


def _copy(run: Path, tmp: Path) -> Path:
    import shutil

    dst = tmp / "run"
    shutil.copytree(run, dst)
    return dst


def _no_weights(r: Path) -> None:
    (r / "model.safetensors").unlink()


def _bad_weights(r: Path) -> None:
    truncate(r / "model.safetensors")


def _bad_config(r: Path) -> None:
    (r / "config.json").write_text("{not json")


def _no_config(r: Path) -> None:
    (r / "config.json").unlink()


RUN_CASES = {
    "missing folder": (lambda r: None, ["nope"], r"nope"),
    "no weights": (_no_weights, [], r"model.safetensors"),
    "truncated weights": (_bad_weights, [], r"model.safetensors"),
    "bad config": (_bad_config, [], r"config.json"),
    "no config": (_no_config, [], r"config.json"),
    "bad param": (lambda r: None, ["--param", "mig.num_bins=abc"], r"mig.num_bins"),
    "negative param": (lambda r: None, ["--param", "mig.num_bins=-3"], r"mig.num_bins"),
    "bad batch size": (lambda r: None, ["--batch-size", "0"], r"batch_size"),
}


@pytest.mark.parametrize("name", sorted(RUN_CASES))
def test_evaluate_bad_run_folder(name: str, run_dir: Path, tmp_path: Path, capsys) -> None:
    damage, extra, match = RUN_CASES[name]
    run = _copy(run_dir, tmp_path)
    damage(run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    target = str(tmp_path / "nope") if extra[:1] == ["nope"] else str(run)
    args = [a for a in extra if a != "nope"]
    code = dislab_main(["evaluate", target, "--metrics", "mig", "--quiet", "--device", "cpu",
                        *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "dislab: error:" in err and "Traceback" not in err
    import re

    assert re.search(match, err), err
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing lost


def test_truncated_or_damaged_codes_cache_is_encoded_again(run_dir: Path, tmp_path: Path) -> None:
    run = _copy(run_dir, tmp_path)
    params = {"mig": {"num_train": 100}}
    first = evaluate_run(run, metrics="mig", params=params, device="cpu", progress=False)
    for damage in (truncate, lambda p: flip_member_byte(p, "mean.npy")):
        damage(run / "codes.npz")
        again = evaluate_run(run, metrics="mig", params=params, device="cpu", progress=False)
        assert again["metrics"]["mig"]["values"] == first["metrics"]["mig"]["values"]
        assert again["codes"]["rows_reused"] == 0
        CodeTable.load(str(run / "codes.npz"))  # readable again


def test_corrupt_metrics_json_is_kept_aside(run_dir: Path, tmp_path: Path) -> None:
    run = _copy(run_dir, tmp_path)
    (run / "metrics.json").write_text('{"metrics": {"mig": ')
    with pytest.warns(UserWarning, match="metrics.json"):
        evaluate_run(run, metrics="mig", params={"mig": {"num_train": 100}}, device="cpu",
                     progress=False)
    assert json.loads((run / "metrics.json").read_text())["metrics"]["mig"]
    kept = list(run.glob("metrics.json.unreadable*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"metrics": {"mig": '
