"""Argument normalisation and input checks shared by the modules (PyTorch's _pair and the
checks its modules make), each raising an error that quotes the bad value."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels._checks import FLOAT_DTYPES


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def pair(value: Any, name: str, owner: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints -> ``(h, w)``, each >= ``minimum``, as torch's ``_pair``."""
    if _is_int(value):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return out


def positive_int(value: Any, name: str, owner: str, minimum: int = 1) -> int:
    if not _is_int(value):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_input(owner: str, x: Any, ndims: tuple[int, ...], expected: str, dtype: np.dtype | None = None) -> None:
    """``x`` is a float ndarray with one of ``ndims`` dimensions and, if given, ``dtype``.

    ``expected`` describes the shape for the message, e.g. ``"(N, 3, H, W) or (3, H, W)"``.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{owner} expected a numpy.ndarray input of shape {expected}, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{owner} expected a float32 or float64 input, got dtype {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{owner} holds {dtype} parameters but got a {x.dtype} input: convert the input "
            f"(x.astype(np.{dtype})) or the module (.to(np.{x.dtype}))"
        )
    if x.ndim not in ndims:
        raise ValueError(f"{owner} expected input of shape {expected}, got {x.shape}")
