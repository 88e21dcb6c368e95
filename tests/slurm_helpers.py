"""Run functions for tests/test_study_slurm.py, importable by the job processes (the test puts
this folder on their PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dislab.study.fake import fake_run


def die_once_on_seed1(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Seed-1 runs kill their process half-way the first time (as a task that runs out of
    memory or time would); every later call finishes (and resumes from the fake progress)."""
    marker = Path(run_dir) / "died_once"
    if int(run["seed"]) == 1 and not marker.exists():
        marker.write_text("x")
        (Path(run_dir) / "fake_progress.json").write_text('{"chunk": 2}')
        os._exit(9)
    return fake_run(run, run_dir)
