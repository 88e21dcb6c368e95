"""Images per second of the training input path, against a naive baseline in the same run.

dislab path: ``data.batches(64, seed)`` -> float32 torch tensors ``(64, C, 64, 64)`` in [0, 1]
(one vectorised gather per batch). Baseline: ``torch.utils.data.DataLoader`` over the
map-style ``data.torch_dataset()`` fetched item by item (``batch_size=64, shuffle=True``,
``num_workers=0``), the usual way a PyTorch user would wrap a data set.

Rows: dSprites rendered procedurally, dSprites read from an official-format file (a reduced
grid rendered into a temporary folder), and Shapes3D rendered procedurally when registered.

    python benchmarks/data_throughput.py            # ~2 s per measurement
    python benchmarks/data_throughput.py --seconds 5 --names dsprites shapes3d
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

import dislab.data as dd
from dislab.data import dsprites as ds


class _ItemByItem(Dataset):
    """Hide ``__getitems__`` so the DataLoader really fetches one item at a time."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> Any:
        return self.inner[i]


def _rate(make_iter: Callable[[], Iterator[Any]], seconds: float, batch: int) -> float:
    it = make_iter()
    x = next(it)  # warm-up (caches, first-batch costs)
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x = next(it)
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def _loader_iter(data: dd.GroundTruthData, batch: int) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    while True:
        loader = DataLoader(_ItemByItem(data.torch_dataset()), batch_size=batch, shuffle=True,
                            num_workers=0, generator=g)
        for x, _ in loader:
            yield x


def measure(name: str, data: dd.GroundTruthData, seconds: float, batch: int) -> dict[str, Any]:
    """images/s of ``data.batches`` and of the item-by-item DataLoader baseline."""
    prep = 0.0
    if hasattr(data, "precompute"):
        t0 = time.perf_counter()
        data.precompute(progress=False)
        prep = time.perf_counter() - t0
    elif name.startswith("dsprites"):
        t0 = time.perf_counter()
        data.images_uint8_from_index(torch.arange(len(data))[:: max(1, len(data) // 4096)]
                                     .numpy())
        prep = time.perf_counter() - t0
    fast = _rate(lambda: data.batches(batch, seed=0), seconds, batch)
    slow = _rate(lambda: _loader_iter(data, batch), seconds, batch)
    return {"name": name, "fast": fast, "slow": slow, "prep": prep}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--names", nargs="*", default=["dsprites", "dsprites-file", "shapes3d"])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.names:
            if name == "dsprites-file":
                path = os.path.join(tmp, "dsprites_small.npz")
                ds.render_to_file(path, progress=False, positions=16)
                data = dd.load("dsprites", path=path)
                label = f"dsprites (file, {len(data):,} images)"
            elif name in dd.available():
                data = dd.load(name)
                label = f"{name} ({data.source})"
            else:
                print(f"skipping {name}: not registered")
                continue
            r = measure(name, data, args.seconds, args.batch_size)
            r["label"] = label
            rows.append(r)
    print(f"\nbatch {args.batch_size}, float32 tensors, 1 torch thread, "
          f"{args.seconds:g} s per measurement")
    print(f"{'data':<34} {'data.batches img/s':>19} {'DataLoader img/s':>17} {'ratio':>7} "
          f"{'cache s':>8}")
    for r in rows:
        print(f"{r['label']:<34} {r['fast']:>19,.0f} {r['slow']:>17,.0f} "
              f"{r['fast'] / r['slow']:>6.1f}x {r['prep']:>8.1f}")


if __name__ == "__main__":
    main()
