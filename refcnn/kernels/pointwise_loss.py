"""Pointwise loss kernels: mse_loss, l1_loss, smooth_l1_loss, binary_cross_entropy and
binary_cross_entropy_with_logits.

``input`` and ``target`` have one shape (any, 0-d too) and one dtype; each element gives one
loss, reduced as every loss in loss.py (``reduction``: ``'none'``, ``'sum'`` or ``'mean'``
over all the elements). Every op's backward is the same: the saved slope dloss_i/dinput_i
times the upstream gradient, scaled by the reduction. The gradients at kinks are autograd's
(``sign(0) = 0``) and BCE clamps its logs at -100, as PyTorch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import registry
from ._checks import check_float, check_same_dtype
from .loss import _is_real, _reduce, _scale, check_reduction

# PyTorch clamps BCE's logs at -100, so that log(0) costs 100, not inf, and the backward
# divides by max(x * (1 - x), EPSILON), so that x in {0, 1} gives a finite slope. Its
# EPSILON is a C++ float 1e-12, i.e. 9.999999960041972e-13 in float64 too.
BCE_LOG_CLAMP = -100.0
BCE_EPSILON = float(np.float32(1e-12))


# ---- validation ------------------------------------------------------------------------------
def _check_broadcast(op: str, name: str, a: Any, shape: tuple[int, ...]) -> None:
    """``a`` (None, or a float array) broadcasts to ``shape`` without growing it."""
    if a is None:
        return
    check_float(op, name, a)
    try:
        ok = np.broadcast_shapes(a.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{op}: {name} of shape {a.shape} does not broadcast to the input's shape {shape}")


def _check_same_shape(op: str, input: Any, target: Any) -> None:
    check_float(op, "input", input)
    check_float(op, "target", target)
    # PyTorch broadcasts a mis-shaped target for mse/l1/smooth_l1 with a warning that the
    # result "will likely be incorrect", and rejects it for the BCEs: refcnn rejects it always.
    if target.shape != input.shape:
        raise ValueError(f"{op}: target must have the input's shape {input.shape}, got {target.shape}")


def _validate_pointwise(op: str) -> Any:
    def validate(input: Any, target: Any, *, reduction: Any) -> None:
        _check_same_shape(op, input, target)
        check_reduction(op, reduction)
        check_same_dtype(op, input=input, target=target)

    validate.__name__ = f"validate_{op}"
    return validate


def validate_smooth_l1_loss(input: Any, target: Any, *, reduction: Any, beta: Any) -> None:
    op = "smooth_l1_loss"
    _validate_pointwise(op)(input, target, reduction=reduction)
    if not _is_real(beta) or not float(beta) >= 0.0:
        raise ValueError(f"{op}: beta must be a float >= 0, got {beta!r}")


def validate_binary_cross_entropy(input: Any, target: Any, weight: Any, *, reduction: Any) -> None:
    op = "binary_cross_entropy"
    _check_same_shape(op, input, target)
    check_reduction(op, reduction)
    _check_broadcast(op, "weight", weight, input.shape)
    check_same_dtype(op, input=input, target=target, weight=weight)
    for name, a in (("input", input), ("target", target)):
        bad = ~((a >= 0) & (a <= 1))  # nan is bad too, as in PyTorch's check
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{op}: every element of {name} must be a probability in [0, 1], got {float(a[where])} at index {where}"
            )


def validate_binary_cross_entropy_with_logits(
    input: Any, target: Any, weight: Any, pos_weight: Any, *, reduction: Any
) -> None:
    op = "binary_cross_entropy_with_logits"
    _check_same_shape(op, input, target)
    check_reduction(op, reduction)
    _check_broadcast(op, "weight", weight, input.shape)
    _check_broadcast(op, "pos_weight", pos_weight, input.shape)
    check_same_dtype(op, input=input, target=target, weight=weight, pos_weight=pos_weight)


# ---- pointwise regression losses ------------------------------------------------------------------
class PointwiseCtx(NamedTuple):
    slope: np.ndarray  # d loss_j / d input_j, elementwise
    reduction: str
    divisor: int


def _pointwise_backward(
    grad_loss: np.ndarray, ctx: PointwiseCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray]:
    with np.errstate(over="ignore"):  # a product past float's range is inf, silently as PyTorch
        return (np.asarray(_scale(grad_loss, ctx.reduction, ctx.divisor) * ctx.slope, dtype=ctx.slope.dtype),)


def mse_loss_forward(input: np.ndarray, target: np.ndarray, *, reduction: str) -> tuple[np.ndarray, PointwiseCtx]:
    """Squared error, PyTorch's ``F.mse_loss``. input, target: any shape, the same.

        loss_j = (x_j - y_j)**2;  mean = sum_j loss_j / numel (nan for an empty input)
    Backward: dL/dx_j = 2 * (x_j - y_j) * g_j.
    """
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: nan; past float's range: inf; silently as PyTorch
        d = input - target
        square, slope = d * d, 2 * d
    return _reduce(square, reduction, d.size), PointwiseCtx(slope, reduction, d.size)


def l1_loss_forward(input: np.ndarray, target: np.ndarray, *, reduction: str) -> tuple[np.ndarray, PointwiseCtx]:
    """Absolute error, PyTorch's ``F.l1_loss``. input, target: any shape, the same.

        loss_j = |x_j - y_j|
    Backward: dL/dx_j = sign(x_j - y_j) * g_j, with autograd's sign of abs: (d > 0) - (d < 0),
    so sign(0) = 0 and sign(nan) = 0 (NumPy's sign(nan) is nan).
    """
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: nan; past float's range: inf; silently as PyTorch
        d = input - target
    sign = np.subtract(d > 0, d < 0, dtype=d.dtype)
    return _reduce(np.abs(d), reduction, d.size), PointwiseCtx(sign, reduction, d.size)


def smooth_l1_loss_forward(
    input: np.ndarray, target: np.ndarray, *, reduction: str, beta: float
) -> tuple[np.ndarray, PointwiseCtx]:
    """Huber-like loss, PyTorch's ``F.smooth_l1_loss``. input, target: any shape, the same.

        loss_j = 0.5 * d_j**2 / beta  if |d_j| < beta,  else |d_j| - 0.5 * beta,   d = x - y
    (beta = 0 is l1_loss, as PyTorch routes it.)
    Backward: dL/dx_j = g_j * (d_j / beta if |d_j| < beta else sign(d_j)); at |d| = beta
    both give sign(d), and at d = 0 with beta = 0, sign(0) = 0.
    """
    beta = float(beta)
    if beta == 0:
        return l1_loss_forward(input, target, reduction=reduction)
    # silently as PyTorch: inf - inf is nan; d * d overflows to inf past 1.8e19 in float32,
    # inside (as PyTorch's float32 d * d does) and in the branch np.where discards
    with np.errstate(invalid="ignore", over="ignore"):
        d = input - target
        a = np.abs(d)
        inside = a < beta
        per = np.where(inside, 0.5 * d * d / beta, a - 0.5 * beta).astype(d.dtype)
        slope = np.where(inside, d / beta, np.sign(d)).astype(d.dtype)
    return _reduce(per, reduction, d.size), PointwiseCtx(slope, reduction, d.size)


# ---- binary cross entropy ----------------------------------------------------------------------
def binary_cross_entropy_forward(
    input: np.ndarray, target: np.ndarray, weight: np.ndarray | None, *, reduction: str
) -> tuple[np.ndarray, PointwiseCtx]:
    """Binary cross entropy of probabilities, PyTorch's ``F.binary_cross_entropy``.

    input, target: any shape, the same, values in [0, 1]; weight broadcasts to it.

        loss_j = w_j * ((y_j - 1) * max(log1p(-x_j), -100) - y_j * max(log(x_j), -100))
        mean   = sum_j loss_j / numel
    Backward (PyTorch's formula, not autograd through the clamp):
        dL/dx_j = g_j * w_j * (x_j - y_j) / max(x_j * (1 - x_j), 1e-12)
    """
    x, y = input, target
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(x), BCE_LOG_CLAMP)
        log_1mx = np.maximum(np.log1p(-x), BCE_LOG_CLAMP)
    per = (y - 1) * log_1mx - y * log_x
    slope = (x - y) / np.maximum((1 - x) * x, x.dtype.type(BCE_EPSILON))
    if weight is not None:
        per = per * weight
        slope = slope * weight
    return _reduce(per, reduction, x.size), PointwiseCtx(slope, reduction, x.size)


def binary_cross_entropy_with_logits_forward(
    input: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None,
    pos_weight: np.ndarray | None,
    *,
    reduction: str,
) -> tuple[np.ndarray, PointwiseCtx]:
    """Binary cross entropy of logits, PyTorch's ``F.binary_cross_entropy_with_logits``.

    input, target: any shape, the same; weight and pos_weight (p, 1 if None) broadcast to it.
    With logsig(x) = min(x, 0) - log1p(exp(-|x|)) and l = 1 + (p - 1) y:

        loss_j = w_j * ((1 - y_j) * x_j - l_j * logsig(x_j))
               = w_j * ((1 - y_j) * x_j + l_j * log1p(exp(-x_j)))     for x_j >= 0
               = w_j * (-p y_j * x_j + l_j * log1p(exp(x_j)))          for x_j < 0

    The split form is what is computed: for targets in [0, 1] its terms never cancel,
    where (1 - y) x - logsig(x) loses |x| * eps absolutely for x << 0 and y near 0
    (a float32 loss of 0.013 from x = -10 came out 500 ulp off that way). Where PyTorch's
    unsplit form is not finite, its value is the loss: x = -inf gives nan there (0 * -inf,
    or -inf + inf), where the split form's limit is inf; and the reverse for an infinite
    pos_weight against a large negative x (the split form's inf * 0).
    Backward (PyTorch's formula): dL/dx_j = g_j * w_j * ((p y_j + 1 - y_j) * sigmoid(x_j) - p y_j).
    """
    x, y = input, target
    # exp of a non-positive number only: no overflow
    e = np.exp(-np.abs(x))
    sigmoid = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    softplus = np.log1p(e)  # log1p(exp(-|x|))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite inputs: nan/inf silently, as PyTorch
        l = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
        plain = (1 - y) * x - l * (np.minimum(x, 0) - softplus)  # PyTorch's form
        if pos_weight is None:
            per = np.where(x >= 0, (1 - y) * x, -y * x) + softplus
            slope = sigmoid - y
        else:
            py = pos_weight * y
            per = np.where(x >= 0, (1 - y) * x, -py * x) + l * softplus
            slope = (py + 1 - y) * sigmoid - py
        per = np.where(np.isfinite(plain), per, plain)
    if weight is not None:
        per = per * weight
        slope = slope * weight
    return _reduce(per, reduction, x.size), PointwiseCtx(slope, reduction, x.size)


# ---- registration ------------------------------------------------------------------------------
for _op, _forward in (
    ("mse_loss", mse_loss_forward),
    ("l1_loss", l1_loss_forward),
):
    registry.set_validator(_op, _validate_pointwise(_op))
    registry.register(_op, "reference", _forward, _pointwise_backward)

registry.set_validator("smooth_l1_loss", validate_smooth_l1_loss)
registry.register("smooth_l1_loss", "reference", smooth_l1_loss_forward, _pointwise_backward)

registry.set_validator("binary_cross_entropy", validate_binary_cross_entropy)
registry.register("binary_cross_entropy", "reference", binary_cross_entropy_forward, _pointwise_backward)

registry.set_validator("binary_cross_entropy_with_logits", validate_binary_cross_entropy_with_logits)
registry.register(
    "binary_cross_entropy_with_logits", "reference", binary_cross_entropy_with_logits_forward, _pointwise_backward
)
