"""The conv_transpose2d kernel (reference and fast) and the ConvTranspose2d module."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcnn
from refcnn import kernels, nn
from refcnn.kernels import _im2col
from refcnn.kernels.conv import conv_transpose_output_size
from refcnn.testing import assert_close, assert_gradient, assert_matches_reference

IMPLS = ["reference", "fast"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
DEFAULTS = {"stride": (1, 1), "padding": (0, 0), "output_padding": (0, 0), "dilation": (1, 1), "groups": 1}


def run(impl, x, w, b, gy=None, **config):
    """Forward through the registry (validator included) and, given gy, backward."""
    kernel = kernels.get("conv_transpose2d", impl)
    y, ctx = kernel.forward(x, w, b, **{**DEFAULTS, **config})
    if gy is None:
        return y
    return (y, *kernel.backward(gy, ctx))


def check_against_reference(impl, dtype, x, w, b, gy, **config):
    """``impl`` in ``dtype`` against the float64 reference, forward and every gradient
    (refcnn.testing.assert_matches_reference: n from ones, S from absolute values)."""
    assert_matches_reference("conv_transpose2d", impl, dtype, (x, w, b), gy, **{**DEFAULTS, **config})


def test_both_implementations_registered_and_fast_is_default():
    assert kernels.available("conv_transpose2d") == ["fast", "reference"]
    assert kernels.get("conv_transpose2d").name == "fast"


# ---- hand-computed -----------------------------------------------------------------------
X22 = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
W22 = np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])
STAMPS = [[1, 10, 2, 20], [100, 1000, 200, 2000], [3, 30, 4, 40], [300, 3000, 400, 4000]]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "config, expected",
    [
        # every x[i, j] stamps x[i, j] * w at (2i, 2j): the stamps do not overlap
        ({"stride": (2, 2)}, STAMPS),
        # stride 1: the stamps overlap and add, y[a, b] = sum x[i, j] w[a - i, b - j]
        ({}, [[1, 12, 20], [103, 1234, 2040], [300, 3400, 4000]]),
        # padding crops the stamped image by one on each side
        ({"stride": (2, 2), "padding": (1, 1)}, [[1000, 200], [30, 4]]),
        # output_padding adds a bottom row that no stamp reaches
        ({"stride": (2, 2), "output_padding": (1, 0)}, [*STAMPS, [0, 0, 0, 0]]),
        # dilation 2 spreads each stamp: kernel taps two apart, overlapping at stride 1
        ({"dilation": (1, 2)}, [[1, 2, 10, 20], [103, 204, 1030, 2040], [300, 400, 3000, 4000]]),
    ],
    ids=["s2-stamps", "s1-overlap", "s2-p1-crop", "s2-op1x0", "d1x2"],
)
def test_hand_computed_forward(impl, dtype, config, expected):
    y = run(impl, X22.astype(dtype), W22.astype(dtype), None, **config)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, [[expected]])


@pytest.mark.parametrize("impl", IMPLS)
def test_hand_computed_groups_and_bias(impl):
    x = np.array([[[[1.0]], [[2.0]]]])  # (1, 2, 1, 1)
    w = np.array([[[[1.0, 10.0]]], [[[100.0, 1000.0]]]])  # (2, 1, 1, 2): input c feeds output c only
    y = run(impl, x, w, np.array([0.5, -0.5]), groups=2)
    np.testing.assert_array_equal(y, [[[[1.5, 10.5]], [[199.5, 1999.5]]]])


@pytest.mark.parametrize("impl", IMPLS)
def test_hand_computed_backward(impl):
    _, gx, gw, gb = run(impl, X22, W22, np.zeros(1), np.ones((1, 1, 3, 3)))
    np.testing.assert_array_equal(gx, np.full((1, 1, 2, 2), 1111.0))  # every x[i, j] reaches all of w
    np.testing.assert_array_equal(gw, np.full((1, 1, 2, 2), 10.0))  # every w[p, q] meets all of x
    np.testing.assert_array_equal(gb, [9.0])


# ---- fast against reference --------------------------------------------------------------
# (N, C_in, H, W, C_out, kernel, stride, padding, output_padding, dilation, groups, bias)
CONFIGS = {
    "k3x5-s2x1-p1x2-op1x0": (2, 3, 4, 5, 4, (3, 5), (2, 1), (1, 2), (1, 0), (1, 1), 1, True),
    "k3x2-s1x1-d2x1-g2-op1x0": (2, 4, 5, 3, 6, (3, 2), (1, 1), (0, 1), (1, 0), (2, 1), 2, True),
    "depthwise-g3-k2x3-s3x2": (1, 3, 3, 4, 3, (2, 3), (3, 2), (1, 1), (2, 1), (1, 1), 3, False),
    "stride-over-kernel-s3x4-k2x1": (2, 2, 3, 2, 3, (2, 1), (3, 4), (0, 0), (0, 3), (1, 1), 1, True),
    "1x1-kernel-g2": (2, 4, 5, 3, 2, (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), 2, True),
    "single-pixel-k4x3-p1x1": (3, 2, 1, 1, 2, (4, 3), (2, 2), (1, 1), (1, 0), (1, 1), 1, True),
    "dilated-s2x3-d3x2-op2x1": (1, 2, 3, 2, 2, (2, 3), (2, 3), (2, 1), (2, 1), (3, 2), 1, True),
}


def make_inputs(rng, N, C_in, H, W, C_out, kernel, stride, padding, output_padding, dilation, groups, bias):
    x = rng.standard_normal((N, C_in, H, W))
    w = rng.standard_normal((C_in, C_out // groups, *kernel))
    b = rng.standard_normal(C_out) if bias else None
    out = [conv_transpose_output_size((H, W)[a], kernel[a], stride[a], padding[a], output_padding[a], dilation[a])
           for a in (0, 1)]  # fmt: skip
    gy = rng.standard_normal((N, C_out, *out))
    config = {"stride": stride, "padding": padding, "output_padding": output_padding, "dilation": dilation}
    return x, w, b, gy, {**config, "groups": groups}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_reference_on_chosen_configs(impl, dtype, case):
    x, w, b, gy, config = make_inputs(np.random.default_rng(0), *case)
    check_against_reference(impl, dtype, x, w, b, gy, **config)


@st.composite
def transpose_configs(draw):
    """Any valid config, small: output_padding below stride or dilation, batch 1 included."""
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    # padding: up to what still leaves an output of at least one pixel
    padding = tuple(
        draw(st.integers(0, max(0, min(2, (conv_transpose_output_size(n, k, s, 0, op, d) - 1) // 2))))
        for n, k, s, op, d in zip((H, W), kernel, stride, output_padding, dilation, strict=True)
    )
    return (
        draw(st.integers(1, 3)), groups * draw(st.integers(1, 2)), H, W, groups * draw(st.integers(1, 2)),
        kernel, stride, padding, output_padding, dilation, groups, draw(st.booleans()),
    )  # fmt: skip


@given(case=transpose_configs(), seed=st.integers(0, 2**16))
def test_fast_matches_reference_on_random_configs(case, seed):
    x, w, b, gy, config = make_inputs(np.random.default_rng(seed), *case)
    for dtype in DTYPES:
        check_against_reference("fast", dtype, x, w, b, gy, **config)


@pytest.mark.parametrize("images", [1, 2], ids=["one-image-chunks", "two-image-chunks"])
@pytest.mark.parametrize("case", ["k3x5-s2x1-p1x2-op1x0", "dilated-s2x3-d3x2-op2x1", "k3x2-s1x1-d2x1-g2-op1x0"])
def test_fast_processes_the_batch_in_chunks_like_one_piece(monkeypatch, images, case):
    # The fast kernel loops over chunks of the batch (sized by _im2col.CHUNK_BYTES): chunks of
    # `images` images split a batch of 5 unevenly, the last chunk leaving stale slots.
    _, C_in, H, W, C_out, kernel, stride, padding, output_padding, dilation, groups, bias = CONFIGS[case]
    x, w, b, gy, config = make_inputs(np.random.default_rng(3), 5, C_in, H, W, C_out, kernel, stride, padding,
                                      output_padding, dilation, groups, bias)  # fmt: skip
    monkeypatch.setattr(_im2col, "images_per_chunk", lambda *_: images)
    check_against_reference("fast", np.float64, x, w, b, gy, **config)


@pytest.mark.parametrize("impl", IMPLS)
def test_backward_without_the_input_gradient(impl):
    x, w, b, gy, config = make_inputs(np.random.default_rng(4), *CONFIGS["k3x5-s2x1-p1x2-op1x0"])
    kernel = kernels.get("conv_transpose2d", impl)
    _, ctx = kernel.forward(x, w, b, **config)
    _, gw, gb = kernel.backward(gy, ctx)
    none, gw2, gb2 = kernel.backward_impl(gy, ctx.inner, needs_input_grad=False)
    assert none is None
    np.testing.assert_array_equal(gw2, gw)
    np.testing.assert_array_equal(gb2, gb)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", ["k3x5-s2x1-p1x2-op1x0", "dilated-s2x3-d3x2-op2x1", "k3x2-s1x1-d2x1-g2-op1x0"])
def test_is_the_adjoint_of_conv2d(impl, case):
    # <conv2d(v), u> = <v, conv_transpose2d(u)> for the same weight and config, with v on the
    # transposed conv's output grid and u on its input grid
    u, w, _, v, config = make_inputs(np.random.default_rng(1), *CONFIGS[case])
    conv_config = {k: config[k] for k in ("stride", "padding", "dilation", "groups")}
    conv = kernels.get("conv2d", impl)
    conv_v = conv.forward(v, w, None, **conv_config)[0][:, :, : u.shape[2], : u.shape[3]]
    lhs, rhs = np.sum(conv_v * u), np.sum(v * run(impl, u, w, None, **config))
    # n: every product of the double sum (+ 2: each is a product of three factors); S: the
    # same sum over absolute values
    n = (
        np.sum(conv.forward(np.ones_like(v), np.ones_like(w), None, **conv_config)[0][:, :, : u.shape[2], : u.shape[3]])
        + 2
    )
    S = np.sum(np.abs(v) * run("reference", np.abs(u), np.abs(w), None, **config))
    assert_close(lhs, rhs, n, S, np.float64, "adjoint")


@pytest.mark.parametrize("where", ["grad_y", "weight"])
def test_non_finite_values_stay_where_the_reference_puts_them(where):
    # Regression: the fast kernel's wide layout multiplies extra (discarded) columns by zero;
    # an inf there made nan leak into the output (inf in the weight) or into gw (inf in gy
    # where only output_padding reaches) where the reference (and PyTorch) has finite values.
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((1, 2, 3, 2)), rng.standard_normal((2, 3, 2, 2)), rng.standard_normal(3)
    config = {"stride": (1, 2), "output_padding": (0, 1)}
    gy = rng.standard_normal((1, 3, 4, 5))
    if where == "grad_y":
        gy[0, 0, 0, 4] = np.inf
    else:
        w[0, 0, 0, 0] = np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        check_against_reference("fast", np.float64, x, w, b, gy, **config)


# ---- finite differences (float64) ----------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "case",
    [
        (1, 2, 3, 2, 2, (2, 3), (2, 1), (1, 1), (1, 0), (1, 2), 1, True),
        (2, 2, 2, 3, 4, (2, 2), (1, 2), (0, 1), (1, 1), (2, 1), 2, True),
    ],
    ids=["k2x3-s2x1-p1x1-op1x0-d1x2", "k2x2-s1x2-p0x1-op1x1-d2x1-g2"],
)
def test_gradients_match_finite_differences(impl, case):
    x, w, b, gy, config = make_inputs(np.random.default_rng(2), *case)
    _, gx, gw, gb = run(impl, x, w, b, gy, **config)

    def loss():
        return np.sum(run(impl, x, w, b, **config) * gy)

    assert_gradient(loss, x, gx, "grad_x")
    assert_gradient(loss, w, gw, "grad_weight")
    assert_gradient(loss, b, gb, "grad_bias")


# ---- validation ------------------------------------------------------------------------------
def tconv(x=None, w=None, b=None, **config):
    x = np.ones((2, 4, 5, 6)) if x is None else x
    w = np.ones((4, 3, 3, 2)) if w is None else w
    return kernels.get("conv_transpose2d").forward(x, w, b, **{**DEFAULTS, **config})


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: tconv(x=np.ones((2, 4, 5, 6), np.int32)), TypeError, "conv_transpose2d: x must be float32 or float64, got dtype int32"),
        (lambda: tconv(x=np.ones((4, 5, 6))), ValueError, "conv_transpose2d: x must be 4-D, got shape (4, 5, 6)"),
        (lambda: tconv(w=np.ones((4, 3, 3))), ValueError, "conv_transpose2d: weight must be 4-D, got shape (4, 3, 3)"),
        (lambda: tconv(b=np.ones(3, np.float32)), TypeError, "conv_transpose2d: all arrays must share one dtype"),
        (lambda: tconv(w=np.ones((3, 3, 3, 2))), ValueError, "conv_transpose2d: weight of shape (3, 3, 3, 2) expects an input with 3 channels, got input of shape (2, 4, 5, 6)"),
        (lambda: tconv(groups=3), ValueError, "conv_transpose2d: groups=3 must divide the input channels, got weight of shape (4, 3, 3, 2)"),
        (lambda: tconv(b=np.ones(4)), ValueError, "conv_transpose2d: bias must have shape (3,) for weight of shape (4, 3, 3, 2) and groups=1, got (4,)"),
        (lambda: tconv(b=np.ones(3), groups=2), ValueError, "bias must have shape (6,) for weight of shape (4, 3, 3, 2) and groups=2, got (3,)"),
        (lambda: tconv(stride=(2, 3), output_padding=(2, 0)), ValueError, "conv_transpose2d: output padding must be smaller than either stride or dilation, got output_padding=(2, 0), stride=(2, 3), dilation=(1, 1)"),
        (lambda: tconv(output_padding=(0, -1)), ValueError, "conv_transpose2d: output_padding must be >= 0 on both axes, got (0, -1)"),
        (lambda: tconv(padding=(-1, 0)), ValueError, "conv_transpose2d: padding must be >= 0 on both axes, got (-1, 0)"),
        (lambda: tconv(stride=(0, 1)), ValueError, "conv_transpose2d: stride must be >= 1 on both axes, got (0, 1)"),
        (lambda: tconv(dilation=(1, 0)), ValueError, "conv_transpose2d: dilation must be >= 1 on both axes, got (1, 0)"),
        (lambda: tconv(groups=-1), ValueError, "conv_transpose2d: groups must be >= 1, got -1"),
        (lambda: tconv(x=np.ones((1, 4, 1, 1)), w=np.ones((4, 3, 1, 1)), padding=(1, 1)), ValueError, "conv_transpose2d: given input size per channel: (1 x 1); calculated output size per channel: (-1 x -1); the output size is too small"),
        (lambda: tconv(x=np.ones((1, 4, 0, 3))), ValueError, "conv_transpose2d: input must have a non-empty height and width, got shape (1, 4, 0, 3)"),
        (lambda: tconv(w=np.ones((4, 0, 3, 2))), ValueError, "conv_transpose2d: weight must have no empty dimension, got shape (4, 0, 3, 2)"),
    ],
    ids=[
        "x-int", "x-3d", "weight-3d", "bias-f32", "channels", "groups-in", "bias-shape", "bias-shape-groups",
        "output-padding-too-big", "output-padding-negative", "padding-negative", "stride-zero", "dilation-zero",
        "groups-negative", "output-too-small", "empty-input", "empty-weight",
    ],
)  # fmt: skip
def test_validation_errors(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_output_padding_may_reach_the_dilation():
    # output_padding must be below stride *or* dilation: (1, 0) with stride 1, dilation 2 is fine
    y = tconv(output_padding=(1, 0), dilation=(2, 1))
    assert y[0].shape == (2, 3, 5 + 4 + 1, 6 + 1)


# ---- the ConvTranspose2d module ----------------------------------------------------------------
def test_parameters_shapes_dtype_and_pytorch_init():
    refcnn.manual_seed(0)
    m = nn.ConvTranspose2d(4, 6, (3, 5), groups=2)
    assert m.weight.shape == (4, 3, 3, 5) and m.bias.shape == (6,)
    assert m.weight.dtype == np.float32
    bound = 1 / math.sqrt(3 * 3 * 5)  # PyTorch's fan_in of this layout: out_channels/groups * kH * kW
    assert np.abs(m.weight.data).max() <= bound and np.abs(m.bias.data).max() <= bound
    assert np.abs(m.weight.data).max() > 0.9 * bound  # 180 draws spread over the whole range
    assert nn.ConvTranspose2d(1, 2, 3, bias=False, dtype=np.float64).weight.dtype == np.float64


@pytest.mark.parametrize(
    "module, expected",
    [
        (lambda: nn.ConvTranspose2d(4, 6, 3), "ConvTranspose2d(4, 6, kernel_size=(3, 3), stride=(1, 1))"),
        (
            lambda: nn.ConvTranspose2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), output_padding=(1, 0), groups=2, bias=False, dilation=(2, 1)),
            "ConvTranspose2d(4, 6, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1), output_padding=(1, 0), groups=2, bias=False)",
        ),
    ],
    ids=["default", "everything"],
)  # fmt: skip
def test_repr_is_pytorchs(module, expected):
    assert repr(module()) == expected


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"groups": 3}, ValueError, "ConvTranspose2d: in_channels must be divisible by groups, got in_channels=4, groups=3"),
        ({"groups": 4}, ValueError, "ConvTranspose2d: out_channels must be divisible by groups, got out_channels=6, groups=4"),
        ({"stride": 2, "output_padding": 2}, ValueError, "output_padding must be smaller than either stride or dilation, got output_padding=(2, 2), stride=(2, 2), dilation=(1, 1)"),
        ({"padding_mode": "reflect"}, ValueError, "ConvTranspose2d: only padding_mode='zeros' is supported, got padding_mode='reflect'"),
        ({"padding": "same"}, TypeError, "ConvTranspose2d: padding must be an int or a pair of ints, got 'same'"),
        ({"output_padding": -1}, ValueError, "ConvTranspose2d: output_padding must be >= 0, got -1"),
        ({"kernel_size": (0, 2)}, ValueError, "ConvTranspose2d: kernel_size must be >= 1, got (0, 2)"),
        ({"dilation": 0}, ValueError, "ConvTranspose2d: dilation must be >= 1, got 0"),
    ],
    ids=["groups-in", "groups-out", "output-padding", "padding-mode", "padding-string", "output-padding-negative",
         "kernel-zero", "dilation-zero"],
)  # fmt: skip
def test_constructor_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        nn.ConvTranspose2d(**{"in_channels": 4, "out_channels": 6, "kernel_size": 3, **kwargs})


def test_forward_backward_equal_the_kernel_and_gradients_accumulate():
    m = nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2,
                           dilation=(1, 2), dtype=np.float64)  # fmt: skip
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3, 4))
    y = m(x)
    assert y.shape == (2, 6, 6, 6)
    config = {"stride": (2, 1), "padding": (1, 0), "output_padding": (1, 0), "dilation": (1, 2), "groups": 2}
    gy = rng.standard_normal(y.shape)
    expected = run("fast", x, m.weight.data, m.bias.data, gy, **config)
    np.testing.assert_array_equal(y, expected[0])
    np.testing.assert_array_equal(m.backward(gy), expected[1])
    np.testing.assert_array_equal(m.weight.grad, expected[2])
    np.testing.assert_array_equal(m.bias.grad, expected[3])
    m(x)
    m.backward(gy)
    np.testing.assert_array_equal(m.weight.grad, 2 * expected[2])


@pytest.mark.parametrize(
    "x_shape, output_size, expected",
    [
        ((1, 4, 6, 6), [12, 12], (1, 6, 12, 12)),  # output_padding (1, 1)
        ((1, 4, 6, 6), (11, 12), (1, 6, 11, 12)),
        ((1, 4, 6, 6), [1, 6, 12, 11], (1, 6, 12, 11)),  # with the leading dims, as x.shape would give
        ((4, 6, 6), [6, 11, 11], (6, 11, 11)),  # unbatched: (C, H, W)
        ((1, 4, 6, 6), None, (1, 6, 11, 11)),
    ],
    ids=["hw", "hw-tuple", "nchw", "unbatched-chw", "none"],
)
def test_output_size_picks_the_output_padding(x_shape, output_size, expected):
    m = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    y = m(np.ones(x_shape, np.float32), output_size=output_size)
    assert y.shape == expected
    assert m.backward(np.ones(expected, np.float32)).shape == x_shape


@pytest.mark.parametrize(
    "x_shape, output_size, error, message",
    [
        ((1, 4, 6, 6), [13, 12], ValueError, "ConvTranspose2d: requested an output size of [13, 12], but valid sizes range from [11, 11] to [12, 12] (for an input of spatial size (6, 6))"),
        ((1, 4, 6, 6), [10, 12], ValueError, "valid sizes range from [11, 11] to [12, 12]"),
        ((1, 4, 6, 6), [12], ValueError, "ConvTranspose2d: for 4-D input, output_size must have 2 or 4 elements, got [12]"),
        ((4, 6, 6), [1, 6, 12, 12], ValueError, "ConvTranspose2d: for 3-D input, output_size must have 2 or 3 elements, got [1, 6, 12, 12]"),
        ((1, 4, 6, 6), [12.0, 12], TypeError, "ConvTranspose2d: output_size must be a sequence of ints, got [12.0, 12]"),
    ],
    ids=["too-big", "too-small", "one-element", "unbatched-four-elements", "float"],
)  # fmt: skip
def test_output_size_errors(x_shape, output_size, error, message):
    m = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    with pytest.raises(error, match=re.escape(message)):
        m(np.ones(x_shape, np.float32), output_size=output_size)


def test_unbatched_input():
    m = nn.ConvTranspose2d(2, 3, (2, 3), stride=(1, 2), dtype=np.float64)
    x = np.random.default_rng(5).standard_normal((2, 4, 5))
    y = m(x)
    assert y.shape == (3, 5, 11)
    gx = m.backward(np.ones_like(y))
    np.testing.assert_array_equal(y, m(x[None])[0])
    np.testing.assert_array_equal(gx, m.backward(np.ones((1, *y.shape)))[0])


@pytest.mark.parametrize(
    "x, error, message",
    [
        # PyTorch's words for a wrong channel count
        (np.ones((1, 3, 5, 5), np.float32), ValueError, "ConvTranspose2d: given transposed=1, weight of size [2, 3, 3, 3], expected input[1, 3, 5, 5] to have 2 channels, but got 3 channels instead"),
        (np.ones((1, 2, 5, 5)), TypeError, "ConvTranspose2d holds float32 parameters but got a float64 input"),
        (np.ones((1, 2, 5, 5), np.int16), TypeError, "ConvTranspose2d expected a float32 or float64 input, got dtype int16"),
        (np.ones((5, 5), np.float32), ValueError, "ConvTranspose2d expected input of shape (N, 2, H, W) or (2, H, W), got (5, 5)"),
    ],
    ids=["channels", "float64-into-float32", "integer", "2d"],
)  # fmt: skip
def test_forward_rejects_bad_input(x, error, message):
    with pytest.raises(error, match=re.escape(message)):
        nn.ConvTranspose2d(2, 3, 3)(x)


def test_backward_before_forward_twice_and_with_a_wrong_shape():
    m = nn.ConvTranspose2d(1, 1, 2)
    with pytest.raises(RuntimeError, match="backward called without a forward"):
        m.backward(np.ones((1, 1, 4, 4), np.float32))
    y = m(np.ones((1, 1, 3, 3), np.float32))
    m.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="backward called without a forward"):
        m.backward(np.ones_like(y))
    m(np.ones((1, 1, 3, 3), np.float32))
    with pytest.raises(
        ValueError, match=re.escape("expected grad_output of shape (1, 1, 4, 4) (the output's), got (1, 1, 3, 3)")
    ):
        m.backward(np.ones((1, 1, 3, 3), np.float32))
