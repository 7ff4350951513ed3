"""Argument checks shared by the op validators: each raises refcnn's own error, naming the
op, the argument and the value it got."""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float(op: str, name: str, a: Any, ndim: int | tuple[int, ...] | None = None) -> None:
    """``a`` must be a float32/float64 ndarray with ``ndim`` dimensions (one of, for a tuple)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {a.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if a.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{op}: {name} must be {want}, got shape {a.shape}")


def check_same_dtype(op: str, **arrays: Any) -> None:
    """All given arrays (None skipped) share one dtype: refcnn never mixes float32 and float64."""
    given = {k: v.dtype for k, v in arrays.items() if v is not None}
    if len(set(given.values())) > 1:
        listed = ", ".join(f"{k}={d}" for k, d in given.items())
        raise TypeError(f"{op}: all arrays must share one dtype, got {listed}")


def check_pair(op: str, name: str, value: Any, minimum: int) -> None:
    """``value`` is a pair of ints, each >= ``minimum`` (configs reach kernels as pairs)."""
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise TypeError(f"{op}: {name} must be a pair of ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum} on both axes, got {value}")
