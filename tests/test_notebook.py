"""refcnn.notebook: the original notebook's layer protocol, with its bugs kept on purpose.

The protocol (W, b; backward(dout) sets dW, db and returns the input gradient; a separate
SGD step) is what conformance/test_layers.py checks against PyTorch through
``register_layer``; here it is checked against refcnn's own kernels, without PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

from refcnn import kernels, testing
from refcnn import notebook as nb


def _rng() -> np.random.Generator:
    return np.random.default_rng(12)


@pytest.mark.parametrize("k, s, p", [(3, 2, 1), (2, 1, 0)], ids=["k3-s2-p1", "k2-s1-p0"])
def test_conv2d_matches_the_reference_kernel_and_keeps_its_missing_return(k: int, s: int, p: int) -> None:
    rng = _rng()
    conv = nb.Conv2D(2, 3, k, stride=s, padding=p, rng=rng)
    conv.b = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 7, 5))  # H != W
    y = conv.forward(x)
    kernel = kernels.get("conv2d", "reference")
    cfg = {"stride": (s, s), "padding": (p, p), "dilation": (1, 1), "groups": 1}
    y_ref, ctx = kernel.forward(x, conv.W, conv.b, **cfg)
    S_y, ctx_abs = kernel.forward(np.abs(x), np.abs(conv.W), np.abs(conv.b), **cfg)
    testing.assert_close(y, y_ref, 2 * k * k + 1, S_y, np.float64, "forward")
    g = rng.standard_normal(y.shape)
    _, gw, gb = kernel.backward(g, ctx)
    _, S_w, S_b = kernel.backward(np.abs(g), ctx_abs)
    assert conv.backward(g) is None  # bug 1, kept: dX is computed and never returned
    rows = y.shape[0] * y.shape[2] * y.shape[3]
    testing.assert_close(conv.dW, gw, rows, S_w, np.float64, "dW")
    testing.assert_close(conv.db, gb, rows, S_b, np.float64, "db")


def test_maxpool_routes_the_gradient_to_each_windows_argmax_and_outputs_float64() -> None:
    x = np.array([[[[1.0, 5.0, 2.0], [4.0, 3.0, 0.0]]]], dtype=np.float32)  # (1, 1, 2, 3)
    pool = nb.MaxPool2D(2, 1)
    y = pool.forward(x)
    assert y.dtype == np.float64  # bug 2, kept: np.zeros(shape) is float64 whatever x is
    np.testing.assert_array_equal(y, [[[[5.0, 5.0]]]])
    assert pool.argmax == {(0, 0, 0, 0): (0, 1), (0, 0, 0, 1): (0, 1)}
    dx = pool.backward(np.array([[[[1.0, 2.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]]])  # overlapping windows add up


def test_linear_keeps_W_as_in_out_and_returns_the_input_gradient() -> None:
    rng = _rng()
    lin = nb.Linear(5, 3, rng=rng)
    assert lin.W.shape == (5, 3) and lin.b.shape == (3,)
    x, g = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(lin.forward(x), x @ lin.W + lin.b)
    dx = lin.backward(g)
    np.testing.assert_allclose(dx, g @ lin.W.T)
    np.testing.assert_allclose(lin.dW, x.T @ g)
    np.testing.assert_allclose(lin.db, g.sum(axis=0))


def test_relu_keeps_a_mask() -> None:
    x = np.array([[-1.0, 0.0, 2.0]])
    relu = nb.Relu()
    np.testing.assert_array_equal(relu.forward(x), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.mask, [[False, False, True]])
    np.testing.assert_array_equal(relu.backward(np.array([[3.0, 4.0, 5.0]])), [[0.0, 0.0, 5.0]])


def test_softmax_cross_entropy_adds_1e_10_inside_the_log() -> None:
    X = np.array([[0.0, 800.0], [1.0, 2.0]])  # row 0: p = 1 exactly for class 1
    y = np.array([1, 0])
    ce = nb.SoftMaxCrossEntropy()
    loss, probs = ce.forward(X, y)
    p10 = probs[1, 0]
    assert loss == pytest.approx((-np.log(1 + 1e-10) - np.log(p10 + 1e-10)) / 2, rel=1e-15)  # bug 3, kept
    onehot = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(ce.backward(), (probs - onehot) / 2)
    np.testing.assert_allclose(ce.backward(y), ce.backward())


def test_backward_leaves_the_step_to_sgd_step() -> None:
    rng = _rng()
    lin = nb.Linear(3, 2, rng=rng)
    W0 = lin.W.copy()
    lin.forward(rng.standard_normal((2, 3)))
    lin.backward(rng.standard_normal((2, 2)))
    np.testing.assert_array_equal(lin.W, W0)
    nb.sgd_step([nb.Relu(), lin], lr=0.5)
    np.testing.assert_allclose(lin.W, W0 - 0.5 * lin.dW)


def test_notebook_cnn_train_step_returns_the_batch_loss_and_updates_the_weights() -> None:
    net = nb.NotebookCNN(seed=0)
    x = _rng().uniform(0, 1, (2, 1, 28, 28))
    W0 = net.layers[0].W.copy()
    loss = net.train_step(x, np.array([3, 7]), 0.01)
    assert np.isfinite(loss) and loss > 0
    assert not np.array_equal(net.layers[0].W, W0)
    assert net.predict(x).shape == (2,)
