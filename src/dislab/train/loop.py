"""The training loop: read top to bottom.

``fit(config)`` builds the data set and the method, then repeats ``method.training_step`` on
batches drawn i.i.d. with replacement from the factor grid (:mod:`dislab.train.batches`;
disentanglement_lib's input pipeline, ``data/ground_truth/util.py``,
``tf_data_set_from_ground_truth_data``), with Adam at the study's settings
(``config/unsupervised_study_v1/model_configs/shared.gin``). Around that it writes the run
folder (:mod:`dislab.train.run_folder`)::

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

Speed (:mod:`dislab.train.fast`, docs/training.md, benchmarks/train_throughput.py): image
models run in channels-last memory format, Adam uses its fused kernel where available, losses
are synced to Python only every ``log_every`` steps, and the next batch is prepared in a
background thread. A NaN/inf loss is detected at the next log or checkpoint step, reported
with the exact step, and the run stops with the last good checkpoint kept.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dislab import models, tiny
from dislab.errors import DislabError
from dislab.status import read_status
from dislab.threads import torch_threads
from dislab.train import checkpoint as ckpt
from dislab.train import fast
from dislab.train.batches import BatchSource, pair_batch_settings
from dislab.train.config import TrainConfig
from dislab.train.fast import (
    compiler_available,
    resolve_device,
    restore_determinism,
    set_deterministic,
)
from dislab.train.run_folder import CHECKPOINT, RunFolder, check_folder

__all__ = ["fit", "load_run", "Trainer", "NonFiniteLoss", "resolve_device"]

def _create_model(cfg: TrainConfig, observation_shape: tuple[int, ...],
                  dataset_size: int | None) -> models.Method:
    """The method of ``cfg`` for observations of ``observation_shape``
    (:func:`dislab.models.create`)."""
    return models.create(cfg.model, observation_shape, cfg.latent_dim, arch=cfg.arch,
                         reconstruction=cfg.reconstruction, dataset_size=dataset_size,
                         **cfg.hparams)


def resolved_config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` as training uses it: validated, ``DISLAB_TINY`` applied
    (:func:`dislab.tiny.train_config`), the method's hyper-parameters resolved to full values."""
    cfg = TrainConfig.from_dict(config if isinstance(config, dict) else config.to_dict())
    cfg = tiny.train_config(cfg)  # DISLAB_TINY: toy sizes for testing the docs' commands
    cfg.hparams = models.get(cfg.model).resolve_hparams(dict(cfg.hparams))
    return cfg


def scalar_logs(logs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A training step's logs as the window sums them: detached fp32 0-d tensors (the mean
    of a non-scalar log)."""
    out = {k: torch.as_tensor(v).detach().float() for k, v in logs.items()}
    return {k: v.mean() if v.dim() else v for k, v in out.items()}


def add_to_window(window: dict[str, torch.Tensor], logs: dict[str, torch.Tensor]) -> None:
    """Add ``logs`` to the running sums in ``window`` (a new key starts at its value)."""
    for k, v in logs.items():
        if k in window:
            window[k] += v
        else:
            window[k] = v.clone()


def _load_data(config: TrainConfig) -> Any:
    import dislab.data as dd

    return dd.load(config.data, path=config.data_path, **config.data_options)


class NonFiniteLoss(DislabError):
    """The loss became NaN or inf."""

    def __init__(self, step: int, value: float) -> None:
        self.step, self.value = step, value
        super().__init__(f"loss is {value} at step {step}")


# -- the trainer -------------------------------------------------------------------------
class Trainer:
    """Holds the method, its optimisers, the batch source and the loop state.

    ``Trainer(config, data=None)`` builds everything (``data`` overrides ``config.data`` with
    any :class:`~dislab.data.GroundTruthData`); :meth:`train_step` trains one step;
    :meth:`state` / :meth:`load_state` give and take the resumable state as
    ``(tensors, meta)``; :meth:`close` stops the batch thread and restores the process's
    determinism settings. ``config.threads`` sets torch's threads process-wide (:func:`fit`
    restores them when it returns).
    """

    def __init__(self, config: TrainConfig | dict[str, Any], data: Any = None) -> None:
        cfg = self.config = TrainConfig.from_dict(config)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        if cfg.tune_malloc:
            fast.tune_malloc()
        self.device = resolve_device(cfg.device)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        torch.manual_seed(cfg.seed)
        self.data = data if data is not None else _load_data(cfg)
        obs = tuple(self.data.observation_shape)
        self.model = _create_model(cfg, obs, len(self.data))
        if cfg.accelerate:
            fast.accelerate(self.model)
        self.model.to(self.device)
        self.model.train()
        self.channels_last = fast.use_channels_last(cfg.channels_last, obs, self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        opts = self.model.configure_optimizers(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                               eps=cfg.eps)
        self.optimizers = {k: fast.fused_adam(o, self.device) for k, o in opts.items()}
        self.batch_kind = getattr(self.model, "batch_kind", "single")
        per_batch, pair_options = pair_batch_settings(type(self.model), cfg)
        self.images_per_batch = per_batch * (2 if self.batch_kind == "pairs" else 1)
        self.batches = BatchSource(self.data, per_batch, cfg.seed, self.batch_kind,
                                   pair_options, prefetch=cfg.prefetch,
                                   channels_last=self.channels_last and self.batch_kind != "pairs")
        want = cfg.compile is True or (cfg.compile == "auto" and self.device.type == "cuda"
                                       and compiler_available())  # where it pays off
        self._eager_loss = fast.compile_loss(self.model, cfg.compile is True) if want else None
        self.compiled = self._eager_loss is not None
        self.step = 0
        # logging window: running sums of every log since the last history line
        self.window: dict[str, torch.Tensor] = {}
        self.window_count = 0
        self.window_losses: list[torch.Tensor] = []
        self.train_seconds = 0.0
        # last, so that a failed construction leaves the process's settings alone
        self._determinism = set_deterministic(True) if cfg.deterministic else None

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
                if not (self.compiled and self.config.compile == "auto" and self.step == 0):
                    raise
                fast.uncompile_loss(self.model, self._eager_loss, e)  # type: ignore[arg-type]
                self.compiled = False
                torch.set_rng_state(rng_before)
                logs = self.model.training_step(x, self.step, self.optimizers)
        except BaseException:
            # The update did not happen: a checkpoint written now must redo this step.
            self.batches.rewind()
            torch.set_rng_state(rng_before)
            raise
        self.step += 1
        with torch.no_grad():
            add_to_window(self.window, scalar_logs(logs))
            self.window_losses.append(torch.as_tensor(logs["loss"]).detach().reshape(()))
            self.window_count += 1
        return logs

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLoss` naming the first step of the window whose loss was
        NaN/inf."""
        if not self.window_losses:
            return
        losses = torch.stack(self.window_losses).float().cpu()
        bad = ~torch.isfinite(losses)
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0, 0])
            step = self.step - len(self.window_losses) + first + 1
            raise NonFiniteLoss(step, float(losses[first]))
        self.window_losses = []

    def flush_window(self) -> dict[str, float]:
        """Means of the window's logs as floats (one host sync) and reset the window."""
        self.check_finite()
        n = max(self.window_count, 1)
        keys = list(self.window)
        vals = torch.stack([self.window[k] for k in keys]).div(n).cpu().tolist() if keys else []
        self.window = {}
        self.window_count = 0
        return {k: float(v) for k, v in zip(keys, vals)}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The resumable state (:mod:`dislab.train.checkpoint` lists the tensor names)."""
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
            tensors_of_opt, meta["optimizers"][name] = ckpt.optimizer_to_tensors(name, opt)
            tensors.update(tensors_of_opt)
        rng_tensors, rng_meta = ckpt.random_state(self.device)
        tensors.update(rng_tensors)
        meta.update(rng_meta)
        tensors.update({f"extra/window/{k}": v for k, v in self.window.items()})
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                   source: str) -> None:
        """Continue from :meth:`state` (read from ``source``, named in errors); the config's
        ``lr`` replaces the saved one."""
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
            ckpt.set_random_state(tensors, meta, self.device)
            rng = meta["data_rng"]
            if isinstance(rng, dict) and rng.get("kind") == "device":
                raise DislabError(
                    f"The checkpoint {source!r} is a packed run's whose batches are drawn on "
                    "the device (dislab.train.packed, PackOptions(data='device'), CUDA's "
                    "default); fit draws them on the host and cannot continue it exactly. "
                    "Resume it in a pack (dislab.train.packed.fit_pack([config], "
                    "resume=True), or `dislab study run --pack`), or delete its checkpoint "
                    "folder to train it again.")
            self.batches.set_state(rng)
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
        for g in getattr(self.optimizers.get("model"), "param_groups", []):
            g["lr"] = self.config.lr

    def close(self) -> None:
        self.batches.close()
        if self._determinism is not None:  # leave the process as it was
            restore_determinism(self._determinism)
            self._determinism = None


# -- fit -----------------------------------------------------------------------------------
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
    # set up: the config, the run folder, the trainer (resumed from its checkpoint)
    cfg = resolved_config(config)
    if data is not None and cfg.data == "dsprites" and getattr(data, "name", None):
        cfg.data = str(data.name)
    run_dir = Path(cfg.out)
    resuming = check_folder(run_dir, cfg, resume)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(cfg.threads):
        try:
            trainer = Trainer(cfg, data=data)
        except BaseException:
            if created:  # leave nothing behind: the corrected command then runs as is
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        try:
            if resuming:
                path = run_dir / CHECKPOINT
                trainer.load_state(*ckpt.load_tensors(path, "checkpoint"), str(path))
            run = RunFolder(cfg, trainer.step, trainer.train_seconds, resuming)
        except BaseException:
            trainer.close()
            raise
        try:
            _train(trainer, run, progress)
        finally:
            trainer.close()
            run.close()
    return run_dir


def _train(trainer: Trainer, run: RunFolder, progress: bool) -> None:
    """The loop: {batch and update, log, checkpoint, images, heartbeat} to ``cfg.steps``,
    then the final weights; NaN, Ctrl-C and errors end in a status saying so."""
    from tqdm.auto import tqdm

    cfg = trainer.config
    bar = tqdm(total=cfg.steps, initial=trainer.step, disable=not progress, unit="step",
               dynamic_ncols=True, desc=f"{cfg.model}")
    try:
        t_window = time.perf_counter()  # start of the logging window, less side work
        while trainer.step < cfg.steps:
            trainer.train_step()
            bar.update(1)
            step, end = trainer.step, trainer.step == cfg.steps
            if step % cfg.log_every == 0 or end:
                elapsed = time.perf_counter() - t_window
                speed = trainer.window_count * trainer.images_per_batch / max(elapsed, 1e-9)
                logs = trainer.flush_window()
                trainer.train_seconds += elapsed
                run.log(step, logs, speed)
                bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4g}",
                                img_s=f"{speed:.0f}", refresh=False)
                t_window = time.perf_counter()
            t_side = time.perf_counter()
            if step % cfg.checkpoint_every == 0 or end:
                trainer.check_finite()
                run.save_checkpoint(*trainer.state(), step)
            if cfg.image_every and step % cfg.image_every == 0 and not end:
                trainer.check_finite()
                run.write_images(trainer.model, trainer.data, step)
            t_window += time.perf_counter() - t_side  # not training time
            run.heartbeat(step)
        trainer.check_finite()
        if run.last_good != trainer.step:
            run.save_checkpoint(*trainer.state(), trainer.step)
        run.finish(trainer.model, trainer.data, trainer.step, trainer.train_seconds)
    except NonFiniteLoss as e:
        msg = run.loss_not_finite(e.step, e.value, trainer.train_seconds)
        raise DislabError(msg) from None
    except KeyboardInterrupt:
        try:
            trainer.check_finite()
            run.save_checkpoint(*trainer.state(), trainer.step)
        except DislabError:
            pass
        run.interrupted(trainer.step, trainer.train_seconds)
        raise
    except BaseException as e:
        run.failed(trainer.step, f"{type(e).__name__}: {e}", trainer.train_seconds)
        raise
    finally:
        bar.close()


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
        status = read_status(run_dir)
        raise DislabError(
            f"Run {str(run_dir)!r} has no final weights (model.safetensors); its status is "
            f"{status.get('status', 'unknown')!r}. Finish it with `dislab train --config "
            f"{cfg_path} --resume`."
        )
    tensors, meta = ckpt.load_tensors(weights, "weights")
    if "observation_shape" not in meta:
        raise DislabError(f"{str(weights)!r} lacks the model description in its header; "
                          "it was not written by `dislab train`.")
    model = _create_model(cfg, tuple(meta["observation_shape"]), meta.get("dataset_size"))
    state: dict[str, Any] = dict(tensors)
    state.update(meta.get("extra_state") or {})
    ckpt.load_state(model, state, str(weights))
    model.to(resolve_device(device))
    model.eval()
    return model, cfg
