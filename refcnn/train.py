"""The training loop the CLI, the examples and the parity run share, and runs that resume.

One step is the sequence of the README's API tour: forward, loss, ``zero_grad``,
``model.backward(criterion.backward())``, ``opt.step()``, except that the first layer is told
not to compute dL/dx of the images, which nothing uses (``input_grad=False``). Batches come in
a seeded order, so a run is reproducible from its seed.

:class:`Training` is a run that can stop after any step and continue exactly: its
``state_dict()`` holds the model's, the optimizer's and the scheduler's state, the epochs
done, the position within the epoch under way (that epoch's order of the images and the
steps taken), the running sums of its loss and accuracy, the history, and the state of the
random generators (shuffling and dropout). A run stopped anywhere and resumed from that
state gives the same weights, bit for bit, as a run never stopped.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from . import nn
from ._grad_mode import no_grad
from ._random import default_generator
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
    """Mean cross-entropy, accuracy and predictions on (x, y) in eval mode (the mode is restored),
    under ``no_grad``: the forwards keep nothing for a backward that will not come."""
    was_training = model.training
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    total, preds = 0.0, []
    with no_grad():
        for xb, yb in batches(x, y, batch_size):
            logits = model(xb)
            total += float(criterion(logits, yb))
            preds.append(logits.argmax(axis=1))
    model.train(was_training)
    predictions = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    return total / max(len(y), 1), float((predictions == y).mean()) if len(y) else float("nan"), predictions


class Training:
    """A training run: ``run()`` trains until the last epoch or until ``stop()`` says so
    (checked after every step), and ``state_dict()`` / ``load_state_dict()`` carry it over.

    Each epoch draws a permutation of the training images from ``generator`` when it starts
    (``generator.permutation(N)``, as :func:`refcnn.data.batches` with ``shuffle=True``),
    trains on consecutive batches of it, steps ``scheduler`` (if any) once, and evaluates on
    ``test``. Dropout draws from refcnn's generator (:func:`refcnn.default_generator`), whose
    state is saved too.
    """

    def __init__(
        self,
        model: nn.Module,
        opt: Any,
        train: tuple[np.ndarray, np.ndarray],
        test: tuple[np.ndarray, np.ndarray],
        *,
        epochs: int,
        batch_size: int,
        generator: np.random.Generator,
        scheduler: Any = None,
    ) -> None:
        self.model, self.opt, self.scheduler = model, opt, scheduler
        self.train, self.test = train, test
        self.epochs, self.batch_size, self.generator = epochs, batch_size, generator
        self.criterion = nn.CrossEntropyLoss()
        self.epoch = 0  # epochs done
        self.step = 0  # steps done in the epoch under way
        self.order: np.ndarray | None = None  # that epoch's order of the training images
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0  # that epoch's running sums
        self.seconds = 0.0  # that epoch's training time so far
        self.history: list[EpochStats] = []

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train[1]) // self.batch_size)

    @property
    def finished(self) -> bool:
        return self.epoch >= self.epochs

    def run(
        self,
        *,
        progress: bool = True,
        on_epoch: Callable[[EpochStats], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Train from where the run is; return True when every epoch is done, False when
        ``stop()`` returned True after a step (the run can continue from its state)."""
        x, y = self.train
        steps = self.steps_per_epoch
        while not self.finished:
            if self.order is None:
                self.order = self.generator.permutation(len(y))
                self.step, self.loss_sum, self.correct, self.seen, self.seconds = 0, 0.0, 0, 0, 0.0
            self.model.train()
            bar = tqdm(total=steps, initial=self.step, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                       disable=not progress, leave=False)  # fmt: skip
            with bar:
                while self.step < steps:
                    start = time.perf_counter()
                    idx = self.order[self.step * self.batch_size : (self.step + 1) * self.batch_size]
                    loss, right = train_step(self.model, self.criterion, self.opt, x[idx], y[idx])
                    self.loss_sum += loss * len(idx)
                    self.correct += right
                    self.seen += len(idx)
                    self.step += 1
                    self.seconds += time.perf_counter() - start
                    bar.update()
                    bar.set_postfix(loss=f"{self.loss_sum / self.seen:.4f}", acc=f"{self.correct / self.seen:.3f}")
                    if stop():
                        return False
            if self.scheduler is not None:
                self.scheduler.step()
            test_loss, test_acc, _ = evaluate(self.model, *self.test)
            stats = EpochStats(self.epoch + 1, self.loss_sum / self.seen, self.correct / self.seen, test_loss,
                               test_acc, self.seconds)  # fmt: skip
            self.history.append(stats)
            self.epoch, self.step, self.order = self.epoch + 1, 0, None
            if on_epoch is not None:
                on_epoch(stats)
            if stop() and not self.finished:
                return False
        return True

    # ---- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (arrays copied), for :func:`refcnn.io.save`."""
        rngs = {"shuffle": copy.deepcopy(self.generator.bit_generator.state),
                "refcnn": copy.deepcopy(default_generator().bit_generator.state)}  # fmt: skip
        return {
            "model": {k: v.copy() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "epoch": self.epoch,
            "step": self.step,
            "order": None if self.order is None else self.order.copy(),
            "running": {
                "loss_sum": self.loss_sum,
                "correct": self.correct,
                "seen": self.seen,
                "seconds": self.seconds,
            },
            "history": [s.as_dict() for s in self.history],
            "generators": rngs,
        }

    def load_state_dict(self, state: Any) -> None:
        """Continue the run saved by :meth:`state_dict`. Everything is checked first; if the
        model, the optimizer or the scheduler rejects its part, all three are put back as they
        were and the error is raised (ValueError, TypeError or KeyError): nothing half-loaded."""
        n = len(self.train[1])
        try:
            epoch, step, order = int(state["epoch"]), int(state["step"]), state["order"]
            if (state["epochs"], state["batch_size"]) != (self.epochs, self.batch_size):
                raise ValueError(
                    f"the state is of a run of {state['epochs']} epochs of batch size {state['batch_size']}, "
                    f"this one has {self.epochs} and {self.batch_size}"
                )
            if not 0 <= epoch <= self.epochs or not 0 <= step <= self.steps_per_epoch:
                raise ValueError(f"the state's position (epoch {epoch}, step {step}) is out of range")
            if order is not None and not (
                isinstance(order, np.ndarray) and order.shape == (n,) and np.array_equal(np.sort(order), np.arange(n))
            ):
                raise ValueError(f"the state's order of the images is no permutation of the {n} training images")
            if order is None and step:
                raise ValueError("the state has steps in an epoch without that epoch's order")
            running = state["running"]
            sums = (
                float(running["loss_sum"]),
                int(running["correct"]),
                int(running["seen"]),
                float(running["seconds"]),
            )
            history = [EpochStats(**h) for h in state["history"]]
            rngs = state["generators"]
            shuffle_bits = copy.deepcopy(self.generator.bit_generator)
            shuffle_bits.state = rngs["shuffle"]
            refcnn_bits = copy.deepcopy(default_generator().bit_generator)
            refcnn_bits.state = rngs["refcnn"]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a training state this run can continue: {type(err).__name__}: {err}") from err
        saved_model = {k: v.copy() for k, v in self.model.state_dict().items()}
        saved_opt = self.opt.state_dict()
        saved_sched = None if self.scheduler is None else self.scheduler.state_dict()
        try:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            if (self.scheduler is None) != (state["scheduler"] is None):
                raise ValueError("the state's scheduler does not match this run's (one has none)")
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        except Exception:
            self.model.load_state_dict(saved_model)
            self.opt.load_state_dict(saved_opt)
            if self.scheduler is not None:
                self.scheduler.load_state_dict(saved_sched)
            raise
        self.epoch, self.step, self.order = epoch, step, None if order is None else order.astype(np.int64)
        self.loss_sum, self.correct, self.seen, self.seconds = sums
        self.history = history
        default_generator().bit_generator.state = refcnn_bits.state
        self.generator.bit_generator.state = shuffle_bits.state


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
    (A :class:`Training` run that is never stopped.)
    """
    run = Training(model, opt, train, test, epochs=epochs, batch_size=batch_size, generator=generator,
                   scheduler=scheduler)  # fmt: skip
    run.run(progress=progress, on_epoch=on_epoch)
    return run.history
