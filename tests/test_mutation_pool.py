"""Pooling contracts that mutation testing of refcnn/kernels/pool.py found no test pinning.

Each test pins what PyTorch 2.13 (CPU) does for an input the older tests did not reach (the
expected values were checked against torch in a scratch script while writing them) or the
refcnn error line for a bad argument: the op name in every validator message; ``-inf``
windows away from the first one; max_pool2d's gradient as gy scatter-added at the indices
when windows share elements on one axis only, when padding is on one axis only, when a
window is empty or when padded windows leave a row uncovered; a kernel row no window
reaches inside the input; output dtypes (y and dL/dx in x's dtype, indices int64); an
adaptive output size of 0 on one axis; and float32 avg_pool2d rounding as PyTorch's
float32 kernel (the running sum, a divisor past 2**24, the backward's accumulation).
"""

from __future__ import annotations

import numpy as np
import pytest

from refcnn import kernels

IMPLS = ["reference", "fast"]
INF = np.inf


def max_cfg(k, s, p=(0, 0), d=(1, 1), ceil=False):
    return dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)


def avg_cfg(k, s, p=(0, 0), ceil=False, cip=True, div=None):
    return dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)


def grid(h, w, dtype=np.float64):
    """x[0, 0] = arange(h*w) as an (h, w) grid: each value is its own flat index."""
    return np.arange(h * w, dtype=dtype).reshape(1, 1, h, w)


# ---- every validator message starts with the op's name ------------------------------------
BASE = {
    "max_pool2d": max_cfg((2, 2), (2, 2)),
    "avg_pool2d": avg_cfg((2, 2), (2, 2)),
}


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(
    ("name", "bad", "error", "message"),
    [
        ("kernel_size", 3, TypeError, "kernel_size must be a pair of ints, got 3"),
        ("kernel_size", (0, 2), ValueError, r"kernel_size must be >= 1 on both axes, got \(0, 2\)"),
        ("stride", (2,), TypeError, r"stride must be a pair of ints, got \(2,\)"),
        ("stride", (1, 0), ValueError, r"stride must be >= 1 on both axes, got \(1, 0\)"),
        ("padding", (0, 1.0), TypeError, r"padding must be a pair of ints, got \(0, 1.0\)"),
        ("padding", (-1, 0), ValueError, r"padding must be >= 0 on both axes, got \(-1, 0\)"),
        ("ceil_mode", 1, TypeError, "ceil_mode must be a bool, got 1"),
    ],
    ids=["kernel-int", "kernel-0", "stride-1tuple", "stride-0", "padding-float", "padding-negative", "ceil-int"],
)
def test_window_argument_errors_name_the_op(op, name, bad, error, message):
    x = np.zeros((1, 2, 4, 5))
    with pytest.raises(error, match=f"^{op}: {message}$"):
        kernels.get(op).forward(x, **dict(BASE[op], **{name: bad}))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ((True, 1), TypeError, r"dilation must be a pair of ints, got \(True, 1\)"),
        ((2, 0), ValueError, r"dilation must be >= 1 on both axes, got \(2, 0\)"),
    ],
    ids=["bool", "zero"],
)
def test_max_pool_dilation_errors_name_the_op(bad, error, message):
    with pytest.raises(error, match=f"^max_pool2d: {message}$"):
        kernels.get("max_pool2d").forward(np.zeros((1, 2, 4, 5)), **dict(BASE["max_pool2d"], dilation=bad))


def test_avg_pool_count_include_pad_error_names_the_op():
    with pytest.raises(TypeError, match=r"^avg_pool2d: count_include_pad must be a bool, got 0$"):
        kernels.get("avg_pool2d").forward(np.zeros((1, 2, 4, 5)), **dict(BASE["avg_pool2d"], count_include_pad=0))


# ---- max_pool2d: -inf windows point at their own first element -----------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("cfg", "indices"),
    [
        (max_cfg((2, 2), (2, 2)), [[0, 2], [10, 12]]),
        (max_cfg((2, 3), (2, 2), (1, 1)), [[0, 1, 3], [5, 6, 8], [15, 16, 18]]),
    ],
    ids=["k2-s2", "k2x3-s2-p1"],
)
def test_max_pool_all_minus_inf_windows_after_the_first(impl, cfg, indices):
    """Every window of an all -inf input selects its first element inside the input,
    including windows past the first row and column (stride 2: i*sH, not i/sH)."""
    x = np.full((1, 1, 4, 5), -INF)
    y, ctx = kernels.get("max_pool2d", impl).forward(x, **cfg)
    assert np.all(y == -INF)
    np.testing.assert_array_equal(ctx.indices[0, 0], indices)


# ---- max_pool2d backward: disjoint windows with padding on the width axis only --------------
@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_backward_disjoint_windows_padded_on_width_only(impl):
    """kernel (2, 3) = stride, padding (0, 1): windows are disjoint (the fast backward's
    strided-write path) and the width padding shifts every column window left by one."""
    x = grid(4, 5)
    kernel = kernels.get("max_pool2d", impl)
    y, ctx = kernel.forward(x, **max_cfg((2, 3), (2, 3), (0, 1)))
    np.testing.assert_array_equal(y[0, 0], [[6, 9], [16, 19]])
    np.testing.assert_array_equal(ctx.indices[0, 0], [[6, 9], [16, 19]])
    (gx,) = kernel.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), ctx)
    expected = np.zeros((4, 5))
    expected[1, 1], expected[1, 4], expected[3, 1], expected[3, 4] = 1, 2, 3, 4
    np.testing.assert_array_equal(gx[0, 0], expected)


# ---- avg_pool2d: a kernel row or column that no window reaches inside the input -------------
@pytest.mark.parametrize("impl", IMPLS)
def test_avg_pool_one_window_larger_than_the_input(impl):
    """x (2, 3), kernel (3, 5), stride (2, 3), padding (1, 2): one window holding the whole
    input (sum 15) and padding, divided by the full kernel (count_include_pad): 1.0. Its
    last kernel column reaches no input element; the gradient is 1/15 everywhere."""
    kernel = kernels.get("avg_pool2d", impl)
    y, ctx = kernel.forward(grid(2, 3), **avg_cfg((3, 5), (2, 3), (1, 2)))
    np.testing.assert_array_equal(y, [[[[1.0]]]])
    (gx,) = kernel.backward(np.array([[[[15.0]]]]), ctx)
    np.testing.assert_allclose(gx, np.ones((1, 1, 2, 3)), rtol=1e-15)


# ---- max_pool2d backward: the gradient is gy scatter-added at the selected indices ----------
def scatter_add(shape, indices, gy):
    """PyTorch's max_pool2d backward: gx[n, c].flat[indices[n, c, i, j]] += gy[n, c, i, j]."""
    gx = np.zeros(shape)
    planes = gx.reshape(shape[0] * shape[1], -1)
    for plane, idx, g in zip(planes, indices.reshape(len(planes), -1), gy.reshape(len(planes), -1), strict=True):
        np.add.at(plane, idx, g)
    return gx


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "cfg",
    [
        max_cfg((3, 2), (2, 2), d=(2, 1)),
        max_cfg((2, 2), (2, 1)),
        max_cfg((2, 3), (2, 2), d=(1, 2)),
        max_cfg((2, 3), (2, 2)),
    ],
    ids=["dilated-rows-share", "cols-stride1", "dilated-cols-share", "cols-k3-s2"],
)
def test_max_pool_backward_windows_sharing_elements_on_one_axis(impl, seed, cfg):
    """Windows apart on one axis but sharing elements on the other (a dilated kernel whose
    stride is shorter than its span, or a stride shorter than the kernel): a shared
    element collects the gradient of every window that selects it, and an element one
    window selects is not cleared by another window that does not."""
    rng = np.random.default_rng(seed)
    x = rng.permutation(4 * 7 * 9).astype(np.float64).reshape(2, 2, 7, 9)
    x[1] = -x[1]  # decreasing planes: each window selects its first element
    kernel = kernels.get("max_pool2d", impl)
    y, ctx = kernel.forward(x, **cfg)
    gy = rng.integers(1, 9, y.shape).astype(np.float64)
    (gx,) = kernel.backward(gy, ctx)
    np.testing.assert_array_equal(gx, scatter_add(x.shape, ctx.indices, gy))
    np.testing.assert_array_equal(ctx.indices, kernels.get("max_pool2d", "reference").forward(x, **cfg)[1].indices)


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_single_element_input_with_an_empty_window(impl):
    """x (1, 1, 1, 1), kernel (2, 1), padding (1, 0), dilation (2, 1): the window's rows are
    -1 and 1, both outside the input: y = -inf, index 1 (PyTorch's), and no gradient."""
    kernel = kernels.get("max_pool2d", impl)
    y, ctx = kernel.forward(np.zeros((1, 1, 1, 1)), **max_cfg((2, 1), (1, 1), (1, 0), (2, 1)))
    np.testing.assert_array_equal(y, [[[[-INF]]]])
    np.testing.assert_array_equal(ctx.indices, [[[[1]]]])
    (gx,) = kernel.backward(np.ones((1, 1, 1, 1)), ctx)
    np.testing.assert_array_equal(gx, np.zeros((1, 1, 1, 1)))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("shape", "cfg", "uncovered"),
    [
        ((2, 3, 6, 5), max_cfg((3, 1), (3, 1), (1, 0)), (slice(5, 6), slice(None))),
        ((2, 3, 5, 6), max_cfg((1, 3), (1, 3), (0, 1)), (slice(None), slice(5, 6))),
    ],
    ids=["rows-padded", "cols-padded"],
)
def test_max_pool_backward_zero_where_no_padded_window_reaches(impl, shape, cfg, uncovered):
    """Kernel = stride with padding: the windows start one row (column) early, so the last
    one (H = 6, kernel 3, padding 1: windows -1..1 and 2..4) leaves row 5 uncovered; its
    gradient is 0 (as PyTorch's), however dirty the memory the gradient is allocated in."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    kernel = kernels.get("max_pool2d", impl)
    for _ in range(5):
        y, ctx = kernel.forward(x, **cfg)
        dirty = np.full(shape, np.nan)  # freed right before the backward allocates its result
        del dirty
        (gx,) = kernel.backward(np.ones_like(y), ctx)
        assert not np.isnan(gx).any()
        np.testing.assert_array_equal(gx[(Ellipsis, *uncovered)], 0.0)
        np.testing.assert_array_equal(gx, scatter_add(shape, ctx.indices, np.ones_like(y)))


@pytest.mark.parametrize(
    ("shape", "cfg"),
    [
        ((2, 3, 6, 5), max_cfg((3, 1), (3, 1), (1, 0))),
        ((2, 3, 5, 6), max_cfg((1, 3), (1, 3), (0, 1))),
        ((1, 2, 5, 4), max_cfg((2, 1), (3, 1), (1, 0))),
    ],
    ids=["rows-padded-k3s3", "cols-padded-k3s3", "rows-padded-k2s3"],
)
def test_max_pool_fast_pads_each_axis_by_its_own_padding_when_the_last_rows_are_uncovered(shape, cfg):
    """Padding on one axis only, and windows that end before the input does: the padded buffer
    must still start each axis's input at that axis's padding, though no window needs the rows
    after the last one. Fast against the reference (checked against PyTorch by the suite):
    values and indices."""
    x = np.random.default_rng(2).standard_normal(shape)
    y_ref, ctx_ref = kernels.get("max_pool2d", "reference").forward(x, **cfg)
    y, ctx = kernels.get("max_pool2d", "fast").forward(x, **cfg)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(ctx.indices, ctx_ref.indices)


@pytest.mark.parametrize(
    ("kernel_size", "winner"),
    [((12, 12), (11, 6)), ((1, 32800), (0, 32790)), ((32800, 1), (32790, 0))],
    ids=["144-offsets-int16", "1x32800-int32", "32800x1-int32"],
)
def test_max_pool_fast_counts_offsets_past_int8_and_int16(kernel_size, winner):
    """The fast kernel keeps each window's winning offset in the smallest integer type that holds
    kH * kW offsets: one window, its maximum at an offset past 127 (int8's largest) or 32767
    (int16's). The index must be that element's, not a wrapped-around offset's."""
    kH, kW = kernel_size
    x = np.zeros((1, 2, kH, kW))
    x[:, :, winner[0], winner[1]] = [1.0, 2.0]
    y, ctx = kernels.get("max_pool2d", "fast").forward(x, **max_cfg(kernel_size, kernel_size))
    np.testing.assert_array_equal(y.ravel(), [1.0, 2.0])
    np.testing.assert_array_equal(ctx.indices.ravel(), [winner[0] * kW + winner[1]] * 2)


# ---- output dtypes: y in x's dtype, indices int64 -------------------------------------------
CONFIGS = {
    "max_pool2d": max_cfg((2, 3), (2, 1), (1, 1)),
    "avg_pool2d": avg_cfg((2, 3), (2, 1), (1, 1)),
    "adaptive_avg_pool2d": dict(output_size=(3, 2)),
    "adaptive_max_pool2d": dict(output_size=(3, 2)),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op", list(CONFIGS))
def test_output_and_gradient_keep_the_input_dtype_and_indices_are_int64(op, dtype, impl):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(dtype)
    kernel = kernels.get(op, impl)
    y, ctx = kernel.forward(x, **CONFIGS[op])
    assert y.dtype == dtype
    if op.endswith("max_pool2d"):
        assert ctx.indices.dtype == np.int64
    (gx,) = kernel.backward(np.ones_like(y), ctx)
    assert gx.dtype == dtype


# ---- adaptive_avg_pool2d: an output size of 0 on one axis, also for an empty batch ----------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", [0, 2], ids=["empty-batch", "batch-2"])
@pytest.mark.parametrize("out", [(0, 2), (2, 0)], ids=["0x2", "2x0"])
@pytest.mark.parametrize("hw", [(4, 5), (1, 1)], ids=["4x5", "1x1"])
def test_adaptive_avg_output_size_zero_on_one_axis(impl, hw, n, out):
    """PyTorch's forward returns the empty output; refcnn's backward returns the zero
    gradient for it (as test_pool's test_adaptive_output_size_zero_gives_an_empty_output),
    with N = 0 too, where PyTorch's backward raises; on a 1 x 1 input as well as a larger one."""
    kernel = kernels.get("adaptive_avg_pool2d", impl)
    y, ctx = kernel.forward(np.ones((n, 3, *hw)), output_size=out)
    assert y.shape == (n, 3, *out)
    (gx,) = kernel.backward(np.ones(y.shape), ctx)
    np.testing.assert_array_equal(gx, np.zeros((n, 3, *hw)))


# ---- avg_pool2d in float32: PyTorch's float32 arithmetic --------------------------------------
B24 = 2.0**24  # float32 has no integer between 2**24 and 2**24 + 2
REFERENCE_IN_FLOAT64 = pytest.param(
    "reference",
    marks=pytest.mark.xfail(
        strict=True,
        reason="the reference sums (and divides) in float64 and rounds once, by design; PyTorch's float32 "
        "kernel rounds the running sum and the divisor to float32",
    ),
)


@pytest.mark.parametrize("impl", [REFERENCE_IN_FLOAT64, "fast"])
def test_avg_pool_float32_forward_sums_in_float32(impl):
    """A column [1, 2**24, 1], kernel (3, 1): PyTorch's float32 sum is (1 + 2**24) + 1 = 2**24
    (each + 1 rounds back), so y = float32(2**24 / 3) = 5592405.5, not (2**24 + 2) / 3."""
    x = np.array([1.0, B24, 1.0], dtype=np.float32).reshape(1, 1, 3, 1)
    y, _ = kernels.get("avg_pool2d", impl).forward(x, **avg_cfg((3, 1), (1, 1)))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.full((1, 1, 1, 1), 5592405.5, dtype=np.float32))


@pytest.mark.parametrize("impl", [REFERENCE_IN_FLOAT64, "fast"])
def test_avg_pool_float32_divisor_override_past_2_24(impl):
    """divisor_override = 2**24 + 1 is 2**24 in float32, as PyTorch divides: 2**24 / it = 1.0."""
    x = np.full((1, 1, 2, 3), B24, dtype=np.float32)
    y, _ = kernels.get("avg_pool2d", impl).forward(x, **avg_cfg((1, 1), (1, 1), div=2**24 + 1))
    np.testing.assert_array_equal(y, np.ones((1, 1, 2, 3), dtype=np.float32))


@pytest.mark.parametrize("impl", IMPLS)
def test_avg_pool_float32_backward_divides_and_accumulates_in_float32(impl):
    """kernel (1, 3), stride 1 on a width of 5: the middle element collects gy / 3 from three
    windows, [1, 2**24, 1], summed in float32 as PyTorch does: 2**24 (not 2**24 + 2).
    With divisor_override = 2**24 + 1 (2**24 in float32), gy = 2**24 spreads 1.0."""
    kernel = kernels.get("avg_pool2d", impl)
    _, ctx = kernel.forward(np.zeros((1, 1, 1, 5), np.float32), **avg_cfg((1, 3), (1, 1)))
    (gx,) = kernel.backward(np.array([[[[3.0, 3 * B24, 3.0]]]], np.float32), ctx)
    np.testing.assert_array_equal(gx, np.array([[[[1.0, B24, B24, B24, 1.0]]]], np.float32))
    _, ctx = kernel.forward(np.zeros((1, 1, 2, 3), np.float32), **avg_cfg((1, 1), (1, 1), div=2**24 + 1))
    (gx,) = kernel.backward(np.full((1, 1, 2, 3), B24, np.float32), ctx)
    np.testing.assert_array_equal(gx, np.ones((1, 1, 2, 3), np.float32))
