"""Adam (torch.optim.Adam), with PyTorch's L2 or decoupled weight decay and AMSGrad."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.module import Parameter
from .optimizer import Optimizer, _lerp_, _real

__all__ = ["Adam"]


def _check_adam_args(owner: str, lr: Any, betas: Any, eps: Any, weight_decay: Any) -> tuple[float, float]:
    """PyTorch's Adam/AdamW argument checks, in its order and with its messages."""
    for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
        _real(value, name, owner)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{owner}: betas must be a pair of floats, got {betas!r}")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    for i in (0, 1):
        _real(betas[i], f"betas[{i}]", owner)
        if not 0.0 <= betas[i] < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {betas[i]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    # torch accepts floats (or tensors) only, so betas=(0, 0.999) is rejected there too
    if not (isinstance(betas[0], float) and isinstance(betas[1], float)):
        raise ValueError(f"betas must be either both floats or both Tensors, got {tuple(betas)!r}")
    return float(betas[0]), float(betas[1])


class Adam(Optimizer):
    r"""Adam, as torch.optim.Adam (PyTorch's single-tensor algorithm, in its order).

    Each step t = 1, 2, ... for a parameter theta with gradient g::

        g = -g                                      if maximize
        if weight_decay != 0:
            theta = theta * (1 - lr * weight_decay)  if decoupled_weight_decay (AdamW)
            g = g + weight_decay * theta             otherwise (L2 penalty)
        m = lerp(m, g, 1 - beta1)                   (= beta1 * m + (1 - beta1) * g)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                       if amsgrad (then v_max replaces v below)
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        theta = theta - (lr / (1 - beta1**t)) * m / denom

    Args:
        params: Parameters or parameter groups (see :class:`Optimizer`).
        lr (float): learning rate. Default: 1e-3.
        betas (tuple of 2 floats): decay rates of the moment averages, each in [0, 1).
            Default: (0.9, 0.999).
        eps (float): added to the denominator. Default: 1e-8.
        weight_decay (float): weight decay. Default: 0.
        amsgrad (bool): use the running maximum of v (AMSGrad). Default: False.
        maximize (bool, keyword-only): ascend instead of descend. Default: False.
        decoupled_weight_decay (bool, keyword-only): AdamW's decay. Default: False.

    State (per parameter): ``step`` (float), ``exp_avg``, ``exp_avg_sq``, and
    ``max_exp_avg_sq`` with amsgrad.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.Adam.html
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        owner = type(self).__name__
        beta_pair = _check_adam_args(owner, lr, betas, eps, weight_decay)
        defaults = {
            "lr": lr,
            "betas": beta_pair,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _update(self, p: Parameter, grad: np.ndarray, group: dict[str, Any]) -> None:
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        param = p.data
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0.0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

        if group["maximize"]:
            grad = -grad
        state["step"] = step = float(state["step"]) + 1.0
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param

        _lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += ((1 - beta2) * grad) * grad

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5

        if group["amsgrad"]:
            max_exp_avg_sq = state.setdefault("max_exp_avg_sq", np.zeros_like(param))
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt
        else:
            denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt
        denom += eps
        param += (-step_size * exp_avg) / denom
