"""STAND-IN: replaced at merge by branch i17-core.

Packed training: several runs of one architecture, data set and batch size trained together.
This stand-in has the interface of the real module (:func:`pack_key`, :func:`fit_pack`) and
trains the members one after another with :func:`dislab.train.fit`, so that the code built on
it (studies with ``--pack``, evaluation of many runs) can be written and tested before the
vectorised trainer lands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dislab.errors import DislabError
from dislab.train.config import TrainConfig

__all__ = ["pack_key", "fit_pack"]

#: Fields that must be equal for runs to share a pack (seeds, hyper-parameters, ``lr`` and
#: the output folder may differ).
_PACK_FIELDS = ("model", "data", "data_path", "data_options", "latent_dim", "arch",
                "reconstruction", "steps", "batch_size", "beta1", "beta2", "eps", "device",
                "pair_options", "channels_last", "deterministic")


def _config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    return TrainConfig.from_dict(dict(config))


def pack_key(config: TrainConfig | dict[str, Any]) -> tuple | None:
    """A hashable key: configs with equal keys may be trained as one pack; ``None`` when the
    config cannot be packed."""
    d = _config(config).to_dict()
    return tuple((k, json.dumps(d[k], sort_keys=True)) for k in _PACK_FIELDS)


def fit_pack(configs: Sequence[TrainConfig | dict[str, Any]], progress: bool = True,
             resume: bool = False) -> list[dict[str, Any]]:
    """Train ``configs`` (each into its own ``out``) and return each run's ``status.json``
    content, in order. A member that fails is recorded in its own folder; the others go on.
    ``resume``: members whose folder holds a run continue it."""
    from dislab.status import read_status
    from dislab.train.loop import fit

    cfgs = [_config(c) for c in configs]
    keys = [pack_key(c) for c in cfgs]
    if not cfgs:
        return []
    if any(k is None for k in keys) or len(set(keys)) > 1:
        raise DislabError("fit_pack: these configs cannot share a pack (different method, "
                          "architecture, data or batch settings); train them separately.")
    outs = [str(Path(c.out).resolve()) for c in cfgs]
    if len(set(outs)) != len(outs):
        raise DislabError("fit_pack: two configs of the pack write to the same 'out' folder.")
    statuses: list[dict[str, Any]] = []
    for cfg in cfgs:
        again = resume and (Path(cfg.out) / "config.json").exists()
        error = None
        try:
            fit(cfg, progress=progress, resume=again)
        except Exception as e:  # noqa: BLE001 - recorded in the member's status
            error = f"{type(e).__name__}: {e}"
        status = read_status(Path(cfg.out))
        if error is not None and status.get("status") != "failed":
            status = {**status, "status": "failed", "error": error}
        statuses.append(status)
    return statuses
