"""Containers, as torch.nn's: Sequential, ModuleList, ModuleDict.

Their children are registered sub-modules, so ``state_dict()`` keys, ``parameters()``,
``train()``/``eval()`` and ``to()`` reach them with torch's names (``0.weight``,
``blocks.2.bias``, ``heads.cls.weight``). Only Sequential has a forward and a backward;
a ModuleList or ModuleDict holds modules for a parent's forward and backward to call.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Any

from .module import Module, backward_params, takes_input_grad

__all__ = ["ModuleDict", "ModuleList", "Sequential"]


def _abs_index(idx: Any, size: int, owner: str) -> int:
    i = operator.index(idx)
    if not -size <= i < size:
        raise IndexError(f"index {i} is out of range for {owner} of length {size}")
    return i % size


def _renumber(module: Module) -> None:
    """Keys '0', '1', ... in order, after a deletion (as torch's containers do)."""
    object.__setattr__(module, "_modules", OrderedDict((str(i), m) for i, m in enumerate(module._modules.values())))


class Sequential(Module):
    """Modules applied in order; backward runs their backwards in reverse.

    ``Sequential(a, b, c)`` (children named '0', '1', '2') or
    ``Sequential(OrderedDict(name=module, ...))``. Indexing, ``len``, iteration, ``append``,
    ``insert``, ``extend``, ``pop``, ``del`` and ``+`` work as torch.nn.Sequential's. A
    slice is a Sequential of the same modules under their original names, as torch's:
    ``model[1:3]`` has children '1' and '2', so its ``state_dict`` keys are the model's.

    https://pytorch.org/docs/stable/generated/torch.nn.Sequential.html
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
        self.add_module(name, module)

    def _key(self, idx: Any) -> str:
        return list(self._modules)[_abs_index(idx, len(self), type(self).__name__)]

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            # a subclass with its own constructor (LeNet5) slices to a plain Sequential
            cls = type(self) if type(self).__init__ is Sequential.__init__ else Sequential
            return cls(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._key(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, self._key(idx), module)

    def __delitem__(self, idx: int | slice) -> None:
        keys = list(self._modules)[idx] if isinstance(idx, slice) else [self._key(idx)]
        for key in keys:
            del self._modules[key]
        _renumber(self)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __add__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but {type(other)} is given.")
        return Sequential(*self, *other)

    def __iadd__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but {type(other)} is given.")
        return self.extend(other)

    def append(self, module: Module) -> Sequential:
        self._add(str(len(self)), module)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential takes Modules, got {type(module).__name__}")
        n = len(self)
        if not -n <= index <= n:
            raise IndexError(f"index {index} is out of range for inserting into Sequential of length {n}")
        items = list(self._modules.values())
        items.insert(index + n if index < 0 else index, module)
        object.__setattr__(self, "_modules", OrderedDict((str(i), m) for i, m in enumerate(items)))
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for m in modules:
            self.append(m)
        return self

    def pop(self, key: int | slice) -> Any:
        v = self[key]
        del self[key]
        return v

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    @takes_input_grad
    def backward(self, grad_output: Any, *, input_grad: bool = True) -> Any:
        """dL/dx through every module in reverse. ``input_grad=False`` returns None and lets
        the first module skip computing dL/dx (a training loop never uses it; autograd
        likewise skips an input that does not require grad)."""
        modules = list(self._modules.values())
        for m in reversed(modules[1:]):
            grad_output = m.backward(grad_output)
        if not modules:
            return grad_output if input_grad else None
        return modules[0].backward(grad_output) if input_grad else backward_params(modules[0], grad_output)


class ModuleList(Module):
    """A list of modules, registered as children '0', '1', ... (so they are in
    ``parameters()`` and ``state_dict()``), as torch.nn.ModuleList. Indexing, slicing (a new
    ModuleList, renumbered from 0, as torch's), ``len``, iteration, ``append``, ``extend``,
    ``insert``, ``pop``, ``del`` (renumbers) and ``+``. It has no forward or backward:
    a parent Module's forward calls its entries, and the parent's backward their backwards.

    https://pytorch.org/docs/stable/generated/torch.nn.ModuleList.html
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_abs_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, str(_abs_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx: int | slice) -> None:
        keys = (
            [str(k) for k in range(len(self))[idx]]
            if isinstance(idx, slice)
            else [str(_abs_index(idx, len(self), "ModuleList"))]
        )
        for key in keys:
            del self._modules[key]
        _renumber(self)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList(chain(self, other))

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if not isinstance(modules, Iterable):
            raise TypeError(f"ModuleList.extend should be called with an iterable, but got {type(modules).__name__}")
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        items = list(self._modules.values())
        items.insert(index, module)
        object.__setattr__(self, "_modules", OrderedDict((str(i), m) for i, m in enumerate(items)))

    def pop(self, key: int | slice) -> Any:
        v = self[key]
        del self[key]
        return v


class ModuleDict(Module):
    """A dict of modules, registered as children under their keys (in insertion order), as
    torch.nn.ModuleDict: ``[key]``, ``in``, ``len``, iteration over keys, ``keys``,
    ``values``, ``items``, ``update``, ``pop``, ``clear``, ``del``. No forward or backward
    of its own, as ModuleList.

    https://pytorch.org/docs/stable/generated/torch.nn.ModuleDict.html
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Any:
        return self._modules.keys()

    def values(self) -> Any:
        return self._modules.values()

    def items(self) -> Any:
        return self._modules.items()

    def clear(self) -> None:
        self._modules.clear()

    def pop(self, key: str) -> Module:
        v = self[key]
        del self[key]
        return v

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add (or replace) modules from a mapping or an iterable of (key, module) pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs: Iterable[Any] = modules.items()
        elif isinstance(modules, Iterable):
            pairs = modules
        else:
            raise TypeError(
                f"ModuleDict.update should be called with an iterable of key/value pairs, but got {type(modules).__name__}"
            )
        for j, pair in enumerate(pairs):
            if not isinstance(pair, Iterable) or isinstance(pair, (str, bytes)):
                raise TypeError(f"ModuleDict update sequence element #{j} should be a (key, module) pair, got {pair!r}")
            pair = tuple(pair)
            if len(pair) != 2:
                raise ValueError(f"ModuleDict update sequence element #{j} has length {len(pair)}; 2 is required")
            self[pair[0]] = pair[1]
