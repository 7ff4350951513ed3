"""Loss modules, as torch.nn's: CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, SmoothL1Loss,
BCELoss, BCEWithLogitsLoss.

``loss = criterion(input, target)`` returns a Python float for ``reduction='mean'|'sum'``
and an ndarray for ``'none'``, and caches what the backward needs; ``criterion.backward(
grad=1.0)`` takes the gradient of that output (an array of the loss's shape for ``'none'``)
and returns dL/dinput in the input's dtype. Each forward serves one backward.

Constructor arguments keep PyTorch's names and defaults. PyTorch's deprecated
``size_average`` and ``reduce`` are not taken, so every argument after ``weight`` is
keyword-only: a positional argument that torch would read as ``size_average`` is an error
here, not a silently different loss. A ``weight`` (and BCEWithLogitsLoss's ``pos_weight``)
is a buffer, so ``state_dict()`` has PyTorch's keys and ``.to(dtype)`` converts it; it must
have the input's dtype. The math and the input checks are the kernels'
(``refcnn.kernels.loss`` and ``refcnn.kernels.pointwise_loss``); the modules check their
own arguments at construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels._checks import FLOAT_DTYPES
from ..kernels.loss import check_ignore_index, check_label_smoothing, check_reduction
from .module import KernelModule

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss"]


def _float_array(owner: str, name: str, value: Any, ndim: int | None = None) -> np.ndarray | None:
    """None, or a float32/float64 ndarray (of ``ndim`` dimensions if given), as is."""
    if value is None:
        return None
    what = (
        "a 1-D float32 or float64 numpy array (one entry per class)"
        if ndim == 1
        else "a float32 or float64 numpy array"
    )
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{owner}: {name} must be {what} or None, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: {name} must be {what} or None, got dtype {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{owner}: {name} must be {what} or None, got shape {value.shape}")
    return value


class _Loss(KernelModule):
    """What every loss shares: ``reduction``, the float/array result, and ``backward(grad)``."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def _explain_rejection(self, x: Any) -> None:
        """A weight of another dtype than the input: say which, and how to fix it."""
        for name, b in self._buffers.items():
            if b is not None and isinstance(x, np.ndarray) and x.dtype in FLOAT_DTYPES and b.dtype != x.dtype:
                raise TypeError(
                    f"{type(self).__name__} holds a {b.dtype} {name} but got a {x.dtype} input: convert the "
                    f"input (x.astype(np.{b.dtype})) or the loss (.to(np.{x.dtype}))"
                )

    def _run(self, op: str, *args: Any, **config: Any) -> Any:
        loss = self._run_kernel(op, *args, reduction=self.reduction, **config)[0]
        return loss if self.reduction == "none" else float(loss)

    def backward(self, grad: Any = 1.0) -> np.ndarray:  # type: ignore[override]
        """dL/dinput, given ``grad`` = dL/d(this loss's output): a number for 'mean'/'sum'
        (default 1.0), an array of the loss's shape and dtype for 'none'. A rejected grad
        does not use up the forward."""
        call = self._peek_ctx()
        return np.asarray(super().backward(self._grad_array(grad, call.shape, call.dtype)))

    def _grad_array(self, grad: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        owner = f"{type(self).__name__}(reduction={self.reduction!r}).backward"
        if isinstance(grad, np.ndarray):
            if grad.dtype != dtype:
                raise TypeError(f"{owner}: grad must have the loss's dtype {dtype}, got {grad.dtype}")
            out = grad
        elif isinstance(grad, (int, float, np.integer, np.floating)) and not isinstance(grad, (bool, np.bool_)):
            out = np.asarray(grad, dtype=dtype)
        else:
            raise TypeError(f"{owner}: grad must be a number or a numpy array, got {type(grad).__name__}")
        if out.shape != shape:
            # as torch's loss.backward(): a non-scalar loss needs a gradient of its own shape
            raise ValueError(f"{owner}: grad must have the loss's shape {shape}, got {out.shape}")
        return out


class CrossEntropyLoss(_Loss):
    """Cross entropy between logits and class indices or class probabilities.

    Args:
        weight: per-class rescaling, a float ndarray of shape (C,), or None (default: all 1).
        ignore_index: targets equal to it count for nothing (class-index targets only;
            default -100).
        reduction: 'none' | 'mean' | 'sum' (default 'mean'). 'mean' divides by the summed
            weights of the counted targets (by the number of samples for probabilities).
        label_smoothing: eps in [0, 1] (default 0.0): the target becomes
            (1 - eps) * target + eps / C.

    Shape:
        input (N, C), (N, C, d1, ...) or (C,); target (N,), (N, d1, ...) or () of int64
        (uint8 for (N,) and ()), or class probabilities of the input's shape and dtype;
        output a float, or an array of shape (N, d1, ...) for 'none'.

    https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html
    """

    def __init__(
        self,
        weight: np.ndarray | None = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction)
        owner = type(self).__name__
        check_ignore_index(owner, ignore_index)
        check_label_smoothing(owner, label_smoothing)
        self.register_buffer("weight", _float_array(owner, "weight", weight, ndim=1))
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: np.ndarray, target: np.ndarray) -> Any:
        return self._run(
            "cross_entropy",
            input,
            target,
            self.weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (e.g. a LogSoftmax's output) and class indices.

    Args:
        weight: per-class rescaling, a float ndarray of shape (C,), or None (default).
        ignore_index: targets equal to it count for nothing (default -100).
        reduction: 'none' | 'mean' | 'sum' (default 'mean'); 'mean' divides by the summed
            weights of the counted targets.

    Shape: as CrossEntropyLoss with class-index targets.

    https://pytorch.org/docs/stable/generated/torch.nn.NLLLoss.html
    """

    def __init__(self, weight: np.ndarray | None = None, *, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        owner = type(self).__name__
        check_ignore_index(owner, ignore_index)
        self.register_buffer("weight", _float_array(owner, "weight", weight, ndim=1))
        self.ignore_index = int(ignore_index)

    def forward(self, input: np.ndarray, target: np.ndarray) -> Any:
        return self._run("nll_loss", input, target, self.weight, ignore_index=self.ignore_index)


class MSELoss(_Loss):
    """Squared error (x - y)**2, elementwise.

    Args:
        reduction: 'none' | 'mean' | 'sum' (default 'mean').

    Shape: input any shape; target the same shape and dtype; output a float, or the
    input's shape for 'none'.

    https://pytorch.org/docs/stable/generated/torch.nn.MSELoss.html
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, input: np.ndarray, target: np.ndarray) -> Any:
        return self._run("mse_loss", input, target)


class L1Loss(_Loss):
    """Absolute error |x - y|, elementwise (gradient sign(x - y), 0 where x == y).

    Args:
        reduction: 'none' | 'mean' | 'sum' (default 'mean').

    Shape: as MSELoss.

    https://pytorch.org/docs/stable/generated/torch.nn.L1Loss.html
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, input: np.ndarray, target: np.ndarray) -> Any:
        return self._run("l1_loss", input, target)


class SmoothL1Loss(_Loss):
    """0.5 * d**2 / beta where |d| < beta, |d| - 0.5 * beta elsewhere (d = x - y).

    Args:
        reduction: 'none' | 'mean' | 'sum' (default 'mean').
        beta: the threshold between the quadratic and the linear part, >= 0 (default 1.0;
            0 gives L1Loss).

    Shape: as MSELoss.

    https://pytorch.org/docs/stable/generated/torch.nn.SmoothL1Loss.html
    """

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        # PyTorch raises this at the first call; refcnn at construction.
        if not isinstance(beta, (int, float, np.integer, np.floating)) or isinstance(beta, bool) or not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be a float >= 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, input: np.ndarray, target: np.ndarray) -> Any:
        return self._run("smooth_l1_loss", input, target, beta=self.beta)


class BCELoss(_Loss):
    """Binary cross entropy of probabilities: -w * (y log x + (1 - y) log(1 - x)), each log
    clamped at -100 as PyTorch does.

    Args:
        weight: rescaling that broadcasts to the input, a float ndarray, or None (default).
        reduction: 'none' | 'mean' | 'sum' (default 'mean').

    Shape: input any shape, values in [0, 1]; target the same shape and dtype, values in
    [0, 1]; output a float, or the input's shape for 'none'.

    https://pytorch.org/docs/stable/generated/torch.nn.BCELoss.html
    """

    def __init__(self, weight: np.ndarray | None = None, *, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _float_array(type(self).__name__, "weight", weight))

    def forward(self, input: np.ndarray, target: np.ndarray) -> Any:
        return self._run("binary_cross_entropy", input, target, self.weight)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy of logits, in the stable log-sigmoid form:
    w * ((1 - y) * x - (1 + (p - 1) * y) * logsigmoid(x)).

    Args:
        weight: rescaling that broadcasts to the input, a float ndarray, or None (default).
        reduction: 'none' | 'mean' | 'sum' (default 'mean').
        pos_weight: weight p of the positive examples, broadcast to the input (typically
            shape (C,) for the last axis), a float ndarray, or None (default).

    Shape: input any shape; target the same shape and dtype; output a float, or the
    input's shape for 'none'.

    https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html
    """

    def __init__(
        self, weight: np.ndarray | None = None, *, reduction: str = "mean", pos_weight: np.ndarray | None = None
    ) -> None:
        super().__init__(reduction)
        owner = type(self).__name__
        self.register_buffer("weight", _float_array(owner, "weight", weight))
        self.register_buffer("pos_weight", _float_array(owner, "pos_weight", pos_weight))

    def forward(self, input: np.ndarray, target: np.ndarray) -> Any:
        return self._run("binary_cross_entropy_with_logits", input, target, self.weight, self.pos_weight)
