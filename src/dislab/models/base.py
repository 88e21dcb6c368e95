"""The method interface: an objective on top of an encoder and a decoder.

A method is a ``torch.nn.Module`` with

* ``encode(x) -> (mean, logvar)``: ``x`` is ``(B, *observation_shape)`` float in [0, 1];
  ``mean`` and ``logvar`` are ``(B, latent_dim)``. Deterministic encoders return a
  ``logvar`` of zeros-like tensors filled with a very small variance (documented per method).
* ``decode(z) -> logits``: ``(B, latent_dim) -> (B, *observation_shape)``; logits for both
  reconstruction losses (``"gaussian"`` uses ``sigmoid(logits)`` as its mean, as
  disentanglement_lib's ``l2_loss``), so images are ``decode_images(z) = sigmoid(decode(z))``.
  Methods without a decoder set
  ``has_decoder = False`` and raise :class:`~dislab.errors.DislabError` from ``decode``.
* ``loss(batch, step) -> (loss, logs)``: the scalar to minimise and a dict of detached
  scalar tensors to log (every term of the objective).
* ``configure_optimizers(...)`` and ``training_step(...)``: the default is one Adam on all
  parameters and one backward per step; methods with a second network (FactorVAE's
  discriminator, AAE) override them.

``batch_kind`` is ``"single"`` (a batch is ``(B, *obs)``) or ``"pairs"`` (a batch is
``(B, 2, *obs)``: consecutive observations, see :mod:`dislab.data.pairs`). For pair methods,
``batch_counts`` says what a config's ``batch_size`` counts: ``"pairs"`` (Ada-GVAE's
reference, disentanglement_lib ``methods/weak/train_weak_lib.py``, batches 64 pairs) or
``"images"`` (Slow-VAE's reference, bethgelab/slow_disentanglement ``scripts/dataset.py``
``return_data``, halves the batch size: 64 images = 32 pairs). ``pair_defaults`` are the
method's pair-sampler options (:func:`dislab.data.pairs.pair_batches`) when a config gives
no ``pair_options``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from dislab.errors import DislabError

__all__ = ["HParam", "Method", "register", "create", "available", "get_class"]


@dataclass(frozen=True)
class HParam:
    """A method hyper-parameter: default value, help text and where the default comes from."""

    default: Any
    help: str
    source: str = ""


class Method(nn.Module):
    """Base class of all methods (see the module docstring for the contract)."""

    name: ClassVar[str] = "method"
    #: Hyper-parameters specific to this method (name -> HParam).
    hparams: ClassVar[dict[str, HParam]] = {}
    has_decoder: ClassVar[bool] = True
    batch_kind: ClassVar[str] = "single"
    #: what ``batch_size`` counts for pair methods: "pairs" or "images" (2 per pair)
    batch_counts: ClassVar[str] = "pairs"
    #: pair-sampler options used when the config gives no ``pair_options``
    pair_defaults: ClassVar[dict[str, Any]] = {}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    # -- optimisation (override for adversarial / multi-network methods) ----------------
    def configure_optimizers(
        self, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> dict[str, torch.optim.Optimizer]:
        """One Adam on all parameters; defaults are the study's (REFERENCE.md §3.4)."""
        return {"model": torch.optim.Adam(self.parameters(), lr=lr, betas=betas, eps=eps)}

    def training_step(
        self, batch: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        """One update; returns the logs (including ``loss``)."""
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        loss, logs = self.loss(batch, step)
        loss.backward()
        opt.step()
        logs = dict(logs)
        logs["loss"] = loss.detach()
        return logs

    def pair_frames(self, batch: torch.Tensor, min_pairs: int = 1) -> torch.Tensor:
        """Pairs ``(B, 2, *obs)`` -> frames ``(2B, *obs)``, interleaved ``x0, x1, x0, x1, ...``;
        a batch of another shape (or fewer than ``min_pairs`` pairs) gets a clear error."""
        obs = tuple(self.observation_shape)
        if batch.dim() != len(obs) + 2 or batch.shape[1] != 2 or batch.shape[0] < min_pairs:
            least = f"at least {min_pairs} " if min_pairs > 1 else ""
            raise DislabError(
                f"{self.name} trains on {least}pairs of shape (B, 2, "
                f"{', '.join(map(str, obs))}); got {tuple(batch.shape)}. Use "
                "dislab.data.pairs.pair_batches (the trainer does this for batch_kind='pairs')."
            )
        return batch.reshape(2 * batch.shape[0], *batch.shape[2:])

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean, ``(B, latent_dim)``: what metrics score by default."""
        return self.encode(x)[0]

    def decode_images(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for codes ``z``: ``sigmoid(decode(z))`` (decoders output logits for
        both reconstruction losses, as in disentanglement_lib)."""
        return torch.sigmoid(self.decode(z))

    #: Keyword options every method accepts besides its ``hparams`` (``dataset_size`` is passed
    #: by the trainer as ``len(data)``; methods that do not need it ignore it).
    shared_options: ClassVar[tuple[str, ...]] = (
        "latent_dim", "arch", "reconstruction", "dataset_size",
    )

    @classmethod
    def resolve_hparams(cls, given: dict[str, Any]) -> dict[str, Any]:
        """``cls.hparams`` defaults overridden by ``given``; an unknown key raises a DislabError
        naming the valid ones. Ints given for float defaults become floats."""
        unknown = sorted(k for k in given if k not in cls.hparams)
        if unknown:
            valid = sorted(cls.hparams) + list(cls.shared_options)
            raise DislabError(
                f"Unknown hyper-parameter(s) {', '.join(unknown)} for model {cls.name!r}. "
                f"Valid options: {', '.join(valid)} (see `dislab models`)."
            )
        out: dict[str, Any] = {}
        for key, hp in cls.hparams.items():
            value = given.get(key, hp.default)
            if isinstance(hp.default, float) and isinstance(value, int) \
                    and not isinstance(value, bool):
                value = float(value)
            out[key] = value
        return out


_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def get_class(name: str) -> type[Method]:
    """The method class registered under ``name`` (clear error listing the known names)."""
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise DislabError(
            f"Unknown model {name!r}. Known models: {', '.join(sorted(_REGISTRY))} "
            "(see `dislab models`)."
        )
    return _REGISTRY[key]


def available() -> dict[str, type[Method]]:
    """All registered methods, by name."""
    return dict(sorted(_REGISTRY.items()))


def create(name: str, observation_shape: tuple[int, ...], latent_dim: int = 10,
           **kwargs: Any) -> Method:
    """Build method ``name`` for observations of ``observation_shape`` (channels first).

    ``kwargs`` are the method's hyper-parameters plus the shared options (``arch``,
    ``reconstruction``); unknown keys raise a clear error.
    """
    cls = get_class(name)
    factory: Callable[..., Method] = cls
    return factory(observation_shape=tuple(observation_shape), latent_dim=latent_dim, **kwargs)
