"""``python -m refcnn parity``: train a refcnn model and the same PyTorch model side by side.

Both start from identical weights (``refcnn.interop.to_torch``), see the same batches in the
same order (one seeded shuffle, the very same arrays) and take the same optimizer's steps
(refcnn's SGD/Adam and torch.optim's, single-tensor algorithm). Dropout masks are the same
too: the torch model's Dropout/Dropout2d layers are replaced by ones that draw their mask
as refcnn's dropout kernel does (``generator.random(mask shape) >= p``, then ``mask / (1 -
p)``) from a copy of refcnn's generator taken before each step, so both runs drop the same
units. BatchNorm trains in train mode (batch statistics, running averages updated).

Written per run: the per-step losses of both, their worst relative difference, the worst
difference of the final parameters and buffers, both accuracies on the test set (eval
mode), and whether every test prediction is identical.

Requirements checked (``checks`` and ``passed`` in the record; the exit status is 1 if one
of them fails):

* float64: every step's loss agrees within relative 1e-10, the final weights and buffers
  within 1e-9 (absolute), and the predictions on the whole test set are identical.
* float32: the test accuracies differ by at most 0.2 points, compared as counts of images
  (on 1,000 test images: at most 2 more or fewer correct predictions). The step-by-step drift is
  reported against a per-step budget (see :func:`budget`) with the first step beyond it,
  not checked: two float32 trainings that round differently drift apart once the training
  dynamics amplify the rounding differences, PyTorch's against itself too (BatchNorm models
  leave the budget within a few steps). So a float32 run also trains PyTorch in float64
  from the same start (``float64_reference``; ``--no-reference`` skips it) and reports how
  far each float32 run drifts from that trajectory, which says which of the two leaves the
  budget first.

  Drifted runs are two trainings of the same recipe, and their test accuracies agree as
  closely as the recipe's end point is stable: after one epoch at a constant learning rate
  a BatchNorm model's accuracy still swings by a point from step to step, PyTorch float32
  against PyTorch float64 too. Annealed to zero (``--scheduler cosine``) over a few epochs
  they agree within the 0.2 points; the README gives the measured figures.

Schedule: ``--scheduler cosine`` anneals both sides' learning rate with CosineAnnealingLR
(T_max = the number of steps), stepped after every optimizer step; refcnn's scheduler
computes PyTorch's recurrence, so float64 parity holds with it too.

Data: real MNIST from ``../shared/data/mnist`` beside the refcnn source tree (6,309 training
and 10,000 test images) when present, else the sample bundled with refcnn; ``--data`` overrides.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import __version__, models, nn, optim
from ._commands import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    OneLineParser,
    UsageError,
    check_matplotlib,
    check_output_file,
    number,
    positive,
    read_mnist,
)
from ._grad_mode import no_grad
from ._random import default_generator, manual_seed
from .data import batches, sample_dir
from .train import evaluate

__all__ = ["DEFAULT_DATA", "RunConfig", "budget", "forward_reductions", "main", "run"]

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"
MODEL_NAMES = ("simplecnn", "lenet5", "vgg", "resnet")
OPTIMIZER_NAMES = ("sgd", "adam")

FLOAT64_REL_LOSS = 1e-10
FLOAT64_ABS_WEIGHT = 1e-9
FLOAT32_ACCURACY_POINTS = 0.2

EVAL_BATCH = 250  # test images per forward: bounds the memory of a float64 VGGNet's im2col buffers

# the float32 budget's constants (see budget())
BUDGET_K = 2.0
BUDGET_LAMBDA = 6.0


@dataclass(frozen=True)
class RunConfig:
    model: str = "lenet5"
    optimizer: str = "sgd"
    dtype: str = "float64"
    steps: int | None = None  # None: ``epochs`` full epochs
    epochs: int = 1
    batch_size: int = 64
    lr: float | None = None  # None: 0.01 for SGD (momentum 0.9), 0.001 for Adam
    momentum: float = 0.9
    seed: int = 0
    scheduler: str = "none"  # "cosine": CosineAnnealingLR(T_max=steps), stepped after every step

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.01 if self.optimizer == "sgd" else 0.001


# ---- the float32 budget ---------------------------------------------------------------------
def forward_reductions(model: nn.Module, x: np.ndarray, num_classes: int = 10) -> dict[str, int]:
    """The reduction length n of every op on the path from ``x`` to the loss: the number of
    terms each output element of that op sums. Conv2d: C_in/groups * kH * kW; Linear:
    in_features; BatchNorm in training: N * H * W (its batch mean and variance); GroupNorm /
    LayerNorm: the normalised group; average pools: the window; a residual sum: 2; the loss:
    C (log-sum-exp) and N (batch mean). Max pooling, ReLU, Dropout and Flatten round nothing.

    Shapes are taken from one forward of ``x`` (input shapes recorded per module); the
    model's mode is used as is, and its BatchNorm running statistics are restored after."""
    saved = {k: v.copy() for k, v in model.state_dict().items()}
    shapes: dict[str, tuple[int, ...]] = {}
    patched = []
    for name, m in model.named_modules():
        if not m._modules or isinstance(m, models.BasicBlock):

            def recorder(inp: Any, _m: nn.Module = m, _name: str = name) -> Any:
                shapes[_name] = np.shape(inp)
                return type(_m).forward(_m, inp)

            object.__setattr__(m, "forward", recorder)
            patched.append(m)
    try:
        with no_grad():  # a probe: nothing is kept for a backward
            model(x)
    finally:
        for m in patched:
            del m.__dict__["forward"]
        model.load_state_dict(saved)
    out: dict[str, int] = {}
    for name, m in model.named_modules():
        if name not in shapes:
            continue
        shape = shapes[name]
        n = 0
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            n = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            n = m.in_features
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.training:
            n = shape[0] * math.prod(shape[2:])
        elif isinstance(m, nn.GroupNorm):
            n = m.num_channels // m.num_groups * math.prod(shape[2:])
        elif isinstance(m, nn.LayerNorm):
            n = math.prod(m.normalized_shape)
        elif isinstance(m, nn.AvgPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
            n = k[0] * k[1]
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            H, W = shape[-2:]
            oh, ow = (H if o is None else o for o in m._out)
            n = _largest_bin(H, oh) * _largest_bin(W, ow)
        elif isinstance(m, models.BasicBlock):
            n = 2
        if n > 1:
            out[name] = n
    out["loss (log-sum-exp)"] = num_classes
    out["loss (batch mean)"] = int(x.shape[0])
    return out


def _largest_bin(size: int, out: int) -> int:
    """The longest of PyTorch's adaptive bins [floor(i*size/out), ceil((i+1)*size/out))."""
    return max(-(-(i + 1) * size // out) - i * size // out for i in range(out))


def budget(reductions: dict[str, int], dtype: Any, steps: int) -> tuple[list[float], str]:
    """The per-step budget for the relative difference of the two runs' losses.

    One forward pass: op i sums n_i terms; rounding errors behave as independent random
    variables of mean zero, so (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019, Thm 3.1)
    its relative error is at most lam * sqrt(n_i) * u except with probability about
    2 n_i exp(-lam**2 / 2) (lam = 6: below 1e-7 * n_i), u the unit roundoff. Relative errors
    of a chain of ops add to first order, and two runs that each obey the bound differ by at
    most twice it: e = K * lam * u * sum_i sqrt(n_i), K = 2.

    Steps: at step t the weights carry the rounding differences of the t - 1 updates before
    it. If training did not amplify them, each update would add at most one pass's relative
    error (the gradient of a loss is rounded like the loss; the update is a step along it),
    so the budget of step t (1-based) is t * e. Beyond it, the dynamics are amplifying the
    rounding differences: the two trainings are drifting apart, as any two float32
    trainings that round differently do.
    """
    u = float(np.finfo(dtype).eps) / 2
    per_pass = BUDGET_K * BUDGET_LAMBDA * u * sum(math.sqrt(n) for n in reductions.values())
    text = (
        f"relative loss difference at step t (1-based) <= t * e, e = K * lam * u * sum_i sqrt(n_i) = {per_pass:.3g}; "
        f"K = {BUDGET_K:g} (two runs), lam = {BUDGET_LAMBDA:g} (Higham-Mary probabilistic bound lam*sqrt(n)*u "
        f"per sum of n terms), u = {u:.3g} (unit roundoff of {np.dtype(dtype)}), n_i = the reduction lengths of "
        "the forward ops (budget_n); t * e assumes training does not amplify rounding differences"
    )
    return [per_pass * t for t in range(1, steps + 1)], text


# ---- the torch side ---------------------------------------------------------------------------
class _GeneratorBox:
    """The numpy Generator the torch-side dropouts draw from (reset before each step)."""

    def __init__(self) -> None:
        self.generator = np.random.default_rng()


@functools.cache
def _replay_dropout() -> type:
    import torch

    class ReplayDropout(torch.nn.Module):
        """torch.nn.Dropout / Dropout2d with refcnn's mask: ``generator.random(shape) >= p``
        (elementwise, or per (n, c) channel), times ``1 / (1 - p)`` in the input's dtype;
        the identity in eval mode. Autograd multiplies the gradient by the same noise."""

        def __init__(self, p: float, channelwise: bool, box: _GeneratorBox) -> None:
            super().__init__()
            self.p, self.channelwise, self.box = float(p), channelwise, box

        def forward(self, x: Any) -> Any:
            if not self.training:
                return x
            shape = tuple(x.shape[:2]) + (1,) * (x.dim() - 2) if self.channelwise else tuple(x.shape)
            dt = np.dtype(str(x.dtype).removeprefix("torch."))
            if self.p == 1:
                noise = np.zeros(shape, dtype=dt)
            else:
                keep = self.box.generator.random(shape) >= self.p
                noise = keep.astype(dt) / dt.type(1.0 - self.p)
            return x * torch.from_numpy(noise)

        def extra_repr(self) -> str:
            return f"p={self.p}, channelwise={self.channelwise}"

    return ReplayDropout


def _replace_dropouts(tmodel: Any, box: _GeneratorBox) -> int:
    import torch

    replay = _replay_dropout()
    count = 0
    for name, mod in list(tmodel.named_modules()):
        if isinstance(mod, (torch.nn.Dropout, torch.nn.Dropout2d)):
            parent_name, _, child = name.rpartition(".")
            parent = tmodel.get_submodule(parent_name)
            new = replay(mod.p, isinstance(mod, torch.nn.Dropout2d), box)
            new.train(mod.training)
            setattr(parent, child, new)
            count += 1
    return count


def _torch_predictions(tmodel: Any, x: np.ndarray, batch_size: int, dtype: Any) -> np.ndarray:
    import torch

    was = tmodel.training
    tmodel.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            preds.append(tmodel(torch.from_numpy(x[i : i + batch_size]).to(dtype)).argmax(dim=1).numpy())
    tmodel.train(was)
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def versions() -> dict[str, str]:
    import torch

    return {
        "refcnn": __version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": str(torch.get_num_threads()),
    }


def _epoch_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, generator: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    while True:  # one seeded shuffle per epoch, for as many epochs as the steps need
        yield from batches(x, y, batch_size, shuffle=True, generator=generator)


# ---- one run ------------------------------------------------------------------------------------
class _TorchRun:
    """A torch.nn copy of the refcnn model in ``dtype``, its optimizer and its dropout replay."""

    def __init__(self, cfg: RunConfig, model: nn.Module, dtype: Any, steps: int) -> None:
        import torch

        from .interop import to_torch

        self.model = to_torch(model).to(dtype)  # exact: float32 -> float64 upcasts losslessly
        self.dtype = dtype
        self.box = _GeneratorBox()
        self.dropouts = _replace_dropouts(self.model, self.box)
        args: dict[str, Any] = {"lr": cfg.learning_rate}
        self.opt: Any
        if cfg.optimizer == "sgd":
            args["momentum"] = cfg.momentum
            self.opt = torch.optim.SGD(self.model.parameters(), **args, foreach=False)
        else:
            self.opt = torch.optim.Adam(self.model.parameters(), **args, foreach=False)
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=steps) if cfg.scheduler == "cosine" else None
        )
        self.args = args
        self.losses: list[float] = []
        self.seconds = 0.0

    def step(self, xb: np.ndarray, yb: np.ndarray, generator_state: Any, bits: type) -> None:
        import torch
        import torch.nn.functional as F

        start = time.perf_counter()
        replay_bits = bits()
        replay_bits.state = generator_state
        self.box.generator = np.random.Generator(replay_bits)
        loss = F.cross_entropy(self.model(torch.from_numpy(xb).to(self.dtype)), torch.from_numpy(yb))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.seconds += time.perf_counter() - start
        self.losses.append(float(loss.item()))

    def predictions(self, x: np.ndarray) -> np.ndarray:
        return _torch_predictions(self.model, x, EVAL_BATCH, self.dtype)


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


# ---- the command ----------------------------------------------------------------------------------
def _choices(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = list(allowed) if text == "all" else [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {bad or text!r}; choose from {', '.join(allowed)} or all")
    return names


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m refcnn parity",
        description="Train refcnn and PyTorch side by side on MNIST from identical weights and compare: float64 "
        "must agree to relative 1e-10 on every loss, with identical test predictions; float32 test accuracies "
        f"within {FLOAT32_ACCURACY_POINTS:g} points (counted in images), with the loss drift reported against a "
        "per-step budget. Exit status 0 if every run passes, 1 if one fails, 2 for a usage error.",
    )
    p.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="dtype of both runs (default: float64)"
    )
    p.add_argument("--steps", type=positive(int), default=None, help="training steps (default: --epochs full epochs)")
    p.add_argument("--epochs", type=positive(int), default=1, help="full epochs when --steps is not given (default: 1)")
    p.add_argument(
        "--scheduler", choices=("none", "cosine"), default="none",
        help="learning-rate schedule on both sides: none (constant) or cosine (CosineAnnealingLR with "
        "T_max = the steps, stepped after every step, annealing to 0) (default: none)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("parity.json"), help="the JSON report (default: parity.json)")
    p.add_argument(
        "--model", type=lambda t: _choices(t, MODEL_NAMES, "model"), default=["lenet5"],
        help=f"one of {', '.join(MODEL_NAMES)}, a comma-separated list, or all (default: lenet5)",
    )  # fmt: skip
    p.add_argument(
        "--optimizer", type=lambda t: _choices(t, OPTIMIZER_NAMES, "optimizer"), default=["sgd"],
        help="sgd (momentum 0.9, lr 0.01), adam (lr 0.001), sgd,adam or all (default: sgd)",
    )  # fmt: skip
    p.add_argument(
        "--data", type=Path, default=None,
        help="directory of the MNIST files (default: ../shared/data/mnist beside the refcnn source tree if it "
        "holds the test set, else the sample bundled with refcnn)",
    )  # fmt: skip
    p.add_argument(
        "--plot", type=Path, default=None, help="write the loss curves and their difference to this PNG (default: none)"
    )
    p.add_argument("--batch-size", type=positive(int), default=64, help="images per step (default: 64)")
    p.add_argument(
        "--lr", type=positive(float), default=None, help="learning rate (default: 0.01 for sgd, 0.001 for adam)"
    )
    p.add_argument(
        "--seed",
        type=number(int, 0, strict=False),
        default=0,
        help="seed of the weights, the order of the batches and dropout (default: 0)",
    )
    p.add_argument(
        "--test-limit", type=positive(int), default=None, help="test on the first N test images only (default: all)"
    )
    p.add_argument(
        "--torch-threads", type=positive(int), default=1,
        help="PyTorch's intra-op threads (parity is no benchmark, and OpenMP threads that spin on a busy machine "
        "can slow torch down tenfold) (default: 1)",
    )  # fmt: skip
    p.add_argument(
        "--no-reference", action="store_true",
        help="float32: skip the PyTorch float64 reference run, the trajectory both float32 runs approximate "
        "(default: run it)",
    )  # fmt: skip
    p.add_argument(
        "--no-progress", action="store_true",
        help="no progress bar (default: a bar on stderr for a run that lasts more than a few seconds, when stderr "
        "is a terminal)",
    )  # fmt: skip
    return p


def data_dir(data: Path | None) -> Path:
    """``--data`` if given; else ../shared/data/mnist next to the repository if it holds the
    test set; else the bundled sample."""
    if data is not None:
        return data
    if (DEFAULT_DATA / "t10k-images-idx3-ubyte.gz").is_file() or (DEFAULT_DATA / "t10k-images-idx3-ubyte").is_file():
        return DEFAULT_DATA
    return sample_dir()


def _step(k: int | None) -> str:
    return "within budget" if k is None else f"beyond budget from step {k}"


def _summary(r: dict[str, Any]) -> str:
    """One line per run: the verdict, then labelled numbers with their bounds."""
    n = r["test_images"]
    verdict = "PASSED" if r["passed"] else "FAILED (" + "; ".join(k for k, v in r["checks"].items() if not v) + ")"
    accuracy = (
        f"test accuracy refcnn {r['refcnn_test_accuracy']:.2%} ({r['refcnn_test_correct']}/{n}), "
        f"torch {r['torch_test_accuracy']:.2%} ({r['torch_test_correct']}/{n})"
    )
    if r["dtype"] == "float64":
        numbers = (
            f"loss max rel diff {r['max_rel_loss_diff']:.2g} (bound {FLOAT64_REL_LOSS:g}), weights max abs diff "
            f"{r['max_abs_weight_diff']:.2g} (bound {FLOAT64_ABS_WEIGHT:g}), {accuracy}, "
            f"{r['predictions_differing']} predictions differ"
        )
    else:
        d = r["test_correct_diff"]
        numbers = (
            f"{accuracy}: differ by {d} image{'s' if d != 1 else ''} (bound {r['test_correct_allowed']}); loss max rel "
            f"diff {r['max_rel_loss_diff']:.2g}, {_step(r['first_step_beyond_budget'])}"
        )
        ref = r.get("float64_reference")
        if ref is not None:
            numbers += (
                f"; against torch float64: refcnn {_step(ref['refcnn_first_step_beyond_budget'])}, torch "
                f"{_step(ref['torch_first_step_beyond_budget'])}"
            )
    return (
        f"{r['model']} {r['optimizer']} {r['dtype']}, {r['steps']} steps ({r['epochs_covered']:.2f} epochs): {verdict}; "
        f"{numbers} [{r['seconds']['refcnn']:.1f} s refcnn, {r['seconds']['torch']:.1f} s torch]"
    )


class _Progress:
    """A tqdm bar on stderr per run, shown once the run has lasted a few seconds."""

    def __init__(self, enabled: bool, desc: str) -> None:
        self.enabled, self.desc = enabled, desc
        self.bar: Any = None

    def __call__(self, step: int, steps: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=steps, desc=self.desc, unit="step", delay=3, leave=False, disable=not self.enabled)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except UsageError as err:
        print(f"parity: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"parity: interrupted; no report written to {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError as err:
        raise UsageError("parity needs PyTorch: pip install 'refcnn[conformance]'") from err
    check_output_file(args.out, "--out")
    if args.plot is not None:
        check_matplotlib("--plot")
        check_output_file(args.plot, "--plot")
    torch.set_num_threads(args.torch_threads)
    root = data_dir(args.data)
    train, test = read_mnist(root, "leave out --data for the bundled sample (or ../shared/data/mnist when present)")
    if args.test_limit is not None:
        test = (test[0][: args.test_limit], test[1][: args.test_limit])
    print(f"parity: {len(train[1])} training and {len(test[1])} test images from {root}", flush=True)

    results = []
    progress = not args.no_progress and sys.stderr.isatty()
    for name in args.model:
        for opt_name in args.optimizer:
            cfg = RunConfig(
                name, opt_name, args.dtype, args.steps, args.epochs, args.batch_size, args.lr,
                seed=args.seed, scheduler=args.scheduler,
            )  # fmt: skip
            bar = _Progress(progress, f"{name} {opt_name} {args.dtype}")
            try:
                result = run(cfg, train, test, progress=bar, reference=False if args.no_reference else None)
            finally:
                bar.close()
            result["data"] = str(root)
            print(_summary(result), flush=True)
            results.append(result)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    if len(results) == 1:
        report: dict[str, Any] = results[0]
    else:
        report = {
            "runs": results,
            "passed": all(r["passed"] for r in results),
            "dtype": args.dtype,
            "versions": results[0]["versions"],
        }
    args.out.write_text(json.dumps(report, indent=1))
    print(f"report: {args.out}")
    if args.plot is not None:
        from .plots import write_parity_plot

        print(f"plot: {write_parity_plot(args.plot, results)}")
    return 0 if all(r["passed"] for r in results) else 1
