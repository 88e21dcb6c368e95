"""Your own encoder and decoder: ``arch="mypkg.nets:MyEncoder,mypkg.nets:MyDecoder"``.

Every method builds its networks with :func:`dislab.nets.build` from the config's ``arch``
string, so a custom architecture is a string in ``config.json`` and ``load_run`` rebuilds it.
Two ways to name one:

* **import spec** ``"module:Encoder,module:Decoder"``: two ``torch.nn.Module`` classes found by
  importing ``module`` (it must be importable: installed, or on ``PYTHONPATH``; dislab never
  adds a folder to ``sys.path``). Either half may be a built-in name (``"conv"``, ``"mlp"``):
  ``"mypkg.nets:MyEncoder,conv"`` keeps the study's decoder.
* **registered name**: ``dislab.nets.register_arch("mine", MyEncoder, MyDecoder)`` then
  ``arch="mine"``. The registration must run again in every process that loads the run (for
  ``dislab`` commands, prefer an import spec).

**Importing runs code.** A config that names a module makes dislab import it, which executes
that module. dislab therefore imports a module named in an ``arch`` spec only when you said so:
the module is already imported in the process (you imported it), or its top-level package is
trusted with :func:`trust_modules` or the environment variable ``DISLAB_TRUSTED_MODULES``
(comma-separated, e.g. ``DISLAB_TRUSTED_MODULES=mypkg`` for the command line). Only
``nn.Module`` subclasses are called; nothing is ever unpickled (weights are safetensors, the
config is JSON).

**Constructor contract.** ``Encoder(observation_shape, latent_dim)`` and
``Decoder(observation_shape, latent_dim)``, with ``observation_shape`` the data set's
``(C, H, W)`` (or ``(D,)``) and ``latent_dim`` an int.

* encoder ``forward(x)``: ``x`` ``(B, C, H, W)`` float32 in [0, 1] -> ``(mean, logvar)``, each
  ``(B, latent_dim)``, or one tensor ``(B, 2 * latent_dim)`` (first half mean, second half
  log-variance);
* decoder ``forward(z)``: ``z`` ``(B, latent_dim)`` -> logits ``(B, C, H, W)`` (images are
  ``sigmoid(logits)``, for the Bernoulli and the Gaussian reconstruction alike).

Both are checked on a probe batch of two (in eval mode, so batch-norm statistics are
untouched) when the model is built; a wrong shape gets one clear error.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dislab.errors import DislabError

__all__ = ["register_arch", "registered_archs", "trust_modules", "resolve_arch",
           "build_custom", "SplitEncoder", "TRUST_ENV"]

#: Environment variable listing trusted top-level packages (comma-separated).
TRUST_ENV = "DISLAB_TRUSTED_MODULES"

_REGISTERED: dict[str, tuple[Callable[..., nn.Module], Callable[..., nn.Module]]] = {}
_TRUSTED: set[str] = set()


def register_arch(name: str, encoder: Callable[..., nn.Module],
                  decoder: Callable[..., nn.Module]) -> None:
    """Register ``arch=name``: ``encoder`` / ``decoder`` are called as
    ``(observation_shape, latent_dim)`` and return modules following the contract above."""
    if not isinstance(name, str) or not name or ":" in name or "," in name:
        raise DislabError(f"architecture name must be a plain word, got {name!r}.")
    if name in ("conv", "mlp"):
        raise DislabError(f"{name!r} is a built-in architecture; choose another name.")
    if not callable(encoder) or not callable(decoder):
        raise DislabError("register_arch needs an encoder and a decoder class (or factory).")
    _REGISTERED[name] = (encoder, decoder)


def registered_archs() -> list[str]:
    """Names registered with :func:`register_arch`."""
    return sorted(_REGISTERED)


def trust_modules(*packages: str) -> None:
    """Allow ``arch`` specs to import modules of these top-level packages (this process)."""
    for p in packages:
        _TRUSTED.add(str(p).split(".")[0])


def _trusted(module: str) -> bool:
    if module in sys.modules:
        return True
    top = module.split(".")[0]
    env = {p.strip().split(".")[0] for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()}
    return top in _TRUSTED or top in env


def _import_class(spec: str, arch: str) -> type[nn.Module]:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise DislabError(f"arch {arch!r}: {spec!r} is not 'module:Class'.")
    if not _trusted(module):
        raise DislabError(
            f"arch {arch!r} names code in module {module!r}; importing it runs that code, so "
            f"dislab imports it only when you say so: import {module} first, call "
            f"dislab.nets.trust_modules({module.split('.')[0]!r}), or set "
            f"{TRUST_ENV}={module.split('.')[0]} (for the command line)."
        )
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise DislabError(f"arch {arch!r}: cannot import module {module!r} ({e}); install it "
                          "or put its folder on PYTHONPATH.") from None
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise DislabError(f"arch {arch!r}: module {module!r} has no {attr!r}.")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise DislabError(f"arch {arch!r}: {spec!r} must be a torch.nn.Module subclass, got "
                          f"{type(obj).__name__}.")
    return obj


def resolve_arch(arch: str) -> tuple[Callable[..., nn.Module], Callable[..., nn.Module]]:
    """``(encoder factory, decoder factory)`` of a registered name or an import spec."""
    from dislab.nets import ARCHITECTURES

    if arch in _REGISTERED:
        return _REGISTERED[arch]
    parts = [p.strip() for p in arch.split(",")]
    if len(parts) != 2 or not all(parts):
        known = ", ".join([*ARCHITECTURES, *registered_archs()])
        raise DislabError(
            f"Unknown architecture {arch!r}; choose one of {known}, or name your own as "
            "'module:Encoder,module:Decoder' (see docs/training.md, 'Your own networks')."
        )
    out = []
    for i, part in enumerate(parts):
        if part in ARCHITECTURES:
            out.append(ARCHITECTURES[part][i])
        elif part in _REGISTERED:
            out.append(_REGISTERED[part][i])
        else:
            out.append(_import_class(part, arch))
    return out[0], out[1]


class SplitEncoder(nn.Module):
    """Wraps an encoder returning ``(B, 2 * latent_dim)``: ``(mean, logvar)`` = its halves."""

    def __init__(self, inner: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.inner = inner
        self.latent_dim = int(latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.inner(x)
        return h[:, :self.latent_dim], h[:, self.latent_dim:]


def _probe(module: nn.Module, x: torch.Tensor) -> Any:
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module(x)
    finally:
        module.train(was)


def build_custom(arch: str, observation_shape: tuple[int, ...], latent_dim: int
                 ) -> tuple[nn.Module, nn.Module]:
    """Build and check the encoder and decoder of a custom ``arch`` (see the module docs)."""
    enc_f, dec_f = resolve_arch(arch)
    shape = tuple(int(s) for s in observation_shape)
    d = int(latent_dim)
    nets = []
    for what, factory in (("encoder", enc_f), ("decoder", dec_f)):
        try:
            net = factory(shape, d)
        except DislabError:
            raise
        except Exception as e:  # noqa: BLE001 - user code: name it and the contract
            raise DislabError(f"arch {arch!r}: building the {what} as {what.title()}"
                              f"(observation_shape={shape}, latent_dim={d}) failed: "
                              f"{type(e).__name__}: {e}") from e
        if not isinstance(net, nn.Module):
            raise DislabError(f"arch {arch!r}: the {what} must be a torch.nn.Module, got "
                              f"{type(net).__name__}.")
        nets.append(net)
    enc, dec = nets
    contract = ("encoder: (B, *observation_shape) -> (mean, logvar) each (B, latent_dim), or "
                "(B, 2*latent_dim); decoder: (B, latent_dim) -> logits (B, *observation_shape)")
    try:
        out = _probe(enc, torch.zeros(2, *shape))
    except Exception as e:  # noqa: BLE001
        raise DislabError(f"arch {arch!r}: the encoder fails on a batch of shape "
                          f"{(2, *shape)}: {type(e).__name__}: {e}. Contract: {contract}.") from e
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 2 * d):
        enc = SplitEncoder(enc, d)
    elif not (isinstance(out, (tuple, list)) and len(out) == 2
              and all(isinstance(o, torch.Tensor) and tuple(o.shape) == (2, d) for o in out)):
        got = (tuple(out.shape) if isinstance(out, torch.Tensor)
               else [tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
                     for o in out] if isinstance(out, (tuple, list)) else type(out).__name__)
        raise DislabError(f"arch {arch!r}: the encoder returned {got} for a batch of 2 with "
                          f"latent_dim={d}. Contract: {contract}.")
    try:
        rec = _probe(dec, torch.zeros(2, d))
    except Exception as e:  # noqa: BLE001
        raise DislabError(f"arch {arch!r}: the decoder fails on codes of shape (2, {d}): "
                          f"{type(e).__name__}: {e}. Contract: {contract}.") from e
    if not isinstance(rec, torch.Tensor) or tuple(rec.shape) != (2, *shape):
        got = tuple(rec.shape) if isinstance(rec, torch.Tensor) else type(rec).__name__
        raise DislabError(f"arch {arch!r}: the decoder returned {got}, expected logits "
                          f"{(2, *shape)}. Contract: {contract}.")
    return enc, dec
