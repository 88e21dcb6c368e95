"""Checkpoints and weights: safetensors tensors + JSON metadata, written atomically.

Nothing here unpickles: a checkpoint is ONE safetensors file whose header metadata holds a JSON
document (``"dislab"`` key) with the non-tensor state (step, optimiser hyper-parameters, numpy
RNG state, ...). Tensors are stored under prefixes:

* ``model/<name>``: the method's ``state_dict`` (parameters and buffers);
* ``optim/<optimizer>/<param index>/<key>``: each optimiser's per-parameter state (Adam's
  ``step``, ``exp_avg``, ``exp_avg_sq``);
* ``rng/torch`` (and ``rng/cuda``), ``rng/numpy_keys``: the global generator states
  (:func:`random_state`; numpy's and Python's scalars are in the metadata);
* ``extra/<name>``: loop state (e.g. the running sums of the current logging window).

Files are written to a temporary name in the same folder and moved into place with
``os.replace``, so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dislab.errors import DislabError
from dislab.io import atomic_path

__all__ = [
    "FORMAT",
    "save_tensors",
    "load_tensors",
    "save_weights",
    "load_weights",
    "optimizer_to_tensors",
    "optimizer_from_tensors",
    "random_state",
    "set_random_state",
]

#: Format tag written into every dislab safetensors file.
FORMAT = "dislab-1"


def save_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor],
                 meta: dict[str, Any]) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` to one safetensors file, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {"format": FORMAT, "dislab": json.dumps(meta)}
    with atomic_path(path, fsync=True) as tmp:
        save_file(clean, str(tmp), metadata=header)


def load_tensors(path: str | os.PathLike[str], what: str = "checkpoint"
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_tensors`: ``(tensors, meta)``.

    A missing, truncated, corrupt or foreign file raises a DislabError saying so (the file is
    parsed by safetensors, which never executes code).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise DislabError(f"The {what} file {str(path)!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise DislabError(
            f"The {what} file {str(path)!r} is corrupt or not a safetensors file ({e}). "
            "dislab only reads its own safetensors files (never pickles); delete the file "
            "and re-train, or pass the right file."
        ) from None
    if header.get("format") != FORMAT or "dislab" not in header:
        raise DislabError(
            f"The {what} file {str(path)!r} is a safetensors file but not one written by "
            f"dislab (missing the {FORMAT!r} header). Pass a file written by `dislab train`."
        )
    try:
        meta = json.loads(header["dislab"])
    except json.JSONDecodeError as e:
        raise DislabError(f"The {what} file {str(path)!r} has a corrupt header ({e}).") from None
    return tensors, meta


# -- model weights -----------------------------------------------------------------------
def save_weights(path: str | os.PathLike[str], model: torch.nn.Module,
                 meta: dict[str, Any]) -> None:
    """The model's ``state_dict`` (tensors) with ``meta`` (how to rebuild it) in the header."""
    state = model.state_dict()
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    extra = {k: v for k, v in state.items() if not isinstance(v, torch.Tensor)}
    save_tensors(path, tensors, {**meta, "extra_state": extra})


def load_weights(path: str | os.PathLike[str], model: torch.nn.Module,
                 what: str = "weights") -> dict[str, Any]:
    """Load weights saved by :func:`save_weights` into ``model`` (strict); returns the meta."""
    tensors, meta = load_tensors(path, what)
    state = {k[len("model/"):] if k.startswith("model/") else k: v for k, v in tensors.items()}
    state.update(meta.get("extra_state") or {})
    load_state(model, state, str(path))
    return meta


def load_state(model: torch.nn.Module, state: dict[str, Any], source: str) -> None:
    """``model.load_state_dict(state)`` with a clear message for missing/unexpected/wrong keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(
        k for k in set(own) & set(state)
        if isinstance(own[k], torch.Tensor) and tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append("wrong shapes for " + ", ".join(
                f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
                for k in wrong[:5]))
        raise DislabError(
            f"The weights in {source!r} do not fit this model ({'; '.join(parts)}). The file "
            "belongs to a different model / architecture / latent size; check config.json."
        )
    model.load_state_dict(state)


# -- optimisers --------------------------------------------------------------------------
def optimizer_to_tensors(name: str, opt: torch.optim.Optimizer
                         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into tensors (per-parameter state) and JSON (groups)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{name}/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = json.loads(json.dumps(sd["param_groups"], default=_json_default))
    return tensors, {"param_groups": groups, "scalars": scalars}


def _json_default(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, (set, tuple)):
        return list(v)
    raise TypeError(f"not JSON serialisable: {type(v)}")


def optimizer_from_tensors(name: str, opt: torch.optim.Optimizer,
                           tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore ``opt`` from :func:`optimizer_to_tensors` output (same parameter layout)."""
    prefix = f"optim/{name}/"
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, sub = key[len(prefix):].split("/", 1)
            state.setdefault(int(idx), {})[sub] = value
    for idx, sc in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(sc)
    current = opt.state_dict()["param_groups"]
    groups = meta["param_groups"]
    if len(groups) != len(current) or any(
        len(g["params"]) != len(c["params"]) for g, c in zip(groups, current)
    ):
        raise DislabError(
            f"The checkpoint's optimiser {name!r} does not match this model's parameters "
            "(different model or architecture); resume needs the same config."
        )
    for g, c in zip(groups, current):
        for k, v in c.items():
            if k not in g:
                g[k] = v
        if isinstance(c.get("betas"), tuple):
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
    # Give per-parameter state the parameter's memory layout (e.g. channels-last): fused and
    # foreach kernels walk parameter and state memory in step.
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for key, value in list(st.items()):
                if isinstance(value, torch.Tensor) and value.shape == p.shape \
                        and value.stride() != p.stride():
                    st[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


# -- global random state ---------------------------------------------------------------------
def random_state(device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The process's global generators as ``(tensors, meta)`` for a checkpoint: torch's CPU
    generator (``rng/torch``), the CUDA generator of ``device`` when it is a CUDA device
    (``rng/cuda``), numpy's legacy global generator (``rng/numpy_keys`` plus
    ``meta["numpy_global"]``) and Python's ``random`` (``meta["python_random"]``)."""
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and device.type == "cuda":
        tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
    np_state = np.random.get_state()
    tensors["rng/numpy_keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    py_state = random.getstate()
    meta = {"numpy_global": [np_state[0], int(np_state[2]), int(np_state[3]),
                             float(np_state[4])],
            "python_random": [py_state[0], list(py_state[1]), py_state[2]]}
    return tensors, meta


def set_random_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                     device: torch.device) -> None:
    """Restore what :func:`random_state` saved (the CUDA state only on a CUDA ``device``).
    A missing entry raises KeyError."""
    torch.set_rng_state(tensors["rng/torch"])
    if "rng/cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng/cuda"], device)
    ng = meta["numpy_global"]
    np.random.set_state((ng[0], tensors["rng/numpy_keys"].numpy().astype(np.uint32),
                         ng[1], ng[2], ng[3]))
    pr = meta["python_random"]
    random.setstate((pr[0], tuple(pr[1]), pr[2]))
