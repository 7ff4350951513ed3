"""Adagrad (torch.optim.Adagrad)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.module import Parameter
from .optimizer import Optimizer, _real

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad, as torch.optim.Adagrad (PyTorch's single-tensor algorithm, in its order).

    Each step t = 1, 2, ... for a parameter theta with gradient g::

        g = -g                                    if maximize
        g = g + weight_decay * theta              if weight_decay != 0
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g                             (s starts at initial_accumulator_value)
        theta = theta - clr * g / (sqrt(s) + eps)

    As in PyTorch, the state of every parameter given to the constructor is created there
    (``step`` 0, ``sum`` filled with ``initial_accumulator_value``); a parameter added later
    gets it at its first step, filled with the constructor's value (not its group's).

    Args:
        params: Parameters or parameter groups (see :class:`Optimizer`).
        lr (float): learning rate. Default: 1e-2.
        lr_decay (float): learning-rate decay. Default: 0.
        weight_decay (float): L2 penalty. Default: 0.
        initial_accumulator_value (float): initial value of the sum of squares. Default: 0.
        eps (float): added to the denominator. Default: 1e-10.
        maximize (bool, keyword-only): ascend instead of descend. Default: False.

    State (per parameter): ``step`` (float), ``sum``.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.Adagrad.html
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        for name, value in (
            ("lr", lr), ("lr_decay", lr_decay), ("weight_decay", weight_decay),
            ("initial_accumulator_value", initial_accumulator_value), ("eps", eps),
        ):  # fmt: skip
            _real(value, name, "Adagrad")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, initial_accumulator_value)

    def _init_state(self, p: Parameter, initial_accumulator_value: float) -> None:
        state = self.state[p]
        state["step"] = 0.0
        state["sum"] = np.full_like(p.data, initial_accumulator_value)

    def _update(self, p: Parameter, grad: np.ndarray, group: dict[str, Any]) -> None:
        lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        param = p.data
        if len(self.state[p]) == 0:
            self._init_state(p, self.defaults["initial_accumulator_value"])
        state = self.state[p]
        state["step"] = step = float(state["step"]) + 1.0
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * param
        clr = lr / (1 + (step - 1) * lr_decay)
        state_sum = state["sum"]
        state_sum += grad * grad
        std = np.sqrt(state_sum)
        std += eps
        param += (-clr * grad) / std
