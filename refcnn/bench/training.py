"""Whole training steps: LeNet-5 and SimpleCNN against their torch twins, a LeNet-5 epoch
on real MNIST, and the notebook experiment against the notebook's loop implementation.

A step is forward, CrossEntropyLoss, backward (no gradient for the images, as torch) and
an SGD step with momentum, on the same batch and the same weights on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import models, nn, optim
from .._random import manual_seed
from ..nn.module import backward_params
from .cases import model_forward_flops
from .report import Result
from .timing import Options, best_ms, interleaved, median_ms, peak_memory, spread

__all__ = ["TRAIN_BATCH", "NOTEBOOK_BATCH", "NOTEBOOK_IMAGES", "Pair", "train_case", "epoch", "notebook"]

TRAIN_BATCH = 64
NOTEBOOK_BATCH = 20  # the notebook's experiment: batches of 20 from the first 1,000 images
NOTEBOOK_IMAGES = 1000


@dataclass
class Pair:
    """A refcnn model and its torch twin (same architecture, copies of the same weights:
    :func:`refcnn.interop.to_torch`), each with CrossEntropyLoss and SGD."""

    model: nn.Sequential
    twin: Any
    opt: optim.SGD
    topt: Any
    criterion: nn.CrossEntropyLoss
    torch: Any

    @classmethod
    def make(cls, torch: Any, name: str, lr: float, seed: int = 0) -> Pair:
        from ..interop import to_torch

        manual_seed(seed)
        model = models.build(name)
        twin = to_torch(model)
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        topt = torch.optim.SGD(twin.parameters(), lr=lr, momentum=0.9)
        return cls(model, twin, opt, topt, nn.CrossEntropyLoss(), torch)  # type: ignore[arg-type]

    def refcnn_step(self, x: np.ndarray, y: np.ndarray, grad_scale: float = 1.0) -> float:
        loss = self.criterion(self.model(x), y)
        self.opt.zero_grad()
        backward_params(self.model, self.criterion.backward(grad_scale))  # as torch: no grad for the images
        self.opt.step()
        return float(loss)

    def torch_step(self, xt: Any, yt: Any, grad_scale: float = 1.0) -> float:
        self.topt.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.twin(xt), yt)
        loss.backward(self.torch.tensor(grad_scale, dtype=loss.dtype))
        self.topt.step()
        return float(loss.item())


def train_case(torch: Any, name: str, x: np.ndarray, y: np.ndarray, opts: Options) -> Result:
    """One training step of model ``name`` on the batch (x, y), both sides interleaved."""
    pair = Pair.make(torch, name, lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    flops = 3 * model_forward_flops(pair.model, x)
    times = interleaved(
        {"refcnn": lambda: pair.refcnn_step(x, y), "torch": lambda: pair.torch_step(xt, yt)},
        opts.repeats, opts.warmup, opts.clock,
    )  # fmt: skip
    label = type(pair.model).__name__
    # Both took the same steps on the same batch: one more each shows they still compute the same thing.
    losses = {"refcnn_loss_after": pair.refcnn_step(x, y), "torch_loss_after": pair.torch_step(xt, yt)}
    return Result(
        f"train step {label} batch {len(x)}", "train_step", list(x.shape), median_ms(times["refcnn"]),
        median_ms(times["torch"]), config={"model": name, "optimizer": "SGD lr=0.01 momentum=0.9",
        "loss": "CrossEntropyLoss", **losses}, flops=flops, peak_mem_bytes=peak_memory(lambda: pair.refcnn_step(x, y)),
        input_bytes=x.nbytes, refcnn_best_ms=best_ms(times["refcnn"]), torch_best_ms=best_ms(times["torch"]),
        ratio_spread=spread(times["refcnn"], times["torch"]),
    )  # fmt: skip


def epoch(torch: Any, x: np.ndarray, y: np.ndarray, opts: Options, source: str) -> dict[str, Any]:
    """One epoch of LeNet-5 (batch 64, in order) over all of (x, y), refcnn and torch taking
    turns epoch by epoch; the losses of the last epoch show both still train alike."""
    pair = Pair.make(torch, "lenet5", lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    batches = [slice(i, i + TRAIN_BATCH) for i in range(0, len(x), TRAIN_BATCH)]
    losses: dict[str, float] = {}

    def refcnn_epoch() -> None:
        losses["refcnn_mean_loss"] = float(np.mean([pair.refcnn_step(x[s], y[s]) for s in batches]))

    def torch_epoch() -> None:
        losses["torch_mean_loss"] = float(np.mean([pair.torch_step(xt[s], yt[s]) for s in batches]))

    times = interleaved({"refcnn": refcnn_epoch, "torch": torch_epoch}, opts.epoch_repeats, 0, opts.clock)
    refcnn_s, torch_s = median_ms(times["refcnn"]) / 1000.0, median_ms(times["torch"]) / 1000.0
    return {
        "model": "LeNet5", "images": len(x), "batch": TRAIN_BATCH, "data": source, "epochs_each": opts.epoch_repeats,
        "refcnn_s": refcnn_s, "torch_s": torch_s, "ratio": refcnn_s / torch_s, **losses,
    }  # fmt: skip


def notebook(x: np.ndarray, y: np.ndarray, opts: Options) -> dict[str, Any]:
    """The notebook's loop implementation (``refcnn.notebook.NotebookCNN.train_step``, its
    training entry point) against refcnn's SimpleCNN: one step each on the same batch of 20,
    and one epoch of the experiment (1,000 images, batch 20) measured for refcnn and
    projected for the loops (50 of their steps: a loop step costs the same on any batch)."""
    from ..notebook import NotebookCNN

    xb, yb = x[:NOTEBOOK_BATCH], y[:NOTEBOOK_BATCH]
    loops = NotebookCNN(seed=0)
    loops.train_step(xb[:1], yb[:1], 0.01)  # warm-up on one image (its cost is per image)
    loop_s = []
    for _ in range(opts.notebook_repeats):
        start = opts.clock()
        loops.train_step(xb, yb, 0.01)
        loop_s.append(opts.clock() - start)
    manual_seed(0)
    model = models.SimpleCNN()
    criterion = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(xs: np.ndarray, ys: np.ndarray) -> None:
        criterion(model(xs), ys)
        opt.zero_grad()
        backward_params(model, criterion.backward())
        opt.step()

    refcnn_s = interleaved({"refcnn": lambda: step(xb, yb)}, max(opts.repeats, 5), opts.warmup, opts.clock)["refcnn"]
    steps = NOTEBOOK_IMAGES // NOTEBOOK_BATCH

    def one_epoch() -> None:
        for i in range(steps):
            sl = slice(i * NOTEBOOK_BATCH, (i + 1) * NOTEBOOK_BATCH)
            step(x[sl], y[sl])

    epoch_s = median_ms(interleaved({"epoch": one_epoch}, 3, 1, opts.clock)["epoch"]) / 1000.0
    loop_ms, refcnn_ms = median_ms(loop_s), median_ms(refcnn_s)
    return {
        "batch": NOTEBOOK_BATCH,
        "notebook_step_ms": loop_ms,
        "notebook_step_runs": len(loop_s),
        "refcnn_step_ms": refcnn_ms,
        "speedup": loop_ms / refcnn_ms,
        "epoch_images": NOTEBOOK_IMAGES,
        "notebook_epoch_s_projected": steps * loop_ms / 1000.0,
        "refcnn_epoch_s_measured": epoch_s,
        "epoch_speedup": steps * loop_ms / 1000.0 / epoch_s,
        "note": "the notebook's net is the buggy one (pool stride 1: Linear(5000, 10)); refcnn's is SimpleCNN "
        "(Linear(1352, 10)), as the notebook's experiment would now run",
    }
