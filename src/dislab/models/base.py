"""The method interface: an objective on top of an encoder and a decoder.

A method is a ``torch.nn.Module`` with

* ``__init__(observation_shape, latent_dim=10, arch="conv", reconstruction="bernoulli",
  dataset_size=None, **hparams)``: :meth:`Method.__init__` stores these shared options and
  the resolved hyper-parameters (``self.hp``); a subclass calls it first, then builds its
  networks. Everything builds methods through :func:`create` (``dislab.models.create``).
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

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from dislab.errors import DislabError
from dislab.models.losses import RECONSTRUCTIONS

__all__ = ["HParam", "Method", "SHARED_OPTIONS", "register", "get", "names", "create",
           "available", "get_class"]


_SCIENTIFIC = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def _numeric_text(value: Any) -> bool:
    """Whether ``value`` is a string holding a finite number (e.g. ``"4"``)."""
    try:
        return isinstance(value, str) and math.isfinite(float(value))
    except ValueError:
        return False


@dataclass(frozen=True)
class HParam:
    """A method hyper-parameter: default value, help text, where the default comes from, and
    its type and valid range.

    ``kind`` is ``float``, ``int``, ``bool`` or ``str`` (``None``: the type of ``default``).
    Numbers must be finite and lie within ``low``/``high`` (``None``: unbounded; strict
    bounds with ``low_open``/``high_open``); strings must be one of ``choices`` when given.
    :meth:`check` applies these rules (the trainer, the CLI and study specs all call it
    through :meth:`Method.resolve_hparams`).
    """

    default: Any
    help: str
    source: str = ""
    kind: type | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def type(self) -> type:
        """The value type: ``kind``, else the type of ``default``."""
        return self.kind if self.kind is not None else type(self.default)

    def valid_range(self) -> str:
        """The valid values in words, e.g. ``"a finite number >= 0"``."""
        t = self.type
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if t is bool:
            return "true or false"
        if t is str:
            return "a string"
        what = "an integer" if t is int else "a finite number"
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"{what} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {self.high:g}"
        return what

    def check(self, name: str, value: Any, owner: str = "") -> Any:
        """``value`` converted to this parameter's type (an int for a float parameter becomes a
        float), or a DislabError naming ``name``, the value and the valid range."""
        t = self.type

        def bad(note: str = "") -> DislabError:
            where = f" of {owner}" if owner else ""
            return DislabError(
                f"Hyper-parameter {name}={value!r}{where} is invalid: it must be "
                f"{self.valid_range()} (default {self.default!r}){note}."
            )

        if t is bool:
            if not isinstance(value, bool):
                raise bad()
            return value
        if t is str:
            if not isinstance(value, str) or (self.choices is not None
                                              and value not in self.choices):
                raise bad()
            return value
        if t not in (int, float):
            return value
        number = value
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            number = float(value)  # YAML 1.1 reads 1e5 as a string
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise bad("; write the number without quotes" if _numeric_text(value) else "")
        if not math.isfinite(number):
            raise bad()
        if t is int:
            if isinstance(number, float):
                if not number.is_integer():
                    raise bad()
                number = int(number)
        else:
            number = float(number)
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            raise bad()
        if self.high is not None and (number > self.high
                                      or (self.high_open and number == self.high)):
            raise bad()
        return number


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
    #: whether K runs of this method can train as one vectorised model
    #: (:mod:`dislab.train.packed`): ``True``, or a string saying why not. A class that
    #: overrides ``training_step`` must set it itself: packed training replaces the step by
    #: one backward of :meth:`loss` and one update of every optimiser.
    packable: ClassVar[bool | str] = True
    #: hyper-parameters that may differ between the members of a pack: inside the vectorised
    #: step they are per-model 0-d tensors, so the loss may only compute with them (no
    #: ``float()``, no ``if``); all others must be equal across the pack
    packed_hparams: ClassVar[tuple[str, ...]] = ()

    #: Keyword options a method takes besides its ``hparams`` (see :data:`SHARED_OPTIONS`). A
    #: method without a choice of network or reconstruction leaves ``"arch"`` or
    #: ``"reconstruction"`` out; :func:`create` then refuses a non-default value.
    shared_options: ClassVar[tuple[str, ...]] = (
        "latent_dim", "arch", "reconstruction", "dataset_size",
    )

    def __init__(
        self,
        observation_shape: tuple[int, ...],
        latent_dim: int = 10,
        arch: str = "conv",
        reconstruction: str = "bernoulli",
        dataset_size: int | None = None,
        **hparams: Any,
    ) -> None:
        """Store the shared options and the resolved hyper-parameters (``self.hp``).

        ``observation_shape`` is channels first; ``arch`` names the encoder/decoder pair
        (:func:`dislab.nets.build`), ``reconstruction`` the likelihood
        (:data:`dislab.models.losses.RECONSTRUCTIONS`), ``dataset_size`` the number of
        observations N (``len(data)``, passed by the trainer; β-TCVAE's estimators need it).
        Unknown or invalid ``hparams`` raise a DislabError (:meth:`resolve_hparams`).
        Subclasses call this first, then build their networks.
        """
        super().__init__()
        self.hp: dict[str, Any] = self.resolve_hparams(hparams)
        if reconstruction not in RECONSTRUCTIONS:
            raise DislabError(
                f"Unknown reconstruction {reconstruction!r}; choose one of "
                f"{', '.join(RECONSTRUCTIONS)}."
            )
        self.observation_shape = tuple(int(s) for s in observation_shape)
        self.latent_dim = int(latent_dim)
        self.arch = arch
        self.reconstruction = reconstruction
        self.dataset_size = None if dataset_size is None else int(dataset_size)

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
        """One Adam on all parameters; defaults are the study's (``shared.gin``)."""
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

    @classmethod
    def pack_problem(cls, hparams: dict[str, Any]) -> str | None:
        """Why a run of this method with (resolved) ``hparams`` cannot be packed, or ``None``
        (see :attr:`packable`; methods with settings that cannot be packed override this)."""
        owner = next(k for k in cls.__mro__ if "training_step" in vars(k))
        if owner is not Method and "packable" not in vars(owner):
            return (f"{cls.name} overrides training_step ({owner.__qualname__}) without "
                    "declaring `packable`")
        if cls.packable is True:
            return None
        return str(cls.packable) if cls.packable else f"{cls.name} is not vectorisable"

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


    @classmethod
    def resolve_hparams(cls, given: dict[str, Any]) -> dict[str, Any]:
        """``cls.hparams`` defaults overridden by ``given``; an unknown key or a value of the
        wrong type or out of range (:meth:`HParam.check`) raises a DislabError naming it and
        the valid ones. Ints given for float parameters become floats."""
        unknown = sorted(k for k in given if k not in cls.hparams)
        if unknown:
            valid = sorted(cls.hparams) + list(cls.shared_options)
            raise DislabError(
                f"Unknown hyper-parameter(s) {', '.join(unknown)} for model {cls.name!r}. "
                f"Valid options: {', '.join(valid)} (see `dislab models`)."
            )
        out: dict[str, Any] = {}
        for key, hp in cls.hparams.items():
            out[key] = hp.check(key, given[key], cls.name) if key in given else hp.default
        return out


_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Method]:
    """The method class registered under ``name`` (clear error listing the known names)."""
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise DislabError(
            f"Unknown model {name!r}. Known models: {', '.join(sorted(_REGISTRY))} "
            "(see `dislab models`)."
        )
    return _REGISTRY[key]


#: Former name of :func:`get`.
get_class = get


def names() -> list[str]:
    """Registered method names, sorted."""
    return sorted(_REGISTRY)


def available() -> dict[str, type[Method]]:
    """All registered methods, by name."""
    return dict(sorted(_REGISTRY.items()))


#: The options every method may be given besides its hyper-parameters, with their defaults
#: (those of :meth:`Method.__init__`). ``latent_dim`` is :func:`create`'s own argument.
SHARED_OPTIONS: dict[str, Any] = {"arch": "conv", "reconstruction": "bernoulli",
                                  "dataset_size": None}


def create(name: str, observation_shape: tuple[int, ...], latent_dim: int = 10,
           **options: Any) -> Method:
    """Build method ``name`` for observations of ``observation_shape`` (channels first):
    the one factory the trainer, :func:`dislab.train.load_run` and user code share.

    ``options`` are the method's hyper-parameters plus the shared options
    (:data:`SHARED_OPTIONS`: ``arch``, ``reconstruction``, ``dataset_size``). A shared option
    the method does not take (absent from its ``shared_options``) is dropped when it has its
    default value (``dataset_size`` always) and otherwise raises a DislabError naming it;
    unknown hyper-parameters raise one too (:meth:`Method.resolve_hparams`).
    """
    cls = get(name)
    kwargs = dict(options)
    for option, default in SHARED_OPTIONS.items():
        if option not in kwargs or option in cls.shared_options:
            continue
        value = kwargs.pop(option)
        if value != default and option != "dataset_size":
            raise DislabError(f"Model {cls.name!r} has no {option!r} option; remove "
                              f"{option}={value!r} from the config.")
    factory: Callable[..., Method] = cls
    return factory(observation_shape=tuple(observation_shape), latent_dim=latent_dim, **kwargs)
