"""The compiled booster's numba cache lives in a per-user cache directory, never in the
installed package, and a read-only install works."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dislab.metrics import fastgbt

pytestmark = pytest.mark.skipif(not fastgbt.available(), reason="numba not installed")

SRC = Path(fastgbt.__file__).resolve().parents[1]  # .../dislab

FIT = """
import numpy as np
from dislab.metrics import fastgbt
rng = np.random.default_rng(0)
x = rng.standard_normal((60, 2)); y = (x[:, 0] > 0).astype(int)
acc = (fastgbt.ExactGBClassifier(n_estimators=3, random_state=0).fit(x, y).predict(x) == y).mean()
assert acc > 0.9, acc
print(fastgbt.numba_cache_dir())
"""


def test_cache_dir_follows_xdg_and_numba_cache_dir(monkeypatch) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    if sys.platform.startswith("linux"):
        assert fastgbt.numba_cache_dir() == os.path.join("/x/cache", "dislab", "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/y")
    assert fastgbt.numba_cache_dir() == "/y"


def test_read_only_install_fits_and_writes_nothing_into_it(tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "dislab"
    shutil.copytree(SRC, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for root, _dirs, files in os.walk(pkg):
        for f in files:
            os.chmod(os.path.join(root, f), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.chmod(root, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(pkg.parent), XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONDONTWRITEBYTECODE="1")
    try:
        out = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True,
                             text=True, timeout=600, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str(tmp_path / "cache" / "dislab" / "numba")
        written = [p for p in pkg.rglob("*") if p.suffix in (".nbi", ".nbc")]
        assert written == []  # (as root, a read-only mode does not stop writes: check them)
        assert list((tmp_path / "cache" / "dislab" / "numba").rglob("*.nbi"))
    finally:
        for root, _dirs, _files in os.walk(pkg):
            os.chmod(root, stat.S_IRWXU)
