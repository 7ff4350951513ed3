"""Contracts of the activation kernels that mutation testing (tox -e mutation) found unpinned:
each test holds refcnn to PyTorch's value or error, or to erfc's own stated accuracy, at an
input no other test reached.

- Validation: each op names itself and the argument in its error (``hardtanh: x
  must be ...``), and hardtanh checks its bounds' order against the default of the one left out.
- Defaults: a kernel called without its config uses PyTorch's defaults (negative_slope 0.01,
  alpha 1.0, hardtanh's [-1, 1]).
- Edge values: signed zeros of leaky_relu with a negative slope, GELU at +-inf and at float64
  magnitudes whose square overflows, a float32 gradient at the top of the float32 range.
- Warnings: an implementation called directly (no registry around it) is as silent on +-inf
  (GELU, degenerate softmax rows) as through the registry (the module docstring: nan "without
  a RuntimeWarning").
- erfc: its interval boundaries (0.46875 and 4) alone in a call, nan alone, float32 input
  computed in float64, and each element evaluated once (one pass per block, linear time).

Two differences from PyTorch found on the way, now fixed, are pinned at the end: a float32 x
with a config value beyond float32's range (refcnn warned "overflow encountered in cast" where
PyTorch raises), and elu of signed zeros (refcnn turned +0.0 into -0.0 for a negative alpha,
and into nan for a nan alpha; PyTorch returns the zero itself).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from refcnn import kernels
from refcnn.kernels import activation
from refcnn.kernels.activation import ERFC_ROUNDINGS, erfc
from refcnn.testing import assert_close

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
ELEMENTWISE = ["relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardtanh"]


# ---- validation: the op and the argument named in the error ----------------------------------
OPS = [(op, {}) for op in ELEMENTWISE] + [("softmax", {"dim": 0}), ("log_softmax", {"dim": -1})]
OP_IDS = [op for op, _ in OPS]


@pytest.mark.parametrize("op, config", OPS, ids=OP_IDS)
def test_op_names_itself_and_x_for_a_non_array(op, config):
    with pytest.raises(TypeError, match=rf"^{op}: x must be a numpy.ndarray, got list$"):
        kernels.get(op).forward([1.0, -2.0], **config)


@pytest.mark.parametrize("op, config", OPS, ids=OP_IDS)
def test_op_names_itself_and_x_for_an_integer_array(op, config):
    with pytest.raises(TypeError, match=rf"^{op}: x must be float32 or float64, got dtype int64$"):
        kernels.get(op).forward(np.arange(3, dtype=np.int64), **config)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"min_val": "-1"}, r"^hardtanh: min_val must be a real number, got '-1'$"),
        ({"min_val": None, "max_val": 1.0}, r"^hardtanh: min_val must be a real number, got None$"),
        ({"max_val": True}, r"^hardtanh: max_val must be a real number, got True$"),
        ({"min_val": -1.0, "max_val": [1.0]}, r"^hardtanh: max_val must be a real number, got \[1.0\]$"),
    ],
    ids=["min-str", "min-none", "max-bool", "max-list"],
)
def test_hardtanh_names_the_bound_that_is_not_a_real_number(config, message):
    with pytest.raises(TypeError, match=message):
        kernels.get("hardtanh").forward(np.ones((2, 3)), **config)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"min_val": 1.5}, r"min_val=1.5, max_val=1.0"),  # PyTorch: max_val defaults to 1
        ({"max_val": -1.5}, r"min_val=-1.0, max_val=-1.5"),  # PyTorch: min_val defaults to -1
    ],
    ids=["min-above-default-max", "max-below-default-min"],
)
def test_hardtanh_checks_one_bound_against_the_others_default(config, message):
    # torch.nn.functional.hardtanh(x, min_val=1.5) raises "min_val cannot be greater than max_val"
    with pytest.raises(ValueError, match=rf"^hardtanh: min_val cannot be greater than max_val, got {message}$"):
        kernels.get("hardtanh").forward(np.ones((2, 3)), **config)


# ---- defaults of a kernel called without its config ---------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_leaky_relu_without_negative_slope_uses_pytorchs_001(dtype):
    x = np.array([[-3.0, 2.0, -0.5], [0.0, -100.0, 4.0]], dtype)
    y, ctx = kernels.get("leaky_relu").forward(x)
    np.testing.assert_array_equal(y, np.where(x > 0, x, x * dtype(0.01)))  # PyTorch: -0.03 at -3
    (gx,) = kernels.get("leaky_relu").backward(np.ones_like(x), ctx)
    np.testing.assert_array_equal(gx, np.where(x > 0, 1.0, 0.01).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_hardtanh_without_bounds_clamps_to_pytorchs_minus_one_one(dtype):
    x = np.array([[-1.5, -1.0, 0.25], [1.0, 1.5, 30.0]], dtype)
    y, ctx = kernels.get("hardtanh").forward(x)
    np.testing.assert_array_equal(y, np.array([[-1.0, -1.0, 0.25], [1.0, 1.0, 1.0]], dtype))
    (gx,) = kernels.get("hardtanh").backward(np.full_like(x, 2.0), ctx)
    np.testing.assert_array_equal(gx, np.array([[0, 0, 2], [0, 0, 0]], dtype))  # 0 at both bounds


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_elu_without_alpha_uses_pytorchs_1(dtype):
    x = np.array([[-3.0, 2.0, -0.5], [0.0, -100.0, 4.0]], dtype)
    y, _ = kernels.get("elu").forward(x)
    want = np.array([[-0.950212931632136, 2.0, -0.3934693402873666], [0.0, -1.0, 4.0]])  # PyTorch 2.13, float64
    assert_close(y, want, 8, np.abs(want), dtype, "elu without alpha")


# ---- leaky_relu at signed zeros ----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "slope, want",
    [
        # PyTorch 2.13: x > 0 ? x : x * slope, so -0.0 * -0.5 = +0.0 and +0.0 * -0.5 = -0.0
        (-0.5, [0.0, -0.0, 1.0]),
        (float("nan"), [np.nan, np.nan, np.nan]),
    ],
    ids=["slope-neg", "slope-nan"],
)
def test_leaky_relu_of_signed_zeros_takes_the_negative_branch_as_pytorch(dtype, slope, want):
    x = np.array([-0.0, 0.0, -2.0], dtype)
    y, _ = kernels.get("leaky_relu").forward(x, negative_slope=slope)
    want = np.array(want, dtype)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(want), err_msg=f"signs of {y}, PyTorch gives {want}")


# ---- GELU at the ends of the float range ------------------------------------------------
def test_gelu_gradient_where_x_squared_overflows_float64_is_pytorchs_without_warning():
    # PyTorch 2.13 (float64): gelu'(x) = 1 at 1e200 and 1.7e308, 0 at their negatives
    x = np.array([1e200, -1e200, 1.7e308, -1.7e308])
    gelu = kernels.get("gelu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exp(-x*x/2) must not report x*x's overflow
        y, ctx = gelu.forward(x)
        (gx,) = gelu.backward(np.ones_like(x), ctx)
    np.testing.assert_array_equal(y, [1e200, -0.0, 1.7e308, -0.0])
    np.testing.assert_array_equal(gx, [1.0, 0.0, 1.0, 0.0])


def test_gelu_float32_gradient_at_the_top_of_the_range_stays_finite_as_pytorch():
    # gelu'(6) = 1 + 3.5e-8 rounds to 1 in float32: PyTorch 2.13 gives grad_y * 1 = float32 max
    # (finite); rounding grad_y * gelu'(6) once from float64 would overflow to inf.
    fmax = np.finfo(np.float32).max
    gelu = kernels.get("gelu")
    _, ctx = gelu.forward(np.array([6.0, 6.0], np.float32))
    (gx,) = gelu.backward(np.array([fmax, -fmax], np.float32), ctx)
    np.testing.assert_array_equal(gx, np.array([fmax, -fmax], np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_implementation_called_directly_is_silent_at_infinity(dtype, approximate):
    # PyTorch 2.13: gelu(+inf) = inf, gelu(-inf) = nan (-inf * 0), gradient nan at both; the
    # kernel itself (not only the registry around it) gives them without a RuntimeWarning.
    gelu = kernels.get("gelu")
    x = np.array([np.inf, -np.inf, 0.5], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = gelu.forward_impl(x, approximate=approximate)
        (gx,) = gelu.backward_impl(np.ones_like(x), ctx)
    assert y[0] == np.inf and np.isnan(y[1]), f"gelu(+-inf) = {y[:2]}, PyTorch gives [inf, nan]"
    assert np.isnan(gx[:2]).all(), f"gelu'(+-inf) = {gx[:2]}, PyTorch gives nan"
    assert np.isfinite(y[2]) and np.isfinite(gx[2])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_past_the_square_root_of_the_range_is_pytorchs_and_silent(dtype, approximate):
    # |x| = 2 sqrt(max): x * x and x**3 overflow. PyTorch 2.13 gives gelu = [x, -0.0] and the
    # gradient [1, 0] (erf) or [nan, nan] (tanh: (1 - tanh(u)^2) = 0 times 1 + 3 kappa x^2 = inf);
    # refcnn clamped the tanh formula's x and gave [1, 0]. The kernel itself gives them without
    # a RuntimeWarning (its clamp of x**3, its errstate around exp(-x * x / 2)).
    big = np.finfo(dtype).max ** 0.5 * 2
    x = np.array([big, -big], dtype)
    gelu = kernels.get("gelu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = gelu.forward_impl(x, approximate=approximate)
        (gx,) = gelu.backward_impl(np.ones_like(x), ctx)
    np.testing.assert_array_equal(y, np.array([big, -0.0], dtype))
    want = [np.nan, np.nan] if approximate == "tanh" else [1.0, 0.0]
    np.testing.assert_array_equal(gx, np.array(want, dtype), err_msg=f"gelu'(+-{big:g}), {approximate}")
    (gx,) = gelu.backward_impl(np.ones_like(x), gelu.forward_impl(x / 1e3, approximate=approximate)[1])
    np.testing.assert_array_equal(gx, np.array([1.0, 0.0], dtype), err_msg="below the square root: [1, 0]")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_implementation_called_directly_is_silent_on_degenerate_rows(op, dtype):
    # PyTorch 2.13 along dim 1: a row holding +inf, or only -inf, is all nan; a -inf is a mask.
    # The kernel itself (not only the registry around it) gives them without a RuntimeWarning.
    x = np.array([[np.inf, 1.0, 0.0], [-np.inf, -np.inf, -np.inf], [1.0, -np.inf, 2.0]], dtype)
    kernel = kernels.get(op)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = kernel.forward_impl(x, dim=1)
        (gx,) = kernel.backward_impl(np.ones_like(x), ctx)
    assert np.isnan(y[:2]).all(), f"{op} of degenerate rows = {y[:2]}, PyTorch gives nan"
    assert np.isnan(gx[:2]).all()
    want = {
        "softmax": [0.2689414213699951, 0.0, 0.7310585786300049],
        "log_softmax": [-1.3132616875182228, -np.inf, -0.3132616875182228],
    }
    assert_close(y[2], np.array(want[op]), 8, np.abs(np.array(want[op])), dtype, f"{op} of a masked row")


# ---- erfc ------------------------------------------------------------------------------
# erfc(+-0.46875), erfc(+-4) to 200 bits (mpmath), rounded to float64
ERFC_AT = {0.46875: 0.507386526782062, -0.46875: 1.492613473217938, 4.0: 1.541725790028002e-08, -4.0: 1.999999984582742}


@pytest.mark.parametrize("z", list(ERFC_AT), ids=[f"z={z}" for z in ERFC_AT])
def test_erfc_at_an_interval_boundary_alone_in_the_call(z):
    # The only element, or with others of its own interval only: no other interval's branch
    # runs to fill its place.
    for arr in (np.array([z]), np.array([z, z / 2]) if abs(z) < 1 else np.array([z, 3 * z / 4])):
        got = erfc(arr)[0]
        assert_close(got, ERFC_AT[z], ERFC_ROUNDINGS, ERFC_AT[z], np.float64, f"erfc({z}) in {arr}")


def test_erfc_at_4_is_correctly_rounded():
    # Cody's middle interval ends at 4 inclusive; its formula gives the correctly rounded
    # erfc(4) (as libm does), the tail's formula one unit off.
    assert erfc(np.array([4.0, 5.0]))[0] == 1.541725790028002e-08


@pytest.mark.parametrize(
    "z", [[np.nan], [np.nan, 0.25], [np.nan, 2.0], [np.nan, 10.0]], ids=["alone", "small", "middle", "tail"]
)
def test_erfc_of_nan_is_nan_whichever_intervals_run(z):
    got = erfc(np.array(z))
    assert np.isnan(got[0]), f"erfc(nan) = {got[0]} next to {z[1:]}"
    if len(z) > 1:
        assert np.isfinite(got[1])


def test_erfc_of_float32_input_is_computed_in_float64():
    z32 = np.array([-3.3, -0.4, 0.1, 0.7, 2.9, 5.0, 9.5], np.float32)
    got = erfc(z32)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, erfc(z32.astype(np.float64)))


def test_erfc_evaluates_each_element_once(monkeypatch):
    # One pass per block of _ERFC_BLOCK elements (linear time): a block per element would make
    # a gelu of a few thousand elements take seconds.
    sizes = []

    def block(z):
        sizes.append(z.size)
        return z.copy()

    monkeypatch.setattr(activation, "_erfc_block", block)
    n = 35_000  # two full blocks and part of a third
    assert 2 * activation._ERFC_BLOCK < n < 3 * activation._ERFC_BLOCK
    got = erfc(np.arange(n, dtype=np.float64).reshape(5, 7000))
    np.testing.assert_array_equal(got.reshape(-1), np.arange(n))
    assert sum(sizes) == n, f"{sum(sizes)} elements evaluated for {n} ({len(sizes)} blocks)"


def test_erfc_of_nan_returns_that_nan_sign_included():
    # torch.special.erfc and libm's erfc (math.erfc) return a nan argument itself: erfc(-nan)
    # is -nan, not a fresh nan
    z = np.array([-np.nan, np.nan, -np.nan, 0.25, 3.0])
    got = erfc(z)
    assert np.isnan(got[:3]).all()
    np.testing.assert_array_equal(np.signbit(got[:3]), [True, False, True], err_msg=f"signs of erfc({z[:3]})")


# ---- found while writing these (fixed): a float32 x with a config value beyond float32's range
@pytest.mark.parametrize(
    "op, config",
    [
        ("leaky_relu", {"negative_slope": 1e300}),
        ("elu", {"alpha": 1e300}),
        ("hardtanh", {"min_val": -1e300, "max_val": 1.0}),
    ],
    ids=["leaky-relu-slope", "elu-alpha", "hardtanh-min"],
)
def test_float32_config_beyond_float32_range_is_rejected_as_pytorch(op, config):
    # PyTorch 2.13, float32 input: RuntimeError "value cannot be converted to type float without overflow"
    x = np.array([-2.0, 0.0, 3.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises((ValueError, TypeError), match=rf"^{op}: "):
            kernels.get(op).forward(x, **config)


F32_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize(
    "op, config, want, want_grad",
    [
        ("leaky_relu", {"negative_slope": F32_MAX}, [-np.inf, 0.0, 3.0], [np.inf, np.inf, 2.0]),
        ("elu", {"alpha": F32_MAX}, [-2.9423e38, 0.0, 3.0], [np.inf, np.inf, 2.0]),
        ("hardtanh", {"min_val": -F32_MAX, "max_val": 1.0}, [-2.0, 0.0, 1.0], [2.0, 2.0, 0.0]),
    ],
    ids=["leaky-relu-slope", "elu-alpha", "hardtanh-min"],
)
def test_float32_config_of_exactly_float32s_largest_value_is_accepted_as_pytorch(op, config, want, want_grad):
    """PyTorch 2.13 refuses only a value past float32's largest (3.4028235e38): that one converts,
    and products past the range are inf, without a warning (called directly too, outside the
    registry's errstate). The gradient of 2 * ones overflows where PyTorch's gy * alpha does."""
    x = np.array([-2.0, 0.0, 3.0], np.float32)
    kernel = kernels.get(op)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for forward, backward in [(kernel.forward, kernel.backward), (kernel.forward_impl, kernel.backward_impl)]:
            y, ctx = forward(x, **config)
            (gx,) = backward(np.full(3, 2.0, np.float32), ctx)
            np.testing.assert_allclose(y, np.array(want, np.float32), rtol=1e-4, err_msg=op)
            np.testing.assert_array_equal(gx, np.array(want_grad, np.float32), err_msg=op)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("alpha", [-0.5, float("nan")], ids=["alpha-neg", "alpha-nan"])
def test_elu_of_signed_zeros_is_the_zero_itself_as_pytorch(dtype, alpha):
    # (alpha = 1 too: elu(-0.0) is +0.0 where np.minimum(-0.0, 0) gives +0.0 (this machine);
    # not listed, as that sign depends on NumPy's SIMD instruction)
    x = np.array([-0.0, 0.0], dtype)
    y, _ = kernels.get("elu").forward(x, alpha=alpha)
    np.testing.assert_array_equal(y, x)  # PyTorch 2.13: [-0.0, 0.0], float32 and float64
    np.testing.assert_array_equal(np.signbit(y), [True, False], err_msg=f"signs of elu({x}) = {y}")


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_saves_its_output_in_x_dtype(op):
    """The sum along dim is taken in float64 and rounded once to x's dtype, so the output kept
    for backward is float32 for a float32 x, as PyTorch saves it: a float64 copy would double
    the memory a network keeps for backward."""
    x = np.random.default_rng(4).standard_normal((3, 5)).astype(np.float32)
    y, ctx = kernels.get(op).forward_impl(x, dim=1)
    saved = ctx[0]
    assert y.dtype == np.float32 and saved.dtype == np.float32, f"{op}: output {y.dtype}, saved {saved.dtype}"


# ---- a kernel called directly, outside the registry: inf * 0 is nan silently too ---------------
INF_TIMES_ZERO = {  # (call, the element that is inf * 0); PyTorch gives nan without a warning
    "leaky_relu_forward": (
        lambda: activation.leaky_relu_forward(np.array([-np.inf, 2.0]), negative_slope=0.0)[0],
        0,
    ),
    "leaky_relu_backward": (
        lambda: activation.leaky_relu_backward(np.array([np.inf, 1.0]), (np.array([-1.0, 2.0]), 0.0))[0],
        0,
    ),
    "elu_backward": (
        lambda: activation.elu_backward(np.array([np.inf, 1.0]), (np.array([-1.0, 2.0]), 0.0))[0],
        0,
    ),
}


@pytest.mark.parametrize("kernel", list(INF_TIMES_ZERO))
def test_a_kernel_called_directly_gives_nan_for_inf_times_zero_silently(kernel):
    call, at = INF_TIMES_ZERO[kernel]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = call()
    assert np.isnan(out[at]) and np.isfinite(np.delete(out, at)).all(), (kernel, out)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_dim_called_directly_is_empty_and_silent(op):
    # the sum over an empty dim is 0, and log_softmax takes its log(0) = -inf on the way to an
    # empty result: PyTorch returns the empty tensor without a warning, and so does the kernel
    kernel = kernels.get(op)
    x = np.ones((2, 0, 3), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = kernel.forward_impl(x, dim=1)
        (gx,) = kernel.backward_impl(np.ones_like(y), ctx)
    assert y.shape == gx.shape == x.shape and y.dtype == gx.dtype == x.dtype, (y.shape, gx.shape)
