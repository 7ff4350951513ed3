"""conv2d and conv_transpose2d contracts that mutation testing (tox -e mutation) found unpinned.

Each test pins what PyTorch does (checked against torch.nn.functional in a scratch script; the
unit tests do not import torch) on an input where a changed bound, index or axis in
refcnn/kernels/conv.py would give another answer:

- the validators' bounds, one axis at a time, with asymmetric padding, dilation and shapes:
  a kernel that exactly fits the padded input is taken, one that overhangs it by no more than
  the padding is rejected; an output padding equal to the dilation (or the stride) is rejected;
  a transposed output of exactly one row is taken, one of zero rows is rejected;
- the error messages name the values of the axis that failed, in (height x width) order;
- ``groups`` of the wrong kind (a bool) is rejected, a NumPy integer is taken.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from refcnn import kernels

IMPLS = ["reference", "fast"]
RNG = np.random.default_rng(13)


def _conv2d_float64(x, w, b, stride, padding, dilation, groups=1):
    """conv2d as the module docstring's sum, one output element at a time, in float64."""
    N, _, H, W = x.shape
    C_out, Cg, kH, kW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    H_out = (H + 2 * padding[0] - dilation[0] * (kH - 1) - 1) // stride[0] + 1
    W_out = (W + 2 * padding[1] - dilation[1] * (kW - 1) - 1) // stride[1] + 1
    y = np.zeros((N, C_out, H_out, W_out))
    per_group = C_out // groups
    for o in range(C_out):
        g = o // per_group
        for i in range(H_out):
            for j in range(W_out):
                for p in range(kH):
                    for q in range(kW):
                        r, c = i * stride[0] + p * dilation[0], j * stride[1] + q * dilation[1]
                        y[:, o, i, j] += xp[:, g * Cg : (g + 1) * Cg, r, c] @ w[o, :, p, q]
    return y + (0 if b is None else b[:, None, None])


# ---- conv2d: the dilated kernel against the padded input, one axis at a time -------------------
# x (1, 2, 3, 5), padding (2, 1): the padded input is 7 x 7.
FITS = [
    # kernel (4, 3) dilated (2, 3) spans 7 x 7: exactly the padded input, one output pixel
    ("exact-both-axes", (4, 3), (2, 3), (1, 1)),
    # height exact (4 rows dilated by 2), width with room to spare
    ("exact-height", (4, 2), (2, 1), (1, 6)),
    # width exact (7 columns), height with room to spare
    ("exact-width", (2, 7), (1, 1), (6, 1)),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("kernel", "dilation", "out_hw"), [c[1:] for c in FITS], ids=[c[0] for c in FITS])
def test_conv2d_takes_a_dilated_kernel_that_exactly_fits_the_padded_input(impl, kernel, dilation, out_hw):
    x, w, b = RNG.standard_normal((1, 2, 3, 5)), RNG.standard_normal((3, 2, *kernel)), RNG.standard_normal(3)
    config = {"stride": (1, 1), "padding": (2, 1), "dilation": dilation, "groups": 1}
    y, _ = kernels.get("conv2d", impl).forward(x, w, b, **config)
    assert y.shape == (1, 3, *out_hw), f"{impl}: shape {y.shape}"
    expected = _conv2d_float64(x, w, b, (1, 1), (2, 1), dilation)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12, err_msg=impl)


OVERHANGS = [
    # height: 5 rows dilated by 2 span 9 > 7, within the padded height counted with 3 x padding
    ("height-by-two", (5, 3), (2, 3), "(7 x 7); kernel size (dilated): (9 x 7)"),
    # width: 8 columns span 8 > 7, within 3 x padding of the width
    ("width-by-one", (4, 8), (2, 1), "(7 x 7); kernel size (dilated): (7 x 8)"),
    # width by dilation alone: 3 columns dilated by 4 span 9; the height's dilation (2) would fit
    ("width-dilation", (4, 3), (2, 4), "(7 x 7); kernel size (dilated): (7 x 9)"),
    # height by dilation alone: 3 rows dilated by 4 span 9; the width's dilation (1) would fit
    ("height-dilation", (3, 7), (4, 1), "(7 x 7); kernel size (dilated): (9 x 7)"),
]


@pytest.mark.parametrize(("kernel", "dilation", "sizes"), [c[1:] for c in OVERHANGS], ids=[c[0] for c in OVERHANGS])
def test_conv2d_rejects_a_kernel_overhanging_the_padded_input_by_at_most_the_padding(kernel, dilation, sizes):
    # PyTorch: "Calculated padded input size per channel: (7 x 7). Kernel size: (9 x 7). Kernel
    # size can't be greater than actual input size"
    x, w = np.ones((1, 2, 3, 5)), np.ones((3, 2, *kernel))
    message = (
        f"conv2d: calculated padded input size per channel: {sizes}; the kernel can't be larger than the padded "
        f"input (input shape (1, 2, 3, 5), padding (2, 1), dilation {dilation})"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        kernels.get("conv2d").forward(x, w, None, stride=(1, 1), padding=(2, 1), dilation=dilation, groups=1)


def test_conv2d_padded_height_counts_its_own_padding_not_the_widths():
    # padding (3, 0): H = 1 pads to 7, W = 6 stays 6; a kernel of 7 rows fits, one of 8 does not
    x, w = RNG.standard_normal((1, 1, 1, 6)), RNG.standard_normal((1, 1, 7, 6))
    config = {"stride": (1, 1), "padding": (3, 0), "dilation": (1, 1), "groups": 1}
    y, _ = kernels.get("conv2d").forward(x, w, None, **config)
    np.testing.assert_allclose(y, _conv2d_float64(x, w, None, (1, 1), (3, 0), (1, 1)), rtol=1e-12, atol=1e-12)
    with pytest.raises(
        ValueError, match=re.escape("padded input size per channel: (7 x 6); kernel size (dilated): (8 x 6)")
    ):
        kernels.get("conv2d").forward(x, np.ones((1, 1, 8, 6)), None, **config)


# ---- conv_transpose2d: output padding, output size, one axis at a time --------------------------
def _conv_transpose2d_float64(x, w, b, stride, padding, output_padding, dilation):
    """conv_transpose2d as the module docstring's stamps (groups 1), in float64."""
    N, _, H, W = x.shape
    C_out, kH, kW = w.shape[1:]
    H_out = (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kH - 1) + output_padding[0] + 1
    W_out = (W - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kW - 1) + output_padding[1] + 1
    y = np.zeros((N, C_out, H_out + 2 * padding[0] + kH * dilation[0], W_out + 2 * padding[1] + kW * dilation[1]))
    for i in range(H):
        for j in range(W):
            for p in range(kH):
                for q in range(kW):
                    r, c = i * stride[0] + p * dilation[0], j * stride[1] + q * dilation[1]
                    y[:, :, r, c] += x[:, :, i, j] @ w[:, :, p, q]
    y = y[:, :, padding[0] : padding[0] + H_out, padding[1] : padding[1] + W_out]
    return y + (0 if b is None else b[:, None, None])


def _tconv(x, w, b=None, impl=None, **config):
    full = {"stride": (1, 1), "padding": (0, 0), "output_padding": (0, 0), "dilation": (1, 1), "groups": 1}
    return kernels.get("conv_transpose2d", impl).forward(x, w, b, **{**full, **config})[0]


TOO_SMALL = [
    # height: (1 - 1) * 1 - 2 * 1 + 0 + 0 + 1 = -1 rows; the width's 3 columns are fine
    ("height", (1, 2, 1, 2), (2, 3, 1, 2), (1, 0), "(1 x 2); calculated output size per channel: (-1 x 3)"),
    # width: 2 - 2 + 0 + 1 - 2 = -1 columns; the height's 3 rows are fine
    ("width", (1, 2, 2, 1), (2, 3, 2, 1), (0, 1), "(2 x 1); calculated output size per channel: (3 x -1)"),
    # height: exactly zero rows
    ("height-zero", (1, 2, 2, 3), (2, 3, 1, 2), (1, 0), "(2 x 3); calculated output size per channel: (0 x 4)"),
]


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "padding", "sizes"), [c[1:] for c in TOO_SMALL], ids=[c[0] for c in TOO_SMALL]
)
def test_conv_transpose2d_rejects_an_output_empty_along_one_axis(x_shape, w_shape, padding, sizes):
    # PyTorch: "Given input size per channel: (1 x 2). Calculated output size per channel:
    # (-1 x 3). Output size is too small"
    message = (
        f"conv_transpose2d: given input size per channel: {sizes}; the output size is too small (padding {padding})"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _tconv(np.ones(x_shape), np.ones(w_shape), padding=padding)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "padding", "out_hw"),
    [((1, 2, 1, 3), (2, 3, 1, 2), (0, 1), (1, 2)), ((1, 2, 3, 1), (2, 3, 2, 1), (1, 0), (2, 1))],
    ids=["one-row", "one-column"],
)
def test_conv_transpose2d_takes_an_output_of_one_row_or_column(impl, x_shape, w_shape, padding, out_hw):
    x, w, b = RNG.standard_normal(x_shape), RNG.standard_normal(w_shape), RNG.standard_normal(3)
    y = _tconv(x, w, b, impl, padding=padding)
    assert y.shape == (1, 3, *out_hw), f"{impl}: shape {y.shape}"
    expected = _conv_transpose2d_float64(x, w, b, (1, 1), padding, (0, 0), (1, 1))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12, err_msg=impl)


OUTPUT_PADDING_REJECTED = [
    # equal to the dilation, above the stride: PyTorch rejects it (smaller than either is needed)
    ("height-equals-dilation", (2, 0), (1, 1), (2, 1)),
    ("width-equals-dilation", (0, 2), (1, 1), (1, 2)),
    # equal to both
    ("width-equals-both", (0, 2), (1, 2), (1, 2)),
    ("height-equals-stride", (2, 0), (2, 1), (1, 1)),
]


@pytest.mark.parametrize(
    ("output_padding", "stride", "dilation"),
    [c[1:] for c in OUTPUT_PADDING_REJECTED],
    ids=[c[0] for c in OUTPUT_PADDING_REJECTED],
)
def test_conv_transpose2d_rejects_an_output_padding_not_below_stride_or_dilation(output_padding, stride, dilation):
    message = (
        "conv_transpose2d: output padding must be smaller than either stride or dilation, got "
        f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _tconv(np.ones((1, 2, 3, 2)), np.ones((2, 3, 1, 1)), stride=stride, output_padding=output_padding,
               dilation=dilation)  # fmt: skip


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("output_padding", "stride", "dilation", "out_hw"),
    [((1, 0), (2, 1), (1, 1), (6, 2)), ((0, 1), (1, 1), (1, 2), (3, 3)), ((0, 2), (1, 3), (1, 1), (3, 6))],
    ids=["height-below-stride", "width-below-dilation", "width-two-below-stride"],
)
def test_conv_transpose2d_output_padding_below_stride_or_dilation(impl, output_padding, stride, dilation, out_hw):
    # the rows the output padding adds at the bottom/right hold the bias alone (1x1 kernel)
    x, w, b = RNG.standard_normal((1, 2, 3, 2)), RNG.standard_normal((2, 3, 1, 1)), RNG.standard_normal(3)
    y = _tconv(x, w, b, impl, stride=stride, output_padding=output_padding, dilation=dilation)
    assert y.shape == (1, 3, *out_hw), f"{impl}: shape {y.shape}"
    expected = _conv_transpose2d_float64(x, w, b, stride, (0, 0), output_padding, dilation)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12, err_msg=impl)


# ---- groups: an int, not a bool ------------------------------------------------------------
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_groups_rejects_a_bool_and_takes_a_numpy_integer(op):
    # PyTorch: groups=True is "an invalid combination of arguments"; np.int64(2) is taken
    config = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1)}
    if op == "conv_transpose2d":
        config["output_padding"] = (0, 0)
    x, w = RNG.standard_normal((1, 2, 3, 4)), RNG.standard_normal((2, 1, 1, 1))
    with pytest.raises(TypeError, match=f"^{op}: groups must be an int, got True$"):
        kernels.get(op).forward(x, w, None, groups=True, **config)
    y, _ = kernels.get(op).forward(x, w, None, groups=np.int64(2), **config)
    # a 1x1 kernel with one channel per group scales each channel by its own weight
    np.testing.assert_allclose(y, x * w.reshape(1, 2, 1, 1), rtol=1e-15, err_msg=op)


# ---- the bias gradient: a long batch of several channels, summed in float64 ----------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_bias_gradient_of_a_long_batch_of_several_channels_is_summed_in_float64(op, impl):
    # gb[c] sums gy over (n, i, j). With two channels, NumPy's float32 sum over (0, 2, 3) adds the
    # batch row by row (3000 running float32 additions: 9e-3 off 300.0); with one channel the
    # axes merge into one contiguous, pairwise sum, which is why a single channel cannot tell
    x = np.full((3000, 1, 1, 1), 0.5, np.float32)
    w = np.ones((2, 1, 1, 1) if op == "conv2d" else (1, 2, 1, 1), np.float32)
    config = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    if op == "conv_transpose2d":
        config["output_padding"] = (0, 0)
    k = kernels.get(op, impl)
    _, ctx = k.forward(x, w, np.zeros(2, np.float32), **config)
    tenths = np.array([0.1, 0.3], np.float32)
    gy = np.broadcast_to(tenths[None, :, None, None], (3000, 2, 1, 1)).copy()
    gb = k.backward(gy, ctx)[2]
    # refcnn's accumulation contract (tests/test_accumulation.py), stricter than PyTorch's CPU
    # kernel, whose float32 sum here is 0.009 and 0.024 off
    exact = 3000 * tenths.astype(np.float64)
    assert gb.dtype == np.float32, f"{op} {impl}: {gb.dtype}"
    # float64 then one rounding: within an ulp; a running float32 sum is ~2e2 ulps off
    np.testing.assert_allclose(gb, exact, rtol=2 * np.finfo(np.float32).eps, atol=0, err_msg=f"{op} {impl}")


# ---- the fast conv2d's extra memory: below one im2col matrix, backward included ----------------
@pytest.mark.parametrize(
    ("x_shape", "C_out"), [((8, 16, 12, 12), 1), ((16, 8, 16, 16), 1)], ids=["16-channels-in", "8-channels-in"]
)
def test_fast_conv2d_backward_extra_memory_stays_below_the_im2col_matrix(x_shape, C_out):
    # _im2col.Geometry.chunk's promise: a call's extra memory, temporaries included, stays below
    # the batch's full im2col matrix. Many input channels, one output channel: the columns
    # dominate, and backward's column gradient must reuse the columns' scratch (a second one
    # takes about 1.4 matrices here)
    from refcnn.bench import peak_memory

    x = RNG.standard_normal(x_shape, dtype=np.float32)
    w = RNG.standard_normal((C_out, x_shape[1], 3, 3), dtype=np.float32)
    k = kernels.get("conv2d", "fast")
    config = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1}
    y, ctx = k.forward(x, w, None, **config)
    gy = RNG.standard_normal(y.shape, dtype=np.float32)
    im2col = x_shape[1] * 9 * x_shape[0] * y.shape[2] * y.shape[3] * 4
    outputs = x.nbytes + w.nbytes
    assert peak_memory(lambda: k.forward(x, w, None, **config)) - y.nbytes <= im2col
    assert peak_memory(lambda: k.backward(gy, ctx)) - outputs <= im2col


# ---- the fast weight gradient over more than one block of SUM_BLOCK columns -------------------
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_fast_weight_gradient_over_several_sum_blocks_matches_the_reference(op):
    # an image of 24 x 30 gives products of more than SUM_BLOCK (512) columns: gw's blocks are
    # summed per weight entry, each entry its own sum (a test with one weight cannot tell)
    x = RNG.standard_normal((2, 2, 24, 30))
    w = RNG.standard_normal((3, 2, 3, 2) if op == "conv2d" else (2, 3, 3, 2))
    config = {"stride": (1, 1), "padding": (1, 0), "dilation": (1, 1), "groups": 1}
    if op == "conv_transpose2d":
        config["output_padding"] = (0, 0)
    fast, ref = kernels.get(op, "fast"), kernels.get(op, "reference")
    y, ctx = fast.forward(x, w, None, **config)
    gy = RNG.standard_normal(y.shape)
    gw = fast.backward(gy, ctx)[1]
    gw_ref = ref.backward(gy, ref.forward(x, w, None, **config)[1])[1]
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-10, atol=1e-10, err_msg=op)


def test_fast_weight_gradient_adds_its_blocks_in_float64():
    # One float32 image of one channel, a 1x1 kernel: grad_weight is the sum of gy over the
    # 64 x 64 plane, 8 blocks of SUM_BLOCK (512) columns, rows 0-7 the first block. Block 0 sums
    # to 2**24 and blocks 1-7 to 1.0 each, every partial sum exact in float32, so only adding
    # the blocks can round: in float64 the total 2**24 + 7 rounds once, to 2**24 + 8; blocks
    # added in float32 lose a 1.0 to 2**24's rounding (2**24 + 6).
    x = np.ones((1, 1, 64, 64), np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    gy = np.full((1, 1, 64, 64), 2.0**-9, np.float32)
    gy[..., :8, :] = 2.0**15
    config = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    fast = kernels.get("conv2d", "fast")
    gw = fast.backward(gy, fast.forward(x, w, None, **config)[1])[1]
    assert gw.dtype == np.float32
    assert gw.item() == np.float32(2.0**24 + 7) == 2.0**24 + 8, f"grad_weight {gw.item()}, want 2**24 + 8"


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_fast_float32_kernels_keep_their_scratch_in_float32(op):
    """The fast kernels' work arrays (the phase buffers, the columns) are of x's dtype: a
    float32 call that made a float64 buffer would double the memory and halve the speed, with
    results that still pass every tolerance."""
    from refcnn.kernels import _im2col

    x = RNG.standard_normal((3, 4, 7, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 2, 3, 2)).astype(np.float32)
    config = {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2}
    if op == "conv_transpose2d":
        config["output_padding"] = (1, 0)
    kernel = kernels.get(op, "fast")
    _im2col.release_workspace()
    y, ctx = kernel.forward(x, w, None, **config)
    kernel.backward(np.ones_like(y), ctx)
    buffers = _im2col._local.__dict__.get("buffers", {})
    assert buffers, "no scratch buffer was made"
    wrong = {role: str(buf.dtype) for (role, _), buf in buffers.items() if buf.dtype != np.float32}
    assert not wrong, f"{op}: float64 scratch in a float32 call: {wrong}"
