"""An example plugin: registers a second conv2d implementation, ``delegating``, that hands
every call to the built-in ``reference`` one. Check it with

    python -m refcnn conformance --plugin plugin_example.py --impl delegating

A real rewrite replaces the two functions' bodies; the suite then checks it exactly as the
built-ins: forward, every gradient, the adjoint identity, finite differences and rejection
parity, in float32 and float64. Raising NotImplementedError for a configuration you do not
cover is allowed: the report counts it as unsupported, never as passed.
"""

from __future__ import annotations

from typing import Any

from refcnn import kernels

_reference = kernels.get("conv2d", "reference")


def delegating_forward(x: Any, weight: Any, bias: Any, *, stride: Any, padding: Any, dilation: Any, groups: int) -> Any:
    """The signature of every conv2d implementation (each spatial argument an (h, w) pair); the
    op's validator has already run, so only valid inputs arrive here."""
    return _reference.forward_impl(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def delegating_backward(grad_y: Any, ctx: Any) -> Any:
    return _reference.backward_impl(grad_y, ctx)


kernels.register("conv2d", "delegating", delegating_forward, delegating_backward)
