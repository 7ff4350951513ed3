"""Dropout kernels: dropout (elementwise) and dropout2d (whole channels), PyTorch's semantics.

Both are pure: the random mask comes from the ``numpy.random.Generator`` passed in, so the
same generator state gives the same mask. In training, with keep probability 1 - p::

    noise = mask / (1 - p)        mask ~ Bernoulli(1 - p), 0 or 1
    y     = x * noise             (p = 1: noise = 0, so y = x * 0, as PyTorch)
    dL/dx = dL/dy * noise         (the same noise: the mask drawn in forward)

The noise is formed as PyTorch forms it (``1 - p`` computed in float64, rounded to x's
dtype, then ``mask / that``), so the kept values equal PyTorch's bit for bit. Out of training, y = x (the input itself, as
PyTorch returns it) and dL/dx = dL/dy. Elementwise maps: one ``reference`` each.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, NamedTuple

import numpy as np

from . import registry
from ._checks import check_float

__all__ = ["dropout_forward", "dropout2d_forward", "dropout_backward"]


def _validate(op: str, x: Any, p: Any, training: Any, generator: Any, min_ndim: int) -> None:
    check_float(op, "x", x)
    if x.ndim < min_ndim:
        raise ValueError(f"{op}: x must have at least {min_ndim} dimensions (N, C, *), got shape {x.shape}")
    if not isinstance(p, Real) or isinstance(p, bool):
        raise TypeError(f"{op}: p must be a real number, got {p!r}")
    if not 0 <= float(p) <= 1:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: training must be a bool, got {training!r}")
    if training and not isinstance(generator, np.random.Generator):
        raise TypeError(f"{op}: generator must be a numpy.random.Generator in training, got {type(generator).__name__}")


def validate_dropout(x: Any, *, p: Any, training: Any, generator: Any = None) -> None:
    _validate("dropout", x, p, training, generator, 0)


def validate_dropout2d(x: Any, *, p: Any, training: Any, generator: Any = None) -> None:
    _validate("dropout2d", x, p, training, generator, 2)


class DropoutCtx(NamedTuple):
    """The noise that multiplied x (mask / (1 - p), broadcastable to x), or None for y = x."""

    noise: np.ndarray | None


def _apply(
    x: np.ndarray, p: float, training: bool, generator: Any, mask_shape: tuple[int, ...]
) -> tuple[np.ndarray, DropoutCtx]:
    if not training:
        return x, DropoutCtx(None)
    if p == 1:
        noise = np.zeros(mask_shape, dtype=x.dtype)
    else:
        keep = generator.random(mask_shape) >= p  # P(keep) = 1 - p exactly
        # PyTorch's noise.div_(1 - p): 1 - p is formed in float64, rounded to x's dtype, then divides
        noise = keep.astype(x.dtype) / x.dtype.type(1.0 - p)
    with np.errstate(invalid="ignore"):  # inf * 0 = nan silently, as PyTorch
        return np.asarray(x * noise), DropoutCtx(noise)  # an array for 0-D x too (not a NumPy scalar)


def dropout_forward(
    x: np.ndarray, *, p: float, training: bool, generator: np.random.Generator | None = None
) -> tuple[np.ndarray, DropoutCtx]:
    """Zero each element independently with probability p; scale the rest by 1/(1 - p).

    Shapes: x any shape, y like x; the mask has x's shape.
    Backward: dx = dy * noise (module docstring).
    """
    return _apply(x, float(p), bool(training), generator, x.shape)


def dropout2d_forward(
    x: np.ndarray, *, p: float, training: bool, generator: np.random.Generator | None = None
) -> tuple[np.ndarray, DropoutCtx]:
    """Zero whole channels: for x of shape (N, C, *), each x[n, c] is kept (and scaled by
    1/(1 - p)) or zeroed as a block, independently with probability p (PyTorch's feature
    dropout; the mask has shape (N, C, 1, ..., 1)).

    Backward: dx = dy * noise, the same per-channel noise (module docstring).
    """
    mask_shape = x.shape[:2] + (1,) * (x.ndim - 2)
    return _apply(x, float(p), bool(training), generator, mask_shape)


def dropout_backward(grad_y: np.ndarray, ctx: DropoutCtx, *, needs_input_grad: bool = True) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    if ctx.noise is None:
        return (grad_y,)
    with np.errstate(invalid="ignore"):  # inf * 0 = nan silently, as PyTorch
        return (np.asarray(grad_y * ctx.noise),)


registry.set_validator("dropout", validate_dropout)
registry.register("dropout", "reference", dropout_forward, dropout_backward)
registry.set_validator("dropout2d", validate_dropout2d)
registry.register("dropout2d", "reference", dropout2d_forward, dropout_backward)
