"""Hazard values through the kernels: signed zeros, inf and nan propagated as PyTorch does.

Each test pins a defect the conformance suite's hazard axis found (conformance/hazards.py);
the expected values are hand-derived (PyTorch's semantics written out in the comment).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_layouts import LAYOUTS

from refcnn import kernels, nn
from refcnn.kernels.pool import _has_negative_zero

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def _same(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Equal element for element, nan for nan and the sign of every zero included."""
    a, e = np.asarray(actual), np.asarray(expected, dtype=np.asarray(actual).dtype)
    return a.shape == e.shape and a.tobytes() == e.tobytes()


# ---- relu: PyTorch's clamp_min keeps x where not x < 0, so -0.0 stays -0.0 -------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [1, 5, 64], ids=["n1", "n5", "n64"])  # the scalar and the vector loops
def test_relu_keeps_negative_zero(dtype, n):
    # relu(-0.0) gave +0.0 (np.maximum's choice between two equal zeros); PyTorch gives -0.0
    x = np.resize(np.array([-0.0, 0.0, -3.0, 2.5, np.nan, -np.inf, np.inf], dtype), n)
    y, _ = kernels.get("relu").forward(x)
    expected = np.where(np.isnan(x) | ~(x < 0), x, 0.0).astype(dtype)  # 0 where x < 0, else x (nan too)
    assert _same(y, expected), (y, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_relu_negative_zero_0d_and_strided(dtype):
    # a 0-D input stays 0-D, a reversed view is read by value, not by memory order
    y, _ = kernels.get("relu").forward(np.array(-0.0, dtype))
    assert y.shape == () and np.signbit(y)
    x = np.array([[-0.0, 1.0, -2.0], [0.0, -0.0, 3.0]], dtype)[::-1, ::2]
    y, _ = kernels.get("relu").forward(x)
    assert _same(y, np.array([[0.0, 3.0], [-0.0, 0.0]], dtype))


# ---- max_pool2d: the window's first maximum, its sign included ----------------------------------
def _first_max_pool(x, k, s):
    """PyTorch's scan written out: a later element replaces the maximum only if greater (or nan)."""
    N, C, H, W = x.shape
    Ho, Wo = (H - k[0]) // s[0] + 1, (W - k[1]) // s[1] + 1
    y = np.empty((N, C, Ho, Wo), x.dtype)
    for n, c, i, j in np.ndindex(N, C, Ho, Wo):
        best = None
        for p, q in np.ndindex(*k):
            v = x[n, c, i * s[0] + p, j * s[1] + q]
            if best is None or v > best or np.isnan(v):
                best = v
        y[n, c, i, j] = best
    return y


@pytest.mark.parametrize("layout", ["C", *LAYOUTS])
@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_max_pool_zero_window_keeps_the_first_zeros_sign(impl, dtype, layout):
    # fast gave +0.0 for a window whose first maximum is -0.0 (np.maximum picks either zero)
    rng = np.random.default_rng(3)
    x = rng.choice(np.array([-0.0, 0.0, -1.5], dtype), size=(2, 3, 7, 9))
    x = x if layout == "C" else LAYOUTS[layout](x)
    k, s = (3, 2), (2, 1)
    y, _ = kernels.get("max_pool2d", impl).forward(x, kernel_size=k, stride=s, padding=(0, 0), dilation=(1, 1),
                                                   ceil_mode=False)  # fmt: skip
    assert _same(y, _first_max_pool(x, k, s))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, -0.0, 2.0], True),
        ([-0.0], True),
        # the floats whose bits come nearest -0.0's: the smallest negative subnormal, -nan, -inf
        ([0.0, "-tiny", -np.nan, -np.inf, -3.0], False),
        ([], False),
    ],
    ids=["one-among-others", "alone", "none-near-it", "empty"],
)
def test_max_pool_finds_negative_zero_for_its_zero_sign_pass(dtype, values, expected):
    # the fast max pool reads zeros back from their window only when the input holds a -0.0:
    # a missed -0.0 gives a wrong sign (the test above), a false one costs a gather per call
    tiny = np.nextafter(dtype(-0.0), dtype(-1))
    x = np.array([tiny if v == "-tiny" else v for v in values], dtype)
    assert _has_negative_zero(x) == expected, (values, dtype)
    assert _has_negative_zero(np.tile(x, (3, 2)).T[::-1]) == expected, "a transposed, flipped view"


# ---- nan and inf are computed silently, as PyTorch does -----------------------------------------
@pytest.mark.parametrize(
    ("op", "arrays", "config"),
    [
        ("linear", (np.array([[np.inf, 1.0, -2.0], [0.5, 0.0, 1.0]]), np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 3.0]]),
                    None), {}),
        ("leaky_relu", (np.array([np.inf, -np.inf, np.nan, -1.0]),), {"negative_slope": 0.0}),
        ("conv2d", (np.full((1, 1, 2, 3), np.inf) * np.array([1, -1, 1]), np.ones((1, 1, 1, 2)), None),
         {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}),
    ],
    ids=["linear-inf", "leaky_relu-inf-nan", "conv2d-inf-minus-inf"],
)  # fmt: skip
def test_nonfinite_inputs_raise_no_runtime_warning(op, arrays, config, recwarn):
    # inf * 0 and inf - inf gave RuntimeWarnings ("invalid value encountered in matmul"), an
    # exception under warnings-as-errors; PyTorch returns nan silently
    kernel = kernels.get(op)
    y, ctx = kernel.forward(*arrays, **config)
    kernel.backward(np.ones_like(y), ctx)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert np.isnan(y).any()


# ---- finite inputs past the dtype's range overflow to inf silently, as PyTorch does -------------
def _near_max(dtype, *shape):
    """Values of either sign within a factor 10 of the dtype's maximum: their sums overflow."""
    rng = np.random.default_rng(sum(shape))
    big = np.finfo(dtype).max / 10
    return (rng.uniform(1.0, 10.0, shape) * rng.choice([-1, 1], shape) * big).astype(dtype)


OVERFLOWING = {
    "conv2d": lambda dt: nn.Conv2d(2, 3, (3, 5), stride=(2, 1), padding=1, dtype=dt),
    "conv_transpose2d": lambda dt: nn.ConvTranspose2d(2, 3, (3, 5), stride=(2, 1), dtype=dt),
    "avg_pool2d": lambda dt: nn.AvgPool2d((2, 3)),
    "adaptive_avg_pool2d": lambda dt: nn.AdaptiveAvgPool2d((2, 3)),
    "adaptive_max_pool2d": lambda dt: nn.AdaptiveMaxPool2d((2, 3)),
    "batch_norm": lambda dt: nn.BatchNorm2d(2, dtype=dt),
    "group_norm": lambda dt: nn.GroupNorm(1, 2, dtype=dt),
    "layer_norm": lambda dt: nn.LayerNorm((5, 7), dtype=dt),
    "dropout": lambda dt: nn.Dropout(0.5),
    "tanh": lambda dt: nn.Tanh(),
    "log_softmax": lambda dt: nn.LogSoftmax(1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(OVERFLOWING))
def test_overflow_past_the_dtype_range_raises_no_runtime_warning(name, dtype, recwarn):
    # a sum of values near float32's maximum, or a float64 result cast to float32, warned
    # ("overflow encountered in reduce/matmul/cast"); PyTorch returns inf silently
    m = OVERFLOWING[name](dtype)
    x = _near_max(dtype, 3, 2, 5, 7)
    recwarn.clear()
    y = m(x)
    m.backward(_near_max(dtype, *y.shape))
    assert not [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)], name


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "loss",
    [
        lambda dt: nn.CrossEntropyLoss(weight=np.full(5, np.finfo(dt).max, dt), label_smoothing=0.1),
        lambda dt: nn.BCELoss(weight=np.full(5, np.finfo(dt).max, dt)),
    ],
    ids=["cross_entropy-weighted-smoothed", "binary_cross_entropy-weighted"],
)
def test_loss_overflow_raises_no_runtime_warning(loss, dtype, recwarn):
    m = loss(dtype)
    rng = np.random.default_rng(0)
    if isinstance(m, nn.CrossEntropyLoss):
        x, t = _near_max(dtype, 4, 5), np.array([0, 1, 2, 4])
    else:
        x, t = rng.random((4, 5)).astype(dtype), rng.random((4, 5)).astype(dtype)
    recwarn.clear()
    m(x, t)
    m.backward(np.asarray(np.finfo(dtype).max, dtype))
    assert not [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)]
