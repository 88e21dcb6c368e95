"""Speed: the training loop's execution options, and net swaps that compute the same function.

None of these change what is computed beyond float rounding: same parameters, same random
numbers, same checkpoints (docs/training.md; benchmarks/train_throughput.py measures them).

The loop's options (:class:`dislab.train.Trainer` applies them from the config):

* :func:`resolve_device` - ``"auto"`` and clear errors for a missing CUDA / MPS;
* :func:`use_channels_last` - channels-last memory format for image models;
* :func:`fused_adam` - the same Adam with PyTorch's fused kernel;
* :func:`compile_loss` / :func:`uncompile_loss` - ``torch.compile`` of the method's loss
  (:func:`compiler_available` says whether it can run here);
* :func:`set_deterministic` / :func:`restore_determinism` - deterministic kernels;
* :func:`tune_malloc` - glibc keeps freed memory instead of returning it every step.

:func:`accelerate` swaps sub-modules for equivalents that compute the same function (up to
float rounding) with the *same* ``Parameter`` objects under the same names, so ``state_dict``
keys, checkpoints and weights files are unchanged and a model trained with it loads into the
plain nets.

* :class:`SubPixelConvTranspose2d`: a ``ConvTranspose2d(k=4, s=2, p=1)`` with few output
  channels (the decoder's last layer, 32 -> C=1 or 3 channels at 64×64) becomes one 2×2
  convolution to ``4·C`` channels followed by an interleave ("sub-pixel" form). oneDNN runs
  the transposed convolution to one channel at a small fraction of its peak; the 2×2 form is a
  regular convolution with 4·C outputs.

Derivation (one spatial axis): ``y[2i + a] = Σ_j x[j] w[2(i - j) + a + 1]``, so the even
outputs (a = 0) use ``x[i-1]·w[3] + x[i]·w[1]`` and the odd ones (a = 1) ``x[i]·w[2] +
x[i+1]·w[0]``. A 2×2 convolution over ``x`` padded by one gives at position ``p`` the pair
``(x[p-1], x[p])``: phase 0 is its output at ``p = i`` with taps (3, 1), phase 1 at ``p = i+1``
with taps (2, 0). Both axes: four phases, ``4·C`` output channels.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dislab.errors import DislabError

__all__ = [
    "SubPixelConvTranspose2d",
    "accelerate",
    "tune_malloc",
    "resolve_device",
    "use_channels_last",
    "fused_adam",
    "compiler_available",
    "compile_loss",
    "uncompile_loss",
    "DeterminismState",
    "set_deterministic",
    "restore_determinism",
]

_TAPS = ((3, 1), (2, 0))  # kernel taps of phase 0 and phase 1 (see the module docstring)


class SubPixelConvTranspose2d(nn.Module):
    """``ConvTranspose2d(in, out, 4, stride=2, padding=1)`` as a 2×2 conv + interleave.

    Holds the original ``weight`` ``(in, out, 4, 4)`` and ``bias`` ``(out,)`` parameters.
    Input ``(B, in, H, W)`` -> output ``(B, out, 2H, 2W)``.
    """

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        # gather index over the flattened 4x4 kernel for each phase (a, b) and tap (r, s)
        flat = [[_TAPS[a][r] * 4 + _TAPS[b][s] for r in range(2) for s in range(2)]
                for a in range(2) for b in range(2)]
        self.register_buffer("_index", torch.tensor(flat, dtype=torch.long), persistent=False)

    def _conv_weight(self) -> torch.Tensor:
        w = self.weight.flatten(2)  # (in, out, 16)
        g = w[:, :, self._index.flatten()]  # (in, out, 4 phases * 4 taps)
        g = g.view(self.in_channels, self.out_channels, 4, 2, 2)
        return g.permute(2, 1, 0, 3, 4).reshape(4 * self.out_channels, self.in_channels, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        c = self.out_channels
        y = F.conv2d(x, self._conv_weight(), None, padding=1)  # (B, 4c, h+1, w+1)
        y = y.view(b, 2, 2, c, h + 1, w + 1)
        rows = [torch.stack([y[:, a, bb, :, a:a + h, bb:bb + w] for bb in range(2)], dim=-1)
                for a in range(2)]  # each (B, c, h, w, 2)
        out = torch.stack(rows, dim=3).reshape(b, c, 2 * h, 2 * w)  # (B, c, h, 2, w, 2)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=4, stride=2, padding=1"


def _eligible(m: nn.Module, max_out: int) -> bool:
    return (isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (4, 4)
            and m.stride == (2, 2) and m.padding == (1, 1) and m.output_padding == (0, 0)
            and m.dilation == (1, 1) and m.groups == 1 and m.out_channels <= max_out)


def accelerate(model: nn.Module, max_out: int = 4, inplace_relu: bool = True) -> int:
    """Swap eligible sub-modules of ``model`` in place; returns how many were swapped.

    Only transposed convolutions with at most ``max_out`` output channels are swapped (where
    the sub-pixel form was measured faster; wider layers run well as they are). With
    ``inplace_relu``, a ``ReLU`` that directly follows a convolution or linear layer in a
    ``Sequential`` runs in place (those layers' backward passes do not need their outputs,
    so this saves one activation-sized buffer per layer; autograd would refuse otherwise).
    """
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _eligible(child, max_out):
                setattr(parent, name, SubPixelConvTranspose2d(child))
                swapped += 1
    if inplace_relu:
        producers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, SubPixelConvTranspose2d)
        for seq in model.modules():
            if isinstance(seq, nn.Sequential):
                layers = list(seq)
                for prev, layer in zip(layers, layers[1:]):
                    if type(layer) is nn.ReLU and isinstance(prev, producers):
                        layer.inplace = True
    return swapped


_MALLOC_TUNED = False


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS (Linux only).

    PyTorch's CPU allocator uses ``malloc``; glibc serves blocks above 128 KiB-32 MiB with a
    fresh ``mmap`` and unmaps them on ``free``, so every activation and gradient of every
    step is page-faulted in again (docs/training.md has the measured cost per step of the
    study's β-VAE at batch 64). Raising the mmap and trim thresholds with
    ``mallopt`` makes the allocations reuse heap memory: the process keeps its peak memory
    instead of returning it between steps. Process-wide and idempotent; returns whether it
    was applied.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = bool(mallopt(m_mmap_threshold, 1 << 30)) or bool(mallopt(m_mmap_threshold, 32 << 20))
    ok = bool(mallopt(m_trim_threshold, (1 << 31) - 1)) and ok
    _MALLOC_TUNED = ok
    return ok


# -- the loop's options --------------------------------------------------------------------
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


def use_channels_last(option: bool | str, observation_shape: tuple[int, ...],
                      device: torch.device) -> bool:
    """Whether a model runs channels-last: ``option`` True/False, or ``"auto"``: images
    (``(C, H, W)`` observations) on any device but MPS."""
    return bool(option is True or (option == "auto" and len(observation_shape) == 3
                                   and device.type != "mps"))


def fused_adam(opt: torch.optim.Optimizer, device: torch.device) -> torch.optim.Optimizer:
    """The same Adam (same groups and hyper-parameters) with PyTorch's fused kernel; any other
    optimiser, or one that cannot be fused here, is returned as it is."""
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


def compile_loss(model: nn.Module, required: bool = False) -> Callable[..., object] | None:
    """Replace ``model.loss`` by its ``torch.compile`` form; returns the eager loss (for
    :func:`uncompile_loss`), or ``None`` when the compiler cannot run here (a DislabError if
    ``required``). Random numbers come from the eager generator (inductor's
    ``fallback_random``): the same samples as eager, so resume stays exact."""
    if not compiler_available():
        if required:
            raise DislabError("compile=true but torch.compile cannot run here (no C++ "
                              "compiler or unsupported platform); set compile to false "
                              "or \"auto\".")
        return None
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    eager = model.loss
    model.loss = torch.compile(eager)  # type: ignore[method-assign]
    return eager  # type: ignore[no-any-return]


def uncompile_loss(model: nn.Module, eager: Callable[..., object], err: BaseException) -> None:
    """Put the eager loss back after ``torch.compile`` failed with ``err``, with a warning."""
    model.loss = eager  # type: ignore[method-assign]
    warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); training "
                  "continues without compilation (set compile=false to skip trying).",
                  stacklevel=2)


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
