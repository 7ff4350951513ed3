"""Modules in chains: what one module checked alone cannot show, found by the conformance
suite's chain specs (conformance/specs/chains.py). Expected values are hand-derived.

- A 0-D input through Dropout in training came back as a NumPy scalar (``x * noise`` of two
  0-D arrays), not an array: the next module (another Dropout, Dropout(inplace=True))
  rejected it, where PyTorch computes the chain.
"""

import numpy as np
import pytest

import refcnn
from refcnn import kernels, nn

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]


@pytest.mark.parametrize("training", [pytest.param(True, id="training"), pytest.param(False, id="eval")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernel_returns_arrays_for_a_0d_input(dtype, training):
    x = np.array(1.5, dtype)
    y, ctx = kernels.get("dropout").forward(x, p=0.5, training=training, generator=np.random.default_rng(3))
    assert type(y) is np.ndarray and y.dtype == dtype and y.shape == (), type(y)
    (gx,) = kernels.get("dropout").backward(np.array(2.0, dtype), ctx)
    assert type(gx) is np.ndarray and gx.dtype == dtype and gx.shape == (), type(gx)
    assert float(gx) == 2.0 * float(y) / 1.5  # dL/dx = g * noise, y = x * noise


@pytest.mark.parametrize("inplace", [pytest.param(False, id="then-dropout"), pytest.param(True, id="then-inplace")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_then_dropout_on_a_0d_input(dtype, inplace):
    refcnn.manual_seed(0)
    first, second = nn.Dropout(0.5), nn.Dropout(0.5, inplace=inplace)
    x = np.array(1.5, dtype)
    y = second(first(x))
    assert type(y) is np.ndarray and y.shape == () and y.dtype == dtype
    # each kept value is scaled by 1/(1 - p) = 2, so y is 0, or 1.5 * 4 when both kept
    assert float(y) in (0.0, 6.0)
    gx = first.backward(second.backward(np.array(0.25, dtype)))
    assert type(gx) is np.ndarray and gx.dtype == dtype
    assert float(gx) == float(y) / 6  # 0.25 * n1 * n2, y = 1.5 * n1 * n2
