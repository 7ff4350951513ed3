"""The gradient checks that need no PyTorch: element-wise central differences (refcnn.testing's,
on small float64 cases) and, where those would cost too much, a derivative along one random
direction (JAX's check_grads), each with its derived bound."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from refcnn import testing

from . import tolerance
from .core import Recorder, Reference


# ---- finite differences -----------------------------------------------------------------------
def finite_difference(loss: Callable[[], float], x: np.ndarray, analytic: np.ndarray) -> tuple[bool, float, float, str]:
    """refcnn.testing's central differences under its FD policy: (ok, abs_err, ratio, detail)."""
    numeric = testing.numerical_gradient(loss, x)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        return False, math.inf, math.inf, f"gradient shape {analytic.shape}, expected {numeric.shape}"
    if numeric.size == 0:
        return True, 0.0, 0.0, ""
    allowed = testing.FD_TOL * (1.0 + float(np.abs(analytic).max()))
    err = np.abs(numeric - analytic)
    worst = int(np.argmax(err))
    at = tuple(int(i) for i in np.unravel_index(worst, err.shape))
    ratio = float(err.max()) / allowed
    detail = f"max |numerical - analytic| {err.max():.3g} at {at} (numerical {numeric[at]:.10g}, analytic {analytic[at]:.10g})"
    return ratio <= 1.0, float(err.max()), ratio, detail


# ---- random-direction VJP (cases too large for element-wise differences) ---------------------
def vjp_direction(
    loss: Callable[[dict[str, np.ndarray]], float],
    arrays: dict[str, np.ndarray],
    analytic: dict[str, np.ndarray],
    rounding: float,
    rng: np.random.Generator,
) -> tuple[bool, float, float, str]:
    """JAX's check_grads in one direction: (ok, abs_err, ratio, detail) under VJP_POLICY.

    ``loss(perturbed)`` is <g, op(...)> with the float64 arrays in ``perturbed`` in place of
    the case's; ``analytic`` the gradients the backward returned for them; ``rounding`` a
    bound on the rounding error of one evaluation of ``loss``. The direction v has a unit
    norm per input (so that a parameter's gradient weighs as much as x's), entries normal."""
    v = {k: rng.standard_normal(a.shape) / math.sqrt(max(a.size, 1)) for k, a in arrays.items()}

    def along(t: float) -> float:
        return loss({k: a + t * v[k] for k, a in arrays.items()})

    h = tolerance.VJP_STEP
    f1, b1, f2, b2 = along(h), along(-h), along(2 * h), along(-2 * h)
    if not all(math.isfinite(f) for f in (f1, b1, f2, b2)):
        return True, 0.0, 0.0, "skipped: the loss is not finite along the direction"
    d1, d2 = (f1 - b1) / (2 * h), (f2 - b2) / (4 * h)
    terms = [np.asarray(analytic[k], np.float64) * v[k] for k in arrays]
    exact = float(sum(np.sum(t) for t in terms))
    m = sum(t.size for t in terms)
    magnitude = float(sum(np.sum(np.abs(t)) for t in terms))
    theta = float(sum(np.sum(np.abs(np.asarray(analytic[k], np.float64) * a)) for k, a in arrays.items()))
    eps = testing.unit_roundoff(np.float64)
    allowed = testing.K * ((rounding + eps * theta) / h + abs(d2 - d1) / 3 + float(testing.gamma(m, eps)) * magnitude)
    err = abs(d1 - exact)
    ratio = err / allowed if allowed > 0 else (0.0 if err == 0 else math.inf)
    detail = (
        f"directional derivative along a random direction: central difference {d1:.12g}, "
        f"<grad, v> {exact:.12g}, |difference| {err:.3g} > allowed {allowed:.3g}"
    )
    return (not ratio > 1.0), err, ratio, detail


def check_vjp(
    spec: Any, built: Any, inputs: dict[str, Any], g: np.ndarray, ref: Reference, kernel: Any, impl: str,
    rec: Recorder, rng: np.random.Generator,
) -> None:  # fmt: skip
    """``vjp_direction`` of one implementation on one float64 case (an OpSpec's ``check_impl``
    calls it where element-wise finite differences would cost too much)."""
    work = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}

    def call(arrays: dict[str, Any]) -> tuple[np.ndarray, Any]:
        fresh = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
        y, ctx = spec.call(kernel, fresh, built)
        return np.asarray(spec.output(y), np.float64), ctx

    y, ctx = call(work)
    if not np.all(np.isfinite(y)):
        return  # an infinite output has no derivative to compare
    analytic = kernel.backward(g, ctx)
    diff = {k: work[k] for k, a in zip(spec.grads, analytic, strict=True)
            if a is not None and isinstance(work.get(k), np.ndarray) and work[k].dtype.kind == "f"}  # fmt: skip
    grads = dict(zip(spec.grads, analytic, strict=True))
    if any(np.shape(grads[k]) != np.shape(a) for k, a in diff.items()):
        return  # a mis-shaped gradient fails its own grad_* check
    rounding = loss_rounding(y, g, ref.forward.n, ref.forward.S)

    def loss(perturbed: dict[str, np.ndarray]) -> float:
        return float(np.sum(call({**work, **perturbed})[0] * g))

    ok, err, ratio, detail = vjp_direction(loss, diff, {k: grads[k] for k in diff}, rounding, rng)
    if detail.startswith("skipped"):
        rec.skipped(impl, "vjp_direction", detail)
    elif ok:
        rec.ok(impl, "vjp_direction", err, ratio)
    else:
        rec.fail(impl, "vjp_direction", f"d/d({', '.join(diff)}): {detail}", err, ratio)


def loss_rounding(y: np.ndarray, g: np.ndarray, n: Any, S: Any) -> float:
    """A bound on the float64 rounding of <g, op(x)>: each output within the forward's own
    bound (n, S of the reference), then the inner product of y.size terms."""
    y, g = np.asarray(y, np.float64), np.asarray(g, np.float64)
    per = testing.allowed_error(n, S, np.float64)
    eps = testing.unit_roundoff(np.float64)
    return float(np.sum(np.abs(g) * per) + testing.gamma(max(y.size, 1), eps) * np.sum(np.abs(g * y)))
