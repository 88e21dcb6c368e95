"""Methods: one file each, one interface (:class:`dislab.models.base.Method`)."""

from __future__ import annotations

import importlib

from dislab.models.base import HParam, Method, available, create, get_class, register

__all__ = ["HParam", "Method", "available", "create", "get_class", "register"]

_MODULES = ["beta_vae", "annealed_vae", "factor_vae", "dip_vae", "beta_tcvae", "aae",
            "slow_vae", "pcl", "ada_gvae"]
for _m in _MODULES:
    try:
        importlib.import_module(f"dislab.models.{_m}")
    except ModuleNotFoundError as _e:  # a module not written yet; anything else is a bug
        if _e.name != f"dislab.models.{_m}":
            raise
