"""``python -m refcnn train | conformance | parity | bench`` (DESIGN §6)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import io, models, optim
from ._random import manual_seed
from .data import load_mnist, sample_dir
from .train import EpochStats, fit

OPTIMIZERS = ("sgd", "adam")


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on MNIST (the bundled sample by default)")
    p.add_argument("--model", choices=sorted(models.MODELS), default="lenet5")
    p.add_argument("--epochs", type=_positive(int), default=10)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--lr", type=_positive(float), default=0.02)
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    p.add_argument(
        "--scheduler", choices=("cosine", "none"), default="cosine",
        help="learning-rate schedule over the epochs (default cosine: CosineAnnealingLR(T_max=epochs))",
    )  # fmt: skip
    p.add_argument("--data", type=Path, default=None, help="directory of MNIST IDX files (default: the bundled sample)")
    p.add_argument("--train-limit", type=_positive(int), default=None, help="use only the first N training images")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--checkpoint", type=Path, default=None, help="where to save (default runs/MODEL.safetensors)")
    p.add_argument("--plot", type=Path, default=None, help="write training plots (PNG) to this directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def train_main(args: argparse.Namespace) -> int:
    dtype = np.dtype(args.dtype)
    generator = manual_seed(args.seed)
    root = args.data if args.data is not None else sample_dir()
    x_train, y_train = load_mnist(root, train=True)
    x_test, y_test = load_mnist(root, train=False)
    if args.train_limit is not None:
        x_train, y_train = x_train[: args.train_limit], y_train[: args.train_limit]
    x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
    model = models.build(args.model, dtype=dtype)
    opt: optim.Optimizer
    if args.optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    else:
        opt = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs) if args.scheduler == "cosine" else None
    print(
        f"training {args.model} ({args.dtype}) on {len(y_train)} images from {root}, "
        f"testing on {len(y_test)}; {args.optimizer} lr={args.lr:g} ({args.scheduler} schedule) batch {args.batch_size}, "
        f"{args.epochs} epochs"
    )

    def report(s: EpochStats) -> None:
        print(
            f"epoch {s.epoch:>3}/{args.epochs}  train loss {s.train_loss:.4f}  acc {s.train_accuracy:.4f}  "
            f"test loss {s.test_loss:.4f}  test acc {s.test_accuracy:.4f}  ({s.seconds:.1f} s)",
            flush=True,
        )

    start = time.perf_counter()
    history = fit(
        model, opt, (x_train, y_train), (x_test, y_test), epochs=args.epochs, batch_size=args.batch_size,
        generator=generator, progress=not args.no_progress and sys.stderr.isatty(), on_epoch=report,
        scheduler=scheduler,
    )  # fmt: skip
    total = time.perf_counter() - start
    checkpoint = args.checkpoint or Path("runs") / f"{args.model}.safetensors"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    io.save(model.state_dict(), checkpoint)
    print(
        f"test accuracy {history[-1].test_accuracy:.4f} on {len(y_test)} images after {args.epochs} epochs ({total:.1f} s)"
    )
    print(f"checkpoint: {checkpoint} (loads in PyTorch with safetensors.torch.load_file)")
    if args.plot is not None:
        from .plots import write_training_plots

        for path in write_training_plots(args.plot, model, history, (x_test, y_test)):
            print(f"plot: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m refcnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,conformance,parity,bench}")
    _train_parser(sub)
    for name, text in (
        ("conformance", "check refcnn's kernels, or yours, against PyTorch (needs torch)"),
        ("parity", "train refcnn and PyTorch side by side on MNIST and compare (needs torch)"),
        ("bench", "time refcnn against PyTorch (needs torch)"),
    ):
        sub.add_parser(name, help=text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "train":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return train_main(args)
    if args.command == "conformance":
        try:
            from .conformance.runner import main as conformance_main
        except ImportError as exc:
            print(
                f"python -m refcnn conformance: the suite needs torch and hypothesis, which do not import here "
                f"({exc}); install them with: pip install 'refcnn[conformance]'",
                file=sys.stderr,
            )
            return 2
        return int(conformance_main(rest))
    if args.command == "parity":
        from .parity import main as parity_main

        return int(parity_main(rest))
    from .bench import main as bench_main

    return int(bench_main(rest))
