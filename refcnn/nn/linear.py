"""Linear and Identity, as torch.nn.Linear and torch.nn.Identity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import init
from ._utils import check_input, positive_int
from .module import KernelModule, Module, Parameter, float_dtype

__all__ = ["Identity", "Linear"]

_AT_LEAST_1D = tuple(range(1, 65))  # every ndim NumPy allows but 0


class Identity(Module):
    """Returns its input unchanged, and the gradient unchanged. Accepts and ignores any
    constructor arguments, as PyTorch's (so it can stand in for another layer).

    See https://pytorch.org/docs/stable/generated/torch.nn.Identity.html
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        self._save_for_backward(True)
        return x

    def backward(self, grad_output: Any) -> Any:
        self._take_ctx()
        return grad_output


class Linear(KernelModule):
    """y = x @ weight.T + bias, over the last dimension of x.

    Args:
        in_features (int): size of each input row (>= 0).
        out_features (int): size of each output row (>= 0).
        bias (bool): learn an additive bias. Default: True
        dtype: float32 or float64 for the parameters, and the input dtype expected.
            Default: None (float32)
    Shape: input (*, in_features) with any number of leading dims, 1-D included;
        output (*, out_features).
    Attributes:
        weight (Parameter): (out_features, in_features), drawn from U(-k, k), k = 1/sqrt(in_features)
            (kaiming_uniform_ with a = sqrt(5), PyTorch's default).
        bias (Parameter or None): (out_features,), drawn from U(-k, k) (0 when in_features = 0).
    See https://pytorch.org/docs/stable/generated/torch.nn.Linear.html
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "Linear", minimum=0)
        self.out_features = positive_int(out_features, "out_features", "Linear", minimum=0)
        self.dtype = float_dtype(dtype, "Linear")
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=self.dtype))
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=self.dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default init, drawn from refcnn's generator (weight first, then bias)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Any) -> np.ndarray:
        return self._run_kernel("linear", x, self.weight, self.bias)[0]

    def _explain_rejection(self, x: Any) -> None:
        expected = f"(*, {self.in_features})"
        check_input("Linear", x, _AT_LEAST_1D, expected, self.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear expected input of shape {expected}, got {x.shape}")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
