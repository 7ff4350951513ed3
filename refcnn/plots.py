"""Figures of a training run and of a parity run, as PNG files (matplotlib, optional).

matplotlib is imported when a function here is called, never when refcnn is imported; the
figures are drawn with matplotlib's object API on the Agg canvas (``Figure`` +
``savefig``), so no pyplot state and no display backend is touched. Without matplotlib a
call raises ImportError saying how to install it (``pip install refcnn[plot]``).

``write_training_plots(plot_dir, model, history, (x_test, y_test))`` writes, into
``plot_dir``:

* ``training_curves.png``: loss and accuracy per epoch, training and test;
* ``filters.png``: the first Conv2d layer's learned filters (one image per output
  channel and input channel, a diverging colour map centred on 0);
* ``confusion_matrix.png``: counts of (true label, predicted label) on the test set;
* ``misclassified.png``: up to 40 misclassified test digits with predicted and true labels.

``write_parity_plot(path, results)`` draws, for each parity run, both loss curves and their
relative difference against the per-step budget (and, for float32 runs with a float64
reference, each float32 run's distance from that reference).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import nn
from .data import MNIST_MEAN, MNIST_STD
from .train import EpochStats, evaluate

__all__ = [
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_filters",
    "plot_misclassified",
    "plot_training_curves",
    "write_parity_plot",
    "write_training_plots",
]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "refcnn.plots needs matplotlib, an optional dependency: pip install 'refcnn[plot]' "
            "(or pip install matplotlib)"
        ) from err
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """counts[i, j] = how many items of true class i were predicted as j (int64, C x C)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"confusion_matrix: y_true and y_pred must be 1-D of one length, got {y_true.shape}, {y_pred.shape}"
        )
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def plot_training_curves(history: Sequence[EpochStats], path: str | os.PathLike[str]) -> Path:
    """Loss (left) and accuracy (right) per epoch, training and test."""
    if not history:
        raise ValueError("plot_training_curves: the history is empty (no epoch was trained)")
    fig = _figure(10, 4)
    epochs = [s.epoch for s in history]
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [s.train_loss for s in history], "o-", label="training (running mean over the epoch)")
    ax_loss.plot(epochs, [s.test_loss for s in history], "s-", label="test (after the epoch)")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss", yscale="log")
    ax_acc.plot(epochs, [100 * s.train_accuracy for s in history], "o-", label="training")
    ax_acc.plot(epochs, [100 * s.test_accuracy for s in history], "s-", label="test")
    best = max(history, key=lambda s: s.test_accuracy)
    ax_acc.annotate(
        f"best {100 * best.test_accuracy:.2f}%", (best.epoch, 100 * best.test_accuracy),
        textcoords="offset points", xytext=(0, -14), ha="right" if best is history[-1] else "center",
    )  # fmt: skip
    final = 100 * history[-1].test_accuracy
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title=f"accuracy (test after the last epoch: {final:.2f}%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def first_conv(model: nn.Module) -> tuple[str, Any]:
    """The first Conv2d of ``model`` (in module order) and its name."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ValueError(f"{type(model).__name__} has no Conv2d layer to show the filters of")


def _montage(tiles: np.ndarray, cols: int, pad: int, fill: float) -> np.ndarray:
    """(n, h, w) tiles -> one (rows*(h+pad)+pad, cols*(w+pad)+pad) image, row-major, ``fill``
    between and after the tiles: one image to draw instead of one axes per tile."""
    n, h, w = tiles.shape
    rows = max(1, -(-n // cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), fill, dtype=np.float64)
    for i in range(n):  # a few dozen tiles
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = tiles[i]
    return out


def plot_filters(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """The first Conv2d's weights, one small image per (output channel, input channel), on a
    red-blue scale symmetric about 0 (shared by all filters), numbered by output channel."""
    name, conv = first_conv(model)
    w = np.asarray(conv.weight.data, dtype=np.float64)
    C_out, C_in, kH, kW = w.shape
    panels = w.reshape(C_out * C_in, kH, kW)
    cols = min(8, len(panels))
    rows = -(-len(panels) // cols)
    limit = float(np.abs(w).max()) or 1.0
    fig = _figure(1.1 * cols + 1.5, 1.1 * rows * kH / kW + 0.8)
    ax = fig.subplots()
    ax.imshow(_montage(panels, cols, 1, np.nan), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    for i in range(len(panels)):
        r, c = divmod(i, cols)
        label = f"{i // C_in}" if C_in == 1 else f"{i // C_in}/{i % C_in}"
        ax.text(1 + c * (kW + 1), 1 + r * (kH + 1) - 0.6, label, fontsize=7, va="bottom")
    ax.set_axis_off()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.colorbar(ScalarMappable(Normalize(-limit, limit), "RdBu_r"), ax=ax, shrink=0.8, label="weight")
    ax.set_title(f"{name} = {type(conv).__name__}({C_in}, {C_out}, kernel_size={conv.kernel_size}): learned filters")
    return _save(fig, path)


def plot_confusion_matrix(counts: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """The confusion matrix with every count written in its cell (log colour scale, so the
    few errors are visible beside the large diagonal)."""
    from matplotlib.colors import LogNorm

    counts = np.asarray(counts)
    C = counts.shape[0]
    fig = _figure(7, 6)
    ax = fig.subplots()
    image = ax.imshow(np.maximum(counts, 0.5), cmap="Blues", norm=LogNorm(vmin=0.5, vmax=max(counts.max(), 1)))
    for i in range(C):
        for j in range(C):
            if counts[i, j]:
                dark = counts[i, j] > np.sqrt(max(counts.max(), 1))
                ax.text(
                    j, i, str(counts[i, j]), ha="center", va="center", fontsize=8, color="white" if dark else "black"
                )
    total = counts.sum()
    accuracy = np.trace(counts) / total if total else float("nan")
    ax.set(
        xticks=range(C), yticks=range(C), xlabel="predicted label", ylabel="true label",
        title=f"confusion matrix: {total} test images, accuracy {100 * accuracy:.2f}%",
    )  # fmt: skip
    fig.colorbar(image, ax=ax, label="count (log scale)")
    return _save(fig, path)


def plot_misclassified(
    x: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, path: str | os.PathLike[str], limit: int = 40
) -> Path:
    """Up to ``limit`` misclassified images (the first ones in test order), each labelled
    ``predicted (true)``. Images normalised as load_mnist does are shown undone, ink dark."""
    wrong = np.nonzero(np.asarray(y_true) != np.asarray(y_pred))[0]
    shown = wrong[:limit]
    cols = 10
    rows = max(1, -(-len(shown) // cols))
    H, W = x.shape[-2:]
    pad = 10  # room for the label above each digit
    fig = _figure(12, 12 * (rows * (H + pad) + pad) / (cols * (W + pad) + pad) + 0.7)
    ax = fig.subplots()
    ax.set_axis_off()
    if len(shown):
        images = np.asarray(x[shown], dtype=np.float64).reshape(-1, H, W) * MNIST_STD + MNIST_MEAN
        ax.imshow(_montage(images, cols, pad, 0.0), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        for k, i in enumerate(shown):
            r, c = divmod(k, cols)
            ax.text(
                pad + c * (W + pad) + W / 2, pad + r * (H + pad) - 1, f"{y_pred[i]} (true {y_true[i]})",
                ha="center", va="bottom", fontsize=9, color="crimson",
            )  # fmt: skip
    else:
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(
        f"misclassified test images: {len(wrong)} of {len(y_true)} (first {len(shown)} shown, "
        "labelled predicted (true))"
    )
    return _save(fig, path)


def write_training_plots(
    plot_dir: str | os.PathLike[str],
    model: nn.Module,
    history: Sequence[EpochStats],
    test: tuple[np.ndarray, np.ndarray],
) -> list[Path]:
    """Write the four figures of a training run into ``plot_dir`` (created if needed) and
    return their paths; the training curves are skipped if ``history`` is empty."""
    out = Path(plot_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_test, y_test = test
    _, _, predictions = evaluate(model, x_test, y_test)
    paths = []
    if history:
        paths.append(plot_training_curves(history, out / "training_curves.png"))
    paths.append(plot_filters(model, out / "filters.png"))
    paths.append(plot_confusion_matrix(confusion_matrix(y_test, predictions), out / "confusion_matrix.png"))
    paths.append(plot_misclassified(x_test, y_test, predictions, out / "misclassified.png"))
    return paths


def write_parity_plot(path: str | os.PathLike[str], results: Sequence[dict[str, Any]]) -> Path:
    """One row per parity run (``refcnn.parity.run`` records): the two loss curves (left)
    and their relative difference with the per-step budget (right, log scale)."""
    if not results:
        raise ValueError("write_parity_plot: no parity runs to plot")
    fig = _figure(15, 3.2 * len(results))
    axes = np.atleast_2d(fig.subplots(len(results), 2, squeeze=False))
    for (ax_loss, ax_diff), r in zip(axes, results, strict=True):
        steps = np.arange(1, r["steps"] + 1)
        title = f"{r['model']}, {r['optimizer']}, {r['dtype']}"
        ax_loss.plot(steps, r["losses"]["refcnn"], lw=2.5, alpha=0.6, label="refcnn")
        ax_loss.plot(steps, r["losses"]["torch"], "--", lw=1, color="black", label="PyTorch")
        ax_loss.set(xlabel="step", ylabel="training loss (batch)", title=f"{title}: loss per step")
        rel = np.asarray(r["rel_loss_diff"], dtype=np.float64)
        positive = rel > 0
        ax_diff.semilogy(steps[positive], rel[positive], ".", ms=3, label="|refcnn - torch| / |torch|")
        if (~positive).any():
            ax_diff.plot([], [], " ", label=f"{int((~positive).sum())} steps with equal losses (not drawn)")
        ref = r.get("float64_reference")
        if ref is not None:
            for key, color, label in (
                ("refcnn_rel_loss_diff", "tab:green", "refcnn vs PyTorch float64"),
                ("torch_rel_loss_diff", "tab:purple", "PyTorch vs PyTorch float64"),
            ):
                d = np.asarray(ref[key], dtype=np.float64)
                ax_diff.semilogy(steps[d > 0], d[d > 0], "-", lw=0.9, color=color, label=label)
        ax_diff.semilogy(steps, r["budget"], color="tab:orange", label="per-step budget")
        if r["dtype"] == "float64":
            ax_diff.axhline(1e-10, color="tab:red", ls=":", label="float64 requirement 1e-10")
        beyond = r.get("first_step_beyond_budget")
        if beyond is not None:
            ax_diff.axvline(beyond, color="tab:red", lw=0.8, label=f"first step beyond budget: {beyond}")
        ax_diff.set(xlabel="step", ylabel="relative loss difference", title=f"{title}: refcnn vs PyTorch")
        for ax in (ax_loss, ax_diff):
            ax.grid(alpha=0.3)
        ax_loss.legend(fontsize=8)
        # beside the axes: inside, the legend hid the budget curve or the differences under it
        ax_diff.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return _save(fig, path)
