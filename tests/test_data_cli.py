"""`dislab data list | render | show`."""

import json

import numpy as np
import pytest

import dislab.data as dd
from dislab.cli import main


def test_list_text_and_json(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "dsprites" in out and "shape 3, scale 6, orientation 40, posX 32, posY 32" in out
    assert "procedural" in out
    assert main(["data", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["dsprites"]["factor_sizes"] == [3, 6, 40, 32, 32]
    assert rows["color_dsprites"]["observation_shape"] == [3, 64, 64]
    assert set(rows) == set(dd.available())


def test_render_small_grid_then_load(tmp_path, capsys):
    out = tmp_path / "small.npz"
    rc = main(["data", "render", "dsprites", "--out", str(out), "--keep", "posX=3",
               "--keep", "posY=2", "--subset", "orientation=0,10", "--quiet"])
    assert rc == 0 and out.exists()
    loaded = dd.load("dsprites", path=str(out))
    assert loaded.factor_sizes == (3, 6, 2, 3, 2)
    # np.linspace(0, 31, 3) = [0, 15.5, 31]; 15.5 rounds to 16 (half to even)
    assert np.allclose(loaded.factor_values["posX"], [0.0, 16 / 31, 1.0])
    ref = dd.load("dsprites")
    f = loaded.factors(np.arange(len(loaded)))
    official = f.copy()
    official[:, 2] = np.array([0, 10])[f[:, 2]]
    official[:, 3] = np.array([0, 16, 31])[f[:, 3]]
    official[:, 4] = np.array([0, 31])[f[:, 4]]
    assert np.array_equal(loaded.images_uint8(f), ref.images_uint8(official))
    capsys.readouterr()
    # refuses to overwrite without --force, keeps the file
    before = out.read_bytes()
    assert main(["data", "render", "dsprites", "--out", str(out), "--keep", "posX=2",
                 "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before


def test_show_writes_png(tmp_path, capsys):
    png = tmp_path / "grid.png"
    assert main(["data", "show", "dsprites", "--out", str(png), "--samples", "4",
                 "--steps", "3"]) == 0
    from PIL import Image

    with Image.open(png) as im:
        w, h = im.size
    assert w > 200 and h > 300


def test_show_from_file(tmp_path):
    out = tmp_path / "s.npz"
    assert main(["data", "render", "dsprites", "--out", str(out), "--keep", "posX=2",
                 "--keep", "posY=2", "--keep", "orientation=2", "--quiet"]) == 0
    png = tmp_path / "g.png"
    assert main(["data", "show", "color_dsprites", "--path", str(out), "--out", str(png),
                 "--samples", "2", "--steps", "2", "--option", "seed=3"]) == 0
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["data", "show", "nope", "--out", "x.png"], "Unknown data set 'nope'"),
    (["data", "show", "dsprites", "--path", "/no/file.npz", "--out", "x.png"], "not found"),
    (["data", "render", "dsprites", "--out", "x.npz", "--keep", "size=2"], "unknown factor"),
    (["data", "render", "dsprites", "--out", "x.npz", "--keep", "posX=40"], "cannot keep 40"),
])
def test_cli_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "dislab: error:" in err and message in err


def test_render_file_only_data_set(tmp_path, capsys):
    file_only = [n for n in dd.available() if n.startswith(("mpi3d", "smallnorb", "cars3d"))]
    assert file_only, "the file-only data sets (mpi3d, smallnorb, cars3d) are registered"
    assert main(["data", "render", file_only[0], "--out", str(tmp_path / "x")]) == 2
    assert "dislab: error:" in capsys.readouterr().err
