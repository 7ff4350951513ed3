"""Memory layouts and the caller's arrays, for every op and implementation but conv, pool
and flatten (tests/test_layouts_convpool.py).

Each case runs forward and backward twice on the same values: once on fresh C-ordered
arrays, once on arrays in another layout (Fortran order, a transposed view, a
negative-stride view, a view taking every other element, each also read-only), laid out
that way either for every array (input, parameters, targets and the upstream gradient) or
for the upstream gradient alone. The results must be bit-identical (a kernel
whose sum follows memory order gives another answer on other strides), except where BLAS
computes the sums: those stay within refcnn.testing's policy (n = the op applied to ones,
S = the op applied to absolute values, as ``assert_matches_reference`` forms them). Then:

- no input, parameter, target or upstream gradient is changed by forward or backward
  (BatchNorm's running statistics excepted in training: updating them is its contract);
- writing into the output (as an in-place module after it would) does not change the
  gradients: no output aliases an array its backward reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from refcnn import kernels, testing

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]


# ---- layouts: the same values, other strides ---------------------------------------------------
def _fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a)


def _transposed(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T).T


def _negative_stride(a: np.ndarray) -> np.ndarray:
    return np.flip(np.flip(a).copy())


def _step_slice(a: np.ndarray) -> np.ndarray:
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    every_other = (slice(None, None, 2),) * a.ndim
    big[every_other] = a
    return big[every_other]


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "fortran": _fortran,
    "transposed": _transposed,
    "negative_stride": _negative_stride,
    "step_slice": _step_slice,
    "copy": np.array,  # C order: read-only only
}


def lay_out(a: Any, layout: str, readonly: bool) -> Any:
    if not isinstance(a, np.ndarray):
        return a
    out = LAYOUTS[layout](a) if a.ndim else a.copy()  # a 0-D array has one layout
    assert np.array_equal(out, a, equal_nan=a.dtype.kind == "f") and out.dtype == a.dtype
    if readonly:
        out.flags.writeable = False
    return out


LAYOUT_PARAMS = [
    pytest.param(layout, readonly, id=f"{layout}{'-readonly' if readonly else ''}")
    for layout in LAYOUTS
    for readonly in (False, True)
    if layout != "copy" or readonly
]
# Implementations whose sums BLAS computes: the order of a product's terms may follow the
# operands' strides, so a layout may change the last bits (within the policy).
BLAS = {("linear", "fast"), ("conv2d", "fast"), ("conv_transpose2d", "fast")}
WHICH = [pytest.param("all", id="every-array"), pytest.param("grad_y", id="grad_y-only")]


# ---- cases: (id, op, arrays, config factory, running-stat argument indices) ---------------------
def _x(rng: np.random.Generator, *shape: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return rng.uniform(low, high, shape)


def _labels(rng: np.random.Generator, C: int, *shape: int) -> np.ndarray:
    return rng.integers(0, C, shape).astype(np.int64)


def _cases() -> list[tuple[str, str, Callable[[np.random.Generator], tuple[Any, ...]], Callable[[], dict], tuple]]:
    def fixed(**config: Any) -> Callable[[], dict]:
        return lambda: dict(config)

    def gen(**config: Any) -> Callable[[], dict]:
        return lambda: dict(config, generator=np.random.default_rng(7))

    act = lambda r: (_x(r, 3, 4, 5, low=-4, high=4),)  # noqa: E731
    cases = [
        ("relu", "relu", act, fixed(), ()),
        ("leaky_relu", "leaky_relu", act, fixed(negative_slope=0.1), ()),
        ("elu", "elu", act, fixed(alpha=1.3), ()),
        ("gelu", "gelu", act, fixed(approximate="none"), ()),
        ("gelu-tanh", "gelu", act, fixed(approximate="tanh"), ()),
        ("silu", "silu", act, fixed(), ()),
        ("sigmoid", "sigmoid", act, fixed(), ()),
        ("tanh", "tanh", act, fixed(), ()),
        ("hardtanh", "hardtanh", act, fixed(min_val=-0.5, max_val=0.7), ()),
        ("softmax-dim1", "softmax", act, fixed(dim=1), ()),
        ("softmax-dim-1", "softmax", act, fixed(dim=-1), ()),
        ("log_softmax-dim1", "log_softmax", act, fixed(dim=1), ()),
        ("log_softmax-dim0", "log_softmax", act, fixed(dim=0), ()),
        ("linear", "linear", lambda r: (_x(r, 3, 4, 5), _x(r, 6, 5), _x(r, 6)), fixed(), ()),
        ("linear-nobias", "linear", lambda r: (_x(r, 7, 5), _x(r, 6, 5), None), fixed(), ()),
    ]
    bn = lambda r: (_x(r, 4, 3, 5, 6), _x(r, 3), _x(r, 3), _x(r, 3), _x(r, 3, low=0.5, high=2))  # noqa: E731
    bn1d = lambda r: (_x(r, 7, 3), _x(r, 3), _x(r, 3), _x(r, 3), _x(r, 3, low=0.5, high=2))  # noqa: E731
    for training in (True, False):
        mode = "train" if training else "eval"
        config = fixed(training=training, momentum=0.1, eps=1e-5)
        running = (3, 4) if training else ()
        cases.append((f"batch_norm-2d-{mode}", "batch_norm", bn, config, running))
        cases.append((f"batch_norm-1d-{mode}", "batch_norm", bn1d, config, running))
    cases += [
        ("batch_norm-no-stats", "batch_norm", lambda r: (_x(r, 4, 3, 5, 6), None, None, None, None),
         fixed(training=True, momentum=0.1, eps=1e-5), ()),
        ("group_norm", "group_norm", lambda r: (_x(r, 2, 6, 4, 5), _x(r, 6), _x(r, 6)), fixed(num_groups=3, eps=1e-5), ()),
        ("layer_norm", "layer_norm", lambda r: (_x(r, 3, 4, 5), _x(r, 4, 5), _x(r, 4, 5)),
         fixed(normalized_shape=(4, 5), eps=1e-5), ()),
        ("dropout-train", "dropout", act, gen(p=0.3, training=True), ()),
        ("dropout-eval", "dropout", act, fixed(p=0.3, training=False), ()),
        ("dropout2d-train", "dropout2d", lambda r: (_x(r, 3, 4, 5, 6),), gen(p=0.4, training=True), ()),
    ]  # fmt: skip
    ce = lambda r: (_x(r, 3, 4, 5, 2), _labels(r, 4, 3, 5, 2), _x(r, 4, low=0.5, high=2))  # noqa: E731
    for reduction in ("mean", "none"):
        cases += [
            (f"cross_entropy-index-w-ls-{reduction}", "cross_entropy", ce,
             fixed(ignore_index=1, reduction=reduction, label_smoothing=0.1), ()),
            (f"cross_entropy-prob-{reduction}", "cross_entropy",
             lambda r: (_x(r, 3, 4, 5), _x(r, 3, 4, 5, low=0, high=1), None),
             fixed(ignore_index=-100, reduction=reduction, label_smoothing=0.2), ()),
            (f"nll_loss-w-{reduction}", "nll_loss", ce, fixed(ignore_index=2, reduction=reduction), ()),
            (f"mse_loss-{reduction}", "mse_loss", lambda r: (_x(r, 3, 4, 5), _x(r, 3, 4, 5)),
             fixed(reduction=reduction), ()),
            (f"l1_loss-{reduction}", "l1_loss", lambda r: (_x(r, 3, 4, 5), _x(r, 3, 4, 5)), fixed(reduction=reduction), ()),
            (f"smooth_l1_loss-{reduction}", "smooth_l1_loss", lambda r: (_x(r, 3, 4, 5), _x(r, 3, 4, 5)),
             fixed(reduction=reduction, beta=0.7), ()),
            (f"bce-w-{reduction}", "binary_cross_entropy",
             lambda r: (_x(r, 3, 4, 5, low=0.05, high=0.95), _x(r, 3, 4, 5, low=0, high=1), _x(r, 4, 5)),
             fixed(reduction=reduction), ()),
            (f"bce_with_logits-w-pw-{reduction}", "binary_cross_entropy_with_logits",
             lambda r: (_x(r, 3, 4, 5), _x(r, 3, 4, 5, low=0, high=1), _x(r, 4, 5), _x(r, 5, low=0.5, high=2)),
             fixed(reduction=reduction), ()),
        ]  # fmt: skip
    return cases


CASES = [
    pytest.param(op, impl, build, config, running, id=f"{name}-{impl}")
    for name, op, build, config, running in _cases()
    for impl in kernels.available(op)
]


def _run(op: str, impl: str, arrays: list[Any], grad_y: np.ndarray, config: dict, scribble: bool = False) -> list[Any]:
    """Forward then backward; returns [y, *grads]. ``scribble``: write nan into y (when it is
    writeable) between the two, as an in-place module after the op would."""
    kernel = kernels.get(op, impl)
    y, ctx = kernel.forward(*arrays, **config)
    y_kept = np.array(y)
    if scribble and y.flags.writeable:
        y[...] = np.nan
    grads = kernel.backward(grad_y, ctx)  # the caller's array itself: its layout, read-only flag, contents
    return [y_kept, *grads]


def _values(build: Callable, dtype: Any) -> list[Any]:
    """The case's arrays, float ones in ``dtype`` (seed 0: every run sees the same values)."""
    return [
        a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
        for a in build(np.random.default_rng(0))
    ]


def _grad_like(y: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, y.shape).astype(y.dtype)


def _fresh(arrays: list[Any]) -> list[Any]:
    return [a.copy() if isinstance(a, np.ndarray) else a for a in arrays]


def _same(actual: Any, expected: Any) -> bool:
    if expected is None:
        return actual is None
    return actual.dtype == expected.dtype and np.array_equal(actual, expected, equal_nan=True)


def _within_policy(op: str, arrays: list[Any], grad_y: np.ndarray, config: dict) -> list[Any]:
    """n and S per output (forward, then each gradient), as assert_matches_reference forms them."""
    exact = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays]
    ones = [np.ones_like(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in exact]
    absolute = [np.abs(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in exact]
    n = _run(op, "reference", ones, np.ones(grad_y.shape), config)
    S = _run(op, "reference", absolute, np.abs(grad_y).astype(np.float64), config)
    return list(zip(n, S, strict=True))


def check_layout(op, impl, build, config, running, dtype, layout, readonly, which):
    """The case on ``layout`` arrays gives the C-order result and leaves the caller's arrays alone."""
    arrays = _values(build, dtype)
    y0, _ = kernels.get(op, impl).forward(*_fresh(arrays), **config())
    grad_y = _grad_like(np.asarray(y0), 1)
    c_order = _fresh(arrays)  # the C-order run; its running statistics are updated in place
    expected = _run(op, impl, c_order, grad_y, config())
    expected_stats = [c_order[i] for i in running]

    if which == "all":
        laid = [lay_out(a, layout, readonly and i not in running) for i, a in enumerate(arrays)]
    else:
        laid = _fresh(arrays)
    laid_grad = lay_out(grad_y, layout, readonly)
    before = [None if a is None else np.array(a) for a in laid]
    grad_before = laid_grad.copy()
    actual = _run(op, impl, laid, laid_grad, config())

    what = f"{op} {impl} {np.dtype(dtype)} with {layout}{' read-only' if readonly else ''} arrays ({which})"
    names = ["forward"] + [f"grad of argument {i}" for i in range(len(expected) - 1)]
    bounds = None
    for name, a, e in zip(names, actual, expected, strict=True):
        if _same(a, e):
            continue
        assert e is not None and a is not None, f"{what}: {name} is {a!r}, expected {e!r}"
        # Not bit-identical: allowed only where BLAS sums (its order may follow the strides).
        assert (op, impl) in BLAS, f"{what}: {name} is not bit-identical to the C-order result"
        bounds = bounds or _within_policy(op, _fresh(arrays), grad_y, config())
        n, S = bounds[names.index(name)]
        testing.assert_close(a, e, n, S, dtype, f"{what}: {name} differs from the C-order result")
    for i, stat in zip(running, expected_stats, strict=True):
        assert np.array_equal(laid[i], stat), f"{what}: running statistic {i} differs from the C-order update"
    for i, (a, b) in enumerate(zip(laid, before, strict=True)):
        if i not in running and a is not None:
            assert np.array_equal(a, b, equal_nan=True), f"{what}: argument {i} was modified in place"
    assert np.array_equal(laid_grad, grad_before), f"{what}: the upstream gradient was modified in place"


def check_output_writes(op, impl, build, config, dtype):
    """An in-place module after the op (ReLU(inplace=True), Dropout(inplace=True)) writes into
    its output; a backward that reads that array (ctx holding y itself) would then be wrong."""
    arrays = _values(build, dtype)
    y0, _ = kernels.get(op, impl).forward(*_fresh(arrays), **config())
    grad_y = _grad_like(np.asarray(y0), 1)
    expected = _run(op, impl, _fresh(arrays), grad_y, config())
    actual = _run(op, impl, _fresh(arrays), grad_y, config(), scribble=True)
    for i, (a, e) in enumerate(zip(actual[1:], expected[1:], strict=True)):
        assert _same(a, e), f"{op} {impl} {np.dtype(dtype)}: grad of argument {i} changed after writing into y"


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize(("layout", "readonly"), LAYOUT_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("op", "impl", "build", "config", "running"), CASES)
def test_layout_gives_the_c_order_result_and_leaves_the_callers_arrays_alone(
    op, impl, build, config, running, dtype, layout, readonly, which
):
    check_layout(op, impl, build, config, running, dtype, layout, readonly, which)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("op", "impl", "build", "config", "running"), CASES)
def test_writing_into_the_output_leaves_the_gradients_alone(op, impl, build, config, running, dtype):
    check_output_writes(op, impl, build, config, dtype)
