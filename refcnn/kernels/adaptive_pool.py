"""Adaptive pooling kernels: adaptive_avg_pool2d and adaptive_max_pool2d.

Each takes ``x`` of shape (N, C, H, W) (N may be 0; C, H, W may not) and ``output_size``
already normalised to a pair ``(Ho, Wo)``; the windows follow from it as PyTorch's
(see :func:`adaptive_bins`): they may overlap and differ in length. Each op has a
``reference`` implementation (PyTorch's CPU kernel written as plain loops) and a ``fast``
one (the default, no loop over pixels or batch items). Max pooling scans each bin as
pool.py's max_pool2d does, so ties, NaN and ``-inf`` go where PyTorch's go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import registry
from ._checks import check_pair
from .pool import Pair, _check_x


# ---- bins -------------------------------------------------------------------------------------
def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive bins along one axis: bin i covers [start_i, end_i) with
    start_i = floor(i * size / out) and end_i = ceil((i + 1) * size / out). Bins may
    overlap and may differ in length by more than one when out > size."""
    i = np.arange(out, dtype=np.int64)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    return start, end


# ---- validators -----------------------------------------------------------------------------
def _validate_adaptive(op: str, x: Any, output_size: Any) -> None:
    _check_x(op, x)
    check_pair(op, "output_size", output_size, 0)


def validate_adaptive_avg_pool2d(x: Any, *, output_size: Any) -> None:
    _validate_adaptive("adaptive_avg_pool2d", x, output_size)


def validate_adaptive_max_pool2d(x: Any, *, output_size: Any) -> None:
    _validate_adaptive("adaptive_max_pool2d", x, output_size)


# ---- adaptive_avg_pool2d ----------------------------------------------------------------------
@dataclass
class AdaptiveCtx:
    """What the adaptive ops' backward needs: the input's shape (and, for max, the indices)."""

    x_shape: tuple[int, ...]
    indices: np.ndarray | None = None


def adaptive_avg_pool2d_reference_forward(x: np.ndarray, *, output_size: Pair) -> tuple[np.ndarray, AdaptiveCtx]:
    """Average over PyTorch's adaptive bins (AdaptiveAvgPool2d).

        y[n, c, i, j] = (sum_{ih in [h0_i, h1_i), iw in [w0_j, w1_j)} x[n, c, ih, iw]) / ((h1_i - h0_i) * (w1_j - w0_j))
        h0_i = floor(i*H/H_out), h1_i = ceil((i+1)*H/H_out), likewise w0_j, w1_j

    Shapes: x (N, C, H, W), y (N, C, H_out, W_out) with (H_out, W_out) = output_size.
    Backward: gx[n, c, ih, iw] = sum over the bins (i, j) holding (ih, iw) of
    gy[n, c, i, j] / (bin size).
    """
    N, C, H, W = x.shape
    H_out, W_out = output_size
    h0, h1 = adaptive_bins(H, H_out)
    w0, w1 = adaptive_bins(W, W_out)
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    total = np.float64(0)  # as avg_pool2d's reference: in float64, rounded once
                    for ih in range(h0[i], h1[i]):
                        for iw in range(w0[j], w1[j]):
                            total += x[n, c, ih, iw]
                    y[n, c, i, j] = total / ((h1[i] - h0[i]) * (w1[j] - w0[j]))
    return y, AdaptiveCtx(x.shape)


def adaptive_avg_pool2d_reference_backward(
    grad_y: np.ndarray, ctx: AdaptiveCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:  # a pool has no parameters: nothing to compute
        return (None,)
    N, C, H, W = ctx.x_shape
    H_out, W_out = grad_y.shape[2:]
    h0, h1 = adaptive_bins(H, H_out)
    w0, w1 = adaptive_bins(W, W_out)
    grad_x = np.zeros(ctx.x_shape, dtype=grad_y.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    share = grad_y[n, c, i, j] / grad_y.dtype.type((h1[i] - h0[i]) * (w1[j] - w0[j]))
                    for ih in range(h0[i], h1[i]):
                        for iw in range(w0[j], w1[j]):
                            grad_x[n, c, ih, iw] += share
    return (grad_x,)


def _bin_sums(a: np.ndarray, start: np.ndarray, end: np.ndarray, axis: int) -> np.ndarray:
    """sum(a[..., start[i]:end[i], ...]) along ``axis`` for every bin i, bins possibly
    overlapping, with one np.add.reduceat over the interleaved bounds
    (start_0, end_0, start_1, ..., start_last) and every other result kept. Needs
    start[i] < end[i] and end[-1] == a.shape[axis]."""
    size = a.shape[axis]
    if len(start) == 0:
        shape = list(a.shape)
        shape[axis] = 0
        return np.zeros(shape, dtype=a.dtype)
    if len(end) > 1 and end[:-1].max() >= size:  # reduceat needs bounds < size: add a zero slice
        pad = [(0, 0)] * a.ndim
        pad[axis] = (0, 1)
        a = np.pad(a, pad)
    bounds = np.empty(2 * len(start) - 1, dtype=np.intp)
    bounds[0::2] = start
    bounds[1::2] = end[:-1]
    sums = np.add.reduceat(a, bounds, axis=axis)
    keep: list[Any] = [slice(None)] * a.ndim
    keep[axis] = slice(None, None, 2)
    return sums[tuple(keep)]


def _bins_holding(size: int, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every input position t along an axis, the bins holding it: [first_t, last_t)
    (contiguous, since bins are ordered and cover the axis)."""
    t = np.arange(size)
    return np.searchsorted(end, t, side="right"), np.searchsorted(start, t, side="right")


def adaptive_avg_pool2d_fast_forward(x: np.ndarray, *, output_size: Pair) -> tuple[np.ndarray, AdaptiveCtx]:
    """Bin sums are separable: np.add.reduceat sums the row bins (axis 2), then the column
    bins (axis 3), each one pass whatever the bin sizes; then divide by the bin sizes."""
    H, W = x.shape[2:]
    h0, h1 = adaptive_bins(H, output_size[0])
    w0, w1 = adaptive_bins(W, output_size[1])
    sums = _bin_sums(_bin_sums(x, h0, h1, axis=2), w0, w1, axis=3)
    counts = ((h1 - h0)[:, None] * (w1 - w0)[None, :]).astype(x.dtype)
    return sums / counts, AdaptiveCtx(x.shape)


def adaptive_avg_pool2d_fast_backward(
    grad_y: np.ndarray, ctx: AdaptiveCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    """The transpose: input row t receives the sum of gy / (bin size) over the bins
    [first_t, last_t) holding it, again one reduceat per axis (over the output axes)."""
    if not needs_input_grad:  # a pool has no parameters: nothing to compute
        return (None,)
    H, W = ctx.x_shape[2:]
    H_out, W_out = grad_y.shape[2:]
    if H_out == 0 or W_out == 0:
        return (np.zeros(ctx.x_shape, dtype=grad_y.dtype),)
    h0, h1 = adaptive_bins(H, H_out)
    w0, w1 = adaptive_bins(W, W_out)
    share = grad_y / ((h1 - h0)[:, None] * (w1 - w0)[None, :]).astype(grad_y.dtype)
    rows = _bin_sums(share, *_bins_holding(H, h0, h1), axis=2)
    return (_bin_sums(rows, *_bins_holding(W, w0, w1), axis=3),)


# ---- adaptive_max_pool2d ----------------------------------------------------------------------
def adaptive_max_pool2d_reference_forward(x: np.ndarray, *, output_size: Pair) -> tuple[np.ndarray, AdaptiveCtx]:
    """Max over PyTorch's adaptive bins (AdaptiveMaxPool2d), as PyTorch's CPU loop.

        y[n, c, i, j] = max_{ih in [h0_i, h1_i), iw in [w0_j, w1_j)} x[n, c, ih, iw]
        indices[n, c, i, j] = ih * W + iw of the selected element

    with the bins of adaptive_avg_pool2d and max_pool2d's scan (first maximum wins, the
    last NaN wins, the index starts at the bin's first element).
    Shapes: x (N, C, H, W), y and indices (N, C, H_out, W_out), (H_out, W_out) = output_size.
    Backward: gx[n, c].flat[indices[n, c, i, j]] += gy[n, c, i, j].
    """
    N, C, H, W = x.shape
    H_out, W_out = output_size
    h0, h1 = adaptive_bins(H, H_out)
    w0, w1 = adaptive_bins(W, W_out)
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    indices = np.empty((N, C, H_out, W_out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    best, best_index = -np.inf, h0[i] * W + w0[j]
                    for ih in range(h0[i], h1[i]):
                        for iw in range(w0[j], w1[j]):
                            v = x[n, c, ih, iw]
                            if v > best or np.isnan(v):
                                best, best_index = v, ih * W + iw
                    y[n, c, i, j] = best
                    indices[n, c, i, j] = best_index
    return y, AdaptiveCtx(x.shape, indices)


def adaptive_max_pool2d_reference_backward(
    grad_y: np.ndarray, ctx: AdaptiveCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:  # a pool has no parameters: nothing to compute
        return (None,)
    N, C, _, W = ctx.x_shape
    assert ctx.indices is not None
    grad_x = np.zeros(ctx.x_shape, dtype=grad_y.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(grad_y.shape[2]):
                for j in range(grad_y.shape[3]):
                    ih, iw = divmod(int(ctx.indices[n, c, i, j]), W)
                    grad_x[n, c, ih, iw] += grad_y[n, c, i, j]
    return (grad_x,)


def adaptive_max_pool2d_fast_forward(x: np.ndarray, *, output_size: Pair) -> tuple[np.ndarray, AdaptiveCtx]:
    """Bins are gathered into one array (N, C, H_out, W_out, kH_max, kW_max) by fancy
    indexing, a bin shorter than the longest repeating its last row/column (a repeat comes
    after the original in scan order, so it never changes the winner: ties go to the
    first, and a repeated NaN is the same element). np.argmax over the flattened bin gives
    the first maximum (and the first NaN; bins holding a NaN then take the last one)."""
    N, C, H, W = x.shape
    H_out, W_out = output_size
    if 0 in (N, C, H_out, W_out):
        shape = (N, C, H_out, W_out)
        return np.zeros(shape, dtype=x.dtype), AdaptiveCtx(x.shape, np.zeros(shape, dtype=np.int64))
    h0, h1 = adaptive_bins(H, H_out)
    w0, w1 = adaptive_bins(W, W_out)
    rows = np.minimum(h0[:, None] + np.arange((h1 - h0).max()), h1[:, None] - 1)  # (H_out, kH_max)
    cols = np.minimum(w0[:, None] + np.arange((w1 - w0).max()), w1[:, None] - 1)  # (W_out, kW_max)
    kw_max = cols.shape[1]
    bins = x[:, :, rows[:, None, :, None], cols[None, :, None, :]].reshape(N, C, H_out, W_out, -1)
    pick = np.argmax(bins, axis=-1)
    nan_bins = np.isnan(np.take_along_axis(bins, pick[..., None], axis=-1)[..., 0])
    if nan_bins.any():
        last_nan = bins.shape[-1] - 1 - np.argmax(np.isnan(bins[..., ::-1]), axis=-1)
        pick = np.where(nan_bins, last_nan, pick)
    y = np.take_along_axis(bins, pick[..., None], axis=-1)[..., 0]
    i = np.arange(H_out)[:, None]
    j = np.arange(W_out)[None, :]
    indices = rows[i, pick // kw_max] * W + cols[j, pick % kw_max]
    return y, AdaptiveCtx(x.shape, indices.astype(np.int64))


def adaptive_max_pool2d_fast_backward(
    grad_y: np.ndarray, ctx: AdaptiveCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    """Bins may overlap, so the scatter-add is one np.bincount over the flat positions
    (n*C + c)*H*W + index, weighted by gy (accumulated in float64, rounded once)."""
    if not needs_input_grad:  # a pool has no parameters: nothing to compute
        return (None,)
    N, C, H, W = ctx.x_shape
    assert ctx.indices is not None
    planes = np.arange(N * C, dtype=np.int64).reshape(N, C, 1, 1) * (H * W)
    flat = np.bincount((planes + ctx.indices).ravel(), weights=grad_y.ravel(), minlength=N * C * H * W)
    return (flat.reshape(ctx.x_shape).astype(grad_y.dtype),)


# ---- registration -----------------------------------------------------------------------------
registry.set_validator("adaptive_avg_pool2d", validate_adaptive_avg_pool2d)
registry.register(
    "adaptive_avg_pool2d", "reference", adaptive_avg_pool2d_reference_forward, adaptive_avg_pool2d_reference_backward
)
registry.register("adaptive_avg_pool2d", "fast", adaptive_avg_pool2d_fast_forward, adaptive_avg_pool2d_fast_backward)

registry.set_validator("adaptive_max_pool2d", validate_adaptive_max_pool2d)
registry.register(
    "adaptive_max_pool2d", "reference", adaptive_max_pool2d_reference_forward, adaptive_max_pool2d_reference_backward
)
registry.register("adaptive_max_pool2d", "fast", adaptive_max_pool2d_fast_forward, adaptive_max_pool2d_fast_backward)
