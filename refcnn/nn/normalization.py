"""Normalisation layers: BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm (torch.nn's names,
arguments, defaults, buffers and reprs; the math lives in refcnn.kernels.normalization)."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Real
from typing import Any

import numpy as np

from ._utils import check_input, positive_int
from .module import KernelModule, Module, Parameter, float_dtype

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm"]


def _real(value: Any, name: str, owner: str) -> Any:
    if not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    return value


def _affine_params(module: Module, shape: tuple[int, ...], affine: bool, bias: bool, dtype: np.dtype) -> None:
    """weight = 1, bias = 0 (PyTorch's reset_parameters), or None when not affine / no bias."""
    if affine:
        module.weight = Parameter(np.ones(shape, dtype=dtype))
        if bias:
            module.bias = Parameter(np.zeros(shape, dtype=dtype))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


class _Normalization(KernelModule):
    """What the normalisation layers share: the dtype they hold (for the input's)."""

    def _input_dtype(self) -> np.dtype | None:
        # With no parameters or buffers there is nothing to mix dtypes with (as PyTorch).
        has_arrays = any(p is not None for p in self._parameters.values()) or any(
            b is not None for b in self._buffers.values()
        )
        return self.dtype if has_arrays else None


class _BatchNorm(_Normalization):
    _ndims: tuple[int, ...] = ()
    _expected: str = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-05,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_features = positive_int(num_features, "num_features", owner, minimum=0)
        self.eps = _real(eps, "eps", owner)
        self.momentum = None if momentum is None else _real(momentum, "momentum", owner)
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.dtype = float_dtype(dtype, owner)
        C = self.num_features
        _affine_params(self, (C,), affine, bias, self.dtype)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype=self.dtype))
            self.register_buffer("running_var", np.ones(C, dtype=self.dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _fill_missing_state(self, given: dict[str, np.ndarray], prefix: str, version: int | None) -> None:
        # As torch's _NormBase._load_from_state_dict: a checkpoint without num_batches_tracked
        # (saved before torch added it, version < 2, or a plain dict) keeps the current count.
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in given:
            given[key] = self.num_batches_tracked

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0 (in place)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _explain_rejection(self, x: Any) -> None:
        owner = type(self).__name__
        if isinstance(x, np.ndarray) and x.ndim not in self._ndims:
            want = " or ".join(f"{d}D" for d in self._ndims)
            raise ValueError(f"{owner}: expected {want} input (got {x.ndim}D input of shape {x.shape})")
        expected = self._expected.format(C=self.num_features)
        check_input(owner, x, self._ndims, expected, self._input_dtype())
        if x.shape[1] != self.num_features and self._input_dtype() is not None:
            raise ValueError(
                f"{owner}({self.num_features}) expected input with {self.num_features} channels, "
                f"of shape {expected}, got {x.shape}"
            )

    def forward(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim not in self._ndims:  # the kernel takes any (N, C, *)
            self._explain_rejection(x)
        # As PyTorch: momentum=None means a cumulative average, factor 1/num_batches_tracked
        # (counting this batch); the factor is unused when no statistics are updated.
        factor = 0.0 if self.momentum is None else float(self.momentum)
        count = self.num_batches_tracked
        update = self.training and self.track_running_stats and count is not None
        if update and self.momentum is None:
            factor = 1.0 / float(int(count) + 1)
        # Batch statistics in training, and in eval when no running statistics exist.
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        # Running statistics go to the kernel only to be updated (training, tracked) or used (eval).
        pass_stats = not self.training or self.track_running_stats
        y = self._run_kernel(
            "batch_norm", x, self.weight, self.bias,
            self.running_mean if pass_stats else None, self.running_var if pass_stats else None,
            training=use_batch, momentum=factor, eps=self.eps,
        )[0]  # fmt: skip
        if update:  # after the kernel accepted the input, so a rejected call changes nothing
            count[...] += 1
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L): per channel, over the batch (and L).

    y = (x - mean) / sqrt(var + eps) * weight + bias, with the batch's mean and biased
    variance in training (then running_mean/running_var are updated, running_var with the
    unbiased variance) and the running statistics in eval mode.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance for stability. Default: 1e-05
        momentum: weight of the new batch in the running averages; None for a cumulative
            average (factor 1/num_batches_tracked). Default: 0.1
        affine: learnable weight and bias. Default: True
        track_running_stats: keep running_mean, running_var, num_batches_tracked; if False
            they are None and batch statistics are used in eval mode too. Default: True
        dtype: float32 (None) or float64. Default: None
        bias: (keyword) learnable bias when affine. Default: True

    Shape: input (N, C) or (N, C, L); output the same.

    Attributes:
        weight (C,) initialised to 1, bias (C,) initialised to 0; buffers running_mean (C,)
        = 0, running_var (C,) = 1, num_batches_tracked (int64, 0-d) = 0.

    https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html
    """

    _ndims = (2, 3)
    _expected = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W): per channel, over N, H and W.

    Same math, arguments and attributes as :class:`BatchNorm1d`.

    Shape: input (N, C, H, W); output the same.

    https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html
    """

    _ndims = (4,)
    _expected = "(N, {C}, H, W)"


class GroupNorm(_Normalization):
    """Group normalisation: the C channels of each sample are split into num_groups groups of
    C/num_groups consecutive channels; each group is normalised by its own mean and biased
    variance, then y = xhat * weight[c] + bias[c]. Same in training and eval.

    Args:
        num_groups: G, must divide num_channels.
        num_channels: C.
        eps: added to the variance for stability. Default: 1e-05
        affine: learnable per-channel weight and bias. Default: True
        dtype: float32 (None) or float64. Default: None
        bias: (keyword) learnable bias when affine. Default: True

    Shape: input (N, C, *); output the same.

    Attributes: weight (C,) initialised to 1, bias (C,) initialised to 0.

    https://pytorch.org/docs/stable/generated/torch.nn.GroupNorm.html
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-05,
        affine: bool = True,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        owner = "GroupNorm"
        self.num_groups = positive_int(num_groups, "num_groups", owner)
        self.num_channels = positive_int(num_channels, "num_channels", owner, minimum=0)
        if self.num_channels % self.num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.eps = _real(eps, "eps", owner)
        self.affine = affine
        self.dtype = float_dtype(dtype, owner)
        _affine_params(self, (self.num_channels,), affine, bias, self.dtype)

    def forward(self, x: Any) -> np.ndarray:
        return self._run_kernel("group_norm", x, self.weight, self.bias, num_groups=self.num_groups, eps=self.eps)[0]

    def _explain_rejection(self, x: Any) -> None:
        C = self.num_channels
        expected = f"(N, {C}, *)"
        if isinstance(x, np.ndarray) and x.ndim < 2:
            raise ValueError(f"GroupNorm expected input of shape {expected} (at least 2 dimensions), got {x.shape}")
        check_input("GroupNorm", x, (x.ndim,) if isinstance(x, np.ndarray) else (), expected, self._input_dtype())
        if x.shape[1] != C and self.affine:
            raise ValueError(f"GroupNorm({self.num_groups}, {C}) expected input of shape {expected}, got {x.shape}")

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self.bias is not None}"


def _shape_tuple(value: Any) -> tuple[int, ...]:
    owner = "LayerNorm"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        dims: list[Any] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        dims = list(value)
    else:
        raise TypeError(f"{owner}: normalized_shape must be an int or a sequence of ints, got {value!r}")
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
        raise TypeError(f"{owner}: normalized_shape must be an int or a sequence of ints, got {value!r}")
    if not dims:
        raise ValueError(f"{owner}: normalized_shape must contain at least one dimension, got {value!r}")
    if min(dims) < 0:
        raise ValueError(f"{owner}: normalized_shape must not be negative, got {value!r}")
    return tuple(int(d) for d in dims)


class LayerNorm(_Normalization):
    """Layer normalisation over the trailing ``normalized_shape`` of each sample:
    y = (x - mean) / sqrt(var + eps) * weight + bias, with the mean and biased variance of
    that trailing block and elementwise weight and bias. Same in training and eval.

    Args:
        normalized_shape: int or sequence of ints, the trailing dimensions to normalise over.
        eps: added to the variance for stability. Default: 1e-05
        elementwise_affine: learnable weight (and bias) of shape normalized_shape. Default: True
        bias: learnable bias when elementwise_affine. Default: True
        dtype: float32 (None) or float64. Default: None

    Shape: input (*, *normalized_shape); output the same.

    Attributes: weight initialised to 1, bias initialised to 0, each of shape normalized_shape.

    https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html
    """

    def __init__(
        self,
        normalized_shape: int | Iterable[int],
        eps: float = 1e-05,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = _real(eps, "eps", "LayerNorm")
        self.elementwise_affine = elementwise_affine
        self.dtype = float_dtype(dtype, "LayerNorm")
        _affine_params(self, self.normalized_shape, elementwise_affine, bias, self.dtype)

    def forward(self, x: Any) -> np.ndarray:
        return self._run_kernel(
            "layer_norm", x, self.weight, self.bias, normalized_shape=self.normalized_shape, eps=self.eps
        )[0]

    def _explain_rejection(self, x: Any) -> None:
        shape = self.normalized_shape
        expected = f"(*, {', '.join(map(str, shape))})"
        check_input("LayerNorm", x, (x.ndim,) if isinstance(x, np.ndarray) else (), expected, self._input_dtype())
        if x.ndim < len(shape) or x.shape[x.ndim - len(shape) :] != shape:
            raise ValueError(f"LayerNorm({shape}) expected input of shape {expected}, got {x.shape}")

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )
