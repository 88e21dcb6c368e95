"""The run folder a training writes (layout in :mod:`dislab.train.loop`), apart from the loop.

* :func:`check_folder` - may a run start (or resume) in a folder? Clear errors otherwise.
* :class:`RunFolder` - the files of a running training: ``config.json``, ``status.json``
  (with heartbeat), ``history.jsonl``, the checkpoint, ``model.safetensors``, ``images/``,
  TensorBoard and the MLflow / W&B trackers (:mod:`dislab.train.tracking`).
"""

from __future__ import annotations

import json
import os
import socket
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
from dislab.train import pictures, tracking
from dislab.train.config import RESUMABLE_CHANGES, TrainConfig

__all__ = ["CHECKPOINT", "RunFolder", "check_folder", "model_meta", "truncate_history"]

#: The resumable checkpoint, relative to the run folder.
CHECKPOINT = Path("checkpoint") / "checkpoint.safetensors"


def _write_json(path: Path, obj: Any) -> None:
    write_json(path, obj, indent=2, default=str)


def check_folder(run_dir: Path, cfg: TrainConfig, resume: bool) -> bool:
    """Whether ``cfg`` resumes the run in ``run_dir`` (it has a checkpoint); a DislabError
    when the folder is being trained by a live process, holds a run and ``resume`` is off,
    holds a run of a different config (beyond :data:`RESUMABLE_CHANGES`), or ``resume`` is on
    and there is no run."""
    saved_cfg_path = run_dir / "config.json"
    if not saved_cfg_path.exists():
        if resume:
            raise DislabError(
                f"Nothing to resume in {str(run_dir.resolve())!r}: it holds no run (no "
                "config.json). Check --out (or the config's 'out'), or leave out --resume to "
                "start a new run there."
            )
        return False
    status = read_status(run_dir)
    pid = status.get("pid")
    if (status.get("status") == "running" and status.get("host") == socket.gethostname()
            and isinstance(pid, int) and pid != os.getpid() and pid_alive(pid)):
        raise DislabError(
            f"The run in {str(run_dir)!r} is being trained by another process (pid "
            f"{status.get('pid')} on {status.get('host')}, step {status.get('step', '?')}); "
            "wait for it or stop it, then resume with --resume."
        )
    kept = (run_dir / CHECKPOINT).exists() or (run_dir / "model.safetensors").exists()
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
    return (run_dir / CHECKPOINT).exists()


def truncate_history(path: Path, step: int) -> None:
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


def model_meta(cfg: TrainConfig, data: Any, step: int) -> dict[str, Any]:
    """The header of ``model.safetensors``: how :func:`dislab.train.load_run` rebuilds the
    model without the data set (observation shape, data set size) and where it came from."""
    return {"model": cfg.model, "observation_shape": list(data.observation_shape),
            "latent_dim": cfg.latent_dim, "arch": cfg.arch,
            "reconstruction": cfg.reconstruction, "hparams": cfg.hparams,
            "dataset_size": len(data), "data": cfg.data, "step": step}


def _tensorboard(run_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # tensorboard not installed or broken
        warnings.warn(f"TensorBoard logging is off ({e}); install tensorboard to enable it.",
                      stacklevel=4)
        return None
    return SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)


class RunFolder:
    """The files of a run being trained in ``cfg.out``, from step ``step``.

    Opening it truncates (resuming) or removes (new run) ``history.jsonl``, opens the
    trackers (an unreachable one fails here, before ``config.json`` is written), writes
    ``config.json`` and a ``"running"`` ``status.json``. Then :meth:`log`, :meth:`heartbeat`,
    :meth:`save_checkpoint`, :meth:`write_images`; at the end :meth:`finish` or one of
    :meth:`failed` / :meth:`loss_not_finite` / :meth:`interrupted`, and always :meth:`close`
    (which may be called again).
    """

    def __init__(self, cfg: TrainConfig, step: int, train_seconds: float,
                 resuming: bool) -> None:
        self.cfg = cfg
        self.dir = Path(cfg.out)
        self.checkpoint = self.dir / CHECKPOINT
        history = self.dir / "history.jsonl"
        if resuming:
            truncate_history(history, step)
        elif history.exists():
            history.unlink()
        tracked = tracking.open_writer(cfg, self.dir)  # MLflow / W&B runs
        cfg.save(self.dir / "config.json")
        board = (_tensorboard(self.dir, step + 1 if resuming else None)
                 if cfg.tensorboard and "tensorboard" in cfg.loggers else None)
        self.writer = tracking.with_tensorboard(tracked, board)
        #: the step of the last checkpoint written or resumed from (``None``: none yet)
        self.last_good: int | None = step if resuming else None
        #: the logs of the last history line
        self.last_logs: dict[str, float] = {}
        self.status: dict[str, Any] = {"status": "running", "step": step, "error": None,
                                       "train_seconds": train_seconds, "final_logs": None,
                                       **process_info()}
        self._write_status()
        self._last_beat = time.monotonic()
        self._history = open(history, "a")  # noqa: SIM115

    def _write_status(self, **fields: Any) -> None:
        self.status.update(fields)
        _write_json(self.dir / "status.json", self.status)

    def log(self, step: int, logs: dict[str, float], images_per_s: float) -> None:
        """One history line (and the trackers' scalars): the window's mean logs at ``step``."""
        self.last_logs = logs
        self._history.write(json.dumps({"step": step, **logs,
                                        "images_per_s": round(images_per_s, 2)}) + "\n")
        self._history.flush()
        if self.writer is not None:
            for k, v in logs.items():
                self.writer.add_scalar(f"train/{k}", v, step)
            self.writer.add_scalar("speed/images_per_s", images_per_s, step)

    def heartbeat(self, step: int) -> None:
        """Refresh ``status.json`` (step, heartbeat) when it is due, so that a killed run can
        be told apart from a running one (:mod:`dislab.status`)."""
        if time.monotonic() - self._last_beat > HEARTBEAT_SECONDS:
            self._last_beat = time.monotonic()
            self._write_status(step=step, heartbeat=time.time())

    def save_checkpoint(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                        step: int) -> None:
        """Write the resumable state of ``step`` (:meth:`dislab.train.Trainer.state`)."""
        ckpt.save_tensors(self.checkpoint, tensors, meta)
        self.last_good = step

    def write_images(self, model: torch.nn.Module, data: Any, step: int,
                     final: bool = False) -> None:
        """Reconstructions and traversals of 16 fixed images (``images/``, TensorBoard);
        nothing for a method without decoder or a data set of non-images."""
        if not getattr(model, "has_decoder", True) or not getattr(data, "is_image", False):
            return
        rng = np.random.default_rng([self.cfg.seed, 7])  # fixed, separate from training
        x = data.images_from_index(data.sample_index(16, rng))
        try:
            rec = pictures.reconstruction_grid(model, x, ncol=8)
            trav = pictures.traversal_grid(model, x[0], n_steps=10)
        except NotImplementedError:
            return
        folder = self.dir / "images"
        folder.mkdir(exist_ok=True)
        scale = 2 if x.shape[-1] <= 32 else 1
        suffix = "" if final else f"_{step:07d}"
        pictures.save_png(rec, folder / f"reconstructions{suffix}.png", scale)
        pictures.save_png(trav, folder / f"traversals{suffix}.png", scale)
        if self.writer is not None:
            self.writer.add_image("reconstructions", rec, step, dataformats="HWC")
            self.writer.add_image("traversals", trav, step, dataformats="HWC")

    def finish(self, model: torch.nn.Module, data: Any, step: int,
               train_seconds: float) -> None:
        """The final weights (``model.safetensors``), images and a ``"done"`` status."""
        ckpt.save_weights(self.dir / "model.safetensors", model,
                          model_meta(self.cfg, data, step))
        self.write_images(model, data, step, final=True)
        self._write_status(status="done", step=step, train_seconds=train_seconds,
                           final_logs=self.last_logs or None, heartbeat=time.time())
        if self.writer is not None:
            self.writer.log_final(self.status["final_logs"])

    def failed(self, step: int, error: str, train_seconds: float, **fields: Any) -> None:
        """Status ``"failed"`` at ``step`` with the ``error`` message."""
        self._write_status(status="failed", step=step, error=error,
                           train_seconds=train_seconds, **fields)

    def loss_not_finite(self, step: int, value: float, train_seconds: float) -> str:
        """Status ``"failed"`` because the loss became ``value`` (NaN/inf) at ``step``; returns
        the message (what went wrong, the last good checkpoint kept, what to try)."""
        kept = (f"the last good checkpoint (step {self.last_good}) is kept in {self.checkpoint}"
                if self.last_good is not None else "no checkpoint had been written yet")
        cfg = self.cfg
        msg = (f"Training stopped: the loss became {value} at step {step} "
               f"({cfg.model}, lr={cfg.lr:g}); {kept}. Try a smaller learning rate (e.g. "
               f"--lr {cfg.lr / 10:g}) or milder hyper-parameters, check the data for NaN, "
               "then continue with --resume (a changed --lr is allowed) or start again.")
        self.failed(step, msg, train_seconds, final_logs=self.last_logs or None)
        return msg

    def interrupted(self, step: int, train_seconds: float) -> None:
        """Status ``"interrupted"`` (Ctrl-C) at ``step``."""
        self._write_status(status="interrupted", step=step,
                           error=f"interrupted at step {step}; continue with --resume",
                           train_seconds=train_seconds, heartbeat=time.time())

    def close(self) -> None:
        """Close ``history.jsonl`` and the trackers."""
        self._history.close()
        if self.writer is not None:
            self.writer.close()
