"""batch_norm, group_norm, layer_norm kernels and BatchNorm1d/2d, GroupNorm, LayerNorm modules.

Order: hand-computed cases; every implementation in float32/float64 against the reference in
float64 under the error bound derived below; running statistics over several steps against
a recomputation; float64 finite differences; cross-checks between the ops; modules
(buffers, state_dict, modes, repr); every validation error.

Error bound for normalisation (refcnn.testing's form K * gamma(n, eps) * S, derived here).
For one set of M values with A = mean|x|, mu, rstd = 1/sqrt(var + eps), xhat = (x - mu) rstd:
  * mu is a sum of M terms: |d mu| <= gamma(M) A; the variance is a sum of M squares of the
    centred values, relative error gamma(M + 3) (its dependence on d mu is second order);
    rstd adds eps, a sqrt and a division: relative error gamma(M + 6).
  * so |d xhat| <= gamma(M + 7) * (|xhat| + rstd A) = gamma * mag, mag = |xhat| + rstd A,
    and y = w xhat + b:  n = M + T,  S_y = |w| rstd (|x - mu| + A) + |b|.
  * dL/dw sums Mp terms g * xhat (Mp = elements sharing a weight):
        n = Mp + M + T,  S_gw = sum |g| mag;        dL/db:  n = Mp,  S_gb = sum |g|.
  * dL/dx = rstd/M (M gh - sum gh - xhat sum gh xhat), gh = g w: at most three length-M sums
    feed an element (sum gh, sum gh xhat, and the reference's sum(x - mu)):
        n = 3M + T,  S_gx = rstd/M (M |gh| + sum |gh| + mag * sum |gh| mag) (+ the reference's
        dmu term, <= rstd/M * 3 rstd A * sum|gh| mag, folded into the 3M).
  * eval: y = w (x - rm) rstd + b:  n = T,  S_y = |w| rstd (|x| + |rm|) + |b|;
        dL/dx = g w rstd: n = T; dL/dw: n = Mp + T, S = sum |g| rstd (|x| + |rm|).
  * running statistics: (1 - m) r + m * stat: n = M + T,
        S_rm = |1 - m| |rm| + |m| A,  S_rv = |1 - m| |rv| + |m| var M/(M - 1).
T = 16 counts the elementwise roundings after the sums along the longest path (divide by M,
subtract, square, divide, add eps, sqrt, divide, two products and a sum in the forward; six
more in the backward), an upper count. Terms of second order in gamma are dropped.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcnn
from refcnn import kernels, nn
from refcnn.testing import assert_close, assert_gradient

T = 16
DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]
BN_IMPLS = ["fast", "reference"]


# ---- bounds (see the module docstring) -------------------------------------------------------
def _train_bounds(x, axes, param_axes, w, b, gy, eps):
    """(n, S) for y, gx, gw, gb of a normalisation whose sets span ``axes`` of x (float64),
    with w, b broadcastable against x (or None) and gradients summed over ``param_axes``."""
    M = math.prod(x.shape[a] for a in axes)
    Mp = math.prod(x.shape[a] for a in param_axes)
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    rstd = 1 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    A = np.abs(x).mean(axis=axes, keepdims=True)
    mag = np.abs(xc) * rstd + rstd * A
    aw = 1.0 if w is None else np.abs(w)
    ab = 0.0 if b is None else np.abs(b)
    gh = np.abs(gy) * aw
    sum_gh = gh.sum(axis=axes, keepdims=True)
    sum_gh_mag = (gh * mag).sum(axis=axes, keepdims=True)
    return {
        "y": (M + T, aw * rstd * (np.abs(xc) + A) + ab),
        "gx": (3 * M + T, rstd / M * (M * gh + sum_gh + mag * sum_gh_mag)),
        "gw": (Mp + M + T, (np.abs(gy) * mag).sum(axis=param_axes)),
        "gb": (Mp, np.abs(gy).sum(axis=param_axes)),
    }


def _bn_bounds(x, w, b, rm, rv, gy, training, momentum, eps):
    axes = (0, *range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    wb = None if w is None else w.reshape(shape)
    bb = None if b is None else b.reshape(shape)
    M = x.size // x.shape[1]
    if training:
        out = _train_bounds(x, axes, axes, wb, bb, gy, eps)
        A = np.abs(x).mean(axis=axes)
        var_unbiased = x.var(axis=axes, ddof=1)
        m = momentum
        out["rm"] = (M + T, abs(1 - m) * np.abs(rm) + abs(m) * A)
        out["rv"] = (M + T, abs(1 - m) * np.abs(rv) + abs(m) * var_unbiased)
        return out
    aw = 1.0 if wb is None else np.abs(wb)
    ab = 0.0 if bb is None else np.abs(bb)
    rstd = 1 / np.sqrt(rv.reshape(shape) + eps)
    spread = (np.abs(x) + np.abs(rm.reshape(shape))) * rstd
    return {
        "y": (T, aw * spread + ab),
        "gx": (T, np.abs(gy) * aw * rstd),
        "gw": (M + T, (np.abs(gy) * spread).sum(axis=axes)),
        "gb": (M, np.abs(gy).sum(axis=axes)),
    }


def _data(rng, shape, dtype=np.float64, offset=1.5, scale=2.0):
    # An offset comparable to the spread makes the bound's rstd*A term matter.
    return (rng.normal(size=shape) * scale + offset).astype(dtype)


# ---- hand-computed cases ----------------------------------------------------------------------
# x (N=2, C=2, L=2): channel 0 holds -2, -1, 1, 2 (mean 0, biased var 2.5), channel 1 holds
# 6, 7, 9, 10 (mean 8, var 2.5); with eps = 1.5, rstd = 1/2 and xhat = -1, -1/2, 1/2, 1.
HAND_X = np.array([[[-2.0, -1.0], [6.0, 7.0]], [[1.0, 2.0], [9.0, 10.0]]])
HAND_XHAT = np.array([[[-1.0, -0.5], [-1.0, -0.5]], [[0.5, 1.0], [0.5, 1.0]]])


@pytest.mark.parametrize("impl", BN_IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_training_by_hand(impl, dtype):
    k = kernels.get("batch_norm", impl)
    w, b = np.array([2.0, -1.0], dtype), np.array([0.5, 3.0], dtype)
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    y, ctx = k.forward(HAND_X.astype(dtype), w, b, rm, rv, training=True, momentum=0.5, eps=1.5)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, HAND_XHAT * w[:, None] + b[:, None])
    # g = xhat on channel 0: dx = w rstd (g - (sum g + xhat sum g xhat)/M) = 2 * 0.5 * (1 - 2.5/4) xhat;
    # g = 1 on channel 1: dx = 0, dw = sum xhat = 0, db = 4.
    gy = np.stack([HAND_XHAT[:, 0], np.ones((2, 2))], axis=1)
    gx, gw, gb = k.backward(gy.astype(dtype), ctx)
    bounds = _bn_bounds(HAND_X, w.astype(float), b.astype(float), np.zeros(2), np.ones(2), gy, True, 0.5, 1.5)
    expected_gx = np.stack([0.375 * HAND_XHAT[:, 0], np.zeros((2, 2))], axis=1)
    assert_close(gx, expected_gx, *bounds["gx"], dtype, what="grad_x")
    assert_close(gw, [2.5, 0.0], *bounds["gw"], dtype, what="grad_weight")
    np.testing.assert_array_equal(gb, [0.0, 4.0])
    # running_mean = 0.5 * 0 + 0.5 * mean; running_var = 0.5 * 1 + 0.5 * 2.5 * 4/3 (unbiased)
    assert_close(rm, [0.0, 4.0], *bounds["rm"], dtype, what="running_mean")
    assert_close(rv, [0.5 + 5 / 3, 0.5 + 5 / 3], *bounds["rv"], dtype, what="running_var")


@pytest.mark.parametrize("impl", BN_IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_eval_by_hand(impl, dtype):
    # rstd = 1/sqrt(rv + 1) = [1/2, 1]; y = w (x - rm) rstd + b; one sample is fine in eval.
    k = kernels.get("batch_norm", impl)
    x = np.array([[3.0, 0.0]], dtype)
    w, b = np.array([2.0, -1.0], dtype), np.array([0.5, 3.0], dtype)
    rm, rv = np.array([1.0, -2.0], dtype), np.array([3.0, 0.0], dtype)
    y, ctx = k.forward(x, w, b, rm, rv, training=False, momentum=0.1, eps=1.0)
    np.testing.assert_array_equal(y, [[2.5, 1.0]])
    np.testing.assert_array_equal(rm, [1.0, -2.0])  # eval leaves the statistics alone
    gx, gw, gb = k.backward(np.array([[1.0, 2.0]], dtype), ctx)
    np.testing.assert_array_equal(gx, [[1.0, -2.0]])  # g w rstd
    np.testing.assert_array_equal(gw, [1.0, 4.0])  # g xhat, xhat = [1, 2]
    np.testing.assert_array_equal(gb, [1.0, 2.0])


def test_group_norm_by_hand():
    # (N=1, C=4, L=2), 2 groups: group 0 = channels 0, 1 = -2, -1, 1, 2; group 1 = 6, 7, 9, 10.
    x = np.array([[[-2.0, -1.0], [1.0, 2.0], [6.0, 7.0], [9.0, 10.0]]])
    w = np.array([1.0, 2.0, 3.0, 4.0])
    y, _ = kernels.get("group_norm").forward(x, w, np.zeros(4), num_groups=2, eps=1.5)
    np.testing.assert_array_equal(y, [[[-1.0, -0.5], [1.0, 2.0], [-3.0, -1.5], [2.0, 4.0]]])


def test_layer_norm_by_hand():
    x = np.array([[-2.0, -1.0, 1.0, 2.0], [6.0, 7.0, 9.0, 10.0]])
    w, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 0.0, 0.0, 1.0])
    y, _ = kernels.get("layer_norm").forward(x, w, b, normalized_shape=(4,), eps=1.5)
    np.testing.assert_array_equal(y, [[-1.0, -1.0, 1.5, 5.0], [-1.0, -1.0, 1.5, 5.0]])


# ---- every implementation against the float64 reference ---------------------------------------
BN_CASES = [
    pytest.param((7, 3), id="N7-C3"),
    pytest.param((4, 3, 9), id="N4-C3-L9"),
    pytest.param((3, 4, 5, 6), id="N3-C4-H5-W6"),
    pytest.param((1, 2, 3, 5), id="N1-C2-H3-W5"),
]


def _same_inputs(arrays, dtype):
    """The arrays in ``dtype``, and those exact values upcast to float64 for the reference."""
    cast = [None if a is None else a.astype(dtype) for a in arrays]
    return [None if a is None else a.astype(np.float64) for a in cast], cast


def _bn_case(rng, shape, dtype, affine, offset=1.5, scale=2.0):
    C = shape[1]
    x = _data(rng, shape, offset=offset, scale=scale)
    w = rng.normal(size=C) if affine else None
    b = rng.normal(size=C) if affine else None
    rm, rv = rng.normal(size=C), rng.uniform(0.5, 2.0, size=C)
    gy = rng.normal(size=shape)
    return _same_inputs((x, w, b, rm, rv, gy), dtype)


@pytest.mark.parametrize("affine", [pytest.param(True, id="affine"), pytest.param(False, id="plain")])
@pytest.mark.parametrize("training", [pytest.param(True, id="train"), pytest.param(False, id="eval")])
@pytest.mark.parametrize("shape", BN_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", BN_IMPLS)
def test_batch_norm_matches_float64_reference(impl, dtype, shape, training, affine):
    rng = np.random.default_rng(sum(shape) + 10 * training + affine)
    (x, w, b, rm, rv, gy), (xd, wd, bd, rmd, rvd, gyd) = _bn_case(rng, shape, dtype, affine)
    momentum, eps = 0.3, 1e-3
    rm64, rv64 = rm.copy(), rv.copy()
    ref = kernels.get("batch_norm", "reference")
    y64, ctx64 = ref.forward(x, w, b, rm64, rv64, training=training, momentum=momentum, eps=eps)
    g64 = ref.backward(gy, ctx64)

    k = kernels.get("batch_norm", impl)
    y, ctx = k.forward(xd, wd, bd, rmd, rvd, training=training, momentum=momentum, eps=eps)
    g = k.backward(gyd, ctx)
    bounds = _bn_bounds(x, w, b, rm, rv, gy, training, momentum, eps)
    assert y.dtype == dtype and all(a is None or a.dtype == dtype for a in g)
    assert_close(y, y64, *bounds["y"], dtype, what="y")
    assert_close(g[0], g64[0], *bounds["gx"], dtype, what="grad_x")
    if affine:
        assert_close(g[1], g64[1], *bounds["gw"], dtype, what="grad_weight")
        assert_close(g[2], g64[2], *bounds["gb"], dtype, what="grad_bias")
    else:
        assert g[1] is None and g[2] is None
    if training:
        assert_close(rmd, rm64, *bounds["rm"], dtype, what="running_mean")
        assert_close(rvd, rv64, *bounds["rv"], dtype, what="running_var")
    else:
        np.testing.assert_array_equal(rmd, rm.astype(dtype))


@pytest.mark.parametrize("impl", BN_IMPLS)
def test_batch_norm_float32_large_offset_stays_within_bound(impl):
    # mean 100, spread 1: the two-pass variance keeps float32 within the bound, whose rstd*A
    # term (~100) is the conditioning of the problem; a one-pass E[x**2] - E[x]**2 errs by ~4e-3
    # here, beyond the bound (checked with a mutant).
    rng = np.random.default_rng(4)
    case = _bn_case(rng, (8, 3, 6, 5), np.float32, True, offset=100.0, scale=1.0)
    (x, w, b, rm, rv, gy), (xd, wd, bd, rmd, rvd, gyd) = case
    ref = kernels.get("batch_norm", "reference")
    y64, ctx64 = ref.forward(x, w, b, rm.copy(), rv.copy(), training=True, momentum=0.1, eps=1e-5)
    g64 = ref.backward(gy, ctx64)
    k = kernels.get("batch_norm", impl)
    y, ctx = k.forward(xd, wd, bd, rmd, rvd, training=True, momentum=0.1, eps=1e-5)
    g = k.backward(gyd, ctx)
    bounds = _bn_bounds(x, w, b, rm, rv, gy, True, 0.1, 1e-5)
    assert_close(y, y64, *bounds["y"], np.float32, what="y")
    for i, name in enumerate(["gx", "gw", "gb"]):
        assert_close(g[i], g64[i], *bounds[name], np.float32, what=name)


@given(
    N=st.integers(1, 4),
    C=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 5), min_size=0, max_size=2),
    training=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_batch_norm_fast_matches_reference_random_shapes(N, C, spatial, training, seed):
    shape = (N, C, *spatial)
    if training and N * math.prod(spatial) == 1:
        return  # rejected in training (tested below)
    rng = np.random.default_rng(seed)
    (x, w, b, rm, rv, gy), (xd, wd, bd, rmd, rvd, gyd) = _bn_case(rng, shape, np.float32, True)
    ref = kernels.get("batch_norm", "reference")
    y64, ctx64 = ref.forward(x, w, b, rm.copy(), rv.copy(), training=training, momentum=0.1, eps=1e-5)
    g64 = ref.backward(gy, ctx64)
    fast = kernels.get("batch_norm", "fast")
    y, ctx = fast.forward(xd, wd, bd, rmd, rvd, training=training, momentum=0.1, eps=1e-5)
    g = fast.backward(gyd, ctx)
    bounds = _bn_bounds(x, w, b, rm, rv, gy, training, 0.1, 1e-5)
    assert_close(y, y64, *bounds["y"], np.float32, what="y")
    for i, name in enumerate(["gx", "gw", "gb"]):
        assert_close(g[i], g64[i], *bounds[name], np.float32, what=name)


@pytest.mark.parametrize(
    "shape, G",
    [pytest.param((3, 6), 3, id="N3-C6-G3"), pytest.param((2, 6, 7), 2, id="N2-C6-L7-G2"),
     pytest.param((2, 4, 3, 5), 4, id="N2-C4-H3-W5-G4"), pytest.param((2, 4, 3, 5), 1, id="N2-C4-H3-W5-G1")],
)  # fmt: skip
def test_group_norm_float32_within_bound_of_float64(shape, G):
    rng = np.random.default_rng(G + len(shape))
    N, C = shape[:2]
    (x, w, b, gy), f = _same_inputs(
        (_data(rng, shape), rng.normal(size=C), rng.normal(size=C), rng.normal(size=shape)), np.float32
    )
    k = kernels.get("group_norm")
    y64, ctx64 = k.forward(x, w, b, num_groups=G, eps=1e-5)
    g64 = k.backward(gy, ctx64)
    y, ctx = k.forward(f[0], f[1], f[2], num_groups=G, eps=1e-5)
    g = k.backward(f[3], ctx)
    # sets: (n, g) -> x viewed as (N, G, C/G, S); weights per channel summed over n and S
    view = (N, G, C // G, -1)
    wv, bv = w.reshape(1, G, C // G, 1), b.reshape(1, G, C // G, 1)
    bounds = _train_bounds(x.reshape(view), (2, 3), (0, 3), wv, bv, gy.reshape(view), 1e-5)
    assert y.dtype == np.float32 and all(a.dtype == np.float32 for a in g)
    assert_close(y.reshape(view), y64.reshape(view), *bounds["y"], np.float32, what="y")
    assert_close(g[0].reshape(view), g64[0].reshape(view), *bounds["gx"], np.float32, what="grad_x")
    assert_close(g[1].reshape(G, C // G), g64[1].reshape(G, C // G), *bounds["gw"], np.float32, what="gw")
    assert_close(g[2].reshape(G, C // G), g64[2].reshape(G, C // G), *bounds["gb"], np.float32, what="gb")


@pytest.mark.parametrize(
    "shape, normalized_shape",
    [pytest.param((3, 7), (7,), id="x3x7-ns7"), pytest.param((2, 3, 4, 5), (4, 5), id="x2x3x4x5-ns4x5"),
     pytest.param((4, 5), (4, 5), id="x4x5-ns4x5")],
)  # fmt: skip
def test_layer_norm_float32_within_bound_of_float64(shape, normalized_shape):
    rng = np.random.default_rng(len(shape))
    arrays = (
        _data(rng, shape),
        rng.normal(size=normalized_shape),
        rng.normal(size=normalized_shape),
        rng.normal(size=shape),
    )
    (x, w, b, gy), f = _same_inputs(arrays, np.float32)
    k = kernels.get("layer_norm")
    y64, ctx64 = k.forward(x, w, b, normalized_shape=normalized_shape, eps=1e-5)
    g64 = k.backward(gy, ctx64)
    y, ctx = k.forward(f[0], f[1], f[2], normalized_shape=normalized_shape, eps=1e-5)
    g = k.backward(f[3], ctx)
    nd = len(normalized_shape)
    axes, lead = tuple(range(x.ndim - nd, x.ndim)), tuple(range(x.ndim - nd))
    bounds = _train_bounds(x, axes, lead, w, b, gy, 1e-5)
    assert_close(y, y64, *bounds["y"], np.float32, what="y")
    assert_close(g[0], g64[0], *bounds["gx"], np.float32, what="grad_x")
    assert_close(g[1], g64[1], *bounds["gw"], np.float32, what="grad_weight")
    assert_close(g[2], g64[2], *bounds["gb"], np.float32, what="grad_bias")


# ---- cross-checks between the ops ---------------------------------------------------------------
@pytest.mark.parametrize("G", [pytest.param(1, id="G1"), pytest.param(3, id="G3"), pytest.param(6, id="G6")])
def test_group_norm_equals_batch_norm_on_regrouped_input(G):
    # Each (n, g) set of group_norm is one "channel" of batch_norm on x viewed as (1, N*G, M).
    rng = np.random.default_rng(G)
    x, gy = _data(rng, (2, 6, 3, 4)), rng.normal(size=(2, 6, 3, 4))
    y, ctx = kernels.get("group_norm").forward(x, None, None, num_groups=G, eps=1e-5)
    (gx,) = kernels.get("group_norm").backward(gy, ctx)[:1]
    view = (1, 2 * G, -1)
    bn = kernels.get("batch_norm", "reference")
    yb, ctxb = bn.forward(x.reshape(view), None, None, None, None, training=True, momentum=0.1, eps=1e-5)
    gxb = bn.backward(gy.reshape(view), ctxb)[0]
    bounds = _train_bounds(x.reshape(view), (0, 2), (0, 2), None, None, gy.reshape(view), 1e-5)
    assert_close(y.reshape(view), yb, *bounds["y"], np.float64, what="y")
    assert_close(gx.reshape(view), gxb, *bounds["gx"], np.float64, what="grad_x")


def test_layer_norm_equals_batch_norm_on_transposed_input():
    # Each sample of layer_norm over (C, L) is one "channel" of batch_norm on x viewed as (1, N, C*L).
    rng = np.random.default_rng(5)
    x, gy = _data(rng, (4, 3, 5)), rng.normal(size=(4, 3, 5))
    y, ctx = kernels.get("layer_norm").forward(x, None, None, normalized_shape=(3, 5), eps=1e-5)
    gx = kernels.get("layer_norm").backward(gy, ctx)[0]
    view = (1, 4, 15)
    bn = kernels.get("batch_norm", "fast")
    yb, ctxb = bn.forward(x.reshape(view), None, None, None, None, training=True, momentum=0.1, eps=1e-5)
    gxb = bn.backward(gy.reshape(view), ctxb)[0]
    bounds = _train_bounds(x.reshape(view), (0, 2), (0, 2), None, None, gy.reshape(view), 1e-5)
    assert_close(y.reshape(view), yb, *bounds["y"], np.float64, what="y")
    assert_close(gx.reshape(view), gxb, *bounds["gx"], np.float64, what="grad_x")


# ---- float64 finite differences ------------------------------------------------------------------
def _check_fd(op, impl, x, params, gy, call):
    """Check dL/dx and dL/dparam for L = sum(gy * y) against central differences."""
    k = kernels.get(op, impl)
    _y, ctx = call(k, x, *params)
    grads = k.backward(gy, ctx)
    arrays = [x, *params]
    names = ["x", "weight", "bias"]
    for i, a in enumerate(arrays):
        if a is None:
            assert grads[i] is None
            continue
        assert_gradient(lambda: float((gy * call(k, *arrays)[0]).sum()), a, grads[i], what=f"{op}/{impl} d/d{names[i]}")


@pytest.mark.parametrize("affine", [pytest.param(True, id="affine"), pytest.param(False, id="plain")])
@pytest.mark.parametrize("training", [pytest.param(True, id="train"), pytest.param(False, id="eval")])
@pytest.mark.parametrize(
    "shape", [pytest.param((3, 2, 4, 5), id="N3-C2-H4-W5"), pytest.param((5, 3, 2), id="N5-C3-L2")]
)
@pytest.mark.parametrize("impl", BN_IMPLS)
def test_batch_norm_finite_differences(impl, shape, training, affine):
    rng = np.random.default_rng(len(shape) + training)
    C = shape[1]
    x, gy = _data(rng, shape), rng.normal(size=shape)
    w = rng.normal(size=C) if affine else None
    b = rng.normal(size=C) if affine else None
    rm, rv = rng.normal(size=C), rng.uniform(0.5, 2, size=C)

    def call(k, x, w, b):  # no running statistics in training: each call must be the same function
        stats = (None, None) if training else (rm, rv)
        return k.forward(x, w, b, *stats, training=training, momentum=0.1, eps=1e-3)

    _check_fd("batch_norm", impl, x, [w, b], gy, call)


@pytest.mark.parametrize("G", [pytest.param(2, id="G2"), pytest.param(6, id="G6")])
def test_group_norm_finite_differences(G):
    rng = np.random.default_rng(G)
    x, gy = _data(rng, (2, 6, 3, 2)), rng.normal(size=(2, 6, 3, 2))
    w, b = rng.normal(size=6), rng.normal(size=6)
    _check_fd("group_norm", "reference", x, [w, b], gy, lambda k, x, w, b: k.forward(x, w, b, num_groups=G, eps=1e-3))


@pytest.mark.parametrize("bias", [pytest.param(True, id="bias"), pytest.param(False, id="nobias")])
def test_layer_norm_finite_differences(bias):
    rng = np.random.default_rng(3)
    x, gy = _data(rng, (3, 4, 5)), rng.normal(size=(3, 4, 5))
    w = rng.normal(size=(4, 5))
    b = rng.normal(size=(4, 5)) if bias else None

    def call(k, x, w, b):
        return k.forward(x, w, b, normalized_shape=(4, 5), eps=1e-3)

    _check_fd("layer_norm", "reference", x, [w, b], gy, call)


# ---- kernels: edge cases ---------------------------------------------------------------------------
@pytest.mark.parametrize("impl", BN_IMPLS)
def test_batch_norm_empty_batch_leaves_statistics_alone(impl):
    # PyTorch: an empty batch gives an empty output, zero parameter gradients, same statistics.
    k = kernels.get("batch_norm", impl)
    rm, rv = np.array([0.5, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    y, ctx = k.forward(np.zeros((0, 3, 2)), np.ones(3), np.zeros(3), rm, rv, training=True, momentum=0.5, eps=1e-5)
    assert y.shape == (0, 3, 2)
    np.testing.assert_array_equal(rm, [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(rv, [1.0, 2.0, 3.0])
    gx, gw, gb = k.backward(np.zeros((0, 3, 2)), ctx)
    assert gx.shape == (0, 3, 2)
    np.testing.assert_array_equal(gw, np.zeros(3))
    np.testing.assert_array_equal(gb, np.zeros(3))


@pytest.mark.parametrize("impl", BN_IMPLS)
def test_batch_norm_eps_zero_on_constant_channel_gives_nan_silently(impl):
    # PyTorch: eval with eps=0 and running_var=0 gives nan (0 * inf) without a warning.
    k = kernels.get("batch_norm", impl)
    y, _ = k.forward(np.ones((2, 2)), None, None, np.ones(2), np.zeros(2), training=False, momentum=0.0, eps=0.0)
    assert np.isnan(y).all()


def test_group_and_layer_norm_empty_inputs():
    y, ctx = kernels.get("group_norm").forward(np.zeros((0, 4, 2)), np.ones(4), None, num_groups=2, eps=1e-5)
    assert y.shape == (0, 4, 2)
    np.testing.assert_array_equal(kernels.get("group_norm").backward(y, ctx)[1], np.zeros(4))
    y, _ = kernels.get("layer_norm").forward(np.zeros((2, 0)), None, None, normalized_shape=(0,), eps=1e-5)
    assert y.shape == (2, 0)


NO_AFFINE_CALLS = [
    pytest.param("batch_norm", "fast", lambda k, x: k.forward(x, None, None, None, None, training=True, momentum=0.1, eps=1e-5), id="bn-fast"),
    pytest.param("batch_norm", "reference", lambda k, x: k.forward(x, None, None, None, None, training=True, momentum=0.1, eps=1e-5), id="bn-reference"),
    pytest.param("group_norm", "reference", lambda k, x: k.forward(x, None, None, num_groups=2, eps=1e-5), id="gn"),
    pytest.param("layer_norm", "reference", lambda k, x: k.forward(x, None, None, normalized_shape=(5,), eps=1e-5), id="ln"),
]  # fmt: skip


@pytest.mark.parametrize("op, impl, call", NO_AFFINE_CALLS)
def test_output_does_not_alias_what_backward_keeps(op, impl, call):
    # Without weight and bias, y = xhat: returning the kept array itself would let an in-place
    # op downstream (Dropout(inplace=True)) corrupt the backward.
    rng = np.random.default_rng(0)
    x, gy = _data(rng, (3, 4, 5)), rng.normal(size=(3, 4, 5))
    k = kernels.get(op, impl)
    _, ctx = call(k, x)
    expected = k.backward(gy, ctx)[0]
    y, ctx = call(k, x)
    y[...] = 0
    np.testing.assert_array_equal(k.backward(gy, ctx)[0], expected)


@pytest.mark.parametrize("impl", BN_IMPLS)
def test_batch_norm_non_contiguous_input(impl):
    # A transposed view: only the summation order may change.
    rng = np.random.default_rng(1)
    x = _data(rng, (5, 4, 3)).transpose(2, 1, 0)  # (3, 4, 5), not C-contiguous
    gy = rng.normal(size=(5, 4, 3)).transpose(2, 1, 0)
    k = kernels.get("batch_norm", impl)
    y, ctx = k.forward(x, None, None, None, None, training=True, momentum=0.1, eps=1e-5)
    yc, ctxc = k.forward(np.ascontiguousarray(x), None, None, None, None, training=True, momentum=0.1, eps=1e-5)
    bounds = _bn_bounds(x, None, None, np.zeros(4), np.ones(4), gy, True, 0.1, 1e-5)
    assert_close(y, yc, *bounds["y"], np.float64, what="y")
    assert_close(k.backward(gy, ctx)[0], k.backward(np.ascontiguousarray(gy), ctxc)[0], *bounds["gx"], np.float64)


def test_batch_norm_registered_implementations():
    assert kernels.available("batch_norm") == ["fast", "reference"]
    assert kernels.get("batch_norm").name == "fast"


# ---- modules ------------------------------------------------------------------------------------------
def _bn_stats_by_hand(batches, momentum):
    """running_mean/var after the batches, recomputed with numpy (var: unbiased), and the
    largest S of one update (the docstring's S_rm, S_rv), for the error bound."""
    C = batches[0].shape[1]
    axes = (0, *range(2, batches[0].ndim))
    rm, rv = np.zeros(C), np.ones(C)
    S_rm, S_rv = np.zeros(C), np.zeros(C)
    for t, x in enumerate(batches, start=1):
        m = 1.0 / t if momentum is None else momentum  # None: cumulative average
        S_rm = np.maximum(S_rm, abs(1 - m) * np.abs(rm) + m * np.abs(x).mean(axis=axes))
        S_rv = np.maximum(S_rv, abs(1 - m) * rv + m * x.var(axis=axes, ddof=1))
        rm = (1 - m) * rm + m * x.mean(axis=axes)
        rv = (1 - m) * rv + m * x.var(axis=axes, ddof=1)
    return rm, rv, S_rm, S_rv


@pytest.mark.parametrize("momentum", [pytest.param(0.1, id="m0.1"), pytest.param(None, id="cumulative")])
@pytest.mark.parametrize(
    "cls, shape",
    [pytest.param(nn.BatchNorm1d, (6, 3), id="1d-N6-C3"), pytest.param(nn.BatchNorm1d, (4, 3, 5), id="1d-N4-C3-L5"),
     pytest.param(nn.BatchNorm2d, (3, 3, 4, 5), id="2d-N3-C3-H4-W5")],
)  # fmt: skip
def test_running_statistics_after_several_steps(cls, shape, momentum):
    rng = np.random.default_rng(len(shape))
    bn = cls(3, momentum=momentum, dtype=np.float64)
    batches = [_data(rng, shape, offset=t, scale=t + 1) for t in range(4)]
    for x in batches:
        bn(x)
    rm, rv, S_rm, S_rv = _bn_stats_by_hand(batches, momentum)
    M = math.prod(shape) // 3
    # |1 - m| <= 1, so the error of four updates is at most four times the largest one's bound
    n = 4 * (M + T)
    assert_close(bn.running_mean, rm, n, S_rm, np.float64, what="running_mean")
    assert_close(bn.running_var, rv, n, S_rv, np.float64, what="running_var")
    assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.dtype == np.int64
    assert int(bn.num_batches_tracked) == 4
    # eval: normalises with the running statistics and changes nothing
    bn.eval()
    x = batches[0]
    before = bn.running_mean.copy(), bn.running_var.copy()
    y = bn(x)
    shape_c = (1, 3) + (1,) * (x.ndim - 2)
    rstd = 1 / np.sqrt(before[1].reshape(shape_c) + 1e-5)
    expected = (x - before[0].reshape(shape_c)) * rstd
    assert_close(y, expected, T, (np.abs(x) + np.abs(before[0].reshape(shape_c))) * rstd, np.float64, what="eval y")
    assert int(bn.num_batches_tracked) == 4
    np.testing.assert_array_equal(bn.running_mean, before[0])
    np.testing.assert_array_equal(bn.running_var, before[1])


def test_batch_norm_without_tracking_uses_batch_statistics_in_eval():
    bn = nn.BatchNorm2d(2, track_running_stats=False, dtype=np.float64)
    assert bn.running_mean is None and bn.running_var is None and bn.num_batches_tracked is None
    assert list(bn.state_dict()) == ["weight", "bias"]
    x = _data(np.random.default_rng(0), (3, 2, 4, 5))
    y_train = bn(x)
    y_eval = bn.eval()(x)
    np.testing.assert_array_equal(y_eval, y_train)
    y_batch, _ = kernels.get("batch_norm").forward(
        x, bn.weight.data, bn.bias.data, None, None, training=True, momentum=0.0, eps=1e-5
    )
    np.testing.assert_array_equal(y_eval, y_batch)


def test_batch_norm_module_backward_accumulates_and_matches_kernel():
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    bn.weight.data[...] = rng.normal(size=3)
    x, gy = _data(rng, (2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    bn(x)
    gx = bn.backward(gy)
    _y, ctx = kernels.get("batch_norm", "reference").forward(
        x, bn.weight.data, bn.bias.data, None, None, training=True, momentum=0.1, eps=1e-5
    )
    rgx, rgw, rgb = kernels.get("batch_norm", "reference").backward(gy, ctx)
    bounds = _bn_bounds(x, bn.weight.data, bn.bias.data, np.zeros(3), np.ones(3), gy, True, 0.1, 1e-5)
    assert_close(gx, rgx, *bounds["gx"], np.float64, what="grad_x")
    assert_close(bn.weight.grad, rgw, *bounds["gw"], np.float64, what="grad_weight")
    bn(x)
    bn.backward(gy)
    assert_close(bn.bias.grad, 2 * rgb, *bounds["gb"], np.float64, what="accumulated grad_bias")
    with pytest.raises(RuntimeError, match="without a forward"):
        bn.backward(gy)


def test_kernels_use_selects_the_batch_norm_implementation():
    bn = nn.BatchNorm1d(2)
    with kernels.use(batch_norm="reference"):
        bn(np.ones((3, 2), np.float32))
    assert bn._take_ctx().kernel.name == "reference"


@pytest.mark.parametrize(
    "module, keys",
    [
        pytest.param(nn.BatchNorm2d(3), {"weight": (3,), "bias": (3,), "running_mean": (3,), "running_var": (3,), "num_batches_tracked": ()}, id="bn"),
        pytest.param(nn.BatchNorm1d(3, bias=False), {"weight": (3,), "running_mean": (3,), "running_var": (3,), "num_batches_tracked": ()}, id="bn-nobias"),
        pytest.param(nn.BatchNorm2d(3, affine=False, track_running_stats=False), {}, id="bn-bare"),
        pytest.param(nn.GroupNorm(2, 6), {"weight": (6,), "bias": (6,)}, id="gn"),
        pytest.param(nn.LayerNorm([3, 4], bias=False), {"weight": (3, 4)}, id="ln-nobias"),
        pytest.param(nn.LayerNorm(5, elementwise_affine=False), {}, id="ln-bare"),
    ],
)  # fmt: skip
def test_state_dict_keys_shapes_dtypes_as_pytorch(module, keys):
    sd = module.state_dict()
    assert {k: v.shape for k, v in sd.items()} == keys
    assert list(sd) == list(keys)
    for k, v in sd.items():
        assert v.dtype == (np.int64 if k == "num_batches_tracked" else np.float32)


def test_initial_values_and_dtype_conversion():
    bn = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight.data, np.ones(3))
    np.testing.assert_array_equal(bn.bias.data, np.zeros(3))
    np.testing.assert_array_equal(bn.running_var, np.ones(3))
    bn.to(np.float64)
    assert bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    assert bn(np.ones((2, 3, 1, 2))).dtype == np.float64


def test_load_state_dict_round_trip_includes_num_batches_tracked():
    a = nn.BatchNorm1d(2)
    a(_data(np.random.default_rng(0), (5, 2), np.float32))
    b = nn.BatchNorm1d(2)
    b.load_state_dict(a.state_dict())
    assert int(b.num_batches_tracked) == 1
    np.testing.assert_array_equal(b.running_mean, a.running_mean)
    np.testing.assert_array_equal(b.running_var, a.running_var)


def test_momentum_none_counts_from_a_loaded_num_batches_tracked():
    # cumulative factor = 1 / (num_batches_tracked after this batch): 1/3 after two loaded steps
    bn = nn.BatchNorm1d(1, momentum=None, dtype=np.float64)
    bn.load_state_dict(
        {"weight": [1.0], "bias": [0.0], "running_mean": [3.0], "running_var": [2.0], "num_batches_tracked": 2}
    )
    x = np.array([[0.0], [6.0]])  # batch mean 3, unbiased var 18
    bn(x)
    bounds = _bn_bounds(x, None, None, np.array([3.0]), np.array([2.0]), x, True, 1 / 3, 1e-5)
    assert_close(bn.running_mean, [3.0], *bounds["rm"], np.float64, what="running_mean")
    assert_close(bn.running_var, [2.0 * 2 / 3 + 18 / 3], *bounds["rv"], np.float64, what="running_var")
    assert int(bn.num_batches_tracked) == 3


def test_group_and_layer_norm_modules_run_their_kernels_in_both_modes():
    rng = np.random.default_rng(2)
    x = _data(rng, (2, 6, 3, 4), np.float32)
    gn, ln = nn.GroupNorm(3, 6), nn.LayerNorm((3, 4))
    for m, op, cfg in [(gn, "group_norm", {"num_groups": 3}), (ln, "layer_norm", {"normalized_shape": (3, 4)})]:
        expected, _ = kernels.get(op).forward(x, m.weight.data, m.bias.data, eps=1e-5, **cfg)
        np.testing.assert_array_equal(m(x), expected)
        np.testing.assert_array_equal(m.eval()(x), expected)  # no running state: eval is the same
        gx = m.backward(np.ones_like(x))
        assert gx.shape == x.shape and m.weight.grad.shape == m.weight.shape


def test_modules_without_arrays_accept_either_dtype():
    # As PyTorch: with no parameters or buffers there is no dtype to mix with.
    x = np.ones((2, 2, 3), np.float64)
    assert nn.BatchNorm1d(2, affine=False, track_running_stats=False)(x).dtype == np.float64
    assert nn.GroupNorm(1, 2, affine=False)(x).dtype == np.float64
    assert nn.LayerNorm(3, elementwise_affine=False)(x).dtype == np.float64


@pytest.mark.parametrize(
    "module, text",
    [
        (nn.BatchNorm1d(3), "BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"),
        (nn.BatchNorm2d(4, eps=1e-3, momentum=None, affine=False, track_running_stats=False),
         "BatchNorm2d(4, eps=0.001, momentum=None, affine=False, bias=False, track_running_stats=False)"),
        (nn.BatchNorm2d(4, eps=1, momentum=1, bias=False),
         "BatchNorm2d(4, eps=1, momentum=1, affine=True, bias=False, track_running_stats=True)"),
        (nn.GroupNorm(3, 6), "GroupNorm(3, 6, eps=1e-05, affine=True, bias=True)"),
        (nn.GroupNorm(2, 6, eps=1e-3, affine=False), "GroupNorm(2, 6, eps=0.001, affine=False, bias=False)"),
        (nn.LayerNorm(5), "LayerNorm((5,), eps=1e-05, elementwise_affine=True, bias=True)"),
        (nn.LayerNorm([3, 4], eps=1e-6, elementwise_affine=False),
         "LayerNorm((3, 4), eps=1e-06, elementwise_affine=False, bias=False)"),
        (nn.LayerNorm(np.int64(5), bias=False), "LayerNorm((5,), eps=1e-05, elementwise_affine=True, bias=False)"),
    ],
    ids=["bn1d", "bn2d-bare", "bn2d-int-eps", "gn", "gn-bare", "ln", "ln-bare", "ln-npint-nobias"],
)  # fmt: skip
def test_repr_equals_pytorch(module, text):
    # strings printed by PyTorch 2.13 for the same constructors
    assert repr(module) == text


# ---- validation errors: kernels -----------------------------------------------------------------------
def _bn(x=None, w=None, b=None, rm=None, rv=None, training=True, momentum=0.1, eps=1e-5, dtype=np.float64):
    x = np.ones((4, 3, 2), dtype) if x is None else x
    return kernels.get("batch_norm").forward(x, w, b, rm, rv, training=training, momentum=momentum, eps=eps)


f3 = np.ones(3)
BN_KERNEL_ERRORS = [
    ("one-value", dict(x=np.ones((1, 3))), ValueError, r"Expected more than 1 value per channel when training, got input size \(1, 3\)"),
    ("one-value-4d", dict(x=np.ones((1, 3, 1, 1))), ValueError, r"got input size \(1, 3, 1, 1\)"),
    ("1d", dict(x=np.ones(4)), ValueError, r"at least 2 dimensions, got shape \(4,\)"),
    ("int-x", dict(x=np.ones((4, 3), np.int64)), TypeError, "x must be float32 or float64, got dtype int64"),
    ("list-x", dict(x=[[1.0, 2.0]]), TypeError, "x must be a numpy.ndarray, got list"),
    ("weight-size", dict(w=np.ones(2)), ValueError, r"weight should contain 3 elements .*\(4, 3, 2\).*got shape \(2,\)"),
    ("bias-size", dict(b=np.ones(4)), ValueError, r"bias should contain 3 elements.*got shape \(4,\)"),
    ("rm-size", dict(rm=np.ones(2), rv=f3), ValueError, r"running_mean should contain 3 elements.*got shape \(2,\)"),
    ("weight-2d", dict(w=np.ones((3, 1))), ValueError, r"weight should contain 3 elements.*got shape \(3, 1\)"),
    ("dtype-mix", dict(w=np.ones(3, np.float32)), TypeError, "all arrays must share one dtype, got x=float64, weight=float32"),
    ("rm-only", dict(rm=f3.copy()), ValueError, "running_mean and running_var must either both be None or neither"),
    ("eval-no-stats", dict(training=False), ValueError, "running_mean and running_var must be given in evaluation mode"),
    ("eps-0-train", dict(eps=0.0), ValueError, "batch_norm eps must be positive during training, but got 0.0"),
    ("eps-neg-eval", dict(eps=-1.0, training=False, rm=f3, rv=f3), ValueError, "batch_norm eps must be non-negative, but got -1.0"),
    ("eps-str", dict(eps="1e-5"), TypeError, "eps must be a real number, got '1e-5'"),
    ("momentum-none", dict(momentum=None), TypeError, "momentum must be a real number, got None"),
    ("training-int", dict(training=1), TypeError, "training must be a bool, got 1"),
    ("read-only", dict(rm=np.broadcast_to(0.0, (3,)), rv=f3.copy()), ValueError, "running_mean must be writeable"),
]  # fmt: skip


@pytest.mark.parametrize("case, kwargs, exc, match", BN_KERNEL_ERRORS, ids=[c[0] for c in BN_KERNEL_ERRORS])
def test_batch_norm_kernel_rejects(case, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _bn(**kwargs)


def test_batch_norm_accepts_eps_zero_in_eval_and_one_value_in_eval():
    y, _ = _bn(x=np.ones((1, 3)), training=False, rm=f3, rv=f3, eps=0.0)
    np.testing.assert_array_equal(y, np.zeros((1, 3)))


GN_KERNEL_ERRORS = [
    ("1d", dict(x=np.ones(6)), ValueError, r"at least 2 dimensions, got shape \(6,\)"),
    ("indivisible", dict(num_groups=4), ValueError, r"divisible by num_groups, got x of shape \(2, 6, 3\) and num_groups=4"),
    ("groups-0", dict(num_groups=0), ValueError, "num_groups must be >= 1, got 0"),
    ("groups-float", dict(num_groups=2.0), TypeError, "num_groups must be an int, got 2.0"),
    ("weight-size", dict(w=np.ones(5)), ValueError, r"weight should contain 6 elements.*got shape \(5,\)"),
    ("dtype-mix", dict(b=np.ones(6, np.float32)), TypeError, "share one dtype, got x=float64, bias=float32"),
    ("eps-neg", dict(eps=-1.0), ValueError, "group_norm eps must be non-negative, but got -1.0"),
    ("one-per-group", dict(x=np.ones((1, 6)), num_groups=6), ValueError, r"Expected more than 1 value per channel when training, got input size \[1, 6\]"),
]  # fmt: skip


@pytest.mark.parametrize("case, kwargs, exc, match", GN_KERNEL_ERRORS, ids=[c[0] for c in GN_KERNEL_ERRORS])
def test_group_norm_kernel_rejects(case, kwargs, exc, match):
    x = kwargs.get("x", np.ones((2, 6, 3)))
    with pytest.raises(exc, match=match):
        kernels.get("group_norm").forward(
            x, kwargs.get("w"), kwargs.get("b"), num_groups=kwargs.get("num_groups", 3), eps=kwargs.get("eps", 1e-5)
        )


LN_KERNEL_ERRORS = [
    ("mismatch", dict(ns=(3, 4), x=np.ones((2, 4, 3))), ValueError, r"normalized_shape=\(3, 4\), expected x of shape \(\*, 3, 4\), got \(2, 4, 3\)"),
    ("too-few-dims", dict(ns=(2, 3, 4), x=np.ones((3, 4))), ValueError, r"expected x of shape \(\*, 2, 3, 4\), got \(3, 4\)"),
    ("empty", dict(ns=()), ValueError, "normalized_shape must contain at least one dimension"),
    ("list", dict(ns=[4]), TypeError, r"normalized_shape must be a tuple of ints, got \[4\]"),
    ("negative", dict(ns=(-4,)), ValueError, r"normalized_shape must not be negative, got \(-4,\)"),
    ("weight-shape", dict(w=np.ones(4)), ValueError, r"weight must have the shape normalized_shape=\(3, 4\), got \(4,\)"),
    ("dtype-mix", dict(w=np.ones((3, 4), np.float32)), TypeError, "share one dtype"),
    ("eps-neg", dict(eps=-1e-5), ValueError, "layer_norm eps must be non-negative, but got -1e-05"),
]  # fmt: skip


@pytest.mark.parametrize("case, kwargs, exc, match", LN_KERNEL_ERRORS, ids=[c[0] for c in LN_KERNEL_ERRORS])
def test_layer_norm_kernel_rejects(case, kwargs, exc, match):
    x = kwargs.get("x", np.ones((2, 3, 4)))
    with pytest.raises(exc, match=match):
        kernels.get("layer_norm").forward(
            x, kwargs.get("w"), None, normalized_shape=kwargs.get("ns", (3, 4)), eps=kwargs.get("eps", 1e-5)
        )


def test_backward_checks_grad_shape_and_dtype():
    _y, ctx = _bn()
    with pytest.raises(ValueError, match=r"expected grad_y of shape \(4, 3, 2\)"):
        kernels.get("batch_norm").backward(np.ones((4, 3)), ctx)
    with pytest.raises(TypeError, match="expected grad_y of dtype float64"):
        kernels.get("batch_norm").backward(np.ones((4, 3, 2), np.float32), ctx)


# ---- validation errors: modules -------------------------------------------------------------------------
MODULE_INIT_ERRORS = [
    ("bn-float-features", lambda: nn.BatchNorm2d(2.5), TypeError, "BatchNorm2d: num_features must be an int, got 2.5"),
    ("bn-negative", lambda: nn.BatchNorm1d(-1), ValueError, "BatchNorm1d: num_features must be >= 0, got -1"),
    ("bn-momentum-str", lambda: nn.BatchNorm2d(3, momentum="0.1"), TypeError, "momentum must be a real number, got '0.1'"),
    ("bn-eps-none", lambda: nn.BatchNorm2d(3, eps=None), TypeError, "eps must be a real number, got None"),
    ("bn-dtype-int", lambda: nn.BatchNorm2d(3, dtype=np.int32), TypeError, "dtype must be float32 or float64, got int32"),
    ("gn-indivisible", lambda: nn.GroupNorm(4, 6), ValueError, r"num_channels \(6\) must be divisible by num_groups \(4\)"),
    ("gn-groups-0", lambda: nn.GroupNorm(0, 6), ValueError, "num_groups must be >= 1, got 0"),
    ("ln-empty", lambda: nn.LayerNorm([]), ValueError, r"normalized_shape must contain at least one dimension, got \[\]"),
    ("ln-negative", lambda: nn.LayerNorm(-2), ValueError, "normalized_shape must not be negative, got -2"),
    ("ln-float", lambda: nn.LayerNorm(2.0), TypeError, "normalized_shape must be an int or a sequence of ints, got 2.0"),
    ("ln-str", lambda: nn.LayerNorm("4"), TypeError, "normalized_shape must be an int or a sequence of ints, got '4'"),
]  # fmt: skip


@pytest.mark.parametrize("case, make, exc, match", MODULE_INIT_ERRORS, ids=[c[0] for c in MODULE_INIT_ERRORS])
def test_module_constructor_rejects(case, make, exc, match):
    with pytest.raises(exc, match=match):
        make()


MODULE_CALL_ERRORS = [
    ("bn1d-4d", nn.BatchNorm1d(3), np.ones((2, 3, 4, 5), np.float32), ValueError, r"BatchNorm1d: expected 2D or 3D input \(got 4D input of shape \(2, 3, 4, 5\)\)"),
    ("bn1d-channels", nn.BatchNorm1d(3), np.ones((2, 4), np.float32), ValueError, r"BatchNorm1d\(3\) expected input with 3 channels, of shape \(N, 3\) or \(N, 3, L\), got \(2, 4\)"),
    ("bn2d-3d", nn.BatchNorm2d(3), np.ones((2, 3, 4), np.float32), ValueError, r"BatchNorm2d: expected 4D input \(got 3D input of shape \(2, 3, 4\)\)"),
    ("bn2d-one-value", nn.BatchNorm2d(3), np.ones((1, 3, 1, 1), np.float32), ValueError, "Expected more than 1 value per channel when training"),
    ("bn2d-f64-input", nn.BatchNorm2d(3), np.ones((2, 3, 2, 2)), TypeError, r"holds float32 parameters but got a float64 input"),
    ("bn2d-list", nn.BatchNorm2d(3), [[1.0]], TypeError, "BatchNorm2d expected a numpy.ndarray input"),
    ("bn2d-eps-0", nn.BatchNorm2d(3, eps=0.0), np.ones((2, 3, 2, 2), np.float32), ValueError, "eps must be positive during training, but got 0.0"),
    ("gn-1d", nn.GroupNorm(3, 6), np.ones(6, np.float32), ValueError, r"GroupNorm expected input of shape \(N, 6, \*\) \(at least 2 dimensions\), got \(6,\)"),
    ("gn-channels", nn.GroupNorm(3, 6), np.ones((2, 5, 4), np.float32), ValueError, r"GroupNorm\(3, 6\) expected input of shape \(N, 6, \*\), got \(2, 5, 4\)"),
    ("gn-one-per-group", nn.GroupNorm(6, 6), np.ones((1, 6), np.float32), ValueError, "Expected more than 1 value per channel"),
    ("ln-mismatch", nn.LayerNorm(5), np.ones((2, 3), np.float32), ValueError, r"LayerNorm\(\(5,\)\) expected input of shape \(\*, 5\), got \(2, 3\)"),
    ("ln-dtype", nn.LayerNorm(3), np.ones((2, 3)), TypeError, "holds float32 parameters but got a float64 input"),
]  # fmt: skip


@pytest.mark.parametrize("case, module, x, exc, match", MODULE_CALL_ERRORS, ids=[c[0] for c in MODULE_CALL_ERRORS])
def test_module_call_rejects(case, module, x, exc, match):
    with pytest.raises(exc, match=match):
        module(x)


def test_rejected_call_changes_no_statistics():
    # PyTorch counts the batch before F.batch_norm rejects it; refcnn changes nothing.
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError):
        bn(np.ones((1, 3, 1, 1), np.float32))
    assert int(bn.num_batches_tracked) == 0
    np.testing.assert_array_equal(bn.running_mean, np.zeros(3))


def test_batch_norm_eval_accepts_one_value_and_eps_zero():
    bn = nn.BatchNorm2d(3, eps=0.0).eval()
    bn.running_var[...] = 4.0
    np.testing.assert_array_equal(bn(np.full((1, 3, 1, 1), 2.0, np.float32)), np.ones((1, 3, 1, 1)))


def test_manual_seed_is_not_needed_for_norm_layers():
    # Norm layers draw nothing: the generator's stream is untouched.
    refcnn.manual_seed(0)
    expected = refcnn.default_generator().random()
    refcnn.manual_seed(0)
    nn.BatchNorm2d(2)(np.ones((2, 2, 1, 1), np.float32))
    assert refcnn.default_generator().random() == expected


@pytest.mark.parametrize(
    ("op", "impl"),
    [("batch_norm", "fast"), ("batch_norm", "reference"), ("layer_norm", "reference"), ("group_norm", "reference")],
    ids=["batch_norm-fast", "batch_norm-reference", "layer_norm", "group_norm"],
)
def test_float32_bias_gradient_over_long_reductions_does_not_drift(op, impl):
    # Broke: batch_norm fast's per-channel sums (einsum, one float32 running sum over
    # N*H*W = 131,072 values here) and layer/group norm's parameter sums over the leading
    # rows (NumPy adding row after row, 6,480 rows) drifted ~1e-6 relative. They now
    # accumulate in float64 and round once: n = 2 whatever the length, S = sum of |g|.
    rng = np.random.default_rng(5)
    if op == "batch_norm":
        x, C, axes = rng.standard_normal((2, 3, 256, 256)), 3, (0, 2, 3)
        config = dict(training=True, momentum=0.1, eps=1e-5)
        params = (np.ones(C, np.float32), np.zeros(C, np.float32), None, None)
    elif op == "layer_norm":
        x, C, axes = rng.standard_normal((6480, 4)), 4, (0,)
        config = dict(normalized_shape=(4,), eps=1e-5)
        params = (np.ones(C, np.float32), np.zeros(C, np.float32))
    else:
        x, C, axes = rng.standard_normal((6480, 4, 2)), 4, (0, 2)
        config = dict(num_groups=2, eps=1e-5)
        params = (np.ones(C, np.float32), np.zeros(C, np.float32))
    gy = rng.uniform(0.2, 1.2, x.shape)
    kernel = kernels.get(op, impl)
    _, ctx = kernel.forward(x.astype(np.float32), *params, **config)
    gb = kernel.backward(gy.astype(np.float32), ctx)[2]
    g32 = gy.astype(np.float32).astype(np.float64)
    assert_close(gb, g32.sum(axis=axes), 2, np.abs(g32).sum(axis=axes), np.float32, f"{op} {impl} bias gradient")


@pytest.mark.parametrize("op", ["layer_norm", "group_norm"])
def test_float32_set_holding_1e30_normalises_as_float64(op):
    # Broke: the variance squared float32 values, so 1e30 gave inf, rstd 0 and an output of
    # zeros (with a RuntimeWarning); PyTorch 2.13 in float64 gives sqrt(5) and -1/sqrt(5)
    # (its float32 gives nan). The squares are now taken in float64.
    x = np.array([[1e30, 0.5, -0.3, 1.0, 2.0, 0.1]], np.float32)
    if op == "layer_norm":
        y, _ = kernels.get(op).forward(x, None, None, normalized_shape=(6,), eps=1e-5)
    else:
        y, _ = kernels.get(op).forward(x.reshape(1, 6, 1), None, None, num_groups=1, eps=1e-5)
    expected = np.array([math.sqrt(5)] + [-1 / math.sqrt(5)] * 5)
    # n = 2R + 10 (R = 6 values per set), S = sqrt(R), the largest |xhat| a set can hold
    assert_close(y.reshape(-1), expected, 2 * 6 + 10, math.sqrt(6), np.float32, f"{op} with 1e30")
