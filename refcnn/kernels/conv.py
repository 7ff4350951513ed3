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

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import registry
from ._checks import check_float, check_pair, check_same_dtype
from ._im2col import Geometry, Phases, geometry, release_workspace, scratch

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
    gw = np.zeros((C_out, C_per_group, *kernel), dtype=np.float64)  # N*H_out*W_out terms: a float32 sum drifts
    for n in range(N):
        for o in range(C_out):
            g = o // out_per_group
            channels = slice(g * C_per_group, (g + 1) * C_per_group)
            for i in range(H_out):
                for j in range(W_out):
                    rows, cols = _window(i * stride[0], j * stride[1], kernel, dilation)
                    gw[o] += grad_y[n, o, i, j] * x_pad[n, channels, rows, cols]
    return gw.astype(x.dtype)


def _add_bias(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if bias is not None:
        y += bias[:, None, None]
    return y


def _bias_grad(grad_y: np.ndarray, has_bias: bool) -> np.ndarray | None:
    if not has_bias:  # C order: layout-free; in float64, rounded once (N rows of planes, added in turn)
        return None
    return np.ascontiguousarray(grad_y).sum(axis=(0, 2, 3), dtype=np.float64).astype(grad_y.dtype)


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
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)  # sums in C order, whatever the layout
    out_hw = _conv2d_out_hw(x, weight, stride, padding, dilation)
    y = _add_bias(_reference_correlate(x, weight, out_hw, stride, padding, dilation, groups), bias)
    return y, _Ctx(x, weight, bias is not None, stride, padding, dilation, groups)


def conv2d_reference_backward(
    grad_y: np.ndarray, ctx: _Ctx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """gx, gw, gb by the module docstring's backward formulas, one gy element at a time
    (gx None unless ``needs_input_grad``)."""
    grad_y = np.ascontiguousarray(grad_y)  # sums in C order, whatever the layout
    x, w = ctx.x, ctx.weight
    config = (ctx.stride, ctx.padding, ctx.dilation, ctx.groups)
    gx = _reference_input_grad(grad_y, w, (x.shape[2], x.shape[3]), *config) if needs_input_grad else None
    gw = _reference_weight_grad(x, grad_y, (w.shape[2], w.shape[3]), *config)
    return gx, gw, _bias_grad(grad_y, ctx.has_bias)


def conv_transpose2d_reference_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,
    stride: Pair, padding: Pair, output_padding: Pair, dilation: Pair, groups: int,
) -> tuple[np.ndarray, _Ctx]:  # fmt: skip
    """y = b + conv2d's input gradient for gy = x, onto an image of the output's size."""
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)  # sums in C order, whatever the layout
    out_hw = _transpose_out_hw(x, weight, stride, padding, output_padding, dilation)
    y = _add_bias(_reference_input_grad(x, weight, out_hw, stride, padding, dilation, groups), bias)
    return y, _Ctx(x, weight, bias is not None, stride, padding, dilation, groups)


def conv_transpose2d_reference_backward(
    grad_y: np.ndarray, ctx: _Ctx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """gx = conv2d(gy, w) (no bias) on x's grid (None unless ``needs_input_grad``); gw =
    conv2d's weight gradient with gy as conv2d's input and x as its output gradient; gb =
    sum of gy over (n, i, j)."""
    grad_y = np.ascontiguousarray(grad_y)  # sums in C order, whatever the layout
    x, w = ctx.x, ctx.weight
    config = (ctx.stride, ctx.padding, ctx.dilation, ctx.groups)
    gx = _reference_correlate(grad_y, w, (x.shape[2], x.shape[3]), *config) if needs_input_grad else None
    gw = _reference_weight_grad(grad_y, x, (w.shape[2], w.shape[3]), *config)
    return gx, gw, _bias_grad(grad_y, ctx.has_bias)


# ---- fast: im2col over cache-sized chunks of the batch + one BLAS product per group --------
def _grouped(weight: np.ndarray, geo: Geometry) -> np.ndarray:
    """weight (C_out, Cg, kH, kW) -> (groups, C_out/groups, K), K in (c, p, q) order as cols."""
    return weight.reshape(geo.groups, geo.C_out // geo.groups, geo.K)


def _correlate_chunk(cols: np.ndarray, weight: np.ndarray, geo: Geometry, out: np.ndarray,
                     bias: np.ndarray | None) -> None:  # fmt: skip
    """out (a chunk of y) = w[g] @ cols[g] per group, back to batch-first, + bias."""
    rows = scratch("rows", (geo.groups, geo.C_out // geo.groups, cols.shape[2]), cols.dtype)
    np.matmul(_grouped(weight, geo), cols, out=rows)
    geo.from_rows(rows, out, bias)


def _input_grad_chunk(grad_rows: np.ndarray, weight: np.ndarray, geo: Geometry, dst: Phases,
                      out: np.ndarray) -> None:  # fmt: skip
    """out (a chunk of gx) = col2im(w[g].T @ gy_rows[g])."""
    dcols = scratch("cols", (geo.groups, geo.K, grad_rows.shape[2]), grad_rows.dtype)
    np.matmul(_grouped(weight, geo).transpose(0, 2, 1), grad_rows, out=dcols)
    dst.col2im_add(dcols, out.shape[0])
    dst.store(out)


# BLAS sums a product's L columns in one running float32 sum per output (1e6 terms of 0.1:
# 1e-3 off): gw's products run over blocks of L this long, their results added in float64.
SUM_BLOCK = 512


def _weight_grad_chunk(cols: np.ndarray, grad_rows: np.ndarray, gw_t: np.ndarray) -> None:
    """gw[g].T += cols[g] @ gy_rows[g].T (gw_t float64): BLAS runs this orientation markedly
    faster than gy_rows @ cols.T (up to 2x for few output channels); the small result is
    transposed once. A long L is summed in blocks of SUM_BLOCK, one product per block."""
    L = cols.shape[2]
    whole = L - L % SUM_BLOCK if L > SUM_BLOCK else 0
    if whole:
        G, K, Co = cols.shape[0], cols.shape[1], grad_rows.shape[1]
        a = cols[:, :, :whole].reshape(G, K, -1, SUM_BLOCK).transpose(0, 2, 1, 3)
        b = grad_rows[:, :, :whole].reshape(G, Co, -1, SUM_BLOCK).transpose(0, 2, 3, 1)
        gw_t += np.matmul(a, b).sum(axis=1, dtype=np.float64)
    gw_t += np.matmul(cols[:, :, whole:], grad_rows[:, :, whole:].transpose(0, 2, 1))


def _weight_grad(gw_t: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(gw_t.transpose(0, 2, 1), dtype=weight.dtype).reshape(weight.shape)


def conv2d_fast_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,
    stride: Pair, padding: Pair, dilation: Pair, groups: int,
) -> tuple[np.ndarray, _Ctx]:  # fmt: skip
    """im2col in a channels-first, stride-phase layout, a chunk of the batch at a time, then
    one BLAS product per group and chunk.

    Layout trick (``refcnn.kernels._im2col``): a chunk of images is copied into a zeroed
    buffer where they lie side by side along each padded row, sharing their zero padding,
    split into stride phases, so that every kernel offset's windows, for the whole chunk,
    are one shifted view with unit strides. In the wide layout the products run over whole
    phase rows, so each offset's columns are ONE contiguous copy per channel (with stride 1
    all offsets are one copy), for a few discarded columns per image (its shared padding).
    Channels-first columns make y^T = w (C_out, K) @ cols (K, L) one product per chunk, whose
    (C_out, ...) result goes back to (n, C_out, H_out, W_out) in the same pass as the bias
    add and the crop. Chunks of about ``CHUNK_BYTES`` keep the product's operands and the
    copies in cache, and the extra memory below one full im2col matrix.
    Backward rebuilds each chunk's columns (keeping them would cost memory and measured no
    faster): gw = sum over chunks of gy_rows @ cols^T, gx = col2im(w^T @ gy_rows), added
    back one offset at a time into a phase buffer; gb = the sum of gy (in float64).
    """
    out_hw = _conv2d_out_hw(x, weight, stride, padding, dilation)
    geo = geometry(x.shape, weight, out_hw, stride, padding, dilation, groups)
    y = np.empty((x.shape[0], weight.shape[0], *out_hw), dtype=x.dtype)
    src = Phases("image", geo, x.dtype)
    for start, stop in geo.chunks():
        src.load(x[start:stop])
        _correlate_chunk(src.im2col(stop - start), weight, geo, y[start:stop], bias)
    return y, _Ctx(x, weight, bias is not None, stride, padding, dilation, groups)


def conv2d_fast_backward(
    grad_y: np.ndarray, ctx: _Ctx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Per chunk: gy's rows serve the weight gradient (with x's rebuilt columns) and, when
    asked for, the input gradient. The bias gradient sums gy itself: where the padding is at
    least the kernel, an image's last output columns share their wide-layout column with the
    next image's first (both windows all padding), so gy's rows hold only one of the two."""
    x, w = ctx.x, ctx.weight
    geo = geometry(x.shape, w, grad_y.shape[2:], ctx.stride, ctx.padding, ctx.dilation, ctx.groups, x, w)
    gw_t = np.zeros((geo.groups, geo.K, geo.C_out // geo.groups), dtype=np.float64)
    gx = np.empty_like(x) if needs_input_grad else None
    src = Phases("image", geo, x.dtype)
    dst = Phases("grad_image", geo, x.dtype) if gx is not None else None
    for start, stop in geo.chunks():
        grad_rows = geo.to_rows(grad_y[start:stop])
        src.load(x[start:stop])
        _weight_grad_chunk(src.im2col(stop - start), grad_rows, gw_t)
        if gx is not None and dst is not None:
            _input_grad_chunk(grad_rows, w, geo, dst, gx[start:stop])
    return gx, _weight_grad(gw_t, w), _bias_grad(grad_y, ctx.has_bias)


def conv_transpose2d_fast_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,
    stride: Pair, padding: Pair, output_padding: Pair, dilation: Pair, groups: int,
) -> tuple[np.ndarray, _Ctx]:  # fmt: skip
    """conv2d's fast input gradient with x as gy, onto an image of the output's size: per
    chunk one product per group (w^T @ x_rows) and a col2im; then the bias."""
    out_hw = _transpose_out_hw(x, weight, stride, padding, output_padding, dilation)
    geo = geometry((x.shape[0], weight.shape[1] * groups, *out_hw), weight, x.shape[2:], stride, padding,
                   dilation, groups, weight)  # fmt: skip
    y = np.empty((x.shape[0], geo.C, *out_hw), dtype=x.dtype)
    dst = Phases("grad_image", geo, x.dtype)
    for start, stop in geo.chunks():
        _input_grad_chunk(geo.to_rows(x[start:stop]), weight, geo, dst, y[start:stop])
    return _add_bias(y, bias), _Ctx(x, weight, bias is not None, stride, padding, dilation, groups)


def conv_transpose2d_fast_backward(
    grad_y: np.ndarray, ctx: _Ctx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """gy's columns are built once per chunk and serve both products: gx = conv2d(gy, w)
    and gw = conv2d's weight gradient with gy as input and x as output gradient."""
    x, w = ctx.x, ctx.weight
    geo = geometry(grad_y.shape, w, x.shape[2:], ctx.stride, ctx.padding, ctx.dilation, ctx.groups, grad_y)
    gw_t = np.zeros((geo.groups, geo.K, geo.C_out // geo.groups), dtype=np.float64)
    gx = np.empty_like(x) if needs_input_grad else None
    src = Phases("image", geo, x.dtype)
    for start, stop in geo.chunks():
        src.load(grad_y[start:stop])
        cols = src.im2col(stop - start)
        if gx is not None:
            _correlate_chunk(cols, w, geo, gx[start:stop], None)
        _weight_grad_chunk(cols, geo.to_rows(x[start:stop]), gw_t)
    return gx, _weight_grad(gw_t, w), _bias_grad(grad_y, ctx.has_bias)


registry.set_validator("conv2d", validate_conv2d)
registry.set_validator("conv_transpose2d", validate_conv_transpose2d)
registry.register("conv2d", "reference", conv2d_reference_forward, conv2d_reference_backward)
registry.register("conv2d", "fast", conv2d_fast_forward, conv2d_fast_backward)
registry.register(
    "conv_transpose2d", "reference", conv_transpose2d_reference_forward, conv_transpose2d_reference_backward
)
registry.register("conv_transpose2d", "fast", conv_transpose2d_fast_forward, conv_transpose2d_fast_backward)
