"""dislab.io: atomic writes keep the old file on failure; NaN stored as null, old forms read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dislab.io import (
    as_float,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    read_json,
    write_json,
)


def _strict(text: str) -> object:
    """Parse as standard JSON: the NaN/Infinity tokens are refused."""
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_writes_replace_and_leave_no_temporary(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.txt"]


def test_failure_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    p = tmp_path / "status.json"
    write_json(p, {"status": "running"})
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text('{"status": "do')  # half written, then the writer dies
        raise RuntimeError("killed")
    assert read_json(p) == {"status": "running"}
    with pytest.raises(TypeError):
        write_json(p, {"status": object()})  # not serialisable: fails before the rename
    assert read_json(p) == {"status": "running"}
    assert [x.name for x in tmp_path.iterdir()] == ["status.json"]


def test_nan_is_null_and_round_trips(tmp_path: Path) -> None:
    p = tmp_path / "metrics.json"
    obj = {"a": float("nan"), "b": [float("inf"), -math.inf, 1.5], "c": np.float32("nan"),
           "d": np.arange(3), "e": {1: np.int64(4)}, "f": None}
    write_json(p, obj)
    stored = _strict(p.read_text())
    assert stored == {"a": None, "b": [None, None, 1.5], "c": None, "d": [0, 1, 2],
                      "e": {"1": 4}, "f": None}
    assert math.isnan(as_float(stored["a"])) and math.isnan(as_float(stored["c"]))
    assert as_float(stored["b"][2]) == 1.5


def test_old_forms_are_read(tmp_path: Path) -> None:
    p = tmp_path / "old.json"
    p.write_text('{"x": NaN, "y": "nan", "z": "-inf", "w": Infinity}')
    old = read_json(p)
    assert math.isnan(old["x"]) and old["w"] == math.inf
    assert math.isnan(as_float(old["y"])) and as_float(old["z"]) == -math.inf
    assert read_json(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{")
    assert read_json(tmp_path / "bad.json") is None


def test_study_files_store_nan_as_null_and_the_table_reads_every_form(tmp_path: Path) -> None:
    from dislab.study.collect import collect, metric_columns
    from dislab.study.runner import write_json_atomic

    forms = {"r_null": None, "r_str": '"nan"', "r_token": "NaN", "r_num": "0.25"}
    for run_id, form in forms.items():
        folder = tmp_path / "runs" / run_id
        write_json_atomic(folder / "run.json", {"run_id": run_id, "method": "beta_vae"})
        write_json_atomic(folder / "status.json", {"status": "done", "loss": float("nan")})
        assert _strict((folder / "status.json").read_text())["loss"] is None
        if form is None:
            write_json_atomic(folder / "result.json", {"metrics": {"mig": {"v": float("nan")}}})
            assert '"v": null' in (folder / "result.json").read_text()
        else:
            (folder / "result.json").write_text('{"metrics": {"mig": {"v": ' + form + "}}}")
    table = collect(tmp_path).set_index("run_id")
    assert "metric.mig.v" in metric_columns(table.reset_index())
    col = table["metric.mig.v"]
    assert pd.isna(col[["r_null", "r_str", "r_token"]]).all() and col["r_num"] == 0.25
