"""The kernel registry: every op has named implementations, chosen per call site.

An op (``"conv2d"``) has one *validator*, shared by all its implementations, and any
number of implementations (``"reference"``, ``"fast"``, a contributor's own), each a pure
pair::

    y, ctx = forward(x, *params, **config)
    grads  = backward(grad_y, ctx)        # grad for x, then one per param

``get(op)`` returns a :class:`Kernel` whose ``forward`` runs the op's validator first, so
every implementation (a plugin's too) sees only inputs the op accepts and bad input gets
refcnn's own error, never a traceback from inside the math. ``backward`` checks that
``grad_y`` has the shape and dtype of ``y``.

Every built-in backward takes a keyword ``needs_input_grad=True``: with False it may skip
computing dL/dx (a network's first layer: nothing needs the gradient of the images, as
autograd skips an input that does not require grad), and ``Kernel.backward`` returns None
in its place. A contributor's backward may leave the keyword out: ``register`` notes that
once, and the registry then calls it plainly and drops the dL/dx it computed.

Which implementation ``get`` picks, in order: the ``impl`` argument, the innermost
``use(...)`` block of this thread, the global default (``set_default``), ``"fast"`` if
registered, else the implementation whose name sorts first (not the order of registration).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Forward = Callable[..., tuple[Any, Any]]
Backward = Callable[[Any, Any], tuple[Any, ...]]
Validator = Callable[..., None]

_impls: dict[str, dict[str, Kernel]] = {}  # op -> impl name -> its (immutable) Kernel
_validators: dict[str, Validator] = {}
_defaults: dict[str, str] = {}
_local = threading.local()


class Saved:
    """What a Kernel's forward hands to its backward: the implementation's own ctx plus
    the output's shape and dtype, to check ``grad_y`` against. Attribute access falls
    through to the implementation's ctx, so ``ctx.indices`` works for max_pool2d."""

    __slots__ = ("dtype", "inner", "shape")

    def __init__(self, inner: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.inner = inner
        self.shape = shape
        self.dtype = dtype

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _silent() -> np.errstate:
    """Floating-point exceptions give inf and nan silently, as in PyTorch, not a RuntimeWarning
    (which a caller's warnings-as-errors turns into a crash): an invalid operation on inf or nan
    (inf * 0, inf - inf), an overflow past the dtype's range (a sum of float32 values near its
    maximum, a float64 result cast to float32), a division by zero (log(0)). A kernel whose
    overflow is its flaw (an exp of a large logit where PyTorch stays finite) is caught by its
    values, which the conformance suite compares with PyTorch's, not by a warning."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


@dataclass(frozen=True)
class Kernel:
    """One implementation of one op, with the op's validation in front of it."""

    op: str
    name: str
    forward_impl: Forward
    backward_impl: Backward
    takes_needs_input_grad: bool = True

    def forward(self, *args: Any, **config: Any) -> tuple[Any, Saved]:
        validator = _validators.get(self.op)
        if validator is not None:
            validator(*args, **config)
        with _silent():
            y, ctx = self.forward_impl(*args, **config)
        if type(y) is np.ndarray:  # every built-in kernel's output: no conversion needed to ask
            return y, Saved(ctx, y.shape, y.dtype)
        return y, Saved(ctx, np.shape(y), np.asarray(y).dtype)

    def backward(self, grad_y: Any, ctx: Saved, *, needs_input_grad: bool = True) -> tuple[Any, ...]:
        """The gradients for x and each param, after checking ``grad_y`` against the output.
        With ``needs_input_grad=False`` the first is None (see the module docstring)."""
        if not isinstance(ctx, Saved):
            raise TypeError(f"{self.op} backward expects the ctx its forward returned, got {type(ctx).__name__}")
        grad_y = np.asarray(grad_y)
        if grad_y.shape != ctx.shape:
            raise ValueError(
                f"{self.op} backward expected grad_y of shape {ctx.shape} (the output's), got {grad_y.shape}"
            )
        if grad_y.dtype != ctx.dtype:
            raise TypeError(
                f"{self.op} backward expected grad_y of dtype {ctx.dtype} (the output's), got {grad_y.dtype}"
            )
        return self.backward_checked(grad_y, ctx, needs_input_grad)

    def backward_checked(self, grad_y: np.ndarray, ctx: Saved, needs_input_grad: bool = True) -> tuple[Any, ...]:
        """``backward`` for a caller that has checked ``grad_y`` itself (a module, whose
        message names it): the implementation, told ``needs_input_grad``."""
        with _silent():
            if self.takes_needs_input_grad:
                grads = tuple(self.backward_impl(grad_y, ctx.inner, needs_input_grad=needs_input_grad))  # type: ignore[call-arg]
            else:
                grads = tuple(self.backward_impl(grad_y, ctx.inner))
        return grads if needs_input_grad else (None, *grads[1:])


def _takes_needs_input_grad(backward: Callable[..., Any]) -> bool:
    """Whether a backward accepts the ``needs_input_grad`` keyword (asked once, at register)."""
    try:
        params = inspect.signature(backward).parameters
    except (TypeError, ValueError):  # a builtin without a signature: call it plainly
        return False
    return "needs_input_grad" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def set_validator(op: str, validator: Validator) -> None:
    """Install the op's argument check, run before every implementation's forward."""
    _validators[op] = validator


def register(op: str, impl: str, forward: Forward, backward: Backward, *, replace: bool = False) -> None:
    """Add implementation ``impl`` of ``op``. A name already taken (``fast``, ``reference``) is
    an error unless ``replace=True`` says to replace that implementation. ``backward(grad_y, ctx)``
    may take the keyword ``needs_input_grad`` (see the module docstring)."""
    if not callable(forward) or not callable(backward):
        raise TypeError(f"register({op!r}, {impl!r}): forward and backward must be callable")
    if impl in _impls.get(op, {}) and not replace:
        raise ValueError(
            f"register({op!r}, {impl!r}): {op} already has an implementation named {impl!r}; "
            "choose another name, or pass replace=True to replace it"
        )
    _impls.setdefault(op, {})[impl] = Kernel(op, impl, forward, backward, _takes_needs_input_grad(backward))


def unregister(op: str, impl: str) -> None:
    """Remove an implementation (used by tests that register mutants)."""
    available(op)
    if impl not in _impls[op]:
        raise KeyError(f"op {op!r} has no implementation {impl!r}; available: {available(op)}")
    del _impls[op][impl]
    if _defaults.get(op) == impl:
        del _defaults[op]


def ops() -> list[str]:
    """Every op with at least one implementation, sorted."""
    return sorted(op for op, impls in _impls.items() if impls)


def available(op: str) -> list[str]:
    """The implementation names registered for ``op``, sorted."""
    if op not in _impls:
        raise KeyError(f"unknown op {op!r}; known ops: {ops()}")
    return sorted(_impls[op])


def _stack() -> list[dict[str, str]]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    stack: list[dict[str, str]] = _local.stack
    return stack


def _check_choice(op: str, impl: str) -> None:
    if impl not in available(op):
        raise KeyError(f"op {op!r} has no implementation {impl!r}; available: {available(op)}")


def get(op: str, impl: str | None = None) -> Kernel:
    """The implementation of ``op`` in force here (see the module docstring)."""
    impls = _impls.get(op)
    if not impls:
        available(op)  # raises, naming the known ops
        raise KeyError(f"op {op!r} has no implementation registered")
    if impl is None:
        for frame in reversed(getattr(_local, "stack", ())):
            if op in frame:
                impl = frame[op]
                break
        else:
            impl = _defaults.get(op) or ("fast" if "fast" in impls else min(impls))
    kernel = impls.get(impl)
    if kernel is None:
        raise KeyError(f"op {op!r} has no implementation {impl!r}; available: {available(op)}")
    return kernel


class use:  # lowercase, as torch.no_grad: used as `with kernels.use(...)`
    """``with kernels.use(conv2d="reference"): ...`` picks implementations in this thread
    for the block; blocks nest, the innermost wins."""

    def __init__(self, **choices: str) -> None:
        for op, impl in choices.items():
            _check_choice(op, impl)
        self.choices = dict(choices)

    def __enter__(self) -> None:
        _stack().append(self.choices)

    def __exit__(self, *exc: object) -> None:
        _stack().pop()


def set_default(op: str, impl: str) -> None:
    """Make ``impl`` the implementation of ``op`` wherever no ``use`` block says otherwise."""
    _check_choice(op, impl)
    _defaults[op] = impl
