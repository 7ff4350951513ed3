"""AdamW: Adam with decoupled weight decay (torch.optim.AdamW)."""

from __future__ import annotations

from typing import Any

from .adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    r"""AdamW, as torch.optim.AdamW: :class:`Adam` with ``decoupled_weight_decay=True``.

    The decay shrinks the parameter before the Adam step instead of entering the gradient::

        theta = theta * (1 - lr * weight_decay)
        (then Adam's update, with the moments of the undecayed gradient)

    Args:
        params: Parameters or parameter groups (see :class:`~refcnn.optim.Optimizer`).
        lr (float): learning rate. Default: 1e-3.
        betas (tuple of 2 floats): each in [0, 1). Default: (0.9, 0.999).
        eps (float): added to the denominator. Default: 1e-8.
        weight_decay (float): decoupled weight decay. Default: 1e-2.
        amsgrad (bool): AMSGrad variant. Default: False.
        maximize (bool, keyword-only): ascend instead of descend. Default: False.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)

    def _after_load(self) -> None:
        # as torch's AdamW.__setstate__: a loaded AdamW always decays decoupled
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
