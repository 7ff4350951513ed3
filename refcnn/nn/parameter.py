"""Parameter: a learnable float array with its gradient, array-like as torch.nn.Parameter.

``p.data`` is the ndarray the kernels read and the optimizers update in place; ``p.grad``
is None until a backward accumulates into it. A Parameter behaves as its array wherever an
array is expected, as a torch Parameter behaves as a tensor: ``np.asarray(p)`` is its float
array (no copy), ``np.save("w.npy", p)`` writes its numbers, ``p * 2``, ``2 - p``, ``-p``,
``p @ x``, ``p[0]`` and the comparisons ``<``, ``>`` ... give plain ndarrays (as torch ops
give plain tensors). ``==`` and ``!=`` keep Python's identity meaning, so Parameters stay
hashable (optimizers key their state by Parameter); use ``np.equal(p, q)`` elementwise.
In-place operators (``p -= lr * g``) update ``p.data`` in place.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from ..kernels._checks import FLOAT_DTYPES

__all__ = ["Parameter"]


def _binary(op: Callable[[Any, Any], Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``p op other`` and ``other op p`` on the parameter's array."""

    def forward(self: Parameter, other: Any) -> Any:
        return op(self.data, other.data if isinstance(other, Parameter) else other)

    def reflected(self: Parameter, other: Any) -> Any:
        return op(other, self.data)

    return forward, reflected


def _inplace(op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def method(self: Parameter, other: Any) -> Parameter:
        op(self.data, other.data if isinstance(other, Parameter) else other)
        return self

    return method


class Parameter:
    """A learnable array: ``.data`` (float32/float64 ndarray), ``.grad`` (ndarray or None)
    and ``.requires_grad`` (True; False freezes it: backward leaves its ``.grad`` None, so
    optimizers skip it).

    Args:
        data: the values (an ndarray is kept as is, anything else is copied into one).
        requires_grad (bool): Default: True

    See https://pytorch.org/docs/stable/generated/torch.nn.parameter.Parameter.html
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        arr = data if isinstance(data, np.ndarray) else np.array(data, copy=True)
        if arr.dtype not in FLOAT_DTYPES:
            raise TypeError(f"Parameter data must be float32 or float64, got dtype {arr.dtype}")
        self.data: np.ndarray = arr
        self.grad: np.ndarray | None = None
        self.requires_grad: bool = bool(requires_grad)

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        """Freeze (False) or unfreeze the parameter in place; returns it, as torch's."""
        self.requires_grad = bool(requires_grad)
        return self

    def accumulate(self, grad: np.ndarray) -> None:
        """Add ``grad`` to ``.grad`` (which starts as None), as autograd accumulates; a
        frozen parameter (``requires_grad`` False) keeps ``.grad`` as it is."""
        if not self.requires_grad:
            return
        if grad.shape != self.data.shape or grad.dtype != self.data.dtype:
            raise ValueError(
                f"gradient of shape {grad.shape} and dtype {grad.dtype} does not fit a parameter "
                f"of shape {self.data.shape} and dtype {self.data.dtype}"
            )
        if self.grad is None:
            self.grad = np.array(grad, copy=True)  # the kernel's array may be referenced elsewhere
        else:
            self.grad += grad

    # ---- the array's attributes, with torch's names where they differ ------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def T(self) -> np.ndarray:
        return self.data.T

    def size(self, dim: int | None = None) -> Any:
        """The shape, or the size of dimension ``dim``, as torch's ``Tensor.size``."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def numpy(self) -> np.ndarray:
        """The array itself (shares memory, as torch's ``Tensor.numpy``)."""
        return self.data

    def item(self) -> Any:
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    # ---- the array protocol ------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """NumPy 2's protocol: the array itself unless a dtype or ``copy=True`` asks for a
        new one; ``copy=False`` with a dtype that needs a conversion raises ValueError."""
        if dtype is None or np.dtype(dtype) == self.data.dtype:
            return self.data.copy() if copy else self.data
        if copy is False:
            raise ValueError(f"converting a {self.data.dtype} Parameter to {np.dtype(dtype)} needs a copy")
        return self.data.astype(dtype)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: Any) -> Any:
        return self.data[index]

    def __iter__(self) -> Any:
        return iter(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)  # as torch: an error for more than one element

    __add__, __radd__ = _binary(operator.add)
    __sub__, __rsub__ = _binary(operator.sub)
    __mul__, __rmul__ = _binary(operator.mul)
    __truediv__, __rtruediv__ = _binary(operator.truediv)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv)
    __mod__, __rmod__ = _binary(operator.mod)
    __pow__, __rpow__ = _binary(operator.pow)
    __matmul__, __rmatmul__ = _binary(operator.matmul)
    __lt__, __gt__ = _binary(operator.lt)[0], _binary(operator.gt)[0]
    __le__, __ge__ = _binary(operator.le)[0], _binary(operator.ge)[0]
    __iadd__ = _inplace(operator.iadd)
    __isub__ = _inplace(operator.isub)
    __imul__ = _inplace(operator.imul)
    __itruediv__ = _inplace(operator.itruediv)

    def __neg__(self) -> np.ndarray:
        return -self.data

    def __pos__(self) -> np.ndarray:
        return +self.data

    def __abs__(self) -> np.ndarray:
        return abs(self.data)

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"
