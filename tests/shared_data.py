"""Locate `../shared/` (real official images for calibration tests), or skip cleanly.

CI lays `shared/` beside the repository's clone; `DISLAB_SHARED` overrides the location (useful
when the checkout is not next to it, e.g. a git worktree). Tests that need it call
`require_shared("reference_images/...")`, which skips with a message when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_dir() -> Path | None:
    """The `shared/` folder: `$DISLAB_SHARED`, else `<repo>/../shared`; None if missing."""
    env = os.environ.get("DISLAB_SHARED")
    candidate = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return candidate if candidate.is_dir() else None


def require_shared(relative: str) -> Path:
    """Path of `shared/<relative>`, skipping the calling test if it is not there."""
    root = shared_dir()
    if root is None or not (root / relative).exists():
        pytest.skip(f"shared/{relative} not found (set DISLAB_SHARED to the shared/ folder)")
    return root / relative
