"""The original notebook's from-scratch CNN, loops and bugs preserved: the baseline refcnn fixes.

Kept only so that ``examples/notebook_fixed.py`` and ``python -m refcnn bench`` can run the
notebook's experiment as it was written and show what changed. Do not build on it.

The network: Conv2D(1 -> 8, 3x3) -> ReLU -> MaxPool2D(2) -> Flatten -> Linear(-> 10),
softmax cross-entropy, plain SGD, batches of 20 from the first 1,000 MNIST training images.
Its bugs, each fixed in ``refcnn.models.SimpleCNN``:

1. ``Conv2D.backward`` computes the input gradient but returns nothing, so no layer before
   it could ever learn (harmless only because the conv is the first layer).
2. ``Linear`` scales its initial weights by ``sqrt(2 / out_features)`` (the fan *out*, 10)
   instead of ``1 / sqrt(in_features)``: the weights are ~30x too large, so the first loss
   is about 18 instead of ln(10) = 2.3 and SGD spends its first epochs recovering.
3. The notebook passed its one ``stride`` variable (1, meant for the conv) to the pool too,
   so ``MaxPool2D(2)`` slid with stride 1: 25x25 overlapping windows instead of 13x13, and
   a Linear of 8*25*25 = 5000 inputs instead of 1352.
4. Every layer loops over batch items and pixels in Python: seconds per batch of 20.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Conv2D:
    def __init__(self, in_channels, out_channels, kernel_size, stride, rng):
        self.k, self.stride = kernel_size, stride
        self.W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        self.x = x
        N, _C, H, W = x.shape
        F, k, s = self.W.shape[0], self.k, self.stride
        Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
        out = np.zeros((N, F, Ho, Wo))
        for n in range(N):
            for f in range(F):
                for i in range(Ho):
                    for j in range(Wo):
                        region = x[n, :, i * s : i * s + k, j * s : j * s + k]
                        out[n, f, i, j] = np.sum(region * self.W[f]) + self.b[f]
        return out

    def backward(self, dout, lr):
        x, k, s = self.x, self.k, self.stride
        N, F, Ho, Wo = dout.shape
        dW, db, dx = np.zeros_like(self.W), np.zeros_like(self.b), np.zeros_like(x)
        for n in range(N):
            for f in range(F):
                for i in range(Ho):
                    for j in range(Wo):
                        region = x[n, :, i * s : i * s + k, j * s : j * s + k]
                        dW[f] += dout[n, f, i, j] * region
                        db[f] += dout[n, f, i, j]
                        dx[n, :, i * s : i * s + k, j * s : j * s + k] += dout[n, f, i, j] * self.W[f]
        self.W -= lr * dW
        self.b -= lr * db
        # bug 1: dx is never returned


class ReLU:
    def forward(self, x):
        self.x = x
        return np.maximum(0, x)

    def backward(self, dout, lr):
        return dout * (self.x > 0)


class MaxPool2D:
    def __init__(self, size, stride):
        self.size, self.stride = size, stride

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        p, s = self.size, self.stride
        Ho, Wo = (H - p) // s + 1, (W - p) // s + 1
        out = np.zeros((N, C, Ho, Wo))
        for n in range(N):
            for c in range(C):
                for i in range(Ho):
                    for j in range(Wo):
                        out[n, c, i, j] = np.max(x[n, c, i * s : i * s + p, j * s : j * s + p])
        return out

    def backward(self, dout, lr):
        x, p, s = self.x, self.size, self.stride
        N, C, Ho, Wo = dout.shape
        dx = np.zeros_like(x)
        for n in range(N):
            for c in range(C):
                for i in range(Ho):
                    for j in range(Wo):
                        window = x[n, c, i * s : i * s + p, j * s : j * s + p]
                        a, b = np.unravel_index(np.argmax(window), window.shape)
                        dx[n, c, i * s + a, j * s + b] += dout[n, c, i, j]
        return dx


class Flatten:
    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, lr):
        return dout.reshape(self.shape)


class Linear:
    def __init__(self, in_features, out_features, rng):
        self.W = rng.standard_normal((in_features, out_features)) * np.sqrt(2.0 / out_features)  # bug 2
        self.b = np.zeros(out_features)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout, lr):
        dx = dout @ self.W.T
        self.W -= lr * self.x.T @ dout
        self.b -= lr * dout.sum(axis=0)
        return dx


def softmax_cross_entropy(logits, labels):
    """Mean loss over the batch and its gradient w.r.t. the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -np.log(probs[np.arange(n), labels] + 1e-12).mean()
    grad = probs.copy()
    grad[np.arange(n), labels] -= 1
    return loss, grad / n


class NotebookCNN:
    """The notebook's network, exactly as it was built (one ``stride`` for conv and pool)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        stride = 1
        self.layers: list[Any] = [
            Conv2D(1, 8, 3, stride, rng),
            ReLU(),
            MaxPool2D(2, stride),  # bug 3: the pool gets the conv's stride of 1
            Flatten(),
            Linear(8 * 25 * 25, 10, rng),
        ]

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def train_step(self, x, y, lr):
        """One plain-SGD step on a batch; returns the batch loss."""
        loss, grad = softmax_cross_entropy(self.forward(x), y)
        for layer in reversed(self.layers):
            grad = layer.backward(grad, lr)
        return loss

    def predict(self, x):
        return self.forward(x).argmax(axis=1)
