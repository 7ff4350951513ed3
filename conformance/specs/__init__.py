"""Every spec, found by name. One file per op family; each file's ``SPECS`` lists its specs.

A family whose refcnn code is missing (not written yet, or broken) is reported by
``load_errors`` instead of silently dropping its specs.
"""

from __future__ import annotations

import importlib

from .base import OpSpec, Spec

FAMILIES = [
    "linear",
    "conv",
    "pool",
    "activation",
    "loss",
    "normalization",
    "dropout",
    "modules",
    "optim",
    "data",
    "chains",
]

_specs: dict[str, Spec] | None = None
load_errors: dict[str, str] = {}


def all_specs() -> dict[str, Spec]:
    """name -> spec for every family that imports (errors kept in ``load_errors``)."""
    global _specs
    if _specs is None:
        _specs = {}
        for family in FAMILIES:
            try:
                mod = importlib.import_module(f"{__name__}.{family}")
            except Exception as exc:  # a family whose refcnn side is not there yet
                load_errors[family] = f"{type(exc).__name__}: {exc}"
                continue
            for spec in mod.SPECS:
                _specs[spec.name] = spec
    return _specs


def op_specs() -> dict[str, OpSpec]:
    return {n: s for n, s in all_specs().items() if isinstance(s, OpSpec)}


def get(name: str) -> Spec:
    specs = all_specs()
    if name not in specs:
        raise KeyError(f"no conformance spec named {name!r}; known: {sorted(specs)}")
    return specs[name]


__all__ = ["FAMILIES", "OpSpec", "Spec", "all_specs", "get", "load_errors", "op_specs"]
