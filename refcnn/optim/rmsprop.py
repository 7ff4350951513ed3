"""RMSprop (torch.optim.RMSprop), plain, centered and with momentum."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.module import Parameter
from .optimizer import Optimizer, _lerp_, _real

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop, as torch.optim.RMSprop (PyTorch's single-tensor algorithm, in its order).

    Each step for a parameter theta with gradient g::

        g = -g                                    if maximize
        g = g + weight_decay * theta              if weight_decay != 0
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = lerp(a, g, 1 - alpha)             (= alpha * a + (1 - alpha) * g)
            avg = sqrt(v - a * a) + eps
        else:
            avg = sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / avg            (b starts at zero)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / avg

    Args:
        params: Parameters or parameter groups (see :class:`Optimizer`).
        lr (float): learning rate. Default: 1e-2.
        alpha (float): smoothing constant. Default: 0.99.
        eps (float): added to the denominator. Default: 1e-8.
        weight_decay (float): L2 penalty. Default: 0.
        momentum (float): momentum factor. Default: 0.
        centered (bool): normalise by the estimated variance of the gradient. Default: False.
        maximize (bool, keyword-only): ascend instead of descend. Default: False.

    State (per parameter): ``step`` (float), ``square_avg``, ``momentum_buffer`` (if
    momentum > 0), ``grad_avg`` (if centered).

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.RMSprop.html
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        for name, value in (
            ("lr", lr),
            ("alpha", alpha),
            ("eps", eps),
            ("weight_decay", weight_decay),
            ("momentum", momentum),
        ):
            _real(value, name, "RMSprop")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update(self, p: Parameter, grad: np.ndarray, group: dict[str, Any]) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        param = p.data
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0.0
            state["square_avg"] = np.zeros_like(param)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param)
        square_avg = state["square_avg"]

        if group["maximize"]:
            grad = -grad
        state["step"] = float(state["step"]) + 1.0
        if weight_decay != 0:
            grad = grad + weight_decay * param

        square_avg *= alpha
        square_avg += ((1 - alpha) * grad) * grad
        if group["centered"]:
            grad_avg = state.setdefault("grad_avg", np.zeros_like(param))
            _lerp_(grad_avg, grad, 1 - alpha)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += eps

        if momentum > 0:
            buf = state.setdefault("momentum_buffer", np.zeros_like(param))
            buf *= momentum
            buf += grad / avg
            param -= lr * buf
        else:
            param += (-lr * grad) / avg
