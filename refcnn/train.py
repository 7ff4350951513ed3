"""The training loop the CLI, the examples and the parity run share.

One step is the DESIGN §2 sequence: forward, loss, ``zero_grad``, ``model.backward(
criterion.backward())``, ``opt.step()``, except that the first layer is told not to
compute dL/dx of the images, which nothing uses (``input_grad=False``). Batches come in a seeded order, so a run is
reproducible from its seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from . import nn
from .data import batches
from .nn.module import backward_params


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def train_step(
    model: nn.Module, criterion: nn.CrossEntropyLoss, opt: Any, x: np.ndarray, y: np.ndarray
) -> tuple[float, int]:
    """One optimisation step on a batch: returns (loss, number of correct predictions)."""
    logits = model(x)
    loss = criterion(logits, y)
    opt.zero_grad()
    backward_params(model, criterion.backward())  # dL/dx of the images is never needed
    opt.step()
    return float(loss), int((logits.argmax(axis=1) == y).sum())


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and predictions on (x, y) in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    total, preds = 0.0, []
    for xb, yb in batches(x, y, batch_size):
        logits = model(xb)
        total += float(criterion(logits, yb))
        preds.append(logits.argmax(axis=1))
    model.train(was_training)
    predictions = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    return total / max(len(y), 1), float((predictions == y).mean()) if len(y) else float("nan"), predictions


def fit(
    model: nn.Module,
    opt: Any,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    generator: np.random.Generator,
    progress: bool = True,
    on_epoch: Callable[[EpochStats], None] | None = None,
    scheduler: Any = None,
) -> list[EpochStats]:
    """Train for ``epochs`` epochs (shuffled, seeded batches), evaluating on ``test`` after each.

    A tqdm bar shows the running loss and accuracy; ``on_epoch`` receives each epoch's stats.
    """
    criterion = nn.CrossEntropyLoss()
    x_train, y_train = train
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        steps = -(-len(y_train) // batch_size)
        bar = tqdm(
            batches(x_train, y_train, batch_size, shuffle=True, generator=generator),
            total=steps, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False,
        )  # fmt: skip
        for xb, yb in bar:
            loss, right = train_step(model, criterion, opt, xb, yb)
            loss_sum += loss * len(yb)
            correct += right
            seen += len(yb)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        if scheduler is not None:
            scheduler.step()
        seconds = time.perf_counter() - start
        test_loss, test_acc, _ = evaluate(model, *test)
        stats = EpochStats(epoch, loss_sum / seen, correct / seen, test_loss, test_acc, seconds)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return history
