"""Activation kernels (elementwise maps, softmax, log_softmax), erfc, and their modules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from refcnn import kernels, nn
from refcnn.kernels.activation import ERFC_ROUNDINGS, erfc
from refcnn.testing import assert_close, assert_gradient

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
SQRT2, SQRT_2_OVER_PI = math.sqrt(2.0), math.sqrt(2.0 / math.pi)


def run(op, x, gy=None, **config):
    kernel = kernels.get(op)
    y, ctx = kernel.forward(x, **config)
    if gy is None:
        return y
    (gx,) = kernel.backward(gy, ctx)
    return y, gx


# ---- scalar oracles: the textbook formula of each map and its derivative, in math -------
# Each returns (y, dy/dx, S_y, S_dydx): S is the formula with every term made positive, the
# magnitude its own sums can lose by cancellation (1 - sigmoid, 1 - tanh^2, 1 + tanh).
def _gelu_tanh(v):
    t = math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v**3))
    du = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * v * v)
    y, d = 0.5 * v * (1 + t), 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du
    return y, d, 0.5 * abs(v) * (1 + abs(t)), 0.5 * (1 + abs(t)) + 0.5 * abs(v) * (1 + t * t) * du


def _gelu(v):
    cdf, pdf = 0.5 * math.erfc(-v / SQRT2), math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
    return v * cdf, cdf + v * pdf, abs(v * cdf), cdf + abs(v) * pdf


def _silu(v):
    s = 1 / (1 + math.exp(-v))
    return v * s, s * (1 + v * (1 - s)), abs(v * s), s * (1 + abs(v) * (1 + s))


def _sigmoid(v):
    s = 1 / (1 + math.exp(-v))
    return s, s * (1 - s), s, s * (1 + s)


def _tanh(v):
    t = math.tanh(v)
    return t, 1 - t * t, abs(t), 1 + t * t


def _exact(f):
    """A map whose oracle has no cancellation: S = |value|."""
    return lambda v: (*f(v), *(abs(a) for a in f(v)))


ORACLES = {  # name -> (kernel config, oracle(v) -> (y, dydx, S_y, S_dydx))
    "relu": ({}, _exact(lambda v: (max(v, 0.0), 1.0 if v > 0 else 0.0))),
    "leaky_relu": ({"negative_slope": 0.2}, _exact(lambda v: (v if v > 0 else 0.2 * v, 1.0 if v > 0 else 0.2))),
    "elu": ({"alpha": 1.5}, _exact(lambda v: (v if v > 0 else 1.5 * math.expm1(v), 1.0 if v > 0 else 1.5 * math.exp(v)))),
    "gelu": ({"approximate": "none"}, _gelu),
    "gelu-tanh": ({"approximate": "tanh"}, _gelu_tanh),
    "silu": ({}, _silu),
    "sigmoid": ({}, _sigmoid),
    "tanh": ({}, _tanh),
    "hardtanh": ({"min_val": -2.0, "max_val": 1.0}, _exact(lambda v: (min(max(v, -2.0), 1.0), 0.0 if v <= -2 or v >= 1 else 1.0))),
}  # fmt: skip
ELEMENTWISE = list(ORACLES)


def op_of(name):
    return "gelu" if name == "gelu-tanh" else name


# Hand points: both signs, the kinks themselves (0, hardtanh's -2 and 1).
HAND_POINTS = [-2.5, -2.0, -0.25, 0.0, 0.5, 1.0, 3.0]

# The float64 oracle and kernel are each a few correctly rounded steps (exp, tanh, expm1
# within 1 ulp) from exact: n = 8 counts both; exact GELU adds the erfc bound.
HAND_N = {name: 8 for name in ORACLES} | {"gelu": ERFC_ROUNDINGS + 8}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_hand_points(name):
    config, oracle = ORACLES[name]
    x = np.array(HAND_POINTS)
    want_y, want_g, S_y, S_g = (np.array(v) for v in zip(*(oracle(v) for v in HAND_POINTS), strict=True))
    y, gx = run(op_of(name), x, np.ones_like(x), **config)
    assert_close(y, want_y, HAND_N[name], S_y, np.float64, f"{name} forward")
    assert_close(gx, want_g, HAND_N[name], S_g, np.float64, f"{name} backward")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "op, config, x, dydx",
    [
        ("relu", {}, 0.0, 0.0),  # relu'(0) = 0
        ("leaky_relu", {"negative_slope": 0.25}, 0.0, 0.25),  # the slope at 0
        ("elu", {"alpha": 1.5}, 0.0, 1.5),  # alpha at 0
        ("hardtanh", {"min_val": -2.0, "max_val": 1.0}, -2.0, 0.0),  # 0 on both boundaries
        ("hardtanh", {"min_val": -2.0, "max_val": 1.0}, 1.0, 0.0),
        ("hardtanh", {"min_val": -2.0, "max_val": 1.0}, 0.999, 1.0),
        ("hardtanh", {"min_val": -2.0, "max_val": 1.0}, -1.999, 1.0),
        ("gelu", {"approximate": "none"}, 0.0, 0.5),
        ("gelu", {"approximate": "tanh"}, 0.0, 0.5),
        ("silu", {}, 0.0, 0.5),
        ("sigmoid", {}, 0.0, 0.25),
        ("tanh", {}, 0.0, 1.0),
    ],
    ids=["relu", "leaky", "elu", "hardtanh-min", "hardtanh-max", "hardtanh-in-max", "hardtanh-in-min",
         "gelu", "gelu-tanh", "silu", "sigmoid", "tanh"],
)  # fmt: skip
def test_gradient_at_kinks_is_pytorchs(op, config, x, dydx, dtype):
    _, gx = run(op, np.array([x], dtype), np.ones(1, dtype), **config)
    assert gx.dtype == dtype
    np.testing.assert_array_equal(gx, np.array([dydx], dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_relu_backward_is_torchs_threshold_backward_bit_for_bit(dtype, layout):
    # torch: gx = (y <= 0) ? 0 : gy. So +0.0 (never -0.0) where the unit is off, even for a
    # gradient of nan, inf or a negative; a nan y passes its gradient; -0.0 passes as -0.0.
    x = np.array([[-1.0, 0.0, -0.0, np.nan, 2.0, 3.0, -5.0, 4.0]] * 3, dtype)
    gy = np.array([[np.nan, -np.inf, -2.0, -7.0, -0.0, np.inf, -0.0, np.nan]] * 3, dtype)
    want = np.array([[0.0, 0.0, 0.0, -7.0, -0.0, np.inf, 0.0, np.nan]] * 3, dtype)
    if layout == "transposed":
        x, gy, want = x.T, gy.T, want.T
    _, gx = run("relu", x, gy)
    assert gx.dtype == dtype and gx.shape == want.shape
    np.testing.assert_array_equal(gx, want)  # nan where nan
    np.testing.assert_array_equal(np.signbit(gx), np.signbit(want), err_msg="sign of zero")


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 5)], ids=["0d", "1d", "3d"])
def test_elementwise_keeps_shape_dtype_and_returns_arrays(name, dtype, shape):
    x = np.asarray(np.random.default_rng(0).standard_normal(shape), dtype=dtype)
    y, gx = run(op_of(name), x, np.ones(shape, dtype), **ORACLES[name][0])
    for a in (y, gx):
        assert isinstance(a, np.ndarray) and a.shape == shape and a.dtype == dtype


def test_elementwise_ops_have_a_single_reference_implementation():
    for op in ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardtanh", "softmax", "log_softmax"):
        assert kernels.available(op) == ["reference"]


# ---- float32 against float64 ---------------------------------------------------------
def away_from_kinks(rng, shape, kinks=(0.0,), low=-4.0, high=4.0):
    """Uniform draws in [low, high], each moved away from the kinks by at least 1e-2."""
    x = rng.uniform(low, high, shape)
    for k in kinks:
        near = np.abs(x - k) < 1e-2
        x[near] = k + np.where(x[near] >= k, 2e-2, -2e-2)
    return x


def _abs_dsilu(x):
    s = 1 / (1 + np.exp(-x))
    return s * (1 + np.abs(x) * (1 - s))


# For each map: (n, S) of the float32 result against the float64 one, as a function of x
# (float64) and y, dydx (the float64 results). n counts the correctly rounded float32
# steps on the way (exp, expm1, tanh within 1 ulp = 2 rounding units); the tanh-GELU adds
# the conditioning of sigmoid(2u) on the rounding of u (~5 steps on |2u|); S is the sum of
# magnitudes of the terms where a sum can cancel (silu', gelu', sigmoid' = y * (1 - y)).
def _u(x):
    return SQRT_2_OVER_PI * (x + 0.044715 * x**3)


FLOAT32_BOUNDS = {  # name -> (forward (n, S), backward (n, S)), each f(x, y, dydx)
    "relu": (lambda x, y, d: (1, np.abs(y)), lambda x, y, d: (1, np.abs(d))),
    "leaky_relu": (lambda x, y, d: (1, np.abs(y)), lambda x, y, d: (1, np.abs(d))),
    "elu": (lambda x, y, d: (4, np.abs(y)), lambda x, y, d: (5, np.abs(d))),
    "gelu": (lambda x, y, d: (2, np.abs(y)),  # float64 inside, one final rounding
             lambda x, y, d: (3, 0.5 * erfc(-x / SQRT2) + np.abs(x) * np.exp(-x * x / 2) / math.sqrt(2 * math.pi))),
    "gelu-tanh": (lambda x, y, d: (8 + 10 * np.abs(_u(x)), np.abs(y)),
                  lambda x, y, d: (12 + 20 * np.abs(_u(x)), np.abs(d) + np.abs(x) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x))),
    "silu": (lambda x, y, d: (5, np.abs(y)), lambda x, y, d: (12, _abs_dsilu(x))),
    "sigmoid": (lambda x, y, d: (4, np.abs(y)), lambda x, y, d: (10, np.abs(d))),
    "tanh": (lambda x, y, d: (4, np.abs(y)), lambda x, y, d: (8, np.abs(d))),
    "hardtanh": (lambda x, y, d: (1, np.abs(y)), lambda x, y, d: (1, np.abs(d))),
}  # fmt: skip
KINKS = {"relu": (0.0,), "leaky_relu": (0.0,), "elu": (0.0,), "hardtanh": (-2.0, 1.0)}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_float32_matches_float64(name):
    rng = np.random.default_rng(11)
    x32 = away_from_kinks(rng, (4, 250), KINKS.get(name, ())).astype(np.float32)
    x = x32.astype(np.float64)
    config = ORACLES[name][0]
    y, d = run(op_of(name), x, np.ones_like(x), **config)
    y32, d32 = run(op_of(name), x32, np.ones_like(x32), **config)
    fwd, bwd = FLOAT32_BOUNDS[name]
    assert_close(y32, y, *fwd(x, y, d), np.float32, f"{name} forward f32")
    assert_close(d32, d, *bwd(x, y, d), np.float32, f"{name} backward f32")


# ---- finite differences ----------------------------------------------------------------
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_gradients_match_finite_differences(name):
    rng = np.random.default_rng(5)
    x = away_from_kinks(rng, (2, 3, 5), KINKS.get(name, ()), low=-3.0, high=3.0)
    weights = rng.standard_normal(x.shape)
    config = ORACLES[name][0]
    _, gx = run(op_of(name), x, weights, **config)
    assert_gradient(lambda: float(np.sum(weights * run(op_of(name), x, **config))), x, gx, name)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1, 2], ids=["d0", "d1", "dm1", "d2"])
def test_softmax_gradients_match_finite_differences(op, dim):
    rng = np.random.default_rng(dim + 3)
    x = rng.standard_normal((2, 3, 5)) * 2
    weights = rng.standard_normal(x.shape)
    _, gx = run(op, x, weights, dim=dim)
    assert_gradient(lambda: float(np.sum(weights * run(op, x, dim=dim))), x, gx, f"{op} dim={dim}")


# ---- softmax and log_softmax -----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_hand_computed(dtype):
    x = np.array([[0.0, math.log(3.0)], [5.0, 5.0]], dtype)
    # exp(0) : exp(log 3) = 1 : 3; equal logits share equally
    want = np.array([[0.25, 0.75], [0.5, 0.5]])
    y = run("softmax", x, dim=1)
    assert y.dtype == dtype
    assert_close(y, want, 6, want, dtype, "softmax")
    assert_close(run("log_softmax", x, dim=1), np.log(want), 6, np.abs(np.log(want)) + 1, dtype, "log_softmax")
    np.testing.assert_array_equal(run("softmax", x, dim=0)[:, 0], run("softmax", x[:, :1], dim=0)[:, 0])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_of_large_logits_does_not_overflow(dtype):
    x = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4 - 1]], dtype)  # exp(1e4) overflows unshifted
    y = run("softmax", x, dim=1)
    np.testing.assert_array_equal(y[0], [1, 0, 0])
    s = 1 / (1 + math.exp(-1))
    assert_close(y[1], [0.0, s, 1 - s], 6, [0.0, s, 1 - s], dtype, "softmax large logits")
    np.testing.assert_array_equal(run("log_softmax", x, dim=1)[0], [0, -1e4, -2e4])
    _, gx = run("log_softmax", x, np.ones_like(x), dim=1)
    assert np.all(np.isfinite(gx))


def test_softmax_masked_and_degenerate_rows_follow_pytorch():
    x = np.array([[-np.inf, 0.0, 0.0], [-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 2.0]])
    y = run("softmax", x, dim=1)  # pytest turns any RuntimeWarning into an error
    np.testing.assert_array_equal(y[0], [0, 0.5, 0.5])  # -inf is a mask: weight 0
    assert np.all(np.isnan(y[1])) and np.all(np.isnan(y[2]))  # as torch.softmax
    np.testing.assert_array_equal(run("log_softmax", x, dim=1)[0], [-np.inf, -math.log(2), -math.log(2)])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_float32_matches_float64(op, dtype):
    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 2, (3, 7, 4)).astype(dtype)
    y64 = run(op, x.astype(np.float64), dim=1)
    y = run(op, x, dim=1)
    # exp(x_i - m): |x_i - m| eps absolute in the argument, +2 for exp; the sum of D = 7
    # terms; the division: relative n = D + 5 + |x_i - m| + max_j |x_j - m| (<= 4 each).
    # log_softmax: absolute, with S = |x_i - m| + |log sum| + 1 and the same n.
    z = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    n = 7 + 5 + np.abs(z) + np.abs(z).max(axis=1, keepdims=True)
    S = y64 if op == "softmax" else np.abs(z) + np.abs(np.log(np.exp(z).sum(axis=1, keepdims=True))) + 1
    assert_close(y, y64, n, S, dtype, op)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_sums_to_one_and_0d_and_empty(op):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5))
    for dim in range(-3, 3):
        y = run(op, x, dim=dim)
        p = y if op == "softmax" else np.exp(y)
        total = p.sum(axis=dim)
        ones = np.ones_like(total)
        assert_close(total, ones, 8 + x.shape[dim], ones, np.float64, f"{op} dim={dim}")
    y, gx = run(op, np.array(3.0), np.array(1.0), dim=0)  # 0-D: one element along dim 0
    assert y.shape == () and float(y) == (1.0 if op == "softmax" else 0.0) and float(gx) == 0.0
    y, gx = run(op, np.ones((0, 3)), np.ones((0, 3)), dim=0)
    assert y.shape == (0, 3) and gx.shape == (0, 3)


# ---- stability at the extremes ---------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_extreme_inputs_stay_finite_without_warnings(name, dtype):
    x = np.array([-1e30, -1e3, -100.0, 100.0, 1e3, 1e30], dtype)
    y, gx = run(op_of(name), x, np.ones_like(x), **ORACLES[name][0])  # a RuntimeWarning fails the test
    if name == "gelu-tanh" and dtype == np.float32:  # x * x overflows at 1e30: PyTorch's gradient is
        assert np.isnan(gx[[0, -1]]).all(), gx  # nan there (test_mutation_activation pins why)
        gx = gx[1:-1]
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(gx))
    limits = {"sigmoid": [0, 0, None, None, 1, 1], "tanh": [-1, -1, -1, 1, 1, 1], "relu": [0, 0, 0, 100, 1e3, 1e30]}
    for got, want in zip(y, limits.get(name, [None] * 6), strict=True):
        if want is not None:
            assert got == dtype(want)


def test_sigmoid_and_tanh_gradients_do_not_cancel():
    x = np.array([20.0, 40.0])
    _, g = run("sigmoid", x, np.ones_like(x))
    # 1 - sigmoid(x) would round to 0 here; sigmoid(x) sigmoid(-x) = e^-x / (1 + e^-x)^2
    want = np.exp(-x) / (1 + np.exp(-x)) ** 2
    assert_close(g, want, 8, want, np.float64, "sigmoid'")
    _, g = run("tanh", x, np.ones_like(x))
    want = 4 * np.exp(-2 * x) / (1 + np.exp(-2 * x)) ** 2  # sech^2, where 1 - tanh^2 rounds to 0
    assert_close(g, want, 8, want, np.float64, "tanh'")


def test_gelu_negative_tail_does_not_cancel():
    x = np.array([-10.0, -20.0])
    y = run("gelu", x)
    want = np.array([x_ * 0.5 * math.erfc(-x_ / SQRT2) for x_ in x])  # 1 + erf would give 0 here
    assert np.all(y < 0)
    # the rounding of x/sqrt2 is amplified by erfc's condition number 2 z^2 = x^2 (100, 400)
    assert_close(y, want, ERFC_ROUNDINGS + 8 + x**2, np.abs(want), np.float64, "gelu tail")


# ---- erfc ----------------------------------------------------------------------------
def test_erfc_matches_libm_within_its_stated_bound():
    z = np.concatenate([
        np.linspace(-6.0, 27.5, 20_001),  # all three intervals, the underflow to subnormals
        [0.0, -0.0, 0.46875, -0.46875, np.nextafter(0.46875, 1), 4.0, -4.0, np.nextafter(4.0, 5), 1e-300, 26.6],
    ])  # fmt: skip
    want = np.array([math.erfc(v) for v in z])
    # libm is within ~1 ulp; our a-priori bound is gamma(ERFC_ROUNDINGS) relative
    assert_close(erfc(z), want, ERFC_ROUNDINGS, want, np.float64, "erfc vs math.erfc")


def test_erfc_special_values_and_shapes():
    got = erfc(np.array([np.inf, -np.inf, np.nan, 0.0, 30.0, 1e300, -1e300]))
    np.testing.assert_array_equal(got[[0, 1, 3, 4, 5, 6]], [0.0, 2.0, 1.0, 0.0, 0.0, 2.0])
    assert np.isnan(got[2])
    assert erfc(np.zeros((2, 0, 3))).shape == (2, 0, 3)
    big = np.linspace(-3, 3, 40_000).reshape(200, 200)  # more than one block
    assert_close(erfc(big), np.vectorize(math.erfc)(big), ERFC_ROUNDINGS, np.vectorize(math.erfc)(big), np.float64)


# ---- validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op, x, config, error, message",
    [
        ("relu", np.ones(3, np.int64), {}, TypeError, r"relu: x must be float32 or float64, got dtype int64"),
        ("sigmoid", [1.0, 2.0], {}, TypeError, r"sigmoid: x must be a numpy.ndarray, got list"),
        ("tanh", np.ones(2, np.float16), {}, TypeError, r"tanh: x must be float32 or float64, got dtype float16"),
        ("leaky_relu", np.ones(3), {"negative_slope": "0.1"}, TypeError,
         r"leaky_relu: negative_slope must be a real number, got '0.1'"),
        ("elu", np.ones(3), {"alpha": None}, TypeError, r"elu: alpha must be a real number, got None"),
        ("hardtanh", np.ones(3), {"min_val": 2.0, "max_val": 1.0}, ValueError,
         r"hardtanh: min_val cannot be greater than max_val, got min_val=2.0, max_val=1.0"),
        ("gelu", np.ones(3), {"approximate": "erf"}, ValueError,
         r"gelu: approximate must be 'none' or 'tanh', got 'erf'"),
        ("softmax", np.ones((2, 3)), {"dim": 2}, IndexError,
         r"softmax: dim out of range \(expected to be in range of \[-2, 1\], but got 2\) for x of shape \(2, 3\)"),
        ("log_softmax", np.ones((2, 3)), {"dim": -3}, IndexError,
         r"log_softmax: dim out of range \(expected to be in range of \[-2, 1\], but got -3\)"),
        ("softmax", np.array(1.0), {"dim": 1}, IndexError,
         r"softmax: dim out of range \(expected to be in range of \[-1, 0\], but got 1\) for x of shape \(\)"),
        ("softmax", np.ones((2, 3)), {"dim": 1.0}, TypeError, r"softmax: dim must be an int, got 1.0"),
        ("log_softmax", np.ones((2, 3)), {"dim": None}, TypeError, r"log_softmax: dim must be an int, got None"),
    ],
    ids=["int", "list", "float16", "slope-str", "alpha-none", "hardtanh-order", "gelu-mode",
         "softmax-dim", "log-softmax-dim", "softmax-0d-dim", "softmax-float-dim", "log-softmax-none-dim"],
)  # fmt: skip
def test_kernels_reject_bad_input(op, x, config, error, message):
    with pytest.raises(error, match=message):
        kernels.get(op).forward(x, **config)


def test_hardtanh_kernel_allows_equal_bounds_as_pytorch():
    y, gx = run("hardtanh", np.array([-1.0, 0.5, 2.0]), np.ones(3), min_val=0.5, max_val=0.5)
    np.testing.assert_array_equal(y, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(gx, [0, 0, 0])


# ---- modules ---------------------------------------------------------------------------
MODULES = [  # (constructor, the kernel it must run, with this config)
    (lambda: nn.ReLU(), "relu", {}),
    (lambda: nn.LeakyReLU(0.2), "leaky_relu", {"negative_slope": 0.2}),
    (lambda: nn.ELU(1.5), "elu", {"alpha": 1.5}),
    (lambda: nn.GELU(), "gelu", {"approximate": "none"}),
    (lambda: nn.GELU("tanh"), "gelu", {"approximate": "tanh"}),
    (lambda: nn.SiLU(), "silu", {}),
    (lambda: nn.Sigmoid(), "sigmoid", {}),
    (lambda: nn.Tanh(), "tanh", {}),
    (lambda: nn.Hardtanh(-2.0, 1.0), "hardtanh", {"min_val": -2.0, "max_val": 1.0}),
    (lambda: nn.Softmax(dim=2), "softmax", {"dim": 2}),
    (lambda: nn.LogSoftmax(dim=0), "log_softmax", {"dim": 0}),
]
MODULE_IDS = [
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "GELU-tanh",
    "SiLU",
    "Sigmoid",
    "Tanh",
    "Hardtanh",
    "Softmax",
    "LogSoftmax",
]


@pytest.mark.parametrize("make, op, config", MODULES, ids=MODULE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_module_runs_its_kernel(make, op, config, dtype):
    module = make()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    y = module(x)
    gx = module.backward(gy)
    want_y, want_gx = run(op, x, gy, **config)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(gx, want_gx)
    assert y.dtype == dtype and gx.dtype == dtype


@pytest.mark.parametrize("make, op, config", MODULES, ids=MODULE_IDS)
def test_module_backward_before_forward_and_twice_raise(make, op, config):
    module = make()
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(RuntimeError, match=r"backward called without a forward before it \(or twice"):
        module.backward(x)
    module(x)
    module.backward(x)
    with pytest.raises(RuntimeError, match=r"backward called without a forward before it \(or twice"):
        module.backward(x)


@pytest.mark.parametrize(
    "module",
    [nn.ReLU(inplace=True), nn.LeakyReLU(0.1, inplace=True), nn.ELU(inplace=True), nn.SiLU(inplace=True),
     nn.Hardtanh(inplace=True)],
    ids=["ReLU", "LeakyReLU", "ELU", "SiLU", "Hardtanh"],
)  # fmt: skip
def test_inplace_keeps_input_results_and_gradients(module):
    x = np.array([-1.5, -0.5, 0.5, 1.5])
    before = x.copy()
    y = module(x)
    gx = module.backward(np.ones_like(x))
    np.testing.assert_array_equal(x, before)  # refcnn computes out of place
    module.inplace = False
    np.testing.assert_array_equal(module(x), y)
    np.testing.assert_array_equal(module.backward(np.ones_like(x)), gx)


@pytest.mark.parametrize(
    "module, text",
    [
        (nn.ReLU(), "ReLU()"),
        (nn.ReLU(inplace=True), "ReLU(inplace=True)"),
        (nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
        (nn.LeakyReLU(0.2, True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
        (nn.LeakyReLU(1), "LeakyReLU(negative_slope=1)"),
        (nn.ELU(), "ELU(alpha=1.0)"),
        (nn.ELU(0.5, inplace=True), "ELU(alpha=0.5, inplace=True)"),
        (nn.GELU(), "GELU(approximate='none')"),
        (nn.GELU(approximate="tanh"), "GELU(approximate='tanh')"),
        (nn.SiLU(), "SiLU()"),
        (nn.SiLU(inplace=True), "SiLU(inplace=True)"),
        (nn.Sigmoid(), "Sigmoid()"),
        (nn.Tanh(), "Tanh()"),
        (nn.Hardtanh(), "Hardtanh(min_val=-1.0, max_val=1.0)"),
        (nn.Hardtanh(-2, 3, True), "Hardtanh(min_val=-2, max_val=3, inplace=True)"),
        (nn.Softmax(), "Softmax(dim=None)"),
        (nn.Softmax(1), "Softmax(dim=1)"),
        (nn.LogSoftmax(dim=-1), "LogSoftmax(dim=-1)"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_repr_is_pytorchs(module, text):
    assert repr(module) == text  # strings printed by torch 2.13 for the same constructors


@pytest.mark.parametrize(
    "shape, dim",
    [((), 0), ((4,), 0), ((2, 3), 1), ((2, 3, 4), 0), ((2, 3, 4, 5), 1)],
    ids=["0d", "1d", "2d", "3d", "4d"],
)
@pytest.mark.parametrize(
    "cls, op", [(nn.Softmax, "softmax"), (nn.LogSoftmax, "log_softmax")], ids=["Softmax", "LogSoftmax"]
)
def test_softmax_dim_none_uses_pytorchs_legacy_rule_and_warns(cls, op, shape, dim):
    x = np.asarray(np.random.default_rng(0).standard_normal(shape))
    with pytest.warns(UserWarning, match=f"Implicit dimension choice for {op} has been deprecated"):
        y = cls()(x)
    np.testing.assert_array_equal(y, run(op, x, dim=dim))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls(dim=dim)(x)  # an explicit dim does not warn


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: nn.LeakyReLU("0.1"), TypeError, r"LeakyReLU: negative_slope must be a real number, got '0.1'"),
        (lambda: nn.ELU(alpha=None), TypeError, r"ELU: alpha must be a real number, got None"),
        (lambda: nn.Hardtanh(1.0, 1.0), ValueError, r"Hardtanh: max_val \(1.0\) must be greater than min_val \(1.0\)"),
        (lambda: nn.Hardtanh(2, 1), ValueError, r"Hardtanh: max_val \(1\) must be greater than min_val \(2\)"),
        (lambda: nn.GELU("erf"), ValueError, r"GELU: approximate must be 'none' or 'tanh', got 'erf'"),
        (lambda: nn.Softmax(dim=1.5), TypeError, r"Softmax: dim must be an int or None, got 1.5"),
        (lambda: nn.LogSoftmax(dim="1"), TypeError, r"LogSoftmax: dim must be an int or None, got '1'"),
    ],
    ids=["leaky-slope", "elu-alpha", "hardtanh-equal", "hardtanh-order", "gelu-mode", "softmax-dim", "logsoftmax-dim"],
)
def test_modules_reject_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("make, op, config", MODULES, ids=MODULE_IDS)
def test_modules_reject_integer_and_non_array_input(make, op, config):
    module = make()
    name = type(module).__name__
    with pytest.raises(TypeError, match=f"{name} expected a float32 or float64 input, got dtype int64"):
        module(np.ones((2, 3, 4), np.int64))
    with pytest.raises(TypeError, match=f"{name} expected a numpy.ndarray input of shape \\(\\*\\), got list"):
        module([1.0, 2.0])


def test_softmax_module_rejects_dim_out_of_range():
    with pytest.raises(
        IndexError, match=r"softmax: dim out of range \(expected to be in range of \[-2, 1\], but got 2\)"
    ):
        nn.Softmax(dim=2)(np.ones((2, 3)))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "layout",
    [np.asfortranarray, lambda a: np.ascontiguousarray(a.T).T, lambda a: np.flip(np.flip(a).copy())],
    ids=["fortran", "transposed", "negative-stride"],
)
def test_erfc_and_gelu_of_non_c_ordered_input(dtype, layout):
    # erfc wrote its blocks through reshape(-1) of np.empty_like(z): for a Fortran-ordered or
    # transposed z that reshape is a copy, so gelu returned uninitialised memory (no error).
    x = np.linspace(-3.0, 2.5, 15).reshape(3, 5).astype(dtype)
    gy = np.linspace(1.0, -1.0, 15).reshape(3, 5).astype(dtype)
    assert np.array_equal(erfc(layout(x.astype(np.float64))), erfc(x.astype(np.float64)))
    assert all(
        np.array_equal(a, e) for a, e in zip(run("gelu", layout(x), layout(gy)), run("gelu", x, gy), strict=True)
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gelu_tanh_gradient_at_infinity_is_nan_as_torch(dtype):
    # Broke: x was clamped to +-30 in backward, giving the limits 1 and 0 at x = +-inf;
    # PyTorch 2.13's formula has inf * 0 there: its gradient is nan (as refcnn's erf form's).
    x, gy = np.array([np.inf, -np.inf, 1.0], dtype), np.full(3, 0.5, dtype)
    y, gx = run("gelu", x, gy, approximate="tanh")
    assert y[0] == np.inf and np.isnan(y[1])  # PyTorch 2.13: inf, nan
    assert np.isnan(gx[:2]).all(), f"gradient {gx[:2]} at +-inf, PyTorch gives nan"
    # PyTorch 2.13 (float64): 0.5414820419228913 at x = 1
    assert_close(gx[2], 0.5414820419228913, 16, 1.0, dtype, "gelu tanh gradient at 1")
