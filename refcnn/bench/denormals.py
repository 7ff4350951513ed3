"""Subnormal numbers: does refcnn meet them on real MNIST, and what do they cost it?

LeNet5 (refcnn, and its torch twin alongside) trains on real MNIST batches, every refcnn
step counting the subnormal values it computed. Then one training step (lr 0: the work of
a step, the weights kept) is timed on a real batch, on the same batch with subnormal
inputs and with subnormal gradients, for both, and for torch also with flush-to-zero on
(``torch.set_flush_denormal``; NumPy has no such switch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import numpy as np

from .report import fmt
from .timing import Options, interleaved, median_ms
from .training import TRAIN_BATCH, Pair

__all__ = ["SUBNORMAL_INPUT", "SUBNORMAL_GRAD", "count_subnormal", "denormals", "print_denormals"]

SUBNORMAL_INPUT = 1e-39  # MNIST's normalised pixels (|x| <= 2.83) times this are all subnormal
SUBNORMAL_GRAD = 1e-37  # the loss-gradient scale that leaves the most gradient values subnormal


def count_subnormal(a: Any) -> int:
    """How many elements of a float array are subnormal (nonzero, below the smallest normal)."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return 0
    tiny = np.finfo(a.dtype).tiny
    return int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))


def _census(arrays: Iterable[Any]) -> dict[str, int]:
    """Subnormal values among the given arrays (torch tensors or ndarrays; None skipped)."""
    arrs = [np.asarray(a.detach().numpy() if hasattr(a, "detach") else a) for a in arrays if a is not None]
    return {"subnormal": sum(count_subnormal(a) for a in arrs), "total": sum(a.size for a in arrs)}


def _add_census(total: dict[str, dict[str, int]], part: Mapping[str, Mapping[str, int]]) -> None:
    for kind, c in part.items():
        into = total.setdefault(kind, {"subnormal": 0, "total": 0})
        into["subnormal"] += c["subnormal"]
        into["total"] += c["total"]


def _refcnn_census_step(pair: Pair, x: np.ndarray, y: np.ndarray, grad_scale: float, step: bool) -> dict[str, Any]:
    """One refcnn forward + backward (and SGD step if ``step``), layer by layer, counting the
    subnormal values in the activations (the input and every layer's output), the gradients
    (the loss's, every layer's input gradient, every parameter's) and the weights."""
    pair.model.zero_grad()
    acts = [x]
    for layer in pair.model:
        acts.append(layer(acts[-1]))
    pair.criterion(acts[-1], y)
    grads: list[Any] = [pair.criterion.backward(grad_scale)]
    for layer in reversed(list(pair.model)):
        grads.append(layer.backward(grads[-1]))
    params = list(pair.model.parameters())
    grads += [p.grad for p in params]
    counts = {"activations": _census(acts), "gradients": _census(grads), "weights": _census(p.data for p in params)}
    if step:
        pair.opt.step()
    return counts


def _torch_census(pair: Pair, x: np.ndarray, y: np.ndarray, grad_scale: float) -> dict[str, Any]:
    """The same census for the torch twin (intermediate gradients through retain_grad)."""
    torch = pair.torch
    pair.twin.zero_grad()
    acts = [torch.from_numpy(x).requires_grad_()]
    for layer in pair.twin:
        acts.append(layer(acts[-1]))
        acts[-1].retain_grad()
    loss = torch.nn.functional.cross_entropy(acts[-1], torch.from_numpy(y))
    loss.backward(torch.tensor(grad_scale, dtype=loss.dtype))
    params = list(pair.twin.parameters())
    grads = [a.grad for a in acts] + [p.grad for p in params]
    counts = {"activations": _census(acts), "gradients": _census(grads), "weights": _census(params)}
    pair.twin.zero_grad()
    return counts


def denormals(torch: Any, x_all: np.ndarray, y_all: np.ndarray, opts: Options) -> dict[str, Any]:
    """Does refcnn meet subnormal numbers on real MNIST, and what do they cost it?

    LeNet5 (refcnn, and its torch twin alongside) trains on real MNIST batches, every refcnn
    step counting the subnormal values it computed. Then one training step (lr 0: the work of
    a step, the weights kept) is timed on a real batch, on the same batch with subnormal
    inputs (x * 1e-39: every input value subnormal) and with subnormal gradients (the loss's
    gradient 1e-37 instead of 1: the scale that makes most gradient values subnormal, about
    a third of them, rather than zero),
    for both, and for torch also with flush-to-zero on (``torch.set_flush_denormal``; NumPy
    has no such switch)."""
    pair = Pair.make(torch, "lenet5", lr=0.02)
    n_batches = len(x_all) // TRAIN_BATCH
    during: dict[str, dict[str, int]] = {}
    for i in range(opts.denormal_train_steps):  # refcnn and torch train side by side, same batches
        sl = slice((i % n_batches) * TRAIN_BATCH, (i % n_batches + 1) * TRAIN_BATCH)
        _add_census(during, _refcnn_census_step(pair, x_all[sl], y_all[sl], 1.0, step=True))
        pair.torch_step(torch.from_numpy(x_all[sl]), torch.from_numpy(y_all[sl]))
    for group in (*pair.opt.param_groups, *pair.topt.param_groups):
        group["lr"] = 0.0
    x, y = x_all[-TRAIN_BATCH:], y_all[-TRAIN_BATCH:]
    scenarios = {
        "real MNIST": (x, 1.0),
        f"subnormal inputs (x * {SUBNORMAL_INPUT:g})": ((x * np.float32(SUBNORMAL_INPUT)).astype(np.float32), 1.0),
        f"subnormal gradients (loss grad {SUBNORMAL_GRAD:g})": (x, SUBNORMAL_GRAD),
    }
    out: dict[str, Any] = {
        "model": "LeNet5", "batch": TRAIN_BATCH, "trained_steps": opts.denormal_train_steps,
        "smallest_normal_float32": float(np.finfo(np.float32).tiny), "refcnn_during_training": during,
        "torch_flush_denormal_supported": None, "scenarios": {},
    }  # fmt: skip
    base: dict[str, float] = {}
    for label, (xs, scale) in scenarios.items():
        xt, yt = torch.from_numpy(xs), torch.from_numpy(y)
        census = {"refcnn": _refcnn_census_step(pair, xs, y, scale, step=False),
                  "torch": _torch_census(pair, xs, y, scale)}  # fmt: skip
        times = interleaved(
            {"refcnn": partial(pair.refcnn_step, xs, y, scale), "torch": partial(pair.torch_step, xt, yt, scale)},
            opts.repeats, opts.warmup, opts.clock,
        )  # fmt: skip
        ftz_ok = bool(torch.set_flush_denormal(True))
        try:
            ftz = interleaved({"torch": partial(pair.torch_step, xt, yt, scale)}, opts.repeats, 1, opts.clock)
        finally:
            torch.set_flush_denormal(False)
        out["torch_flush_denormal_supported"] = ftz_ok
        entry: dict[str, Any] = {
            "census": census,
            "refcnn_ms": median_ms(times["refcnn"]),
            "torch_ms": median_ms(times["torch"]),
            "torch_flush_denormal_ms": median_ms(ftz["torch"]) if ftz_ok else None,
        }
        if not base:
            base = {"refcnn": entry["refcnn_ms"], "torch": entry["torch_ms"]}
        entry["refcnn_slowdown"] = entry["refcnn_ms"] / base["refcnn"]
        entry["torch_slowdown"] = entry["torch_ms"] / base["torch"]
        out["scenarios"][label] = entry
    return out


def print_denormals(d: Mapping[str, Any]) -> None:
    print(
        f"\nDenormals: {d['model']} trained {d['trained_steps']} steps on real MNIST (batch {d['batch']}), then one "
        f"training step each (lr 0)\n(subnormal = nonzero and |v| < {d['smallest_normal_float32']:.3g}; counts are "
        "subnormal/total over activations, gradients, weights)"
    )
    c = d["refcnn_during_training"]
    print(
        "  refcnn during training: " + "  ".join(f"{k} {v['subnormal']}/{v['total']}" for k, v in c.items())
        + " subnormal"
    )  # fmt: skip
    head = f"  {'scenario':<40}{'refcnn ms':>10}{'slowdown':>9}{'torch ms':>10}{'slowdown':>9}{'torch FTZ ms':>13}"
    print(head)
    for label, e in d["scenarios"].items():
        print(
            f"  {label:<40}{e['refcnn_ms']:>10.3f}{e['refcnn_slowdown']:>8.2f}x{e['torch_ms']:>10.3f}"
            f"{e['torch_slowdown']:>8.2f}x{fmt(e['torch_flush_denormal_ms'], '.3f'):>13}"
        )
        for side in ("refcnn", "torch"):
            c = e["census"][side]
            print(
                "      " + f"{side:<7}"
                + "  ".join(f"{k} {v['subnormal']}/{v['total']}" for k, v in c.items())
            )  # fmt: skip
