"""Convolution layers with PyTorch's names, arguments and defaults: Conv2d, ConvTranspose2d.

The math is in the ``conv2d`` / ``conv_transpose2d`` kernels, which take a symmetric zero
padding only. What they cannot express, Conv2d does itself, as PyTorch does: the extra
row/column of ``padding='same'`` with an even (dilated) kernel extent, and the
``padding_mode`` other than ``'zeros'``, are an explicit ``np.pad`` of the input, and
backward folds the gradient of that padding back onto the input (see ``_fold_padding``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import init
from ._utils import _is_int, check_input, pair, positive_int
from .module import KernelModule, Parameter, float_dtype, takes_input_grad

__all__ = ["Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NP_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}

# ((top, bottom), (left, right)): padding of the H and W axes, as np.pad takes it.
Pads = tuple[tuple[int, int], tuple[int, int]]


def _along(axis: int, index: slice | int) -> tuple[Any, ...]:
    """An index tuple selecting ``index`` on ``axis`` and everything on the axes before it."""
    return (slice(None),) * axis + (index,)


def _fold_axis(grad: np.ndarray, axis: int, before: int, after: int, mode: str) -> np.ndarray:
    """The adjoint of padding one axis by (before, after) in ``mode``: a fresh array with the
    padded entries' gradients added onto the input entries they were copied from."""
    size = grad.shape[axis] - before - after
    out = grad[_along(axis, slice(before, before + size))].copy()
    low = grad[_along(axis, slice(0, before))]
    high = grad[_along(axis, slice(before + size, None))]
    if mode == "reflect":
        # padded entry before-1-k mirrors input entry k+1; entry before+size+k mirrors size-2-k
        out[_along(axis, slice(1, before + 1))] += np.flip(low, axis)
        out[_along(axis, slice(size - 1 - after, size - 1))] += np.flip(high, axis)
    elif mode == "replicate":
        out[_along(axis, 0)] += low.sum(axis=axis)
        out[_along(axis, size - 1)] += high.sum(axis=axis)
    elif mode == "circular":
        # the low padding repeats the last `before` entries, the high one the first `after`
        out[_along(axis, slice(size - before, size))] += low
        out[_along(axis, slice(0, after))] += high
    return out


def _fold_padding(grad: np.ndarray, pads: Pads, mode: str) -> np.ndarray:
    """The adjoint of padding the last two axes (H, W) by ``pads`` in ``mode`` (as
    ``Conv2d._pad_input``), for (N, C, H, W) or (C, H, W) arrays: zeros-padding folds to a
    crop. The modes pad each axis independently, so the axes fold one at a time."""
    for axis, (before, after) in zip((grad.ndim - 2, grad.ndim - 1), pads, strict=True):
        if before or after:
            grad = _fold_axis(grad, axis, before, after, mode)
    return grad


def _explain_conv(owner: str, conv: Any, x: Any, given: str, value: int) -> None:
    """A conv layer's own errors for an input its kernel rejected: the dtype it holds, and
    a wrong channel count in PyTorch's words."""
    check_input(owner, x, (3, 4), f"(N, {conv.in_channels}, H, W) or ({conv.in_channels}, H, W)", conv.dtype)
    if x.shape[-3] != conv.in_channels:
        shape = ", ".join(map(str, x.shape))
        raise ValueError(
            f"{owner}: given {given}={value}, weight of size {list(conv.weight.shape)}, expected input[{shape}] "
            f"to have {conv.in_channels} channels, but got {x.shape[-3]} channels instead"
        )


def _init_conv(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's reset_parameters for conv layers: kaiming_uniform_(a=sqrt(5)) weight (which is
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))) and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


def _conv_repr(m: Any, output_padding: tuple[int, int] | None = None) -> str:
    """torch.nn's _ConvNd.extra_repr: only what differs from the defaults (stride always)."""
    s = f"{m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size}, stride={m.stride}"
    if m.padding != (0, 0):
        s += f", padding={m.padding}"
    if m.dilation != (1, 1):
        s += f", dilation={m.dilation}"
    if output_padding is not None and output_padding != (0, 0):
        s += f", output_padding={output_padding}"
    if m.groups != 1:
        s += f", groups={m.groups}"
    if m.bias is None:
        s += ", bias=False"
    if m.padding_mode != "zeros":
        s += f", padding_mode={m.padding_mode}"
    return s


def _channels_and_groups(owner: str, in_channels: Any, out_channels: Any, groups: Any) -> tuple[int, int, int]:
    c_in = positive_int(in_channels, "in_channels", owner)
    c_out = positive_int(out_channels, "out_channels", owner)
    g = positive_int(groups, "groups", owner)
    if c_in % g != 0:
        raise ValueError(f"{owner}: in_channels must be divisible by groups, got in_channels={c_in}, groups={g}")
    if c_out % g != 0:
        raise ValueError(f"{owner}: out_channels must be divisible by groups, got out_channels={c_out}, groups={g}")
    return c_in, c_out, g


class Conv2d(KernelModule):
    """2-D convolution (cross-correlation) over an (N, C_in, H, W) input, as torch.nn.Conv2d.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of the output.
        kernel_size (int or (int, int)): kernel height and width.
        stride (int or (int, int), default 1): step between windows.
        padding (int, (int, int), 'valid' or 'same', default 0): padding added on both sides
            of each axis; 'valid' is none; 'same' keeps H and W (stride 1 only): a total of
            dilation*(kernel_size - 1), the odd one extra at the bottom/right, as PyTorch.
        dilation (int or (int, int), default 1): spacing between kernel elements.
        groups (int, default 1): channels split into this many independent groups; must
            divide in_channels and out_channels.
        bias (bool, default True): add a learnable bias per output channel.
        padding_mode ('zeros', 'reflect', 'replicate' or 'circular', default 'zeros'): what
            the padding holds. 'reflect' needs padding < the input size, 'circular' <= it.
        dtype (float32 or float64, default None = float32): dtype of the parameters; the
            input must have the same.

    Shape:
        input (N, C_in, H, W) or (C_in, H, W); output (N, C_out, H_out, W_out) or
        (C_out, H_out, W_out), with
        H_out = (H + pad_top + pad_bottom - dilation[0]*(kernel_size[0] - 1) - 1) // stride[0] + 1
        and W_out alike.

    Attributes:
        weight (Parameter): (out_channels, in_channels/groups, kH, kW), drawn from
            U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_ with a=sqrt(5)),
            fan_in = in_channels/groups * kH * kW.
        bias (Parameter or None): (out_channels,), from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
        dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        owner = "Conv2d"
        self.in_channels, self.out_channels, self.groups = _channels_and_groups(
            owner, in_channels, out_channels, groups
        )
        self.kernel_size = pair(kernel_size, "kernel_size", owner, 1)
        self.stride = pair(stride, "stride", owner, 1)
        self.dilation = pair(dilation, "dilation", owner, 1)
        self.padding: tuple[int, int] | str
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{owner}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(
                    f"{owner}: padding='same' is not supported for strided convolutions, got stride={self.stride}"
                )
            self.padding = padding
        else:
            self.padding = pair(padding, "padding", owner, 0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"{owner}: padding_mode must be one of {_PADDING_MODES}, got padding_mode={padding_mode!r}"
            )
        self.padding_mode = padding_mode
        self.dtype = float_dtype(dtype, owner)

        pads = self._total_padding()
        if padding_mode == "zeros":
            # The kernel takes the symmetric part; the module pads what is left (the extra
            # bottom row / right column of 'same' with an even extent), as ATen does.
            self._kernel_padding = (pads[0][0], pads[1][0])
            self._module_pads: Pads = ((0, pads[0][1] - pads[0][0]), (0, pads[1][1] - pads[1][0]))
        else:
            self._kernel_padding = (0, 0)
            self._module_pads = pads

        kH, kW = self.kernel_size
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels // self.groups, kH, kW), self.dtype))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, self.dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _total_padding(self) -> Pads:
        """((top, bottom), (left, right)) of the whole padding, 'same' split as PyTorch does."""
        if self.padding == "valid":
            return ((0, 0), (0, 0))
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True)]
            return ((totals[0] // 2, totals[0] - totals[0] // 2), (totals[1] // 2, totals[1] - totals[1] // 2))
        assert not isinstance(self.padding, str)
        pH, pW = self.padding
        return ((pH, pH), (pW, pW))

    def reset_parameters(self) -> None:
        _init_conv(self.weight, self.bias)

    def extra_repr(self) -> str:
        return _conv_repr(self)

    def _pad_input(self, x: np.ndarray) -> np.ndarray:
        """x with what the kernel's symmetric zero padding cannot express (class docstring)."""
        if self._module_pads == ((0, 0), (0, 0)):
            return x
        for axis, (before, after) in zip((x.ndim - 2, x.ndim - 1), self._module_pads, strict=True):
            size = x.shape[axis]
            if self.padding_mode == "reflect" and max(before, after) >= size:
                raise ValueError(
                    f"Conv2d: padding_mode='reflect' needs a padding smaller than the input size, got padding "
                    f"({before}, {after}) on an axis of size {size} (input of shape {x.shape})"
                )
            if self.padding_mode == "circular" and max(before, after) > size:
                raise ValueError(
                    f"Conv2d: padding_mode='circular' needs a padding at most the input size, got padding "
                    f"({before}, {after}) on an axis of size {size} (input of shape {x.shape})"
                )
        pad_width = ((0, 0),) * (x.ndim - 2) + self._module_pads
        return np.pad(x, pad_width, mode=_NP_PAD_MODE[self.padding_mode])  # type: ignore[call-overload]

    def forward(self, x: Any) -> np.ndarray:
        check_input("Conv2d", x, (3, 4), f"(N, {self.in_channels}, H, W) or ({self.in_channels}, H, W)")
        return self._run_kernel(
            "conv2d", self._pad_input(x), self.weight, self.bias, batch_axis=None if x.ndim == 4 else 0,
            stride=self.stride, padding=self._kernel_padding, dilation=self.dilation, groups=self.groups,
        )[0]  # fmt: skip

    def _explain_rejection(self, x: Any) -> None:
        _explain_conv("Conv2d", self, x, "groups", self.groups)

    @takes_input_grad
    def backward(self, grad_output: Any, *, input_grad: bool = True) -> np.ndarray | None:
        """dL/dx (None with ``input_grad=False``, which skips computing it); accumulates
        the weight and bias gradients."""
        gx = super().backward(grad_output, input_grad=input_grad)
        return None if gx is None else _fold_padding(gx, self._module_pads, self.padding_mode)


class ConvTranspose2d(KernelModule):
    """2-D transposed convolution, the gradient of Conv2d w.r.t. its input, as
    torch.nn.ConvTranspose2d.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of the output.
        kernel_size (int or (int, int)): kernel height and width.
        stride (int or (int, int), default 1): spacing of the input's pixels in the output.
        padding (int or (int, int), default 0): dilation*(kernel_size - 1) - padding zeros
            are implicitly added on both sides; the output is cropped by `padding`.
        output_padding (int or (int, int), default 0): extra rows/columns at the bottom/right
            of the output; each must be smaller than the stride or the dilation.
        groups (int, default 1): must divide in_channels and out_channels.
        bias (bool, default True): add a learnable bias per output channel.
        dilation (int or (int, int), default 1): spacing between kernel elements.
        padding_mode (str, default 'zeros'): only 'zeros' is supported, as in PyTorch.
        dtype (float32 or float64, default None = float32): dtype of the parameters.

    Shape:
        input (N, C_in, H, W) or (C_in, H, W); output (N, C_out, H_out, W_out) or
        (C_out, H_out, W_out), with
        H_out = (H - 1)*stride[0] - 2*padding[0] + dilation[0]*(kernel_size[0] - 1) + output_padding[0] + 1.
        ``forward(x, output_size)`` picks the output_padding that gives ``output_size``
        ((H_out, W_out), or with the leading dims), as PyTorch.

    Attributes:
        weight (Parameter): (in_channels, out_channels/groups, kH, kW), drawn from
            U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_ with a=sqrt(5)),
            fan_in = out_channels/groups * kH * kW (PyTorch's fan of this weight layout).
        bias (Parameter or None): (out_channels,), from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    https://pytorch.org/docs/stable/generated/torch.nn.ConvTranspose2d.html
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
        output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
        padding_mode: str = "zeros", dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        owner = "ConvTranspose2d"
        self.in_channels, self.out_channels, self.groups = _channels_and_groups(
            owner, in_channels, out_channels, groups
        )
        self.kernel_size = pair(kernel_size, "kernel_size", owner, 1)
        self.stride = pair(stride, "stride", owner, 1)
        self.padding = pair(padding, "padding", owner, 0)
        self.output_padding = pair(output_padding, "output_padding", owner, 0)
        self.dilation = pair(dilation, "dilation", owner, 1)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op >= s and op >= d:
                raise ValueError(
                    f"{owner}: output_padding must be smaller than either stride or dilation, got "
                    f"output_padding={self.output_padding}, stride={self.stride}, dilation={self.dilation}"
                )
        if padding_mode != "zeros":
            raise ValueError(f"{owner}: only padding_mode='zeros' is supported, got padding_mode={padding_mode!r}")
        self.padding_mode = padding_mode
        self.dtype = float_dtype(dtype, owner)

        kH, kW = self.kernel_size
        self.weight = Parameter(np.empty((self.in_channels, self.out_channels // self.groups, kH, kW), self.dtype))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, self.dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_conv(self.weight, self.bias)

    def extra_repr(self) -> str:
        return _conv_repr(self, self.output_padding)

    def _output_padding(self, x: np.ndarray, output_size: Any) -> tuple[int, int]:
        """PyTorch's _ConvTransposeNd._output_padding: the output_padding giving output_size."""
        if output_size is None:
            return self.output_padding
        sizes = list(output_size)
        if not all(_is_int(s) for s in sizes):
            raise TypeError(f"ConvTranspose2d: output_size must be a sequence of ints, got {output_size!r}")
        leading = x.ndim - 2
        if len(sizes) == leading + 2:
            sizes = sizes[leading:]
        if len(sizes) != 2:
            raise ValueError(
                f"ConvTranspose2d: for {x.ndim}-D input, output_size must have 2 or {leading + 2} elements, "
                f"got {output_size!r}"
            )
        min_sizes = [
            (x.shape[-2 + a] - 1) * self.stride[a]
            - 2 * self.padding[a]
            + self.dilation[a] * (self.kernel_size[a] - 1)
            + 1
            for a in (0, 1)
        ]
        max_sizes = [m + s - 1 for m, s in zip(min_sizes, self.stride, strict=True)]
        if any(not lo <= int(s) <= hi for s, lo, hi in zip(sizes, min_sizes, max_sizes, strict=True)):
            raise ValueError(
                f"ConvTranspose2d: requested an output size of {[int(s) for s in sizes]}, but valid sizes range "
                f"from {min_sizes} to {max_sizes} (for an input of spatial size {tuple(x.shape[-2:])})"
            )
        return (int(sizes[0]) - min_sizes[0], int(sizes[1]) - min_sizes[1])

    def forward(self, x: Any, output_size: Any = None) -> np.ndarray:
        expected = f"(N, {self.in_channels}, H, W) or ({self.in_channels}, H, W)"
        check_input("ConvTranspose2d", x, (3, 4), expected)
        return self._run_kernel(
            "conv_transpose2d", x, self.weight, self.bias, batch_axis=None if x.ndim == 4 else 0,
            stride=self.stride, padding=self.padding, output_padding=self._output_padding(x, output_size),
            dilation=self.dilation, groups=self.groups,
        )[0]  # fmt: skip

    def _explain_rejection(self, x: Any) -> None:
        _explain_conv("ConvTranspose2d", self, x, "transposed", 1)
