"""Shared test settings: one torch thread per test process.

Tests run under pytest-xdist with one worker per core; more intra-op threads than cores only
adds spin-wait contention for the small tensors the tests use.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
