"""The conv2d kernel (reference and fast) and the Conv2d module."""

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
from refcnn.kernels.conv import conv_output_size, release_workspace
from refcnn.testing import assert_gradient, assert_matches_reference

IMPLS = ["reference", "fast"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
DEFAULTS = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}


def run(impl, x, w, b, gy=None, **config):
    """Forward through the registry (validator included) and, given gy, backward."""
    kernel = kernels.get("conv2d", impl)
    y, ctx = kernel.forward(x, w, b, **{**DEFAULTS, **config})
    if gy is None:
        return y
    return (y, *kernel.backward(gy, ctx))


def check_against_reference(impl, dtype, x, w, b, gy, **config):
    """``impl`` in ``dtype`` against the float64 reference, forward and every gradient
    (refcnn.testing.assert_matches_reference: n from ones, S from absolute values)."""
    assert_matches_reference("conv2d", impl, dtype, (x, w, b), gy, **{**DEFAULTS, **config})


def test_both_implementations_registered_and_fast_is_default():
    assert kernels.available("conv2d") == ["fast", "reference"]
    assert kernels.get("conv2d").name == "fast"


# ---- hand-computed -----------------------------------------------------------------------
X34 = np.arange(12.0).reshape(1, 1, 3, 4)  # [[0 1 2 3] [4 5 6 7] [8 9 10 11]]
W22 = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "config, expected",
    [
        # y[i, j] = x[i, j] + 2 x[i, j+1] + 3 x[i+1, j] + 4 x[i+1, j+1] + 0.5
        ({}, [[34.5, 44.5, 54.5], [74.5, 84.5, 94.5]]),
        # a zero row on top and bottom, every second row: row 0 sees (zeros, x row 0)
        ({"stride": (2, 1), "padding": (1, 0)}, [[4.5, 11.5, 18.5], [74.5, 84.5, 94.5]]),
        # kernel columns two apart: y[i, j] = x[i, j] + 2 x[i, j+2] + 3 x[i+1, j] + 4 x[i+1, j+2]
        ({"dilation": (1, 2)}, [[40.5, 50.5], [80.5, 90.5]]),
    ],
    ids=["plain", "s2x1-p1x0", "d1x2"],
)
def test_hand_computed_forward(impl, dtype, config, expected):
    y = run(impl, X34.astype(dtype), W22.astype(dtype), np.array([0.5], dtype), **config)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, [[expected]])


@pytest.mark.parametrize("impl", IMPLS)
def test_hand_computed_groups_keep_channels_apart(impl):
    x = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    w = np.array([[[[1.0, 10.0]]], [[[100.0, 1000.0]]]])  # (2, 1, 1, 2): output o sees channel o only
    y = run(impl, x, w, None, groups=2)
    np.testing.assert_array_equal(y, [[[[21.0]], [[4300.0]]]])


@pytest.mark.parametrize("impl", IMPLS)
def test_hand_computed_backward(impl):
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    _, gx, gw, gb = run(impl, x, W22, np.zeros(1), np.ones((1, 1, 2, 2)))
    # gx[a, b]: the kernel entries that touch (a, b), summed over the 4 windows
    np.testing.assert_array_equal(gx, [[[[1, 3, 2], [4, 10, 6], [3, 7, 4]]]])
    # gw[p, q] = sum of the 2x2 block of x starting at (p, q)
    np.testing.assert_array_equal(gw, [[[[8, 12], [20, 24]]]])
    np.testing.assert_array_equal(gb, [4])


# ---- fast against reference --------------------------------------------------------------
# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, bias)
CONFIGS = {
    "k3x5-s2x1-p1x2-f": (2, 3, 7, 9, 4, (3, 5), (2, 1), (1, 2), (1, 1), 1, True),
    "k3x2-s1x1-d2x1-g2": (2, 4, 8, 6, 6, (3, 2), (1, 1), (0, 1), (2, 1), 2, True),
    "depthwise-g3-k2x3-s1x2": (1, 3, 6, 7, 3, (2, 3), (1, 2), (1, 1), (1, 1), 3, False),
    "stride-over-kernel-s3x4-k2x1": (2, 2, 9, 11, 3, (2, 1), (3, 4), (0, 0), (1, 1), 1, True),
    "kernel-fills-padded-input": (3, 2, 3, 4, 2, (5, 4), (1, 1), (1, 0), (1, 1), 1, True),
    "1x1-kernel-g2": (2, 4, 5, 3, 2, (1, 1), (1, 1), (0, 0), (1, 1), 2, True),
    # W_out = 3 while a padded row has 9 columns: the fast kernel's narrow (not wide) layout
    "narrow-k1x7-d1x1": (2, 2, 4, 9, 3, (1, 7), (1, 1), (0, 0), (1, 1), 1, True),
    "big-padding-s2x3-d2x2": (1, 2, 4, 5, 2, (2, 2), (2, 3), (3, 2), (2, 2), 1, True),
    # every stride phase of the padded input but one is empty of the image (H = W = 1)
    "single-pixel-s3x2-p2x1": (2, 1, 1, 1, 2, (3, 2), (3, 2), (2, 1), (1, 1), 1, True),
}


def make_inputs(rng, N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, bias):
    x = rng.standard_normal((N, C_in, H, W))
    w = rng.standard_normal((C_out, C_in // groups, *kernel))
    b = rng.standard_normal(C_out) if bias else None
    H_out = conv_output_size(H, kernel[0], stride[0], padding[0], dilation[0])
    W_out = conv_output_size(W, kernel[1], stride[1], padding[1], dilation[1])
    gy = rng.standard_normal((N, C_out, H_out, W_out))
    return x, w, b, gy, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_reference_on_chosen_configs(impl, dtype, case):
    x, w, b, gy, config = make_inputs(np.random.default_rng(0), *case)
    check_against_reference(impl, dtype, x, w, b, gy, **config)


@st.composite
def conv_configs(draw):
    """Any valid config, small: the dilated kernel up to the padded input, batch 1 included."""
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    extent = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    H, W = (draw(st.integers(max(1, e - 2 * p), e - 2 * p + 5)) for e, p in zip(extent, padding, strict=True))
    return (
        draw(st.integers(1, 3)), groups * draw(st.integers(1, 2)), H, W, groups * draw(st.integers(1, 2)),
        kernel, stride, padding, dilation, groups, draw(st.booleans()),
    )  # fmt: skip


@given(case=conv_configs(), seed=st.integers(0, 2**16))
def test_fast_matches_reference_on_random_configs(case, seed):
    x, w, b, gy, config = make_inputs(np.random.default_rng(seed), *case)
    for dtype in DTYPES:
        check_against_reference("fast", dtype, x, w, b, gy, **config)


# chunk sizes (images per chunk) that split the configs' batches unevenly, down to one image
CHUNKS = {"one-image-chunks": 1, "two-image-chunks": 2}


@pytest.mark.parametrize("images", CHUNKS.values(), ids=CHUNKS.keys())
@pytest.mark.parametrize(
    "case", ["k3x5-s2x1-p1x2-f", "k3x2-s1x1-d2x1-g2", "kernel-fills-padded-input", "narrow-k1x7-d1x1"]
)
def test_fast_processes_the_batch_in_chunks_like_one_piece(monkeypatch, images, case):
    # The fast kernel loops over chunks of the batch (sized by _im2col.CHUNK_BYTES): chunks of
    # `images` images split a batch of 5 unevenly, the last chunk leaving stale slots.
    _, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, bias = CONFIGS[case]
    x, w, b, gy, config = make_inputs(np.random.default_rng(3), 5, C_in, H, W, C_out, kernel, stride, padding,
                                      dilation, groups, bias)  # fmt: skip
    monkeypatch.setattr(_im2col, "images_per_chunk", lambda *_: images)
    check_against_reference("fast", np.float64, x, w, b, gy, **config)


@pytest.mark.parametrize(
    "shape, C_out, kernel, padding",
    [
        ((64, 1, 28, 28), 16, (3, 3), (1, 1)),
        ((64, 16, 14, 14), 32, (3, 3), (1, 1)),
        ((7, 3, 30, 20), 5, (3, 5), (0, 2)),
    ],
    ids=["1-channel", "16-channels", "k3x5-batch-7"],
)
def test_chunks_split_the_batch_evenly_within_the_budget(shape, C_out, kernel, padding):
    N, C, H, W = shape
    w = np.zeros((C_out, C, *kernel), np.float32)
    out_hw = tuple(conv_output_size(n, k, 1, p, 1) for n, k, p in zip((H, W), kernel, padding, strict=True))
    geo = _im2col.geometry(shape, w, out_hw, (1, 1), padding, (1, 1), 1)
    im2col = C * math.prod(kernel) * N * math.prod(out_hw) * 4
    assert geo.chunk == 1 or geo.chunk * geo.image_bytes <= min(_im2col.CHUNK_BYTES, 3 * im2col // 4)
    sizes = [stop - start for start, stop in geo.chunks()]
    assert sum(sizes) == N and max(sizes) - min(sizes) < len(sizes)


def test_fast_extra_memory_stays_below_the_im2col_matrix():
    # the bench's 1-channel case: its columns are small next to its rows and output
    from refcnn.bench import peak_memory

    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s, dtype=np.float32) for s in ((64, 1, 28, 28), (16, 1, 3, 3), (16,)))
    gy = rng.standard_normal((64, 16, 28, 28), dtype=np.float32)

    def forward_backward():
        return run("fast", x, w, b, gy, padding=(1, 1))

    outputs = sum(a.nbytes for a in forward_backward())
    assert peak_memory(forward_backward) - outputs <= 9 * 64 * 28 * 28 * 4


@pytest.mark.parametrize("impl", IMPLS)
def test_backward_without_the_input_gradient(impl):
    # A network's first layer: nothing needs dL/dx, so gx is None and gw, gb are unchanged.
    x, w, b, gy, config = make_inputs(np.random.default_rng(4), *CONFIGS["k3x5-s2x1-p1x2-f"])
    kernel = kernels.get("conv2d", impl)
    _, ctx = kernel.forward(x, w, b, **config)
    _, gw, gb = kernel.backward(gy, ctx)
    none, gw2, gb2 = kernel.backward_impl(gy, ctx.inner, needs_input_grad=False)
    assert none is None
    np.testing.assert_array_equal(gw2, gw)
    np.testing.assert_array_equal(gb2, gb)


def test_fast_handles_an_empty_batch():
    y, gx, gw, gb = run("fast", np.ones((0, 2, 5, 4)), np.ones((3, 2, 2, 2)), np.ones(3), np.ones((0, 3, 4, 3)))
    assert y.shape == (0, 3, 4, 3) and gx.shape == (0, 2, 5, 4)
    np.testing.assert_array_equal(gw, np.zeros((3, 2, 2, 2)))
    np.testing.assert_array_equal(gb, np.zeros(3))


def test_fast_outputs_own_their_memory():
    # The fast kernel reuses scratch buffers between calls: no output may be a view of one.
    x, w, b, gy, config = make_inputs(np.random.default_rng(1), *CONFIGS["1x1-kernel-g2"])
    first = run("fast", x, w, b, gy, **config)
    kept = [a.copy() for a in first]
    run("fast", 2 * x, 3 * w, b, 5 * gy, **config)
    for a, k in zip(first, kept, strict=True):
        np.testing.assert_array_equal(a, k)
    release_workspace()
    np.testing.assert_array_equal(run("fast", x, w, b, **config), kept[0])


@pytest.mark.parametrize("where", ["x", "weight"])
def test_non_finite_values_stay_where_the_reference_puts_them(where):
    # Regression: the fast kernel's wide layout multiplies extra (discarded) columns by zero;
    # an inf there made nan leak into gw (inf in a column of x no window reads) or into gx
    # (inf in the weight) where the reference (and PyTorch) has finite values.
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((1, 2, 4, 5)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal(3)
    if where == "x":
        x[0, 0, 1, 4] = np.inf  # stride 2 along W: column 4 is read by no window
    else:
        w[0, 0, 0, 0] = np.inf
    gy = rng.standard_normal((1, 3, 3, 2))
    with np.errstate(invalid="ignore", over="ignore"):
        check_against_reference("fast", np.float64, x, w, b, gy, stride=(1, 2))
        assert np.isfinite(run("fast", x, w, b, gy, stride=(1, 2))[2 if where == "x" else 1]).any()


@pytest.mark.parametrize("where", ["x", "weight"])
def test_non_finite_values_in_a_batch_split_into_chunks(monkeypatch, where):
    # The narrow layout (taken when an inf would meet the wide layout's zeros) over chunks of
    # two images of a batch of five: the inf sits in the fourth image (the second chunk).
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((5, 2, 4, 5)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal(3)
    if where == "x":
        x[3, 0, 1, 4] = np.inf  # stride 2 along W: column 4 is read by no window
    else:
        w[0, 0, 0, 0] = np.inf
    gy = rng.standard_normal((5, 3, 3, 2))
    geo = _im2col.geometry(x.shape, w, gy.shape[2:], (1, 2), (0, 0), (1, 1), 1, x, w)
    assert not geo.wide
    monkeypatch.setattr(_im2col, "images_per_chunk", lambda *_: 2)
    with np.errstate(invalid="ignore", over="ignore"):
        check_against_reference("fast", np.float64, x, w, b, gy, stride=(1, 2))


# ---- finite differences (float64) ----------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "case",
    [
        (1, 2, 4, 5, 2, (2, 3), (2, 1), (1, 1), (1, 2), 1, True),
        (2, 2, 3, 4, 4, (2, 2), (1, 2), (0, 1), (1, 1), 2, True),
    ],
    ids=["k2x3-s2x1-p1x1-d1x2", "k2x2-s1x2-p0x1-g2"],
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
GOOD = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}


def conv(x=None, w=None, b=None, **config):
    x = np.ones((2, 4, 5, 6)) if x is None else x
    w = np.ones((3, 4, 3, 3)) if w is None else w
    return kernels.get("conv2d").forward(x, w, b, **{**GOOD, **config})


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: conv(x=[[1.0]]), TypeError, "conv2d: x must be a numpy.ndarray, got list"),
        (lambda: conv(x=np.ones((2, 4, 5, 6), np.int64)), TypeError, "conv2d: x must be float32 or float64, got dtype int64"),
        (lambda: conv(x=np.ones((4, 5, 6))), ValueError, "conv2d: x must be 4-D, got shape (4, 5, 6)"),
        (lambda: conv(w=np.ones((3, 4, 3))), ValueError, "conv2d: weight must be 4-D, got shape (3, 4, 3)"),
        (lambda: conv(b=np.ones((3, 1))), ValueError, "conv2d: bias must be 1-D, got shape (3, 1)"),
        (lambda: conv(w=np.ones((3, 4, 3, 3), np.float32)), TypeError, "conv2d: all arrays must share one dtype, got x=float64, weight=float32"),
        (lambda: conv(b=np.ones(3, np.float32)), TypeError, "share one dtype, got x=float64, weight=float64, bias=float32"),
        (lambda: conv(w=np.ones((3, 3, 3, 3))), ValueError, "conv2d: weight of shape (3, 3, 3, 3) with groups=1 expects an input with 3 channels, got input of shape (2, 4, 5, 6)"),
        (lambda: conv(w=np.ones((4, 2, 3, 3)), x=np.ones((2, 5, 5, 6)), groups=2), ValueError, "expects an input with 4 channels, got input of shape (2, 5, 5, 6)"),
        (lambda: conv(w=np.ones((3, 2, 3, 3)), groups=2), ValueError, "conv2d: groups=2 must divide the output channels, got weight of shape (3, 2, 3, 3)"),
        (lambda: conv(b=np.ones(4)), ValueError, "conv2d: bias must have shape (3,) for weight of shape (3, 4, 3, 3), got (4,)"),
        (lambda: conv(w=np.ones((3, 4, 6, 3))), ValueError, "conv2d: calculated padded input size per channel: (5 x 6); kernel size (dilated): (6 x 3); the kernel can't be larger than the padded input"),
        (lambda: conv(dilation=(3, 3)), ValueError, "padded input size per channel: (5 x 6); kernel size (dilated): (7 x 7)"),
        (lambda: conv(padding=(-1, 0)), ValueError, "conv2d: padding must be >= 0 on both axes, got (-1, 0)"),
        (lambda: conv(stride=(1, 0)), ValueError, "conv2d: stride must be >= 1 on both axes, got (1, 0)"),
        (lambda: conv(dilation=(0, 1)), ValueError, "conv2d: dilation must be >= 1 on both axes, got (0, 1)"),
        (lambda: conv(stride=2), TypeError, "conv2d: stride must be a pair of ints, got 2"),
        (lambda: conv(padding=(1.0, 0)), TypeError, "conv2d: padding must be a pair of ints, got (1.0, 0)"),
        (lambda: conv(groups=0), ValueError, "conv2d: groups must be >= 1, got 0"),
        (lambda: conv(groups=1.0), TypeError, "conv2d: groups must be an int, got 1.0"),
        (lambda: conv(w=np.ones((3, 4, 0, 3))), ValueError, "conv2d: weight must have no empty dimension, got shape (3, 4, 0, 3)"),
    ],
    ids=[
        "x-not-array", "x-int", "x-3d", "weight-3d", "bias-2d", "weight-f32", "bias-f32", "channels",
        "channels-groups", "groups-out", "bias-shape", "kernel-too-big", "dilated-kernel-too-big", "negative-padding",
        "zero-stride", "zero-dilation", "stride-not-pair", "padding-float", "zero-groups", "groups-float", "empty-kernel",
    ],
)  # fmt: skip
def test_validation_errors(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_backward_checks_grad_shape_and_dtype():
    kernel = kernels.get("conv2d")
    _, ctx = kernel.forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), None, **GOOD)
    with pytest.raises(
        ValueError, match=re.escape("expected grad_y of shape (1, 1, 2, 2) (the output's), got (1, 1, 2, 3)")
    ):
        kernel.backward(np.ones((1, 1, 2, 3)), ctx)
    with pytest.raises(TypeError, match="expected grad_y of dtype float64"):
        kernel.backward(np.ones((1, 1, 2, 2), np.float32), ctx)


# ---- the Conv2d module ---------------------------------------------------------------------
def test_parameters_shapes_dtype_and_pytorch_init():
    refcnn.manual_seed(0)
    m = nn.Conv2d(4, 6, (3, 5), groups=2)
    assert m.weight.shape == (6, 2, 3, 5) and m.bias.shape == (6,)
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    bound = 1 / math.sqrt(2 * 3 * 5)  # fan_in = in_channels/groups * kH * kW
    assert np.abs(m.weight.data).max() <= bound and np.abs(m.bias.data).max() <= bound
    assert np.abs(m.weight.data).max() > 0.9 * bound  # 180 draws spread over the whole range
    refcnn.manual_seed(0)
    again = nn.Conv2d(4, 6, (3, 5), groups=2)
    np.testing.assert_array_equal(again.weight.data, m.weight.data)
    np.testing.assert_array_equal(again.bias.data, m.bias.data)
    assert [k for k, _ in m.named_parameters()] == ["weight", "bias"]
    assert nn.Conv2d(1, 2, 3, bias=False, dtype=np.float64).weight.dtype == np.float64
    assert list(nn.Conv2d(1, 2, 3, bias=False).state_dict()) == ["weight"]


@pytest.mark.parametrize(
    "module, expected",
    [
        (lambda: nn.Conv2d(1, 16, 3), "Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1))"),
        (
            lambda: nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2, bias=False, padding_mode="reflect"),
            "Conv2d(4, 6, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2, bias=False, padding_mode=reflect)",
        ),
        (lambda: nn.Conv2d(4, 6, (3, 4), padding="same"), "Conv2d(4, 6, kernel_size=(3, 4), stride=(1, 1), padding=same)"),
        (lambda: nn.Conv2d(4, 6, (3, 4), padding="valid"), "Conv2d(4, 6, kernel_size=(3, 4), stride=(1, 1), padding=valid)"),
        (lambda: nn.Conv2d(4, 6, 3, padding=(0, 0), dilation=1), "Conv2d(4, 6, kernel_size=(3, 3), stride=(1, 1))"),
        (lambda: nn.Conv2d(4, 6, [3, 2], stride=[2, 1]), "Conv2d(4, 6, kernel_size=(3, 2), stride=(2, 1))"),
    ],
    ids=["default", "everything", "same", "valid", "explicit-defaults", "lists"],
)  # fmt: skip
def test_repr_is_pytorchs(module, expected):
    assert repr(module()) == expected


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"groups": 2, "in_channels": 5}, ValueError, "in_channels must be divisible by groups, got in_channels=5, groups=2"),
        ({"groups": 2, "out_channels": 5}, ValueError, "out_channels must be divisible by groups, got out_channels=5, groups=2"),
        ({"groups": 0}, ValueError, "Conv2d: groups must be >= 1, got 0"),
        ({"padding": "full"}, ValueError, "Conv2d: invalid padding string 'full', should be one of 'valid', 'same'"),
        ({"padding": "same", "stride": (1, 2)}, ValueError, "padding='same' is not supported for strided convolutions, got stride=(1, 2)"),
        ({"padding_mode": "mirror"}, ValueError, "padding_mode must be one of ('zeros', 'reflect', 'replicate', 'circular'), got padding_mode='mirror'"),
        ({"kernel_size": 0}, ValueError, "Conv2d: kernel_size must be >= 1, got 0"),
        ({"kernel_size": (3, 3, 3)}, TypeError, "Conv2d: kernel_size must be an int or a pair of ints, got (3, 3, 3)"),
        ({"kernel_size": 3.0}, TypeError, "kernel_size must be an int or a pair of ints, got 3.0"),
        ({"stride": 0}, ValueError, "Conv2d: stride must be >= 1, got 0"),
        ({"padding": -1}, ValueError, "Conv2d: padding must be >= 0, got -1"),
        ({"dilation": (1, 0)}, ValueError, "Conv2d: dilation must be >= 1, got (1, 0)"),
        ({"out_channels": 0}, ValueError, "Conv2d: out_channels must be >= 1, got 0"),
        ({"in_channels": 4.0}, TypeError, "Conv2d: in_channels must be an int, got 4.0"),
        ({"dtype": np.int32}, TypeError, "Conv2d: dtype must be float32 or float64, got int32"),
    ],
    ids=[
        "groups-in", "groups-out", "groups-zero", "padding-string", "same-strided", "padding-mode", "kernel-zero",
        "kernel-3-tuple", "kernel-float", "stride-zero", "padding-negative", "dilation-zero", "out-zero", "in-float",
        "dtype-int",
    ],
)  # fmt: skip
def test_constructor_rejects_bad_arguments(kwargs, error, message):
    args = {"in_channels": 4, "out_channels": 6, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        nn.Conv2d(**args)


def test_forward_backward_equal_the_kernel_and_gradients_accumulate():
    refcnn.manual_seed(1)
    m = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, dtype=np.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 7, 6))
    y = m(x)
    config = {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2}
    gy = rng.standard_normal(y.shape)
    expected = run("fast", x, m.weight.data, m.bias.data, gy, **config)
    np.testing.assert_array_equal(y, expected[0])
    np.testing.assert_array_equal(m.backward(gy), expected[1])
    np.testing.assert_array_equal(m.weight.grad, expected[2])
    np.testing.assert_array_equal(m.bias.grad, expected[3])
    m(x)
    m.backward(gy)
    np.testing.assert_array_equal(m.weight.grad, 2 * expected[2])  # accumulated, as autograd does
    np.testing.assert_array_equal(m.bias.grad, 2 * expected[3])


def test_module_uses_the_implementation_in_force_at_forward():
    m = nn.Conv2d(2, 3, 2, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((1, 2, 4, 3))
    with kernels.use(conv2d="reference"):
        y = m(x)
    gx = m.backward(np.ones_like(y))  # the reference kernel's ctx, outside the block
    expected = run("reference", x, m.weight.data, m.bias.data, np.ones_like(y))
    np.testing.assert_array_equal(y, expected[0])
    np.testing.assert_array_equal(gx, expected[1])


def test_unbatched_input():
    m = nn.Conv2d(2, 3, (2, 3), padding=1, padding_mode="reflect", dtype=np.float64)
    x = np.random.default_rng(5).standard_normal((2, 4, 5))
    y = m(x)
    assert y.shape == (3, 5, 5)
    gx = m.backward(np.ones_like(y))
    assert gx.shape == (2, 4, 5)
    np.testing.assert_array_equal(y, m(x[None])[0])
    np.testing.assert_array_equal(gx, m.backward(np.ones((1, *y.shape)))[0])


@pytest.mark.parametrize(
    "x, error, message",
    [
        # PyTorch's words for a wrong channel count
        (np.ones((1, 3, 5, 5), np.float32), ValueError, "Conv2d: given groups=1, weight of size [3, 2, 3, 3], expected input[1, 3, 5, 5] to have 2 channels, but got 3 channels instead"),
        (np.ones((3, 5, 5), np.float32), ValueError, "Conv2d: given groups=1, weight of size [3, 2, 3, 3], expected input[3, 5, 5] to have 2 channels, but got 3 channels instead"),
        (np.ones((1, 2, 5, 5)), TypeError, "Conv2d holds float32 parameters but got a float64 input"),
        (np.ones((1, 2, 5, 5), np.int64), TypeError, "Conv2d expected a float32 or float64 input, got dtype int64"),
        (np.ones((5, 5), np.float32), ValueError, "Conv2d expected input of shape (N, 2, H, W) or (2, H, W), got (5, 5)"),
        (np.ones((1, 1, 2, 5, 5), np.float32), ValueError, "got (1, 1, 2, 5, 5)"),
        ([[1.0]], TypeError, "Conv2d expected a numpy.ndarray input"),
        (np.ones((1, 2, 2, 5), np.float32), ValueError, "conv2d: calculated padded input size per channel: (2 x 5)"),
    ],
    ids=["channels", "channels-unbatched", "float64-into-float32", "integer", "2d", "5d", "list", "too-small"],
)  # fmt: skip
def test_forward_rejects_bad_input(x, error, message):
    with pytest.raises(error, match=re.escape(message)):
        nn.Conv2d(2, 3, 3)(x)


def test_float64_input_works_after_to_float64():
    m = nn.Conv2d(2, 3, 3).to(np.float64)
    assert m(np.ones((1, 2, 5, 5))).dtype == np.float64


def test_backward_before_forward_and_twice_raise():
    m = nn.Conv2d(1, 1, 2)
    with pytest.raises(RuntimeError, match="backward called without a forward"):
        m.backward(np.ones((1, 1, 2, 2), np.float32))
    y = m(np.ones((1, 1, 3, 3), np.float32))
    m.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="backward called without a forward"):
        m.backward(np.ones_like(y))


def test_backward_rejects_a_grad_of_the_wrong_shape():
    m = nn.Conv2d(1, 1, 2)
    m(np.ones((1, 3, 3), np.float32))
    with pytest.raises(
        ValueError,
        match=re.escape("Conv2d.backward expected grad_output of shape (1, 2, 2) (the output's), got (1, 1, 2, 2)"),
    ):
        m.backward(np.ones((1, 1, 2, 2), np.float32))


# ---- padding: 'same' and padding modes -----------------------------------------------------------
def conv_1x3(padding_mode, padding=(0, 1)):
    m = nn.Conv2d(1, 1, (1, 3), padding=padding, bias=False, padding_mode=padding_mode, dtype=np.float64)
    m.weight.data[...] = 1.0
    return m


@pytest.mark.parametrize(
    "mode, padded, grad",
    [
        ("zeros", [0, 1, 2, 3, 0], [2, 3, 2]),
        ("reflect", [2, 1, 2, 3, 2], [2, 5, 2]),  # both padded entries copy x[1]
        ("replicate", [1, 1, 2, 3, 3], [3, 3, 3]),  # they copy the edges
        ("circular", [3, 1, 2, 3, 1], [3, 3, 3]),  # they wrap around
    ],
)
def test_padding_modes_hand_computed(mode, padded, grad):
    # a 1x3 box filter of ones over x = [1, 2, 3] padded by one on each side
    m = conv_1x3(mode)
    y = m(np.array([[[[1.0, 2.0, 3.0]]]]))
    np.testing.assert_array_equal(y[0, 0, 0], np.convolve(padded, [1, 1, 1], mode="valid"))
    # with gy = ones, padded entry k gets the number of windows covering it (1, 2, 3, 2, 1),
    # folded back onto the entry of x it copies
    np.testing.assert_array_equal(m.backward(np.ones((1, 1, 1, 3)))[0, 0, 0], grad)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize(
    "padding, kernel, dilation",
    [((2, 3), (3, 2), (1, 1)), ("same", (2, 4), (1, 1)), ("same", (3, 2), (2, 3)), ((3, 4), (1, 1), (1, 1))],
    ids=["p2x3", "same-k2x4", "same-k3x2-d2x3", "largest-p3x4"],
)
def test_padding_gradients_match_finite_differences(mode, padding, kernel, dilation):
    if padding == (3, 4) and mode == "reflect":
        padding = (2, 3)  # reflect needs padding < size; the others allow up to the size (4, 5)
    m = nn.Conv2d(2, 2, kernel, padding=padding, dilation=dilation, padding_mode=mode, dtype=np.float64)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 3, 4))
    gy = rng.standard_normal(m(x).shape)
    m.zero_grad()
    gx = m.backward(gy)

    def loss():
        return np.sum(m(x) * gy)

    assert_gradient(loss, x, gx, f"{mode} grad_x")
    assert_gradient(loss, m.weight.data, m.weight.grad, f"{mode} grad_weight")


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_same_keeps_the_size_and_pads_the_extra_at_bottom_right(mode):
    # kernel (1, 2): a total padding of 1 along W, all of it on the right, as PyTorch
    m = nn.Conv2d(1, 1, (1, 2), padding="same", bias=False, padding_mode=mode, dtype=np.float64)
    m.weight.data[...] = [[[[1.0, 10.0]]]]
    y = m(np.array([[[[1.0, 2.0, 3.0]]]]))
    last = {"zeros": 0.0, "reflect": 2.0, "replicate": 3.0, "circular": 1.0}[mode]
    np.testing.assert_array_equal(y, [[[[21.0, 32.0, 3.0 + 10 * last]]]])


def test_same_with_even_kernel_keeps_every_size():
    for kernel, dilation in [((2, 4), (1, 1)), ((4, 2), (1, 3)), ((3, 5), (2, 2))]:
        m = nn.Conv2d(1, 2, kernel, padding="same", dilation=dilation)
        x = np.ones((1, 1, 6, 7), np.float32)
        assert m(x).shape == (1, 2, 6, 7)
        assert m.backward(np.ones((1, 2, 6, 7), np.float32)).shape == x.shape


@pytest.mark.parametrize(
    "mode, padding, message",
    [
        ("reflect", (3, 1), "padding_mode='reflect' needs a padding smaller than the input size, got padding (3, 3) on an axis of size 3"),
        ("circular", (1, 5), "padding_mode='circular' needs a padding at most the input size, got padding (5, 5) on an axis of size 4"),
    ],
    ids=["reflect", "circular"],
)  # fmt: skip
def test_padding_larger_than_the_mode_allows_is_rejected(mode, padding, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        nn.Conv2d(1, 1, 1, padding=padding, padding_mode=mode)(np.ones((1, 1, 3, 4), np.float32))


def test_fast_bias_gradient_where_padding_reaches_the_next_image() -> None:
    # padding >= kernel: an image's last output columns share the wide layout's column with the
    # next image's first, so a bias gradient summed from gy's rows lost one of the two (N = 17)
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((17, 2, 1, 1)), rng.standard_normal((1, 2, 1, 1)), rng.standard_normal(1)
    cfg = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1}
    _, ctx = kernels.get("conv2d", "fast").forward(x, w, b, **cfg)
    gy = rng.standard_normal((17, 1, 3, 3))
    gb = kernels.get("conv2d", "fast").backward(gy, ctx)[2]
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-12, err_msg="conv2d fast grad_bias, N=17, padding 1")
