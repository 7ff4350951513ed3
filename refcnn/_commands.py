"""What the commands share: one-line usage errors, argument types, and the checks a command
makes before it starts (output folders writable, matplotlib importable, MNIST readable)."""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .data import IDXError, MNISTNotFoundError, load_mnist

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


class UsageError(Exception):
    """A user error: the command prints its one line and exits with status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the problem, and where to find the options)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind: type, minimum: float, strict: bool) -> Any:
    """An argparse type: an int or float >= ``minimum`` (> with ``strict``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if value != value or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
        return value

    return parse


def positive(kind: type) -> Any:
    return number(kind, 0, strict=True)


def check_writable_dir(directory: Path, option: str) -> None:
    """Create ``directory`` if needed and prove a file can be written there."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{option}: {directory} exists and is not a directory; choose another path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".refcnn-write-test-", dir=directory)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise UsageError(
            f"{option}: cannot write into {directory} ({err.strerror or err}); choose another path"
        ) from err


def check_output_file(path: Path, option: str) -> None:
    """``path`` can be written: not a directory, in a folder that exists or can be made, writable."""
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a directory; give a file name such as {path / 'out'}")
    check_writable_dir(path.parent, option)


def check_matplotlib(option: str) -> None:
    try:
        importlib.import_module("matplotlib.figure")
    except ImportError as err:
        raise UsageError(
            f"{option} needs matplotlib, which cannot be imported ({err}): pip install 'refcnn[plot]', "
            f"or leave out {option}"
        ) from err


def read_mnist(
    root: Path, hint: str, corrupt_hint: str = "replace it with a good copy"
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Both splits from ``root``; a missing folder or files (then ``hint``, what the user can
    do), a corrupt file (``corrupt_hint``) or wrong contents is a one-line UsageError."""
    if not root.is_dir():
        raise UsageError(f"--data: {root} is not a directory; {hint}")
    try:
        return load_mnist(root, train=True), load_mnist(root, train=False)
    except MNISTNotFoundError as err:
        looked = str(err).split(": ", 1)[-1].split(". Use")[0]
        raise UsageError(f"--data: no MNIST files in {root} ({looked}); {hint}") from err
    except IDXError as err:
        raise UsageError(f"corrupt MNIST file: {err}; {corrupt_hint}") from err
    except ValueError as err:  # wrong shapes, counts or labels
        raise UsageError(f"unusable MNIST files: {err}") from err
