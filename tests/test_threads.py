"""The one thread-settings helper: environment for new processes, scoped torch threads."""

from __future__ import annotations

import os

import torch

from dislab.threads import apply_env_threads, set_process_threads, thread_env, torch_threads


def test_thread_env_names_every_variable():
    env = thread_env(3)
    assert env == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "DISLAB_THREADS": "3"}


def _other(count: int) -> int:
    """A thread count other than ``count`` (the tests run with one torch thread)."""
    return 2 if count == 1 else 1


def test_torch_threads_restores_previous_count():
    before = torch.get_num_threads()
    n = _other(before)
    with torch_threads(n):
        assert torch.get_num_threads() == n
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error():
    before = torch.get_num_threads()
    try:
        with torch_threads(_other(before)):
            raise ValueError("boom")
    except ValueError:
        pass
    assert torch.get_num_threads() == before


def test_process_threads_set_environment_and_torch(monkeypatch):
    before = torch.get_num_threads()
    n = _other(before)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DISLAB_THREADS"):
        monkeypatch.setenv(var, "0")  # recorded, so that the test's values are undone after it
        monkeypatch.delenv(var)
    try:
        set_process_threads(n)
        assert os.environ["DISLAB_THREADS"] == str(n) and torch.get_num_threads() == n
        torch.set_num_threads(before)
        apply_env_threads()
        assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(before)
