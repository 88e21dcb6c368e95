"""Whether a run that says ``"running"`` still runs.

Training runs and study runs write ``status.json`` with the ``pid`` and ``host`` of the
process doing the work and a ``heartbeat`` (Unix time, refreshed while it works). A process
killed with SIGKILL (or by the out-of-memory killer, or a lost node) cannot write its end, so
its file keeps saying ``"running"``. :func:`effective_status` tells such a run apart: on the
same host its pid is gone; elsewhere its heartbeat is older than :data:`STALE_SECONDS`.
No heavy imports: the CLI and the study driver use this without loading torch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "effective_status", "pid_alive",
           "read_status", "process_info"]

#: Seconds between heartbeats of a working run.
HEARTBEAT_SECONDS = 30.0
#: A run on another host whose heartbeat is older than this is taken as interrupted.
STALE_SECONDS = 900.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a zombie (killed, not yet reaped) has state Z
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_info() -> dict[str, Any]:
    """``{"pid", "host", "heartbeat"}`` of this process, to put in a status file."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time()}


def effective_status(status: dict[str, Any], now: float | None = None) -> str:
    """``status["status"]``, except that a ``"running"`` whose process is gone (same host: its
    pid does not exist; another host: no heartbeat for :data:`STALE_SECONDS`) is
    ``"interrupted"``. A file without pid, or from another host without a heartbeat, is taken
    as it says."""
    state = str(status.get("status", "unknown"))
    if state != "running":
        return state
    pid, host = status.get("pid"), status.get("host")
    if isinstance(pid, int) and host == socket.gethostname():
        return state if (pid == os.getpid() or pid_alive(pid)) else "interrupted"
    beat = status.get("heartbeat")
    if isinstance(beat, (int, float)):
        now = time.time() if now is None else now
        if now - beat > STALE_SECONDS:
            return "interrupted"
    return state


def read_status(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``folder/status.json`` with ``"status"`` replaced by :func:`effective_status` (the
    recorded value is kept as ``"recorded_status"`` when they differ); ``{}`` if missing."""
    try:
        status = json.loads((Path(folder) / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(status, dict):
        return {}
    state = effective_status(status)
    if state != status.get("status"):
        status["recorded_status"] = status.get("status")
        status["status"] = state
        status.setdefault("error", None)
        if not status["error"]:
            status["error"] = (f"the process (pid {status.get('pid')} on "
                               f"{status.get('host')}) stopped without recording an end "
                               "(killed?); re-run with --resume to continue")
    return status
