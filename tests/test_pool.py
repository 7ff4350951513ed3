"""Pooling kernels (max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d; reference
and fast) and the MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d modules.

Expected values are worked out by hand in the comments; the tie, NaN, -inf and ceil-mode
cases were also confirmed against PyTorch 2.13 (CPU) while writing them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refcnn import kernels, nn
from refcnn.kernels.adaptive_pool import adaptive_bins
from refcnn.kernels.pool import pooling_output_size
from refcnn.testing import assert_close, assert_gradient

IMPLS = ["reference", "fast"]
OPS = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
NAN, INF = np.nan, np.inf


def max_cfg(k, s=None, p=0, d=1, ceil=False):
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    return dict(
        kernel_size=pair(k), stride=pair(k if s is None else s), padding=pair(p), dilation=pair(d), ceil_mode=ceil
    )


def avg_cfg(k, s=None, p=0, ceil=False, cip=True, div=None):
    cfg = max_cfg(k, s, p, 1, ceil)
    del cfg["dilation"]
    return dict(cfg, count_include_pad=cip, divisor_override=div)


def run(op, impl, x, gy=None, **config):
    """Forward through the registry (validator included); given gy, also backward."""
    kernel = kernels.get(op, impl)
    y, ctx = kernel.forward(x, **config)
    if gy is None:
        return y, ctx
    (gx,) = kernel.backward(gy, ctx)
    return y, ctx, gx


def grid(h, w, dtype=np.float64):
    """x[0, 0] = arange(h*w) as an (h, w) grid: each value is its own flat index."""
    return np.arange(h * w, dtype=dtype).reshape(1, 1, h, w)


def test_every_op_has_both_implementations_and_fast_is_default():
    for op in OPS:
        assert kernels.available(op) == ["fast", "reference"]
        assert kernels.get(op).name == "fast"


POOL_CONFIGS = {
    "max_pool2d": max_cfg((3, 2), (2, 1), (1, 0)),
    "avg_pool2d": avg_cfg((3, 2), (2, 1), (1, 0)),
    "adaptive_avg_pool2d": {"output_size": (2, 3)},
    "adaptive_max_pool2d": {"output_size": (2, 3)},
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", OPS)
def test_backward_takes_needs_input_grad(op, impl):
    # A pool has no parameters: without the input gradient there is nothing to return but None.
    kernel = kernels.get(op, impl)
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6))
    y, ctx = kernel.forward(x, **POOL_CONFIGS[op])
    assert kernel.backward_impl(np.ones_like(y), ctx.inner, needs_input_grad=False) == (None,)
    (gx,) = kernel.backward_impl(np.ones_like(y), ctx.inner, needs_input_grad=True)
    assert gx.shape == x.shape


# ---- output sizes ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, expected",
    [
        ((7, 3, 2, 0, 1, False), 3),  # (7 - 3) // 2 + 1
        ((7, 3, 2, 1, 2, False), 3),  # (7 + 2 - 4 - 1) // 2 + 1: dilation 2 spans 5
        ((5, 2, 2, 0, 1, False), 2),  # floor: the last column is left out
        ((5, 2, 2, 0, 1, True), 3),  # ceil: a last window starting at 4 holds one element
        ((5, 2, 2, 1, 1, True), 3),  # ceil gives 4, but window 4 would start at 6 - 1 = 5 >= 5 + 1: dropped
        ((6, 2, 2, 1, 1, True), 4),  # ceil: (6 + 2 - 2 + 1) // 2 + 1 = 4, last starts at 5 < 7: kept
        ((4, 5, 1, 0, 1, False), 0),  # kernel larger than the input
        ((3, 3, 1, 0, 2, False), -1),  # dilated span 5 > 3: negative (validators reject)
    ],
    ids=["k3s2", "k3s2p1d2", "floor", "ceil-partial", "ceil-dropped", "ceil-kept", "too-small", "negative"],
)
def test_pooling_output_size(args, expected):
    assert pooling_output_size(*args) == expected


@pytest.mark.parametrize(
    "size, out, start, end",
    [
        (5, 3, [0, 1, 3], [2, 4, 5]),  # overlapping bins of 2, 3, 2
        (10, 4, [0, 2, 5, 7], [3, 5, 8, 10]),
        (3, 5, [0, 0, 1, 1, 2], [1, 2, 2, 3, 3]),  # more bins than rows
        (6, 3, [0, 2, 4], [2, 4, 6]),  # even split
    ],
    ids=["5to3", "10to4", "3to5", "6to3"],
)
def test_adaptive_bins_are_pytorchs(size, out, start, end):
    s, e = adaptive_bins(size, out)
    np.testing.assert_array_equal(s, start)
    np.testing.assert_array_equal(e, end)


# ---- max_pool2d, by hand ----------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_max_pool_ties_go_to_the_first_maximum(impl, dtype):
    x = np.array([[[[1, 3, 3, 2], [3, 0, 1, 3], [2, 2, 2, 2]]]], dtype)
    y, ctx, gx = run("max_pool2d", impl, x, np.ones((1, 1, 2, 3), dtype), **max_cfg(2, 1))
    # window (0,0) = 1 3 / 3 0: the 3 at (0,1) comes first; (0,1) = 3 3 / 0 1: (0,1) again;
    # (1,1) = 0 1 / 2 2: the 2 at (2,1) = 9; (1,2) = 1 3 / 2 2: (1,3) = 7
    np.testing.assert_array_equal(y, [[[[3, 3, 3], [3, 2, 3]]]])
    np.testing.assert_array_equal(ctx.indices, [[[[1, 1, 2], [4, 9, 7]]]])
    assert y.dtype == dtype and ctx.indices.dtype == np.int64
    # backward adds: index 1 was chosen twice
    np.testing.assert_array_equal(gx, [[[[0, 2, 1, 0], [1, 0, 0, 1], [0, 1, 0, 0]]]])
    assert gx.dtype == dtype


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_nan_wins_and_the_last_nan_is_chosen(impl):
    x = np.array([[[[NAN, 3, NAN, 2], [3, NAN, 1, 3]]]])
    y, ctx = run("max_pool2d", impl, x, **max_cfg(2))
    assert np.isnan(y).all()
    # window 0 = nan 3 / 3 nan: PyTorch's scan keeps replacing on NaN, so the last NaN (1,1) = 5
    np.testing.assert_array_equal(ctx.indices, [[[[5, 2]]]])


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_all_minus_inf_points_at_the_first_element_inside(impl):
    x = np.full((1, 1, 3, 4), -INF)
    y, ctx, gx = run("max_pool2d", impl, x, np.ones((1, 1, 4, 5)), **max_cfg(2, 1, 1))
    assert np.all(y == -INF)
    # window (i, j) starts at (i-1, j-1): its first element inside is (max(i-1,0), max(j-1,0))
    np.testing.assert_array_equal(
        ctx.indices, [[[[0, 0, 1, 2, 3], [0, 0, 1, 2, 3], [4, 4, 5, 6, 7], [8, 8, 9, 10, 11]]]]
    )
    # every window holds its index, so backward counts how often each element was chosen
    np.testing.assert_array_equal(gx, [[[[4, 2, 2, 2], [2, 1, 1, 1], [2, 1, 1, 1]]]])


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_padding_never_wins(impl):
    x = -grid(3, 4) - 1  # every value negative: a zero padding would win, -inf padding cannot
    y, ctx = run("max_pool2d", impl, x, **max_cfg((3, 2), (2, 3), (1, 1)))
    # rows [-1,2) and [1,4); columns [-1,1) and [2,4): the top-left value of what is inside
    np.testing.assert_array_equal(ctx.indices, [[[[0, 2], [4, 6]]]])
    np.testing.assert_array_equal(y, [[[[-1, -3], [-5, -7]]]])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "shape, cfg, out, indices",
    [
        # dilation 2 skips the only row: the window holds rows -1 and 1 of a 1-row input
        ((1, 1, 1, 3), max_cfg((2, 1), 1, (1, 0), (2, 1)), (1, 3), [3, 4, 5]),
        # the columns -1 and 2 of a 2-column input: row i's index is i*2 + 2 (PyTorch's)
        ((1, 2, 3, 2), max_cfg((1, 2), 1, (0, 1), (1, 3)), (3, 1), [2, 4, 6]),
    ],
    ids=["no-row-inside", "no-column-inside"],
)
def test_max_pool_empty_window_is_minus_inf_and_passes_no_gradient(impl, shape, cfg, out, indices):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    y, ctx, gx = run("max_pool2d", impl, x, np.ones(shape[:2] + out), **cfg)
    assert np.all(y == -INF)
    np.testing.assert_array_equal(ctx.indices.reshape(shape[1], -1)[0], indices)  # as PyTorch
    # PyTorch's backward writes through those indices (to the wrong element, or past the
    # plane); the output is a constant -inf, so the true gradient is zero
    np.testing.assert_array_equal(gx, np.zeros(shape))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cfg", [max_cfg((2, 3)), max_cfg((2, 3), 1)], ids=["disjoint", "overlapping"])
def test_max_pool_infinite_gradient_reaches_only_its_element(impl, cfg):
    x = grid(4, 6)  # the bottom-right element of each window wins
    y, _ = run("max_pool2d", impl, x, **cfg)
    gy = np.zeros_like(y)
    gy[0, 0, 0, 0] = INF
    _, ctx, gx = run("max_pool2d", impl, x, gy, **cfg)
    expected = np.zeros_like(x)
    expected.flat[ctx.indices[0, 0, 0, 0]] = INF  # inf * 0 elsewhere would have made NaN
    np.testing.assert_array_equal(gx, expected)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "cfg",
    [max_cfg((2, 3)), max_cfg((2, 3), ceil=True), max_cfg((2, 3), (3, 4)), max_cfg((2, 3), 1)],
    ids=["tiles", "tiles-ceil", "apart", "overlapping"],
)
def test_max_pool_gradient_bits_are_pytorchs(impl, dtype, cfg):
    # PyTorch adds gy into a zero-filled gradient: -0.0 arrives as +0.0, nan and inf as they are,
    # and every element no window chose (rows and columns past the last window too) is +0.0.
    x = grid(5, 8, dtype)  # the bottom-right element of each window wins
    y, _ = run("max_pool2d", impl, x, **cfg)
    gy = np.resize(np.array([-0.0, NAN, -INF, -2.5, INF, 3.0], dtype), y.shape)
    _, ctx, gx = run("max_pool2d", impl, x, gy, **cfg)
    expected = np.zeros_like(x)
    planes = expected.reshape(-1, 5 * 8)
    for index, g in zip(ctx.indices.ravel(), gy.ravel(), strict=True):
        planes[0, index] += g  # one plane: PyTorch's scatter, one gradient at a time
    np.testing.assert_array_equal(gx, expected)  # nan where nan
    np.testing.assert_array_equal(np.signbit(gx), np.signbit(expected), err_msg="sign of zero")


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_ceil_mode_partial_and_dropped_windows(impl):
    # (4, 5) with k2 s2 ceil: 2 x 3 windows, the last column window holds column 4 alone
    y, ctx = run("max_pool2d", impl, grid(4, 5), **max_cfg(2, 2, 0, 1, True))
    np.testing.assert_array_equal(ctx.indices, [[[[6, 8, 9], [16, 18, 19]]]])
    np.testing.assert_array_equal(y, ctx.indices)  # the grid's values are its indices
    # (5, 5) with k2 s2 p1 ceil: a 4th window would start at 5 (in the padding): dropped
    y, ctx = run("max_pool2d", impl, grid(5, 5), **max_cfg(2, 2, 1, 1, True))
    np.testing.assert_array_equal(ctx.indices, [[[[0, 2, 4], [10, 12, 14], [20, 22, 24]]]])


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_dilated_asymmetric_by_hand(impl):
    x = grid(6, 7)[..., ::-1].copy()  # x[r, c] = 7r + 6 - c: the lowest row and leftmost column win
    # k (2, 3), s (2, 1), d (2, 2): window (i, j) = rows 2i, 2i+2 x columns j, j+2, j+4
    y, ctx = run("max_pool2d", impl, x, **max_cfg((2, 3), (2, 1), 0, (2, 2)))
    assert y.shape == (1, 1, 2, 3)
    # max at row 2i+2 (larger values lower down), column j (larger to the left after flipping)
    np.testing.assert_array_equal(ctx.indices, [[[[14, 15, 16], [28, 29, 30]]]])
    np.testing.assert_array_equal(y, [[[[20, 19, 18], [34, 33, 32]]]])


# ---- avg_pool2d, by hand ----------------------------------------------------------------------
# x = [[0 1 2 3] [4 5 6 7] [8 9 10 11]], k (2, 3), s (1, 2), p (1, 1): rows [-1,1) [0,2) [1,3)
# [2,4) and columns [-1,2) [1,4); the window sums are 1 6 / 10 24 / 26 48 / 17 30.
SUMS = np.array([[1, 6], [10, 24], [26, 48], [17, 30]], dtype=np.float64)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "cip, div, divisor",
    [
        (True, None, np.full((4, 2), 6.0)),  # every window is 2 x 3 with the padding counted
        (False, None, np.array([[1], [2], [2], [1]]) * np.array([[2, 3]])),  # elements inside
        (True, 3, np.full((4, 2), 3.0)),
        (False, -2, np.full((4, 2), -2.0)),  # PyTorch allows a negative override
    ],
    ids=["count-pad", "exclude-pad", "override3", "override-neg2"],
)
def test_avg_pool_divisors_by_hand(impl, dtype, cip, div, divisor):
    x = grid(3, 4, dtype)
    y, _ = run("avg_pool2d", impl, x, **avg_cfg((2, 3), (1, 2), (1, 1), False, cip, div))
    assert y.dtype == dtype
    assert_close(y[0, 0], SUMS / divisor, 7, SUMS / np.abs(divisor), dtype, "avg_pool2d")


@pytest.mark.parametrize("impl", IMPLS)
def test_avg_pool_backward_by_hand(impl):
    x = grid(3, 4)
    _, _, gx = run("avg_pool2d", impl, x, np.ones((1, 1, 4, 2)), **avg_cfg((2, 3), (1, 2), (1, 1)))
    # every row lies in 2 windows; columns 0..3 in 1, 2, 1, 1 windows; each passes 1/6
    expected = np.outer([2, 2, 2], [1, 2, 1, 1]) / 6
    assert_close(gx[0, 0], expected, 4 + 1, expected, np.float64, "avg_pool2d backward")  # <= 4 shares


@pytest.mark.parametrize("impl", IMPLS)
def test_avg_pool_ceil_mode_counts_only_up_to_the_padding(impl):
    # (3, 5) k2 s2 ceil: rows [0,2) [2,3), columns [0,2) [2,4) [4,5); past the edge nothing is counted
    y, _ = run("avg_pool2d", impl, grid(3, 5), **avg_cfg(2, 2, 0, True))
    np.testing.assert_array_equal(y, [[[[12 / 4, 20 / 4, 13 / 2], [21 / 2, 25 / 2, 14]]]])
    # (5, 5) ones, k3 s2 p1 ceil, padding counted: windows [-1,2) [1,4) [3,6) clipped to 5 + 1:
    # 2 of 3 rows inside at both ends
    y, _ = run("avg_pool2d", impl, np.ones((1, 1, 5, 5)), **avg_cfg(3, 2, 1, True))
    edge = np.array([2, 3, 2]) / 3
    assert_close(y[0, 0], np.outer(edge, edge), 9 + 1, np.outer(edge, edge), np.float64, "avg_pool2d ceil")
    # (5, 5) ones, k2 s2 p1 ceil: the 4th window (starting in the padding) is dropped
    y, _ = run("avg_pool2d", impl, np.ones((1, 1, 5, 5)), **avg_cfg(2, 2, 1, True))
    edge = np.array([1, 2, 2]) / 2
    np.testing.assert_array_equal(y[0, 0], np.outer(edge, edge))


# ---- adaptive pooling, by hand ----------------------------------------------------------------
# x = grid(5, 3) to (3, 2): row bins [0,2) [1,4) [3,5), column bins [0,2) [1,3)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_adaptive_avg_pool_by_hand(impl, dtype):
    x = grid(5, 3, dtype)
    y, _, gx = run("adaptive_avg_pool2d", impl, x, np.ones((1, 1, 3, 2), dtype), output_size=(3, 2))
    # sums 8 12 / 39 45 / 44 48 over bins of 4, 4 / 6, 6 / 4, 4 elements
    assert y.dtype == gx.dtype == dtype
    np.testing.assert_array_equal(y, [[[[2, 3], [6.5, 7.5], [11, 12]]]])
    # row r is in bins with 1/size: rows 0: {0}; 1: {0, 1}; 2: {1}; 3: {1, 2}; 4: {2}
    rows = np.array([1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2])
    cols = np.array([1 / 2, 1, 1 / 2])
    expected = np.outer(rows, cols)  # each a sum of <= 4 shares, each a division
    assert_close(gx[0, 0], expected, 4 + 1, expected, dtype, "adaptive_avg_pool2d backward")


@pytest.mark.parametrize("impl", IMPLS)
def test_adaptive_max_pool_by_hand(impl):
    y, ctx, gx = run("adaptive_max_pool2d", impl, grid(5, 3), np.ones((1, 1, 3, 2)), output_size=(3, 2))
    np.testing.assert_array_equal(ctx.indices, [[[[4, 5], [10, 11], [13, 14]]]])
    np.testing.assert_array_equal(y, ctx.indices)
    np.testing.assert_array_equal(gx[0, 0], [[0, 0, 0], [0, 1, 1], [0, 0, 0], [0, 1, 1], [0, 1, 1]])


@pytest.mark.parametrize("impl", IMPLS)
def test_adaptive_max_pool_ties_nan_and_overlapping_bins(impl):
    # (2, 3) to (1, 2): column bins [0,2) [1,3) overlap; both pick the first 2, at index 1
    x = np.array([[[[1, 2, 2], [2, 0, 2]]]], dtype=np.float64)
    y, ctx, gx = run("adaptive_max_pool2d", impl, x, np.array([[[[1.0, 10.0]]]]), output_size=(1, 2))
    np.testing.assert_array_equal(ctx.indices, [[[[1, 1]]]])
    np.testing.assert_array_equal(gx, [[[[0, 11, 0], [0, 0, 0]]]])
    # more bins than rows: (2, 3) to (3, 1): row bins [0,1) [0,2) [1,2); NaN: the last one wins
    x = np.array([[[[NAN, 1, NAN], [5, NAN, 0]]]], dtype=np.float64)
    y, ctx = run("adaptive_max_pool2d", impl, x, output_size=(3, 1))
    np.testing.assert_array_equal(ctx.indices, [[[[2], [4], [4]]]])
    assert np.isnan(y).all()


# ---- fast against reference, on random configurations ----------------------------------------
@st.composite
def window_configs(draw, dilation=True):
    """A valid (kernel, stride, padding, dilation, ceil_mode) and an input shape for it."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 5)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    ceil = draw(st.booleans())
    # the smallest input with one full window: d*(k-1) + 1 - 2p (then output >= 1)
    H_min, W_min = (max(1, d[a] * (k[a] - 1) + 1 - 2 * p[a]) for a in (0, 1))
    H, W = draw(st.integers(H_min, H_min + 5)), draw(st.integers(W_min, W_min + 6))
    shape = (draw(st.sampled_from([1, 2, 0])), draw(st.integers(1, 3)), H, W)
    return shape, k, s, p, d, ceil


def _data(rng, shape, kind):
    if kind == "normal":
        return rng.standard_normal(shape)
    x = rng.integers(-2, 3, shape).astype(np.float64)  # many ties
    if kind == "special":
        u = rng.random(shape)
        x[u < 0.1] = NAN
        x[(u >= 0.1) & (u < 0.3)] = -INF
        x[u > 0.93] = INF
    return x


def _max_backward_bounds(x64, gy, cfg):
    """n = how many gradients each element receives, S = the sum of their magnitudes."""
    kernel = kernels.get("max_pool2d", "reference")
    _, ctx = kernel.forward(x64, **cfg)
    (n,) = kernel.backward(np.ones(gy.shape), ctx)
    (S,) = kernel.backward(np.abs(gy.astype(np.float64)), ctx)
    return n, S


@given(cfg=window_configs(), kind=st.sampled_from(["normal", "ties", "special"]), seed=st.integers(0, 2**16))
def test_max_pool_fast_matches_reference(cfg, kind, seed):
    shape, k, s, p, d, ceil = cfg
    rng = np.random.default_rng(seed)
    x64 = _data(rng, shape, kind)
    config = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    y_ref, ctx_ref = run("max_pool2d", "reference", x64, **config)
    gy64 = rng.standard_normal(y_ref.shape)
    if kind == "special" and y_ref.size:
        gy64.flat[0] = INF  # an infinite gradient must reach its element alone (no inf * 0)
    n, S = _max_backward_bounds(x64, gy64, config)
    (gx_ref,) = kernels.get("max_pool2d", "reference").backward(gy64, ctx_ref)
    for dtype in DTYPES:
        y, ctx, gx = run("max_pool2d", "fast", x64.astype(dtype), gy64.astype(dtype), **config)
        assert y.dtype == gx.dtype == dtype
        # a selection: values exact, indices identical (float32 holds these values exactly)
        np.testing.assert_array_equal(y, y_ref.astype(dtype))
        np.testing.assert_array_equal(ctx.indices, ctx_ref.indices)
        assert_close(gx, gx_ref, np.maximum(n, 1), S, dtype, f"max_pool2d grad {cfg}")


@given(
    cfg=window_configs(dilation=False),
    cip=st.booleans(),
    div=st.sampled_from([None, None, 1, 3, -2]),
    seed=st.integers(0, 2**16),
)
def test_avg_pool_fast_matches_reference(cfg, cip, div, seed):
    shape, k, s, p, _, ceil = cfg
    rng = np.random.default_rng(seed)
    x64 = rng.standard_normal(shape)
    config = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    ref = kernels.get("avg_pool2d", "reference")
    y_ref, ctx_ref = ref.forward(x64, **config)
    gy64 = rng.standard_normal(y_ref.shape)
    (gx_ref,) = ref.backward(gy64, ctx_ref)
    # n: the terms summed (+1 for the division); S: the same op on magnitudes
    terms = ref.forward(np.ones(shape), **dict(config, divisor_override=1))[0]
    S_y = ref.forward(np.abs(x64), **config)[0]
    counts = ref.backward(np.ones(y_ref.shape), ref.forward(x64, **dict(config, divisor_override=1))[1])[0]
    S_gx = ref.backward(np.abs(gy64), ctx_ref)[0]
    for dtype in DTYPES:
        for impl in IMPLS:
            y, _, gx = run("avg_pool2d", impl, x64.astype(dtype), gy64.astype(dtype), **config)
            assert y.dtype == gx.dtype == dtype
            assert_close(y, y_ref, terms + 1, np.abs(S_y), dtype, f"avg_pool2d {impl} {cfg}")
            assert_close(gx, gx_ref, counts + 1, np.abs(S_gx), dtype, f"avg_pool2d {impl} grad {cfg}")


@given(
    shape=st.tuples(st.sampled_from([1, 2, 0]), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    out=st.tuples(st.integers(0, 11), st.integers(0, 11)),
    kind=st.sampled_from(["normal", "ties", "special"]),
    seed=st.integers(0, 2**16),
)
def test_adaptive_fast_matches_reference(shape, out, kind, seed):
    rng = np.random.default_rng(seed)
    x64 = _data(rng, shape, kind)
    for op in ("adaptive_max_pool2d", "adaptive_avg_pool2d"):
        if op == "adaptive_avg_pool2d":
            x64 = rng.standard_normal(shape)
        ref = kernels.get(op, "reference")
        y_ref, ctx_ref = ref.forward(x64, output_size=out)
        gy64 = rng.standard_normal(y_ref.shape)
        (gx_ref,) = ref.backward(gy64, ctx_ref)
        S_y = ref.forward(np.abs(x64), output_size=out)[0]
        (n_gx,) = ref.backward(np.ones(y_ref.shape), ctx_ref)  # sum of 1/size (avg) or count (max)
        (S_gx,) = ref.backward(np.abs(gy64), ctx_ref)
        for dtype in DTYPES:
            y, ctx, gx = run(op, "fast", x64.astype(dtype), gy64.astype(dtype), output_size=out)
            assert y.shape == y_ref.shape and y.dtype == gx.dtype == dtype
            if op == "adaptive_max_pool2d":
                np.testing.assert_array_equal(y, y_ref.astype(dtype))
                np.testing.assert_array_equal(ctx.indices, ctx_ref.indices)
                assert_close(gx, gx_ref, np.maximum(n_gx, 1), S_gx, dtype, f"{op} grad {shape} {out}")
            else:
                # a bin holds at most H*W terms; a gradient element sums at most H_out*W_out shares
                assert_close(y, y_ref, shape[2] * shape[3] + 1, S_y, dtype, f"{op} {shape} {out}")
                n = out[0] * out[1] + 1
                assert_close(gx, gx_ref, n, S_gx, dtype, f"{op} grad {shape} {out}")


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_kernel_with_more_than_127_offsets(impl):
    # a 12 x 12 window has 144 offsets: the fast kernel's offset code needs int16
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 12, 13))
    y, ctx, gx = run("max_pool2d", impl, x, np.ones((1, 2, 1, 2)), **max_cfg(12, 1))
    for c in range(2):
        for j in range(2):
            window = x[0, c, :, j : j + 12]
            ih, iw = np.unravel_index(np.argmax(window), window.shape)
            assert ctx.indices[0, c, 0, j] == ih * 13 + iw + j
            assert y[0, c, 0, j] == window.max()
    assert gx.sum() == 4


# ---- finite differences (float64, tie-free inputs) ---------------------------------------------
def _tie_free(rng, shape):
    """Distinct values at least 0.01 apart: no step of 1e-6 changes which element wins."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.01 - n * 0.005).reshape(shape)


def _check_fd(op, config, x, rng):
    kernel = kernels.get(op)
    y, ctx = kernel.forward(x, **config)
    gy = rng.standard_normal(y.shape)
    (gx,) = kernel.backward(gy, ctx)
    assert_gradient(lambda: float(np.sum(kernel.forward(x, **config)[0] * gy)), x, gx, f"{op} {config}")


@pytest.mark.parametrize(
    "cfg",
    [
        max_cfg(2),
        max_cfg((3, 2), (2, 1), (1, 0)),
        max_cfg((2, 3), (1, 2), (1, 1), (2, 1), True),
        max_cfg(3, 2, 1, 1, True),
    ],
    ids=["k2", "k3x2-s2x1-p1x0", "k2x3-s1x2-p1-d2x1-ceil", "k3-s2-p1-ceil"],
)
def test_max_pool_input_gradient_by_finite_differences(cfg):
    rng = np.random.default_rng(0)
    _check_fd("max_pool2d", cfg, _tie_free(rng, (2, 2, 5, 6)), rng)


@pytest.mark.parametrize(
    "cfg",
    [
        avg_cfg((3, 2), (2, 1), (1, 0)),
        avg_cfg((2, 3), (1, 2), (1, 1), True, False),
        avg_cfg(3, 2, 1, True, True, 5),
    ],
    ids=["k3x2-s2x1-p1x0", "k2x3-s1x2-p1-ceil-nopad", "k3-s2-p1-ceil-div5"],
)
def test_avg_pool_input_gradient_by_finite_differences(cfg):
    rng = np.random.default_rng(1)
    _check_fd("avg_pool2d", cfg, rng.standard_normal((2, 2, 5, 6)), rng)


@pytest.mark.parametrize("out", [(3, 2), (7, 4), (1, 1)], ids=["3x2", "7x4-more-than-input", "global"])
@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_input_gradient_by_finite_differences(op, out):
    rng = np.random.default_rng(2)
    _check_fd(op, dict(output_size=out), _tie_free(rng, (1, 2, 5, 3)), rng)


# ---- empty batches and outputs ----------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "op, cfg, out_shape",
    [
        ("max_pool2d", max_cfg(2), (0, 3, 2, 3)),
        ("avg_pool2d", avg_cfg(2), (0, 3, 2, 3)),
        ("adaptive_avg_pool2d", dict(output_size=(2, 5)), (0, 3, 2, 5)),
        ("adaptive_max_pool2d", dict(output_size=(2, 5)), (0, 3, 2, 5)),
    ],
    ids=OPS,
)
def test_empty_batch(impl, op, cfg, out_shape):
    y, _, gx = run(op, impl, np.ones((0, 3, 4, 7)), np.ones(out_shape), **cfg)
    assert y.shape == out_shape and gx.shape == (0, 3, 4, 7)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_output_size_zero_gives_an_empty_output(impl, op):
    # PyTorch accepts output_size 0 and returns an empty tensor
    y, _, gx = run(op, impl, np.ones((2, 3, 4, 5)), np.ones((2, 3, 0, 2)), output_size=(0, 2))
    assert y.shape == (2, 3, 0, 2)
    np.testing.assert_array_equal(gx, np.zeros((2, 3, 4, 5)))


# ---- validation: what PyTorch rejects, refcnn rejects with its own message ---------------------
X = np.zeros((2, 3, 7, 6))


@pytest.mark.parametrize(
    "x, cfg, error, message",
    [
        ([[1.0]], max_cfg(2), TypeError, r"max_pool2d: x must be a numpy.ndarray, got list"),
        (X.astype(np.int64), max_cfg(2), TypeError, r"x must be float32 or float64, got dtype int64"),
        (X[0], max_cfg(2), ValueError, r"x must be 4-D, got shape \(3, 7, 6\)"),
        (np.zeros((1, 0, 4, 5)), max_cfg(2), ValueError, r"non-zero C, H and W .* got shape \(1, 0, 4, 5\)"),
        (np.zeros((1, 1, 0, 5)), max_cfg(2), ValueError, r"non-zero C, H and W .* got shape \(1, 1, 0, 5\)"),
        (X, dict(max_cfg(2), kernel_size=2), TypeError, r"kernel_size must be a pair of ints, got 2"),
        (X, max_cfg((2, 0)), ValueError, r"kernel_size must be >= 1 on both axes, got \(2, 0\)"),
        (X, max_cfg(2, (1, 0)), ValueError, r"stride must be >= 1 on both axes, got \(1, 0\)"),
        (X, max_cfg(2, -1), ValueError, r"stride must be >= 1 on both axes, got \(-1, -1\)"),
        (X, max_cfg(3, 1, (-1, 0)), ValueError, r"padding must be >= 0 on both axes, got \(-1, 0\)"),
        (X, max_cfg(2, 1, 0, (0, 1)), ValueError, r"dilation must be >= 1 on both axes, got \(0, 1\)"),
        (X, max_cfg(3, 1, (2, 0)), ValueError, r"padding must be at most half the kernel size .* got padding=\(2, 0\), kernel_size=\(3, 3\)"),
        # PyTorch checks the plain kernel even when dilated: k3 d2 (span 5) still allows only 1
        (X, max_cfg(3, 1, (2, 0), 2), ValueError, r"padding must be at most half .* padding=\(2, 0\), kernel_size=\(3, 3\)"),
        (X, max_cfg(8, 1), ValueError, r"given input size \(C, H, W\) = \(3, 7, 6\), calculated output size \(3, 0, -1\) is too small"),
        (X, max_cfg(2, 1, 0, (2, 6)), ValueError, r"calculated output size \(3, 5, 0\) is too small .*dilation=\(2, 6\)"),
        (X, dict(max_cfg(2), ceil_mode=1), TypeError, r"ceil_mode must be a bool, got 1"),
    ],
    ids=[
        "list", "int-dtype", "3d", "no-channels", "no-rows", "int-kernel", "kernel-0", "stride-0",
        "stride-neg", "padding-neg", "dilation-0", "padding-over-half", "padding-over-half-dilated",
        "too-small", "too-small-dilated", "ceil-int",
    ],
)  # fmt: skip
def test_max_pool_rejects(x, cfg, error, message):
    for impl in IMPLS:
        with pytest.raises(error, match=message):
            run("max_pool2d", impl, x, **cfg)


@pytest.mark.parametrize(
    "cfg, error, message",
    [
        (avg_cfg(2, 1, 0, False, True, 0), ValueError, r"avg_pool2d: divisor_override must not be zero, got 0"),
        (avg_cfg(2, 1, 0, False, True, 2.5), TypeError, r"divisor_override must be None or an int, got 2.5"),
        (avg_cfg(2, 1, 0, False, True, True), TypeError, r"divisor_override must be None or an int, got True"),
        (avg_cfg(2, 1, 0, False, 1), TypeError, r"count_include_pad must be a bool, got 1"),
        (avg_cfg(3, 1, (1, 2)), ValueError, r"padding must be at most half .* got padding=\(1, 2\), kernel_size=\(3, 3\)"),
        # the whole message: avg_pool2d takes no dilation, so its message names none
        (avg_cfg((8, 2)), ValueError, r"avg_pool2d: given input size \(C, H, W\) = \(3, 7, 6\), calculated output size \(3, 0, 3\) is too small \(kernel_size=\(8, 2\), stride=\(8, 2\), padding=\(0, 0\), ceil_mode=False\)$"),
        (avg_cfg(0), ValueError, r"kernel_size must be >= 1 on both axes, got \(0, 0\)"),
    ],
    ids=["divisor-0", "divisor-float", "divisor-bool", "cip-int", "padding-over-half", "too-small", "kernel-0"],
)  # fmt: skip
def test_avg_pool_rejects(cfg, error, message):
    for impl in IMPLS:
        with pytest.raises(error, match=message):
            run("avg_pool2d", impl, X, **cfg)


@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize(
    "x, out, error, message",
    [
        (X, (3, -1), ValueError, r"output_size must be >= 0 on both axes, got \(3, -1\)"),
        (X, 3, TypeError, r"output_size must be a pair of ints, got 3"),
        (X[0], (2, 2), ValueError, r"x must be 4-D, got shape \(3, 7, 6\)"),
        (np.zeros((1, 2, 0, 4)), (2, 2), ValueError, r"x must be \(N, C, H, W\) with non-zero C, H and W"),
        (X.astype(np.float16), (2, 2), TypeError, r"x must be float32 or float64, got dtype float16"),
    ],
    ids=["negative", "int", "3d", "no-rows", "float16"],
)
def test_adaptive_rejects(op, x, out, error, message):
    for impl in IMPLS:
        with pytest.raises(error, match=f"{op}: {message}"):
            run(op, impl, x, output_size=out)


def test_backward_checks_the_gradient_it_gets():
    kernel = kernels.get("max_pool2d")
    _, ctx = kernel.forward(X, **max_cfg(2))
    with pytest.raises(
        ValueError, match=r"expected grad_y of shape \(2, 3, 3, 3\) \(the output's\), got \(2, 3, 3, 2\)"
    ):
        kernel.backward(np.zeros((2, 3, 3, 2)), ctx)
    with pytest.raises(TypeError, match=r"expected grad_y of dtype float64 \(the output's\), got float32"):
        kernel.backward(np.zeros((2, 3, 3, 3), np.float32), ctx)


# ---- modules --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "module, expected",
    [
        (lambda: nn.MaxPool2d(2), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"),
        (
            lambda: nn.MaxPool2d((3, 5), (2, 1), (1, 2), (2, 1), True, True),
            "MaxPool2d(kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1), ceil_mode=True)",
        ),
        (lambda: nn.MaxPool2d([3, 5], stride=[]), "MaxPool2d(kernel_size=[3, 5], stride=[], padding=0, dilation=1, ceil_mode=False)"),
        (lambda: nn.AvgPool2d(2), "AvgPool2d(kernel_size=2, stride=2, padding=0)"),
        (lambda: nn.AvgPool2d((3, 5), (2, 1), (1, 2), True, False, 3), "AvgPool2d(kernel_size=(3, 5), stride=(2, 1), padding=(1, 2))"),
        (lambda: nn.AdaptiveAvgPool2d((None, 3)), "AdaptiveAvgPool2d(output_size=(None, 3))"),
        (lambda: nn.AdaptiveMaxPool2d(5, return_indices=True), "AdaptiveMaxPool2d(output_size=5)"),
    ],
    ids=["max-default", "max-all", "max-lists", "avg-default", "avg-all", "adaptive-avg", "adaptive-max"],
)  # fmt: skip
def test_module_repr_is_pytorchs(module, expected):
    assert repr(module()) == expected


def _module_cases():
    return [
        (nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), ceil_mode=True), "max_pool2d",
         max_cfg((3, 2), (2, 1), (1, 0), (1, 2), True)),
        (nn.MaxPool2d((3,), padding=(1,)), "max_pool2d", max_cfg(3, 3, 1)),  # 1-tuples, as PyTorch takes
        (nn.AvgPool2d((2, 3), stride=(1, 2), padding=1, count_include_pad=False, divisor_override=None),
         "avg_pool2d", avg_cfg((2, 3), (1, 2), 1, False, False)),
        (nn.AvgPool2d(3, divisor_override=2, ceil_mode=True, stride=[]), "avg_pool2d", avg_cfg(3, 3, 0, True, True, 2)),
        (nn.AdaptiveAvgPool2d((None, 2)), "adaptive_avg_pool2d", dict(output_size=(7, 2))),
        (nn.AdaptiveMaxPool2d([4, None]), "adaptive_max_pool2d", dict(output_size=(4, 6))),
        (nn.AdaptiveMaxPool2d(3), "adaptive_max_pool2d", dict(output_size=(3, 3))),
    ]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", range(7), ids=["max", "max-1tuple", "avg", "avg-ceil", "aavg", "amax", "amax-int"])
def test_module_matches_its_kernel_batched_and_unbatched(case, dtype):
    module, op, cfg = _module_cases()[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    y_k, _, gx_k = run(op, "fast", x, np.ones_like(run(op, "fast", x, **cfg)[0]), **cfg)
    y = module(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, y_k)
    np.testing.assert_array_equal(module.backward(np.ones_like(y)), gx_k)
    # an unbatched (C, H, W) input gives the batched result of that one sample
    y1 = module(x[1])
    np.testing.assert_array_equal(y1, y_k[1])
    np.testing.assert_array_equal(module.backward(np.ones_like(y1)), gx_k[1])


@pytest.mark.parametrize(
    "module",
    [nn.MaxPool2d((2, 3), return_indices=True), nn.AdaptiveMaxPool2d(2, return_indices=True)],
    ids=["MaxPool2d", "AdaptiveMaxPool2d"],
)
def test_module_return_indices(module):
    x = grid(4, 6)[0]  # unbatched (1, 4, 6): the values are their indices
    y, indices = module(x)
    # windows (bins) of 2 x 3: the bottom-right element of each is its maximum and its index
    np.testing.assert_array_equal(indices, y)
    assert indices.shape == y.shape == (1, 2, 2) and indices.dtype == np.int64
    assert module.backward(np.ones((1, 2, 2))).sum() == 4


def test_module_defaults_and_attributes_as_pytorch():
    m = nn.MaxPool2d(3)
    assert (m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode) == (3, 3, 0, 1, False, False)
    a = nn.AvgPool2d((2, 3), stride=1)
    assert (a.kernel_size, a.stride, a.padding, a.ceil_mode, a.count_include_pad, a.divisor_override) == (
        (2, 3), 1, 0, False, True, None,
    )  # fmt: skip
    assert nn.AdaptiveMaxPool2d((None, 2)).output_size == (None, 2)
    assert list(nn.MaxPool2d(2).parameters()) == [] and nn.MaxPool2d(2).state_dict() == {}


def test_adaptive_module_unbatched_with_no_channels():
    # PyTorch treats the C of an unbatched input to the adaptive ops like a batch: 0 is fine
    m = nn.AdaptiveAvgPool2d((2, 3))
    y = m(np.zeros((0, 4, 5)))
    assert y.shape == (0, 2, 3)
    assert m.backward(np.zeros((0, 2, 3))).shape == (0, 4, 5)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: nn.MaxPool2d(0), ValueError, r"MaxPool2d: kernel_size must be >= 1, got 0"),
        (lambda: nn.MaxPool2d(2.0), TypeError, r"MaxPool2d: kernel_size must be an int or a pair of ints, got 2.0"),
        (lambda: nn.MaxPool2d((3, 3, 3)), TypeError, r"kernel_size must be an int or a pair of ints, got \(3, 3, 3\)"),
        (lambda: nn.MaxPool2d(2, stride=0), ValueError, r"MaxPool2d: stride must be >= 1, got 0"),
        (lambda: nn.MaxPool2d(2, dilation=(1, 0)), ValueError, r"dilation must be >= 1, got \(1, 0\)"),
        (lambda: nn.MaxPool2d(2, padding=-1), ValueError, r"padding must be >= 0, got -1"),
        (lambda: nn.MaxPool2d((3, 5), padding=(1, 3)), ValueError, r"MaxPool2d: padding must be at most half .* got padding=\(1, 3\), kernel_size=\(3, 5\)"),
        (lambda: nn.MaxPool2d(2, ceil_mode=1), TypeError, r"MaxPool2d: ceil_mode must be a bool, got 1"),
        (lambda: nn.MaxPool2d(2, return_indices=None), TypeError, r"return_indices must be a bool, got None"),
        (lambda: nn.AvgPool2d(2, divisor_override=0), ValueError, r"AvgPool2d: divisor_override must not be zero, got 0"),
        (lambda: nn.AvgPool2d(2, divisor_override=1.5), TypeError, r"divisor_override must be None or an int, got 1.5"),
        (lambda: nn.AvgPool2d(2, count_include_pad=0), TypeError, r"count_include_pad must be a bool, got 0"),
        (lambda: nn.AvgPool2d(2, padding=2), ValueError, r"AvgPool2d: padding must be at most half"),
        (lambda: nn.AdaptiveAvgPool2d(-1), ValueError, r"AdaptiveAvgPool2d: output_size must be >= 0, got -1"),
        (lambda: nn.AdaptiveAvgPool2d((3,)), TypeError, r"output_size must be an int or a pair of ints or None, got \(3,\)"),
        (lambda: nn.AdaptiveAvgPool2d(None), TypeError, r"output_size must be an int or a pair of ints or None, got None"),
        (lambda: nn.AdaptiveMaxPool2d((2.5, 2)), TypeError, r"AdaptiveMaxPool2d: output_size must be .* got \(2.5, 2\)"),
        (lambda: nn.AdaptiveMaxPool2d((2, -3)), ValueError, r"output_size must be >= 0, got \(2, -3\)"),
    ],
    ids=[
        "max-k0", "max-kfloat", "max-k3tuple", "max-s0", "max-d0", "max-pneg", "max-p-over-half", "max-ceil-int",
        "max-ri-none", "avg-div0", "avg-divfloat", "avg-cip-int", "avg-p-over-half", "aavg-neg", "aavg-1tuple",
        "aavg-none", "amax-float", "amax-neg",
    ],
)  # fmt: skip
def test_module_rejects_bad_arguments_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "module, x, error, message",
    [
        (nn.MaxPool2d(2), np.zeros((4, 5)), ValueError, r"MaxPool2d expected input of shape \(N, C, H, W\) or \(C, H, W\), got \(4, 5\)"),
        (nn.AvgPool2d(2), np.zeros((1, 1, 1, 4, 5)), ValueError, r"AvgPool2d expected input of shape .* got \(1, 1, 1, 4, 5\)"),
        (nn.MaxPool2d(2), np.zeros((1, 4, 5), np.int32), TypeError, r"MaxPool2d expected a float32 or float64 input, got dtype int32"),
        (nn.MaxPool2d(2), [[[1.0]]], TypeError, r"MaxPool2d expected a numpy.ndarray input"),
        (nn.MaxPool2d(2), np.zeros((0, 4, 5)), ValueError, r"MaxPool2d expected a \(C, H, W\) input with no zero dimension, got \(0, 4, 5\)"),
        (nn.MaxPool2d(8), np.zeros((3, 7, 6)), ValueError, r"max_pool2d: given input size \(C, H, W\) = \(3, 7, 6\), calculated output size \(3, 0, 0\) is too small"),
        (nn.AdaptiveMaxPool2d(2), np.zeros((2, 1, 0, 4)), ValueError, r"adaptive_max_pool2d: x must be \(N, C, H, W\) with non-zero C, H and W"),
    ],
    ids=["2d", "5d", "int", "list", "unbatched-empty", "too-small", "adaptive-no-rows"],
)  # fmt: skip
def test_module_rejects_bad_input(module, x, error, message):
    with pytest.raises(error, match=message):
        module(x)


@pytest.mark.parametrize("make", [lambda: nn.MaxPool2d(2), lambda: nn.AvgPool2d(2), lambda: nn.AdaptiveAvgPool2d(2), lambda: nn.AdaptiveMaxPool2d(2)], ids=["max", "avg", "aavg", "amax"])  # fmt: skip
def test_module_backward_needs_one_forward(make):
    m = make()
    with pytest.raises(RuntimeError, match="backward called without a forward"):
        m.backward(np.ones((1, 2, 2)))
    y = m(np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(1, 2, 2\) \(the output's\), got \(2, 2\)"):
        m.backward(np.ones((2, 2)))
    m.backward(np.ones_like(y))  # a rejected gradient does not use up the forward's context
    with pytest.raises(RuntimeError, match="or twice for one forward"):
        m.backward(np.ones_like(y))


def test_module_uses_the_implementation_in_force():
    m = nn.MaxPool2d(2)
    with kernels.use(max_pool2d="reference"):
        m(np.ones((1, 4, 4)))
        assert m._peek_ctx().kernel.name == "reference"
    m.backward(np.ones((1, 2, 2)))
    m(np.ones((1, 4, 4)))
    assert m._peek_ctx().kernel.name == "fast"
