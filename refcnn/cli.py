"""python -m refcnn train | conformance | parity | bench

Run python -m refcnn COMMAND --help for a command's options.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, io, models, optim
from ._commands import (
    EXIT_INTERRUPTED,
    OneLineParser,
    UsageError,
    check_matplotlib,
    check_output_file,
    check_writable_dir,
    number,
    positive,
    read_mnist,
)
from ._random import manual_seed
from .data import sample_dir
from .train import EpochStats, Training

OPTIMIZERS = ("sgd", "adam")
SCHEDULERS = ("cosine", "none")
# the recipe of a run: saved in its training state, and taken from there by --resume
RECIPE: dict[str, Any] = {
    "model": "lenet5",
    "epochs": 10,
    "batch_size": 32,
    "lr": 0.02,
    "optimizer": "sgd",
    "momentum": None,  # 0.9 with sgd; not an option of adam
    "scheduler": "cosine",
    "dtype": "float32",
    "seed": 0,
    "train_limit": None,
}
SGD_MOMENTUM = 0.9


def _train_parser(sub: Any) -> None:
    r = RECIPE
    p = sub.add_parser(
        "train",
        help="train a model on MNIST (the bundled sample by default; no PyTorch needed)",
        description=(
            "Train a model on MNIST with a progress bar; print the test accuracy after every epoch; save the "
            "weights as a safetensors checkpoint that PyTorch loads as is, and beside it the training state "
            "(CHECKPOINT.resume.safetensors) after every epoch. Ctrl-C stops after the step under way and saves "
            "both, with the position within the epoch: --resume continues from there and, on the same machine, ends with the same "
            "weights, bit for bit, as a run never stopped."
        ),
    )
    p.add_argument("--model", choices=sorted(models.MODELS), help=f"the network (default: {r['model']})")
    p.add_argument(
        "--epochs", metavar="N", type=positive(int), help=f"passes over the training images (default: {r['epochs']})"
    )
    p.add_argument(
        "--batch-size", metavar="N", type=positive(int), help=f"images per step (default: {r['batch_size']})"
    )
    p.add_argument("--lr", type=positive(float), help=f"learning rate (default: {r['lr']})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"sgd (with momentum) or adam (default: {r['optimizer']})")
    p.add_argument(
        "--momentum", metavar="M", type=number(float, 0, strict=False),
        help=f"SGD momentum, >= 0 (default: {SGD_MOMENTUM} with sgd; not an option of adam)",
    )  # fmt: skip
    p.add_argument(
        "--scheduler", choices=SCHEDULERS,
        help="learning-rate schedule over the epochs: cosine (CosineAnnealingLR, T_max = the epochs, stepped "
        f"after every epoch) or none (default: {r['scheduler']})",
    )  # fmt: skip
    p.add_argument("--dtype", choices=("float32", "float64"), help=f"parameter and data dtype (default: {r['dtype']})")
    p.add_argument(
        "--seed", metavar="N", type=number(int, 0, strict=False),
        help=f"seed of the initial weights, the shuffling and dropout (default: {r['seed']})",
    )  # fmt: skip
    p.add_argument(
        "--train-limit",
        metavar="N",
        type=positive(int),
        help="train on the first N training images only (default: all)",
    )
    p.add_argument(
        "--data", metavar="DIR", type=Path, default=None,
        help="directory of the MNIST files (train-images-idx3-ubyte[.gz], ...) (default: the sample bundled with "
        "refcnn, 2,000 training and 1,000 test images)",
    )  # fmt: skip
    p.add_argument(
        "--download", action="store_true",
        help="first download the four MNIST files into --data (md5-checked; files already there are kept) (default: off)",
    )  # fmt: skip
    p.add_argument(
        "--checkpoint", metavar="FILE", type=Path, default=None,
        help="where to save the weights; the training state goes beside it as NAME.resume.safetensors "
        "(default: runs/MODEL.safetensors; with --resume: the resumed run's)",
    )  # fmt: skip
    p.add_argument(
        "--resume", type=Path, default=None, metavar="STATE",
        help="continue the run whose training state (a .resume.safetensors file) is STATE, with its recipe "
        "(model, epochs, batch size, lr, optimizer, momentum, scheduler, dtype, seed, train limit) and its data "
        "(default: start a new run)",
    )  # fmt: skip
    p.add_argument(
        "--plot",
        metavar="DIR",
        type=Path,
        default=None,
        help="write training plots (PNG) into this directory (default: none)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default: a bar when stderr is a terminal)"
    )


# ---- checks before the first step -------------------------------------------------------------------
def resume_path(checkpoint: Path) -> Path:
    """Where the training state of the run saving ``checkpoint`` goes: NAME.resume.safetensors."""
    stem = checkpoint.name.removesuffix(".safetensors")
    return checkpoint.with_name(f"{stem}.resume.safetensors")


def _check_outputs(checkpoint: Path, plot: Path | None) -> None:
    check_output_file(checkpoint, "--checkpoint")
    check_output_file(resume_path(checkpoint), "--checkpoint")
    if plot is not None:
        check_matplotlib("--plot")
        check_writable_dir(plot, "--plot")


def _load_data(root: Path | None, download: bool) -> tuple[Path, tuple[Any, Any], tuple[Any, Any]]:
    """(the folder read, training split, test split), downloading first with ``download``."""
    from .data import DownloadError
    from .data import download as downloader

    if download:
        if root is None:
            raise UsageError("--download needs --data DIR: the directory to download MNIST into")
        try:
            downloader.download_mnist(root, progress=sys.stderr.isatty())
        except DownloadError as err:
            reasons = "; ".join(line.strip() for line in str(err).splitlines()[1:])
            raise UsageError(
                f"could not download MNIST into {root}: {reasons}; check the connection, or put the files there "
                "yourself"
            ) from err
        except OSError as err:
            raise UsageError(f"could not download MNIST into {root}: {err}") from err
    source = sample_dir() if root is None else root
    what = "them" if source.is_dir() else "MNIST"
    hint = f"add --download to download {what} there, or leave out --data for the bundled sample"
    return (source, *read_mnist(source, hint, "delete it and download it again (--download)"))


def _fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """Which training images a run used (a resumed run must see the very same)."""
    h = hashlib.sha256(np.ascontiguousarray(y).tobytes())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


# ---- the recipe: new run or resumed one ------------------------------------------------------------
def _recipe(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The run's recipe and, with --resume, the saved training state."""
    given = {k: getattr(args, k) for k in RECIPE if getattr(args, k) is not None}
    state = None
    if args.resume is not None:
        try:
            state = io.load(args.resume)
        except io.CheckpointError as err:
            raise UsageError(f"--resume: {err}") from err
        if not (isinstance(state, dict) and isinstance(state.get("recipe"), dict) and "training" in state):
            hint = ""
            if isinstance(state, dict) and all(isinstance(v, np.ndarray) for v in state.values()):
                hint = f": it holds model weights only; resume from the training state beside it, {resume_path(args.resume)}"
            raise UsageError(f"--resume: {args.resume} is not a refcnn training state{hint}")
        recipe = dict(RECIPE, **state["recipe"])
        differ = [f"--{k.replace('_', '-')} {v} (the run has {recipe[k]})" for k, v in given.items() if v != recipe[k]]
        if differ:
            raise UsageError(
                f"--resume continues a run with its own recipe; leave out {', '.join(differ)}, or start a new run"
            )
    else:
        recipe = dict(RECIPE, **given)
    if recipe["optimizer"] == "sgd" and recipe["momentum"] is None:
        recipe["momentum"] = SGD_MOMENTUM
    if recipe["optimizer"] != "sgd" and recipe["momentum"] is not None:
        raise UsageError(
            f"--momentum applies to --optimizer sgd only; {recipe['optimizer']} has no momentum option: leave out "
            "--momentum"
        )
    return recipe, state


@contextmanager
def _stop_on_interrupt() -> Iterator[dict[str, bool]]:
    """While inside, a first Ctrl-C only sets ``flag['stop']`` (the run stops after the step under
    way and saves); a second one interrupts at once (KeyboardInterrupt)."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def train_main(args: argparse.Namespace) -> int:
    recipe, state = _recipe(args)
    saved_run: dict[str, Any] = state["run"] if state is not None else {}
    model_name = recipe["model"]
    checkpoint = args.checkpoint or (Path(saved_run["checkpoint"]) if "checkpoint" in saved_run else None)
    checkpoint = checkpoint or Path("runs") / f"{model_name}.safetensors"
    state_path = resume_path(checkpoint)
    _check_outputs(checkpoint, args.plot)

    data: Path | None = args.data  # None: the bundled sample
    if data is None and saved_run.get("data") is not None:
        data = Path(saved_run["data"])  # a resumed run reads the folder it read
    root, (x_train, y_train), (x_test, y_test) = _load_data(data, args.download)
    if recipe["train_limit"] is not None:
        x_train, y_train = x_train[: recipe["train_limit"]], y_train[: recipe["train_limit"]]
    dtype = np.dtype(recipe["dtype"])
    x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
    fingerprint = _fingerprint(x_train, y_train)
    if state is not None and saved_run.get("train_images") != fingerprint:
        raise UsageError(
            f"--resume: the training images in {root} are not the ones the run in {args.resume} used "
            f"(it read {saved_run.get('data') or 'the bundled sample'}); give that directory as --data"
        )

    generator = manual_seed(recipe["seed"])
    model = models.build(model_name, dtype=dtype)
    opt: optim.Optimizer
    if recipe["optimizer"] == "sgd":
        opt = optim.SGD(model.parameters(), lr=recipe["lr"], momentum=recipe["momentum"])
    else:
        opt = optim.Adam(model.parameters(), lr=recipe["lr"])
    scheduler = (
        optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe["epochs"]) if recipe["scheduler"] == "cosine" else None
    )
    run = Training(model, opt, (x_train, y_train), (x_test, y_test), epochs=recipe["epochs"],
                   batch_size=recipe["batch_size"], generator=generator, scheduler=scheduler)  # fmt: skip
    if state is not None:
        try:
            run.load_state_dict(state["training"])
        except (ValueError, TypeError, KeyError) as err:
            raise UsageError(f"--resume: {args.resume}: {err}") from err
        if run.finished:
            raise UsageError(
                f"--resume: the run in {args.resume} has finished its {run.epochs} epochs; nothing to resume "
                f"(its weights are in {checkpoint})"
            )

    where = "from the bundled sample" if data is None else f"from {root}"
    momentum = f" momentum {recipe['momentum']:g}" if recipe["optimizer"] == "sgd" else ""
    print(
        f"{'resuming' if state else 'training'} {model_name} ({recipe['dtype']}) on {len(y_train)} images {where}, "
        f"testing on {len(y_test)}; {recipe['optimizer']} lr {recipe['lr']:g}{momentum} ({recipe['scheduler']} "
        f"schedule), batch {recipe['batch_size']}, {recipe['epochs']} epochs"
        + (f"; continuing at epoch {run.epoch + 1}, step {run.step + 1}" if state else "")
    )

    def save() -> None:
        io.save(model.state_dict(), checkpoint)
        run_info = {"checkpoint": str(checkpoint), "data": None if data is None else str(root),
                    "train_images": fingerprint}  # fmt: skip
        io.save({"recipe": recipe, "run": run_info, "training": run.state_dict()}, state_path)

    def report(s: EpochStats) -> None:
        save()
        print(
            f"epoch {s.epoch:>3}/{recipe['epochs']}  train loss {s.train_loss:.4f}  acc {s.train_accuracy:.4f}  "
            f"test loss {s.test_loss:.4f}  test acc {s.test_accuracy:.4f}  ({s.seconds:.1f} s)",
            flush=True,
        )

    start = time.perf_counter()
    with _stop_on_interrupt() as flag:
        finished = run.run(
            progress=not args.no_progress and sys.stderr.isatty(), on_epoch=report, stop=lambda: flag["stop"]
        )
        if not finished:
            save()
    if not finished:
        position = f"in epoch {run.epoch + 1}/{run.epochs} after step {run.step} of {run.steps_per_epoch}"
        if run.step == 0:
            position = f"after epoch {run.epoch}/{run.epochs}"
        print(
            f"train: interrupted {position}; saved {checkpoint} and {state_path}: continue with "
            f"python -m refcnn train --resume {state_path}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    total = time.perf_counter() - start
    history = run.history
    print(
        f"test accuracy {history[-1].test_accuracy:.4f} on {len(y_test)} images after {recipe['epochs']} epochs "
        f"({total:.1f} s)"
    )
    print(f"checkpoint: {checkpoint} (loads in PyTorch with safetensors.torch.load_file); training state: {state_path}")
    if args.plot is not None:
        from .plots import write_training_plots

        for path in write_training_plots(args.plot, model, history, (x_test, y_test)):
            print(f"plot: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = OneLineParser(
        prog="python -m refcnn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"refcnn {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{train,conformance,parity,bench}", parser_class=OneLineParser
    )
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
        try:
            return train_main(args)
        except UsageError as err:
            print(f"train: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(
                "train: interrupted before the first step, or twice: stopped at once without saving the step under "
                "way (the files saved last, if any, are intact)",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
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
