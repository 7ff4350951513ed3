"""The linear kernel (reference and fast) and the Linear and Identity modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcnn
from refcnn import kernels, nn
from refcnn.kernels.linear import linear_fast_backward, linear_fast_forward
from refcnn.testing import assert_close, assert_gradient

IMPLS = ["reference", "fast"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def run(impl, x, w, b, gy=None):
    """Forward through the registry (validator included) and, given gy, backward."""
    kernel = kernels.get("linear", impl)
    y, ctx = kernel.forward(x, w, b)
    if gy is None:
        return y
    return (y, *kernel.backward(gy, ctx))


def test_both_implementations_registered_and_fast_is_default():
    assert kernels.available("linear") == ["fast", "reference"]
    assert kernels.get("linear").name == "fast"


# ---- hand-computed ---------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_hand_computed_2x3_to_2(impl, dtype):
    x = np.array([[1, 2, 3], [-1, 0, 2]], dtype)
    w = np.array([[1, 0, -1], [2, 1, 0]], dtype)
    b = np.array([0.5, -1], dtype)
    gy = np.array([[1, 0], [0.5, 1]], dtype)
    y, gx, gw, gb = run(impl, x, w, b, gy)
    # y[m, o] = b[o] + sum_i x[m, i] w[o, i]: every value a small binary fraction, so exact
    np.testing.assert_array_equal(y, [[1 - 3 + 0.5, 2 + 2 - 1], [-1 - 2 + 0.5, -2 - 1]])
    np.testing.assert_array_equal(gx, [[1, 0, -1], [0.5 + 2, 1, -0.5]])  # gy @ w
    np.testing.assert_array_equal(gw, [[1 - 0.5, 2, 3 + 1], [-1, 0, 2]])  # gy.T @ x
    np.testing.assert_array_equal(gb, [1.5, 1])  # column sums of gy
    for a in (y, gx, gw, gb):
        assert a.dtype == dtype


@pytest.mark.parametrize("impl", IMPLS)
def test_hand_computed_1d_input_without_bias(impl):
    x = np.array([2.0, -1.0])
    w = np.array([[3.0, 4.0], [-1.0, 0.5], [0.0, 2.0]])
    y, gx, gw, gb = run(impl, x, w, None, np.array([1.0, 2.0, -1.0]))
    np.testing.assert_array_equal(y, [2.0, -2.5, -2.0])
    assert y.shape == (3,) and gx.shape == (2,) and gb is None
    np.testing.assert_array_equal(gx, [3 - 2 + 0, 4 + 1 - 2])
    np.testing.assert_array_equal(gw, [[2, -1], [4, -2], [-2, 1]])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "x_shape, w_shape",
    [((0, 3), (2, 3)), ((2, 0), (4, 0)), ((3, 2), (0, 2))],
    ids=["no-rows", "no-in-features", "no-out-features"],
)
def test_empty_dimensions(impl, x_shape, w_shape):
    x, w = np.ones(x_shape), np.ones(w_shape)
    b = np.arange(w_shape[0], dtype=np.float64)
    y, gx, gw, gb = run(impl, x, w, b, np.ones(x_shape[:-1] + w_shape[:1]))
    assert y.shape == x_shape[:-1] + w_shape[:1]
    np.testing.assert_array_equal(y, np.broadcast_to(b, y.shape))  # an empty sum is 0: y = bias
    # with x and gy all ones: gx = out_features everywhere, gw = gb = the number of rows
    np.testing.assert_array_equal(gx, np.full(x_shape, w_shape[0]))
    np.testing.assert_array_equal(gw, np.full(w_shape, x_shape[0]))
    np.testing.assert_array_equal(gb, np.full(w_shape[0], x_shape[0]))


# ---- fast vs reference, against the float64 reference ------------------------------------
def check_against_float64_reference(x, w, b, gy, dtype):
    """Each implementation in ``dtype`` against the reference in float64 on the same
    (upcast) inputs, under the policy: forward n = in (+1 bias), S = |x| @ |w|.T + |b|;
    gx n = out, S = |gy| @ |w|; gw n = M, S = |gy2|.T @ |x2|; gb n = M, S = sum |gy2|."""
    x, w, gy = x.astype(dtype), w.astype(dtype), gy.astype(dtype)
    b = None if b is None else b.astype(dtype)
    up = [None if a is None else a.astype(np.float64) for a in (x, w, b, gy)]
    y64, gx64, gw64, gb64 = run("reference", *up)
    out_f, in_f = w.shape
    M = math.prod(x.shape[:-1])
    ax, aw, agy = np.abs(up[0]), np.abs(up[1]), np.abs(up[3])
    ax2, agy2 = ax.reshape(M, in_f), agy.reshape(M, out_f)
    S_y = ax @ aw.T + (0 if b is None else np.abs(up[2]))
    checks = [("y", in_f + (b is not None), S_y), ("grad_x", out_f, agy @ aw), ("grad_w", M, agy2.T @ ax2)]
    if b is not None:
        checks.append(("grad_b", M, agy2.sum(axis=0)))
    for impl in IMPLS:
        got = run(impl, x, w, b, gy)
        for (name, n, S), actual, expected in zip(checks, got, (y64, gx64, gw64, gb64), strict=False):
            assert actual.dtype == dtype, (impl, name, actual.dtype)
            assert_close(actual, expected, n, S, dtype, f"linear {impl} {name} x{x.shape} w{w.shape}")


SHAPES = [
    ((5, 7), (4, 7), True),
    ((7,), (3, 7), True),
    ((2, 3, 6), (5, 6), False),
    ((2, 3, 6), (5, 6), True),
    ((1, 1), (1, 1), True),
    ((2, 1, 3, 4), (2, 4), True),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "x_shape, w_shape, bias",
    SHAPES,
    ids=[f"x{'x'.join(map(str, s[0]))}-o{s[1][0]}-{'bias' if s[2] else 'nobias'}" for s in SHAPES],
)
def test_fast_and_reference_match_float64_reference(x_shape, w_shape, bias, dtype):
    rng = np.random.default_rng(sum(x_shape) * 31 + w_shape[0])
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if bias else None
    gy = rng.standard_normal(x_shape[:-1] + w_shape[:1])
    check_against_float64_reference(x, w, b, gy, dtype)


@given(
    lead=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    in_f=st.integers(1, 9),
    out_f=st.integers(1, 6),
    bias=st.booleans(),
    f64=st.booleans(),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_fast_and_reference_match_on_random_shapes(lead, in_f, out_f, bias, f64, seed, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, in_f)) * scale
    w = rng.standard_normal((out_f, in_f))
    b = rng.standard_normal(out_f) if bias else None
    gy = rng.standard_normal((*lead, out_f))
    check_against_float64_reference(x, w, b, gy, np.float64 if f64 else np.float32)


# ---- finite differences ----------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("x_shape", [(5,), (3, 5), (2, 3, 5)], ids=["1d", "2d", "3d"])
def test_gradients_match_finite_differences(impl, bias, x_shape):
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(x_shape), rng.standard_normal((4, 5))
    b = rng.standard_normal(4) if bias else None
    weights = rng.standard_normal((*x_shape[:-1], 4))  # L = sum(weights * y)

    def loss():
        return float(np.sum(weights * run(impl, x, w, b)))

    _, gx, gw, gb = run(impl, x, w, b, weights)
    assert_gradient(loss, x, gx, f"linear {impl} grad_x")
    assert_gradient(loss, w, gw, f"linear {impl} grad_weight")
    if bias:
        assert_gradient(loss, b, gb, f"linear {impl} grad_bias")
    else:
        assert gb is None


# ---- validation ------------------------------------------------------------------------
F32, F64 = np.float32, np.float64
BAD_INPUTS = [
    (np.ones((2, 3)), np.ones((5, 4)), None, ValueError,
     r"linear: x has 3 features \(last dim of shape \(2, 3\)\) but weight of shape \(5, 4\) expects 4"),
    (np.ones((2, 3), F32), np.ones((5, 3), F64), None, TypeError,
     r"linear: all arrays must share one dtype, got x=float32, weight=float64"),
    (np.ones((2, 3)), np.ones((5, 3)), np.ones(5, F32), TypeError,
     r"linear: all arrays must share one dtype, got x=float64, weight=float64, bias=float32"),
    (np.array(1.0), np.ones((5, 3)), None, ValueError,
     r"linear: x must have at least 1 dimension \(\*, in_features\), got a 0-D array"),
    (np.ones((2, 3)), np.ones((5, 3)), np.ones(4), ValueError,
     r"linear: bias of shape \(4,\) does not match weight of shape \(5, 3\): expected \(5,\)"),
    (np.ones((2, 3)), np.ones(3), None, ValueError, r"linear: weight must be 2-D, got shape \(3,\)"),
    (np.ones((2, 3)), np.ones((5, 3, 1)), None, ValueError, r"linear: weight must be 2-D, got shape \(5, 3, 1\)"),
    (np.ones((2, 3)), np.ones((5, 3)), np.ones((1, 5)), ValueError, r"linear: bias must be 1-D, got shape \(1, 5\)"),
    (np.ones((2, 3), np.int64), np.ones((5, 3)), None, TypeError,
     r"linear: x must be float32 or float64, got dtype int64"),
    ([[1.0, 2.0, 3.0]], np.ones((5, 3)), None, TypeError, r"linear: x must be a numpy.ndarray, got list"),
]  # fmt: skip


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "x, w, b, error, message",
    BAD_INPUTS,
    ids=["features", "dtype-mix", "bias-dtype", "0d", "bias-len", "w-1d", "w-3d", "bias-2d", "int", "list"],
)
def test_kernel_rejects_bad_input(impl, x, w, b, error, message):
    with pytest.raises(error, match=message):
        kernels.get("linear", impl).forward(x, w, b)


@pytest.mark.parametrize("impl", IMPLS)
def test_kernel_backward_checks_grad_against_output(impl):
    kernel = kernels.get("linear", impl)
    _, ctx = kernel.forward(np.ones((2, 3)), np.ones((4, 3)), None)
    with pytest.raises(ValueError, match=r"expected grad_y of shape \(2, 4\) \(the output's\), got \(4, 2\)"):
        kernel.backward(np.ones((4, 2)), ctx)
    with pytest.raises(TypeError, match=r"expected grad_y of dtype float64 \(the output's\), got float32"):
        kernel.backward(np.ones((2, 4), np.float32), ctx)


# ---- the Linear module -----------------------------------------------------------------
def test_linear_parameters_shapes_dtypes_and_state_dict():
    m = nn.Linear(5, 3)
    assert m.weight.shape == (3, 5) and m.bias.shape == (3,)
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32 and m.dtype == np.float32
    assert list(m.state_dict()) == ["weight", "bias"]
    m64 = nn.Linear(5, 3, bias=False, dtype=np.float64)
    assert m64.bias is None and m64.weight.dtype == np.float64
    assert list(m64.state_dict()) == ["weight"] and len(list(m64.parameters())) == 1


def test_linear_init_is_pytorchs_uniform_from_refcnns_generator():
    refcnn.manual_seed(3)
    m = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for p in (m.weight.data, m.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.99 * bound
    # the std of U(-k, k) is k/sqrt(3); 120,000 draws give it to ~0.3%
    assert abs(m.weight.data.std() / (bound / math.sqrt(3)) - 1) < 0.01
    refcnn.manual_seed(3)
    again = nn.Linear(400, 300)
    np.testing.assert_array_equal(again.weight.data, m.weight.data)
    np.testing.assert_array_equal(again.bias.data, m.bias.data)


def test_linear_zero_in_features_has_zero_bias():
    m = nn.Linear(0, 3)  # fan_in = 0: PyTorch's bias bound is 0
    np.testing.assert_array_equal(m.bias.data, np.zeros(3, np.float32))
    np.testing.assert_array_equal(m(np.ones((2, 0), np.float32)), np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("x_shape", [(6,), (4, 6), (2, 3, 6)], ids=["1d", "2d", "3d"])
def test_linear_forward_backward_accumulates(x_shape, dtype):
    m = nn.Linear(6, 4, dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    gy = rng.standard_normal((*x_shape[:-1], 4)).astype(dtype)
    y = m(x)
    assert y.shape == (*x_shape[:-1], 4) and y.dtype == dtype
    gx = m.backward(gy)
    assert gx.shape == x_shape and gx.dtype == dtype
    _, gx_k, gw_k, gb_k = run("fast", x, m.weight.data, m.bias.data, gy)
    np.testing.assert_array_equal(gx, gx_k)
    np.testing.assert_array_equal(m.weight.grad, gw_k)
    np.testing.assert_array_equal(m.bias.grad, gb_k)
    m(x)
    m.backward(gy)  # gradients accumulate until zero_grad, as in PyTorch
    np.testing.assert_array_equal(m.weight.grad, gw_k + gw_k)
    np.testing.assert_array_equal(m.bias.grad, gb_k + gb_k)
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_linear_without_bias_accumulates_weight_only():
    m = nn.Linear(3, 2, bias=False, dtype=np.float64)
    m(np.ones((4, 3)))
    m.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(m.weight.grad, np.full((2, 3), 4.0))


def test_linear_picks_its_kernel_at_call_time():
    calls = []

    def spy_forward(x, w, b):
        calls.append(x.shape)
        return linear_fast_forward(x, w, b)

    kernels.register("linear", "spy", spy_forward, linear_fast_backward)
    try:
        m = nn.Linear(3, 2)
        with kernels.use(linear="spy"):
            m(np.ones((4, 3), np.float32))
        m(np.ones((5, 3), np.float32))
    finally:
        kernels.unregister("linear", "spy")
    assert calls == [(4, 3)]


def test_linear_after_to_float64_takes_float64_input():
    m = nn.Linear(3, 2).to(np.float64)
    assert m.dtype == np.float64
    assert m(np.ones((1, 3))).dtype == np.float64


@pytest.mark.parametrize(
    "x, error, message",
    [
        (np.ones((2, 4), np.float32), ValueError, r"Linear expected input of shape \(\*, 3\), got \(2, 4\)"),
        (np.array(1.0, np.float32), ValueError, r"Linear expected input of shape \(\*, 3\), got \(\)"),
        (np.ones((2, 3)), TypeError, r"Linear holds float32 parameters but got a float64 input"),
        (np.ones((2, 3), np.int64), TypeError, r"Linear expected a float32 or float64 input, got dtype int64"),
        ([[1.0, 2.0, 3.0]], TypeError, r"Linear expected a numpy.ndarray input of shape \(\*, 3\), got list"),
    ],
    ids=["features", "0d", "dtype", "int", "list"],
)
def test_linear_rejects_bad_input(x, error, message):
    with pytest.raises(error, match=message):
        nn.Linear(3, 2)(x)


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((-1, 3), {}, ValueError, r"Linear: in_features must be >= 0, got -1"),
        ((3, -2), {}, ValueError, r"Linear: out_features must be >= 0, got -2"),
        ((2.0, 3), {}, TypeError, r"Linear: in_features must be an int, got 2.0"),
        ((2, 3), {"dtype": np.int32}, TypeError, r"Linear: dtype must be float32 or float64, got int32"),
    ],
    ids=["neg-in", "neg-out", "float-in", "int-dtype"],
)
def test_linear_rejects_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        nn.Linear(*args, **kwargs)


@pytest.mark.parametrize("module", [nn.Linear(3, 2), nn.Identity()], ids=["Linear", "Identity"])
def test_backward_before_forward_and_twice_raise(module):
    with pytest.raises(RuntimeError, match=r"backward called without a forward before it \(or twice"):
        module.backward(np.ones((1, 2), np.float32))
    module(np.ones((1, 3), np.float32))
    module.backward(np.ones((1, 2), np.float32))
    with pytest.raises(RuntimeError, match=r"backward called without a forward before it \(or twice"):
        module.backward(np.ones((1, 2), np.float32))


def test_linear_repr_is_pytorchs():
    assert repr(nn.Linear(3, 4)) == "Linear(in_features=3, out_features=4, bias=True)"
    assert repr(nn.Linear(3, 4, bias=False)) == "Linear(in_features=3, out_features=4, bias=False)"


# ---- Identity --------------------------------------------------------------------------
def test_identity_passes_input_and_gradient_through():
    m = nn.Identity(54, unused_argument=0.1)  # any arguments are accepted and ignored, as PyTorch
    x = np.arange(6.0).reshape(2, 3)
    assert m(x) is x
    g = np.ones((2, 3))
    assert m.backward(g) is g
    assert repr(m) == "Identity()" and list(m.parameters()) == []


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_float32_row_sums_over_6480_rows_do_not_drift(impl):
    # Broke: gb (fast: gy.sum(axis=0), NumPy adding row after row) and gw, gb (reference:
    # float32 loops) summed 6,480 rows in a float32 running sum, ~1e-6 relative off. They
    # now accumulate in float64 and round once, so n = 2 (one rounding of each product, one
    # of the sum) whatever the row count; S = the sums of absolute values.
    rng = np.random.default_rng(3)
    M = 6480 if impl == "fast" else 1500  # the reference's loops are slow
    x, w, gy = rng.uniform(0.5, 1.5, (M, 3)), rng.uniform(-1, 1, (2, 3)), rng.uniform(0.2, 1.2, (M, 2))
    kernel = kernels.get("linear", impl)
    _, ctx = kernel.forward(x.astype(np.float32), w.astype(np.float32), np.zeros(2, np.float32))
    _, gw, gb = kernel.backward(gy.astype(np.float32), ctx)
    x32, gy32 = x.astype(np.float32).astype(np.float64), gy.astype(np.float32).astype(np.float64)
    refcnn.testing.assert_close(gb, gy32.sum(axis=0), 2, np.abs(gy32).sum(axis=0), np.float32, f"{impl} gb")
    if impl == "reference":  # fast's gw is BLAS's
        refcnn.testing.assert_close(gw, gy32.T @ x32, 2, np.abs(gy32).T @ np.abs(x32), np.float32, f"{impl} gw")
