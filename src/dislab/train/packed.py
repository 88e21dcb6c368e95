"""Packed training: K runs of one method trained in one process as one vectorised model.

A study trains many small models that differ only in their seed and hyper-parameters. One
such model leaves an accelerator idle (each step is bound by kernel launches and host work),
so :func:`fit_pack` stacks the K models' parameters (``torch.func.stack_module_state``) and
runs the method's ``loss`` once for all of them with ``torch.func.vmap`` over
``functional_call`` (the model-ensembling recipe of the ``torch.func`` tutorials). What makes
each member the run it would be alone:

* **Batches** (:attr:`PackOptions.data`): on the host path each member draws from its own
  :class:`~dislab.train.batches.BatchSource`, seeded by its config, so it sees exactly the
  batches ``fit`` would draw; the K batches are stacked ``(B, K, *obs)`` (in a background
  thread when ``prefetch`` is on) and copied to the device. On the device path (CUDA's
  default) the data set's grid lives on the device (:class:`~dislab.data.device.DeviceGrid`)
  and each step's ``(K, B)`` indices are drawn there from each member's seed and the step
  number (:class:`~dislab.data.device.DeviceBatches`) and gathered there: the same
  distribution as the host draws, but another stream of batches than ``fit``'s.
* **Step noise**: the reparameterisation noise and the other draws inside ``loss`` go through
  :mod:`dislab.models.noise`; each member's draws come from its own generator, in the state
  the global generator of the lone run would be in (seeded, then advanced by the model's
  initialisation), and are handed into the vectorised step.
* **Hyper-parameters**: the method's :attr:`~dislab.models.base.Method.packed_hparams` are
  per-member 0-d tensors set on the module inside the vectorised function; the others (and
  every config field except ``seed``, ``out``, ``lr`` and ``tracking``) are equal in a pack
  (:func:`pack_key`).
* **Adam**: one Adam per member and optimiser (FactorVAE's and the AAE's discriminators
  included), with each member's own learning rate and bias corrections: on the CPU PyTorch's
  fused kernel per member (what ``fit`` uses), elsewhere one update over the stacked tensors
  with that kernel's formula (``aten/src/ATen/native/cpu/FusedAdamKernel.cpp``).
* **NaN**: losses are checked at log, checkpoint and image steps, as ``fit`` does; a member
  whose loss became NaN/inf gets the status ``fit`` would give it (``failed``, same message,
  its last good checkpoint kept) and leaves the pack; the others go on unchanged.
* **Run folders**: every member's folder is checked and written by the code that writes
  ``fit``'s (:func:`~dislab.train.run_folder.check_folder`, a
  :class:`~dislab.train.run_folder.RunFolder` per member: ``config.json``, ``status.json``,
  ``history.jsonl``, ``checkpoint/``, ``model.safetensors``, ``images/``, ``tb/``):
  ``load_run``, ``dislab evaluate`` and a resumed ``fit`` read it as a single run's.
  A pack resumes from its members' checkpoints, exactly.

How the members' passes run (:class:`PackOptions`): ``execution="vmap"`` (CUDA's default)
is the vectorised step above, optionally under ``torch.compile(mode="reduce-overhead")``
(CUDA graphs), with TF32 on; ``"members"`` (the CPU's default, where vmap's grouped
convolutions are slower than separate ones) runs the members' forward and backward passes
in turn, with everything else shared. bf16 autocast is an option. The host syncs only at
log, checkpoint and image steps.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad_and_value, vmap

from dislab.data.device import DeviceBatches, DeviceGrid
from dislab.errors import DataError, DislabError
from dislab.models import noise
from dislab.train import checkpoint as ckpt
from dislab.train.batches import BatchSource, Prefetcher
from dislab.train.config import TrainConfig
from dislab.train.fast import compiler_available
from dislab.train.loop import (
    Trainer,
    _load_data,
    add_to_window,
    resolved_config,
    scalar_logs,
)
from dislab.train.run_folder import CHECKPOINT, RunFolder, check_folder

__all__ = ["PackOptions", "PackBatches", "PackDeviceBatches", "fit_pack", "pack_key",
           "pack_problem", "pack_trainer", "FREE_FIELDS"]

#: Config fields that may differ inside a pack (besides the method's ``packed_hparams``).
FREE_FIELDS = ("seed", "out", "lr", "hparams", "tracking")
#: Loggers a packed run can use (MLflow and W&B track one run per process).
PACK_LOGGERS = ("tensorboard",)


@dataclass
class PackOptions:
    """How a pack's step runs (none of these change what a member computes, up to float
    rounding, except ``precision="bf16"``).

    Attributes:
        precision: ``"fp32"`` (default) or ``"bf16"``: the forward and backward passes under
            ``torch.autocast`` with bfloat16 (parameters, Adam and the logged sums stay fp32).
        compile: capture the step (forward + backward of all members) with
            ``torch.compile(mode="reduce-overhead")``, i.e. CUDA graphs on CUDA: ``True``,
            ``False`` or ``"auto"`` (on for CUDA when a compiler works).
        tf32: allow TF32 matrix products and convolutions on CUDA while the pack trains.
        execution: ``"vmap"``: one vectorised forward and backward of all members (grouped
            convolutions); ``"members"``: the members' forward and backward passes one by one
            (``workers`` at a time), with the batch draws, noise, Adam, logging and
            checkpoints of the pack; ``"auto"``:
            vmap on CUDA, members on the CPU, where vmap's grouped convolutions were measured
            slower than separate convolutions (docs/training.md, "Packed training").
        workers: with ``execution="members"``, how many members run at once, each in its own
            thread with one-thread kernels (``None``, the default: ``torch.get_num_threads()``,
            one member per core, as separate one-thread processes would run); 1 runs them in
            turn, each with all the process's threads.
        data: where the batches come from. ``"host"``: each member's own
            :class:`~dislab.train.batches.BatchSource` (the batches its ``fit`` run draws),
            copied to the device every step; ``"device"``: the data set's full grid held on
            the pack's device (:class:`~dislab.data.device.DeviceGrid`) and each step's
            indices drawn there from the members' seeds and the step number
            (:class:`~dislab.data.device.DeviceBatches`; other batches than the host path's,
            from the same distribution), with no host work and no copy per step; ``"auto"``
            (default): ``"device"`` on CUDA, ``"host"`` elsewhere. Pair methods
            (``batch_kind == "pairs"``) and data sets a grid cannot hold (too large for the
            device, ``fresh=True``, a custom factor sampler) use the host path (with a
            warning when ``"device"`` was asked). A resumed member keeps the path its
            checkpoint was written with (with ``"auto"``; an explicit other path is an
            error).
    """

    precision: str = "fp32"
    compile: bool | str = "auto"
    tf32: bool = True
    execution: str = "auto"
    workers: int | None = None
    data: str = "auto"

    def validate(self) -> PackOptions:
        if self.data not in ("auto", "host", "device"):
            raise DislabError(f"PackOptions: data={self.data!r} must be 'auto', 'host' or "
                              "'device'.")
        if self.precision not in ("fp32", "bf16"):
            raise DislabError(f"PackOptions: precision={self.precision!r} must be 'fp32' or "
                              "'bf16'.")
        if self.execution not in ("auto", "vmap", "members"):
            raise DislabError(f"PackOptions: execution={self.execution!r} must be 'auto', "
                              "'vmap' or 'members'.")
        if self.workers is not None and (isinstance(self.workers, bool)
                                         or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise DislabError(f"PackOptions: workers={self.workers!r} must be a positive "
                              "integer or None.")
        if self.compile not in (True, False, "auto"):
            raise DislabError(f"PackOptions: compile={self.compile!r} must be true, false or "
                              "'auto'.")
        return self


# -- grouping --------------------------------------------------------------------------------
def pack_problem(config: TrainConfig | dict[str, Any]) -> str | None:
    """Why the run ``config`` cannot train in a pack, or ``None`` if it can."""
    from dislab import models

    cfg = resolved_config(config)
    cls = models.get(cfg.model)
    why = cls.pack_problem(cfg.hparams)
    if why:
        return why
    others = [x for x in cfg.loggers if x not in PACK_LOGGERS]
    if others:
        return (f"logger(s) {', '.join(others)} track one run per process; packed runs log "
                "to TensorBoard only")
    return None


def pack_key(config: TrainConfig | dict[str, Any]) -> tuple[Any, ...] | None:
    """A hashable key: runs with equal keys may train in one pack; ``None`` if this run
    cannot be packed (:func:`pack_problem` says why).

    The key holds the method and every config field except :data:`FREE_FIELDS`, and the
    method's hyper-parameters except its ``packed_hparams`` (those, the seed, the learning
    rate and the output folder may differ).
    """
    from dislab import models

    if pack_problem(config) is not None:
        return None
    cfg = resolved_config(config)
    cls = models.get(cfg.model)
    d = cfg.to_dict()
    fixed_hp = {k: v for k, v in cfg.hparams.items() if k not in cls.packed_hparams}
    items = [(k, json.dumps(v, sort_keys=True)) for k, v in d.items() if k not in FREE_FIELDS]
    items.append(("hparams", json.dumps(fixed_hp, sort_keys=True)))
    return ("dislab-pack",) + tuple(items)


# -- a member -------------------------------------------------------------------------------
@dataclass
class _Member:
    """One run of a pack: its config, template trainer, generators and (in ``fit_pack``) its
    run folder, written by the same :class:`~dislab.train.run_folder.RunFolder` as ``fit``'s."""

    cfg: TrainConfig
    trainer: Trainer
    cpu_gen: torch.Generator  # the lone run's global CPU generator
    gen: torch.Generator  # where its step noise comes from (cpu_gen, or a CUDA generator)
    run: RunFolder | None = None
    #: the batch path its checkpoint was written with ("host" or "device"); None: a new run
    resumed_kind: str | None = None

    @property
    def folder(self) -> RunFolder:
        """The member's run folder (opened by ``fit_pack``; ``pack_trainer`` has none)."""
        if self.run is None:
            raise RuntimeError(f"the pack member {self.cfg.out!r} has no run folder open")
        return self.run


# -- batches -------------------------------------------------------------------------------------
def device_batches_state(step: int) -> dict[str, Any]:
    """A member's batch state on the device path (its checkpoint's ``data_rng``): the draws
    are a function of the seed and the step, so the step is all there is to keep."""
    return {"kind": "device", "step": int(step)}


def batches_kind(state: Any) -> str:
    """``"device"`` for a :func:`device_batches_state`, else ``"host"`` (a BatchSource's
    numpy Generator state)."""
    return "device" if isinstance(state, dict) and state.get("kind") == "device" else "host"


class PackBatches:
    """The members' batches from the host, stacked ``(B, K, *obs)`` (``(B, K, 2, *obs)`` for
    pairs) and copied to the pack's device.

    Each member keeps its own :class:`BatchSource` (drawn without its own thread);
    :meth:`states` are the members' generator states before the next batch the pack will
    consume, as ``BatchSource.state`` (so checkpoints resume exactly, with or without the
    prefetch thread).
    """

    def __init__(self, sources: list[BatchSource], prefetch: bool, device: torch.device) -> None:
        self.sources = sources
        for s in sources:
            s.close()
            s.prefetch = False
            s.channels_last = False
        self.prefetch, self.device = prefetch, device
        self._states = [s.state() for s in sources]
        self._prev = list(self._states)
        self._draws = Prefetcher(self._draw, "dislab-pack-batches", self._sync_sources)

    def _draw(self) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        xs = torch.stack([next(s) for s in self.sources], dim=1)
        return xs, [s.state() for s in self.sources]

    def __next__(self) -> torch.Tensor:
        item = self._draws.next(self.prefetch)
        self._prev = self._states
        xs, self._states = item
        if self.device.type != "cpu":
            xs = xs.pin_memory().to(self.device, non_blocking=True)
        return xs

    def states(self) -> list[dict[str, Any]]:
        return list(self._states)

    def rewind(self) -> None:
        """Forget the last batch (its update was interrupted)."""
        self.close()
        self._states = self._prev
        self._sync_sources()

    def _sync_sources(self) -> None:
        for s, st in zip(self.sources, self._states):
            s.set_state(st)

    def keep(self, index: list[int]) -> None:
        """Keep only the members at ``index`` (in that order)."""
        self.close()
        self.sources = [self.sources[i] for i in index]
        self._states = [self._states[i] for i in index]
        self._prev = [self._prev[i] for i in index]

    def close(self) -> None:
        """Stop the prefetch thread; the sources go back to the consumed position."""
        self._draws.stop()


class PackDeviceBatches:
    """The members' batches drawn and gathered on the grid's device, ``(B, K, *obs)`` as
    :class:`PackBatches` gives them (the interface ``_Pack`` uses: ``next``, ``states``,
    ``rewind``, ``keep``, ``close``).

    Member ``k``'s batch of update ``t`` (0-based) is
    ``grid.gather(DeviceBatches([seed_k], batch_size, len(grid)).indices(t))[0]``: it
    depends on that member's seed and the step only, not on the other members. The state is
    the step count (:func:`device_batches_state`); ``step`` is the first update's number.
    """

    def __init__(self, grid: DeviceGrid, seeds: Sequence[int], batch_size: int,
                 step: int = 0) -> None:
        self.grid = grid
        self.seeds = [int(s) for s in seeds]
        self.batch_size = int(batch_size)
        self.step = self._prev = int(step)
        self._draws = DeviceBatches(self.seeds, self.batch_size, len(grid), grid.device)

    def __next__(self) -> torch.Tensor:
        index = self._draws.indices(self.step)  # (K, B)
        xs = self.grid.gather(index.t())  # (B, K, *obs)
        self._prev, self.step = self.step, self.step + 1
        return xs

    def states(self) -> list[dict[str, Any]]:
        return [device_batches_state(self.step) for _ in self.seeds]

    def rewind(self) -> None:
        """Forget the last batch (its update was interrupted)."""
        self.step = self._prev

    def keep(self, index: list[int]) -> None:
        """Keep only the members at ``index`` (in that order)."""
        self.seeds = [self.seeds[i] for i in index]
        if self.seeds:
            self._draws = DeviceBatches(self.seeds, self.batch_size, len(self.grid),
                                        self.grid.device)

    def close(self) -> None:
        """Nothing runs in the background."""


def _device_grid(options: PackOptions, data: Any, device: torch.device, batch_kind: str,
                 progress: bool) -> DeviceGrid | None:
    """The data set's grid on ``device`` when ``options.data`` resolves to the device path,
    else ``None`` (the host path; a one-line warning when ``"device"`` was asked)."""
    if options.data == "host" or (options.data == "auto" and device.type != "cuda"):
        return None
    asked = options.data == "device"
    if batch_kind == "pairs":
        if asked:
            warnings.warn("PackOptions(data='device'): pair batches are drawn on the host "
                          "(dislab.data.pairs); the pack uses the host path.", stacklevel=3)
        return None
    try:
        return DeviceGrid.from_data(data, device, progress=progress)
    except DataError as e:
        if asked:
            msg = " ".join(str(e).split())
            warnings.warn(f"PackOptions(data='device'): {msg} The pack uses the host path.",
                          stacklevel=3)
        return None


# -- the vectorised model -------------------------------------------------------------------------
class _Call(torch.nn.Module):
    """``forward(batch, step) = method.loss(batch, step)``, for ``functional_call``."""

    def __init__(self, method: torch.nn.Module) -> None:
        super().__init__()
        self.m = method

    def forward(self, batch: torch.Tensor, step: torch.Tensor) -> Any:
        return self.m.loss(batch, step)


def _with_loss(loss: torch.Tensor, logs: dict[str, Any]
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss in fp32 and the logs as ``fit`` accumulates them: detached fp32 scalars
    (means of non-scalars), then ``loss``."""
    loss = loss.float()
    out = scalar_logs(logs)
    out["loss"] = loss.detach()
    return loss, out


@functools.cache
def _cpu_fused_adam() -> bool:
    """Whether this torch has Adam's fused CPU kernel (PyTorch 2.4 and later)."""
    try:
        p = torch.zeros(2)
        torch._fused_adam_([p], [torch.ones(2)], [torch.zeros(2)], [torch.zeros(2)], [],
                           [torch.ones(())], lr=0.1, beta1=0.9, beta2=0.999, weight_decay=0.0,
                           eps=1e-8, amsgrad=False, maximize=False)
    except (AttributeError, NotImplementedError, RuntimeError, TypeError):
        return False
    return True


@dataclass
class _Group:
    """One Adam parameter group of every member: parameter names and settings."""

    names: list[str]
    lr: torch.Tensor  # (K,) float64, per member
    beta1: float
    beta2: float
    eps: float
    opt_name: str
    index: int


class _Pack:
    """K members trained as one vectorised model (all at the same step)."""

    def __init__(self, members: list[_Member], options: PackOptions,
                 grid: DeviceGrid | None = None) -> None:
        self.members = members
        self.options = options
        self.owns_members = False
        tr0 = members[0].trainer
        self.base = tr0.model
        self.device = tr0.device
        self.step = tr0.step
        self.cfg0 = members[0].cfg
        self.images_per_batch = tr0.images_per_batch
        self.call = _Call(self.base)
        self.hp_names = tuple(type(self.base).packed_hparams)
        named = dict(self.base.named_parameters())
        self.train_names = [n for n, p in named.items() if p.requires_grad]
        self.frozen_names = [n for n, p in named.items() if not p.requires_grad]
        self.buffer_names = [n for n, _ in self.base.named_buffers()]
        self.groups = self._groups()
        optimised = {n for g in self.groups for n in g.names}
        self.train_names = [n for n in self.train_names if n in optimised]
        self.frozen_names += [n for n in named if n not in optimised and n not in
                              self.frozen_names]
        self._load_from_templates()
        # where the batches come from: the grid on the device (draws there), or the host
        self.batches: PackBatches | PackDeviceBatches
        if grid is not None:
            self.batches = PackDeviceBatches(grid, [m.cfg.seed for m in members],
                                             tr0.batches.batch_size, self.step)
        else:
            self.batches = PackBatches([m.trainer.batches for m in members],
                                       self.cfg0.prefetch, self.device)
        self.data = "device" if grid is not None else "host"
        self.draws: list[noise.Draw] | None = None
        self.step_t = torch.tensor(self.step, dtype=torch.int64, device=self.device)
        self.window: dict[str, torch.Tensor] = {}
        self.window_losses: list[torch.Tensor] = []
        self.window_count = tr0.window_count
        if tr0.window_count:
            self.window = {k: torch.stack([m.trainer.window[k].to(self.device).float()
                                           for m in members]) for k in tr0.window}
        self.autocast = options.precision == "bf16"
        # members along dim 1 of the batch (B, K, *obs): grouped convolutions then take and
        # give (B, K*C, H, W) as views, without a copy between layers
        self._forward = vmap(self._member_loss, in_dims=(0, 0, 0, 1, 0, None),
                             randomness="error")
        self._step_fn = self._autograd_step
        self.execution = options.execution
        if self.execution == "auto":
            self.execution = "vmap" if self.device.type == "cuda" else "members"
        self._pool: ThreadPoolExecutor | None = None
        self._threads_before = torch.get_num_threads()
        if self.execution == "members":
            self._step_fn = self._members_step
            self.workers = max(1, min(len(members), options.workers or self._threads_before))
            self._bases = [self.base] + [copy.deepcopy(self.base)
                                         for _ in range(self.workers - 1)]
            if self.workers > 1:  # members in parallel threads, one core each
                torch.set_num_threads(1)
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dislab-pack")
        self.compiled = False
        want = self.execution == "vmap" and (
            options.compile is True or (options.compile == "auto" and self.device.type == "cuda"))
        if want:
            if compiler_available():
                self._eager_fn = self._step_fn
                mode = "reduce-overhead" if self.device.type == "cuda" else None
                functional = vmap(grad_and_value(self._member_loss, has_aux=True),
                                  in_dims=(0, 0, 0, 1, 0, None), randomness="error")
                self._step_fn = torch.compile(functional, mode=mode, dynamic=False)
                self.compiled = True
            elif options.compile is True:
                raise DislabError("PackOptions(compile=True) but torch.compile cannot run here "
                                  "(no C++ compiler or unsupported platform).")

    # -- state <-> the members' template trainers ---------------------------------------------
    def _groups(self) -> list[_Group]:
        tr0 = self.members[0].trainer
        by_id = {id(p): n for n, p in self.base.named_parameters()}
        groups = []
        for opt_name, opt0 in tr0.optimizers.items():
            if type(opt0) is not torch.optim.Adam:
                raise DislabError(f"packed training vectorises Adam; {self.cfg0.model}'s "
                                  f"optimiser {opt_name!r} is {type(opt0).__name__}.")
            for gi, g0 in enumerate(opt0.param_groups):
                if g0.get("weight_decay") or g0.get("amsgrad") or g0.get("maximize"):
                    raise DislabError(f"packed training vectorises plain Adam; {opt_name!r} "
                                      "uses weight_decay, amsgrad or maximize.")
                lrs = []
                for m in self.members:
                    g = m.trainer.optimizers[opt_name].param_groups[gi]
                    if (tuple(g["betas"]), g["eps"]) != (tuple(g0["betas"]), g0["eps"]):
                        raise DislabError(f"packed runs need equal Adam betas and eps in "
                                          f"{opt_name!r}; {m.cfg.out} differs.")
                    lrs.append(float(g["lr"]))
                groups.append(_Group([by_id[id(p)] for p in g0["params"]],
                                     torch.tensor(lrs, dtype=torch.float64, device=self.device),
                                     float(g0["betas"][0]), float(g0["betas"][1]),
                                     float(g0["eps"]), opt_name, gi))
        return groups

    def _load_from_templates(self) -> None:
        """Stack parameters, buffers, hyper-parameters and Adam state from the templates."""
        models = [m.trainer.model for m in self.members]
        params = [dict(mod.named_parameters()) for mod in models]
        buffers = [dict(mod.named_buffers()) for mod in models]
        self.params = {n: self._stack([p[n].detach() for p in params])
                       for n in self.train_names}
        self.frozen = {n: self._stack([p[n].detach() for p in params])
                       for n in self.frozen_names}
        self.frozen.update({n: self._stack([b[n] for b in buffers])
                            for n in self.buffer_names})
        self.hp = {k: torch.tensor([float(mod.hp[k]) for mod in models], dtype=torch.float32,
                                   device=self.device) for k in self.hp_names}
        self.exp_avg: dict[str, torch.Tensor] = {}
        self.exp_avg_sq: dict[str, torch.Tensor] = {}
        self.count: dict[str, torch.Tensor] = {}
        for g in self.groups:
            for j, n in enumerate(g.names):
                ea, eas, cnt = [], [], []
                for m, p in zip(self.members, params):
                    opt = m.trainer.optimizers[g.opt_name]
                    st = opt.state.get(opt.param_groups[g.index]["params"][j], {})
                    ea.append(st["exp_avg"].detach() if "exp_avg" in st
                              else torch.zeros_like(p[n]))
                    eas.append(st["exp_avg_sq"].detach() if "exp_avg_sq" in st
                               else torch.zeros_like(p[n]))
                    cnt.append(float(st["step"]) if "step" in st else 0.0)
                # Adam's state in the parameter's memory layout (fused kernels walk them in step)
                like = self.params.get(n)
                if like is None:
                    like = self.frozen[n]
                self.exp_avg[n] = torch.empty_like(like).copy_(torch.stack(ea))
                self.exp_avg_sq[n] = torch.empty_like(like).copy_(torch.stack(eas))
                self.count[n] = torch.tensor(cnt, dtype=torch.float32, device=self.device)

    def _stack(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """``(K, *shape)`` on the pack's device; a member's 4-D weight is channels-last, as
        the single run's, when the runs use channels-last."""
        t = torch.stack(tensors).to(self.device)
        if t.dim() == 5 and self.members[0].trainer.channels_last:
            k, o, i, h, w = t.shape
            out = torch.empty((k, o, h, w, i), dtype=t.dtype, device=t.device)
            return out.permute(0, 1, 4, 2, 3).copy_(t)
        return t.contiguous()

    def _write_template(self, i: int) -> None:
        """Member ``i``'s parameters, Adam state, step and window into its trainer."""
        m = self.members[i]
        tr = m.trainer
        with torch.no_grad():
            for n, p in tr.model.named_parameters():
                src = self.params[n] if n in self.params else self.frozen[n]
                p.copy_(src[i])
            for n, b in tr.model.named_buffers():
                b.copy_(self.frozen[n][i])
        counts = {n: c[i].item() for n, c in self.count.items()}
        for g in self.groups:
            opt = tr.optimizers[g.opt_name]
            plist = opt.param_groups[g.index]["params"]
            for j, n in enumerate(g.names):
                p = plist[j]
                if counts[n] == 0:
                    opt.state.pop(p, None)
                    continue
                opt.state[p] = {
                    "step": torch.tensor(counts[n], dtype=torch.float32),
                    "exp_avg": self.exp_avg[n][i].clone(),
                    "exp_avg_sq": self.exp_avg_sq[n][i].clone(),
                }
        tr.step = self.step
        tr.window = {k: v[i].clone() for k, v in self.window.items()}
        tr.window_count = self.window_count

    def checkpoint(self, i: int) -> None:
        """Write member ``i``'s resumable checkpoint (``fit``'s format)."""
        m = self.members[i]
        self._write_template(i)
        tensors, meta = m.trainer.state()
        tensors["rng/torch"] = m.cpu_gen.get_state()
        if m.gen is not m.cpu_gen:
            tensors["rng/cuda"] = m.gen.get_state()
        meta["data_rng"] = self.batches.states()[i]
        m.folder.save_checkpoint(tensors, meta, self.step)

    def keep(self, index: list[int]) -> None:
        """Continue with the members at ``index`` only."""
        idx = torch.tensor(index, dtype=torch.long, device=self.device)

        def sel(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            # same memory layout per member (empty_like of a leading slice keeps the strides)
            return {k: torch.empty_like(v[:len(index)]).copy_(v.index_select(0, idx))
                    for k, v in d.items()}

        self.params, self.frozen, self.hp = sel(self.params), sel(self.frozen), sel(self.hp)
        self.exp_avg, self.exp_avg_sq, self.count = (sel(self.exp_avg), sel(self.exp_avg_sq),
                                                     sel(self.count))
        self.window = sel(self.window)
        self.window_losses = [v.index_select(0, idx) for v in self.window_losses]
        for g in self.groups:
            g.lr = g.lr.index_select(0, idx)
        self.batches.keep(index)
        self.members = [self.members[i] for i in index]

    # -- one step --------------------------------------------------------------------------------
    def _member_loss(self, params: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
                     hp: dict[str, torch.Tensor], x: torch.Tensor,
                     draws: list[torch.Tensor], step: torch.Tensor) -> Any:
        """One member's loss (runs under vmap; ``hp`` values are this member's 0-d tensors)."""
        base = self.base
        saved = base.hp
        base.hp = {**saved, **hp}
        try:
            with noise.replay(draws), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.autocast):
                state = {"m." + k: v for k, v in params.items()}
                state.update({"m." + k: v for k, v in frozen.items()})
                loss, logs = functional_call(self.call, state, (x, step))
        finally:
            base.hp = saved
        return _with_loss(loss, logs)

    def _autograd_step(self, params: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
                       hp: dict[str, torch.Tensor], xs: torch.Tensor, draws: list[torch.Tensor],
                       step: torch.Tensor) -> Any:
        """``(grads, (losses, logs))`` of every member: the vmapped forward, then one autograd
        backward of the summed losses (each member's gradient is that of its own loss; the
        backward runs on the grouped tensors directly, not through vmap's batching rules).
        A parameter the loss does not reach gets no gradient (``None``), as in autograd."""
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        loss, logs = self._forward(leaves, frozen, hp, xs, draws, step)
        loss.sum().backward()
        return {k: v.grad for k, v in leaves.items()}, (loss.detach(), logs)

    def _members_step(self, params: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
                      hp: dict[str, torch.Tensor], xs: torch.Tensor, draws: list[torch.Tensor],
                      step: torch.Tensor) -> Any:
        """:meth:`_autograd_step` computed member by member (``execution="members"``): each
        member's loss is its method's ``loss`` on its parameters (views of the stacked ones),
        batch, noise and hyper-parameters, as in a single run; ``self.workers`` threads share
        the members."""
        k = len(self.members)
        grads: dict[str, torch.Tensor | None] = {n: torch.zeros_like(p)
                                                 for n, p in params.items()}
        reached = {n: False for n in params}
        losses: list[Any] = [None] * k
        logs: list[Any] = [None] * k
        step_int = self.step

        def one(i: int, call: _Call) -> None:
            base = call.m
            leaves = {n: p[i].detach().requires_grad_() for n, p in params.items()}
            state = {"m." + n: v for n, v in leaves.items()}
            state.update({"m." + n: v[i] for n, v in frozen.items()})
            x = xs[:, i]
            x = x.contiguous(memory_format=torch.channels_last) if (
                x.dim() == 4 and self.members[i].trainer.channels_last) else x.contiguous()
            saved = base.hp
            base.hp = {**saved, **self.members[i].trainer.model.hp}
            try:
                with noise.replay([d[i] for d in draws]), torch.autocast(
                        self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                    loss, lg = functional_call(call, state, (x, step_int))
            finally:
                base.hp = saved
            loss, lg = _with_loss(loss, lg)
            loss.backward()
            for n, v in leaves.items():
                if v.grad is not None:
                    grads[n][i].copy_(v.grad)  # type: ignore[index]
                    reached[n] = True
            losses[i], logs[i] = loss.detach(), lg

        calls = [_Call(b) for b in self._bases]
        self._each_member(lambda i: one(i, calls[i % self.workers]))
        for n in params:
            if not reached[n]:
                grads[n] = None
        keys = list(logs[0])
        return grads, (torch.stack(losses), {key: torch.stack([lg[key] for lg in logs])
                                             for key in keys})

    def _record(self, xs: torch.Tensor, step_t: torch.Tensor) -> list[noise.Draw]:
        """The draws one step makes (a forward of member 0 with placeholder noise)."""
        base = self.base
        with torch.no_grad(), noise.record() as rec:
            base.loss(xs[:, 0], step_t)
        return list(rec.draws)

    def train_step(self) -> None:
        """One update of every member; logs accumulate in the window (no host sync)."""
        gen_states = [m.gen.get_state() for m in self.members]
        xs = next(self.batches)
        step_t = self.step_t  # on the device, counted there: no host-to-device copy per step
        try:
            if self.draws is None:
                self.draws = self._record(xs, step_t)
            draws = [torch.stack([noise.draw(d, m.gen, self.device) for m in self.members])
                     for d in self.draws]
            try:
                grads, (_, logs) = self._step_fn(self.params, self.frozen, self.hp, xs, draws,
                                                 step_t)
            except Exception as e:
                if self.compiled and self.options.compile == "auto":
                    self._step_fn = self._eager_fn
                    self.compiled = False
                    warnings.warn(f"torch.compile of the packed step failed ({type(e).__name__}"
                                  f": {e}); the pack continues without it.", stacklevel=2)
                    grads, (_, logs) = self._step_fn(self.params, self.frozen, self.hp, xs,
                                                     draws, step_t)
                elif "randomness" in str(e) and "vmap" in str(e):
                    raise DislabError(
                        f"{self.cfg0.model}'s loss draws random numbers outside "
                        "dislab.models.noise, so its packed members would not equal their "
                        "single runs; draw them with dislab.models.noise or set the class "
                        "attribute packable to a reason.") from e
                else:
                    raise
            self._adam(grads)
        except BaseException:
            # The update did not happen: a checkpoint written now must redo this step.
            self.batches.rewind()
            for m, st in zip(self.members, gen_states):
                m.gen.set_state(st)
            raise
        self.step += 1
        self.step_t.add_(1)
        with torch.no_grad():
            add_to_window(self.window, logs)
            # a copy: a CUDA-graph step reuses its output memory at the next replay
            self.window_losses.append(logs["loss"].clone())
            self.window_count += 1

    @torch.no_grad()
    def _adam(self, grads: dict[str, torch.Tensor | None]) -> None:
        """``torch.optim.Adam``'s update of every member (its own lr and step counts): its
        fused kernel member by member on the CPU, one vectorised update elsewhere."""
        if self.device.type == "cpu" and _cpu_fused_adam():
            self._adam_fused(grads)
        else:
            self._adam_vectorised(grads)

    def _adam_fused(self, grads: dict[str, torch.Tensor | None]) -> None:
        """PyTorch's fused Adam kernel (what ``fit`` uses on the CPU), once per member (in the
        member threads when ``workers`` > 1: the members' updates are independent)."""
        plan = []
        for g in self.groups:
            names = [n for n in g.names if n in self.params and grads.get(n) is not None]
            for n in names:  # as torch.optim.Adam: no gradient, no update, no step count
                self.count[n] += 1
            plan.append((g, names))

        def update(i: int) -> None:
            for g, names in plan:
                torch._fused_adam_(
                    [self.params[n][i] for n in names], [grads[n][i] for n in names],
                    [self.exp_avg[n][i] for n in names], [self.exp_avg_sq[n][i] for n in names],
                    [], [self.count[n][i] for n in names], lr=float(g.lr[i]), beta1=g.beta1,
                    beta2=g.beta2, weight_decay=0.0, eps=g.eps, amsgrad=False, maximize=False)

        self._each_member(update)

    def _each_member(self, fn: Any) -> None:
        """``fn(i)`` for every member: in turn, or shared by the ``workers`` member threads
        (thread ``w`` takes members ``w, w + workers, ...``)."""
        k = len(self.members)
        if self._pool is None:
            for i in range(k):
                fn(i)
            return

        def chunk(w: int) -> None:
            for i in range(w, k, self.workers):
                fn(i)

        for f in [self._pool.submit(chunk, w) for w in range(self.workers)]:
            f.result()

    def _adam_vectorised(self, grads: dict[str, torch.Tensor | None]) -> None:
        """Adam over the stacked tensors, the fused kernel's formula (bias corrections in
        float64), with per-member lr and counts as tensors: no host sync, capturable."""
        for g in self.groups:
            for n in g.names:
                if n not in self.params or grads.get(n) is None:
                    continue  # as torch.optim.Adam: no gradient, no update, no step count
                p, grad = self.params[n], grads[n]
                ea, eas = self.exp_avg[n], self.exp_avg_sq[n]
                self.count[n] += 1
                c = self.count[n].double()
                shape = (-1,) + (1,) * (p.dim() - 1)
                step_size = (g.lr / (1.0 - g.beta1 ** c)).to(p.dtype).view(shape)
                bc2_sqrt = (1.0 - g.beta2 ** c).sqrt().to(p.dtype).view(shape)
                ea.lerp_(grad, 1.0 - g.beta1)
                eas.mul_(g.beta2).addcmul_(grad, grad, value=1.0 - g.beta2)
                denom = eas.sqrt().div_(bc2_sqrt).add_(g.eps)
                p.sub_(step_size * ea / denom)

    def bad_members(self) -> dict[int, tuple[int, float]]:
        """``{member index: (first bad step, value)}`` for members whose loss in the window
        was NaN/inf (one host sync); clears the window's loss list."""
        if not self.window_losses:
            return {}
        losses = torch.stack(self.window_losses).float().cpu()  # (n, K)
        n = losses.shape[0]
        self.window_losses = []
        out = {}
        bad = ~torch.isfinite(losses)
        for i in torch.nonzero(bad.any(0)).flatten().tolist():
            first = int(torch.nonzero(bad[:, i])[0, 0])
            out[i] = (self.step - n + first + 1, float(losses[first, i]))
        return out

    def flush_window(self) -> list[dict[str, float]]:
        """Each member's means of the window's logs (one host sync); resets the window."""
        n = max(self.window_count, 1)
        keys = list(self.window)
        k = len(self.members)
        vals = (torch.stack([self.window[key] for key in keys]).div(n).cpu().tolist()
                if keys else [[] for _ in range(k)])
        out = [{key: float(vals[j][i]) for j, key in enumerate(keys)} for i in range(k)]
        self.window = {}
        self.window_count = 0
        return out

    def close(self) -> None:
        self.batches.close()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._threads_before)
        if self.owns_members:  # built by pack_trainer: nobody else closes the trainers
            for m in reversed(self.members):
                m.trainer.close()


# -- fit_pack --------------------------------------------------------------------------------------
def fit_pack(configs: Sequence[TrainConfig | dict[str, Any]], progress: bool = True,
             resume: bool = False, *, options: PackOptions | None = None) -> list[dict[str, Any]]:
    """Train ``configs`` as one vectorised model; returns each config's ``status.json``
    content, in order.

    Every config writes its own run folder (``config["out"]``) exactly as
    :func:`dislab.train.fit` does. On the host batch path (the CPU default) a member equals its
    run trained alone with ``fit`` (same batches, same noise, same updates, up to float
    rounding); on the device path (CUDA's default) it draws other batches of the same
    distribution (``options.data``, :class:`PackOptions`). A member whose loss becomes
    NaN/inf stops alone (status ``failed``, ``fit``'s message, its last good checkpoint kept).
    ``resume=True`` continues every member from its checkpoint (members at different steps,
    or checkpointed on different batch paths, train as separate packs, in order of step).
    Configs that cannot share a
    pack (different :func:`pack_key`, or ``None``) raise a DislabError naming the difference.
    """
    options = (options or PackOptions()).validate()
    if isinstance(configs, (dict, TrainConfig)) or not len(configs):
        raise DislabError("fit_pack needs a non-empty list of training configs.")
    cfgs = [resolved_config(c) for c in configs]
    outs = [str(Path(c.out).resolve()) for c in cfgs]
    dup = sorted({o for o in outs if outs.count(o) > 1})
    if dup:
        raise DislabError(f"Packed runs need their own folders; {dup[0]!r} is the 'out' of "
                          "more than one config.")
    why = pack_problem(cfgs[0])
    if why:
        raise DislabError(f"The run {cfgs[0].out!r} cannot train in a pack: {why}. Train it "
                          "with dislab.train.fit (`dislab train`).")
    key0 = pack_key(cfgs[0])
    for c in cfgs[1:]:
        key = pack_key(c)
        if key != key0:
            why = pack_problem(c)
            if why:
                raise DislabError(f"The run {c.out!r} cannot train in a pack: {why}.")
            a, b = dict(key0[1:]), dict(key[1:])  # type: ignore[index]
            diff = [k for k in a if a[k] != b.get(k)]
            raise DislabError(
                f"Runs {cfgs[0].out!r} and {c.out!r} cannot share a pack: they differ in "
                f"{', '.join(diff)} ({', '.join(f'{a[k]} vs {b[k]}' for k in diff)}); only "
                f"{', '.join(FREE_FIELDS[:-2])} and the method's packed hyper-parameters may "
                "differ. Group runs by dislab.train.packed.pack_key.")
    resuming = [check_folder(Path(c.out), c, resume) for c in cfgs]

    statuses: list[dict[str, Any]] = []
    prev_threads = torch.get_num_threads()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    members: list[_Member] = []
    created: list[Path] = []
    try:
        data = _load_data(cfgs[0])
        for c, res in zip(cfgs, resuming):
            run_dir = Path(c.out)
            if not run_dir.exists():
                created.append(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            members.append(_build_member(c, data, res))
        tr0 = members[0].trainer
        grid = None
        if options.data != "auto" or any(m.resumed_kind is None for m in members):
            grid = _device_grid(options, data, tr0.device, tr0.batch_kind, progress)
        paths = _member_paths(members, options, grid)
        if "device" in paths and grid is None:  # resumed device-batch members (data="auto")
            try:
                grid = DeviceGrid.from_data(data, tr0.device, progress=progress)
            except DataError as e:
                raise DislabError(f"The run {members[paths.index('device')].cfg.out!r} was "
                                  "checkpointed with its batches drawn on the device and "
                                  f"resumes only there, but {e}") from None
    except BaseException:
        for m in reversed(members):
            m.trainer.close()
        for d in created:
            shutil.rmtree(d, ignore_errors=True)
        torch.set_num_threads(prev_threads)
        raise
    device = members[0].trainer.device
    if device.type == "cuda" and options.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        for m, res in zip(members, resuming):
            m.run = RunFolder(m.cfg, m.trainer.step, m.trainer.train_seconds, res)
        order: dict[tuple[int, str], list[int]] = {}
        for i, (m, path) in enumerate(zip(members, paths)):
            order.setdefault((m.trainer.step, path), []).append(i)
        for step, path in sorted(order):
            idx = order[step, path]
            _train(_Pack([members[i] for i in idx], options,
                         grid if path == "device" else None), progress)
        statuses = [dict(m.folder.status) for m in members]
    finally:
        for m in members:
            if m.run is not None:
                m.run.close()
        for m in reversed(members):
            m.trainer.close()
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        if cfgs[0].threads is not None:
            torch.set_num_threads(prev_threads)
    return statuses


def pack_trainer(configs: Sequence[TrainConfig | dict[str, Any]], data: Any = None,
                 options: PackOptions | None = None) -> _Pack:
    """The vectorised trainer of ``configs`` without run folders (benchmarks, notebooks):
    ``.train_step()`` updates every member once, ``.step`` counts the updates,
    ``.flush_window()`` gives each member's mean logs, ``.close()`` stops its batch thread.
    ``data`` optionally replaces the configs' data set with a GroundTruthData object."""
    cfgs = [resolved_config(c) for c in configs]
    keys = {pack_key(c) for c in cfgs}
    if None in keys or len(keys) != 1:
        raise DislabError("pack_trainer needs configs that share one pack_key.")
    data = data if data is not None else _load_data(cfgs[0])
    options = (options or PackOptions()).validate()
    members = [_build_member(c, data, False) for c in cfgs]
    tr0 = members[0].trainer
    grid = _device_grid(options, data, tr0.device, tr0.batch_kind, progress=False)
    pack = _Pack(members, options, grid)
    pack.owns_members = True
    return pack


def _member_paths(members: list[_Member], options: PackOptions,
                  grid: DeviceGrid | None) -> list[str]:
    """Each member's batch path, ``"host"`` or ``"device"``: a new member's is the pack's
    (``"device"`` when ``grid`` is set), a resumed member's is its checkpoint's, so that it
    continues exactly (a DislabError when ``options.data`` asked for the other path)."""
    pack_path = "device" if grid is not None else "host"
    out = []
    for m in members:
        path = m.resumed_kind or pack_path
        if path != pack_path and options.data != "auto":
            raise DislabError(
                f"The run {m.cfg.out!r} was checkpointed with its batches drawn on the {path} "
                f"path, but this pack draws them on the {pack_path} path (PackOptions(data="
                f"{options.data!r})); a run resumes exactly only on its own path. Resume it "
                f"with data='auto' (each member keeps its path), or delete its checkpoint "
                "folder to train it again.")
        out.append(path)
    return out


def _build_member(cfg: TrainConfig, data: Any, resuming: bool) -> _Member:
    """The member's template trainer (built as ``fit`` builds it: same seeds, same initial
    weights) and its generators, restored from its checkpoint when resuming."""
    build_cfg = TrainConfig.from_dict({**cfg.to_dict(), "compile": False})
    trainer = Trainer(build_cfg, data=data)
    trainer.config = cfg
    cpu_gen = torch.Generator()
    cpu_gen.set_state(torch.get_rng_state())  # after the seed and the weights' initialisation
    gen = cpu_gen
    if trainer.device.type == "cuda":
        gen = torch.Generator(device=trainer.device)
        gen.manual_seed(cfg.seed)
    kind = None
    if resuming:
        path = Path(cfg.out) / CHECKPOINT
        tensors, meta = ckpt.load_tensors(path, "checkpoint")
        kind = batches_kind(meta.get("data_rng"))
        if kind == "device":  # the draws follow from the step: the host source stays unused
            meta = {**meta, "data_rng": trainer.batches.state()}
        trainer.load_state(tensors, meta, str(path))
        cpu_gen.set_state(tensors["rng/torch"])
        if gen is not cpu_gen and "rng/cuda" in tensors:
            gen.set_state(tensors["rng/cuda"])
    return _Member(cfg, trainer, cpu_gen, gen, resumed_kind=kind)


def _train(pack: _Pack, progress: bool) -> None:
    """The loop of ``fit`` over a pack: log, checkpoint, image and heartbeat steps, each
    member's folder written by its :class:`~dislab.train.run_folder.RunFolder`."""
    from tqdm.auto import tqdm

    cfg = pack.cfg0

    def fail_bad() -> None:
        bad = pack.bad_members()
        if not bad:
            return
        for i, (step, value) in bad.items():
            m = pack.members[i]
            m.folder.loss_not_finite(step, value, m.trainer.train_seconds)
            m.folder.close()
        pack.keep([i for i in range(len(pack.members)) if i not in bad])

    bar = tqdm(total=cfg.steps, initial=pack.step, disable=not progress, unit="step",
               dynamic_ncols=True, desc=f"{cfg.model} ×{len(pack.members)}")
    try:
        t_window = time.perf_counter()
        while pack.step < cfg.steps and pack.members:
            pack.train_step()
            bar.update(1)
            step = pack.step
            if step % cfg.log_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - t_window
                n = pack.window_count
                fail_bad()
                logs = pack.flush_window()
                speed = n * pack.images_per_batch / max(elapsed, 1e-9)
                for m, lg in zip(pack.members, logs):
                    m.trainer.train_seconds += elapsed
                    m.folder.log(step, lg, speed)
                if logs:
                    bar.set_postfix(loss=f"{np.mean([lg['loss'] for lg in logs]):.4g}",
                                    img_s=f"{speed * len(logs):.0f}", refresh=False)
                t_window = time.perf_counter()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                t0 = time.perf_counter()
                fail_bad()
                for i in range(len(pack.members)):
                    pack.checkpoint(i)
                t_window += time.perf_counter() - t0
            if cfg.image_every and step % cfg.image_every == 0 and step != cfg.steps:
                t0 = time.perf_counter()
                fail_bad()
                for i, m in enumerate(pack.members):
                    pack._write_template(i)
                    m.folder.write_images(m.trainer.model, m.trainer.data, step)
                t_window += time.perf_counter() - t0
            for m in pack.members:
                m.folder.heartbeat(step)
        fail_bad()
        for i, m in enumerate(pack.members):
            if m.folder.last_good != pack.step:
                pack.checkpoint(i)
            else:
                pack._write_template(i)
            tr = m.trainer
            m.folder.finish(tr.model, tr.data, pack.step, tr.train_seconds)
    except KeyboardInterrupt:
        bad = pack.bad_members()
        for i, m in enumerate(pack.members):
            if i not in bad:
                pack.checkpoint(i)
            m.folder.interrupted(pack.step, m.trainer.train_seconds)
        raise
    except BaseException as e:
        for m in pack.members:
            m.folder.failed(pack.step, f"{type(e).__name__}: {e}", m.trainer.train_seconds)
        raise
    finally:
        bar.close()
        pack.close()
