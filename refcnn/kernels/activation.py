"""Elementwise activations and softmax, each a single ``reference`` implementation (the
vectorised formula is already the textbook one).

Every op is ``forward(x, **config) -> (y, ctx)`` and ``backward(gy, ctx) -> (gx,)``, with
x a float32/float64 array of any shape (0-D included) and y, gx of x's shape and dtype.

Gradients at the kinks are PyTorch's: relu'(0) = 0, leaky_relu'(0) = negative_slope,
elu'(0) = alpha, hardtanh' = 0 at x <= min_val and at x >= max_val. Where PyTorch's
backward formula loses accuracy by cancellation (1 - sigmoid(x) for large x, 1 - tanh(x)**2,
1 + erf(x/sqrt 2) for negative x), the same derivative is computed in a form without it
(sigmoid(-x), sech(x)**2 from exp(-2|x|), erfc). Results that are nan in PyTorch (softmax of
a row holding +inf or only -inf) are nan here too, without a RuntimeWarning.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import registry
from ._checks import check_float
from .shape import wrap_dim


def _real(op: str, name: str, value: Any, x: np.ndarray) -> float:
    """A real config value, which x's dtype must hold (PyTorch: "value cannot be converted to
    type float without overflow" for 1e300 with float32 input; inf converts)."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    v = float(value)
    if math.isfinite(v) and abs(v) > float(np.finfo(x.dtype).max):
        raise ValueError(f"{op}: {name}={value!r} cannot be converted to x's dtype {x.dtype} without overflow")
    return v


def _out(a: Any, dtype: np.dtype) -> np.ndarray:
    # ufuncs return NumPy scalars for 0-D input: hand back an ndarray of x's dtype always.
    return np.asarray(a, dtype=dtype)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) for either sign of x without overflow: with e = exp(-|x|) in (0, 1],
    sigmoid(x) = 1/(1 + e) for x >= 0 and e/(1 + e) for x < 0 (a few roundings each)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


# ---- erfc: W. J. Cody's rational Chebyshev approximations --------------------------------
# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23
# (1969) 631-638, with the coefficients of his CALERF (netlib specfun), whose approximation
# error is below 1e-18, i.e. < 0.01 unit roundoff. Three intervals of y = |z|:
#   y <= 0.46875:        erfc(z) = 1 - z * A(z^2) / B(z^2)
#   0.46875 < y <= 4:    erfc(y) = exp(-y^2) * C(y) / D(y)
#   y > 4:               erfc(y) = exp(-y^2) / y * (1/sqrt(pi) - t * P(t) / Q(t)),  t = 1/y^2
# and erfc(-y) = 2 - erfc(y). exp(-y^2) is formed as exp(-s^2) * exp(-(y - s)(y + s)) with
# s = trunc(16 y)/16, so that s^2 is exact and the rounding of y^2 is not amplified by exp.
# Error bound (float64, relative): every polynomial has positive coefficients and is
# evaluated by Horner at a non-negative argument, so each is within gamma(2*deg + 1) of
# exact (Higham, eq. 5.7, +1 for the rounded coefficients); with the division, the two
# exps (libm, < 1 ulp = 2 eps each, the second with an argument off by <= eps) and the
# products, the middle interval, the worst, stays within gamma(ERFC_ROUNDINGS) * erfc.
# Measured against mpmath (120-bit) on 17,000 points across the intervals: 6.1 eps at worst.
ERFC_ROUNDINGS = 43

_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
      1.85777706184603153e-1)  # fmt: skip
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
      8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
      2.15311535474403846e-8)  # fmt: skip
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
      3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)  # fmt: skip
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
      6.58749161529837803e-4, 1.63153871373020978e-2)  # fmt: skip
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
      2.33520497626869185e-3)  # fmt: skip
_INV_SQRT_PI = 0.56418958354775628695
_ERFC_BLOCK = 16384  # elements per pass: keeps the ~60 temporaries of a block in cache (2.5x faster)


def _horner(t: np.ndarray, lead: float | None, coefs: tuple[float, ...]) -> np.ndarray:
    """(((lead*t + c0)*t + c1)*t ... )*t + c_last; lead None means a monic polynomial."""
    acc = t * lead if lead is not None else t.copy()
    for c in coefs[:-1]:
        acc += c
        acc *= t
    acc += coefs[-1]
    return acc


def _exp_neg_square(y: np.ndarray) -> np.ndarray:
    s = np.trunc(y * 16.0) / 16.0
    return np.exp(-(s * s)) * np.exp(-((y - s) * (y + s)))


def _erfc_block(z: np.ndarray) -> np.ndarray:
    # Each interval's formula runs on the whole block with y clipped into the interval (no
    # gathers), and only if some element needs it; np.where then picks per element.
    y = np.abs(z)
    out = np.zeros_like(z)
    if (y > 0.46875).any():
        ym = np.clip(y, 0.46875, 4.0)
        r = _horner(ym, _C[8], _C[:8])
        r /= _horner(ym, None, _D)
        if (y > 4.0).any():
            yl = np.clip(y, 4.0, 30.0)  # erfc(30) underflows to 0 already; keeps inf out of exp
            t = 1.0 / (yl * yl)
            tail = _horner(t, _P[5], _P[:5])
            tail *= t
            tail /= _horner(t, None, _Q)
            np.subtract(_INV_SQRT_PI, tail, out=tail)
            tail /= yl
            r = np.where(y <= 4.0, r, tail)
        r *= _exp_neg_square(np.minimum(y, 30.0))
        out = np.where(z < 0, 2.0 - r, r)
    if (y <= 0.46875).any():
        zs = np.clip(z, -0.46875, 0.46875)
        t = zs * zs
        small = _horner(t, _A[4], _A[:4])
        small /= _horner(t, None, _B)
        small *= zs
        out = np.where(y <= 0.46875, 1.0 - small, out)
    return np.where(np.isnan(z), z, out)


def erfc(z: Any) -> np.ndarray:
    """The complementary error function 1 - erf(z) in float64, elementwise, within
    gamma(ERFC_ROUNDINGS) relative error of exact (see above); accurate in the tail where
    1 - erf(z) would cancel."""
    z = np.asarray(z, dtype=np.float64)
    # C order, whatever z's layout: reshape(-1) is then a view that writes into out (the
    # empty_like of a Fortran-ordered or transposed z would make it a copy, and out garbage).
    out = np.empty(z.shape, dtype=np.float64)
    flat_z, flat_out = z.reshape(-1), out.reshape(-1)
    for start in range(0, flat_z.size, _ERFC_BLOCK):
        flat_out[start : start + _ERFC_BLOCK] = _erfc_block(flat_z[start : start + _ERFC_BLOCK])
    return out


# ---- relu ---------------------------------------------------------------------------
def validate_relu(x: Any) -> None:
    check_float("relu", "x", x)


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = 0 where x < 0, else x (PyTorch's clamp_min: -0.0 stays -0.0, nan stays nan).
    Backward: gx = 0 where y <= 0 (so at x = +-0), else gy. ctx is that mask, not y: the
    caller may write into y (ReLU(inplace=True) after it)."""
    # x's bits times the 0/1 "not negative" mask, as integers: np.maximum(x, 0) returns +0.0
    # or -0.0 for x = -0.0 depending on the machine's SIMD instruction, and np.where branches
    bits = np.dtype(f"i{x.dtype.itemsize}")
    y = _out(np.multiply(x.view(bits), np.logical_not(x < 0)).view(x.dtype), x.dtype)
    return y, y <= 0


def relu_backward(
    grad_y: np.ndarray, stopped: np.ndarray, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    # np.where(stopped, 0, grad_y), bit for bit (nan and inf in grad_y, -0.0, a nan y passing
    # its gradient as torch's threshold_backward does), without np.where's branch per element,
    # slow on a mask as random as a ReLU's: grad_y's bits times the 0/1 mask, as integers.
    bits = np.dtype(f"i{grad_y.dtype.itemsize}")
    return (_out(np.multiply(grad_y.view(bits), np.logical_not(stopped)).view(grad_y.dtype), grad_y.dtype),)


# ---- leaky_relu ---------------------------------------------------------------------
def validate_leaky_relu(x: Any, *, negative_slope: Any = 0.01) -> None:
    check_float("leaky_relu", "x", x)
    _real("leaky_relu", "negative_slope", negative_slope, x)


def leaky_relu_forward(x: np.ndarray, *, negative_slope: float = 0.01) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
    """y = x for x > 0, negative_slope * x otherwise.
    Backward: gx = gy for x > 0, negative_slope * gy otherwise (so at x = 0)."""
    slope = float(negative_slope)
    with np.errstate(over="ignore", invalid="ignore"):  # x * slope past float's range: inf (0 * inf: nan), as PyTorch
        return _out(np.where(x > 0, x, x * slope), x.dtype), (x, slope)


def leaky_relu_backward(
    grad_y: np.ndarray, ctx: tuple[np.ndarray, float], *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    x, slope = ctx
    with np.errstate(over="ignore", invalid="ignore"):  # as the forward
        return (_out(np.where(x > 0, grad_y, grad_y * slope), grad_y.dtype),)


# ---- elu ----------------------------------------------------------------------------
def validate_elu(x: Any, *, alpha: Any = 1.0) -> None:
    check_float("elu", "x", x)
    _real("elu", "alpha", alpha, x)


def elu_forward(x: np.ndarray, *, alpha: float = 1.0) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
    """y = x for x >= 0 (so +-0 stay themselves, as in PyTorch, whatever alpha), alpha * (exp(x) - 1)
    otherwise (expm1, accurate near 0).
    Backward: gx = gy for x > 0, gy * alpha * exp(x) otherwise (so alpha * gy at x = 0)."""
    a = float(alpha)
    neg = np.minimum(x, 0)  # exp only of the non-positive part: no overflow for large x
    return _out(np.where(x >= 0, x, a * np.expm1(neg)), x.dtype), (x, a)


def elu_backward(
    grad_y: np.ndarray, ctx: tuple[np.ndarray, float], *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    x, a = ctx
    # PyTorch's order, gy * alpha * exp(x): the same roundings, and inf where gy * alpha overflows
    with np.errstate(over="ignore", invalid="ignore"):
        return (_out(np.where(x > 0, grad_y, grad_y * a * np.exp(np.minimum(x, 0))), grad_y.dtype),)


# ---- gelu ---------------------------------------------------------------------------
_SQRT1_2 = 0.70710678118654752440  # 1/sqrt(2)
_INV_SQRT_2PI = 0.39894228040143267794  # 1/sqrt(2 pi)
_SQRT_2_OVER_PI = 0.79788456080286535588  # sqrt(2/pi)
_KAPPA = 0.044715
# Beyond |x| = 30, 2u > 1900 and sigmoid(2u) is exactly 1 (or 0) in both dtypes, as is the
# derivative: clamping x there changes no result and keeps x**3 from overflowing (float32).
_GELU_TANH_SATURATED = 30.0


def _gelu_tanh_u(x: np.ndarray) -> np.ndarray:
    """u = sqrt(2/pi) (x + 0.044715 x^3), of x clamped to [-30, 30] (see above)."""
    xc = np.clip(x, -_GELU_TANH_SATURATED, _GELU_TANH_SATURATED)
    return _SQRT_2_OVER_PI * (xc + _KAPPA * (xc * xc * xc))


def validate_gelu(x: Any, *, approximate: Any = "none") -> None:
    check_float("gelu", "x", x)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu_forward(x: np.ndarray, *, approximate: str = "none") -> tuple[np.ndarray, tuple[np.ndarray, str]]:
    """approximate='none':  y = x * Phi(x),  Phi(x) = (1 + erf(x/sqrt 2))/2 = erfc(-x/sqrt 2)/2
         (erfc in float64 for both dtypes, so no cancellation for negative x);
       Backward: gx = gy * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2/2) / sqrt(2 pi).
    approximate='tanh':  y = x/2 * (1 + tanh(u)) = x * sigmoid(2u),  u = sqrt(2/pi) (x + 0.044715 x^3);
       Backward: gx = gy * (sigmoid(2u) + x * 2u' * sigmoid(2u) * sigmoid(-2u)),
                 u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    if approximate == "tanh":
        with np.errstate(invalid="ignore"):  # x = -inf gives -inf * 0 = nan, as PyTorch
            return _out(x * sigmoid(2 * _gelu_tanh_u(x)), x.dtype), (x, approximate)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):  # x = -inf gives -inf * 0 = nan, as PyTorch
        y = x64 * (0.5 * erfc(-_SQRT1_2 * x64))
    return _out(y, x.dtype), (x, approximate)


def gelu_backward(
    grad_y: np.ndarray, ctx: tuple[np.ndarray, str], *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    x, approximate = ctx
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate == "tanh":
            xc = np.clip(x, -_GELU_TANH_SATURATED, _GELU_TANH_SATURATED)
            u = _gelu_tanh_u(xc)
            du = _SQRT_2_OVER_PI * (1 + (3 * _KAPPA) * (xc * xc))
            s = sigmoid(2 * u)
            dydx = s + (xc * sigmoid(-2 * u)) * (2 * du) * s
            # nan where x * x overflows (x = +-inf too), as PyTorch: its formula's (1 - tanh(u)^2) = 0
            # then multiplies (1 + 3 kappa x^2) = inf
            dydx = np.where(np.isinf(x * x), np.nan, dydx)
        else:
            x64 = x.astype(np.float64)
            dydx = 0.5 * erfc(-_SQRT1_2 * x64) + x64 * (_INV_SQRT_2PI * np.exp(-0.5 * (x64 * x64)))
    return (_out(grad_y * dydx.astype(grad_y.dtype), grad_y.dtype),)


# ---- silu, sigmoid, tanh ----------------------------------------------------------------
def validate_silu(x: Any) -> None:
    check_float("silu", "x", x)


def silu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = x * sigmoid(x).  Backward: gx = gy * sigmoid(x) * (1 + x * sigmoid(-x))."""
    return _out(x * sigmoid(x), x.dtype), x


def silu_backward(grad_y: np.ndarray, x: np.ndarray, *, needs_input_grad: bool = True) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    return (_out(grad_y * (sigmoid(x) * (1 + x * sigmoid(-x))), grad_y.dtype),)


def validate_sigmoid(x: Any) -> None:
    check_float("sigmoid", "x", x)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """y = 1 / (1 + exp(-x)), without overflow for large |x|.
    Backward: gx = gy * y * (1 - y), with 1 - y computed as sigmoid(-x) (no cancellation)."""
    y = _out(sigmoid(x), x.dtype)
    return y, (x, y.copy())  # ctx's own y: the caller may write into the output


def sigmoid_backward(
    grad_y: np.ndarray, ctx: tuple[np.ndarray, np.ndarray], *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    x, y = ctx
    return (_out(grad_y * (y * sigmoid(-x)), grad_y.dtype),)


def validate_tanh(x: Any) -> None:
    check_float("tanh", "x", x)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = tanh(x).  Backward: gx = gy * (1 - y^2) = gy * sech(x)^2, computed as
    4e / (1 + e)^2 with e = exp(-2|x|) (no cancellation where |y| -> 1, no overflow)."""
    return _out(np.tanh(x), x.dtype), x


def tanh_backward(grad_y: np.ndarray, x: np.ndarray, *, needs_input_grad: bool = True) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    e = np.exp(-2 * np.abs(x))
    return (_out(grad_y * (4 * e / ((1 + e) * (1 + e))), grad_y.dtype),)


# ---- hardtanh -----------------------------------------------------------------------
def validate_hardtanh(x: Any, *, min_val: Any = -1.0, max_val: Any = 1.0) -> None:
    check_float("hardtanh", "x", x)
    lo, hi = _real("hardtanh", "min_val", min_val, x), _real("hardtanh", "max_val", max_val, x)
    if lo > hi:
        raise ValueError(f"hardtanh: min_val cannot be greater than max_val, got min_val={min_val}, max_val={max_val}")


def hardtanh_forward(
    x: np.ndarray, *, min_val: float = -1.0, max_val: float = 1.0
) -> tuple[np.ndarray, tuple[np.ndarray, float, float]]:
    """y = min(max(x, min_val), max_val).
    Backward: gx = 0 where x <= min_val or x >= max_val (so at both boundaries), else gy."""
    lo, hi = float(min_val), float(max_val)
    return _out(np.clip(x, lo, hi), x.dtype), (x, lo, hi)


def hardtanh_backward(
    grad_y: np.ndarray, ctx: tuple[np.ndarray, float, float], *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    x, lo, hi = ctx
    return (_out(np.where((x <= lo) | (x >= hi), 0, grad_y), grad_y.dtype),)


# ---- softmax, log_softmax -----------------------------------------------------------
_SoftmaxCtx = tuple[np.ndarray, int, tuple[int, ...]]


def validate_softmax(x: Any, *, dim: Any) -> None:
    check_float("softmax", "x", x)
    wrap_dim("softmax", "dim", dim, x.shape)


def validate_log_softmax(x: Any, *, dim: Any) -> None:
    check_float("log_softmax", "x", x)
    wrap_dim("log_softmax", "dim", dim, x.shape)


def _shifted(x: np.ndarray, dim: int) -> tuple[np.ndarray, int]:
    """x - max(x along dim): the largest term becomes exp(0) = 1, so nothing overflows
    (logits of 1e4 are fine). A 0-D x is treated as shape (1,), as PyTorch does."""
    x1 = x.reshape(1) if x.ndim == 0 else x
    d = dim % x1.ndim
    m = np.max(x1, axis=d, keepdims=True, initial=-np.inf)  # initial: empty dims are allowed
    return x1 - m, d


def _sum(a: np.ndarray, d: int) -> np.ndarray:
    """The sum along dim d in float64, rounded once to a's dtype: along any axis but the
    last NumPy adds the slices in turn, one running sum that drifts in float32."""
    return a.sum(axis=d, keepdims=True, dtype=np.float64).astype(a.dtype)


def softmax_forward(x: np.ndarray, *, dim: int) -> tuple[np.ndarray, _SoftmaxCtx]:
    """y_i = exp(x_i - m) / sum_j exp(x_j - m) along dim, m = max_j x_j.
    Backward: gx = y * (gy - sum_j gy_j y_j)."""
    with np.errstate(invalid="ignore"):  # +inf, or only -inf, in a row: nan, as PyTorch
        z, d = _shifted(x, dim)
        e = np.exp(z)
        y = e / _sum(e, d)
    # The output is a copy: ctx keeps y for backward, and the caller may write into the output.
    return np.array(y.reshape(x.shape), dtype=x.dtype), (y, d, x.shape)


def softmax_backward(
    grad_y: np.ndarray, ctx: _SoftmaxCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    y, d, shape = ctx
    gy = grad_y.reshape(y.shape)
    gx = y * (gy - _sum(gy * y, d))
    return (_out(gx.reshape(shape), grad_y.dtype),)


def log_softmax_forward(x: np.ndarray, *, dim: int) -> tuple[np.ndarray, _SoftmaxCtx]:
    """y_i = (x_i - m) - log(sum_j exp(x_j - m)) along dim, m = max_j x_j.
    Backward: gx = gy - exp(y) * sum_j gy_j."""
    with np.errstate(invalid="ignore", divide="ignore"):  # as softmax; log(0) of an empty dim
        z, d = _shifted(x, dim)
        y = z - np.log(_sum(np.exp(z), d))
    return np.array(y.reshape(x.shape), dtype=x.dtype), (y, d, x.shape)  # a copy, as softmax's


def log_softmax_backward(
    grad_y: np.ndarray, ctx: _SoftmaxCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    if not needs_input_grad:
        return (None,)
    y, d, shape = ctx
    gy = grad_y.reshape(y.shape)
    gx = gy - np.exp(y) * _sum(gy, d)
    return (_out(gx.reshape(shape), grad_y.dtype),)


_OPS: list[tuple[str, registry.Validator, registry.Forward, registry.Backward]] = [
    ("relu", validate_relu, relu_forward, relu_backward),
    ("leaky_relu", validate_leaky_relu, leaky_relu_forward, leaky_relu_backward),
    ("elu", validate_elu, elu_forward, elu_backward),
    ("gelu", validate_gelu, gelu_forward, gelu_backward),
    ("silu", validate_silu, silu_forward, silu_backward),
    ("sigmoid", validate_sigmoid, sigmoid_forward, sigmoid_backward),
    ("tanh", validate_tanh, tanh_forward, tanh_backward),
    ("hardtanh", validate_hardtanh, hardtanh_forward, hardtanh_backward),
    ("softmax", validate_softmax, softmax_forward, softmax_backward),
    ("log_softmax", validate_log_softmax, log_softmax_forward, log_softmax_backward),
]
for _op, _validate, _forward, _backward in _OPS:
    registry.set_validator(_op, _validate)
    registry.register(_op, "reference", _forward, _backward)
