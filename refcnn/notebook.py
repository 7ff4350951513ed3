"""The original notebook's from-scratch CNN, loops and bugs preserved: the baseline refcnn fixes.

Kept so that ``examples/notebook_fixed.py`` and ``python -m refcnn bench`` can run the
notebook's experiment as it was written, and so that ``examples/check_your_layers.ipynb``
can check its layer classes against PyTorch. Do not build on it.

The notebook's protocol: a layer's ``forward(X)`` keeps what its backward needs;
``backward(dout)`` stores the parameter gradients in ``dW`` and ``db`` (next to the
parameters ``W`` and ``b``) and returns the gradient with respect to its input. The
optimiser step is separate (:func:`sgd_step`: ``W -= lr * dW``).

The network: Conv2D(1 -> 8, 3x3) -> Relu -> MaxPool2D(2) -> Flatten -> Linear(-> 10),
softmax cross-entropy, plain SGD, batches of 20 from the first 1,000 MNIST training images.
Its bugs, each fixed in ``refcnn.models.SimpleCNN`` and found by the conformance suite
(``conformance.layers.register_layer``) where a layer is wrong:

1. ``Conv2D.backward`` computes the input gradient but returns nothing, so no layer before
   it could ever learn (harmless here only because the conv is the first layer).
2. ``MaxPool2D`` writes its output into ``np.zeros(shape)``: float64 whatever the input's
   dtype, so a float32 network silently becomes float64 after the first pool.
3. ``SoftMaxCrossEntropy`` adds 1e-10 inside the log (``-log(p[y] + 1e-10)``) to dodge
   log(0): every loss is off by about 1e-10 / p[y], and a confident wrong answer (p[y]
   below 1e-10) costs at most 23 instead of its true, larger value.
4. ``Linear`` scales its initial weights by ``sqrt(2 / output_dim)`` (the fan *out*, 10)
   instead of ``1 / sqrt(input_dim)``: the weights are ~30x too large, so the first loss
   is about 18 instead of ln(10) = 2.3 and SGD spends its first epochs recovering.
5. The notebook passed its one ``stride`` variable (1, meant for the conv) to the pool too,
   so ``MaxPool2D(2)`` slid with stride 1: 25x25 overlapping windows instead of 13x13, and
   a Linear of 8*25*25 = 5000 inputs instead of 1352.
6. Every layer loops over batch items and pixels in Python: seconds per batch of 20.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Conv2D:
    """Square kernel, one int stride and padding; cross-correlation as loops."""

    def __init__(self, C_in, C_out, kernel_size, stride=1, padding=0, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        self.k, self.stride, self.padding = kernel_size, stride, padding
        self.W = rng.standard_normal((C_out, C_in, kernel_size, kernel_size)) * 0.1
        self.b = np.zeros(C_out)

    def forward(self, X):
        p = self.padding
        self.X = np.pad(X, ((0, 0), (0, 0), (p, p), (p, p)))
        N, _, H, W = self.X.shape
        F, k, s = self.W.shape[0], self.k, self.stride
        H_out, W_out = (H - k) // s + 1, (W - k) // s + 1
        out = np.zeros((N, F, H_out, W_out), dtype=np.result_type(X, self.W))
        for n in range(N):
            for f in range(F):
                for i in range(H_out):
                    for j in range(W_out):
                        region = self.X[n, :, i * s : i * s + k, j * s : j * s + k]
                        out[n, f, i, j] = np.sum(region * self.W[f]) + self.b[f]
        return out

    def backward(self, dout):
        X, k, s, p = self.X, self.k, self.stride, self.padding
        N, F, H_out, W_out = dout.shape
        self.dW, self.db, dX = np.zeros_like(self.W), np.zeros_like(self.b), np.zeros_like(X)
        for n in range(N):
            for f in range(F):
                for i in range(H_out):
                    for j in range(W_out):
                        region = X[n, :, i * s : i * s + k, j * s : j * s + k]
                        self.dW[f] += dout[n, f, i, j] * region
                        self.db[f] += dout[n, f, i, j]
                        dX[n, :, i * s : i * s + k, j * s : j * s + k] += dout[n, f, i, j] * self.W[f]
        dX = dX[:, :, p : dX.shape[2] - p, p : dX.shape[3] - p]
        # bug 1: dX is never returned


class Relu:
    def forward(self, X):
        self.mask = X > 0
        return X * self.mask

    def backward(self, dout):
        return dout * self.mask


class MaxPool2D:
    """Windows of pool_size x pool_size every stride pixels; each window's argmax is kept."""

    def __init__(self, pool_size, stride):
        self.pool_size, self.stride = pool_size, stride

    def forward(self, X):
        self.X = X
        N, C, H, W = X.shape
        p, s = self.pool_size, self.stride
        H_out, W_out = (H - p) // s + 1, (W - p) // s + 1
        out = np.zeros((N, C, H_out, W_out))  # bug 2: float64, whatever X's dtype
        self.argmax = {}
        for n in range(N):
            for c in range(C):
                for i in range(H_out):
                    for j in range(W_out):
                        window = X[n, c, i * s : i * s + p, j * s : j * s + p]
                        a, b = np.unravel_index(np.argmax(window), window.shape)
                        self.argmax[(n, c, i, j)] = (i * s + a, j * s + b)
                        out[n, c, i, j] = window[a, b]
        return out

    def backward(self, dout):
        dX = np.zeros_like(self.X)
        for (n, c, i, j), (h, w) in self.argmax.items():
            dX[n, c, h, w] += dout[n, c, i, j]
        return dX


class Flatten:
    def forward(self, X):
        self.shape = X.shape
        return X.reshape(X.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.shape)


class Linear:
    """Y = X @ W + b with W stored as (input_dim, output_dim)."""

    def __init__(self, input_dim, output_dim, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        self.W = rng.standard_normal((input_dim, output_dim)) * np.sqrt(2.0 / output_dim)  # bug 4
        self.b = np.zeros(output_dim)

    def forward(self, X):
        self.X = X
        return X @ self.W + self.b

    def backward(self, dout):
        self.dW = self.X.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class SoftMaxCrossEntropy:
    """Mean cross-entropy of softmax(X) against integer labels y."""

    def forward(self, X, y):
        shifted = X - X.max(axis=1, keepdims=True)
        self.probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        self.y = y
        N = X.shape[0]
        loss = np.mean(-np.log(self.probs[np.arange(N), y] + 1e-10))  # bug 3
        return loss, self.probs

    def backward(self, y=None):
        y = self.y if y is None else y
        N = self.probs.shape[0]
        onehot = np.zeros_like(self.probs)
        onehot[np.arange(N), y] = 1
        return (self.probs - onehot) / N


def sgd_step(layers, lr):
    """The notebook's optimiser, separate from backward: W -= lr * dW, b -= lr * db."""
    for layer in layers:
        if hasattr(layer, "dW"):
            layer.W -= lr * layer.dW
            layer.b -= lr * layer.db


class NotebookCNN:
    """The notebook's network, exactly as it was built (one ``stride`` for conv and pool)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        stride = 1
        self.layers: list[Any] = [
            Conv2D(1, 8, 3, stride, rng=rng),
            Relu(),
            MaxPool2D(2, stride),  # bug 5: the pool gets the conv's stride of 1
            Flatten(),
            Linear(8 * 25 * 25, 10, rng=rng),
        ]
        self.loss = SoftMaxCrossEntropy()

    def forward(self, X):
        for layer in self.layers:
            X = layer.forward(X)
        return X

    def train_step(self, X, y, lr):
        """One plain-SGD step on a batch (backward, then the separate step); returns the batch loss."""
        loss, _ = self.loss.forward(self.forward(X), y)
        grad = self.loss.backward()
        for layer in reversed(self.layers):
            grad = layer.backward(grad)  # the conv, first, returns None (bug 1): nothing needs it
        sgd_step(self.layers, lr)
        return loss

    def predict(self, X):
        return self.forward(X).argmax(axis=1)
