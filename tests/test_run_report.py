"""The run report and the traversal tool on a tiny run (seconds)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dislab.cli import main as dislab_main
from dislab.errors import DislabError
from dislab.metrics import evaluate_run
from dislab.viz.analyze import latent_summary
from dislab.viz.run_report import build_report, headline_metrics, traverse
from qs_helpers import tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("report"), steps=20)


@pytest.fixture(scope="module")
def report(run: Path) -> Path:
    evaluate_run(run, metrics="mig,modularity", progress=False,
                 params={"mig": {"num_train": 500},
                         "modularity": {"num_train": 500, "num_test": 500}})
    return build_report(run, progress=False, n_steps=5, n_images=2)


def test_report_sections_and_images(run: Path, report: Path) -> None:
    assert report == run / "report" / "index.html"
    page = report.read_text()
    for anchor in ("run", "reconstructions", "traversals", "latents", "mi", "metrics",
                   "training"):
        assert f'id="{anchor}"' in page
    for name in ("reconstructions.png", "traversals.png", "traversals.gif",
                 "informativeness.png", "mutual_information.png", "training_curves.png"):
        path = run / "report" / name
        assert path.exists() and path.stat().st_size > 0, name
        Image.open(path).verify()
    # self-contained: every picture embedded, no link to a local file
    assert page.count("data:image/png;base64,") >= 5
    assert "data:image/gif;base64," in page
    assert not re.search(r'<img src="(?!data:)', page)
    # every metric that ran, with its registry description
    record = json.loads((run / "metrics.json").read_text())
    assert set(record["metrics"]) == {"mig", "modularity"}
    assert "MIG, histogram estimator" in page  # first docstring line of metrics.mig.mig
    assert "discrete_mig = " in page
    assert ("MIG", record["metrics"]["mig"]["values"]["discrete_mig"]) in \
        headline_metrics(record)


def test_latents_table_follows_informativeness(run: Path, report: Path) -> None:
    s = latent_summary(run, progress=False)
    info = np.asarray(s["informativeness"])
    assert s["order"] == list(np.argsort(-info, kind="stable"))
    assert np.all(np.diff(info[s["order"]]) <= 0)
    page = report.read_text()
    table = page[page.index('id="latents"'):page.index('id="mi"')]
    shown = [int(m) for m in re.findall(r"<td>z(\d+)</td>", table)]
    assert shown == s["order"]
    # KL per latent equals the closed form on the cached codes
    codes = np.load(run / "codes.npz", allow_pickle=False)
    mean, logvar = codes["mean"].astype(np.float64), codes["logvar"].astype(np.float64)
    kl = np.mean(0.5 * (mean ** 2 + np.exp(logvar) - logvar - 1), axis=0)
    np.testing.assert_allclose(s["kl"], kl, rtol=1e-6)


def test_traverse_grid_size(run: Path, tmp_path: Path) -> None:
    out = traverse(run, latents="0,3", limit=2.5, n_steps=7, out=tmp_path / "t.png", index=5,
                   labels=False)
    w, h = Image.open(out).size
    assert (h, w) == (2 * (16 + 2) + 2, 7 * (16 + 2) + 2)
    out = traverse(run, latents="all", n_steps=4, out=tmp_path / "t2.png", scale=2, index=5,
                   labels=False)
    w, h = Image.open(out).size
    assert (h, w) == (2 * (4 * 18 + 2), 2 * (4 * 18 + 2))
    gif = traverse(run, latents=[1, 2], out=tmp_path / "t.gif", gif=True, n_steps=4, index=5)
    img = Image.open(gif)
    assert img.n_frames > 1 and img.size == (2 * 18 + 2, 18 + 2)


def test_traverse_rows_change_only_their_latent(run: Path, tmp_path: Path) -> None:
    # The middle column of row r decodes the image's posterior mean except latent r set to 0;
    # with range -> tiny all columns of a row are the same decoding.
    out = traverse(run, latents="0", limit=1e-6, n_steps=3, out=tmp_path / "s.png", index=2,
                   labels=False)
    a = np.asarray(Image.open(out))[2:18]
    np.testing.assert_array_equal(a[:, 2:18], a[:, 20:36])


def test_traverse_errors(run: Path) -> None:
    with pytest.raises(DislabError, match="out of range"):
        traverse(run, latents="0,9")
    with pytest.raises(DislabError, match="comma-separated"):
        traverse(run, latents="a,b")
    with pytest.raises(DislabError, match="not a dislab run"):
        traverse(run.parent)


def test_cli_report_and_traverse(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
                                 ) -> None:
    out = tmp_path / "rep"
    assert dislab_main(["report", str(run), "--out", str(out), "--no-evaluate", "--quiet",
                        "--steps", "3"]) == 0
    assert (out / "index.html").exists()
    assert dislab_main(["traverse", str(run), "--latents", "1", "--out",
                        str(tmp_path / "x.png"), "--index", "0"]) == 0
    assert "traversal:" in capsys.readouterr().out
    assert dislab_main(["traverse", str(run), "--latents", "7"]) == 2


def test_report_without_decoder_says_so(tmp_path: Path) -> None:
    run = tiny_run(tmp_path, steps=3, model="pcl")
    evaluate_run(run, metrics="mig", progress=False, params={"mig": {"num_train": 300}})
    page = build_report(run, progress=False).read_text()
    assert "has no decoder" in page
    assert not (run / "report" / "traversals.png").exists()
    assert (run / "report" / "mutual_information.png").exists()
    with pytest.raises(DislabError, match="no decoder"):
        traverse(run)


def test_traverse_png_names_rows_and_values(run: Path, tmp_path: Path) -> None:
    """The labelled PNG is the bare grid plus a left margin (one label per latent row) and a
    top margin (column values): the grid's pixels are unchanged at the margins' offset."""
    kw = dict(latents="0,3", limit=2.5, n_steps=5, index=5, scale=2)
    bare = np.asarray(Image.open(traverse(run, out=tmp_path / "b.png", labels=False, **kw)))
    lab = np.asarray(Image.open(traverse(run, out=tmp_path / "l.png", **kw)))
    top, left = lab.shape[0] - bare.shape[0], lab.shape[1] - bare.shape[1]
    assert top > 0 and left > 0
    np.testing.assert_array_equal(lab[top:, left:], bare)
    dark = lab.min(axis=-1) < 128
    cell, pad = 16 * 2, 2 * 2
    for r in range(2):  # each latent row has its name in the left margin, beside the row
        y0 = top + pad + r * (cell + pad)
        assert dark[y0:y0 + cell, :left].any(), f"row {r} has no label"
    assert dark[:top, left:].any()  # column values above the grid
    assert not dark[:top, :left].any()  # the corner stays empty


def test_run_table_has_no_empty_header_and_heatmap_labels_fit(run: Path, report: Path) -> None:
    page = report.read_text()
    assert "<tr><th></th><th></th></tr>" not in page
    assert re.search(r'<h2 id="run">Run</h2>\s*<table><tr><td>method</td>', page)
    heat = np.asarray(Image.open(run / "report" / "mutual_information.png").convert("L"))
    # every label lies inside the picture with a margin (the saved box is fitted to the text,
    # padded by 0.1 in = 15 px at 150 dpi): a white border of at least 12 px all round
    for edge in (heat[:12], heat[-12:], heat[:, :12], heat[:, -12:]):
        assert edge.min() >= 250
