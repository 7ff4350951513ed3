"""The notebook's experiment, run as the notebook wrote it and then with refcnn, side by side.

Setting: the first 1,000 MNIST training images, batches of 20, tested on the 1,000 test
images bundled with refcnn. The notebook's network (``refcnn.notebook``, bugs and loops
kept) trains with plain SGD as it did; it takes seconds per batch, so it runs for
``--notebook-epochs`` (1 by default). refcnn's ``SimpleCNN`` (the same network, fixed)
trains for ``--epochs`` (15) with SGD(lr=0.05, momentum=0.9).

    python examples/notebook_fixed.py [--notebook-epochs 1] [--epochs 15] [--data DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import refcnn
from refcnn import models, nn, optim
from refcnn.data import batches, load_mnist, sample_dir
from refcnn.notebook import NotebookCNN
from refcnn.train import evaluate, train_step


def run_notebook(x, y, x_test, y_test, epochs: int, lr: float, seed: int) -> tuple[float, float, float]:
    """Train the original loops; returns (test accuracy, seconds per epoch, first loss)."""
    net = NotebookCNN(seed)
    x, x_test = x.astype(np.float64), x_test.astype(np.float64)
    first_loss, start = None, time.perf_counter()
    for _ in range(epochs):
        for i in range(0, len(y), 20):
            loss = net.train_step(x[i : i + 20], y[i : i + 20], lr)
            first_loss = loss if first_loss is None else first_loss
            print(f"\r  notebook: batch {i // 20 + 1}/{len(y) // 20}  loss {loss:.3f}", end="", flush=True)
    print()
    per_epoch = (time.perf_counter() - start) / epochs
    predictions = np.concatenate([net.predict(x_test[i : i + 100]) for i in range(0, len(y_test), 100)])
    return float((predictions == y_test).mean()), per_epoch, float(first_loss)


def run_refcnn(x, y, x_test, y_test, epochs: int, seed: int) -> tuple[float, float, float]:
    """Train SimpleCNN in the notebook's setting; returns (test accuracy, s/epoch, first loss)."""
    generator = refcnn.manual_seed(seed)
    model = models.SimpleCNN()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    first_loss, start = None, time.perf_counter()
    for epoch in range(epochs):
        for xb, yb in batches(x, y, 20, shuffle=True, generator=generator):
            loss, _ = train_step(model, criterion, opt, xb, yb)
            first_loss = loss if first_loss is None else first_loss
        print(f"  refcnn: epoch {epoch + 1}/{epochs}  last loss {loss:.4f}", flush=True)
    per_epoch = (time.perf_counter() - start) / epochs
    _, accuracy, _ = evaluate(model, x_test, y_test)
    return accuracy, per_epoch, float(first_loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook-epochs", type=int, default=1)
    parser.add_argument("--notebook-lr", type=float, default=0.05, help="the notebook's plain-SGD step")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--data", type=Path, default=None, help="MNIST directory (default: the bundled sample)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = args.data or sample_dir()
    x, y = load_mnist(root, train=True)
    x_test, y_test = load_mnist(sample_dir(), train=False)
    x, y = x[:1000], y[:1000]

    print(f"notebook loops: {args.notebook_epochs} epoch(s) on {len(y)} images, batch 20")
    nb_acc, nb_time, nb_first = run_notebook(x, y, x_test, y_test, args.notebook_epochs, args.notebook_lr, args.seed)
    print(f"refcnn SimpleCNN: {args.epochs} epochs on {len(y)} images, batch 20, SGD(0.05, momentum 0.9)")
    rc_acc, rc_time, rc_first = run_refcnn(x, y, x_test, y_test, args.epochs, args.seed)

    print()
    print(f"{'':24}{'notebook':>14}{'refcnn':>14}")
    print(f"{'epochs':24}{args.notebook_epochs:>14}{args.epochs:>14}")
    print(f"{'first batch loss':24}{nb_first:>14.3f}{rc_first:>14.3f}")
    print(f"{'test accuracy':24}{nb_acc:>14.4f}{rc_acc:>14.4f}")
    print(f"{'seconds per epoch':24}{nb_time:>14.2f}{rc_time:>14.3f}")
    print(f"{'speed-up per epoch':24}{'':>14}{nb_time / rc_time:>13.0f}x")


if __name__ == "__main__":
    main()
