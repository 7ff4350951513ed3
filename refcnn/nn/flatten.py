"""Flatten, as torch.nn.Flatten."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import _is_int, check_input
from .module import KernelModule

__all__ = ["Flatten"]

_ANY_NDIM = tuple(range(65))  # every ndim NumPy allows


class Flatten(KernelModule):
    """Merges dims ``start_dim..end_dim`` (inclusive, negative counting from the end) into
    one; backward reshapes the gradient back.

    Args:
        start_dim (int): first dim to flatten. Default: 1 (keeps the batch dim)
        end_dim (int): last dim to flatten. Default: -1
    Shape: input (*, S_start, ..., S_end, *), output (*, prod(S_start..S_end), *).
        A dim out of range for the input raises IndexError, as PyTorch.
    See https://pytorch.org/docs/stable/generated/torch.nn.Flatten.html
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not _is_int(value):
                raise TypeError(f"Flatten: {name} must be an int, got {value!r}")
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def forward(self, x: Any) -> np.ndarray:
        return self._run_kernel("flatten", x, start_dim=self.start_dim, end_dim=self.end_dim)[0]

    def _explain_rejection(self, x: Any) -> None:
        check_input("Flatten", x, _ANY_NDIM, "(*)")

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
