"""Dropout layers: Dropout and Dropout2d (torch.nn's names, arguments and reprs; the math
lives in refcnn.kernels.dropout, the randomness in refcnn.default_generator())."""

from __future__ import annotations

import warnings
from numbers import Real
from typing import Any

import numpy as np

from .._random import default_generator
from ._utils import check_input
from .module import KernelModule

__all__ = ["Dropout", "Dropout2d"]


class _DropoutNd(KernelModule):
    _op = ""
    p: float
    inplace: bool

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        owner = type(self).__name__
        if not isinstance(p, Real) or isinstance(p, bool):
            raise TypeError(f"{owner}: p must be a real number, got {p!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"{owner}: dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def _drop(self, x: np.ndarray) -> np.ndarray:
        y = self._run_kernel(self._op, x, p=self.p, training=self.training, generator=default_generator())[0]
        if self.inplace and y is not x:
            if not x.flags.writeable:
                raise ValueError(f"{type(self).__name__}(inplace=True) needs a writeable input array")
            x[...] = y  # as PyTorch's inplace=True: the input array holds the output
            return x
        return y

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """In training, zero each element independently with probability p and scale the kept
    ones by 1/(1 - p), so the expected output equals the input; in eval mode, the identity
    (the input itself is returned). Backward multiplies by the same mask and scale.

    Args:
        p: probability of an element to be zeroed, in [0, 1]. Default: 0.5
        inplace: write the output into the input array. Default: False

    Shape: input any shape; output the same.

    The mask is drawn from ``refcnn.default_generator()`` (seed it with refcnn.manual_seed).

    https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html
    """

    _op = "dropout"

    def forward(self, x: Any) -> np.ndarray:
        return self._drop(x)


class Dropout2d(_DropoutNd):
    """In training, zero whole channels: each x[n, c] (an (H, W) map) is zeroed with
    probability p, independently, and kept maps are scaled by 1/(1 - p); in eval mode, the
    identity (the input itself is returned). Backward multiplies by the same per-channel
    mask and scale.

    A 3-D input is treated as PyTorch 2.13 treats it, with a UserWarning: as (N, C, L), so
    each row x[i, j, :] is dropped as a block (channel-wise 1-D dropout), not each channel
    of an unbatched (C, H, W) input as PyTorch's documentation says. For whole channels of
    one sample, pass x[None] (shape (1, C, H, W)).

    Args:
        p: probability of a channel to be zeroed, in [0, 1]. Default: 0.5
        inplace: write the output into the input array. Default: False

    Shape: input (N, C, H, W) or (C, H, W); output the same.

    The mask is drawn from ``refcnn.default_generator()`` (seed it with refcnn.manual_seed).

    https://pytorch.org/docs/stable/generated/torch.nn.Dropout2d.html
    """

    _op = "dropout2d"

    def forward(self, x: Any) -> np.ndarray:
        check_input("Dropout2d", x, (3, 4), "(N, C, H, W) or (C, H, W)")
        if x.ndim == 3:
            # PyTorch 2.13's F.dropout2d does this too (see pytorch/pytorch#77081)
            warnings.warn(
                f"Dropout2d: received a 3-D input of shape {x.shape}; as PyTorch does, it is treated as "
                "(N, C, L) and each row x[i, j, :] is zeroed as a block (channel-wise 1-D dropout), "
                "not each channel of an unbatched (C, H, W) input. PyTorch says this will change; "
                "for whole channels of one sample pass x[None] (shape (1, C, H, W)).",
                UserWarning,
                stacklevel=3,  # the caller of module(x)
            )
        return self._drop(x)
