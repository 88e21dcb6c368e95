"""The training loop: read top to bottom.

``fit(config)`` builds the data set and the method, then repeats ``method.training_step`` on
batches drawn i.i.d. with replacement from the factor grid (disentanglement_lib's input
pipeline, ``data/ground_truth/util.py``, ``tf_data_set_from_ground_truth_data``), with Adam
at the study's settings (``config/unsupervised_study_v1/model_configs/shared.gin``). Around
that it writes the run folder::

    run/
      config.json        the TrainConfig (hyper-parameters resolved to full values)
      status.json        {"status": running|done|failed|interrupted, "step", "error",
                          "train_seconds", "final_logs", "pid", "host", "heartbeat"}
                         (a "running" run whose pid is gone was killed: dislab.status)
      history.jsonl      one JSON object per logged step: "step", the mean of every log
                         over the window since the previous line, "images_per_s"
      checkpoint/checkpoint.safetensors   the latest resumable state (see checkpoint.py)
      model.safetensors  the final weights (header: how to rebuild the model)
      images/            reconstructions and latent traversals (PNG)
      tb/                TensorBoard scalars and images

Speed (see docs/training.md and benchmarks/train_throughput.py): image models run in
channels-last memory format, Adam uses its fused kernel where available, losses are synced
to Python only every ``log_every`` steps, and the next batch is prepared in a background thread.
A NaN/inf loss is detected at the next log or checkpoint step, reported with the exact step,
and the run stops with the last good checkpoint kept.
"""

from __future__ import annotations

import inspect
import json
import os
import queue
import random
import shutil
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dislab.errors import DislabError
from dislab.io import atomic_write_text, write_json
from dislab.status import HEARTBEAT_SECONDS, pid_alive, process_info, read_status
from dislab.train import checkpoint as ckpt
from dislab.train import tracking
from dislab.train.config import RESUMABLE_CHANGES, TrainConfig

__all__ = ["fit", "load_run", "Trainer", "resolve_device", "build_model"]

CHECKPOINT = Path("checkpoint") / "checkpoint.safetensors"


# -- small helpers ---------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; a requested but missing CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DislabError(f"device={name!r} but CUDA is not available here; use --device cpu "
                          "or --device auto.")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise DislabError("device='mps' but MPS is not available here; use --device auto.")
    return torch.device(name)


def _write_json(path: Path, obj: Any) -> None:
    write_json(path, obj, indent=2, default=str)


def _accepts(cls: type, name: str) -> bool:
    params = inspect.signature(cls.__init__).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_model(config: TrainConfig, observation_shape: tuple[int, ...],
                dataset_size: int | None) -> torch.nn.Module:
    """The method of ``config`` for observations of ``observation_shape``.

    ``dataset_size`` (``len(data)``) is passed when the method accepts it (β-TCVAE's
    estimators need the true N); ``arch`` and ``reconstruction`` likewise.
    """
    from dislab import models

    cls = models.get_class(config.model)
    kwargs: dict[str, Any] = dict(config.hparams)
    for name, value, default in (("arch", config.arch, "conv"),
                                 ("reconstruction", config.reconstruction, "bernoulli"),
                                 ("dataset_size", dataset_size, None)):
        if _accepts(cls, name):
            kwargs[name] = value
        elif value != default and name != "dataset_size":
            raise DislabError(f"Model {cls.name!r} has no {name!r} option; remove "
                              f"{name}={value!r} from the config.")
    return cls(observation_shape=tuple(observation_shape), latent_dim=config.latent_dim,
               **kwargs)


def _load_data(config: TrainConfig) -> Any:
    import dislab.data as dd

    return dd.load(config.data, path=config.data_path, **config.data_options)


# -- batches -----------------------------------------------------------------------------
def pair_batch_settings(cls: Any, cfg: TrainConfig) -> tuple[int, dict[str, Any]]:
    """Batches per update (pairs for pair methods) and the pair-sampler options of a run:
    the method's ``batch_counts`` ("images": ``batch_size`` counts images, two per pair, as
    Slow-VAE's reference), and the config's ``pair_options`` or, if it gives none, the
    method's ``pair_defaults``."""
    if getattr(cls, "batch_kind", "single") != "pairs":
        return cfg.batch_size, dict(cfg.pair_options)
    options = dict(cfg.pair_options or getattr(cls, "pair_defaults", {}))
    if getattr(cls, "batch_counts", "pairs") == "images":
        if cfg.batch_size % 2:
            raise DislabError(f"{cls.name}: batch_size counts images, two per pair, so it must "
                              f"be even; got {cfg.batch_size} (the reference's is 64 = 32 "
                              "pairs).")
        return cfg.batch_size // 2, options
    return cfg.batch_size, options


class BatchSource:
    """Batches drawn with one numpy Generator whose state is saved in checkpoints.

    ``state()`` is the generator state *before the next batch the loop will consume*, so a
    resumed run draws exactly the batches the uninterrupted run would have drawn, with or
    without the prefetch thread. Batches are float32 ``(B, *obs)`` (``(B, 2, *obs)`` for
    ``kind="pairs"``) in [0, 1], on the CPU.
    """

    def __init__(self, data: Any, batch_size: int, seed: int, kind: str = "single",
                 pair_options: dict[str, Any] | None = None, prefetch: bool = True,
                 channels_last: bool = False) -> None:
        self.data, self.batch_size, self.kind = data, batch_size, kind
        self.pair_options = dict(pair_options or {})
        self.prefetch = prefetch
        self.channels_last = channels_last
        self.rng = np.random.default_rng(seed)
        self._state = self.rng.bit_generator.state
        self._prev_state = self._state
        self._gen: Any = None
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # the raw generator (runs in the prefetch thread when prefetching)
    def _draw(self) -> Any:
        if self.kind == "pairs":
            from dislab.data.pairs import pair_batches

            if self._gen is None:
                self._gen = pair_batches(self.data, self.batch_size, seed=self.rng,
                                         **self.pair_options)
            x = next(self._gen)
        else:
            idx = self.data.sample_index(self.batch_size, self.rng)
            if self.data.is_image:
                x = torch.from_numpy(self.data.images_uint8_from_index(idx))
                x = x.to(torch.float32).mul_(1.0 / 255.0)
            else:
                x = torch.from_numpy(self.data.images_from_index(idx))
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.rng.bit_generator.state

    def _worker(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._draw()
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)  # type: ignore[union-attr]
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # handed to the consumer
            if self._queue is not None:
                self._queue.put(e)

    def __next__(self) -> torch.Tensor:
        if not self.prefetch:
            self._prev_state = self._state
            x, self._state = self._draw()
            return x
        if self._thread is None:
            self._stop.clear()
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._worker, daemon=True,
                                            name="dislab-batches")
            self._thread.start()
        item = self._queue.get()  # type: ignore[union-attr]
        if isinstance(item, BaseException):
            self.close()
            raise item
        self._prev_state = self._state
        x, self._state = item
        return x

    def __iter__(self) -> BatchSource:
        return self

    def state(self) -> dict[str, Any]:
        return self._state

    def rewind(self) -> None:
        """Forget the last batch (its update was interrupted): ``state()`` is before it."""
        self.close()
        self._state = self._prev_state
        self.rng.bit_generator.state = self._state

    def set_state(self, state: dict[str, Any]) -> None:
        self.close()
        self.rng.bit_generator.state = state
        self._state = state
        self._gen = None

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            while self._thread.is_alive():
                try:  # unblock a worker waiting on a full queue
                    self._queue.get_nowait()  # type: ignore[union-attr]
                except queue.Empty:
                    pass
                self._thread.join(timeout=0.05)
            self._thread = None
            self._queue = None
            # The worker drew ahead; rewind the generator to the consumed position.
            self.rng.bit_generator.state = self._state
            self._gen = None


# -- speed options -----------------------------------------------------------------------
def compiler_available() -> bool:
    """Whether ``torch.compile`` can work here (dynamo supported, a C++ compiler for CPU)."""
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return False
    except Exception:
        return False
    if sys.platform.startswith("win"):
        return False
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


DeterminismState = tuple[bool, bool, bool, bool]


def set_deterministic(on: bool = True) -> DeterminismState:
    """Switch PyTorch's deterministic kernels on (or off), process-wide; returns the previous
    state for :func:`restore_determinism`.

    An op with no deterministic kernel warns instead of failing (``warn_only``). cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG`` before its first use; it is set here unless already set.
    """
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    return previous


def restore_determinism(state: DeterminismState) -> None:
    """Put back the state :func:`set_deterministic` returned."""
    torch.use_deterministic_algorithms(state[0], warn_only=state[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = state[2], state[3]


def _fused_adam(opt: torch.optim.Optimizer, device: torch.device) -> torch.optim.Optimizer:
    """The same Adam (same groups and hyper-parameters) with PyTorch's fused kernel."""
    if type(opt) is not torch.optim.Adam or opt.state:
        return opt
    if device.type not in ("cpu", "cuda"):
        return opt
    defaults = dict(opt.defaults)
    if defaults.get("amsgrad") or defaults.get("differentiable") or defaults.get("capturable"):
        return opt
    defaults.update(fused=True, foreach=None)
    try:
        groups = [dict(g) for g in opt.param_groups]
        for g in groups:
            g.pop("fused", None)
            g.pop("foreach", None)
        return torch.optim.Adam(groups, **defaults)
    except (RuntimeError, TypeError, ValueError):
        return opt


# -- the trainer -------------------------------------------------------------------------
class Trainer:
    """Holds the method, its optimisers, the batch source and the loop state.

    ``Trainer(config, data=None)`` builds everything (``data`` overrides ``config.data`` with
    any :class:`~dislab.data.GroundTruthData`); :meth:`run_steps` trains; :meth:`state` /
    :meth:`load_state` give and take the resumable state as ``(tensors, meta)``.
    """

    def __init__(self, config: TrainConfig | dict[str, Any], data: Any = None) -> None:
        cfg = TrainConfig.from_dict(config)
        self.config = cfg
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        if cfg.tune_malloc:
            from dislab.train.fast import tune_malloc

            tune_malloc()
        self.device = resolve_device(cfg.device)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        torch.manual_seed(cfg.seed)
        self.data = data if data is not None else _load_data(cfg)
        self.model = build_model(cfg, tuple(self.data.observation_shape), len(self.data))
        if cfg.accelerate:
            from dislab.train.fast import accelerate

            accelerate(self.model)
        self.model.to(self.device)
        self.model.train()
        obs = tuple(self.data.observation_shape)
        self.channels_last = bool(cfg.channels_last is True or (
            cfg.channels_last == "auto" and len(obs) == 3 and self.device.type != "mps"))
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        opts = self.model.configure_optimizers(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                               eps=cfg.eps)
        self.optimizers = {k: _fused_adam(o, self.device) for k, o in opts.items()}
        self.batch_kind = getattr(self.model, "batch_kind", "single")
        per_batch, pair_options = pair_batch_settings(type(self.model), cfg)
        self.images_per_batch = per_batch * (2 if self.batch_kind == "pairs" else 1)
        self.batches = BatchSource(self.data, per_batch, cfg.seed, self.batch_kind,
                                   pair_options, prefetch=cfg.prefetch,
                                   channels_last=self.channels_last and self.batch_kind != "pairs")
        self.compiled = False
        want = cfg.compile is True or (cfg.compile == "auto" and self._compile_helps())
        if want:
            self._compile()
        self.step = 0
        # logging window: running sums of every log since the last history line
        self.window: dict[str, torch.Tensor] = {}
        self.window_count = 0
        self.window_losses: list[torch.Tensor] = []
        self.window_seconds = 0.0
        self.train_seconds = 0.0
        # last, so that a failed construction leaves the process's settings alone
        self._determinism: DeterminismState | None = (
            set_deterministic(True) if cfg.deterministic else None)

    # compile ---------------------------------------------------------------------------
    def _compile_helps(self) -> bool:
        """``compile="auto"``: on where it was measured to pay off (docs/training.md)."""
        return self.device.type == "cuda" and compiler_available()

    def _compile(self) -> None:
        if not compiler_available():
            if self.config.compile is True:
                raise DislabError("compile=true but torch.compile cannot run here (no C++ "
                                  "compiler or unsupported platform); set compile to false "
                                  "or \"auto\".")
            return
        import torch._inductor.config as inductor_config

        # Draw random numbers with the eager generator: same samples, exact resume.
        inductor_config.fallback_random = True
        self._eager_loss = self.model.loss
        self.model.loss = torch.compile(self._eager_loss)  # type: ignore[method-assign]
        self.compiled = True

    def _uncompile(self, err: BaseException) -> None:
        self.model.loss = self._eager_loss  # type: ignore[method-assign]
        self.compiled = False
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); training "
                      "continues without compilation (set compile=false to skip trying).",
                      stacklevel=2)

    # one step ----------------------------------------------------------------------------
    def next_batch(self) -> torch.Tensor:
        x = next(self.batches)
        if self.device.type != "cpu":
            x = x.pin_memory().to(self.device, non_blocking=True)
        return x

    def train_step(self) -> dict[str, torch.Tensor]:
        """One update on the next batch; logs accumulate in the window (no host sync)."""
        rng_before = torch.get_rng_state()
        x = self.next_batch()
        try:
            try:
                logs = self.model.training_step(x, self.step, self.optimizers)
            except Exception as e:
                if self.compiled and self.config.compile == "auto" and self.step == 0:
                    self._uncompile(e)
                    torch.set_rng_state(rng_before)
                    logs = self.model.training_step(x, self.step, self.optimizers)
                else:
                    raise
        except BaseException:
            # The update did not happen: a checkpoint written now must redo this step.
            self.batches.rewind()
            torch.set_rng_state(rng_before)
            raise
        self.step += 1
        with torch.no_grad():
            for k, v in logs.items():
                v = torch.as_tensor(v).detach().float()
                if v.dim():
                    v = v.mean()
                if k in self.window:
                    self.window[k] += v
                else:
                    self.window[k] = v.clone()
            self.window_losses.append(torch.as_tensor(logs["loss"]).detach().reshape(()))
            self.window_count += 1
        return logs

    def check_finite(self) -> None:
        """Raise a DislabError naming the first step of the window whose loss was NaN/inf."""
        if not self.window_losses:
            return
        losses = torch.stack(self.window_losses).float().cpu()
        bad = ~torch.isfinite(losses)
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0, 0])
            step = self.step - len(self.window_losses) + first + 1
            value = float(losses[first])
            raise NonFiniteLoss(step, value)
        self.window_losses = []

    def flush_window(self) -> dict[str, float]:
        """Means of the window's logs as floats (one host sync) and reset the window."""
        self.check_finite()
        n = max(self.window_count, 1)
        keys = list(self.window)
        vals = torch.stack([self.window[k] for k in keys]).div(n).cpu().tolist() if keys else []
        out = {k: float(v) for k, v in zip(keys, vals)}
        self.window = {}
        self.window_count = 0
        return out

    # resumable state -----------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"step": self.step, "config": self.config.to_dict(),
                                "optimizers": {}, "train_seconds": self.train_seconds,
                                "window_count": self.window_count,
                                "data_rng": self.batches.state()}
        for k, v in self.model.state_dict().items():
            if isinstance(v, torch.Tensor):
                tensors[f"model/{k}"] = v
            else:
                meta.setdefault("model_extra_state", {})[k] = v
        for name, opt in self.optimizers.items():
            t, m = ckpt.optimizer_to_tensors(name, opt)
            tensors.update(t)
            meta["optimizers"][name] = m
        tensors["rng/torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and self.device.type == "cuda":
            tensors["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        np_state = np.random.get_state()
        tensors["rng/numpy_keys"] = torch.from_numpy(np_state[1].astype(np.int64))
        meta["numpy_global"] = [np_state[0], int(np_state[2]), int(np_state[3]),
                                float(np_state[4])]
        py_state = random.getstate()
        meta["python_random"] = [py_state[0], list(py_state[1]), py_state[2]]
        for k, v in self.window.items():
            tensors[f"extra/window/{k}"] = v
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                   source: str) -> None:
        try:
            model_state: dict[str, Any] = {k[6:]: v for k, v in tensors.items()
                                           if k.startswith("model/")}
            model_state.update(meta.get("model_extra_state") or {})
            ckpt.load_state(self.model, model_state, source)
            for name, opt in self.optimizers.items():
                if name not in meta["optimizers"]:
                    raise DislabError(f"The checkpoint {source!r} has no state for optimiser "
                                      f"{name!r}; it belongs to a different model.")
                ckpt.optimizer_from_tensors(name, opt, tensors, meta["optimizers"][name])
            torch.set_rng_state(tensors["rng/torch"])
            if "rng/cuda" in tensors and self.device.type == "cuda":
                torch.cuda.set_rng_state(tensors["rng/cuda"], self.device)
            ng = meta["numpy_global"]
            np.random.set_state((ng[0], tensors["rng/numpy_keys"].numpy().astype(np.uint32),
                                 ng[1], ng[2], ng[3]))
            pr = meta["python_random"]
            random.setstate((pr[0], tuple(pr[1]), pr[2]))
            self.batches.set_state(meta["data_rng"])
            self.step = int(meta["step"])
            self.train_seconds = float(meta.get("train_seconds", 0.0))
            self.window = {k[len("extra/window/"):]: v.to(self.device)
                           for k, v in tensors.items() if k.startswith("extra/window/")}
            self.window_count = int(meta.get("window_count", 0))
            self.window_losses = []
        except (KeyError, TypeError, ValueError, IndexError) as e:
            if isinstance(e, DislabError):
                raise
            raise DislabError(f"The checkpoint {source!r} is incomplete or from an "
                              f"incompatible dislab version (missing/invalid {e}); delete the "
                              "checkpoint folder to start the run again.") from None
        lr = self.config.lr
        opt = self.optimizers.get("model")
        if opt is not None:
            for g in opt.param_groups:
                g["lr"] = lr

    def close(self) -> None:
        self.batches.close()
        if self._determinism is not None:  # leave the process as it was
            restore_determinism(self._determinism)
            self._determinism = None


class NonFiniteLoss(DislabError):
    """The loss became NaN or inf."""

    def __init__(self, step: int, value: float) -> None:
        self.step, self.value = step, value
        super().__init__(f"loss is {value} at step {step}")


# -- images ------------------------------------------------------------------------------
def _write_images(trainer: Trainer, run_dir: Path, writer: Any, final: bool) -> None:
    model = trainer.model
    data = trainer.data
    if not getattr(model, "has_decoder", True) or not getattr(data, "is_image", False):
        return
    from dislab.viz import images as vi

    rng = np.random.default_rng([trainer.config.seed, 7])  # fixed, separate from training
    x = data.images_from_index(data.sample_index(16, rng))
    try:
        rec = vi.reconstruction_grid(model, x, ncol=8)
        trav = vi.traversal_grid(model, x[0], n_steps=10)
    except NotImplementedError:
        return
    step = trainer.step
    folder = run_dir / "images"
    folder.mkdir(exist_ok=True)
    scale = 2 if x.shape[-1] <= 32 else 1
    if final:
        vi.save_png(rec, folder / "reconstructions.png", scale)
        vi.save_png(trav, folder / "traversals.png", scale)
    else:
        vi.save_png(rec, folder / f"reconstructions_{step:07d}.png", scale)
        vi.save_png(trav, folder / f"traversals_{step:07d}.png", scale)
    if writer is not None:
        writer.add_image("reconstructions", rec, step, dataformats="HWC")
        writer.add_image("traversals", trav, step, dataformats="HWC")


def _tensorboard(run_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # tensorboard not installed or broken
        warnings.warn(f"TensorBoard logging is off ({e}); install tensorboard to enable it.",
                      stacklevel=3)
        return None
    return SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)


# -- fit -----------------------------------------------------------------------------------
def _model_meta(trainer: Trainer) -> dict[str, Any]:
    cfg = trainer.config
    return {"model": cfg.model, "observation_shape": list(trainer.data.observation_shape),
            "latent_dim": cfg.latent_dim, "arch": cfg.arch,
            "reconstruction": cfg.reconstruction, "hparams": cfg.hparams,
            "dataset_size": len(trainer.data), "data": cfg.data, "step": trainer.step}


def _truncate_history(path: Path, step: int) -> None:
    """Keep only history lines up to ``step`` (lines written after the checkpoint go)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            break
    atomic_write_text(path, "".join(x + "\n" for x in keep))


def fit(config: TrainConfig | dict[str, Any], progress: bool = True, resume: bool = False,
        data: Any = None) -> Path:
    """Train ``config`` and return the run folder (layout in this module's docstring).

    ``resume=True`` continues from ``<out>/checkpoint`` exactly where it stopped (same batches,
    same random numbers, same losses as an uninterrupted run on the same machine); only the
    fields in :data:`dislab.train.config.RESUMABLE_CHANGES` may differ from the saved config.
    ``data`` optionally replaces ``config.data`` with a GroundTruthData object.
    A NaN/inf loss raises a DislabError naming the step; the last good checkpoint is kept and
    ``status.json`` says ``"failed"``.
    """
    from dislab import models

    cfg = TrainConfig.from_dict(config if isinstance(config, dict) else config.to_dict())
    from dislab import tiny

    cfg = tiny.train_config(cfg)  # DISLAB_TINY: toy sizes for testing the docs' commands
    cfg.hparams = models.get(cfg.model).resolve_hparams(dict(cfg.hparams))
    if data is not None and cfg.data == "dsprites" and getattr(data, "name", None):
        cfg.data = str(data.name)
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT
    saved_cfg_path = run_dir / "config.json"
    resuming = False
    if saved_cfg_path.exists():
        status = _read_status(run_dir)
        pid = status.get("pid")
        if (status.get("status") == "running" and status.get("host") == socket.gethostname()
                and isinstance(pid, int) and pid != os.getpid() and pid_alive(pid)):
            raise DislabError(
                f"The run in {str(run_dir)!r} is being trained by another process (pid "
                f"{status.get('pid')} on {status.get('host')}, step {status.get('step', '?')}); "
                "wait for it or stop it, then resume with --resume."
            )
        kept = ckpt_path.exists() or (run_dir / "model.safetensors").exists()
        if kept and not resume:
            raise DislabError(
                f"The folder {str(run_dir)!r} already holds a run (status: "
                f"{status.get('status', 'unknown')}, step {status.get('step', '?')}). Pass "
                "--resume (resume=True) to continue it, or choose another --out."
            )
        saved = TrainConfig.from_json(saved_cfg_path)
        diff = [k for k in saved.differences(cfg) if k not in RESUMABLE_CHANGES]
        if diff and kept:
            was = ", ".join(f"{k}={saved.to_dict()[k]!r}" for k in diff)
            raise DislabError(
                f"Cannot resume {str(run_dir)!r}: the config differs from the saved one in "
                f"{', '.join(diff)} (saved: {was}). Use the saved config (--config "
                f"{saved_cfg_path}) or start a new run with another --out."
            )
        # Without a checkpoint or weights (a run that stopped before its first checkpoint)
        # there is nothing to lose: the run starts over with the config given.
        resuming = ckpt_path.exists()
    elif resume:
        raise DislabError(
            f"Nothing to resume in {str(run_dir.resolve())!r}: it holds no run (no "
            "config.json). Check --out (or the config's 'out'), or leave out --resume to "
            "start a new run there."
        )
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)

    prev_threads = torch.get_num_threads()
    try:
        trainer = Trainer(cfg, data=data)
    except BaseException:
        if created:  # leave nothing behind: the corrected command then runs as is
            shutil.rmtree(run_dir, ignore_errors=True)
        torch.set_num_threads(prev_threads)
        raise
    if resuming:
        tensors, meta = ckpt.load_tensors(ckpt_path, "checkpoint")
        trainer.load_state(tensors, meta, str(ckpt_path))
        _truncate_history(run_dir / "history.jsonl", trainer.step)
    elif (run_dir / "history.jsonl").exists():
        (run_dir / "history.jsonl").unlink()
    try:  # MLflow / W&B runs (dislab.train.tracking); unreachable: fail before config.json
        tracked = tracking.open_writer(cfg, run_dir)
    except BaseException:
        trainer.close()
        raise
    cfg.save(saved_cfg_path)
    writer = _tensorboard(run_dir, trainer.step + 1 if resuming else None) \
        if cfg.tensorboard and "tensorboard" in cfg.loggers else None
    writer = tracking.with_tensorboard(tracked, writer)
    status: dict[str, Any] = {"status": "running", "step": trainer.step, "error": None,
                              "train_seconds": trainer.train_seconds, "final_logs": None,
                              **process_info()}
    _write_json(run_dir / "status.json", status)
    last_beat = time.monotonic()

    def heartbeat() -> None:
        """Refresh ``status.json`` (step, heartbeat) so that a killed run can be told apart."""
        nonlocal last_beat
        last_beat = time.monotonic()
        status.update(step=trainer.step, heartbeat=time.time())
        _write_json(run_dir / "status.json", status)
    last_good = trainer.step if resuming else None
    last_logs: dict[str, float] = {}

    def save_checkpoint() -> None:
        nonlocal last_good
        tensors, meta = trainer.state()
        ckpt.save_tensors(ckpt_path, tensors, meta)
        last_good = trainer.step

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, initial=trainer.step, disable=not progress, unit="step",
               dynamic_ncols=True, desc=f"{cfg.model}")
    history = open(run_dir / "history.jsonl", "a")  # noqa: SIM115
    try:
        t_window = time.perf_counter()
        while trainer.step < cfg.steps:
            trainer.train_step()
            bar.update(1)
            step = trainer.step
            if step % cfg.log_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - t_window
                n = trainer.window_count
                logs = trainer.flush_window()
                trainer.train_seconds += elapsed
                speed = n * trainer.images_per_batch / max(elapsed, 1e-9)
                last_logs = logs
                history.write(json.dumps({"step": step, **logs,
                                          "images_per_s": round(speed, 2)}) + "\n")
                history.flush()
                if writer is not None:
                    for k, v in logs.items():
                        writer.add_scalar(f"train/{k}", v, step)
                    writer.add_scalar("speed/images_per_s", speed, step)
                bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4g}",
                                img_s=f"{speed:.0f}", refresh=False)
                t_window = time.perf_counter()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                t0 = time.perf_counter()
                trainer.check_finite()
                save_checkpoint()
                t_window += time.perf_counter() - t0
            if cfg.image_every and step % cfg.image_every == 0 and step != cfg.steps:
                t0 = time.perf_counter()
                trainer.check_finite()
                _write_images(trainer, run_dir, writer, final=False)
                t_window += time.perf_counter() - t0
            if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                heartbeat()
        trainer.check_finite()
        if last_good != trainer.step:
            save_checkpoint()
        ckpt.save_weights(run_dir / "model.safetensors", trainer.model, _model_meta(trainer))
        _write_images(trainer, run_dir, writer, final=True)
        status.update(status="done", step=trainer.step, train_seconds=trainer.train_seconds,
                      final_logs=last_logs or _read_status(run_dir).get("final_logs"),
                      heartbeat=time.time())
        _write_json(run_dir / "status.json", status)
        if writer is not None:
            writer.log_final(status["final_logs"])
    except NonFiniteLoss as e:
        kept = (f"the last good checkpoint (step {last_good}) is kept in {ckpt_path}"
                if last_good is not None else "no checkpoint had been written yet")
        msg = (f"Training stopped: the loss became {e.value} at step {e.step} "
               f"({cfg.model}, lr={cfg.lr:g}); {kept}. Try a smaller learning rate (e.g. "
               f"--lr {cfg.lr / 10:g}) or milder hyper-parameters, check the data for NaN, "
               "then continue with --resume (a changed --lr is allowed) or start again.")
        status.update(status="failed", step=e.step, error=msg,
                      train_seconds=trainer.train_seconds, final_logs=last_logs or None)
        _write_json(run_dir / "status.json", status)
        raise DislabError(msg) from None
    except KeyboardInterrupt:
        msg = f"interrupted at step {trainer.step}; continue with --resume"
        try:
            trainer.check_finite()
            save_checkpoint()
        except DislabError:
            pass
        status.update(status="interrupted", step=trainer.step, error=msg,
                      train_seconds=trainer.train_seconds, heartbeat=time.time())
        _write_json(run_dir / "status.json", status)
        raise
    except BaseException as e:
        status.update(status="failed", step=trainer.step, error=f"{type(e).__name__}: {e}",
                      train_seconds=trainer.train_seconds)
        _write_json(run_dir / "status.json", status)
        raise
    finally:
        bar.close()
        history.close()
        trainer.close()
        if writer is not None:
            writer.close()
        if cfg.threads is not None:
            torch.set_num_threads(prev_threads)
    return run_dir


def _read_status(run_dir: Path) -> dict[str, Any]:
    """``status.json``, with a ``running`` whose process is gone reported as ``interrupted``
    (:func:`dislab.status.read_status`)."""
    return read_status(run_dir)


# -- loading ---------------------------------------------------------------------------------
def load_run(run_dir: str | os.PathLike[str], device: str = "cpu"
             ) -> tuple[torch.nn.Module, TrainConfig]:
    """``(model in eval mode, config)`` of a finished run, from ``config.json`` and
    ``model.safetensors`` (no data set needed: the weights' header holds the observation
    shape and data set size). A run without final weights gets a clear error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DislabError(f"Run folder {str(run_dir)!r} does not exist.")
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise DislabError(f"{str(run_dir)!r} is not a dislab run folder (no config.json).")
    cfg = TrainConfig.from_json(cfg_path)
    weights = run_dir / "model.safetensors"
    if not weights.exists():
        status = _read_status(run_dir)
        raise DislabError(
            f"Run {str(run_dir)!r} has no final weights (model.safetensors); its status is "
            f"{status.get('status', 'unknown')!r}. Finish it with `dislab train --config "
            f"{cfg_path} --resume`."
        )
    tensors, meta = ckpt.load_tensors(weights, "weights")
    if "observation_shape" not in meta:
        raise DislabError(f"{str(weights)!r} lacks the model description in its header; "
                          "it was not written by `dislab train`.")
    model = build_model(cfg, tuple(meta["observation_shape"]), meta.get("dataset_size"))
    state: dict[str, Any] = dict(tensors)
    state.update(meta.get("extra_state") or {})
    ckpt.load_state(model, state, str(weights))
    dev = resolve_device(device)
    model.to(dev)
    model.eval()
    return model, cfg

