"""The fully connected layer: ``linear`` (torch.nn.functional.linear).

    y[..., o] = b[o] + sum_i x[..., i] * w[o, i]

Shapes: x (*, in_features) with any number of leading dims (a 1-D x is a single row),
        weight (out_features, in_features), bias (out_features,) or None,
        y (*, out_features).
Backward, with the leading dims of x flattened into M rows (x2: (M, in), gy2: (M, out)):
        gx = gy2 @ w                      reshaped to x.shape
        gw = gy2.T @ x2                   (out, in)
        gb = sum over the M rows of gy2   (out,), None when bias is None
        (gx is skipped, None, when the backward is called with needs_input_grad=False)

Implementations: ``reference`` (the sums as plain loops, accumulated in float64 and rounded
once to the input dtype) and ``fast`` (the same products as BLAS matrix multiplications;
the default).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import registry
from ._checks import check_float, check_same_dtype

# What backward needs: x as rows (M, in), the weight, whether there was a bias, x's shape.
_Ctx = tuple[np.ndarray, np.ndarray, bool, tuple[int, ...]]


def validate_linear(x: Any, weight: Any, bias: Any) -> None:
    check_float("linear", "x", x)
    check_float("linear", "weight", weight, ndim=2)
    if bias is not None:
        check_float("linear", "bias", bias, ndim=1)
    if x.ndim == 0:
        raise ValueError("linear: x must have at least 1 dimension (*, in_features), got a 0-D array")
    check_same_dtype("linear", x=x, weight=weight, bias=bias)
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: x has {x.shape[-1]} features (last dim of shape {x.shape}) but weight of shape "
            f"{weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and bias.shape[0] != weight.shape[0]:
        raise ValueError(
            f"linear: bias of shape {bias.shape} does not match weight of shape {weight.shape}: "
            f"expected ({weight.shape[0]},)"
        )


def _rows(x: np.ndarray) -> np.ndarray:
    """x (*, in) as a (M, in) matrix; M = prod of the leading dims (1 for a 1-D x).
    Explicit M, since reshape(-1, 0) is ambiguous when in_features is 0."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


# ---- reference: the sums as loops -------------------------------------------------------
def linear_reference_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, _Ctx]:
    """y[m, o] = b[o] + sum_i x[m, i] * w[o, i], one row m of x at a time."""
    out_features, in_features = weight.shape
    x2 = _rows(x)
    zero = np.float64(0)  # accumulate in float64: a float32 running sum drifts over long rows
    y = np.empty((x2.shape[0], out_features), dtype=x.dtype)
    for m in range(x2.shape[0]):
        for o in range(out_features):
            acc = zero + bias[o] if bias is not None else zero
            for i in range(in_features):
                acc += x2[m, i] * weight[o, i]
            y[m, o] = acc
    return y.reshape(*x.shape[:-1], out_features), (x2, weight, bias is not None, x.shape)


def linear_reference_backward(
    grad_y: np.ndarray, ctx: _Ctx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """gx[m, i] = sum_o gy[m, o] w[o, i];  gw[o, i] = sum_m gy[m, o] x[m, i];  gb[o] = sum_m gy[m, o].
    gx is None when ``needs_input_grad`` is False."""
    x2, weight, has_bias, x_shape = ctx
    out_features, in_features = weight.shape
    M = x2.shape[0]
    gy = grad_y.reshape(M, out_features)
    zero = np.float64(0)  # as in forward: the M-row sums of gw and gb would drift in float32
    gx = None
    if needs_input_grad:
        gx = np.empty((M, in_features), dtype=x2.dtype)
        for m in range(M):
            for i in range(in_features):
                acc = zero
                for o in range(out_features):
                    acc += gy[m, o] * weight[o, i]
                gx[m, i] = acc
    gw = np.empty((out_features, in_features), dtype=x2.dtype)
    for o in range(out_features):
        for i in range(in_features):
            acc = zero
            for m in range(M):
                acc += gy[m, o] * x2[m, i]
            gw[o, i] = acc
    gb = None
    if has_bias:
        gb = np.empty(out_features, dtype=x2.dtype)
        for o in range(out_features):
            acc = zero
            for m in range(M):
                acc += gy[m, o]
            gb[o] = acc
    return None if gx is None else gx.reshape(x_shape), gw, gb


# ---- fast: BLAS -----------------------------------------------------------------------
def linear_fast_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, _Ctx]:
    """All leading dims of x are flattened into M rows, so the whole batch is one
    (M, in) @ (in, out) BLAS product (weight.T is passed as a transposed view, no copy);
    the bias is broadcast-added in place. Backward is two more products and a row sum."""
    x2 = _rows(x)
    y = x2 @ weight.T
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0]), (x2, weight, bias is not None, x.shape)


# BLAS sums a product's M rows in one running float32 sum per output (1e6 rows of 0.1: 1e-3
# off): past this many rows, gw is summed over blocks of them, one product each, in float64.
SUM_BLOCK = 256


def _weight_grad(gy: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """gw = gy.T @ x2; past SUM_BLOCK rows, block by block (a loop over blocks of rows, as
    conv's chunks), the blocks' products added in float64 and rounded once."""
    M = gy.shape[0]
    if M <= SUM_BLOCK:
        return gy.T @ x2
    gw = np.zeros((gy.shape[1], x2.shape[1]), dtype=np.float64)
    for start in range(0, M, SUM_BLOCK):
        gw += gy[start : start + SUM_BLOCK].T @ x2[start : start + SUM_BLOCK]
    return gw.astype(gy.dtype)


def linear_fast_backward(
    grad_y: np.ndarray, ctx: _Ctx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    x2, weight, has_bias, x_shape = ctx
    gy = grad_y.reshape(x2.shape[0], weight.shape[0])
    gx = (gy @ weight).reshape(x_shape) if needs_input_grad else None
    gw = _weight_grad(gy, x2)
    # The row sum in float64, rounded once: NumPy adds row after row, and M float32 rows drift.
    gb = gy.sum(axis=0, dtype=np.float64).astype(gy.dtype) if has_bias else None
    return gx, gw, gb


registry.set_validator("linear", validate_linear)
registry.register("linear", "reference", linear_reference_forward, linear_reference_backward)
registry.register("linear", "fast", linear_fast_forward, linear_fast_backward)
