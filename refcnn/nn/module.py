"""Module: the state-holding side of refcnn, as torch.nn.Module.

A Module's ``forward(x)`` computes its output through the kernels and keeps the context
its ``backward`` needs; ``backward(grad_out)`` returns dL/dx and *accumulates* dL/dp into
each Parameter's ``.grad`` until ``zero_grad()``, as PyTorch does.

Which forward a backward belongs to, without an autograd tape:

- Each forward in grad mode keeps its context; ``backward`` uses the newest one and uses it
  up, so a backward with no forward before it, or a second one for the same forward,
  raises RuntimeError. Under ``refcnn.no_grad()`` a forward keeps nothing (and leaves a
  pending context alone); a backward there, or after only such forwards, raises.
- Within one forward pass (one call of the outermost module), a module used several times
  (a shared layer) keeps one context per use, and its backwards take them newest first:
  the reverse order a parent's backward runs its children in.
- A module that runs forward in a *new* pass while its previous pass still waits for a
  backward (a logging or evaluation forward between a forward and its backward) cannot
  tell which batch the next backward is for. Rather than silently mixing one batch's
  gradient with another's inputs, it drops the old context and its next backward raises
  RuntimeError, saying to run such forwards under ``refcnn.no_grad()``.
- ``train()``/``eval()`` that change a module's mode drop its pending contexts: a forward
  pass belongs to the mode it ran in (an evaluation pass left behind by ``model.eval()``
  is gone once ``model.train()`` resumes training).

Built-in layers share their plumbing through :class:`KernelModule`: a forward is its
arguments plus one ``self._run_kernel(op, x, *params, **config)``, and the backward is
inherited. A Module written by a user defines ``backward`` itself: the children's
backwards in the reverse order of the forward, returning dL/dinput.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np

from .. import kernels
from .._grad_mode import state as _grad
from ..kernels._checks import FLOAT_DTYPES
from ..kernels.registry import Kernel, Saved
from .parameter import Parameter

__all__ = ["KernelModule", "Module", "Parameter", "backward_params", "float_dtype", "takes_input_grad"]

M = TypeVar("M", bound="Module")
F = TypeVar("F", bound=Callable[..., Any])


def float_dtype(dtype: Any, owner: str) -> np.dtype:
    """Normalise a ``dtype=`` argument: None means float32; only float32/float64 allowed."""
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {dt}")
    return dt


def _as_array(value: Any) -> np.ndarray:
    """A state-dict value as an ndarray: what np.asarray takes, a Parameter, or a torch
    tensor of any kind (requiring grad, non-contiguous, bfloat16, ...) without importing torch."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, Parameter):
        return value.data
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16; float32 holds it exactly
            value = value.float()
        return np.asarray(value.numpy())
    return np.asarray(value)


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


# ---- the contexts a module keeps between a forward and its backward ------------------------
class _Pending:
    """Contexts of the forward pass ``pass_id`` still waiting for their backward (newest last),
    and how many contexts of earlier passes were dropped unused (then backward raises)."""

    __slots__ = ("contexts", "dropped", "pass_id")

    def __init__(self, pass_id: int, ctx: Any) -> None:
        self.pass_id = pass_id
        self.contexts = [ctx]
        self.dropped = 0


_NO_GRAD = "no_grad"  # _ctx after a forward under no_grad, with nothing pending


# ---- naming the layer an input error comes from ------------------------------------------------
def _name_layer(exc: BaseException, root: Module) -> None:
    """Prefix a ValueError/TypeError/IndexError raised inside ``root`` by one of its
    layers with that layer's name in ``root``: "in layer '7' (Linear) of LeNet5: ..."."""
    layer = exc.__dict__.pop("_refcnn_layer", None)
    if layer is None or layer is root or type(exc) not in _NAMED_ERRORS:
        return
    if len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return
    for name, m in root.named_modules():
        if m is layer:
            exc.args = (f"in layer '{name}' ({type(layer).__name__}) of {type(root).__name__}: {exc.args[0]}",)
            return


_NAMED_ERRORS = (ValueError, TypeError, IndexError)


def takes_input_grad(backward: F) -> F:
    """Mark a ``backward`` that takes ``input_grad=False`` (skip dL/dx, return None)."""
    backward.takes_input_grad = True  # type: ignore[attr-defined]
    return backward


class Module:
    """Base class of every layer. Subclasses set Parameters, buffers (``register_buffer``)
    and sub-modules as attributes, and define ``forward`` and ``backward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
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
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to module {name!r} (Module or None required)")
            self._modules[name] = None
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

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def _check_name(self, kind: str, name: Any, store: dict[str, Any]) -> None:
        """torch's checks of a new parameter/buffer/module name."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in store:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter; None keeps the name reserved but out of state_dict (``bias=False``)."""
        self._check_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} object to parameter {name!r} (Parameter or None)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: np.ndarray | None, persistent: bool = True) -> None:
        """Add non-learnable state (running statistics). A persistent buffer is saved by
        ``state_dict()``; ``persistent=False`` keeps it out, as torch's."""
        self._check_name("buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, np.ndarray):
            raise TypeError(f"cannot assign {type(tensor).__name__} object to buffer {name!r} (ndarray or None)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under ``name`` (what attribute assignment does, with torch's checks)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name("module", name, self._modules)
        self._modules[name] = module

    register_module = add_module

    # ---- traversal -------------------------------------------------------------------
    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and every descendant, parents first, each once (unless
        ``remove_duplicate=False``), named by its dotted path (``features.3``)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named_members(
        self, store: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen: set[int] = set()
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, store).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, np.ndarray]]:
        """Every buffer, persistent or not (``state_dict`` has the persistent ones)."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self: M, fn: Callable[[Module], Any]) -> M:
        """Call ``fn`` on every child (recursively), then on this module, as torch's
        (``model.apply(init_weights)``); returns the module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes, gradients, dtype -----------------------------------------------------
    def train(self: M, mode: bool = True) -> M:
        """Training mode (Dropout drops, BatchNorm uses batch statistics) or, with False,
        evaluation mode, for this module and every descendant. A module whose mode changes
        drops the contexts of forwards still waiting for a backward (module docstring)."""
        mode = bool(mode)
        for m in self.modules():
            if m.training != mode:
                object.__setattr__(m, "training", mode)
                object.__setattr__(m, "_ctx", None)
        return self

    def eval(self: M) -> M:
        return self.train(False)

    def requires_grad_(self: M, requires_grad: bool = True) -> M:
        """Freeze (False) or unfreeze every parameter: a frozen one gets no ``.grad`` from
        backward, so optimizers skip it (as torch's skip parameters whose grad is None)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    def to(self: M, dtype: Any) -> M:
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

    def float(self: M) -> M:
        return self.to(np.float32)

    def double(self: M) -> M:
        return self.to(np.float64)

    # ---- state dict ------------------------------------------------------------------
    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """(key, Parameter or buffer) of every parameter and persistent buffer, parents
        before children; a module reached by two paths appears under both, as in torch."""
        for mod_prefix, m in self.named_modules(prefix=prefix, remove_duplicate=False):
            dot = f"{mod_prefix}." if mod_prefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    yield dot + name, p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent_buffers_set:
                    yield dot + name, b

    def state_dict(self, *, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Any]:
        """Parameters then persistent buffers of each module, parents before children, with
        PyTorch's keys (``0.weight``, ``1.running_mean``). The arrays are the module's own
        (not copies); ``keep_vars=True`` gives the Parameters themselves."""
        return OrderedDict(
            (key, v.data if isinstance(v, Parameter) and not keep_vars else v) for key, v in self._state_items(prefix)
        )

    def _fill_missing_state(self, given: dict[str, np.ndarray], prefix: str, version: int | None) -> None:
        """Hook: supply state a checkpoint may lack (BatchNorm's num_batches_tracked)."""

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the existing arrays (so optimizers keep their references).

        Takes what ``torch.nn.Module.load_state_dict`` takes: NumPy arrays, anything
        ``np.asarray`` takes, torch tensors (also requiring grad, non-contiguous, float16 or
        bfloat16); each is cast to its target's dtype, as ``Tensor.copy_`` does. A
        BatchNorm's missing ``num_batches_tracked`` is left as it is, as torch fills it in.
        With ``strict``, every missing, unexpected or mis-shaped key is named in one error
        and nothing is changed.
        """
        own = self.state_dict()
        given = {str(k): _as_array(v) for k, v in dict(state_dict).items()}
        metadata = getattr(state_dict, "_metadata", None)
        for mod_prefix, m in self.named_modules(remove_duplicate=False):
            local = metadata.get(mod_prefix, {}) if isinstance(metadata, Mapping) else {}
            m._fill_missing_state(given, f"{mod_prefix}." if mod_prefix else "", local.get("version"))
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
            if key in given and given[key] is not target:
                target[...] = given[key].astype(target.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ---- forward / backward ----------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def backward(self, grad_output: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} does not define backward: refcnn has no autograd, so a Module with its own "
            "forward needs `def backward(self, grad_output)` that calls the backward of each child its forward "
            "called, in the reverse order, passing each the gradient of that child's output, and returns "
            "dL/dinput (summed over every path the input took)"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``forward``, counting forward passes (a call from outside any module's forward
        starts one) and naming the layer an input error comes from."""
        if _grad.depth:
            try:
                return self.forward(*args, **kwargs)
            except _NAMED_ERRORS as exc:
                exc.__dict__.setdefault("_refcnn_layer", self)
                raise
        _grad.depth = 1
        _grad.pass_id += 1
        try:
            return self.forward(*args, **kwargs)
        except BaseException as exc:
            for m in self.modules():  # a failed pass leaves nothing for a backward
                object.__setattr__(m, "_ctx", None)
            if isinstance(exc, _NAMED_ERRORS):
                exc.__dict__.setdefault("_refcnn_layer", self)
                _name_layer(exc, self)
            raise
        finally:
            _grad.depth = 0

    def _save_for_backward(self, ctx: Any) -> None:
        """Keep ``ctx`` for this forward's backward; under no_grad keep nothing."""
        state, d = _grad, self.__dict__
        pending = d["_ctx"]
        if not state.enabled:
            if pending is None:
                d["_ctx"] = _NO_GRAD
            return
        if not state.depth:  # forward called directly, not through __call__: a pass of its own
            state.pass_id += 1
        pass_id = state.pass_id
        if not isinstance(pending, _Pending):
            d["_ctx"] = _Pending(pass_id, ctx)
        elif pending.pass_id == pass_id:  # used again in the same pass: a shared layer
            pending.contexts.append(ctx)
        elif pending.pass_id == state.refused_pass:  # a pass whose backward was refused: replace it
            d["_ctx"] = _Pending(pass_id, ctx)
        else:  # an earlier pass still waits for its backward: drop it, and refuse the next backward
            pending.dropped += len(pending.contexts)
            pending.contexts = [ctx]
            pending.pass_id = pass_id

    def _peek_ctx(self) -> Any:
        """The context the next backward uses (without using it up), or the error saying
        why there is none."""
        name = type(self).__name__
        if not _grad.enabled:
            raise RuntimeError(f"{name}.backward called inside refcnn.no_grad(): call it outside the no_grad block")
        pending = self.__dict__["_ctx"]
        if isinstance(pending, _Pending):
            if not pending.dropped:
                return pending.contexts[-1]
            object.__setattr__(self, "_ctx", None)
            _grad.refused_pass = pending.pass_id  # the other layers of this pass: replaced by the next
            raise RuntimeError(
                f"{name}.backward: {name} ran forward in a new call before the backward of its previous forward, "
                "so this backward could silently mix two batches; run forwards whose backward will not come "
                "(evaluation, logging) under `with refcnn.no_grad():`, then run forward and backward again"
            )
        if pending is _NO_GRAD:
            raise RuntimeError(
                f"{name}.backward: the forward before it ran under refcnn.no_grad(), which keeps nothing for "
                "backward: run the forward outside no_grad"
            )
        raise RuntimeError(
            f"{name}.backward called without a forward before it (or twice for one forward): run forward again first"
        )

    def _take_ctx(self) -> Any:
        """The context the next backward uses; it serves that backward only."""
        ctx = self._peek_ctx()
        self._pop_ctx()
        return ctx

    def _pop_ctx(self) -> None:
        contexts = self.__dict__["_ctx"].contexts
        contexts.pop()
        if not contexts:
            self.__dict__["_ctx"] = None

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


# ---- the plumbing of the built-in layers ---------------------------------------------------
class _KernelCall(NamedTuple):
    """What a layer's backward needs from its forward's kernel call."""

    kernel: Kernel
    ctx: Saved
    params: tuple[Any, ...]  # the Parameters get the gradients after dL/dx, in order
    batch_axis: int | None  # the axis added to an unbatched input, if any
    shape: tuple[int, ...]  # the module's output shape and dtype, which grad_output must have
    dtype: np.dtype


class KernelModule(Module):
    """A layer that is one kernel call: its ``forward`` is its arguments plus
    ``self._run_kernel(...)``; ``backward`` is this class's."""

    def _explain_rejection(self, x: Any) -> None:
        """Hook: raise the layer's own error for an input its kernel rejected (the dtype it
        holds, its channels), where that says more than the kernel's; else return."""

    def _run_kernel(
        self, op: str, x: Any, *params: Any, batch_axis: int | None = None, **config: Any
    ) -> tuple[Any, Saved]:
        """Run the op's kernel in force (``kernels.use`` applies) on ``x`` and ``params``
        (Parameters, arrays or None) and keep what backward needs (nothing under no_grad).

        ``batch_axis`` adds that axis to an unbatched ``x`` before the kernel and removes
        it from the output (0: (C, H, W) as one sample; 1: channels as the batch).
        The kernel validates everything once; a rejection gets the layer's own wording
        when it has one (``_explain_rejection``). Returns (y, the kernel's ctx).
        """
        kernel = kernels.get(op)
        arrays = [p.data if isinstance(p, Parameter) else p for p in params]
        try:
            y, ctx = kernel.forward(x if batch_axis is None else np.expand_dims(x, batch_axis), *arrays, **config)
        except (TypeError, ValueError):
            try:
                self._explain_rejection(x)
            except (TypeError, ValueError) as better:
                raise better from None
            raise
        if batch_axis is not None:
            y = np.squeeze(y, batch_axis)
        self._save_for_backward(
            _KernelCall(kernel, ctx, params, batch_axis, ctx.shape if batch_axis is None else y.shape, ctx.dtype)
            if _grad.enabled
            else None
        )
        return y, ctx

    @takes_input_grad
    def backward(self, grad_output: Any, *, input_grad: bool = True) -> Any:
        """dL/dx from dL/dy (of the shape and dtype forward returned), accumulating each
        parameter's gradient; ``input_grad=False`` returns None and lets the kernel skip dL/dx."""
        call = self._peek_ctx()
        grad = grad_output if isinstance(grad_output, np.ndarray) else np.asarray(grad_output)
        if grad.shape != call.shape:  # checked before the ctx is used up, so a retry can work
            raise ValueError(
                f"{type(self).__name__}.backward expected grad_output of shape {call.shape} (the output's), "
                f"got {grad.shape}"
            )
        if grad.dtype != call.dtype:
            raise TypeError(
                f"{type(self).__name__}.backward expected grad_output of dtype {call.dtype} (the output's), "
                f"got {grad.dtype}"
            )
        self._pop_ctx()
        if call.batch_axis is not None:
            grad = np.expand_dims(grad, call.batch_axis)
        grads = call.kernel.backward_checked(grad, call.ctx, input_grad)
        for p, g in zip(call.params, grads[1:], strict=False):
            if isinstance(p, Parameter) and g is not None:
                p.accumulate(g)
        gx = grads[0]
        if gx is not None and call.batch_axis is not None:
            gx = np.squeeze(gx, call.batch_axis)
        return gx


def backward_params(module: Module, grad_output: Any) -> None:
    """Accumulate ``module``'s parameter gradients without asking for dL/dx where the
    module can skip it (its backward is marked ``takes_input_grad``); returns None."""
    if getattr(type(module).backward, "takes_input_grad", False):
        module.backward(grad_output, input_grad=False)  # type: ignore[call-arg]
    else:
        module.backward(grad_output)
