"""Stochastic gradient descent, optionally with momentum (torch.optim.SGD)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.module import Parameter
from .optimizer import Optimizer, _real

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as torch.optim.SGD.

    Each step, for a parameter theta with gradient g (PyTorch's single-tensor algorithm, in
    its order of operations)::

        g = -g                               if maximize
        g = g + weight_decay * theta         if weight_decay != 0
        if momentum != 0:
            b = g (a copy)                   on the first step
            b = momentum * b + (1 - dampening) * g    afterwards
            g = g + momentum * b             if nesterov, else g = b
        theta = theta - lr * g

    Args:
        params: Parameters or parameter groups (see :class:`Optimizer`).
        lr (float): learning rate. Default: 1e-3 (PyTorch 2.x's default).
        momentum (float): momentum factor. Default: 0.
        dampening (float): dampening of the momentum. Default: 0.
        weight_decay (float): L2 penalty. Default: 0.
        nesterov (bool): Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
            Default: False.
        maximize (bool, keyword-only): ascend instead of descend. Default: False.

    State (per parameter, only when momentum != 0): ``momentum_buffer``.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.SGD.html
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        for name, value in (
            ("lr", lr),
            ("momentum", momentum),
            ("dampening", dampening),
            ("weight_decay", weight_decay),
        ):
            _real(value, name, "SGD")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def _update(self, p: Parameter, grad: np.ndarray, group: dict[str, Any]) -> None:
        lr, weight_decay = float(group["lr"]), float(group["weight_decay"])
        momentum, dampening = float(group["momentum"]), float(group["dampening"])
        param = p.data
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * param
        if momentum != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = np.array(grad, copy=True)
                state["momentum_buffer"] = buf
            else:
                buf *= momentum
                buf += grad if dampening == 0 else (1 - dampening) * grad  # 1 * grad is grad: one pass less
            grad = grad + momentum * buf if group["nesterov"] else buf
        param -= lr * grad
