"""``python -m refcnn parity``: the options, one summary line per run, the JSON report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .._commands import (
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
from .config import (
    FLOAT32_ACCURACY_POINTS,
    FLOAT64_ABS_WEIGHT,
    FLOAT64_REL_LOSS,
    MODEL_NAMES,
    OPTIMIZER_NAMES,
    RunConfig,
    data_dir,
)
from .runner import run


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
        from ..plots import write_parity_plot

        print(f"plot: {write_parity_plot(args.plot, results)}")
    return 0 if all(r["passed"] for r in results) else 1
