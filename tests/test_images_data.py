"""Training on images without factors (issue 18, item 3): ``load("images", path=DIR)``, the
uint8 cache in ``DIR/.dislab-cache``, training, evaluate and ``dislab report`` on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dislab.data as dd
from dislab.cli import main as dislab_main
from dislab.data import DataError
from dislab.data.images import CACHE_FOLDER
from dislab.train import fit


def _folder(root: Path, n: int = 40, grey: bool = False, side: int = 16) -> Path:
    """``n`` PNGs of a bright square at a random place (colour or grey), in two sub-folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        a = np.zeros((side, side, 3), np.uint8)
        x, y = rng.integers(0, side - 5, 2)
        a[y:y + 5, x:x + 5] = rng.integers(80, 255) if grey else rng.integers(80, 255, 3)
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a[..., 0] if grey else a).save(sub / f"{i:03d}.png")
    return root


def test_images_are_read_resized_and_cached(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path / "imgs", n=6)
    wide = np.zeros((32, 64, 3), np.uint8)
    wide[:, :32] = 255  # white left half, black right half
    Image.fromarray(wide).save(root / "wide.jpg", quality=95)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"junk")
    data = dd.load("images", path=str(root), size=16)
    assert len(data) == 7 and data.observation_shape == (3, 16, 16)
    assert data.num_factors == 0 and data.factor_sizes == ()
    assert data.files[-1] == "wide.jpg" and data.files[0] == "a/001.png"
    # centre crop to square (columns 16..47: half white, half black), then resize
    w = data.images_uint8_from_index([6])[0].astype(int)
    assert w[:, :, :7].min() > 230 and w[:, :, 9:].max() < 25
    cached = list((root / CACHE_FOLDER).glob("images-16x16-*.npy"))
    assert len(cached) == 1
    with monkeypatch.context() as m:  # the second load decodes nothing
        m.setattr("dislab.data.images._read_one", lambda *a: pytest.fail("decoded again"))
        again = dd.load("images", path=str(root), size=16)
    assert np.array_equal(again.images_uint8_from_index(np.arange(7)),
                          data.images_uint8_from_index(np.arange(7)))
    os.utime(root / "wide.jpg", ns=(1, 1))  # a changed file -> a new cache entry
    dd.load("images", path=str(root), size=16)
    assert len(list((root / CACHE_FOLDER).glob("images-16x16-*.npy"))) == 2
    other = tmp_path / "elsewhere"
    dd.load("images", path=str(root), size=(16, 32), cache=str(other))
    assert len(list(other.glob("images-16x32-*.npy"))) == 1
    grey = _folder(tmp_path / "grey", n=3, grey=True)
    g = dd.load("images", path=str(grey), size=8, cache=False)
    assert g.observation_shape == (1, 8, 8) and not (grey / CACHE_FOLDER).exists()


def test_images_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs path=DIR"):
        dd.load("images")
    with pytest.raises(DataError, match="does not exist"):
        dd.load("images", path=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        dd.load("images", path=str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png: cannot read the image"):
        dd.load("images", path=str(bad), cache=False)
    with pytest.raises(DataError, match="unknown option"):
        dd.load("images", path=str(bad), colour=True)


def test_train_evaluate_and_report_without_labels(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs", n=40)
    run = fit(dict(model="beta_vae", data="images", data_path=str(root),
                   data_options={"size": 16}, latent_dim=3, steps=8, batch_size=8,
                   log_every=2, checkpoint_every=100, image_every=0, compile=False,
                   tensorboard=False, threads=1, out=str(tmp_path / "run")), progress=False)
    assert dislab_main(["report", str(run), "--quiet"]) == 0
    record = json.loads((run / "metrics.json").read_text())
    assert set(record["metrics"]) == {"unsupervised", "elbo_decomposition"}
    assert record["skipped"]["mig"].startswith("needs factor labels")
    elbo = record["metrics"]["elbo_decomposition"]["values"]
    assert np.isfinite(elbo["tc"]) and elbo["kl"] >= 0
    page = (run / "report" / "index.html").read_text()
    assert "no factor labels" in page and "no factors" in page
    assert (run / "report" / "reconstructions.png").exists()
    assert not (run / "report" / "mutual_information.png").exists()


def test_data_show_and_list_without_a_grid(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs", n=12)
    out = tmp_path / "show.png"
    assert dislab_main(["data", "show", "images", "--path", str(root), "--out", str(out)]) == 0
    Image.open(out).verify()
    # labelled rows where not every combination exists: sweeps use the closest rows
    f = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [0, 0]])
    rows = dd.from_arrays(np.eye(16, dtype=np.uint8)[None, None].repeat(6, 0) * 200,
                          {"colour": ["r", "g", "b", "g", "r", "b"], "size": f[:, 1]})
    from dislab.data.show import show_grid

    show_grid(rows, tmp_path / "rows.png", samples=4)
    assert (tmp_path / "rows.png").stat().st_size > 0
