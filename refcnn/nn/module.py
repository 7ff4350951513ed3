"""Module, Parameter and Sequential: the state-holding side of refcnn.

A Module's ``forward(x)`` computes its output through the kernels and keeps the context
its ``backward`` needs; ``backward(grad_out)`` returns dL/dx and *accumulates* dL/dp into
each Parameter's ``.grad`` until ``zero_grad()``, as PyTorch does. Each forward's context
serves exactly one backward: a backward with no forward before it, or a second one for
the same forward, raises RuntimeError.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from ..kernels._checks import FLOAT_DTYPES


def float_dtype(dtype: Any, owner: str) -> np.dtype:
    """Normalise a ``dtype=`` argument: None means float32; only float32/float64 allowed."""
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {dt}")
    return dt


class Parameter:
    """A learnable array: ``.data`` (float ndarray) and ``.grad`` (ndarray or None)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: Any) -> None:
        arr = np.array(data, copy=True) if not isinstance(data, np.ndarray) else data
        if arr.dtype not in FLOAT_DTYPES:
            raise TypeError(f"Parameter data must be float32 or float64, got dtype {arr.dtype}")
        self.data: np.ndarray = arr
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def accumulate(self, grad: np.ndarray) -> None:
        """Add ``grad`` to ``.grad`` (which starts as None), as autograd accumulates."""
        if grad.shape != self.data.shape or grad.dtype != self.data.dtype:
            raise ValueError(
                f"gradient of shape {grad.shape} and dtype {grad.dtype} does not fit a parameter "
                f"of shape {self.data.shape} and dtype {self.data.dtype}"
            )
        if self.grad is None:
            self.grad = np.array(grad, copy=True)
        else:
            self.grad += grad

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer. Subclasses set Parameters, buffers (``register_buffer``)
    and sub-modules as attributes, and define ``forward`` and ``backward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_ctx", None)
        object.__setattr__(self, "training", True)

    # ---- attributes: parameters, buffers, sub-modules -------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(f"call Module.__init__() before assigning {name!r} in {type(self).__name__}")
        if isinstance(value, Parameter):
            self._buffers.pop(name, None)
            self._modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            self._buffers.pop(name, None)
            self._modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r} (Parameter or None required)"
                )
            params[name] = None
        elif name in self._buffers:
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r} (ndarray or None required)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        for store in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter; None keeps the name reserved but out of state_dict (``bias=False``)."""
        self._parameters[name] = param

    def register_buffer(self, name: str, array: np.ndarray | None) -> None:
        """Add non-learnable state that state_dict saves (running statistics)."""
        self._parameters.pop(name, None)
        self._buffers[name] = array

    # ---- traversal -------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        seen: set[int] = set()
        for mod_prefix, mod in mods:
            for name, p in mod._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mod_prefix, mod in self.named_modules(prefix):
            for name, b in mod._buffers.items():
                if b is not None:
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), b

    def buffers(self) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers():
            yield b

    # ---- modes, gradients, dtype -----------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    def to(self, dtype: Any) -> Module:
        """Convert every floating parameter, gradient and buffer to ``dtype`` (float32/float64)
        in place; integer buffers (``num_batches_tracked``) keep their dtype."""
        dt = float_dtype(dtype, f"{type(self).__name__}.to")
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = p.data.astype(dt)
                    p.grad = None if p.grad is None else p.grad.astype(dt)
            for name, b in m._buffers.items():
                if b is not None and b.dtype in FLOAT_DTYPES:
                    m._buffers[name] = b.astype(dt)
            if "dtype" in m.__dict__:
                object.__setattr__(m, "dtype", dt)
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    # ---- state dict ------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameters then buffers of each module, parents before children, with PyTorch's
        keys (``0.weight``, ``1.running_mean``). The arrays are the module's own (not copies)."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                if p is not None:
                    out[f"{prefix}.{name}" if prefix else name] = p.data
            for name, b in m._buffers.items():
                if b is not None:
                    out[f"{prefix}.{name}" if prefix else name] = b
        return out

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> IncompatibleKeys:
        """Copy values into the existing arrays (so optimizers keep their references).

        Values may be NumPy arrays or anything ``np.asarray`` takes (torch tensors too) and
        are cast to each target's dtype, as ``Tensor.copy_`` does. With ``strict``, every
        missing, unexpected or mis-shaped key is named in one error and nothing is changed.
        """
        own = self.state_dict()
        given = {str(k): np.asarray(v) for k, v in dict(state_dict).items()}
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        misshaped = [
            f"{k}: expected {own[k].shape}, got {given[k].shape}"
            for k in own
            if k in given and given[k].shape != own[k].shape
        ]
        bad_kind = [f"{k}: dtype {given[k].dtype}" for k in own if k in given and given[k].dtype.kind not in "biuf"]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if misshaped:
            problems.append(f"shape mismatch for {'; '.join(misshaped)}")
        if bad_kind:
            problems.append(f"non-numeric values for {'; '.join(bad_kind)}")
        if problems:
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}: " + "; ".join(problems))
        for key, target in own.items():
            if key in given:
                target[...] = given[key].astype(target.dtype)
        return IncompatibleKeys(missing, unexpected)

    # ---- forward / backward ----------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_output: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def _save_for_backward(self, ctx: Any) -> None:
        object.__setattr__(self, "_ctx", ctx)

    def _take_ctx(self) -> Any:
        """The context the last forward saved; it serves one backward only."""
        ctx = self.__dict__["_ctx"]
        if ctx is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called without a forward before it "
                "(or twice for one forward): run forward again first"
            )
        object.__setattr__(self, "_ctx", None)
        return ctx

    # ---- printing --------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse.

    ``Sequential(a, b, c)`` or ``Sequential(OrderedDict(name=module, ...))``; indexing,
    ``len``, iteration and ``append`` work as in torch.nn.Sequential.
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self._add(str(name), m)
        else:
            for i, m in enumerate(modules):
                self._add(str(i), m)

    def _add(self, name: str, module: Any) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential takes Modules, got {type(module).__name__} at position {name}")
        self._modules[name] = module

    def append(self, module: Module) -> Sequential:
        self._add(str(len(self)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        items = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*items[idx])
        if not -len(items) <= idx < len(items):
            raise IndexError(f"index {idx} is out of range for Sequential of length {len(items)}")
        return items[idx]

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_output: Any, *, input_grad: bool = True) -> Any:
        """dL/dx through every module in reverse. ``input_grad=False`` returns None and lets
        the first module skip computing dL/dx (a training loop never uses it; autograd
        likewise skips an input that does not require grad)."""
        modules = list(self._modules.values())
        for m in reversed(modules[1:]):
            grad_output = m.backward(grad_output)
        if not modules:
            return grad_output
        return backward_params(modules[0], grad_output) if not input_grad else modules[0].backward(grad_output)


_TAKES_INPUT_GRAD: dict[type, bool] = {}


def backward_params(module: Module, grad_output: Any) -> None:
    """Accumulate ``module``'s parameter gradients without asking for dL/dx where the
    module can skip it (its ``backward`` takes ``input_grad``); returns None."""
    cls = type(module)
    if cls not in _TAKES_INPUT_GRAD:
        _TAKES_INPUT_GRAD[cls] = "input_grad" in inspect.signature(cls.backward).parameters
    backward: Any = module.backward
    if _TAKES_INPUT_GRAD[cls]:
        backward(grad_output, input_grad=False)
    else:
        backward(grad_output)
