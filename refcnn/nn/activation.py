"""Activation modules, as torch.nn's: same names, arguments, defaults and repr.

Each takes a float32/float64 array of any shape and returns one of the same shape and
dtype; ``backward(grad_output)`` returns dL/dx. The math lives in
``refcnn.kernels.activation`` (whose docstrings give the formulas and the gradients at the
kinks, which are PyTorch's).

``inplace=True`` is accepted wherever PyTorch accepts it and shown by ``repr`` as PyTorch
shows it, but refcnn always computes out of place: the input array is never modified, so
results and gradients are the same either way.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._utils import _is_int, check_input
from .module import KernelModule

__all__ = ["ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Hardtanh", "Softmax", "LogSoftmax"]

_ANY_NDIM = tuple(range(65))  # every ndim NumPy allows


def _real(value: Any, name: str, owner: str) -> Any:
    """A real number, returned as given (so repr shows ``1`` for an int, as PyTorch)."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    return value


class _Elementwise(KernelModule):
    """forward: the op's kernel on x with ``_config()``; backward: KernelModule's."""

    _op: str

    def _config(self) -> dict[str, Any]:
        return {}

    def forward(self, x: Any) -> np.ndarray:
        return self._run_kernel(self._op, x, **self._config())[0]

    def _explain_rejection(self, x: Any) -> None:
        check_input(type(self).__name__, x, _ANY_NDIM, "(*)")


class ReLU(_Elementwise):
    """y = max(x, 0). Gradient 0 at x = 0, as PyTorch.

    Args:
        inplace (bool): accepted for compatibility, computed out of place. Default: False
    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.ReLU.html
    """

    _op = "relu"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(_Elementwise):
    """y = x for x > 0, negative_slope * x otherwise. Gradient negative_slope at x = 0.

    Args:
        negative_slope (float): slope for x <= 0. Default: 0.01
        inplace (bool): accepted for compatibility, computed out of place. Default: False
    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.LeakyReLU.html
    """

    _op = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = _real(negative_slope, "negative_slope", "LeakyReLU")
        self.inplace = bool(inplace)

    def _config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}{', inplace=True' if self.inplace else ''}"


class ELU(_Elementwise):
    """y = x for x > 0, alpha * (exp(x) - 1) otherwise. Gradient alpha at x = 0.

    Args:
        alpha (float): the negative saturation value is -alpha. Default: 1.0
        inplace (bool): accepted for compatibility, computed out of place. Default: False
    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.ELU.html
    """

    _op = "elu"

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = _real(alpha, "alpha", "ELU")
        self.inplace = bool(inplace)

    def _config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}{', inplace=True' if self.inplace else ''}"


class GELU(_Elementwise):
    """y = x * Phi(x), Phi the standard normal CDF; with approximate='tanh',
    y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).

    Args:
        approximate (str): 'none' (exact, through erfc) or 'tanh'. Default: 'none'
    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.GELU.html
    """

    _op = "gelu"

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def _config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(_Elementwise):
    """y = x * sigmoid(x) (also called swish).

    Args:
        inplace (bool): accepted for compatibility, computed out of place. Default: False
    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.SiLU.html
    """

    _op = "silu"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)), without overflow for large |x|.

    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.Sigmoid.html
    """

    _op = "sigmoid"


class Tanh(_Elementwise):
    """y = tanh(x).

    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.Tanh.html
    """

    _op = "tanh"


class Hardtanh(_Elementwise):
    """y = min(max(x, min_val), max_val). Gradient 0 at both boundaries, as PyTorch.

    Args:
        min_val (float): lower end of the linear region. Default: -1.0
        max_val (float): upper end of the linear region, > min_val. Default: 1.0
        inplace (bool): accepted for compatibility, computed out of place. Default: False
    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.Hardtanh.html
    """

    _op = "hardtanh"

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.min_val = _real(min_val, "min_val", "Hardtanh")
        self.max_val = _real(max_val, "max_val", "Hardtanh")
        # PyTorch asserts max_val > min_val here (F.hardtanh itself allows them equal)
        if not self.max_val > self.min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.inplace = bool(inplace)

    def _config(self) -> dict[str, Any]:
        return {"min_val": self.min_val, "max_val": self.max_val}

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}{', inplace=True' if self.inplace else ''}"


class _SoftmaxBase(_Elementwise):
    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        if dim is not None and not _is_int(dim):
            raise TypeError(f"{type(self).__name__}: dim must be an int or None, got {dim!r}")
        self.dim = None if dim is None else int(dim)

    def forward(self, x: Any) -> np.ndarray:
        dim = self.dim
        if dim is None:
            check_input(type(self).__name__, x, _ANY_NDIM, "(*)")
            # PyTorch's legacy rule (_get_softmax_dim), with its deprecation warning
            warnings.warn(
                f"Implicit dimension choice for {self._op} has been deprecated. "
                "Change the call to include dim=X as an argument.",
                UserWarning,
                stacklevel=3,
            )
            dim = 0 if x.ndim in (0, 1, 3) else 1
        return self._run_kernel(self._op, x, dim=dim)[0]

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """y_i = exp(x_i) / sum_j exp(x_j) along ``dim`` (computed as exp(x_i - max)), so every
    slice along dim sums to 1 and large logits (1e4) do not overflow.

    Args:
        dim (int or None): the dimension to normalise. None picks PyTorch's legacy choice
            (0 for a 0-, 1- or 3-D input, else 1) and warns, as PyTorch. Default: None
    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.Softmax.html
    """

    _op = "softmax"


class LogSoftmax(_SoftmaxBase):
    """y_i = log(exp(x_i) / sum_j exp(x_j)) = (x_i - m) - log(sum_j exp(x_j - m)), m the max
    along ``dim``: stable for large logits.

    Args:
        dim (int or None): the dimension to normalise; None as for Softmax. Default: None
    Shape: input (*), output (*), the same shape.
    See https://pytorch.org/docs/stable/generated/torch.nn.LogSoftmax.html
    """

    _op = "log_softmax"
