"""Pooling contracts that mutation testing of refcnn/kernels/pool.py found no test pinning.

Each test pins what PyTorch 2.13 (CPU) does for an input the older tests did not reach (the
expected values were checked against torch in a scratch script while writing them) or the
refcnn error line for a bad argument, naming the op and the value: the op name in every
validator message, ``-inf`` windows away from the first one, padding on one axis only in
the fast backward's disjoint-window path, a window whose kernel rows all fall in the
padding, and the keyword defaults of the kernels called directly.
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
