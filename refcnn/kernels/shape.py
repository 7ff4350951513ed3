"""Shape ops: ``flatten`` (and ``wrap_dim``, PyTorch's dimension wrapping with its checks).

A shape op moves no numbers: forward reshapes, backward reshapes the gradient back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import registry
from ._checks import check_float


def wrap_dim(op: str, name: str, dim: Any, shape: tuple[int, ...]) -> int:
    """``dim`` as a non-negative axis of an array of ``shape``, as PyTorch wraps it.

    Negative dims count from the end. A 0-D array accepts dim in [-1, 0] (PyTorch treats
    it as 1-D for dimension wrapping). Raises TypeError for a non-int and IndexError
    (PyTorch's type and wording) for a dim out of range.
    """
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: {name} must be an int, got {dim!r}")
    ndim = max(len(shape), 1)
    if not -ndim <= dim < ndim:
        raise IndexError(
            f"{op}: {name} out of range (expected to be in range of [{-ndim}, {ndim - 1}], "
            f"but got {dim}) for x of shape {shape}"
        )
    return int(dim) % ndim


# ---- flatten ---------------------------------------------------------------------------
def validate_flatten(x: Any, *, start_dim: Any = 0, end_dim: Any = -1) -> None:
    check_float("flatten", "x", x)
    start = wrap_dim("flatten", "start_dim", start_dim, x.shape)
    end = wrap_dim("flatten", "end_dim", end_dim, x.shape)
    if start > end:
        raise ValueError(
            f"flatten: start_dim cannot come after end_dim, got start_dim={start_dim}, end_dim={end_dim} "
            f"for x of shape {x.shape}"
        )


def flatten_forward(x: np.ndarray, *, start_dim: int = 0, end_dim: int = -1) -> tuple[np.ndarray, tuple[int, ...]]:
    """Merge dims ``start_dim..end_dim`` (inclusive) into one, as torch.flatten.

        y.shape = x.shape[:s] + (prod(x.shape[s:e+1]),) + x.shape[e+1:]

    A 0-D x becomes shape (1,). y is a view of x when NumPy can make one (as PyTorch).
    Backward: gx = gy.reshape(x.shape).
    """
    if x.ndim == 0:
        return x.reshape(1), x.shape
    s, e = start_dim % x.ndim, end_dim % x.ndim
    shape = (*x.shape[:s], math.prod(x.shape[s : e + 1]), *x.shape[e + 1 :])
    return x.reshape(shape), x.shape


def flatten_backward(
    grad_y: np.ndarray, ctx: tuple[int, ...], *, needs_input_grad: bool = True
) -> tuple[np.ndarray | None]:
    return (grad_y.reshape(ctx) if needs_input_grad else None,)


registry.set_validator("flatten", validate_flatten)
registry.register("flatten", "reference", flatten_forward, flatten_backward)
