"""The training batches: drawn from one numpy Generator whose state a checkpoint keeps.

Single observations are drawn i.i.d. with replacement over the data set by
:meth:`dislab.data.GroundTruthData.batches` (disentanglement_lib's input pipeline,
``data/ground_truth/util.py``, ``tf_data_set_from_ground_truth_data``); pairs by
:func:`dislab.data.pairs.pair_batches`. :class:`BatchSource` runs either on one Generator,
optionally in a background thread, and knows the Generator state *before the next batch the
loop will consume*: a run resumed from that state draws exactly the batches the uninterrupted
run would have drawn.

>>> per_batch, options = pair_batch_settings(models.get(cfg.model), cfg)
>>> source = BatchSource(data, per_batch, cfg.seed, kind, options)
>>> x = next(source)                 # (B, *obs) or (B, 2, *obs) float32 in [0, 1], CPU
>>> state = source.state()          # JSON-able; source.set_state(state) resumes there
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from dislab.errors import DislabError
from dislab.train.config import TrainConfig

__all__ = ["BatchSource", "Prefetcher", "pair_batch_settings"]


def pair_batch_settings(cls: Any, cfg: TrainConfig) -> tuple[int, dict[str, Any]]:
    """Batches per update (pairs for pair methods) and the pair-sampler options of a run.

    ``cls`` is the method class: its ``batch_counts`` ("images": ``batch_size`` counts images,
    two per pair, as Slow-VAE's reference) and, when the config gives no ``pair_options``, its
    ``pair_defaults``. Single-observation methods get ``(cfg.batch_size, cfg.pair_options)``.
    """
    if getattr(cls, "batch_kind", "single") != "pairs":
        return cfg.batch_size, dict(cfg.pair_options)
    options = dict(cfg.pair_options or getattr(cls, "pair_defaults", {}))
    if getattr(cls, "batch_counts", "pairs") == "images":
        if cfg.batch_size % 2:
            raise DislabError(f"{cls.name}: batch_size counts images, two per pair, so it must "
                              f"be even; got {cfg.batch_size} (the reference's is 64 = 32 "
                              "pairs).")
        return cfg.batch_size // 2, options
    return cfg.batch_size, options


class Prefetcher:
    """The results of ``draw()`` in order, drawn ahead in a daemon thread named ``name``.

    :meth:`next` returns the next result: drawn then (``ahead=False``) or taken from the
    thread, which it starts when none runs and which keeps at most ``depth`` results ready
    (``ahead=True``); an error of ``draw`` in the thread is raised there. :meth:`stop` ends the
    thread and drops what it drew ahead, then calls ``rewind()``, which puts the caller's
    generators back to the position after the last result it got.
    """

    def __init__(self, draw: Callable[[], Any], name: str, rewind: Callable[[], None],
                 depth: int = 2) -> None:
        self._draw, self._rewind = draw, rewind
        self.name, self.depth = name, depth
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _worker(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._draw()
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)  # type: ignore[union-attr]
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # handed to the consumer
            if self._queue is not None:
                self._queue.put(e)

    def next(self, ahead: bool) -> Any:
        """The next result of ``draw()`` (from the thread when ``ahead``)."""
        if not ahead:
            return self._draw()
        if self._thread is None:
            self._stop.clear()
            self._queue = queue.Queue(maxsize=self.depth)
            self._thread = threading.Thread(target=self._worker, daemon=True, name=self.name)
            self._thread.start()
        item = self._queue.get()  # type: ignore[union-attr]
        if isinstance(item, BaseException):
            self.stop()
            raise item
        return item

    def stop(self) -> None:
        """End the thread, if one runs, and ``rewind()``."""
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a worker waiting on a full queue
                self._queue.get_nowait()  # type: ignore[union-attr]
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
        self._thread = None
        self._queue = None
        self._rewind()


class BatchSource:
    """Endless batches from ``data`` drawn with one numpy Generator seeded with ``seed``.

    ``kind="single"``: float32 ``(batch_size, *obs)`` in [0, 1]; ``kind="pairs"``:
    ``(batch_size, 2, *obs)`` from :func:`dislab.data.pairs.pair_batches` with
    ``pair_options``. Batches are on the CPU (4-D ones channels-last when ``channels_last``).
    With ``prefetch`` the next batches are drawn in a background thread (the same batches as
    without). :meth:`state` / :meth:`set_state` give and take the resumable Generator state,
    :meth:`rewind` forgets the last batch (its update failed) and :meth:`close` stops the
    thread.
    """

    def __init__(self, data: Any, batch_size: int, seed: int, kind: str = "single",
                 pair_options: dict[str, Any] | None = None, prefetch: bool = True,
                 channels_last: bool = False) -> None:
        self.data, self.batch_size, self.kind = data, batch_size, kind
        self.pair_options = dict(pair_options or {})
        self.prefetch = prefetch
        self.channels_last = channels_last
        self.rng = np.random.default_rng(seed)
        self._state = self.rng.bit_generator.state
        self._prev_state = self._state
        self._gen: Iterator[torch.Tensor] | None = None
        self._draws = Prefetcher(self._draw, "dislab-batches", self._rewind_generator)

    def _stream(self) -> Iterator[torch.Tensor]:
        """The data's own batch iterator on this source's Generator."""
        if self.kind == "pairs":
            from dislab.data.pairs import pair_batches

            return pair_batches(self.data, self.batch_size, seed=self.rng, **self.pair_options)
        return self.data.batches(self.batch_size, seed=self.rng)

    def _draw(self) -> tuple[torch.Tensor, dict[str, Any]]:
        """The next batch and the Generator state after it (in the prefetch thread when
        prefetching)."""
        if self._gen is None:
            self._gen = self._stream()
        x = next(self._gen)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.rng.bit_generator.state

    def __next__(self) -> torch.Tensor:
        item = self._draws.next(self.prefetch)
        self._prev_state = self._state
        x, self._state = item
        return x

    def __iter__(self) -> BatchSource:
        return self

    def state(self) -> dict[str, Any]:
        """The Generator state before the next batch the caller will get (JSON-able)."""
        return self._state

    def rewind(self) -> None:
        """Forget the last batch (its update was interrupted): ``state()`` is before it."""
        self.close()
        self._state = self._prev_state
        self.rng.bit_generator.state = self._state

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state` (e.g. a checkpoint's)."""
        self.close()
        self.rng.bit_generator.state = state
        self._state = state
        self._gen = None

    def _rewind_generator(self) -> None:
        """Back to the consumed position (the prefetch thread drew ahead)."""
        self.rng.bit_generator.state = self._state
        self._gen = None

    def close(self) -> None:
        """Stop the prefetch thread; the Generator goes back to the consumed position."""
        self._draws.stop()
