"""Packs: compatible runs of a study trained together as one task (``study run --pack``).

Runs whose training configs have equal :func:`dislab.train.packed.pack_key` (same method,
architecture, data set, batch size, steps, device...; seeds and hyper-parameters may differ)
are grouped, in the study's run order, into packs of at most ``K`` runs. A pack is one task of
a backend (:func:`dislab.study.runner.execute_pack`): its runs train together
(:func:`dislab.train.packed.fit_pack`) and are scored together
(:func:`dislab.metrics.many.evaluate_runs`), while each keeps its own folder, status and
result. Runs that cannot be packed (``pack_key`` is ``None``) run alone.

``--pack auto`` chooses ``K`` from the device: on CPU 1 (the host path, one run per process,
is as fast per image there), on CUDA as many runs as fit in :data:`MAX_FREE_FRACTION` of the
free memory beside the data grid (:func:`model_bytes`), at most :data:`MAX_AUTO_PACK`.
"""

from __future__ import annotations

import math
from typing import Any

from dislab.errors import DislabError

__all__ = ["group_packs", "auto_pack", "model_bytes", "parse_pack", "MAX_AUTO_PACK"]

#: The largest pack ``--pack auto`` makes.
MAX_AUTO_PACK = 64
#: Share of a GPU's free memory that ``--pack auto`` plans to fill (grid + models).
MAX_FREE_FRACTION = 0.7
#: ``--pack auto`` on a CPU.
CPU_PACK = 1


def parse_pack(value: str | int | None) -> int | str | None:
    """``None``/``"1"`` -> None (no packs), ``"auto"`` -> ``"auto"``, ``"K"`` -> K."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise DislabError(f"--pack must be 'auto' or a whole number of runs, not {value!r}."
                          ) from None
    if k < 1:
        raise DislabError(f"--pack must be at least 1, not {k}.")
    return None if k == 1 else k


def _key(run: dict[str, Any]) -> tuple | None:
    from dislab.train.packed import pack_key

    try:
        return pack_key(dict(run["train"]))
    except DislabError:
        return None


def group_packs(runs: list[dict[str, Any]], size: int) -> list[dict[str, Any] | list[dict]]:
    """``runs`` as backend tasks: lists of at most ``size`` compatible runs (packs), in the
    order of their first run, and single runs (dicts) where a run has no partner or cannot
    be packed."""
    if size < 2:
        return list(runs)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    order: list[Any] = []
    for run in runs:
        key = _key(run)
        if key is None:
            order.append(run)
            continue
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(run)
    tasks: list[dict[str, Any] | list[dict]] = []
    for item in order:
        if isinstance(item, dict):
            tasks.append(item)
            continue
        members = groups[item]
        for s in range(0, len(members), size):
            chunk = members[s:s + size]
            tasks.append(chunk if len(chunk) > 1 else chunk[0])
    return tasks


def model_bytes(train: dict[str, Any], shape: tuple[int, ...]) -> int:
    """Device memory one packed run needs, by a rule of thumb: its parameters four times
    (weights, gradients, Adam's two moments) plus three times the float32 outputs of every
    layer for one batch (kept for backward, their gradients, workspace), counted with forward
    hooks on a CPU pass of two observations."""
    import torch

    from dislab import models

    cls = models.get_class(train["model"])
    model = models.create(train["model"], tuple(shape), int(train.get("latent_dim", 10)),
                          **dict(train.get("hparams") or {}))
    params = sum(p.numel() for p in model.parameters())
    outputs = [0]

    def hook(_m: Any, _i: Any, out: Any) -> None:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                outputs[0] += t.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    pairs = getattr(cls, "batch_kind", "single") == "pairs"
    x = torch.rand(2, 2, *shape) if pairs else torch.rand(2, *shape)
    try:
        with torch.no_grad():
            model.loss(x, 0)
        per_image = outputs[0] / (4 if pairs else 2)
    except Exception:  # noqa: BLE001 - a loss that needs more: count the observation 50 times
        per_image = 50 * math.prod(shape)
    finally:
        for h in handles:
            h.remove()
    batch = int(train.get("batch_size", 64)) * (2 if pairs else 1)
    return int(4 * 4 * params + 3 * 4 * batch * per_image)


def _device(runs: list[dict[str, Any]]) -> Any:
    import torch

    name = str(runs[0]["train"].get("device", "auto")) if runs else "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def auto_pack(runs: list[dict[str, Any]]) -> int:
    """``K`` of ``--pack auto`` for ``runs`` (see the module docstring)."""
    import torch

    if not runs:
        return 1
    device = _device(runs)
    if device.type != "cuda" or not torch.cuda.is_available():
        return CPU_PACK
    import dislab.data as dd
    from dislab.data.device import grid_nbytes

    free = torch.cuda.mem_get_info(device)[0] * MAX_FREE_FRACTION
    best = MAX_AUTO_PACK
    seen: set[Any] = set()
    for run in runs:
        key = _key(run)
        if key is None or key in seen:
            continue
        seen.add(key)
        train = run["train"]
        data = dd.load(train["data"], path=train.get("data_path"),
                       **dict(train.get("data_options") or {}))
        room = free - grid_nbytes(data)
        per = model_bytes(train, tuple(data.observation_shape))
        best = min(best, max(1, int(room // max(per, 1))))
    return max(1, best)
