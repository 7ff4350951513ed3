"""Convolution kernels: ``conv2d`` and ``conv_transpose2d`` (torch.nn.functional's).

conv2d is a cross-correlation (no kernel flip), channels split into ``groups``::

    y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] * x_pad[n, g*Cg + c, i*sH + p*dH, j*sW + q*dW]

with g = o // (C_out/groups), Cg = C_in/groups and x_pad = x zero-padded by (pH, pW) on both
sides of each axis.

Shapes: x (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW), bias (C_out,) or None,
        y (N, C_out, H_out, W_out), H_out = (H + 2*pH - dH*(kH - 1) - 1) // sH + 1 (W alike).
Backward, each sum running over the (n, o, i, j, p, q) that meet inside x_pad:
        gx_pad[n, g*Cg + c, i*sH + p*dH, j*sW + q*dW] += w[o, c, p, q] * gy[n, o, i, j]
        gw[o, c, p, q] = sum_{n, i, j} gy[n, o, i, j] * x_pad[n, g*Cg + c, i*sH + p*dH, j*sW + q*dW]
        gb[o] = sum_{n, i, j} gy[n, o, i, j];  gx = gx_pad without its padding.

conv_transpose2d is the adjoint of conv2d in its input: its forward is conv2d's input
gradient (with its x in the role of conv2d's gy), its backward is conv2d's forward (for gx)
and conv2d's weight gradient (for gw)::

    y_pad[n, g*Og + c, i*sH + p*dH, j*sW + q*dW] += x[n, ci, i, j] * w[ci, c, p, q]  (ci in group g)
    y = b + y_pad cropped by (pH, pW) at the top/left

Shapes: x (N, C_in, H, W), weight (C_in, C_out/groups, kH, kW) (PyTorch's layout),
        y (N, C_out, H_out, W_out), H_out = (H - 1)*sH - 2*pH + dH*(kH - 1) + opH + 1.
The output padding opH adds rows at the bottom that only the bias reaches (and the windows
of x's last row, when they extend that far).

Both ops are built from three pieces of conv2d math, each with explicit sizes so that
conv_transpose2d can reuse them: ``correlate`` (the forward sum without bias),
``input_grad`` (gx) and ``weight_grad`` (gw). Implementations: ``reference`` (loops over
every output element, written to be read; small shapes) and ``fast`` (im2col + BLAS
products, no Python loop over pixels or batch items; the default). Config arguments
arrive as pairs of ints; padding is symmetric, the module pads anything else itself.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import registry
from ._checks import check_float, check_pair, check_same_dtype

__all__ = [
    "conv_output_size", "conv_transpose_output_size", "validate_conv2d", "validate_conv_transpose2d",
    "conv2d_reference_forward", "conv2d_reference_backward", "conv2d_fast_forward", "conv2d_fast_backward",
    "conv_transpose2d_reference_forward", "conv_transpose2d_reference_backward",
    "conv_transpose2d_fast_forward", "conv_transpose2d_fast_backward", "release_workspace",
]  # fmt: skip

Pair = tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis (PyTorch's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(
    size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int
) -> int:
    """Output length of a transposed convolution along one axis (PyTorch's formula)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


@dataclass(frozen=True)
class _Ctx:
    """What backward keeps: the op's input and weight, whether it had a bias, the config."""

    x: np.ndarray
    weight: np.ndarray
    has_bias: bool
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int


# ---- validation ------------------------------------------------------------------------
def _check_common(op: str, x: Any, weight: Any, bias: Any, groups: Any, **pairs: tuple[Any, int]) -> None:
    """Types, ranks and dtypes of the arrays; the config pairs (value, minimum); groups."""
    check_float(op, "x", x, 4)
    check_float(op, "weight", weight, 4)
    if bias is not None:
        check_float(op, "bias", bias, 1)
    check_same_dtype(op, x=x, weight=weight, bias=bias)
    for name, (value, minimum) in pairs.items():
        check_pair(op, name, value, minimum)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {groups}")
    if min(weight.shape) < 1:
        raise ValueError(f"{op}: weight must have no empty dimension, got shape {weight.shape}")


def validate_conv2d(x: Any, weight: Any, bias: Any, *, stride: Any, padding: Any, dilation: Any, groups: Any) -> None:
    """PyTorch's checks for F.conv2d (with padding already a pair): float arrays of one
    dtype, x 4-D, weight 4-D, bias 1-D of C_out; x's channels = weight's in-channels x
    groups; groups divides C_out; the dilated kernel fits in the padded input."""
    op = "conv2d"
    _check_common(op, x, weight, bias, groups, stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1))
    C_out, C_per_group, kH, kW = weight.shape
    if C_out % groups != 0:
        raise ValueError(f"{op}: groups={groups} must divide the output channels, got weight of shape {weight.shape}")
    if x.shape[1] != C_per_group * groups:
        raise ValueError(
            f"{op}: weight of shape {weight.shape} with groups={groups} expects an input with "
            f"{C_per_group * groups} channels, got input of shape {x.shape}"
        )
    if bias is not None and bias.shape != (C_out,):
        raise ValueError(f"{op}: bias must have shape ({C_out},) for weight of shape {weight.shape}, got {bias.shape}")
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    extent = (dilation[0] * (kH - 1) + 1, dilation[1] * (kW - 1) + 1)
    if padded[0] < extent[0] or padded[1] < extent[1]:
        raise ValueError(
            f"{op}: calculated padded input size per channel: ({padded[0]} x {padded[1]}); kernel size "
            f"(dilated): ({extent[0]} x {extent[1]}); the kernel can't be larger than the padded input "
            f"(input shape {x.shape}, padding {padding}, dilation {dilation})"
        )


def validate_conv_transpose2d(
    x: Any, weight: Any, bias: Any, *, stride: Any, padding: Any, output_padding: Any, dilation: Any, groups: Any
) -> None:
    """PyTorch's checks for F.conv_transpose2d: as conv2d's, with weight (C_in, C_out/groups,
    kH, kW); output_padding below stride or dilation on each axis; an output of at least
    one pixel."""
    op = "conv_transpose2d"
    _check_common(
        op, x, weight, bias, groups,
        stride=(stride, 1), padding=(padding, 0), output_padding=(output_padding, 0), dilation=(dilation, 1),
    )  # fmt: skip
    C_in, C_out_per_group = weight.shape[:2]
    if C_in % groups != 0:
        raise ValueError(f"{op}: groups={groups} must divide the input channels, got weight of shape {weight.shape}")
    if x.shape[1] != C_in:
        raise ValueError(
            f"{op}: weight of shape {weight.shape} expects an input with {C_in} channels, got input of shape {x.shape}"
        )
    C_out = C_out_per_group * groups
    if bias is not None and bias.shape != (C_out,):
        raise ValueError(
            f"{op}: bias must have shape ({C_out},) for weight of shape {weight.shape} and groups={groups}, "
            f"got {bias.shape}"
        )
    for axis in (0, 1):
        if output_padding[axis] >= stride[axis] and output_padding[axis] >= dilation[axis]:
            raise ValueError(
                f"{op}: output padding must be smaller than either stride or dilation, got "
                f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
            )
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{op}: input must have a non-empty height and width, got shape {x.shape}")
    out = tuple(
        conv_transpose_output_size(x.shape[2 + a], weight.shape[2 + a], stride[a], padding[a], output_padding[a],
                                   dilation[a])
        for a in (0, 1)
    )  # fmt: skip
    if min(out) < 1:
        raise ValueError(
            f"{op}: given input size per channel: ({x.shape[2]} x {x.shape[3]}); calculated output size per "
            f"channel: ({out[0]} x {out[1]}); the output size is too small (padding {padding})"
        )


registry.set_validator("conv2d", validate_conv2d)
registry.set_validator("conv_transpose2d", validate_conv_transpose2d)


# ---- reference: one output element at a time ---------------------------------------------
def _window(top: int, left: int, kernel: Pair, dilation: Pair) -> tuple[slice, slice]:
    """The rows and columns of x_pad that kernel offsets (0..kH-1, 0..kW-1) meet from (top, left)."""
    return (
        slice(top, top + dilation[0] * (kernel[0] - 1) + 1, dilation[0]),
        slice(left, left + dilation[1] * (kernel[1] - 1) + 1, dilation[1]),
    )


def _pad(x: np.ndarray, padding: Pair) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))


def _reference_correlate(
    x: np.ndarray, weight: np.ndarray, out_hw: Pair, stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> np.ndarray:
    """y[n, o, i, j] = sum(window of x_pad at (i*sH, j*sW) * w[o]), no bias; y is (N, C_out, *out_hw)."""
    N = x.shape[0]
    C_out, C_per_group, kH, kW = weight.shape
    out_per_group = C_out // groups
    x_pad = _pad(x, padding)
    y = np.zeros((N, C_out, *out_hw), dtype=x.dtype)
    for n in range(N):
        for o in range(C_out):
            g = o // out_per_group
            channels = slice(g * C_per_group, (g + 1) * C_per_group)
            for i in range(out_hw[0]):
                for j in range(out_hw[1]):
                    rows, cols = _window(i * stride[0], j * stride[1], (kH, kW), dilation)
                    y[n, o, i, j] = np.sum(x_pad[n, channels, rows, cols] * weight[o])
    return y


def _reference_input_grad(
    grad_y: np.ndarray, weight: np.ndarray, in_hw: Pair, stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> np.ndarray:
    """gx (N, C_in, *in_hw): each gy[n, o, i, j] * w[o] added into the window it came from."""
    N, C_out, H_out, W_out = grad_y.shape
    _, C_per_group, kH, kW = weight.shape
    out_per_group = C_out // groups
    gx_pad = np.zeros((N, C_per_group * groups, in_hw[0] + 2 * padding[0], in_hw[1] + 2 * padding[1]), grad_y.dtype)
    for n in range(N):
        for o in range(C_out):
            g = o // out_per_group
            channels = slice(g * C_per_group, (g + 1) * C_per_group)
            for i in range(H_out):
                for j in range(W_out):
                    rows, cols = _window(i * stride[0], j * stride[1], (kH, kW), dilation)
                    gx_pad[n, channels, rows, cols] += grad_y[n, o, i, j] * weight[o]
    return gx_pad[:, :, padding[0] : padding[0] + in_hw[0], padding[1] : padding[1] + in_hw[1]].copy()


def _reference_weight_grad(
    x: np.ndarray, grad_y: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> np.ndarray:
    """gw (C_out, C_in/groups, kH, kW): each gy[n, o, i, j] times the window it came from, summed."""
    N, C_out, H_out, W_out = grad_y.shape
    C_per_group = x.shape[1] // groups
    out_per_group = C_out // groups
    x_pad = _pad(x, padding)
    gw = np.zeros((C_out, C_per_group, *kernel), dtype=x.dtype)
    for n in range(N):
        for o in range(C_out):
            g = o // out_per_group
            channels = slice(g * C_per_group, (g + 1) * C_per_group)
            for i in range(H_out):
                for j in range(W_out):
                    rows, cols = _window(i * stride[0], j * stride[1], kernel, dilation)
                    gw[o] += grad_y[n, o, i, j] * x_pad[n, channels, rows, cols]
    return gw


def _add_bias(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if bias is not None:
        y += bias[:, None, None]
    return y


def _bias_grad(grad_y: np.ndarray, has_bias: bool) -> np.ndarray | None:
    return grad_y.sum(axis=(0, 2, 3)) if has_bias else None


def _conv2d_out_hw(x: np.ndarray, weight: np.ndarray, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    return (
        conv_output_size(x.shape[2], weight.shape[2], stride[0], padding[0], dilation[0]),
        conv_output_size(x.shape[3], weight.shape[3], stride[1], padding[1], dilation[1]),
    )


def _transpose_out_hw(x: np.ndarray, weight: np.ndarray, stride: Pair, padding: Pair, output_padding: Pair,
                      dilation: Pair) -> Pair:  # fmt: skip
    return (
        conv_transpose_output_size(x.shape[2], weight.shape[2], stride[0], padding[0], output_padding[0], dilation[0]),
        conv_transpose_output_size(x.shape[3], weight.shape[3], stride[1], padding[1], output_padding[1], dilation[1]),
    )


def conv2d_reference_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,
    stride: Pair, padding: Pair, dilation: Pair, groups: int,
) -> tuple[np.ndarray, _Ctx]:  # fmt: skip
    """The module docstring's forward formula, one output element (n, o, i, j) at a time."""
    out_hw = _conv2d_out_hw(x, weight, stride, padding, dilation)
    y = _add_bias(_reference_correlate(x, weight, out_hw, stride, padding, dilation, groups), bias)
    return y, _Ctx(x, weight, bias is not None, stride, padding, dilation, groups)


def conv2d_reference_backward(grad_y: np.ndarray, ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """gx, gw, gb by the module docstring's backward formulas, one gy element at a time."""
    x, w = ctx.x, ctx.weight
    config = (ctx.stride, ctx.padding, ctx.dilation, ctx.groups)
    gx = _reference_input_grad(grad_y, w, (x.shape[2], x.shape[3]), *config)
    gw = _reference_weight_grad(x, grad_y, (w.shape[2], w.shape[3]), *config)
    return gx, gw, _bias_grad(grad_y, ctx.has_bias)


def conv_transpose2d_reference_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,
    stride: Pair, padding: Pair, output_padding: Pair, dilation: Pair, groups: int,
) -> tuple[np.ndarray, _Ctx]:  # fmt: skip
    """y = b + conv2d's input gradient for gy = x, onto an image of the output's size."""
    out_hw = _transpose_out_hw(x, weight, stride, padding, output_padding, dilation)
    y = _add_bias(_reference_input_grad(x, weight, out_hw, stride, padding, dilation, groups), bias)
    return y, _Ctx(x, weight, bias is not None, stride, padding, dilation, groups)


def conv_transpose2d_reference_backward(
    grad_y: np.ndarray, ctx: _Ctx
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """gx = conv2d(gy, w) (no bias) on x's grid; gw = conv2d's weight gradient with gy as
    conv2d's input and x as its output gradient; gb = sum of gy over (n, i, j)."""
    x, w = ctx.x, ctx.weight
    config = (ctx.stride, ctx.padding, ctx.dilation, ctx.groups)
    gx = _reference_correlate(grad_y, w, (x.shape[2], x.shape[3]), *config)
    gw = _reference_weight_grad(grad_y, x, (w.shape[2], w.shape[3]), *config)
    return gx, gw, _bias_grad(grad_y, ctx.has_bias)


# ---- fast: im2col in a channels-first, stride-phase layout + one BLAS product per group ----
_local = threading.local()


def _scratch(role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A scratch array for one role in this thread, reused across calls (contents undefined).

    The fast kernels' temporaries are big and short-lived; allocating them afresh costs a
    page fault per 4 KiB on every call, which is a large share of a small convolution's
    time. Three roles: "image" (a phase buffer, read by im2col or written by col2im),
    "cols" (the columns, or their gradient) and "rows" (a product's (C_out, L) side: its
    output, or gy). Within one call each role holds one live array at a time, so sharing a
    role keeps the working set (and the cache misses) small. Nothing in scratch ever
    escapes a kernel call: outputs are always fresh arrays. ``release_workspace()`` frees
    the buffers of the calling thread.
    """
    buffers: dict[tuple[str, np.dtype], np.ndarray] = _local.__dict__.setdefault("buffers", {})
    size = math.prod(shape)
    buf = buffers.get((role, dtype))
    if buf is None or buf.size < size:
        buf = buffers[(role, dtype)] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def release_workspace() -> None:
    """Free the scratch buffers the fast conv kernels keep for the calling thread."""
    _local.__dict__.pop("buffers", None)


@dataclass(frozen=True)
class _Geometry:
    """Where a conv2d's windows lie in the buffer the fast kernel copies its image into.

    The image (conv2d's input; a transposed conv's output) is (N, C, H, W), zero-padded by
    (pH, pW); the windows give an (H_out, W_out) grid. The buffer is (C, N, sH, sW, Hq, Wq):
    the padded image split into its sH*sW stride phases, phase (a, b) holding padded rows
    a, a + sH, ... and columns b, b + sW, ... Kernel offset (p, q) with p*dH = u*sH + a and
    q*dW = v*sW + b then reads phase (a, b) from (u, v) on with stride 1: windows of a strided
    convolution are plain shifted views. In the *wide* layout each output row is computed
    over the whole phase row (Wc = Wq columns, the last Wq - W_out discarded), so an offset's
    view is one contiguous run per (c, n); a spare zero row at the bottom of each phase takes
    the last run's overhang. Otherwise Wc = W_out.
    """

    N: int
    C: int
    H: int
    W: int
    C_out: int
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int
    H_out: int
    W_out: int
    wide_ok: bool

    @property
    def Wq(self) -> int:
        return -(-(self.W + 2 * self.padding[1]) // self.stride[1])

    @property
    def Hq(self) -> int:
        return -(-(self.H + 2 * self.padding[0]) // self.stride[0]) + 1

    @property
    def wide(self) -> bool:
        # Whole phase rows cost Wq - W_out extra columns in every product: worth it (long
        # contiguous copies) while they are at most as many as the real ones.
        return self.wide_ok and self.Wq <= 2 * self.W_out

    @property
    def Wc(self) -> int:
        return self.Wq if self.wide else self.W_out

    @property
    def K(self) -> int:
        """Reduction length of one group's product: channels per group x kernel offsets."""
        return self.C // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def L(self) -> int:
        """Columns of the products: every (n, i, j) of the (wide) output grid."""
        return self.N * self.H_out * self.Wc

    def phase_slices(self, a: int, b: int) -> tuple[slice, slice, slice, slice]:
        """Image rows/columns that land in phase (a, b), and where they land in it."""
        pH, pW = self.padding
        sH, sW = self.stride
        top, left = -(-(pH - a) // sH), -(-(pW - b) // sW)  # first phase row/col inside the image
        rows = range(top * sH + a - pH, self.H, sH)
        cols = range(left * sW + b - pW, self.W, sW)
        return (
            slice(rows.start, self.H, sH), slice(cols.start, self.W, sW),
            slice(top, top + len(rows)), slice(left, left + len(cols)),
        )  # fmt: skip


def _geometry(image: tuple[int, ...], weight: np.ndarray, out_hw: tuple[int, ...], stride: Pair, padding: Pair,
              dilation: Pair, groups: int, *zero_times: np.ndarray) -> _Geometry:  # fmt: skip
    """The geometry of one call. ``zero_times``: the arrays whose entries meet the zeros of the
    wide layout's extra columns in a product that is kept (gw, gx); the wide layout is used
    only if they are all finite, as inf * 0 = nan would leak into the result. (Their sum is
    finite if they are; a false alarm from overflow only costs the narrow layout.)"""
    N, C, H, W = image
    wide_ok = all(math.isfinite(float(np.sum(a))) for a in zero_times)
    return _Geometry(N, C, H, W, weight.shape[0], (weight.shape[2], weight.shape[3]), stride, padding, dilation,
                     groups, out_hw[0], out_hw[1], wide_ok)  # fmt: skip


def _phased(image: np.ndarray, geo: _Geometry) -> np.ndarray:
    """image (N, C, H, W) copied into the zeroed (C, N, sH, sW, Hq, Wq) scratch buffer."""
    sH, sW = geo.stride
    buf = _scratch("image", (geo.C, geo.N, sH, sW, geo.Hq, geo.Wq), image.dtype)
    buf[...] = 0
    for a in range(sH):
        for b in range(sW):
            rows, cols, phase_rows, phase_cols = geo.phase_slices(a, b)
            buf[:, :, a, b, phase_rows, phase_cols] = image[:, :, rows, cols].transpose(1, 0, 2, 3)
    return buf


def _unphased(buf: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The adjoint of _phased: a fresh (N, C, H, W) array of the image part of buf."""
    out = np.empty((geo.N, geo.C, geo.H, geo.W), dtype=buf.dtype)
    for a in range(geo.stride[0]):
        for b in range(geo.stride[1]):
            rows, cols, phase_rows, phase_cols = geo.phase_slices(a, b)
            out[:, :, rows, cols] = buf[:, :, a, b, phase_rows, phase_cols].transpose(1, 0, 2, 3)
    return out


def _offset_view(buf: np.ndarray, geo: _Geometry, p: int, q: int) -> np.ndarray:
    """The (C, N, H_out, Wc) view of buf that kernel offset (p, q) meets: element (c, n, i, j)
    is x_pad[n, c, i*sH + p*dH, j*sW + q*dW] (a wide row runs on into the next phase row)."""
    (u, a), (v, b) = divmod(p * geo.dilation[0], geo.stride[0]), divmod(q * geo.dilation[1], geo.stride[1])
    start = ((a * geo.stride[1] + b) * geo.Hq + u) * geo.Wq + v
    block = math.prod(buf.shape[2:])
    # The last element read lies inside the (c, n) block (the spare row takes the overhang):
    # as_strided does not check bounds, so this is checked here.
    assert start + (geo.H_out - 1) * geo.Wq + geo.Wc <= block, (geo, p, q)
    flat = buf.reshape(geo.C, geo.N, block)[:, :, start:]
    return as_strided(flat, (geo.C, geo.N, geo.H_out, geo.Wc), (*buf.strides[:2], *buf.strides[4:]))


def _im2col(image: np.ndarray, geo: _Geometry) -> np.ndarray:
    """cols (groups, K, L): cols[g, (c, p, q), (n, i, j)] = x_pad[n, g*Cg + c, i*sH + p*dH, j*sW + q*dW]."""
    buf = _phased(image, geo)
    kH, kW = geo.kernel
    cols = _scratch("cols", (geo.C, kH, kW, geo.N, geo.H_out, geo.Wc), image.dtype)
    for p in range(kH):
        for q in range(kW):
            cols[:, p, q] = _offset_view(buf, geo, p, q)
    return cols.reshape(geo.groups, geo.K, geo.L)


def _col2im(dcols: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The adjoint of _im2col: every column entry added back where it was read; a fresh
    (N, C, H, W) array without the padding."""
    kH, kW = geo.kernel
    buf = _scratch("image", (geo.C, geo.N, *geo.stride, geo.Hq, geo.Wq), dcols.dtype)
    buf[...] = 0
    parts = dcols.reshape(geo.C, kH, kW, geo.N, geo.H_out, geo.Wc)
    for p in range(kH):
        for q in range(kW):
            _offset_view(buf, geo, p, q)[...] += parts[:, p, q]
    return _unphased(buf, geo)


def _to_rows(grad: np.ndarray, geo: _Geometry) -> np.ndarray:
    """(N, C_out, H_out, W_out) -> (groups, C_out/groups, L) in the output grid's column order,
    the wide layout's extra columns zero (so they add nothing to any product)."""
    rows = _scratch("rows", (geo.C_out, geo.N, geo.H_out, geo.Wc), grad.dtype)
    rows[..., geo.W_out :] = 0
    rows[..., : geo.W_out] = grad.transpose(1, 0, 2, 3)
    return rows.reshape(geo.groups, geo.C_out // geo.groups, geo.L)


def _from_rows(rows: np.ndarray, geo: _Geometry, bias: np.ndarray | None) -> np.ndarray:
    """(groups, C_out/groups, L) -> a fresh (N, C_out, H_out, W_out) array (+ bias): the
    transpose back to batch-first and the bias add are one pass."""
    grid = rows.reshape(geo.C_out, geo.N, geo.H_out, geo.Wc)[..., : geo.W_out].transpose(1, 0, 2, 3)
    out = np.empty((geo.N, geo.C_out, geo.H_out, geo.W_out), dtype=rows.dtype)
    if bias is None:
        np.copyto(out, grid)
    else:
        np.add(grid, bias[:, None, None], out=out)
    return out


def _grouped(weight: np.ndarray, geo: _Geometry) -> np.ndarray:
    """weight (C_out, Cg, kH, kW) -> (groups, C_out/groups, K), K in (c, p, q) order as cols."""
    return weight.reshape(geo.groups, geo.C_out // geo.groups, geo.K)


def _correlate_cols(cols: np.ndarray, weight: np.ndarray, geo: _Geometry, bias: np.ndarray | None) -> np.ndarray:
    """y = w[g] @ cols[g] per group, back to (N, C_out, H_out, W_out) with the bias."""
    rows = _scratch("rows", (geo.groups, geo.C_out // geo.groups, geo.L), cols.dtype)
    np.matmul(_grouped(weight, geo), cols, out=rows)
    return _from_rows(rows, geo, bias)


def _weight_grad_cols(cols: np.ndarray, grad_rows: np.ndarray, weight_shape: tuple[int, ...]) -> np.ndarray:
    """gw[g] = gy_rows[g] @ cols[g].T: one product per group over all (n, i, j) at once.
    BLAS runs the same product as gw[g].T = cols[g] @ gy_rows[g].T markedly faster (up to 2x
    for few output channels), so it computes that and transposes the small result."""
    gw_t = np.matmul(cols, grad_rows.transpose(0, 2, 1))
    return np.ascontiguousarray(gw_t.transpose(0, 2, 1)).reshape(weight_shape)


def _input_grad_rows(grad_rows: np.ndarray, weight: np.ndarray, geo: _Geometry) -> np.ndarray:
    """dcols[g] = w[g].T @ gy_rows[g], then added back into the image by _col2im."""
    dcols = _scratch("cols", (geo.groups, geo.K, geo.L), grad_rows.dtype)
    np.matmul(_grouped(weight, geo).transpose(0, 2, 1), grad_rows, out=dcols)
    return _col2im(dcols, geo)


def conv2d_fast_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,
    stride: Pair, padding: Pair, dilation: Pair, groups: int,
) -> tuple[np.ndarray, _Ctx]:  # fmt: skip
    """im2col in a channels-first, stride-phase layout, then one BLAS product per group.

    Layout trick: x is copied once into a zeroed (C, N, sH, sW, Hq, Wq) buffer, the padded
    image split into its stride phases (see ``_Geometry``), where every kernel offset's
    windows are a plain shifted view with unit strides. The columns matrix is built as
    (C, kH, kW, N, H_out, Wc), one copy per kernel offset; with the wide layout (whole
    phase rows, Wc = Wq) each copy is one contiguous run per (c, n) image rather than H_out
    short ones, for Wq - W_out discarded columns in the products. Channels-first columns
    make y^T = w (C_out, K) @ cols (K, N*H_out*Wc) one product for the whole batch, whose
    (C_out, N, ...) result goes back to (N, C_out, H_out, W_out) in the same pass as the
    bias add and the crop of the extra columns. No copy is ever made of a window per
    output pixel, and scratch buffers are reused across calls (``_scratch``).
    Backward rebuilds the columns: gw = gy_rows @ cols^T (gy_rows: gy in the output grid's
    column order), gx = col2im(w^T @ gy_rows), adding back one offset at a time into a
    phase buffer; gb = gy_rows @ ones.
    """
    out_hw = _conv2d_out_hw(x, weight, stride, padding, dilation)
    geo = _geometry(x.shape, weight, out_hw, stride, padding, dilation, groups)
    y = _correlate_cols(_im2col(x, geo), weight, geo, bias)
    return y, _Ctx(x, weight, bias is not None, stride, padding, dilation, groups)


def conv2d_fast_backward(
    grad_y: np.ndarray, ctx: _Ctx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    x, w = ctx.x, ctx.weight
    geo = _geometry(x.shape, w, grad_y.shape[2:], ctx.stride, ctx.padding, ctx.dilation, ctx.groups, x, w)
    grad_rows = _to_rows(grad_y, geo)
    gw = _weight_grad_cols(_im2col(x, geo), grad_rows, w.shape)
    gx = _input_grad_rows(grad_rows, w, geo) if needs_input_grad else None
    # gb from the contiguous rows (their extra columns are zero): a BLAS matrix-vector product
    gb = grad_rows.reshape(geo.C_out, geo.L) @ np.ones(geo.L, grad_y.dtype) if ctx.has_bias else None
    return gx, gw, gb


def conv_transpose2d_fast_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,
    stride: Pair, padding: Pair, output_padding: Pair, dilation: Pair, groups: int,
) -> tuple[np.ndarray, _Ctx]:  # fmt: skip
    """conv2d's fast input gradient with x as gy, onto an image of the output's size: one
    product per group (w^T @ x^T) and a col2im, plus the bias."""
    out_hw = _transpose_out_hw(x, weight, stride, padding, output_padding, dilation)
    geo = _geometry((x.shape[0], weight.shape[1] * groups, *out_hw), weight, x.shape[2:], stride, padding,
                    dilation, groups, weight)  # fmt: skip
    y = _add_bias(_input_grad_rows(_to_rows(x, geo), weight, geo), bias)
    return y, _Ctx(x, weight, bias is not None, stride, padding, dilation, groups)


def conv_transpose2d_fast_backward(grad_y: np.ndarray, ctx: _Ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """gy's columns are built once and serve both products: gx = conv2d(gy, w) and
    gw = conv2d's weight gradient with gy as input and x as output gradient."""
    x, w = ctx.x, ctx.weight
    geo = _geometry(grad_y.shape, w, x.shape[2:], ctx.stride, ctx.padding, ctx.dilation, ctx.groups, grad_y)
    cols = _im2col(grad_y, geo)
    gx = _correlate_cols(cols, w, geo, None)
    gw = _weight_grad_cols(cols, _to_rows(x, geo), w.shape)
    return gx, gw, _bias_grad(grad_y, ctx.has_bias)


registry.register("conv2d", "reference", conv2d_reference_forward, conv2d_reference_backward)
registry.register("conv2d", "fast", conv2d_fast_forward, conv2d_fast_backward)
registry.register(
    "conv_transpose2d", "reference", conv_transpose2d_reference_forward, conv_transpose2d_reference_backward
)
registry.register("conv_transpose2d", "fast", conv_transpose2d_fast_forward, conv_transpose2d_fast_backward)
