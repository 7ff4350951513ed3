"""refcnn -> PyTorch: build the same network in ``torch.nn`` with the same weights.

``to_torch(model)`` walks a refcnn model and builds, module for module, the torch.nn
module of the same class with the same constructor arguments (a ``Sequential`` keeps its
children's names, so every ``state_dict`` key is the same), copies every parameter and buffer
into it (same dtype, bit for bit) and sets each module's train/eval mode as refcnn's. The
reverse needs nothing from here: refcnn's ``load_state_dict`` takes torch tensors,
``model.load_state_dict(torch_model.state_dict())``; and checkpoints go through safetensors
in both directions (``refcnn.io.save`` -> ``safetensors.torch.load_file``,
``safetensors.torch.save_file`` -> ``refcnn.io.load``).

Convertible: Sequential (and subclasses that keep its forward and backward, such as the
models in ``refcnn.models``), Conv2d, ConvTranspose2d, Linear, Identity, Flatten, MaxPool2d,
AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, ReLU, LeakyReLU, ELU, GELU, SiLU,
Sigmoid, Tanh, Hardtanh, Softmax, LogSoftmax, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm,
Dropout, Dropout2d, and ``refcnn.models.BasicBlock`` (as :func:`torch_basic_block`'s
class). Anything else raises :class:`ConversionError` naming the module and where it sits.

torch is imported inside the functions, so importing refcnn never needs it.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from . import models, nn

__all__ = ["ConversionError", "convertible", "to_torch", "torch_basic_block"]


class ConversionError(TypeError):
    """A refcnn module has no torch.nn counterpart here."""


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("refcnn.interop needs PyTorch: pip install torch (or refcnn's 'conformance' extra)") from err
    return torch


@functools.cache
def torch_basic_block() -> type:
    """The torch.nn version of :class:`refcnn.models.BasicBlock` (same attributes, same
    forward): ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``, the shortcut being
    ``downsample(x)`` when given, else ``x``. Its state_dict keys equal torchvision's."""
    torch = _torch()

    class BasicBlock(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self, conv1: Any, bn1: Any, relu1: Any, conv2: Any, bn2: Any, downsample: Any, relu2: Any):
            super().__init__()
            self.conv1, self.bn1, self.relu1 = conv1, bn1, relu1
            self.conv2, self.bn2 = conv2, bn2
            self.downsample = downsample
            self.relu2 = relu2

        def forward(self, x: Any) -> Any:
            out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu2(out + identity)

    return BasicBlock


def _children(m: nn.Module, path: str) -> OrderedDict[str, Any]:
    return OrderedDict(
        (name, _convert(child, f"{path}.{name}" if path else name)) for name, child in m.named_children()
    )


def _sequential(m: nn.Module, path: str) -> Any:
    cls = type(m)
    if cls.forward is not nn.Sequential.forward or cls.backward is not nn.Sequential.backward:
        raise ConversionError(
            f"to_torch: {cls.__name__} at {path or '<root>'} subclasses Sequential but defines its own "
            "forward/backward, which torch.nn.Sequential would not reproduce"
        )
    return _torch().nn.Sequential(_children(m, path))


def _basic_block(m: nn.Module, path: str) -> Any:
    c = _children(m, path)
    return torch_basic_block()(c["conv1"], c["bn1"], c["relu1"], c["conv2"], c["bn2"], c.get("downsample"), c["relu2"])


def _simple(build: Callable[[Any, Any], Any]) -> Callable[[Any, str], Any]:
    """A converter for a leaf module: ``build(torch.nn, module)``."""
    return lambda m, path: build(_torch().nn, m)


def _conv_padding(m: Any) -> Any:
    return m.padding  # 'same' / 'valid' or a pair, as torch takes them


# refcnn class -> converter(module, path) -> torch.nn.Module (without weights yet)
_CONVERTERS: dict[type, Callable[[Any, str], Any]] = {
    nn.Sequential: _sequential,
    models.BasicBlock: _basic_block,
    nn.Conv2d: _simple(lambda t, m: t.Conv2d(
        m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=_conv_padding(m),
        dilation=m.dilation, groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode)),
    nn.ConvTranspose2d: _simple(lambda t, m: t.ConvTranspose2d(
        m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
        output_padding=m.output_padding, groups=m.groups, bias=m.bias is not None, dilation=m.dilation,
        padding_mode=m.padding_mode)),
    nn.Linear: _simple(lambda t, m: t.Linear(m.in_features, m.out_features, bias=m.bias is not None)),
    nn.Identity: _simple(lambda t, m: t.Identity()),
    nn.Flatten: _simple(lambda t, m: t.Flatten(m.start_dim, m.end_dim)),
    nn.MaxPool2d: _simple(lambda t, m: t.MaxPool2d(
        m.kernel_size, m.stride, m.padding, m.dilation, return_indices=m.return_indices, ceil_mode=m.ceil_mode)),
    nn.AvgPool2d: _simple(lambda t, m: t.AvgPool2d(
        m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad,
        divisor_override=m.divisor_override)),
    nn.AdaptiveAvgPool2d: _simple(lambda t, m: t.AdaptiveAvgPool2d(m.output_size)),
    nn.AdaptiveMaxPool2d: _simple(lambda t, m: t.AdaptiveMaxPool2d(m.output_size, return_indices=m.return_indices)),
    nn.ReLU: _simple(lambda t, m: t.ReLU(inplace=m.inplace)),
    nn.LeakyReLU: _simple(lambda t, m: t.LeakyReLU(m.negative_slope, inplace=m.inplace)),
    nn.ELU: _simple(lambda t, m: t.ELU(m.alpha, inplace=m.inplace)),
    nn.GELU: _simple(lambda t, m: t.GELU(approximate=m.approximate)),
    nn.SiLU: _simple(lambda t, m: t.SiLU(inplace=m.inplace)),
    nn.Sigmoid: _simple(lambda t, m: t.Sigmoid()),
    nn.Tanh: _simple(lambda t, m: t.Tanh()),
    nn.Hardtanh: _simple(lambda t, m: t.Hardtanh(m.min_val, m.max_val, inplace=m.inplace)),
    nn.Softmax: _simple(lambda t, m: t.Softmax(dim=m.dim)),
    nn.LogSoftmax: _simple(lambda t, m: t.LogSoftmax(dim=m.dim)),
    nn.BatchNorm1d: _simple(lambda t, m: t.BatchNorm1d(
        m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, bias=m.bias is not None or not m.affine)),
    nn.BatchNorm2d: _simple(lambda t, m: t.BatchNorm2d(
        m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, bias=m.bias is not None or not m.affine)),
    nn.GroupNorm: _simple(lambda t, m: t.GroupNorm(
        m.num_groups, m.num_channels, m.eps, m.affine, bias=m.bias is not None or not m.affine)),
    nn.LayerNorm: _simple(lambda t, m: t.LayerNorm(
        m.normalized_shape, m.eps, m.elementwise_affine, bias=m.bias is not None or not m.elementwise_affine)),
    nn.Dropout: _simple(lambda t, m: t.Dropout(m.p, inplace=m.inplace)),
    nn.Dropout2d: _simple(lambda t, m: t.Dropout2d(m.p, inplace=m.inplace)),
}  # fmt: skip


def convertible() -> list[str]:
    """The refcnn module classes :func:`to_torch` converts, by name."""
    return sorted(cls.__name__ for cls in _CONVERTERS)


def _convert(m: nn.Module, path: str) -> Any:
    converter = _CONVERTERS.get(type(m))
    if converter is None and isinstance(m, nn.Sequential):
        converter = _sequential
    if converter is None:
        raise ConversionError(
            f"to_torch: cannot convert {type(m).__name__} at {path or '<root>'}: no torch.nn counterpart is "
            f"known for it; convertible: {', '.join(convertible())}"
        )
    return converter(m, path)


def _model_dtype(model: nn.Module) -> np.dtype:
    floats = {a.dtype for a in model.state_dict().values() if a.dtype.kind == "f"}
    if len(floats) > 1:
        raise ConversionError(f"to_torch: the model mixes dtypes {sorted(str(d) for d in floats)}; convert it first")
    return floats.pop() if floats else np.dtype(np.float32)


def to_torch(model: nn.Module) -> Any:
    """A ``torch.nn.Module`` of the same architecture as the refcnn ``model``, with copies of
    its parameters and buffers (same keys, dtype and values) and the same train/eval mode
    per module. Raises ConversionError for a module it cannot convert."""
    torch = _torch()
    if not isinstance(model, nn.Module):
        raise TypeError(f"to_torch expects a refcnn nn.Module, got {type(model).__name__}")
    dtype = _model_dtype(model)
    tmodel = _convert(model, "")
    tmodel.to({np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype])
    state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in model.state_dict().items()}
    tmodel.load_state_dict(state, strict=True)
    for name, m in model.named_modules():
        tmodel.get_submodule(name).training = m.training
    return tmodel
