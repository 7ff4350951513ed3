"""Pooling kernels over fixed windows: max_pool2d and avg_pool2d (adaptive_pool.py holds the
adaptive ops, whose windows follow from the output size).

Every op takes ``x`` of shape (N, C, H, W) (N may be 0; C, H, W may not) and config
arguments already normalised to pairs ``(h, w)``; the modules add the batch axis of an
unbatched (C, H, W) input. Each has a ``reference`` implementation (PyTorch's CPU kernel
written as plain loops) and a ``fast`` one (the default: strided views of the input, one
NumPy pass per kernel offset, no loop over pixels or batch items).

Output sizes follow PyTorch's ``pooling_output_shape`` (see :func:`pooling_output_size`).
The validators reject exactly what PyTorch rejects for float input, each with refcnn's own
message quoting the values.

Max pooling follows PyTorch's scan exactly, which fixes ties, NaN and ``-inf``: the window
is scanned row by row (the kernel row ``p`` outer, the column ``q`` inner), a value
replaces the running maximum if it is greater or NaN, and the running index starts at the
window's first position inside the input on both axes. So ties go to the first maximum,
the *last* NaN of a window wins, and a window of ``-inf`` points at its first element.
``ctx.indices`` are PyTorch's flat indices ``ih * W + iw`` into each (n, c) plane (int64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import registry
from ._checks import check_float, check_pair

Pair = tuple[int, int]


# ---- shapes ---------------------------------------------------------------------------------
def pooling_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's ``pooling_output_shape`` along one axis:

        out = floor_or_ceil((size + 2*pad - dilation*(kernel - 1) - 1) / stride) + 1

    and in ceil mode a last window that would start in the right padding (at or past
    ``size + pad``) is dropped. May return a value < 1 (the validators reject it).
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _output_hw(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool) -> Pair:
    H, W = x.shape[2], x.shape[3]
    H_out = pooling_output_size(H, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    W_out = pooling_output_size(W, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    return H_out, W_out


# ---- validators -----------------------------------------------------------------------------
def _check_x(op: str, x: Any) -> None:
    check_float(op, "x", x, 4)
    if 0 in x.shape[1:]:
        raise ValueError(
            f"{op}: x must be (N, C, H, W) with non-zero C, H and W (only N may be 0), got shape {x.shape}"
        )


def _check_bool(op: str, name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")


def _check_window(
    op: str, x: np.ndarray, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any
) -> None:
    """Checks shared by max_pool2d and avg_pool2d (PyTorch's pool2d_shape_check)."""
    _check_x(op, x)
    check_pair(op, "kernel_size", kernel_size, 1)
    check_pair(op, "stride", stride, 1)
    check_pair(op, "padding", padding, 0)
    check_pair(op, "dilation", dilation, 1)
    _check_bool(op, "ceil_mode", ceil_mode)
    # PyTorch checks pad <= kernel_size // 2 (the plain kernel, even when dilated).
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(
            f"{op}: padding must be at most half the kernel size (padding <= kernel_size // 2 on each "
            f"axis), got padding={padding}, kernel_size={kernel_size}"
        )
    H_out, W_out = _output_hw(x, kernel_size, stride, padding, dilation, ceil_mode)
    if H_out < 1 or W_out < 1:
        C, H, W = x.shape[1:]
        extra = f", dilation={dilation}" if op == "max_pool2d" else ""
        raise ValueError(
            f"{op}: given input size (C, H, W) = ({C}, {H}, {W}), calculated output size "
            f"({C}, {H_out}, {W_out}) is too small (kernel_size={kernel_size}, stride={stride}, "
            f"padding={padding}{extra}, ceil_mode={ceil_mode})"
        )


def validate_max_pool2d(x: Any, *, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any) -> None:
    _check_window("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)


def validate_avg_pool2d(
    x: Any,
    *,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: Any,
    count_include_pad: Any,
    divisor_override: Any,
) -> None:
    op = "avg_pool2d"
    _check_window(op, x, kernel_size, stride, padding, (1, 1), ceil_mode)
    _check_bool(op, "count_include_pad", count_include_pad)
    if divisor_override is not None:
        if not isinstance(divisor_override, (int, np.integer)) or isinstance(divisor_override, (bool, np.bool_)):
            raise TypeError(f"{op}: divisor_override must be None or an int, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must not be zero, got {divisor_override}")


# ---- max_pool2d -------------------------------------------------------------------------------
@dataclass
class MaxPoolCtx:
    """What max_pool2d's backward needs: the input's shape and the selected flat indices."""

    x_shape: tuple[int, ...]
    indices: np.ndarray
    kernel_size: Pair
    stride: Pair
    padding: Pair
    dilation: Pair


def _first_inside(out: int, stride: int, pad: int, dilation: int) -> np.ndarray:
    """Per output position along one axis, the first kernel offset whose input position
    ``o*stride - pad + p*dilation`` is >= 0 (PyTorch's ``while (ih0 < 0) ih0 += dilation``)."""
    start = np.arange(out, dtype=np.int64) * stride - pad
    return np.maximum(0, -(start // dilation))


def max_pool2d_reference_forward(
    x: np.ndarray, *, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool
) -> tuple[np.ndarray, MaxPoolCtx]:
    """Max over dilated windows (PyTorch's MaxPool2d), as PyTorch's CPU loop.

        y[n, c, i, j] = max_{p, q} x_pad[n, c, i*sH + p*dH, j*sW + q*dW]     (x_pad: -inf padding)
        indices[n, c, i, j] = ih * W + iw of the selected element

    Shapes: x (N, C, H, W), y and indices (N, C, H_out, W_out),
            H_out = pooling_output_size(H, kH, sH, pH, dH, ceil_mode), likewise W_out.
    Scan: row-major over the window; a value wins if it is greater than the running max or
    NaN; the running index starts at the first position at or after the window's start
    on both axes, so a window of -inf (or with no element inside the input, possible with
    dilation) keeps it.
    Backward: gx[n, c].flat[indices[n, c, i, j]] += gy[n, c, i, j], for windows that hold
    at least one input element (an empty window's output is a constant -inf).
    """
    N, C, H, W = x.shape
    kH, kW = kernel_size
    sH, sW = stride
    pH, pW = padding
    dH, dW = dilation
    H_out, W_out = _output_hw(x, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    indices = np.empty((N, C, H_out, W_out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    ih0, iw0 = i * sH - pH, j * sW - pW
                    while ih0 < 0:
                        ih0 += dH
                    while iw0 < 0:
                        iw0 += dW
                    best, best_index = -np.inf, ih0 * W + iw0
                    for p in range(kH):
                        ih = i * sH - pH + p * dH
                        for q in range(kW):
                            iw = j * sW - pW + q * dW
                            if 0 <= ih < H and 0 <= iw < W:
                                v = x[n, c, ih, iw]
                                if v > best or np.isnan(v):
                                    best, best_index = v, ih * W + iw
                    y[n, c, i, j] = best
                    indices[n, c, i, j] = best_index
    return y, MaxPoolCtx(x.shape, indices, kernel_size, stride, padding, dilation)


def max_pool2d_reference_backward(
    grad_y: np.ndarray, ctx: MaxPoolCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:  # a pool has no parameters: nothing to compute
        return (None,)
    N, C, H, W = ctx.x_shape
    kH, kW = ctx.kernel_size
    sH, sW = ctx.stride
    pH, pW = ctx.padding
    dH, dW = ctx.dilation
    grad_x = np.zeros(ctx.x_shape, dtype=grad_y.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(grad_y.shape[2]):
                for j in range(grad_y.shape[3]):
                    # the selected element, if the window holds it (an empty window does not)
                    for p in range(kH):
                        ih = i * sH - pH + p * dH
                        for q in range(kW):
                            iw = j * sW - pW + q * dW
                            if 0 <= ih < H and 0 <= iw < W and ih * W + iw == ctx.indices[n, c, i, j]:
                                grad_x[n, c, ih, iw] += grad_y[n, c, i, j]
    return (grad_x,)


class FastMaxPoolCtx:
    """The fast forward's context: the selected kernel offset ``code = p*kW + q`` of every
    output (int8/int16/int32), from which PyTorch's flat indices are derived on demand."""

    def __init__(
        self,
        x_shape: tuple[int, ...],
        code: np.ndarray,
        kernel_size: Pair,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        empty: np.ndarray | None,
    ) -> None:
        self.x_shape = x_shape
        self.code = code
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.empty = empty  # (H_out, W_out) bool: windows with no input element, or None
        self._indices: np.ndarray | None = None

    @property
    def indices(self) -> np.ndarray:
        """PyTorch's flat indices, derived on first use."""
        if self._indices is None:
            self._indices = self.flat_indices()
        return self._indices

    def flat_indices(self) -> np.ndarray:
        """PyTorch's flat indices: ih * W + iw with ih = i*sH - pH + p*dH, iw = j*sW - pW + q*dW,
        i.e. a per-window base (i*sH - pH)*W + (j*sW - pW) plus a per-offset step looked up
        by code = p*kW + q."""
        H_out, W_out = self.code.shape[2:]
        (kH, kW), (sH, sW), (pH, pW), (dH, dW) = self.kernel_size, self.stride, self.padding, self.dilation
        W = self.x_shape[3]
        o = np.arange(kH * kW, dtype=np.int64)
        step = (o // kW) * dH * W + (o % kW) * dW
        base = (np.arange(H_out) * sH - pH)[:, None] * W + (np.arange(W_out) * sW - pW)[None, :]
        return np.take(step, self.code) + base


def _clip(out: int, size: int, stride: int, shift: int) -> tuple[slice, slice] | None:
    """One axis, one kernel offset (shift = offset*dilation - pad): the outputs i whose input
    position i*stride + shift lies in [0, size), as a slice of outputs and the strided slice
    of inputs they read; None if there are none. Windows are clipped to the input this
    way instead of padding it (no padded copy to make, or to crop from a gradient)."""
    lo = max(0, -(shift // stride))  # ceil(-shift / stride)
    hi = min(out, -((shift - size) // stride))  # ceil((size - shift) / stride)
    if hi <= lo:
        return None
    start = lo * stride + shift
    return slice(lo, hi), slice(start, start + (hi - lo - 1) * stride + 1, stride)


def _offset_slices(
    out_hw: tuple[int, ...], x_hw: tuple[int, ...], stride: Pair, padding: Pair, dilation: Pair, p: int, q: int
) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """(outputs, inputs) index tuples of kernel offset (p, q): ``x[inputs]`` is the element at
    that offset of every window ``y[outputs]`` whose element is inside the input."""
    rows = _clip(out_hw[0], x_hw[0], stride[0], p * dilation[0] - padding[0])
    cols = _clip(out_hw[1], x_hw[1], stride[1], q * dilation[1] - padding[1])
    if rows is None or cols is None:
        return None
    return (Ellipsis, rows[0], cols[0]), (Ellipsis, rows[1], cols[1])


def _has_negative_zero(x: np.ndarray) -> bool:
    """Whether x holds a -0.0, in one pass: its bits, read as a signed integer of x's width,
    are that integer type's minimum, below every other float's."""
    width = np.int32 if x.dtype == np.float32 else np.int64
    bits = x.view(width)
    return bits.size > 0 and bits.min() == np.iinfo(width).min


def max_pool2d_fast_forward(
    x: np.ndarray, *, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool
) -> tuple[np.ndarray, FastMaxPoolCtx]:
    """Max pooling as one pass per kernel offset (same math as the reference).

    The input is padded with -inf (only when a window reaches outside it); for each kernel
    offset (p, q), in PyTorch's scan order, the strided view ``x_pad[:, :, p*dH::sH,
    q*dW::sW]`` holds that offset's element of every window at once. A running maximum
    (np.maximum, which propagates NaN) and the running winning offset ``code`` (updated
    where the view is strictly greater, branch-free: offsets only grow, so code becomes
    max(code, o * wins)) are updated per offset. Padding never wins (-inf is not > -inf), so ``code`` starts at each window's
    first offset inside the input, as PyTorch's index does. Windows whose maximum is NaN
    get the last NaN's offset in a second pass that only runs if the output has a NaN.
    (Padding once beats clipping each offset's view to the input here: whole-output
    operands keep NumPy's inner loops long.)
    """
    N, C, H, W = x.shape
    kH, kW = kernel_size
    (sH, sW), (dH, dW) = stride, dilation
    out_hw = _output_hw(x, kernel_size, stride, padding, dilation, ceil_mode)
    H_out, W_out = out_hw
    # rows/columns of the padded input every window fits in (ceil mode may pass the padding)
    Hp = max(padding[0] + H, (H_out - 1) * sH + (kH - 1) * dH + 1)
    Wp = max(padding[1] + W, (W_out - 1) * sW + (kW - 1) * dW + 1)
    if (Hp, Wp) != (H, W):
        xp = np.full((N, C, Hp, Wp), -np.inf, dtype=x.dtype)
        xp[:, :, padding[0] : padding[0] + H, padding[1] : padding[1] + W] = x
    else:
        xp = x

    def at(o: int) -> np.ndarray:  # offset o's element of every window
        p, q = divmod(o, kW)
        return xp[:, :, p * dH : p * dH + (H_out - 1) * sH + 1 : sH, q * dW : q * dW + (W_out - 1) * sW + 1 : sW]

    code_dtype = np.int8 if kH * kW <= 127 else (np.int16 if kH * kW <= 32767 else np.int32)
    # without padding every window starts inside the input (so it holds an element, too)
    padded = bool(padding[0] or padding[1])
    p0 = _first_inside(H_out, sH, padding[0], dH) if padded else None
    q0 = _first_inside(W_out, sW, padding[1], dW) if padded else None
    if p0 is not None and q0 is not None and (p0.any() or q0.any()):
        start = (p0[:, None] * kW + q0[None, :]).astype(code_dtype)
        code = np.broadcast_to(start, (N, C, H_out, W_out)).copy()  # C order (np.array would keep odd strides)
        y = np.full((N, C, H_out, W_out), -np.inf, dtype=x.dtype)
        first = 0
    else:  # every window starts inside the input: offset (0, 0) is the first candidate
        code = np.zeros((N, C, H_out, W_out), dtype=code_dtype)
        y = at(0).copy()
        first = 1
    wins = np.empty(y.shape, dtype=bool)
    o_wins = wins.view(np.int8) if code_dtype is np.int8 else np.empty(y.shape, dtype=code_dtype)
    v = np.empty_like(y)  # each offset's view, copied once: two passes over contiguous data beat two strided ones
    for o in range(first, kH * kW):
        np.copyto(v, at(o))
        np.greater(v, y, out=wins)
        np.maximum(y, v, out=y)
        # code = o where wins, without a branchy masked write: o exceeds every offset code
        # holds (the earlier ones, or a first offset inside, which an outside o never beats)
        np.multiply(wins, code_dtype(o), out=o_wins)
        np.maximum(code, o_wins, out=code)
    if np.isnan(y).any():  # the last NaN of each NaN window wins, as in PyTorch's scan
        has_nan = np.isnan(y)
        for o in range(kH * kW):
            code[has_nan & np.isnan(at(o))] = o
    # np.maximum returns either of two equal zeros (+0.0 or -0.0, by the machine's SIMD
    # instruction); PyTorch's is the window's first maximum, the one code points at. Only an
    # input holding a -0.0 can mix the two (a ReLU's output of real data holds none: no gather)
    if _has_negative_zero(x):
        zero = np.nonzero(y == 0)
        p, q = np.divmod(code[zero].astype(np.intp), kW)
        y[zero] = xp[zero[0], zero[1], zero[2] * sH + p * dH, zero[3] * sW + q * dW]
    # a padded window can hold no input element (dilation skipping over a small input): it
    # yields -inf, its index points outside it, and it passes no gradient
    empty = None
    if p0 is not None and q0 is not None:
        empty_rows = (np.arange(H_out) * stride[0] - padding[0] + p0 * dilation[0]) >= H
        empty_cols = (np.arange(W_out) * stride[1] - padding[1] + q0 * dilation[1]) >= W
        if empty_rows.any() or empty_cols.any():
            empty = empty_rows[:, None] | empty_cols[None, :]
    return y, FastMaxPoolCtx(x.shape, code, kernel_size, stride, padding, dilation, empty)


def max_pool2d_fast_backward(
    grad_y: np.ndarray, ctx: FastMaxPoolCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    """Scatter gy to the selected elements, two ways.

    Windows apart on both axes (no element in two windows): for each kernel offset o, the
    outputs that selected o write their gradient into the strided view of offset o of the
    input gradient (distinct outputs of one offset hit distinct positions; an empty
    window's choice lies outside the input, so is never written), as gy's bits times the
    0/1 choice, in integers (exact for any gy: a float product would make inf * 0 a NaN).
    Windows that tile the input (stride = kernel, no padding or dilation) write every
    element they cover, so only the rows and columns past the last window are zeroed
    first. Overlapping windows: one
    np.bincount over the flat positions (n*C + c)*H*W + index, weighted by gy
    (accumulated in float64, rounded once), empty windows weighted 0.
    """
    if not needs_input_grad:  # a pool has no parameters: nothing to compute
        return (None,)
    N, C, H, W = ctx.x_shape
    kH, kW = ctx.kernel_size
    (sH, sW), (dH, dW) = ctx.stride, ctx.dilation
    if not (sH >= (kH - 1) * dH + 1 and sW >= (kW - 1) * dW + 1):
        planes = np.arange(N * C, dtype=np.int64).reshape(N, C, 1, 1) * (H * W)
        flat, weights = planes + ctx.indices, grad_y
        if ctx.empty is not None:
            flat, weights = np.where(ctx.empty, 0, flat), np.where(ctx.empty, 0, grad_y)
        grad_x = np.bincount(flat.ravel(), weights=weights.ravel(), minlength=N * C * H * W)
        return (grad_x.reshape(ctx.x_shape).astype(grad_y.dtype),)
    H_out, W_out = grad_y.shape[2:]
    if (sH, sW) == (kH, kW) and (dH, dW) == (1, 1) and ctx.padding == (0, 0):
        grad_x = np.empty(ctx.x_shape, dtype=grad_y.dtype)
        grad_x[:, :, H_out * kH :] = 0
        grad_x[:, :, : H_out * kH, W_out * kW :] = 0
    else:
        grad_x = np.zeros(ctx.x_shape, dtype=grad_y.dtype)
    bits = np.dtype(f"i{grad_y.dtype.itemsize}")
    # + 0.0 turns a -0.0 into +0.0, as PyTorch's zero-filled gradient plus gy does
    gy_bits, gx_bits = (grad_y + 0.0).view(bits), grad_x.view(bits)
    chosen = np.empty(grad_y.shape, dtype=bool)
    for o in range(kH * kW):
        where = _offset_slices((H_out, W_out), (H, W), ctx.stride, ctx.padding, ctx.dilation, o // kW, o % kW)
        if where is None:
            continue
        out, inp = where
        np.equal(ctx.code[out], o, out=chosen[out])
        np.multiply(gy_bits[out], chosen[out], out=gx_bits[inp])
    return (grad_x,)


# ---- avg_pool2d -------------------------------------------------------------------------------
@dataclass
class AvgPoolCtx:
    """What avg_pool2d's backward needs: the input's shape, the config and the divisors."""

    x_shape: tuple[int, ...]
    kernel_size: Pair
    stride: Pair
    padding: Pair
    divisor: np.ndarray  # (H_out, W_out), float64


def _avg_divisor(
    H: int,
    W: int,
    out_hw: Pair,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    """PyTorch's divide_factor per output position, shape (H_out, W_out):
    divisor_override if given; else with count_include_pad the window's size clipped to
    the padded input (a ceil-mode window past the right padding counts only what is inside
    it); else the number of input elements in the window."""
    if divisor_override is not None:
        return np.full(out_hw, float(divisor_override))

    def one_axis(out: int, size: int, k: int, s: int, pad: int) -> np.ndarray:
        start = np.arange(out, dtype=np.int64) * s - pad
        end = np.minimum(start + k, size + pad)
        if count_include_pad:
            return end - start
        return np.minimum(end, size) - np.maximum(start, 0)

    rows = one_axis(out_hw[0], H, kernel_size[0], stride[0], padding[0])
    cols = one_axis(out_hw[1], W, kernel_size[1], stride[1], padding[1])
    return (rows[:, None] * cols[None, :]).astype(np.float64)


def avg_pool2d_reference_forward(
    x: np.ndarray,
    *,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> tuple[np.ndarray, AvgPoolCtx]:
    """Average over windows (PyTorch's AvgPool2d), as PyTorch's CPU loop.

        y[n, c, i, j] = (sum_{ih, iw in window(i, j), inside x} x[n, c, ih, iw]) / D[i, j]
        window(i, j) = rows [i*sH - pH, min(i*sH - pH + kH, H + pH)), likewise columns

    D = divisor_override if given, else the window's size (count_include_pad, padding
    counted, the part past the right padding not) or its number of input elements.
    Shapes: x (N, C, H, W), y (N, C, H_out, W_out), H_out = pooling_output_size(H, kH,
    sH, pH, 1, ceil_mode), likewise W_out.
    Backward: gx[n, c, ih, iw] = sum over the windows (i, j) holding (ih, iw) of
    gy[n, c, i, j] / D[i, j].
    """
    N, C, H, W = x.shape
    kH, kW = kernel_size
    sH, sW = stride
    pH, pW = padding
    H_out, W_out = _output_hw(x, kernel_size, stride, padding, (1, 1), ceil_mode)
    divisor = _avg_divisor(H, W, (H_out, W_out), kernel_size, stride, padding, count_include_pad, divisor_override)
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    total = np.float64(0)  # in float64, rounded once: a large window drifts in float32
                    for ih in range(max(i * sH - pH, 0), min(i * sH - pH + kH, H)):
                        for iw in range(max(j * sW - pW, 0), min(j * sW - pW + kW, W)):
                            total += x[n, c, ih, iw]
                    y[n, c, i, j] = total / divisor[i, j]
    return y, AvgPoolCtx(x.shape, kernel_size, stride, padding, divisor)


def avg_pool2d_reference_backward(
    grad_y: np.ndarray, ctx: AvgPoolCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:  # a pool has no parameters: nothing to compute
        return (None,)
    N, C, H, W = ctx.x_shape
    kH, kW = ctx.kernel_size
    sH, sW = ctx.stride
    pH, pW = ctx.padding
    grad_x = np.zeros(ctx.x_shape, dtype=grad_y.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(grad_y.shape[2]):
                for j in range(grad_y.shape[3]):
                    share = grad_y[n, c, i, j] / grad_y.dtype.type(ctx.divisor[i, j])
                    for ih in range(max(i * sH - pH, 0), min(i * sH - pH + kH, H)):
                        for iw in range(max(j * sW - pW, 0), min(j * sW - pW + kW, W)):
                            grad_x[n, c, ih, iw] += share
    return (grad_x,)


def avg_pool2d_fast_forward(
    x: np.ndarray,
    *,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> tuple[np.ndarray, AvgPoolCtx]:
    """Window sums are separable: the input is summed over the kH kernel rows (one strided
    view per row offset, clipped to the windows where that row is inside the input, so no
    padded copy), then over the kW kernel columns, and divided by the per-position divisor.
    kH + kW passes instead of kH * kW."""
    N, C, H, W = x.shape
    kH, kW = kernel_size
    out_hw = _output_hw(x, kernel_size, stride, padding, (1, 1), ceil_mode)
    H_out, W_out = out_hw
    divisor = _avg_divisor(H, W, out_hw, kernel_size, stride, padding, count_include_pad, divisor_override)
    rows = np.zeros((N, C, H_out, W), dtype=x.dtype)
    for p in range(kH):
        r = _clip(H_out, H, stride[0], p - padding[0])
        if r is not None:
            rows[:, :, r[0]] += x[:, :, r[1]]
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for q in range(kW):
        c = _clip(W_out, W, stride[1], q - padding[1])
        if c is not None:
            y[..., c[0]] += rows[..., c[1]]
    y /= divisor.astype(x.dtype)
    return y, AvgPoolCtx(x.shape, kernel_size, stride, padding, divisor)


def avg_pool2d_fast_backward(
    grad_y: np.ndarray, ctx: AvgPoolCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    """The forward's separable sums transposed: gy / D is spread over the kW column offsets
    (adds into strided views, clipped to the input), then over the kH row offsets."""
    if not needs_input_grad:  # a pool has no parameters: nothing to compute
        return (None,)
    N, C, H, W = ctx.x_shape
    kH, kW = ctx.kernel_size
    H_out, W_out = grad_y.shape[2:]
    share = grad_y / ctx.divisor.astype(grad_y.dtype)
    cols = np.zeros((N, C, H_out, W), dtype=grad_y.dtype)
    for q in range(kW):
        c = _clip(W_out, W, ctx.stride[1], q - ctx.padding[1])
        if c is not None:
            cols[..., c[1]] += share[..., c[0]]
    grad_x = np.zeros(ctx.x_shape, dtype=grad_y.dtype)
    for p in range(kH):
        r = _clip(H_out, H, ctx.stride[0], p - ctx.padding[0])
        if r is not None:
            grad_x[:, :, r[1]] += cols[:, :, r[0]]
    return (grad_x,)


# ---- registration -----------------------------------------------------------------------------
registry.set_validator("max_pool2d", validate_max_pool2d)
registry.register("max_pool2d", "reference", max_pool2d_reference_forward, max_pool2d_reference_backward)
registry.register("max_pool2d", "fast", max_pool2d_fast_forward, max_pool2d_fast_backward)

registry.set_validator("avg_pool2d", validate_avg_pool2d)
registry.register("avg_pool2d", "reference", avg_pool2d_reference_forward, avg_pool2d_reference_backward)
registry.register("avg_pool2d", "fast", avg_pool2d_fast_forward, avg_pool2d_fast_backward)
