"""The run configuration: one JSON-serialisable dataclass fully determines a training run.

Defaults are the large-scale study's (Locatello et al. 2019; disentanglement_lib
``config/unsupervised_study_v1/model_configs/shared.gin``): batch 64,
300 000 steps, 10 latents, the conv encoder / deconv decoder, Bernoulli reconstruction, Adam with
lr 1e-4, β1 0.9, β2 0.999, ε 1e-8.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dislab.errors import DislabError

__all__ = ["TrainConfig", "RESUMABLE_CHANGES"]

#: Fields that may differ between a run's saved config and the config used to resume it
#: (they change how long / how verbosely the run goes, not what it computes; ``lr`` is
#: allowed so that a run stopped by a NaN loss can continue with a smaller step).
RESUMABLE_CHANGES = (
    "steps", "out", "device", "checkpoint_every", "log_every", "image_every", "compile",
    "tensorboard", "threads", "lr", "prefetch", "accelerate",
    "tune_malloc", "deterministic", "loggers", "tracking",
)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run folder).

    Attributes:
        model: registered method name (``dislab models``), e.g. ``"beta_vae"``.
        data: registered data set name (``dislab data list``); default ``"dsprites"``.
        data_path: the official data file; ``None`` renders the data set procedurally.
        data_options: extra keyword options of the data set loader.
        latent_dim: number of latent dimensions (study: 10).
        arch: ``"conv"`` (study) or ``"mlp"`` (β-TCVAE paper's 1200-1200).
        reconstruction: ``"bernoulli"`` (study) or ``"gaussian"``.
        hparams: the method's hyper-parameters (``dislab models`` lists them and their
            defaults); missing ones take the method's defaults.
        steps: number of optimiser updates (study: 300 000).
        batch_size: images per update (study: 64); for pair methods pairs per update, except
            Slow-VAE, whose reference counts images (64 = 32 pairs; ``batch_counts``).
        lr, beta1, beta2, eps: Adam settings of the model optimiser (study values).
        seed: seeds torch, numpy and the data sampler (study: 0..49).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        out: the run folder.
        checkpoint_every: steps between resumable checkpoints (and one at the end).
        log_every: steps between history / TensorBoard scalars (study: 100).
        image_every: steps between reconstruction / traversal images (0: only at the end).
        compile: ``torch.compile`` the objective: ``True``, ``False`` or ``"auto"`` (on when a
            working compiler is found; see docs/training.md for the measured effect).
        channels_last: channels-last memory format for image models (``"auto"``: on for 4-D
            image batches; identical results up to float rounding, faster on CPU and GPU).
        accelerate: swap layers for faster equivalents with the same parameters
            (:mod:`dislab.train.fast`; same function up to float rounding).
        tune_malloc: keep freed memory in the process heap (glibc ``mallopt``) so that
            activations are not page-faulted in again every step (Linux; process-wide).
        tensorboard: write TensorBoard event files to ``tb/``.
        threads: ``torch.set_num_threads`` value (``None``: leave PyTorch's default).
        prefetch: prepare the next batch in a background thread while the current one trains.
        deterministic: use only deterministic kernels (``torch.use_deterministic_algorithms``,
            cuDNN's deterministic convolutions, a fixed cuBLAS workspace). On CUDA the default
            kernels (e.g. cuDNN's weight gradients) add in a varying order, so two runs of one
            config, or a resumed and an uninterrupted run, differ in the last bits; with this
            on they are identical (deterministic kernels may be slower). CPU kernels are
            deterministic anyway.
        pair_options: options of :func:`dislab.data.pairs.pair_batches` (``rate``, ``changes``,
            ``fixed_factors``, ``edge``) for methods whose ``batch_kind`` is ``"pairs"``.
        loggers: experiment trackers, any of ``"tensorboard"``, ``"mlflow"``, ``"wandb"``
            (:mod:`dislab.train.tracking`); TensorBoard also needs ``tensorboard`` on.
        tracking: tracker options (``experiment``, ``run_name``, ``mlflow_uri``,
            ``wandb_project``, ``wandb_entity``, ``wandb_mode``; :mod:`dislab.train.tracking`).
    """

    model: str
    data: str = "dsprites"
    data_path: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    latent_dim: int = 10
    arch: str = "conv"
    reconstruction: str = "bernoulli"
    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 300_000
    batch_size: int = 64
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    seed: int = 0
    device: str = "auto"
    out: str = "runs/run"
    checkpoint_every: int = 5000
    log_every: int = 100
    image_every: int = 10_000
    compile: bool | str = "auto"
    channels_last: bool | str = "auto"
    accelerate: bool = True
    tune_malloc: bool = True
    tensorboard: bool = True
    threads: int | None = None
    prefetch: bool = True
    deterministic: bool = False
    pair_options: dict[str, Any] = field(default_factory=dict)
    loggers: list[str] = field(default_factory=lambda: ["tensorboard"])
    tracking: dict[str, Any] = field(default_factory=dict)

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the config as JSON (atomically: temp file + rename)."""
        from dislab.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any] | TrainConfig) -> TrainConfig:
        """Build and validate a config from a dict; unknown keys raise a DislabError."""
        if isinstance(d, TrainConfig):
            return d.validate()
        if not isinstance(d, dict):
            raise DislabError(f"A training config must be a dict or TrainConfig, got {type(d)}.")
        names = cls.field_names()
        unknown = sorted(k for k in d if k not in names)
        if unknown:
            import difflib

            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, names, n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise DislabError(
                f"Unknown training config field(s): {', '.join(hints)}. Valid fields: "
                f"{', '.join(names)}. Method hyper-parameters go in 'hparams' "
                '(e.g. {"hparams": {"beta": 6}}).'
            )
        if "model" not in d:
            raise DislabError("The training config needs a 'model' (see `dislab models`).")
        return cls(**d).validate()

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a config written by :meth:`save` (or by hand)."""
        path = Path(path)
        if not path.is_file():
            raise DislabError(f"Config file {str(path)!r} does not exist.")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DislabError(f"Config file {str(path)!r} is not valid JSON ({e}).") from None
        return cls.from_dict(d)

    # -- validation ------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check every field (types, ranges, known names); returns self or raises DislabError.

        The names come from the registries: methods (:func:`dislab.models.names`), data sets
        (:func:`dislab.data.names`), architectures (:data:`dislab.nets.ARCHITECTURES` and
        :func:`dislab.nets.register_arch`) and reconstruction losses
        (:data:`dislab.models.losses.RECONSTRUCTIONS`)."""
        import dislab.data as dd
        from dislab import models, nets
        from dislab.models.losses import RECONSTRUCTIONS
        from dislab.nets.custom import registered_archs

        def choices(names: Any) -> str:
            return ", ".join(repr(n) for n in names)

        def bad(name: str, why: str) -> DislabError:
            return DislabError(f"Training config: {name}={getattr(self, name)!r} {why}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(self.model, str) or not self.model:
            raise bad("model", f"must be a method name: {choices(models.names())} "
                      "(see `dislab models`).")
        if not isinstance(self.data, str) or not self.data:
            raise bad("data", f"must be a data set name: {choices(dd.names())} "
                      "(see `dislab data list`).")
        if self.data_path is not None and not isinstance(self.data_path, str):
            raise bad("data_path", "must be a file path (string) or null.")
        for name in ("data_options", "hparams", "pair_options"):
            if not isinstance(getattr(self, name), dict):
                raise bad(name, "must be a JSON object (dict).")
        for name, low in (("latent_dim", 1), ("steps", 1), ("batch_size", 1),
                          ("checkpoint_every", 1), ("log_every", 1), ("image_every", 0),
                          ("seed", 0)):
            v = getattr(self, name)
            if not is_int(v) or v < low:
                raise bad(name, f"must be an integer >= {low}.")
        if not is_num(self.lr) or self.lr <= 0:
            raise bad("lr", "must be a positive finite number (study: 1e-4).")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not is_num(v) or not 0.0 <= v < 1.0:
                raise bad(name, "must be in [0, 1) (study: beta1=0.9, beta2=0.999).")
        if not is_num(self.eps) or self.eps <= 0:
            raise bad("eps", "must be a positive number (study: 1e-8).")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda", "mps")
            or (self.device.startswith("cuda:") and self.device[5:].isdigit())
        ):
            raise bad("device", "must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
        if not isinstance(self.out, str) or not self.out:
            raise bad("out", "must be a folder path.")
        for name in ("compile", "channels_last"):
            if getattr(self, name) not in (True, False, "auto"):
                raise bad(name, "must be true, false or \"auto\".")
        for name in ("tensorboard", "prefetch", "accelerate", "tune_malloc", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false.")
        if self.threads is not None and (not is_int(self.threads) or self.threads < 1):
            raise bad("threads", "must be a positive integer or null.")
        from dislab.train.tracking import check_loggers

        check_loggers(self.loggers, self.tracking)
        if self.reconstruction not in RECONSTRUCTIONS:
            raise bad("reconstruction", f"must be one of {choices(RECONSTRUCTIONS)}.")
        if not isinstance(self.arch, str):
            archs = choices([*nets.ARCHITECTURES, *registered_archs()])
            raise bad("arch", f"must be one of {archs} or 'module:Encoder,module:Decoder'.")
        # The method name and its hyper-parameters (clear errors come from the registry).
        cls = models.get_class(self.model)
        self.model = cls.name
        cls.resolve_hparams(dict(self.hparams))
        return self

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of fields whose values differ (after a JSON round trip)."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if a[k] != b.get(k)]
