"""Worker thread settings, in one place.

Two kinds of setting exist:

* a *process* that is about to start (a study worker, a quickstart seed, a Ray task, a Slurm
  job) gets its thread count through the environment: :func:`thread_env` gives the variables
  (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` for the BLAS libraries, ``DISLAB_THREADS`` for
  dislab's own code, which calls :func:`apply_env_threads` once torch is imported);
* *code in this process* that wants a different intra-op thread count for a while (tiny
  tensors, thread pools of one-thread workers) uses :func:`torch_threads`, which restores
  the previous count on exit.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["thread_env", "set_process_threads", "apply_env_threads", "torch_threads",
           "usable_cores"]

_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DISLAB_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; all cores where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def thread_env(threads: int) -> dict[str, str]:
    """The environment variables that give a new process ``threads`` threads."""
    value = str(int(threads))
    return dict.fromkeys(_VARS, value)


def set_process_threads(threads: int | None) -> None:
    """Set this process's thread variables (for the libraries it has not loaded yet) and, if
    torch is already imported, its intra-op thread count. ``None`` leaves everything as is.
    Torch is not imported here, so processes that never need it stay light."""
    if not threads:
        return
    os.environ.update(thread_env(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def apply_env_threads() -> None:
    """Set torch's intra-op threads from ``DISLAB_THREADS`` when a launcher put it there."""
    value = os.environ.get("DISLAB_THREADS")
    if value:
        import torch

        torch.set_num_threads(int(value))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, then restore the previous
    count (``None``: leave it unchanged)."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
