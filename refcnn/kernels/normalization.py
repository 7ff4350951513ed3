"""Normalisation kernels: batch_norm (``reference`` and ``fast``), group_norm and layer_norm.

All three normalise a set of M values to zero mean and unit variance, then apply a
per-element affine map. Over one set S (a channel over the batch for batch_norm, a group of
channels of one sample for group_norm, the trailing ``normalized_shape`` of one sample for
layer_norm)::

    mu = (1/M) sum_{i in S} x_i          var = (1/M) sum_{i in S} (x_i - mu)**2   (biased)
    rstd = 1 / sqrt(var + eps)           xhat_i = (x_i - mu) * rstd
    y_i = w_i * xhat_i + b_i

Backward, with g_i = dL/dy_i and gh_i = g_i * w_i (w = 1 when there is no weight)::

    dL/dx_i = rstd / M * (M * gh_i - sum_{j in S} gh_j - xhat_i * sum_{j in S} gh_j * xhat_j)
    dL/dw   = sum of g * xhat over the elements sharing that weight
    dL/db   = sum of g over the elements sharing that bias

The input gradient is exact: mu and rstd are functions of every x in the set, and the two
sums are their contributions (d mu/dx_i = 1/M, d rstd/dx_i = -rstd**3 (x_i - mu) / M).

Kernels compute in the input's dtype (float32 stays float32) and follow PyTorch 2.13 where
it speaks: messages, the one-value-per-channel check, empty inputs (an empty output, zero
parameter gradients and untouched running statistics).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, NamedTuple

import numpy as np

from . import registry
from ._checks import check_float, check_same_dtype

__all__ = [
    "batch_norm_reference_forward", "batch_norm_reference_backward",
    "batch_norm_fast_forward", "batch_norm_fast_backward",
    "group_norm_forward", "group_norm_backward",
    "layer_norm_forward", "layer_norm_backward",
]  # fmt: skip


# ---- validation ---------------------------------------------------------------------------
def _check_real(op: str, name: str, value: Any) -> float:
    if not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def _check_vector(op: str, name: str, a: Any, C: int, x: np.ndarray) -> None:
    if a is None:
        return
    check_float(op, name, a)
    if a.shape != (C,):
        raise ValueError(
            f"{op}: {name} should contain {C} elements (one per channel of x of shape {x.shape}), got shape {a.shape}"
        )


def _check_eps(op: str, eps: Any, *, positive: bool) -> None:
    value = _check_real(op, "eps", eps)
    if positive and not value > 0:
        raise ValueError(f"{op} eps must be positive during training, but got {eps}")
    if not value >= 0:
        raise ValueError(f"{op} eps must be non-negative, but got {eps}")


def validate_batch_norm(
    x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any, *, training: Any, momentum: Any, eps: Any
) -> None:
    op = "batch_norm"
    check_float(op, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{op}: x must have shape (N, C, *) with at least 2 dimensions, got shape {x.shape}")
    C = x.shape[1]
    for name, a in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        _check_vector(op, name, a, C, x)
    check_same_dtype(op, x=x, weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must either both be None or neither be None")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: training must be a bool, got {training!r}")
    _check_real(op, "momentum", momentum)
    _check_eps(op, eps, positive=bool(training))
    if not training and running_mean is None:
        raise ValueError(f"{op}: running_mean and running_var must be given in evaluation mode (training=False)")
    if training:
        values_per_channel = x.shape[0] * math.prod(x.shape[2:])
        if values_per_channel == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
        for name, a in (("running_mean", running_mean), ("running_var", running_var)):
            if a is not None and not a.flags.writeable:
                raise ValueError(f"{op}: {name} must be writeable: training updates it in place")


def _check_groups(op: str, num_groups: Any, C: int, x: np.ndarray) -> None:
    if not isinstance(num_groups, (int, np.integer)) or isinstance(num_groups, bool):
        raise TypeError(f"{op}: num_groups must be an int, got {num_groups!r}")
    if num_groups < 1:
        raise ValueError(f"{op}: num_groups must be >= 1, got {num_groups}")
    if C % num_groups != 0:
        raise ValueError(
            f"{op}: expected the number of channels of x to be divisible by num_groups, "
            f"got x of shape {x.shape} and num_groups={num_groups}"
        )


def validate_group_norm(x: Any, weight: Any, bias: Any, *, num_groups: Any, eps: Any) -> None:
    op = "group_norm"
    check_float(op, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{op}: x must have shape (N, C, *) with at least 2 dimensions, got shape {x.shape}")
    C = x.shape[1]
    _check_groups(op, num_groups, C, x)
    _check_vector(op, "weight", weight, C, x)
    _check_vector(op, "bias", bias, C, x)
    check_same_dtype(op, x=x, weight=weight, bias=bias)
    _check_eps(op, eps, positive=False)
    # PyTorch's F.group_norm runs the batch-norm check on [N*C/G, G, *spatial] (sic).
    size = [x.shape[0] * C // num_groups, num_groups, *x.shape[2:]]
    if size[0] * math.prod(size[2:]) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {size}")


def validate_layer_norm(x: Any, weight: Any, bias: Any, *, normalized_shape: Any, eps: Any) -> None:
    op = "layer_norm"
    check_float(op, "x", x)
    ok = isinstance(normalized_shape, tuple) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in normalized_shape
    )
    if not ok:
        raise TypeError(f"{op}: normalized_shape must be a tuple of ints, got {normalized_shape!r}")
    if len(normalized_shape) == 0:
        raise ValueError(f"{op}: normalized_shape must contain at least one dimension, got {normalized_shape}")
    if min(normalized_shape) < 0:
        raise ValueError(f"{op}: normalized_shape must not be negative, got {normalized_shape}")
    k = len(normalized_shape)
    if x.ndim < k or x.shape[x.ndim - k :] != tuple(normalized_shape):
        raise ValueError(
            f"{op}: given normalized_shape={tuple(normalized_shape)}, expected x of shape "
            f"(*, {', '.join(map(str, normalized_shape))}), got {x.shape}"
        )
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None:
            check_float(op, name, a)
            if a.shape != tuple(normalized_shape):
                raise ValueError(
                    f"{op}: {name} must have the shape normalized_shape={tuple(normalized_shape)}, got {a.shape}"
                )
    check_same_dtype(op, x=x, weight=weight, bias=bias)
    _check_eps(op, eps, positive=False)


# ---- shared helpers -----------------------------------------------------------------------
# Each kernel runs under np.errstate(divide="ignore", invalid="ignore"): PyTorch returns inf/nan
# silently for eps = 0 on a constant set (1/sqrt(0), then 0 * inf) and for non-finite inputs;
# so do these. (A `with` in the body rather than a decorator: mutmut does not mutate decorated
# functions, and tox -e mutation must reach these bodies.)


def _rsqrt(var: Any, eps: float) -> Any:
    """1/sqrt(var + eps) in var's dtype."""
    return 1 / np.sqrt(var + eps)


def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    """(1, C, 1, ..., 1): how a per-channel vector broadcasts against x of shape (N, C, *)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


# ---- batch_norm: reference ------------------------------------------------------------------
class BatchNormRefCtx(NamedTuple):
    """What the reference backward keeps: the centred input x - mu, 1/sqrt(var + eps) per
    channel, the weight, whether batch statistics were used, and which grads to return."""

    xc: np.ndarray
    rstd: np.ndarray
    weight: np.ndarray | None
    has_bias: bool
    batch_stats: bool


def batch_norm_reference_forward(
    x: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    *,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[np.ndarray, BatchNormRefCtx]:
    """Batch normalisation, one channel at a time (PyTorch's F.batch_norm).

    Shapes: x (N, C, *) e.g. (N, C), (N, C, L), (N, C, H, W); weight, bias, running_mean,
    running_var (C,) or None; y like x. M = N * prod(*) values per channel.

    Training: mu_c, var_c are the batch mean and biased variance of channel c; if running
    statistics are given they are updated in place, as PyTorch does::

        running_mean = (1 - momentum) * running_mean + momentum * mu
        running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)   # unbiased

    Evaluation: mu, var are running_mean, running_var. Then
    y[n, c, ...] = w_c * (x[n, c, ...] - mu_c) / sqrt(var_c + eps) + b_c.

    Backward (this one is the chain rule of Ioffe & Szegedy 2015, written per channel)::

        dxhat = g * w_c
        dvar  = -1/2 * rstd**3 * sum(dxhat * (x - mu))
        dmu   = -rstd * sum(dxhat) + dvar * (-2/M) * sum(x - mu)
        dx    = dxhat * rstd + dvar * 2 (x - mu) / M + dmu / M       (training)
        dx    = dxhat * rstd                                         (evaluation: mu, var are constants)
        dw_c  = sum(g * xhat),   db_c = sum(g)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.ascontiguousarray(x)  # C order: each channel's sums then add in one order, any layout
        C = x.shape[1]
        xc = np.empty_like(x)
        rstd = np.empty(C, dtype=x.dtype)
        y = np.empty_like(x)
        use_batch = bool(training)
        if x.size == 0:  # an empty batch: empty output, running statistics untouched (PyTorch)
            return y, BatchNormRefCtx(xc, rstd, weight, bias is not None, use_batch)
        for c in range(C):
            v = x[:, c]  # every value of channel c, shape (N, *)
            M = v.size
            if use_batch:
                mean = v.sum() / M
                var = ((v - mean) ** 2).sum() / M
                if running_mean is not None and running_var is not None:
                    running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
                    # running_var takes the unbiased variance, as PyTorch does
                    running_var[c] = (1 - momentum) * running_var[c] + momentum * (var * M / (M - 1))
            else:
                assert running_mean is not None and running_var is not None
                mean, var = running_mean[c], running_var[c]
            rstd[c] = _rsqrt(var, eps)
            xc[:, c] = v - mean
            y[:, c] = xc[:, c] * rstd[c]
            if weight is not None:
                y[:, c] *= weight[c]
            if bias is not None:
                y[:, c] += bias[c]
        return y, BatchNormRefCtx(xc, rstd, weight, bias is not None, use_batch)


def batch_norm_reference_backward(
    grad_y: np.ndarray, ctx: BatchNormRefCtx, *, needs_input_grad: bool = True
) -> tuple[Any, Any, Any]:
    with np.errstate(divide="ignore", invalid="ignore"):
        xc, rstd, weight = ctx.xc, ctx.rstd, ctx.weight
        grad_y = np.ascontiguousarray(grad_y)  # C order, as x in forward
        C = xc.shape[1]
        gx = np.zeros_like(xc)
        gw = None if weight is None else np.zeros_like(weight)
        gb = np.zeros_like(rstd) if ctx.has_bias else None
        if xc.size == 0:
            return gx if needs_input_grad else None, gw, gb
        for c in range(C):
            g = grad_y[:, c]
            d = xc[:, c]
            M = d.size
            r = rstd[c]
            if gw is not None:
                gw[c] = (g * (d * r)).sum()
            if gb is not None:
                gb[c] = g.sum()
            dxhat = g if weight is None else g * weight[c]
            if ctx.batch_stats:
                dvar = -0.5 * r**3 * (dxhat * d).sum()
                dmu = -r * dxhat.sum() + dvar * (-2 / M) * d.sum()
                gx[:, c] = dxhat * r + dvar * 2 * d / M + dmu / M
            else:
                gx[:, c] = dxhat * r
        return gx if needs_input_grad else None, gw, gb


# ---- batch_norm: fast -----------------------------------------------------------------------
def _channel_sum(a: np.ndarray) -> np.ndarray:
    """The per-channel sum of a (N, C, L) array: pairwise within each plane (NumPy's sum
    along a contiguous axis), then over the N planes in float64, rounded once to a's dtype.
    One running float32 sum (einsum's) drifts over a channel's N*L values (4e-6 relative
    over 262,144); this stays within a few roundings plus log2(L)."""
    return a.sum(axis=2).sum(axis=0, dtype=np.float64).astype(a.dtype)


class BatchNormCtx(NamedTuple):
    """What the fast backward keeps: xhat viewed as (N, C, L), rstd and the weight per
    channel (C,), whether batch statistics were used, which grads to return, x's shape."""

    xhat: np.ndarray
    rstd: np.ndarray
    weight: np.ndarray | None
    has_bias: bool
    batch_stats: bool
    x_shape: tuple[int, ...]


def batch_norm_fast_forward(
    x: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    *,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[np.ndarray, BatchNormCtx]:
    """Batch normalisation, vectorised over every channel at once (same math as the reference).

    Layout: x is viewed as (N, C, L), L = prod(*) (no copy for a contiguous x), so that each
    per-channel sum is a pairwise sum along the contiguous L axis, then one over N in float64
    (``_channel_sum``), and per-channel vectors broadcast as (C, 1). The mean is taken
    first and the variance from the centred values (two passes: no cancellation from
    E[x**2] - E[x]**2); the elementwise steps reuse one buffer in place. Backward is the
    closed form dx = w * rstd * (g - (sum(g) + xhat * sum(g * xhat)) / M), two reductions.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        N, C = x.shape[:2]
        use_batch = bool(training)
        L = math.prod(x.shape[2:])
        x3 = np.ascontiguousarray(x).reshape(N, C, L)  # C order: the sums add in one order, any layout
        M = N * L
        if x.size == 0:  # an empty batch: empty output, running statistics untouched (PyTorch)
            ctx = BatchNormCtx(np.empty_like(x3), np.ones(C, x.dtype), weight, bias is not None, use_batch, x.shape)
            return np.empty_like(x), ctx
        if use_batch:
            mean = _channel_sum(x3) / M
            xc = x3 - mean[:, None]
            var = _channel_sum(xc * xc) / M
            if running_mean is not None and running_var is not None:
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean
                # running_var takes the unbiased variance, as PyTorch does
                running_var[...] = (1 - momentum) * running_var + momentum * (var * M / (M - 1))
        else:
            assert running_mean is not None and running_var is not None
            xc = x3 - running_mean[:, None]
            var = running_var
        rstd = _rsqrt(var, eps)
        xhat = xc
        xhat *= rstd[:, None]
        y = xhat * (1 if weight is None else weight[:, None])  # a new array: ctx keeps xhat unaliased
        if bias is not None:
            y += bias[:, None]
        return y.reshape(x.shape), BatchNormCtx(xhat, rstd, weight, bias is not None, use_batch, x.shape)


def batch_norm_fast_backward(
    grad_y: np.ndarray, ctx: BatchNormCtx, *, needs_input_grad: bool = True
) -> tuple[Any, Any, Any]:
    with np.errstate(divide="ignore", invalid="ignore"):
        xhat, rstd, weight = ctx.xhat, ctx.rstd, ctx.weight
        N, C, L = xhat.shape
        g3 = np.ascontiguousarray(grad_y).reshape(N, C, L)  # C order, as x in forward
        sum_g = _channel_sum(g3)
        sum_gxhat = _channel_sum(g3 * xhat)
        gw = None if weight is None else sum_gxhat
        gb = sum_g if ctx.has_bias else None
        if not needs_input_grad:
            return None, gw, gb
        scale = rstd if weight is None else weight * rstd
        if ctx.batch_stats and xhat.size:
            M = N * L
            gx = xhat * (sum_gxhat / M)[:, None]
            gx += (sum_g / M)[:, None]
            np.subtract(g3, gx, out=gx)
            gx *= scale[:, None]
        else:
            gx = g3 * scale[:, None]
        return gx.reshape(ctx.x_shape), gw, gb


# ---- group_norm and layer_norm: one vectorised reference each -------------------------------
class NormCtx(NamedTuple):
    """What group_norm/layer_norm backward keeps: xhat viewed as (sets, M), rstd (sets, 1),
    the weight broadcast like x, the axes that sum into a parameter's gradient, and which
    grads to return."""

    xhat: np.ndarray
    rstd: np.ndarray
    weight: np.ndarray | None
    param_axes: tuple[int, ...]
    param_shape: tuple[int, ...]
    has_bias: bool
    x_shape: tuple[int, ...]


def _normalise(x_sets: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """xhat and rstd over the last axis of x_sets (sets, M); M = 0 gives empty results."""
    if x_sets.shape[-1] == 0:
        return np.empty_like(x_sets), np.ones((*x_sets.shape[:-1], 1), x_sets.dtype)
    mean = x_sets.mean(axis=-1, keepdims=True)
    xc = x_sets - mean
    # The squares in float64: in float32 a value of 1e20 or more squares to inf, and every
    # xhat of its set would come out 0 (PyTorch float64 gives the finite answer).
    rstd = _rsqrt(np.square(xc, dtype=np.float64).mean(axis=-1, keepdims=True), eps).astype(x_sets.dtype)
    return xc * rstd, rstd


def _row_sum(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return a.sum(axis=axes, dtype=np.float64).astype(a.dtype)


def _norm_backward(grad_y: np.ndarray, ctx: NormCtx, needs_input_grad: bool) -> tuple[Any, Any, Any]:
    with np.errstate(invalid="ignore"):  # M == 0 has its own branch: nothing here divides by zero
        xhat = ctx.xhat.reshape(ctx.x_shape)
        grad_y = np.ascontiguousarray(grad_y)  # C order: the set sums add in one order, any layout
        gx = None
        if needs_input_grad:
            gh = grad_y if ctx.weight is None else grad_y * ctx.weight
            gh_sets = gh.reshape(ctx.xhat.shape)
            M = ctx.xhat.shape[-1]
            if M == 0:
                gx = np.zeros(ctx.x_shape, grad_y.dtype)
            else:
                sum_gh = gh_sets.sum(axis=-1, keepdims=True)
                sum_ghxhat = (gh_sets * ctx.xhat).sum(axis=-1, keepdims=True)
                gx = (ctx.rstd / M * (M * gh_sets - sum_gh - ctx.xhat * sum_ghxhat)).reshape(ctx.x_shape)
        # Over the leading axes NumPy adds row after row: in float64, rounded once (B rows of float32 drift).
        gw = None if ctx.weight is None else _row_sum(grad_y * xhat, ctx.param_axes).reshape(ctx.param_shape)
        gb = _row_sum(grad_y, ctx.param_axes).reshape(ctx.param_shape) if ctx.has_bias else None
        return gx, gw, gb


def group_norm_forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, *, num_groups: int, eps: float
) -> tuple[np.ndarray, NormCtx]:
    """Group normalisation (PyTorch's F.group_norm): each sample's channels are split into
    G = num_groups groups of C/G consecutive channels, and each group of each sample is one set.

    Shapes: x (N, C, *), weight and bias (C,) or None, y like x; M = (C/G) * prod(*).
    Forward: x viewed as (N*G, M); mu, var over the last axis; y[n, c, ...] = w_c * xhat + b_c.
    Backward (the module docstring's formulas, sets = (n, g)):
        dx   = rstd / M * (M * gh - sum_set(gh) - xhat * sum_set(gh * xhat)),  gh = g * w_c
        dw_c = sum_{n, *} g * xhat,   db_c = sum_{n, *} g
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        N, C = x.shape[:2]
        G = int(num_groups)
        M = C // G * math.prod(x.shape[2:])
        xhat_sets, rstd = _normalise(x.reshape(N * G, M), eps)
        shape = _channel_shape(x)
        w = None if weight is None else weight.reshape(shape)
        xhat = xhat_sets.reshape(x.shape)
        y = xhat * (1 if w is None else w)  # a new array: ctx keeps xhat unaliased
        if bias is not None:
            y += bias.reshape(shape)
        axes = (0, *range(2, x.ndim))
        return y, NormCtx(xhat_sets, rstd, w, axes, (C,), bias is not None, x.shape)


def group_norm_backward(grad_y: np.ndarray, ctx: NormCtx, *, needs_input_grad: bool = True) -> tuple[Any, Any, Any]:
    gx, gw, gb = _norm_backward(grad_y, ctx, needs_input_grad)
    if gw is not None and ctx.xhat.shape[0] > 0 and ctx.xhat.shape[1] == 0:
        # sets of no values (zero-size planes): PyTorch's dw_c = sum_n (ds - db * mean) * rstd,
        # with the mean 0/0 = nan, is nan; the sum over no values would be 0
        gw[...] = np.nan
    return gx, gw, gb


def layer_norm_forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, *, normalized_shape: tuple[int, ...], eps: float
) -> tuple[np.ndarray, NormCtx]:
    """Layer normalisation (PyTorch's F.layer_norm): each sample's trailing
    ``normalized_shape`` block is one set.

    Shapes: x (*, D1, ..., Dk) with normalized_shape = (D1, ..., Dk); weight and bias
    (D1, ..., Dk) or None; y like x; M = D1 * ... * Dk.
    Forward: x viewed as (B, M), B = prod(*); mu, var over the last axis; y = w * xhat + b
    (w, b elementwise over the block).
    Backward (the module docstring's formulas, sets = leading index):
        dx = rstd / M * (M * gh - sum_set(gh) - xhat * sum_set(gh * xhat)),  gh = g * w
        dw = sum over the leading axes of g * xhat,   db = sum over the leading axes of g
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        k = len(normalized_shape)
        M = math.prod(normalized_shape)
        B = math.prod(x.shape[: x.ndim - k])
        xhat_sets, rstd = _normalise(x.reshape(B, M), eps)
        xhat = xhat_sets.reshape(x.shape)
        y = xhat * (1 if weight is None else weight)  # a new array: ctx keeps xhat unaliased
        if bias is not None:
            y += bias
        axes = tuple(range(x.ndim - k))
        return y, NormCtx(xhat_sets, rstd, weight, axes, tuple(normalized_shape), bias is not None, x.shape)


def layer_norm_backward(grad_y: np.ndarray, ctx: NormCtx, *, needs_input_grad: bool = True) -> tuple[Any, Any, Any]:
    return _norm_backward(grad_y, ctx, needs_input_grad)


registry.set_validator("batch_norm", validate_batch_norm)
registry.register("batch_norm", "reference", batch_norm_reference_forward, batch_norm_reference_backward)
registry.register("batch_norm", "fast", batch_norm_fast_forward, batch_norm_fast_backward)
registry.set_validator("group_norm", validate_group_norm)
registry.register("group_norm", "reference", group_norm_forward, group_norm_backward)
registry.set_validator("layer_norm", validate_layer_norm)
registry.register("layer_norm", "reference", layer_norm_forward, layer_norm_backward)
