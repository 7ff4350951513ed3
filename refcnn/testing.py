"""The tolerance policy: one rule for every comparison refcnn's tests and conformance make.

Every output element y is (up to a final elementwise map) a sum of n products. Computed in
floating point with unit roundoff eps, in any order, with or without FMA, Higham's bound
(Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5) gives

    |fl(y) - y| <= gamma(n, eps) * S,    gamma(n, eps) = n*eps / (1 - n*eps),

where S is the same sum over the absolute values of the terms: the op applied to |inputs|.
Underflow adds at most eta (the smallest subnormal) per operation, n*eta in all. Two
results that each obey the bound differ by at most twice it, so

    allowed(y) = K * (gamma(n, eps) * S + n * eta),   K = 2,

with eps, eta of the dtype under test. K is one constant for every op and check.
The reference is PyTorch in float64 on the same (upcast) inputs; the unit tests use
refcnn's own float64 reference implementation the same way. Ops that are not a sum of
products state their n and S in the same form where they are checked (elementwise maps:
n = 1 and S = |y|, with a small n counting the correctly rounded steps of the map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

K = 2.0

POLICY = (
    "allowed |refcnn - torch_float64| per element = K * (gamma(n, eps) * S + n * eta), "
    "gamma(n, eps) = n*eps/(1 - n*eps) (Higham's bound for a sum of n products), "
    "eps = unit roundoff of the dtype under test (2**-24 float32, 2**-53 float64), "
    "eta = its smallest subnormal (underflow floor), n = that element's reduction length, "
    "S = the op applied to the absolute values of its inputs, computed in float64; "
    f"K = {K:g}, one constant for every op and check (two results each within the bound "
    "differ by at most twice it)."
)


def unit_roundoff(dtype: Any) -> float:
    """eps: half the machine epsilon (2**-24 for float32, 2**-53 for float64)."""
    return float(np.finfo(dtype).eps) / 2.0


def gamma(n: Any, eps: float) -> np.ndarray:
    """Higham's gamma_n = n*eps / (1 - n*eps), elementwise over an array of n."""
    n = np.asarray(n, dtype=np.float64)
    if np.any(n * eps >= 1):
        raise ValueError(f"gamma(n, eps) needs n*eps < 1, got max n={n.max():g}, eps={eps:g}")
    return n * eps / (1.0 - n * eps)


def allowed_error(n: Any, S: Any, dtype: Any) -> np.ndarray:
    """The per-element bound K * (gamma(n, eps) * S + n * eta) for results of ``dtype``."""
    eps = unit_roundoff(dtype)
    eta = float(np.finfo(dtype).smallest_subnormal)
    n = np.asarray(n, dtype=np.float64)
    return K * (gamma(n, eps) * np.abs(np.asarray(S, dtype=np.float64)) + n * eta)


@dataclass(frozen=True)
class Comparison:
    """How far ``actual`` is from ``expected``, measured against the policy's bound."""

    worst_abs_err: float
    worst_ratio: float
    worst_index: tuple[int, ...] | None
    shape_ok: bool
    finite_ok: bool

    @property
    def passed(self) -> bool:
        return self.shape_ok and self.finite_ok and self.worst_ratio <= 1.0

    def describe(self) -> str:
        if not self.shape_ok:
            return "shapes differ"
        if not self.finite_ok:
            return "non-finite values where the expected result is finite (or differ in nan/inf)"
        return f"worst |err| {self.worst_abs_err:.3g} = {self.worst_ratio:.3g} x bound at {self.worst_index}"


def compare(actual: Any, expected: Any, n: Any, S: Any, dtype: Any) -> Comparison:
    """Compare elementwise against ``allowed_error(n, S, dtype)``.

    ``expected`` is the float64 reference; ``n`` and ``S`` broadcast against it.
    Elements where both are the same infinity (or both nan) count as equal.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return Comparison(float("inf"), float("inf"), None, False, True)
    same_nonfinite = (a == e) | (np.isnan(a) & np.isnan(e))
    finite_e = np.isfinite(e)
    if np.any(~finite_e & ~same_nonfinite) or np.any(finite_e & ~np.isfinite(a)):
        return Comparison(float("inf"), float("inf"), None, True, False)
    err = np.where(finite_e, np.abs(a - np.where(finite_e, e, 0.0)), 0.0)
    bound = np.broadcast_to(allowed_error(n, S, dtype), e.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / bound)
    if ratio.size == 0:
        return Comparison(0.0, 0.0, None, True, True)
    flat = int(np.argmax(ratio))
    index = tuple(int(i) for i in np.unravel_index(flat, ratio.shape))
    return Comparison(float(err.max()), float(ratio.flat[flat]), index, True, True)


def assert_close(actual: Any, expected: Any, n: Any, S: Any, dtype: Any, what: str = "") -> None:
    """Raise AssertionError, saying where and by how much, if ``compare`` fails."""
    result = compare(actual, expected, n, S, dtype)
    if not result.passed:
        raise AssertionError(f"{what}: {result.describe()} ({np.dtype(dtype)}; {POLICY})")


# ---- finite differences (float64 only; need no PyTorch) -----------------------------------
FD_STEP = 1e-6
FD_TOL = 1e-6

FD_POLICY = (
    f"finite differences: central, float64, step h = {FD_STEP:g} on one element at a time; "
    f"|numerical - analytic| <= {FD_TOL:g} * (1 + max |analytic|) (rounding eps*|L|/h ~ 1e-10 "
    "and truncation h**2*|f'''| ~ 1e-12 for unit-scale inputs, with margin for the scale of L)."
)


def numerical_gradient(loss: Any, x: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """Central differences of the scalar ``loss()`` w.r.t. every element of ``x``, which is
    perturbed in place and restored. ``x`` must be float64."""
    if x.dtype != np.float64:
        raise TypeError(f"finite differences run in float64 only, got {x.dtype}")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient needs a contiguous array to perturb in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = float(loss())
        flat[i] = old - h
        down = float(loss())
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


def assert_gradient(loss: Any, x: np.ndarray, analytic: np.ndarray, what: str = "") -> None:
    """Check ``analytic`` = d loss()/dx against central differences under FD_POLICY."""
    numeric = numerical_gradient(loss, x)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise AssertionError(f"{what}: gradient shape {analytic.shape}, expected {numeric.shape}")
    allowed = FD_TOL * (1.0 + (float(np.abs(analytic).max()) if analytic.size else 0.0))
    err = np.abs(numeric - analytic)
    if err.size and err.max() > allowed:
        at = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
        raise AssertionError(
            f"{what}: finite differences differ by {err.max():.3g} > {allowed:.3g} at {at} "
            f"(numerical {numeric[at]:.10g}, analytic {analytic[at]:.10g}); {FD_POLICY}"
        )


def assert_matches_reference(
    op: str, impl: str, dtype: Any, arrays: tuple[Any, ...], grad_y: np.ndarray, **config: Any
) -> None:
    """Implementation ``impl`` of ``op`` in ``dtype`` against the float64 ``reference`` on the
    same (rounded, upcast) values: the forward and every gradient, each under the policy
    with n = the op applied to ones and S = the op applied to absolute values (for the
    gradients: the backward of ones / of |grad_y|). ``arrays`` are the forward's positional
    arguments (None for an absent parameter); ``config`` its keywords."""
    from .kernels import registry

    def run(name: str, values: list[Any]) -> tuple[Any, ...]:
        kernel = registry.get(op, name)
        y, ctx = kernel.forward(*values[:-1], **config)
        return (y, *kernel.backward(values[-1], ctx))

    cast = [None if a is None else np.asarray(a).astype(dtype) for a in (*arrays, grad_y)]
    exact = [None if a is None else a.astype(np.float64) for a in cast]
    expected = run("reference", exact)
    n = run("reference", [None if a is None else np.ones_like(a) for a in exact])
    S = run("reference", [None if a is None else np.abs(a) for a in exact])
    actual = run(impl, cast)
    names = ["forward"] + [f"grad of argument {i}" for i in range(len(expected) - 1)]
    for name, a, e, n_, S_ in zip(names, actual, expected, n, S, strict=True):
        if e is None:
            assert a is None, f"{op} {impl} {name}: expected None"
            continue
        assert a.dtype == np.dtype(dtype), f"{op} {impl} {name}: dtype {a.dtype}, expected {np.dtype(dtype)}"
        assert_close(a, e, n_, S_, dtype, f"{op} {impl} {name}")
