"""Hazard values through the kernels: signed zeros, inf and nan propagated as PyTorch does.

Each test pins a defect the conformance suite's hazard axis found (conformance/hazards.py);
the expected values are hand-derived (PyTorch's semantics written out in the comment).
"""

from __future__ import annotations

import numpy as np
import pytest

from refcnn import kernels

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


@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_max_pool_zero_window_keeps_the_first_zeros_sign(impl, dtype):
    # fast gave +0.0 for a window whose first maximum is -0.0 (np.maximum picks either zero)
    rng = np.random.default_rng(3)
    x = rng.choice(np.array([-0.0, 0.0, -1.5], dtype), size=(2, 3, 7, 9))
    k, s = (3, 2), (2, 1)
    y, _ = kernels.get("max_pool2d", impl).forward(x, kernel_size=k, stride=s, padding=(0, 0), dilation=(1, 1),
                                                   ceil_mode=False)  # fmt: skip
    assert _same(y, _first_max_pool(x, k, s))


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
