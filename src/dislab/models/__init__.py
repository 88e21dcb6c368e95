"""Methods: one file each, one interface (:class:`dislab.models.base.Method`).

Registry: ``register`` (class decorator), ``get(name)`` (the class), ``names()``,
``create(name, ...)``. Every method module is imported below, explicitly: a module that
fails to import raises here instead of dropping its method silently.
"""

from __future__ import annotations

from dislab.models.base import (
    SHARED_OPTIONS,
    HParam,
    Method,
    available,
    create,
    get,
    get_class,
    names,
    register,
)

__all__ = ["SHARED_OPTIONS", "HParam", "Method", "available", "create", "get", "get_class",
           "names", "register"]

# Each module registers its method with ``@register``.
from dislab.models import (  # noqa: E402, F401
    aae,
    ada_gvae,
    annealed_vae,
    beta_tcvae,
    beta_vae,
    dip_vae,
    factor_vae,
    pcl,
    slow_vae,
)
