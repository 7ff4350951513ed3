"""Metamorphic relations: checks that need no reference value, only the kernel run twice.

Each relation transforms a case's input in a way whose effect on the exact result is known,
runs the implementation on both, and compares the two results under a bound derived from the
case's own n and S (the ones its forward and gradient checks use; conformance/tolerance.py).
They catch what a comparison at the drawn inputs cannot: paths taken only at magnitudes,
offsets or positions the drawn cases never reach.

- ``shift_invariance`` (softmax, log_softmax, cross_entropy): adding a large constant to
  every row along the softmax (class) dim leaves the output and the input gradient as they were.
- ``homogeneity`` (conv, linear, pooling, relu): f(a x) = a f(x) for a > 0, on the case with
  its bias dropped; the input gradient is of degree 0, a weight's gradient of degree 1.
- ``translation`` (conv and window pooling, any stride): the input embedded in a larger
  random canvas, shifted by whole strides, gives the same outputs away from the borders.

Which op has which relation is the table ``APPLIES``; ``check`` runs them from
``OpSpec.check_impl`` and records each as one check of its own name. A relation whose
preconditions fail on a case (non-finite rows, subnormal inputs, no output away from the
borders) is recorded as skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from refcnn import kernels, testing

from . import core, tolerance

APPLIES: dict[str, tuple[str, ...]] = {
    "shift_invariance": ("softmax", "log_softmax", "cross_entropy"),
    "homogeneity": tuple(
        "conv2d conv_transpose2d linear max_pool2d avg_pool2d adaptive_avg_pool2d adaptive_max_pool2d relu leaky_relu".split()
    ),
    "translation": ("conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"),
}


def names(op: str) -> list[str]:
    """The relations ``op`` has (its check names, in report order)."""
    return [name for name, ops in APPLIES.items() if op in ops]


@dataclass
class Run:
    """One implementation on one case, as ``OpSpec.check_impl`` has it."""

    spec: Any
    case: dict[str, Any]
    built: Any
    dtype: str
    impl: str
    kernel: kernels.Kernel
    inputs: dict[str, Any]  # the case's arrays in the checked dtype, before any call
    upcast: dict[str, Any]
    diff: list[str]  # the inputs whose gradients are checked on this case
    g_dt: np.ndarray  # the upstream gradient
    ref: core.Reference
    rec: core.Recorder

    def forward(self, arrays: dict[str, Any]) -> tuple[np.ndarray, Any]:
        """The implementation's forward on copies of ``arrays``: (a copy of the output, ctx)."""
        fresh = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
        y, ctx = self.spec.call(self.kernel, fresh, self.built)
        return np.array(self.spec.output(y), copy=True), ctx

    def backward(self, g: np.ndarray, ctx: Any) -> tuple[Any, ...]:
        return tuple(self.kernel.backward(np.array(g, copy=True), ctx))

    def grads(self) -> list[tuple[int, str, Any]]:
        """(index, name, reference) of each gradient this case checks."""
        return [
            (j, k, self.ref.grads[k]) for j, k in enumerate(self.spec.grads) if k in self.diff and k in self.ref.grads
        ]


Pair = tuple[str, Any, Any, Any, Any]  # what, got, expected (float64), n, S


def check(run: Run) -> None:
    """Every relation of ``run.spec.op`` on this case: one ok, fail, skip or unsupported each."""
    for name in names(run.spec.op):
        try:
            RELATIONS[name](run)
        except NotImplementedError as exc:
            run.rec.unsupported(run.impl, [name], f"NotImplementedError: {exc}")
        except Exception as exc:
            run.rec.crash(run.impl, name, f"{name} run", exc)


def _record(run: Run, name: str, setting: str, bound: str, pairs: list[Pair]) -> None:
    """Compare each pair under K*(gamma(n)*S + n*eta); the first that fails is the failure,
    its message naming the relation, its setting, the op's config and the bound."""
    worst = (0.0, 0.0)
    for what, got, expected, n, S in pairs:
        S = np.nan_to_num(np.asarray(S, np.float64), nan=np.inf)
        res = testing.compare(np.asarray(got), np.asarray(expected, np.float64), n, S, run.dtype)
        if not res.passed:
            detail = res.describe()
            if res.shape_ok and res.finite_ok and res.worst_index is not None:
                i = res.worst_index
                detail += f" ({core.num(np.asarray(got, np.float64)[i])} vs {core.num(np.asarray(expected)[i])})"
            config = ", ".join(f"{k}={v}" for k, v in run.built.config.items())
            op = f"{run.spec.op} {config}" if config else run.spec.op
            run.rec.fail(run.impl, name, f"{name} ({setting}; {op}): {what}: {detail}; "
                         f"bound {bound}", res.worst_abs_err, res.worst_ratio)  # fmt: skip
            return
        worst = max(worst, (res.worst_ratio, res.worst_abs_err))
    run.rec.ok(run.impl, name, worst[1], worst[0])


def _n(e: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(e, np.float64), shape)


# ---- shift_invariance ----------------------------------------------------------------------
def _class_axis(run: Run, x: np.ndarray) -> int | None:
    """The axis the op normalises over (None: a 0-D input, one value)."""
    if x.ndim == 0:
        return None
    if run.spec.op == "cross_entropy":
        return 0 if x.ndim == 1 else 1
    return int(run.built.config["dim"]) % x.ndim


def shift_invariance(run: Run) -> None:
    """``shift_invariance``: softmax(x + c) = softmax(x) (log_softmax, cross_entropy alike) for a
    constant c per row along the normalised dim; the input gradient is invariant too.

    c = +-10**U(3, 4) * max|x_row| per row (1 for a zero row), rounded to the dtype; rows with
    a non-finite value, or where |c| would pass a quarter of the dtype's largest number, are
    left unshifted (c = 0). Bound: the exact results at x and x + c are equal; the kernel's
    result at x is within K(gamma(n) S(x) + n eta) of it, at fl(x + c) within
    K(gamma(n) S(x+c) + n eta) of the exact value at fl(x + c), which differs from the exact
    value at x + c by at most sum_j |J_ij| u |x_j + c| <= gamma(1) S(x+c) (first order, the
    Jacobian part of the mixed S). In all <= K(gamma(2n+1)(S(x) + S(x+c)) + (2n+1) eta), with
    n and S(x) the case's own and S(x+c) computed the same way (PyTorch float64 Jacobian plus
    the op's cancellation terms) at the shifted input."""
    x = np.asarray(run.inputs["x"])
    dt = x.dtype
    axis = _class_axis(run, x)
    finite = np.isfinite(x)
    mag = np.where(finite, np.abs(x), 0.0).astype(np.float64)
    if axis is None:
        row_max, row_finite = mag, finite
    else:
        row_max = mag.max(axis=axis, keepdims=True) if x.size else mag.sum(axis=axis, keepdims=True)
        row_finite = finite.all(axis=axis, keepdims=True)
    rng = core.rng_for(run.case, 77)
    c = rng.choice([-1.0, 1.0], row_max.shape) * 10 ** rng.uniform(3, 4, row_max.shape)
    c = c * np.where(row_max > 0, row_max, 1.0)
    c = np.where(row_finite & (np.abs(c) + row_max < float(np.finfo(dt).max) / 4), c, 0.0).astype(dt)
    if not x.size or not np.any(c):
        run.rec.skipped(
            run.impl, "shift_invariance", "no row to shift: empty, or every row holds inf/nan or values too large"
        )
        return
    xc = np.asarray(x + c, dtype=dt)
    g = run.g_dt.astype(np.float64)
    upc = {**run.upcast, "x": xc.astype(np.float64)}
    spec, built = run.spec, run.built
    shifted = core.reference(built.torch_fn, upc, run.diff, g if run.diff else None, spec.method,
                             tolerance.BOUNDS.get(spec.op), built.R, spec.jac_over, spec.count_fn(run.case))  # fmt: skip
    for key, terms in spec.extra_terms(built, upc, g).items():
        target = shifted.forward if key == "forward" else shifted.grads.get(key)
        if target is not None:
            target.S = np.asarray(target.S) + terms
    y0, ctx0 = run.forward(run.inputs)
    y1, ctx1 = run.forward({**run.inputs, "x": xc})
    f0, f1 = run.ref.forward, shifted.forward
    pairs: list[Pair] = [("forward", y1, y0, 2 * np.asarray(f0.n) + 1, np.asarray(f0.S) + np.asarray(f1.S))]
    if run.grads():
        g0, g1 = run.backward(run.g_dt, ctx0), run.backward(run.g_dt, ctx1)
        for j, k, e in run.grads():
            if k in shifted.grads:
                S = np.asarray(e.S) + np.asarray(shifted.grads[k].S)
                pairs.append((f"grad of {k}", g1[j], g0[j], 2 * np.asarray(e.n) + 1, S))
    lo, hi = float(np.abs(c[c != 0]).min()), float(np.abs(c).max())
    setting = f"x + c along dim {axis}, |c| from {lo:.3g} to {hi:.3g} (1e3..1e4 x the row's max |x|)"
    _record(
        run,
        "shift_invariance",
        setting,
        "K*(gamma(2n+1)*(S(x) + S(x+c)) + (2n+1)*eta), n and S as the forward's (grad's)",
        pairs,
    )


# ---- homogeneity -----------------------------------------------------------------------------
SMALL, LARGE = (2.0**-20, 2.0**-9, 2.0**-3), (2.0**4, 2.0**11, 2.0**20)  # powers of two: exact scalings
ODD = (0.75, 3 * 2.0**-6, 3 * 2.0**-21)  # not powers of two: a*x rounds


def homogeneity(run: Run) -> None:
    """``homogeneity``: f(a x) = a f(x) for a > 0, with the op's affine parameters dropped (as
    the adjoint check does); the input gradient is of degree 0 (the same at a x), a parameter's
    gradient of degree 1. Three scalings per case, drawn from its seed:

    - two powers of two, one below 1 (2^-20, 2^-9 or 2^-3) and one above (2^4, 2^11 or 2^20;
      left out if a x or a S would come within a factor 4 of the largest number): every
      rounding of a +, -, *, / or comparison commutes with them unless a result is subnormal,
      so the two sides differ only by underflow, <= n eta per side. Compared at the smaller
      scale (a f(x) against f(a x) for a < 1, f(a x)/a against f(x) for a > 1, exact
      divisions): <= K(2n eta), forward and every checked gradient.
    - a = 0.75, 3*2^-6 or 3*2^-21 (forward only): fl(a x) = a x (1 + d), |d| <= u, moves f by
      at most u a S (the Jacobian part of S; for a selection, u a |y|); each side within its
      own bound, a f(x) in float64 rounding once more: <= K(gamma(2n+2) a S + (2n+2) eta),
      with S the case's S (|y| for a selection) and n its n.

    Precondition: every nonzero finite |x| and a|x| at least the smallest normal number (a
    subnormal does not scale exactly); otherwise skipped."""
    spec = run.spec
    x = np.asarray(run.inputs["x"])
    dt = x.dtype
    info = np.finfo(dt)
    lin = {k: (None if k in spec.adjoint_drop else v) for k, v in run.inputs.items()}
    rng = core.rng_for(run.case, 78)
    small, large, odd = (float(rng.choice(v)) for v in (SMALL, LARGE, ODD))
    fin = np.abs(x[np.isfinite(x)]).astype(np.float64)
    nz = fin[fin > 0]
    S_h = np.abs(run.ref.forward.value) if spec.method == "selection" else np.asarray(run.ref.forward.S)
    S_h = np.nan_to_num(np.asarray(S_h, np.float64), nan=np.inf)
    top = max(float(fin.max()) if fin.size else 0.0, float(np.max(S_h[np.isfinite(S_h)], initial=0.0)))
    powers = [small] + ([large] if top * large <= float(info.max) / 4 else [])
    y0, ctx0 = run.forward(lin)  # first: an implementation that declines the case is unsupported, not skipped
    if nz.size and float(nz.min()) * min(small, odd) < float(info.tiny):
        run.rec.skipped(run.impl, "homogeneity", f"x holds values that are or become subnormal when scaled by "
                        f"{min(small, odd):.3g} (a subnormal does not scale exactly)")  # fmt: skip
        return
    g0 = run.backward(run.g_dt, ctx0) if run.grads() else ()
    n_f = np.asarray(run.ref.forward.n, np.float64)

    def scaled(a: float, big: Any, small: Any, degree: int) -> tuple[np.ndarray, np.ndarray]:
        """(got, expected) at the smaller scale: f(a x) vs a^degree f(x)."""
        b, s = np.asarray(big, np.float64), np.asarray(small, np.float64)
        f = a**degree
        return (b, s * f) if f <= 1 else (b / f, s)

    pairs: list[Pair] = []
    for a in powers:
        ya, ctxa = run.forward({**lin, "x": np.asarray(x * a, dtype=dt)})
        pairs.append((f"forward, a = {a:g}", *scaled(a, ya, y0, 1), 2 * n_f, 0.0))
        ga = run.backward(run.g_dt, ctxa) if run.grads() else ()
        for j, k, e in run.grads():
            if g0[j] is None or ga[j] is None or lin.get(k, 0) is None:
                continue
            got, exp = scaled(a, ga[j], g0[j], 0 if k == "x" else 1)
            pairs.append((f"grad of {k}, a = {a:g}", got, exp, 2 * np.asarray(e.n), 0.0))
    y3, _ = run.forward({**lin, "x": np.asarray(x * odd, dtype=dt)})
    pairs.append((f"forward, a = {odd:g}", y3, np.asarray(y0, np.float64) * odd, 2 * n_f + 2, odd * S_h))
    dropped = [k for k in spec.adjoint_drop if run.inputs.get(k) is not None]
    setting = f"a = {', '.join(f'{a:g}' for a in [*powers, odd])}" + (
        f"; {', '.join(dropped)} dropped" if dropped else ""
    )
    bound = "a power of two: K*2n*eta (exact but for underflow); otherwise K*(gamma(2n+2)*a*S + (2n+2)*eta)"
    _record(run, "homogeneity", setting, bound, pairs)


# ---- translation ---------------------------------------------------------------------------------
def _geometry(run: Run) -> tuple[bool, list[tuple[int, int, int, int]]] | None:
    """(transposed, per spatial axis (k, s, p, d)), or None if the case is not 2-D spatial."""
    cfg, arrays = run.built.config, run.inputs
    x = np.asarray(arrays["x"])
    if x.ndim != 4:
        return None
    if "weight" in arrays:
        k = tuple(np.shape(arrays["weight"])[-2:])
    else:
        k = _pair(cfg["kernel_size"])
    s = _pair(cfg.get("stride") or k)
    p, d = _pair(cfg.get("padding", 0)), _pair(cfg.get("dilation", 1))
    return run.spec.op == "conv_transpose2d", [(k[i], s[i], p[i], d[i]) for i in range(2)]


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def _interior(size: int, out: int, k: int, s: int, p: int, d: int, transposed: bool) -> np.ndarray:
    """The outputs along one axis whose every input lies inside the input (none in the
    padding, none past an edge)."""
    o = np.arange(out)
    if not transposed:  # window o covers inputs o*s - p + a*d, a < k
        return o[(o * s - p >= 0) & (o * s - p + d * (k - 1) <= size - 1)]
    # transposed: output o sums inputs i with i*s = o + p - a*d, a < k
    t = o[:, None] + p - d * np.arange(k)[None, :]
    hit = t % s == 0
    i = t // s
    return o[np.all(~hit | ((i >= 0) & (i <= size - 1)), axis=1)]


def translation(run: Run) -> None:
    """``translation``: x embedded in a larger canvas of random values (same scale), at an
    offset of q whole strides per axis (q in 2..4, and 2..4 more strides after it), gives the
    outputs of x shifted by q (transposed: x shifted by q gives outputs shifted by q*s) at every
    output whose inputs lie inside x (no padding, no edge). Gradients: with the upstream
    gradient zero outside those outputs, the canvas's input gradient over x's region and every
    parameter's gradient equal x's (not compared when x holds inf or nan, a hazard case: the
    canvas's extra outputs, zero upstream, multiply them, and 0 * inf is nan).

    Bound: both sides sum the same terms (zeros aside, which add exactly), possibly in another
    order (the canvas is another shape): each within its check's bound, so <= K(gamma(2n) S +
    2n eta) with the case's n and S (for gradients S at |g| >= |g| zeroed outside: an upper
    bound). A selection (max pooling) is exact."""
    geo = _geometry(run)
    if geo is None:
        run.rec.skipped(run.impl, "translation", "not a 2-D spatial input (N, C, H, W)")
        return
    transposed, axes = geo
    x = np.asarray(run.inputs["x"])
    dt = x.dtype
    y0, ctx0 = run.forward(run.inputs)
    inner = [_interior(x.shape[2 + i], y0.shape[2 + i], *axes[i], transposed) for i in range(2)]
    if not x.size or not all(v.size for v in inner):
        run.rec.skipped(
            run.impl, "translation", "no output away from the borders (every window reaches the padding or an edge)"
        )
        return
    rng = core.rng_for(run.case, 79)
    q, e = rng.integers(2, 5, 2), rng.integers(2, 5, 2)
    step_in = [1 if transposed else axes[i][1] for i in range(2)]  # input shift per unit of q
    step_out = [axes[i][1] if transposed else 1 for i in range(2)]  # output shift per unit of q
    off_in = [int(q[i] * step_in[i]) for i in range(2)]
    off_out = [int(q[i] * step_out[i]) for i in range(2)]
    H, W = x.shape[2:]
    fin = np.abs(x[np.isfinite(x)])
    scale = float(fin.max()) if fin.size and fin.max() > 0 else 1.0
    canvas = (
        rng.standard_normal((*x.shape[:2], H + int((q[0] + e[0]) * step_in[0]), W + int((q[1] + e[1]) * step_in[1])))
        * scale
    ).astype(dt)
    canvas[:, :, off_in[0] : off_in[0] + H, off_in[1] : off_in[1] + W] = x
    Y, ctxY = run.forward({**run.inputs, "x": canvas})
    ri, ci = inner[0][:, None], inner[1][None, :]
    pairs: list[Pair] = [
        ("forward at the outputs away from the borders", Y[..., ri + off_out[0], ci + off_out[1]], y0[..., ri, ci],
         2 * _n(run.ref.forward.n, y0.shape)[..., ri, ci], _n(run.ref.forward.S, y0.shape)[..., ri, ci])
    ]  # fmt: skip
    if run.grads() and np.isfinite(x).all():  # with inf or nan in x, the zero upstream's 0 * inf is nan
        g_int = np.zeros_like(run.g_dt)
        g_int[..., ri, ci] = run.g_dt[..., ri, ci]
        G = np.zeros(Y.shape, dtype=run.g_dt.dtype)
        G[..., ri + off_out[0], ci + off_out[1]] = run.g_dt[..., ri, ci]
        g0, gY = run.backward(g_int, ctx0), run.backward(G, ctxY)
        for j, k, ex in run.grads():
            if g0[j] is None or gY[j] is None:
                continue
            got = gY[j][..., off_in[0] : off_in[0] + H, off_in[1] : off_in[1] + W] if k == "x" else gY[j]
            pairs.append((f"grad of {k} (upstream zero outside those outputs)", got, g0[j], 2 * np.asarray(ex.n), ex.S))
    kind = "x shifted by q, outputs by q*stride" if transposed else "x shifted by q*stride, outputs by q"
    setting = f"{kind}, q = {tuple(int(v) for v in q)}; canvas {canvas.shape[2]}x{canvas.shape[3]}"
    _record(run, "translation", setting, "K*(gamma(2n)*S + 2n*eta), n and S as the forward's (grad's)", pairs)


RELATIONS: dict[str, Callable[[Run], None]] = {
    "shift_invariance": shift_invariance,
    "homogeneity": homogeneity,
    "translation": translation,
}
