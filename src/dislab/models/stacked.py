"""K models of one architecture run as one vectorised model (inference only).

:class:`StackedEncoder` stacks the parameters and buffers of ``K`` modules of the same class
and shapes (``torch.func.stack_module_state``) and maps one copy of the module over them with
``torch.func.vmap`` + ``functional_call`` (the model-ensembling recipe of the PyTorch
``torch.func`` tutorial "Model ensembling"). A convolution over stacked weights becomes one
grouped convolution and a linear layer one batched matrix product, so ``K`` encoders cost the
kernel launches of one: what makes scoring dozens of models per GPU cheap
(:mod:`dislab.representation.many`).

>>> enc = StackedEncoder([model_a, model_b, model_c])      # same class and shapes
>>> mean, logvar = enc(x)       # x (B, C, H, W) -> mean, logvar (3, B, latent_dim)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dislab.errors import DislabError

__all__ = ["StackedEncoder", "stack_key"]


class _Call(nn.Module):
    """Calls ``module.<method>`` as ``forward`` (``functional_call`` calls ``forward``)."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.m = module
        self.method = method

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.m, self.method)(x)


def stack_key(model: nn.Module) -> tuple:
    """Models with equal keys can be stacked: class, and the name, shape and dtype of every
    parameter and buffer."""
    state = list(model.named_parameters()) + list(model.named_buffers())
    return (type(model).__module__, type(model).__qualname__,
            tuple((n, tuple(t.shape), str(t.dtype)) for n, t in state))


def _split(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out[0], out[1]
    return out, None


class StackedEncoder:
    """The ``method`` (default ``encode``; ``representation`` also works) of ``K`` models,
    vectorised over the models.

    ``models``: modules of one class with the same parameter and buffer shapes (see
    :func:`stack_key`), on one device. Their weights are copied (stacked) once: later
    changes to the models are not seen. Calls run in eval mode without autograd.
    """

    def __init__(self, models: Sequence[nn.Module], method: str = "encode") -> None:
        models = list(models)
        if not models:
            raise DislabError("StackedEncoder needs at least one model.")
        keys = {stack_key(m) for m in models}
        if len(keys) != 1:
            raise DislabError("StackedEncoder: the models differ in class or parameter shapes; "
                              "only models of one architecture can be stacked (group them "
                              "with dislab.models.stacked.stack_key).")
        devices = {p.device for m in models for p in list(m.parameters()) + list(m.buffers())}
        if len(devices) > 1:
            raise DislabError(f"StackedEncoder: the models are on several devices {devices}; "
                              "move them to one.")
        if not hasattr(models[0], method):
            raise DislabError(f"StackedEncoder: {type(models[0]).__name__} has no {method!r}.")
        self.models = models
        self.method = method
        with torch.no_grad():
            params, buffers = torch.func.stack_module_state(models)
        self.params = {f"m.{k}": v.detach() for k, v in params.items()}
        self.buffers = {f"m.{k}": v.detach() for k, v in buffers.items()}
        base = copy.deepcopy(models[0]).to("meta").eval()
        self._call = _Call(base, method)

    def __len__(self) -> int:
        return len(self.models)

    def _one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
             x: torch.Tensor) -> Any:
        return torch.func.functional_call(self._call, (params, buffers), (x,))

    def __call__(self, x: torch.Tensor, per_model: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x``: ``(B, *obs)``, seen by every model, or with ``per_model`` ``(K, B, *obs)``,
        one batch per model -> ``(mean (K, B, d), logvar (K, B, d) or None)``."""
        if per_model and (x.dim() < 2 or x.shape[0] != len(self)):
            raise DislabError(f"StackedEncoder: per_model needs a (K={len(self)}, B, ...) "
                              f"batch, got shape {tuple(x.shape)}.")
        in_x = 0 if per_model else None
        with torch.inference_mode():
            out = torch.func.vmap(self._one, in_dims=(0, 0, in_x))(self.params, self.buffers, x)
        mean, logvar = _split(out)
        return mean.reshape(mean.shape[0], mean.shape[1], -1), (
            None if logvar is None else logvar.reshape(logvar.shape[0], logvar.shape[1], -1))

    def each(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The same result computed model by model (the reference :meth:`__call__` is
        checked against)."""
        means, logvars = [], []
        with torch.inference_mode():
            for m in self.models:
                was = m.training
                m.eval()
                try:
                    mean, logvar = _split(getattr(m, self.method)(x))
                finally:
                    m.train(was)
                means.append(mean.reshape(mean.shape[0], -1))
                logvars.append(None if logvar is None else logvar.reshape(logvar.shape[0], -1))
        lv = None if any(v is None for v in logvars) else torch.stack(logvars)  # type: ignore[misc]
        return torch.stack(means), lv

    def agrees(self, x: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
        """Whether the vectorised call matches :meth:`each` on ``x`` (``(B, *obs)``)."""
        a, b = self(x), self.each(x)
        for u, v in zip(a, b):
            if (u is None) != (v is None):
                return False
            if u is not None and not torch.allclose(u, v, rtol=rtol, atol=atol):
                return False
        return True
