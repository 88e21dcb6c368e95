"""dislab.data.fidelity: scores on analytic inputs, the GIF sweep, the report and the CLI."""

import json

import numpy as np
import pytest

import dislab.data as dd
from dislab.data import dsprites as ds
from dislab.data import fidelity as fd


def test_iou_of_identical_disjoint_and_half_overlapping_masks():
    a = np.zeros((64, 64), bool)
    a[10:20, 10:20] = True
    b = np.zeros((64, 64), bool)
    b[30:40, 30:40] = True
    assert fd.iou(a, a) == 1.0 and fd.iou(a, b) == 0.0
    c = np.zeros((64, 64), bool)
    c[10:20, 15:25] = True  # overlaps a in 50 of 150 pixels
    assert np.isclose(fd.iou(a, c), 50 / 150)
    assert fd.iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0  # both empty
    # batched and broadcast; values other than 0 count as "on"
    assert np.allclose(fd.iou(np.stack([a, b]) * 255, a), [1.0, 0.0])


def test_psnr_of_known_noise():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, (2, 64, 64, 3))
    # +-0.1 in every pixel: MSE 0.01, PSNR exactly 20 dB; for uint8 peak 255 the same
    sign = np.where(rng.random(x.shape) < 0.5, -1.0, 1.0)
    assert np.allclose(fd.psnr(x, x + 0.1 * sign), 20.0)
    assert np.allclose(fd.psnr(255 * x, 255 * (x + 0.1 * sign), peak=255.0), 20.0)
    assert np.isinf(fd.psnr(x[0], x[0]))
    # Gaussian noise of sd 0.05: PSNR ~ 26.02 dB (-20 log10 0.05)
    noisy = x + rng.normal(0, 0.05, x.shape)
    assert np.allclose(fd.psnr(x, noisy), -20 * np.log10(0.05), atol=0.1)


def test_box_downsample_keeps_constants_and_averages_blocks():
    c = np.full((227, 226, 3), 0.37)
    out = fd.box_downsample(c, 64)
    assert out.shape == (64, 64, 3) and np.allclose(out, 0.37)
    # an integer factor is the block mean
    rng = np.random.default_rng(1)
    x = rng.random((128, 128, 3))
    assert np.allclose(fd.box_downsample(x), x.reshape(64, 2, 64, 2, 3).mean(axis=(1, 3)))
    # a non-integer factor keeps the image mean (every input pixel weighs the same)
    y = rng.random((227, 226, 3))
    assert np.isclose(fd.box_downsample(y).mean(), y.mean())
    # 2-D images and batches
    assert fd.box_downsample(np.ones((100, 100)), 10).shape == (10, 10)
    assert fd.box_downsample(rng.random((5, 96, 96, 3))).shape == (5, 64, 64, 3)
    with pytest.raises(dd.DataError, match="cannot shrink"):
        fd.box_downsample(np.ones((32, 32)), 64)


def test_dsprites_gif_sweep_structure():
    f = fd.dsprites_gif_factors(np.arange(320))
    assert f.shape == (320, 5)
    assert list(np.unique(f[:, 0], return_counts=True)[1]) == [64, 64, 192]  # sq, ell, heart
    step = np.abs(np.diff(f, axis=0))
    changed = (step > 0).sum(axis=1)
    # one factor per frame, by one step (a value repeats where two legs meet)...
    same_shape = f[1:, 0] == f[:-1, 0]
    assert np.all(changed[same_shape] <= 1) and np.all(step[same_shape].max(axis=1) <= 1)
    # ...and every factor value of every shape appears
    for s in range(3):
        g = f[f[:, 0] == s]
        assert set(g[:, 1]) == set(range(6)) and set(g[:, 2]) == set(range(40))
    assert set(f[f[:, 0] == 2, 3]) == set(range(32))
    with pytest.raises(dd.DataError, match="frames 0..319"):
        fd.dsprites_gif_factors([320])


def test_best_match_and_evaluate_on_renders():
    # a thinned grid (scales 0, 3, 5; orientations 0, 7, 12) keeps the searches quick
    data = dd.load("dsprites", scales=[0, 3, 5], orientations=[0, 7, 12])
    f = np.array([[2, 1, 1, 5, 20], [0, 2, 0, 31, 0], [1, 0, 2, 16, 9]])
    frames = data.binary_from_index(data.index(f))
    i, s = fd.best_match(data, frames[0].astype(bool), fd.neighbourhood(
        data, f[0], {"posX": 1, "posY": 1}))
    assert i == data.index(f[:1])[0] and s == 1.0
    rows = fd.evaluate(data, frames, f, radius={"posX": 1, "posY": 1})
    assert all(r["known"] == 1.0 and r["best"] == 1.0 and r["best_is_known"] for r in rows)
    # without factors, the position is read off the frame
    rows = fd.evaluate(data, frames, None, radius={"posX": 1, "posY": 1})
    assert [r["best_factors"] for r in rows] == f.tolist()
    s = fd.summary(rows)
    assert s["best"]["min"] == 1.0 and s["best"]["exact"] == 3


def test_neighbourhood_clips_at_the_grid_edge():
    data = dd.load("dsprites", shapes=[2], scales=[5], orientations=[0])
    idx = fd.neighbourhood(data, [0, 0, 0, 0, 31], {"posX": 2, "posY": 2})
    got = data.factors(idx)
    assert len(idx) == 3 * 3 and set(got[:, 3]) == {0, 1, 2} and set(got[:, 4]) == {29, 30, 31}


def test_colour_path_downsamples_frames():
    data = dd.load("color_dsprites")
    f = data.sample_factors(3, 0)
    x = np.moveaxis(data.images_uint8(f), 1, -1)  # (n, 64, 64, 3) like an image file
    big = x.repeat(2, axis=1).repeat(2, axis=2)  # 128 x 128: box-downsamples back exactly
    rows = fd.evaluate(data, big, f, search="none")
    assert all(r["known"] > 100 for r in rows)  # identical up to float32 rounding
    noisy = np.clip(x.astype(int) + 10, 0, 255).astype(np.uint8)
    rows = fd.evaluate(data, noisy, f, search="none")
    assert all(20 < r["known"] < 40 for r in rows)


def test_cli_prints_rows_and_summary(tmp_path, capsys):
    data = dd.load("dsprites")
    f = fd.dsprites_gif_factors([0, 100, 300])
    path = tmp_path / "frames.npz"
    np.savez(path, imgs=ds.render_official(f), frame=np.array([0, 100, 300]))
    out_json = tmp_path / "rep.json"
    rc = fd.main(["--data", "dsprites", "--frames", str(path), "--factors", "dsprites-gif",
                  "--radius", "posX=1", "--radius", "posY=1", "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "  100  " in text and '"exact": 3' in text
    rep = json.loads(out_json.read_text())
    assert rep["summary"]["known"]["min"] == 1.0 and len(rep["rows"]) == 3
    assert data.factor_names[0] == "shape"


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert fd.main(["--data", "dsprites", "--frames", str(tmp_path / "none.npz")]) == 2
    assert "frames file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, other=np.zeros(3))
    assert fd.main(["--data", "dsprites", "--frames", str(bad)]) == 2
    assert "no 'imgs'" in capsys.readouterr().err
    ok = tmp_path / "ok.npz"
    np.savez(ok, imgs=np.zeros((2, 32, 32), np.uint8))
    assert fd.main(["--data", "dsprites", "--frames", str(ok)]) == 2
    assert "64 x 64" in capsys.readouterr().err
    np.savez(ok, imgs=np.zeros((2, 64, 64), np.uint8))
    assert fd.main(["--data", "dsprites", "--frames", str(ok), "--radius", "size=3"]) == 2
    assert "FACTOR=STEPS" in capsys.readouterr().err


def test_official_frames_scores():
    from shared_data import require_shared

    path = require_shared("reference_images/dsprites_official_frames.npz")
    z = np.load(path, allow_pickle=False)
    rows = fd.evaluate(dd.load("dsprites"), z["imgs"], fd.dsprites_gif_factors(z["frame"]),
                       search="none")
    s = fd.summary(rows)
    assert s["known"]["min"] >= 0.95 and s["known"]["median"] >= 0.98


def test_side_by_side_picture(tmp_path):
    f = fd.dsprites_gif_factors([0, 30, 200])
    x = ds.render_official(f).astype(bool)
    out = fd.side_by_side(x, x, tmp_path / "s.png", labels=["a", "b", "c"],
                          scores=[1.0, 1.0, 1.0], columns=2)
    from PIL import Image

    with Image.open(out) as im:
        w, h = im.size
    assert h > w * 0.9  # 2 blocks of (official, render) rows for 2 columns: taller than wide
