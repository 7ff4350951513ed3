"""Grad mode, as torch's: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``is_grad_enabled``.

refcnn has no autograd tape: a module's forward keeps the context its hand-written
backward needs. In grad mode (the default) it keeps it; under ``no_grad`` it keeps
nothing, so evaluation holds no memory for a backward that will not come, and a backward
there (or after such a forward) raises RuntimeError. The mode is per thread, as PyTorch's.

    with refcnn.no_grad():              # or @refcnn.no_grad() on a function
        logits = model(x_test)

The thread's state also counts forward *passes*: each call of a module from outside any
module's forward starts a new pass (see ``Module.__call__``), which is how a module tells a
second use within one forward (a shared layer) from a second forward before a backward.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled"]

F = TypeVar("F", bound=Callable[..., Any])


class _State(threading.local):
    """Per thread: grad mode on or off, how deep in module calls we are, the pass count,
    and the last pass whose backward was refused (its contexts may then be replaced)."""

    enabled = True
    depth = 0
    pass_id = 0
    refused_pass = -1


state = _State()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()`` (or ``set_grad_enabled(False)``) in this thread."""
    return state.enabled


class _GradModeContext:
    """A context manager that is also a decorator (each call of the decorated function
    runs in a fresh copy, so recursion and threads each restore their own mode)."""

    mode: bool

    def __enter__(self) -> None:
        self.prev = state.enabled
        state.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        state.enabled = self.prev

    def clone(self) -> _GradModeContext:
        return type(self)()

    def __call__(self, func: F) -> F:
        if not callable(func):
            raise TypeError(f"{type(self).__name__}() decorates a function, got {type(func).__name__}")
        if inspect.isgeneratorfunction(func):
            raise TypeError(
                f"refcnn.{type(self).__name__}() cannot decorate the generator function {func.__name__!r} "
                f"(its body runs after the call returns): use `with refcnn.{type(self).__name__}():` inside it"
            )

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.clone():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class _NoParamDecorator(_GradModeContext):
    """``@no_grad`` works without parentheses too, as torch's (``no_grad(f)`` is ``no_grad()(f)``)."""

    def __new__(cls, orig_func: Callable[..., Any] | None = None) -> Any:
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_NoParamDecorator):
    """Forwards in this block (or decorated function) keep no context for backward.

    Use it for evaluation and logging: the memory a backward would need is not held, and a
    grad-mode forward still waiting for its backward is left untouched, so a logging
    forward between a forward and its backward is harmless. A ``backward`` inside the
    block, or of a module whose only forward since its last backward ran in it, raises
    RuntimeError. BatchNorm in training mode still updates its running statistics and
    Dropout still drops, as in PyTorch. Nests; per thread.

    See https://pytorch.org/docs/stable/generated/torch.no_grad.html
    """

    mode = False


class enable_grad(_NoParamDecorator):
    """Grad mode inside a ``no_grad`` block (or decorated function), as torch.enable_grad."""

    mode = True


class set_grad_enabled(_GradModeContext):
    """``set_grad_enabled(False)`` switches grad mode off now (a function call); as a
    context manager or decorator it restores the previous mode on exit, as torch's."""

    def __init__(self, mode: bool) -> None:
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled(mode) takes a bool, got {mode!r}")
        self.prev = state.enabled
        self.mode = mode
        state.enabled = mode

    def __call__(self, func: F) -> F:
        state.enabled = self.prev  # as a decorator it changes nothing until the function runs
        return super().__call__(func)

    def __enter__(self) -> None:
        state.enabled = self.mode

    def clone(self) -> set_grad_enabled:
        return type(self)(self.mode)
