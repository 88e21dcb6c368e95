"""The one thread-settings helper: environment for new processes, scoped torch threads."""

from __future__ import annotations

import os

import torch

from dislab.threads import apply_env_threads, set_process_threads, thread_env, torch_threads


def test_thread_env_names_every_variable():
    env = thread_env(3)
    assert env == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "DISLAB_THREADS": "3"}


def test_torch_threads_restores_previous_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error():
    before = torch.get_num_threads()
    try:
        with torch_threads(1):
            raise ValueError("boom")
    except ValueError:
        pass
    assert torch.get_num_threads() == before


def test_process_threads_set_environment_and_torch(monkeypatch):
    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DISLAB_THREADS"):
        monkeypatch.delenv(var, raising=False)
    try:
        set_process_threads(1)
        assert os.environ["DISLAB_THREADS"] == "1" and torch.get_num_threads() == 1
        torch.set_num_threads(before)
        apply_env_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
