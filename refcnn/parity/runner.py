"""One parity run: refcnn and PyTorch trained side by side, and the record that compares them."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from .. import models, nn, optim
from .._random import default_generator, manual_seed
from ..data import batches
from ..train import evaluate
from .config import EVAL_BATCH, FLOAT32_ACCURACY_POINTS, FLOAT64_ABS_WEIGHT, FLOAT64_REL_LOSS, RunConfig
from .rounding import budget, forward_reductions
from .twin import _TorchRun, versions


def _epoch_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, generator: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    while True:  # one seeded shuffle per epoch, for as many epochs as the steps need
        yield from batches(x, y, batch_size, shuffle=True, generator=generator)


def allowed_images(points: float, images: int) -> int:
    """How many test images an accuracy bound of ``points`` percentage points allows, exactly:
    floor(points / 100 * images), with ``points`` read as the decimal it is written as (0.2 is
    1/5, not 0.2000000000000000111), so 0.2 points of 1,000 images is 2 images."""
    return math.floor(Fraction(repr(points)) * images / 100)


def _relative(a: list[float], b: list[float]) -> np.ndarray:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(x - y) / np.maximum(np.abs(y), np.finfo(np.float64).tiny)


def _first_beyond(rel: np.ndarray, per_step: list[float]) -> int | None:
    beyond = np.nonzero(rel > np.asarray(per_step))[0]
    return int(beyond[0]) + 1 if beyond.size else None


def run(
    cfg: RunConfig,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    progress: Callable[[int, int], None] | None = None,
    reference: bool | None = None,
) -> dict[str, Any]:
    """Train ``cfg.model`` in refcnn and in PyTorch side by side; returns the JSON record.

    ``reference`` (default: on for float32) also trains PyTorch in float64 from the same
    weights, batches and dropout masks: the trajectory both float32 runs approximate, so the
    record says how far each of them drifts from it (``float64_reference``)."""
    import torch

    dtype = np.dtype(cfg.dtype)
    x_train, y_train = train[0].astype(dtype), train[1]
    x_test, y_test = test[0].astype(dtype), test[1]
    steps_per_epoch = -(-len(y_train) // cfg.batch_size)
    steps = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    with_reference = dtype == np.float32 if reference is None else reference

    manual_seed(cfg.seed)  # initial weights, then the dropout masks
    model = models.build(cfg.model, dtype=dtype)
    model.train()
    reductions = forward_reductions(model, x_train[: cfg.batch_size])
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    twin = _TorchRun(cfg, model, torch_dtype, steps)
    ref = _TorchRun(cfg, model, torch.float64, steps) if with_reference else None
    opt = (
        optim.SGD(model.parameters(), **twin.args)
        if cfg.optimizer == "sgd"
        else optim.Adam(model.parameters(), **twin.args)
    )
    scheduler = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if cfg.scheduler == "cosine" else None
    criterion = nn.CrossEntropyLoss()

    order = np.random.default_rng(cfg.seed)
    feed = _epoch_batches(x_train, y_train, cfg.batch_size, order)
    losses: list[float] = []
    seconds = 0.0
    for step in range(steps):
        xb, yb = next(feed)
        bit = default_generator().bit_generator
        state = copy.deepcopy(bit.state)  # the dropout masks of this step come from here

        start = time.perf_counter()
        logits = model(xb)
        loss = criterion(logits, yb)
        opt.zero_grad()
        model.backward(criterion.backward())
        opt.step()
        if scheduler is not None:
            scheduler.step()
        seconds += time.perf_counter() - start
        losses.append(float(loss))

        twin.step(xb, yb, copy.deepcopy(state), type(bit))
        if ref is not None:
            ref.step(xb, yb, state, type(bit))
        if progress is not None:
            progress(step + 1, steps)

    rel = _relative(losses, twin.losses)
    per_step, budget_text = budget(reductions, dtype, steps)

    tstate = twin.model.state_dict()
    weight_diff = 0.0
    worst_key = None
    int_mismatch = []
    for key, value in model.state_dict().items():
        other = tstate[key].numpy()
        if value.dtype.kind == "f":
            d = float(np.max(np.abs(value.astype(np.float64) - other.astype(np.float64)), initial=0.0))
            if d >= weight_diff:
                weight_diff, worst_key = d, key
        elif not np.array_equal(value, other):
            int_mismatch.append(key)

    _, acc_r, pred_r = evaluate(model, x_test, y_test, batch_size=EVAL_BATCH)
    pred_t = twin.predictions(x_test)
    acc_t = float((pred_t == y_test).mean()) if len(y_test) else float("nan")
    differing = int((pred_r != pred_t).sum())
    acc_points = abs(acc_r - acc_t) * 100
    # the verdict compares counts of images: |acc_r - acc_t| * 100 can round to 0.20000000000000018
    correct_r, correct_t = int((pred_r == y_test).sum()), int((pred_t == y_test).sum())
    allowed = allowed_images(FLOAT32_ACCURACY_POINTS, len(y_test))

    if dtype == np.float64:
        checks = {
            f"every step's loss within relative {FLOAT64_REL_LOSS:g}": bool(rel.max(initial=0.0) <= FLOAT64_REL_LOSS),
            f"final weights and buffers within {FLOAT64_ABS_WEIGHT:g}": weight_diff <= FLOAT64_ABS_WEIGHT,
            "integer buffers (num_batches_tracked) equal": not int_mismatch,
            "test predictions identical": differing == 0,
        }
    else:
        checks = {
            f"test accuracies within {FLOAT32_ACCURACY_POINTS:g} points ({allowed} of {len(y_test)} images)": abs(
                correct_r - correct_t
            )
            <= allowed,
            "integer buffers (num_batches_tracked) equal": not int_mismatch,
        }
    record: dict[str, Any] = {
        "dtype": dtype.name,
        "steps": steps,
        "losses": {"refcnn": losses, "torch": twin.losses},
        "max_rel_loss_diff": float(rel.max(initial=0.0)),
        "max_abs_weight_diff": weight_diff,
        "refcnn_test_accuracy": acc_r,
        "torch_test_accuracy": acc_t,
        "versions": versions(),
        "model": cfg.model,
        "optimizer": cfg.optimizer,
        "optimizer_args": twin.args,
        "scheduler": cfg.scheduler if cfg.scheduler == "none" else f"{cfg.scheduler} (T_max={steps}, per step)",
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "train_images": len(y_train),
        "test_images": len(y_test),
        "epochs_covered": steps * cfg.batch_size / len(y_train) if len(y_train) else 0.0,
        "full_epoch_covered": steps >= steps_per_epoch,
        "dropout_layers_replayed": twin.dropouts,
        "rel_loss_diff": rel.tolist(),
        "budget": per_step,
        "budget_rule": budget_text,
        "budget_n": reductions,
        "first_step_beyond_budget": _first_beyond(rel, per_step),
        "worst_weight_key": worst_key,
        "integer_buffer_mismatch": int_mismatch,
        "predictions_identical": differing == 0,
        "predictions_differing": differing,
        "test_accuracy_diff_points": acc_points,
        "refcnn_test_correct": correct_r,
        "torch_test_correct": correct_t,
        "test_correct_diff": abs(correct_r - correct_t),
        "test_correct_allowed": allowed,
        "checks": checks,
        "passed": all(checks.values()),
        "seconds": {"refcnn": seconds, "torch": twin.seconds},
    }
    if ref is not None:
        pred_ref = ref.predictions(x_test.astype(np.float64))
        rel_r, rel_t = _relative(losses, ref.losses), _relative(twin.losses, ref.losses)
        record["float64_reference"] = {
            "what": "PyTorch in float64 from the same initial weights, batches and dropout masks",
            "losses": ref.losses,
            "test_accuracy": float((pred_ref == y_test).mean()) if len(y_test) else float("nan"),
            "refcnn_rel_loss_diff": rel_r.tolist(),
            "torch_rel_loss_diff": rel_t.tolist(),
            "refcnn_max_rel_loss_diff": float(rel_r.max(initial=0.0)),
            "torch_max_rel_loss_diff": float(rel_t.max(initial=0.0)),
            "refcnn_first_step_beyond_budget": _first_beyond(rel_r, per_step),
            "torch_first_step_beyond_budget": _first_beyond(rel_t, per_step),
            "refcnn_predictions_differing": int((pred_r != pred_ref).sum()),
            "torch_predictions_differing": int((pred_t != pred_ref).sum()),
            "seconds": ref.seconds,
        }
    return record
