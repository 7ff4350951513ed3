"""Pooling modules: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d.

Same names, arguments, defaults, accepted forms and ``extra_repr`` as torch.nn; the math
is in ``refcnn.kernels.pool`` (ops ``max_pool2d``, ``avg_pool2d``) and
``refcnn.kernels.adaptive_pool`` (``adaptive_avg_pool2d``, ``adaptive_max_pool2d``), chosen
through the registry at call time. Inputs are
(N, C, H, W) or unbatched (C, H, W), as in PyTorch. No parameters, so no ``dtype``:
float32 and float64 inputs both work, and the output keeps the input's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import _is_int, check_input, pair
from .module import KernelModule

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "MaxPool2d"]

_SHAPES = "(N, C, H, W) or (C, H, W)"


def _pair(value: Any, name: str, owner: str, minimum: int) -> tuple[int, int]:
    """An int, a pair of ints, or (as PyTorch's pooling also takes) a 1-element sequence."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return pair(value, name, owner, minimum)


def _check_bool(value: Any, name: str, owner: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be a bool, got {value!r}")
    return bool(value)


def _window_args(owner: str, kernel_size: Any, stride: Any, padding: Any) -> tuple[tuple[int, int], ...]:
    """Normalise kernel_size/stride/padding; stride None (or empty, as PyTorch allows)
    means the kernel size; padding at most half the kernel size, as PyTorch requires."""
    k = _pair(kernel_size, "kernel_size", owner, 1)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    s = k if no_stride else _pair(stride, "stride", owner, 1)
    p = _pair(padding, "padding", owner, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(
            f"{owner}: padding must be at most half the kernel size (padding <= kernel_size // 2 on "
            f"each axis), got padding={padding!r}, kernel_size={kernel_size!r}"
        )
    return k, s, p


class _Pool(KernelModule):
    """Shared forward plumbing: the unbatched form. ``forward`` returns (y, kernel ctx)."""

    op = ""
    # how an unbatched (C, H, W) input reaches the (N, C, H, W) kernel: as one sample
    # (C, H, W) -> (1, C, H, W), or, for the adaptive ops (where PyTorch lets C be 0 in the
    # unbatched form), with its channels as the batch: (C, H, W) -> (C, 1, H, W)
    channels_as_batch = False

    def _config(self, x: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def _run(self, x: Any) -> tuple[np.ndarray, Any]:
        owner = type(self).__name__
        check_input(owner, x, (3, 4), _SHAPES)
        axis = None
        if x.ndim == 3:
            if not self.channels_as_batch and 0 in x.shape:
                raise ValueError(f"{owner} expected a (C, H, W) input with no zero dimension, got {x.shape}")
            axis = 1 if self.channels_as_batch else 0
        # the config is computed from the input as the kernel sees it (batched)
        return self._run_kernel(
            self.op, x, batch_axis=axis, **self._config(x if axis is None else np.expand_dims(x, axis))
        )

    def _indices(self, x: np.ndarray, ctx: Any) -> np.ndarray:
        """The kernel's flat indices of the maxima, shaped as the output (a copy)."""
        indices = ctx.indices
        return (indices if x.ndim == 4 else np.squeeze(indices, 1 if self.channels_as_batch else 0)).copy()


class MaxPool2d(_Pool):
    """2-D max pooling over dilated windows.

    Args:
        kernel_size: window size, int or (kH, kW).
        stride: window step, int or (sH, sW). Default: None (= kernel_size).
        padding: implicit -inf padding on both sides, int or (pH, pW), at most half the
            kernel size. Default: 0.
        dilation: spacing between window elements, int or (dH, dW). Default: 1.
        return_indices: also return the flat index (ih * W + iw) of each maximum, as
            PyTorch's (for MaxUnpool2d). Default: False.
        ceil_mode: round the output size up (a last window starting in the right padding
            is dropped). Default: False.

    Shape: x (N, C, H, W) or (C, H, W) -> y of the same rank with (H_out, W_out),
        H_out = floor_or_ceil((H + 2*pH - dH*(kH - 1) - 1) / sH) + 1, likewise W_out.
    Ties go to the first maximum in the window's row-major order; a NaN wins (the last
    one of the window), as in PyTorch.

    Matches https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html
    """

    op = "max_pool2d"

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self._k, self._s, self._p = _window_args(owner, kernel_size, stride, padding)
        self._d = _pair(dilation, "dilation", owner, 1)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size  # as PyTorch stores it
        self.padding = padding
        self.dilation = dilation
        self.return_indices = _check_bool(return_indices, "return_indices", owner)
        self.ceil_mode = _check_bool(ceil_mode, "ceil_mode", owner)

    def _config(self, x: np.ndarray) -> dict[str, Any]:
        return dict(kernel_size=self._k, stride=self._s, padding=self._p, dilation=self._d, ceil_mode=self.ceil_mode)

    def forward(self, x: Any) -> Any:
        y, ctx = self._run(x)
        return (y, self._indices(x, ctx)) if self.return_indices else y

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(_Pool):
    """2-D average pooling.

    Args:
        kernel_size: window size, int or (kH, kW).
        stride: window step, int or (sH, sW). Default: None (= kernel_size).
        padding: implicit zero padding on both sides, int or (pH, pW), at most half the
            kernel size. Default: 0.
        ceil_mode: round the output size up (a last window starting in the right padding
            is dropped). Default: False.
        count_include_pad: divide by the window's size including the padding (not the part
            of a ceil-mode window past it); else by its number of input elements.
            Default: True.
        divisor_override: divide every window's sum by this non-zero int instead.
            Default: None.

    Shape: x (N, C, H, W) or (C, H, W) -> y of the same rank with (H_out, W_out),
        H_out = floor_or_ceil((H + 2*pH - kH) / sH) + 1, likewise W_out.

    Matches https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html
    """

    op = "avg_pool2d"

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self._k, self._s, self._p = _window_args(owner, kernel_size, stride, padding)
        if divisor_override is not None:
            if not _is_int(divisor_override):
                raise TypeError(f"{owner}: divisor_override must be None or an int, got {divisor_override!r}")
            if divisor_override == 0:
                raise ValueError(f"{owner}: divisor_override must not be zero, got {divisor_override!r}")
            divisor_override = int(divisor_override)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size  # as PyTorch stores it
        self.padding = padding
        self.ceil_mode = _check_bool(ceil_mode, "ceil_mode", owner)
        self.count_include_pad = _check_bool(count_include_pad, "count_include_pad", owner)
        self.divisor_override = divisor_override

    def _config(self, x: np.ndarray) -> dict[str, Any]:
        return dict(
            kernel_size=self._k,
            stride=self._s,
            padding=self._p,
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
            divisor_override=self.divisor_override,
        )

    def forward(self, x: Any) -> np.ndarray:
        return self._run(x)[0]

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _output_size_arg(output_size: Any, owner: str) -> tuple[int | None, int | None]:
    """An int, or a pair whose elements are ints or None (None: the input's size)."""
    if _is_int(output_size):
        out: tuple[Any, Any] = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        out = (output_size[0], output_size[1])
    else:
        raise TypeError(f"{owner}: output_size must be an int or a pair of ints or None, got {output_size!r}")
    for v in out:
        if v is not None and not _is_int(v):
            raise TypeError(f"{owner}: output_size must be an int or a pair of ints or None, got {output_size!r}")
        if v is not None and v < 0:
            raise ValueError(f"{owner}: output_size must be >= 0, got {output_size!r}")
    return (None if out[0] is None else int(out[0]), None if out[1] is None else int(out[1]))


class _AdaptivePool(_Pool):
    channels_as_batch = True

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self._out = _output_size_arg(output_size, type(self).__name__)
        self.output_size = output_size

    def _config(self, x: np.ndarray) -> dict[str, Any]:
        H, W = x.shape[2:]
        oh, ow = self._out
        return dict(output_size=(H if oh is None else oh, W if ow is None else ow))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool):
    """2-D average pooling to a fixed output size, over PyTorch's adaptive bins.

    Args:
        output_size: (H_out, W_out), an int for both, or a pair with None meaning the
            input's size on that axis.

    Shape: x (N, C, H, W) or (C, H, W) -> y of the same rank with (H_out, W_out). Output
        cell i along an axis of size H averages rows [floor(i*H/H_out), ceil((i+1)*H/H_out)).

    Matches https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveAvgPool2d.html
    """

    op = "adaptive_avg_pool2d"

    def forward(self, x: Any) -> np.ndarray:
        return self._run(x)[0]


class AdaptiveMaxPool2d(_AdaptivePool):
    """2-D max pooling to a fixed output size, over PyTorch's adaptive bins.

    Args:
        output_size: (H_out, W_out), an int for both, or a pair with None meaning the
            input's size on that axis.
        return_indices: also return the flat index (ih * W + iw) of each maximum.
            Default: False.

    Shape: as AdaptiveAvgPool2d. Ties and NaN as MaxPool2d.

    Matches https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveMaxPool2d.html
    """

    op = "adaptive_max_pool2d"

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = _check_bool(return_indices, "return_indices", type(self).__name__)

    def forward(self, x: Any) -> Any:
        y, ctx = self._run(x)
        return (y, self._indices(x, ctx)) if self.return_indices else y
