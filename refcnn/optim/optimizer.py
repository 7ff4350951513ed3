"""Optimizer: the base class of refcnn's optimizers, as torch.optim.Optimizer.

An optimizer holds ``param_groups`` (a list of dicts: ``'params'``, a list of
:class:`~refcnn.nn.Parameter`, plus that group's options such as ``'lr'``) and ``state``
(a dict from Parameter to that parameter's buffers). ``step()`` updates every parameter whose
``.grad`` is not None, *in place* (``p.data`` keeps its identity, so modules see the new
values) and in the parameter's dtype: float32 parameters are updated in float32 arithmetic, as
PyTorch does on CPU. Parameters whose ``.grad`` is None are skipped and get no state: a
frozen parameter (``requires_grad_(False)``) never gets a ``.grad``, so it is never updated.

``state_dict()`` has PyTorch's layout, so a conformance check or a checkpoint can move state
between refcnn and torch::

    {'state': {0: {'step': 3.0, 'exp_avg': ndarray, ...}, ...},
     'param_groups': [{'lr': 0.001, ..., 'params': [0, 1]}, ...]}

Parameters are numbered in order of appearance across the groups; ``'step'`` is a Python
float (PyTorch keeps a float tensor); arrays are copies, so a saved dict does not change as
training goes on. ``load_state_dict`` takes such a dict (from refcnn or from torch: tensors
are converted with ``np.asarray``) and copies it in, casting floating state to each
parameter's dtype as torch does.

Subclasses pass their defaults to ``__init__`` and implement ``_update(p, grad, group)``;
:meth:`step` validates every gradient first, then calls ``_update`` once per parameter with a
gradient, in group order.

PyTorch: https://pytorch.org/docs/stable/optim.html#torch.optim.Optimizer
"""

from __future__ import annotations

import copy
import functools
import numbers
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

import numpy as np

from ..kernels._checks import FLOAT_DTYPES
from ..nn.module import Parameter

__all__ = ["Optimizer"]


def _real(value: Any, name: str, owner: str) -> None:
    """A hyperparameter must be a real number (torch fails on the comparison otherwise)."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")


def _lerp_(a: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``a.lerp_(end, weight)`` in place, with ATen's two branches (weight and ``1 - weight``
    in the array's dtype), so the rounding matches PyTorch's:

        |w| < 0.5:  a + w * (end - a)          else:  end - (end - a) * (1 - w)
    """
    dt = a.dtype.type
    w = dt(weight)
    if abs(w) < 0.5:
        a += w * (end - a)
    else:
        np.subtract(end, (end - a) * (dt(1) - w), out=a)


def _mark_called(step: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``step`` so that it records that it ran (LRScheduler warns when it steps before
    the optimizer has, as PyTorch does)."""

    @functools.wraps(step)
    def wrapper(self: Optimizer, *args: Any, **kwargs: Any) -> Any:
        self._opt_called = True
        return step(self, *args, **kwargs)

    return wrapper


class Optimizer:
    """Base class of all optimizers (torch.optim.Optimizer).

    Args:
        params: an iterable of :class:`~refcnn.nn.Parameter` (``model.parameters()``), of
            ``(name, Parameter)`` pairs (``model.named_parameters()``: the names are kept in
            each group's ``'param_names'``), or of dicts, each a parameter group
            ``{'params': ..., 'lr': ...}`` whose options override ``defaults``.
        defaults: the default option values of every group.

    Attributes:
        defaults (dict), param_groups (list of dicts), state (dict: Parameter -> dict).
    """

    _opt_called: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _mark_called(cls.__dict__["step"])  # type: ignore[method-assign]

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self.state: defaultdict[Parameter, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Parameters "
                f"or dicts, but got {type(params).__name__}"
            )
        if isinstance(params, Mapping):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Parameters "
                "or dicts, but got a dict: pass a list of parameter groups, [{'params': ...}]"
            )
        if not isinstance(params, Iterable):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Parameters "
                f"or dicts, but got {type(params).__name__}"
            )
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ---- parameter groups ----------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Append a group (a dict with ``'params'`` and optional per-group options); missing
        options take the optimizer's defaults. A parameter may be in one group only."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"param_group must have a 'params' entry, got keys {sorted(param_group)}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        elif isinstance(params, Iterable):
            params = list(params)
        else:
            raise TypeError(f"param_group['params'] must be a Parameter or an iterable of them, got {params!r}")

        tensors: list[Any] = []
        names: list[Any] = []
        for item in params:
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise TypeError(
                        f"named parameters must be (name, Parameter) pairs, got a tuple of length {len(item)}"
                    )
                names.append(item[0])
                tensors.append(item[1])
            else:
                tensors.append(item)
        if names and len(names) != len(tensors):
            raise ValueError("all optimizer params should be with/without names. Some param names are missing")
        for p in tensors:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"optimizer can only optimize Parameters, but one of the params is {type(p).__module__}."
                    f"{type(p).__name__}"
                )
        group["params"] = tensors
        if names:
            group["param_names"] = names

        for name, default in self.defaults.items():
            group.setdefault(name, default)

        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error; "
                "see github.com/pytorch/pytorch/issues/40967 for more information",
                stacklevel=3,
            )

        seen: set[int] = set()
        for other in self.param_groups:
            seen.update(id(p) for p in other["params"])
            if ("param_names" in group) != ("param_names" in other):
                which = "with names" if "param_names" in group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    # ---- gradients and the step -------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: ``None`` (the default, so a parameter with no new gradient
        is skipped by the next step) or zeros in place (``set_to_none=False``: the next step
        then does update it, with a zero gradient, as PyTorch does)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()`` if one is given
        (it is called first, to recompute the loss and the gradients)."""
        self._opt_called = True
        loss = None
        if closure is not None:
            loss = closure()
        checked = []
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._check(p, index)
                    checked.append((p, group))
                index += 1
        for p, group in checked:
            self._update(p, p.grad, group)
        return loss

    def _update(self, p: Parameter, grad: np.ndarray, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define _update")

    def _check(self, p: Parameter, index: int) -> None:
        """The gradient and the state fit the parameter (refcnn never mixes dtypes)."""
        owner = type(self).__name__
        data, grad = p.data, p.grad
        if not isinstance(data, np.ndarray) or data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{owner}: parameter {index} must hold a float32 or float64 ndarray, got {data!r}")
        if not isinstance(grad, np.ndarray):
            raise TypeError(
                f"{owner}: the grad of parameter {index} must be a numpy.ndarray, got {type(grad).__name__}"
            )
        if grad.shape != data.shape:
            raise ValueError(
                f"{owner}: the grad of parameter {index} has shape {grad.shape}, the parameter {data.shape}"
            )
        if grad.dtype != data.dtype:
            raise TypeError(
                f"{owner}: the grad of parameter {index} has dtype {grad.dtype}, the parameter {data.dtype}"
            )
        for key, value in self.state.get(p, {}).items():
            if isinstance(value, np.ndarray) and (value.shape != data.shape or value.dtype != data.dtype):
                raise TypeError(
                    f"{owner}: state {key!r} of parameter {index} has shape {value.shape} and dtype "
                    f"{value.dtype}, the parameter {data.shape} and {data.dtype} (was the model "
                    "converted with .to() after the optimizer stepped?)"
                )

    # ---- state dict ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state in PyTorch's layout: ``{'state': {index: {...}}, 'param_groups':
        [{..., 'params': [indices]}]}``; indices count the parameters across groups in order."""
        mapping: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            mapping.update({id(p): i for i, p in enumerate(group["params"], start) if id(p) not in mapping})
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {
            mapping[id(p)]: {k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v)) for k, v in s.items()}
            for p, s in self.state.items()
            if id(p) in mapping
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy in a state dict from :meth:`state_dict` (refcnn's or torch's).

        Groups must match in number and size; every group must hold the options this
        optimizer reads; state arrays must have their parameter's shape. Floating arrays are
        cast to the parameter's dtype, ``'step'`` becomes a float. Nothing changes on error.
        """
        owner = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{owner}.load_state_dict expects a dict, got {type(state_dict).__name__}")
        missing = [k for k in ("state", "param_groups") if k not in state_dict]
        if missing:
            raise ValueError(f"{owner}.load_state_dict: the state dict lacks {missing}, got keys {sorted(state_dict)}")
        saved_groups = copy.deepcopy(list(state_dict["param_groups"]))
        groups = self.param_groups
        if len(groups) != len(saved_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups: "
                f"{len(saved_groups)} in the state dict, {len(groups)} in the optimizer"
            )
        for i, (g, sg) in enumerate(zip(groups, saved_groups, strict=True)):
            if not isinstance(sg, dict) or "params" not in sg:
                raise ValueError(f"loaded state dict: param group {i} is not a dict with a 'params' entry")
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of "
                    f"optimizer's group: group {i} has {len(sg['params'])} parameters in the state dict, "
                    f"{len(g['params'])} in the optimizer"
                )
            lacking = [k for k in self.defaults if k not in sg]
            if lacking:
                raise ValueError(f"loaded state dict: param group {i} lacks the {owner} options {lacking}")
        id_map = dict(
            zip(
                chain.from_iterable(sg["params"] for sg in saved_groups),
                chain.from_iterable(g["params"] for g in groups),
                strict=True,
            )
        )
        state: defaultdict[Parameter, dict[str, Any]] = defaultdict(dict)
        for key, values in dict(state_dict["state"]).items():
            if key not in id_map:
                raise ValueError(
                    f"loaded state dict has state for parameter {key!r}, which no param group lists "
                    f"(they list {sorted(id_map, key=str)})"
                )
            p = id_map[key]
            state[p] = {name: self._cast(p, key, name, value) for name, value in dict(values).items()}
        for g, sg in zip(groups, saved_groups, strict=True):
            sg["params"] = g["params"]
            if "param_names" in g and "param_names" not in sg:
                sg["param_names"] = g["param_names"]
        self.param_groups = saved_groups
        self.state = state
        self._after_load()

    def _cast(self, p: Parameter, index: Any, name: str, value: Any) -> Any:
        if name == "step":
            return float(value)
        if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
            arr = np.array(value, copy=True)
            if arr.dtype.kind == "f":
                if arr.shape != p.data.shape:
                    raise ValueError(
                        f"loaded state dict: state {name!r} of parameter {index!r} has shape {arr.shape}, "
                        f"the parameter {p.data.shape}"
                    )
                arr = arr.astype(p.data.dtype, copy=False)
            return arr
        return copy.deepcopy(value)

    def _after_load(self) -> None:
        """Hook for subclasses (AdamW forces ``decoupled_weight_decay`` as torch does)."""

    # ---- printing -----------------------------------------------------------------------------
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines) + "\n)"
