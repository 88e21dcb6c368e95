"""The random draws made inside a training step, through one hook.

Methods draw their step noise (the reparameterisation noise of :func:`dislab.models.vae.
sample_gaussian`, FactorVAE's permute-dims keys, AAE's prior samples, PCL's permutation)
with :func:`randn_like`, :func:`rand` and :func:`randperm` instead of calling torch directly.
By default these are exactly ``torch.randn_like`` / ``torch.rand`` / ``torch.randperm`` on the
global generator, so a single run draws the same numbers as before.

Packed training (:mod:`dislab.train.packed`) runs K models as one vectorised model under
``torch.func.vmap``, where a draw would come from one generator for all members. It instead
draws each member's noise *outside* vmap, from that member's own generator (seeded and
advanced exactly like the global generator of the same run trained alone), and hands the
stacked draws in with :func:`replay`: inside, every draw returns the next handed-in tensor,
in the order the step makes them. :func:`record` lists the draws a step makes (kind, shape,
dtype), so that the caller knows what to draw.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from dislab.errors import DislabError

__all__ = ["Draw", "randn_like", "rand", "randperm", "record", "replay", "draw"]


@dataclass(frozen=True)
class Draw:
    """One draw of a step: ``kind`` ("randn", "rand" or "randperm"), the per-model ``shape``
    and ``dtype`` (``randperm``: shape ``(n,)``, dtype int64)."""

    kind: str
    shape: tuple[int, ...]
    dtype: torch.dtype


class _Recorder:
    def __init__(self) -> None:
        self.draws: list[Draw] = []

    def take(self, d: Draw, like: torch.Tensor | None, device: Any) -> torch.Tensor:
        self.draws.append(d)
        dev = like.device if like is not None else device
        if d.kind == "randperm":
            return torch.arange(d.shape[0], device=dev)
        # placeholder values: the recording pass is for the list of draws, not its result
        return torch.zeros(d.shape, dtype=d.dtype, device=dev)


class _Replay:
    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self.tensors = list(tensors)
        self.used = 0

    def take(self, d: Draw, like: torch.Tensor | None, device: Any) -> torch.Tensor:
        if self.used >= len(self.tensors):
            raise DislabError(f"packed step: an unexpected random draw ({d.kind} of shape "
                              f"{d.shape}); the step draws more than it did when recorded.")
        t = self.tensors[self.used]
        self.used += 1
        if tuple(t.shape) != d.shape:
            raise DislabError(f"packed step: draw {self.used} is {d.kind} of shape {d.shape}, "
                              f"but the handed-in noise has shape {tuple(t.shape)}.")
        return t


_local = threading.local()


def _active() -> _Recorder | _Replay | None:
    return getattr(_local, "provider", None)


@contextmanager
def _provide(p: _Recorder | _Replay) -> Iterator[Any]:
    before = _active()
    _local.provider = p
    try:
        yield p
    finally:
        _local.provider = before


def record() -> Any:
    """Context manager: draws inside return placeholders and are listed in ``.draws``."""
    return _provide(_Recorder())


def replay(tensors: Sequence[torch.Tensor]) -> Any:
    """Context manager: the i-th draw inside returns ``tensors[i]`` (shapes are checked)."""
    return _provide(_Replay(tensors))


def draw(d: Draw, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """Draw ``d`` from ``generator``: the same numbers the hook's default would draw from the
    global generator in the same state."""
    if d.kind == "randn":
        return torch.randn(d.shape, generator=generator, dtype=d.dtype, device=device)
    if d.kind == "rand":
        return torch.rand(d.shape, generator=generator, dtype=d.dtype, device=device)
    if d.kind == "randperm":
        return torch.randperm(d.shape[0], generator=generator, device=device)
    raise DislabError(f"unknown draw kind {d.kind!r}")


# -- the hook ----------------------------------------------------------------------------
def randn_like(t: torch.Tensor) -> torch.Tensor:
    """``torch.randn_like(t)`` (standard normal, shape, dtype and device of ``t``)."""
    p = _active()
    if p is None:
        return torch.randn_like(t)
    return p.take(Draw("randn", tuple(t.shape), t.dtype), t, None)


def rand(shape: Sequence[int], device: torch.device | str | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """``torch.rand(shape, device=device)`` (uniform in [0, 1), float32); an explicit
    ``generator`` bypasses the hook."""
    p = _active()
    if p is None or generator is not None:
        return torch.rand(tuple(shape), device=device, generator=generator)
    return p.take(Draw("rand", tuple(int(s) for s in shape), torch.float32), None, device)


def randperm(n: int, device: torch.device | str | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """``torch.randperm(n, device=device)``; an explicit ``generator`` bypasses the hook."""
    p = _active()
    if p is None or generator is not None:
        return torch.randperm(n, generator=generator, device=device)
    return p.take(Draw("randperm", (int(n),), torch.int64), None, device)
