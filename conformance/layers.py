"""Check layer classes written from scratch: :func:`register_layer` turns one into a kernel.

A from-scratch layer is an object with ``forward(x)`` and ``backward(grad)`` that holds its
own weights and gradients::

    class Conv2D:
        def __init__(self, C_in, C_out, kernel_size, stride=1, padding=0): ...  # sets W, b
        def forward(self, X): ...        # returns the output
        def backward(self, dout): ...    # sets dW, db; returns the gradient w.r.t. X

``register_layer("conv2d", "mine", make, params={"weight": "W", "bias": "b"},
grads={"weight": "dW", "bias": "db"})`` registers an ordinary kernel pair in
``refcnn.kernels`` under ("conv2d", "mine"), with the op's own signature, so the suite (and
refcnn's modules, inside ``kernels.use(conv2d="mine")``) check and call it like any other
implementation. For each call the kernel:

1. builds the op's configuration under torch.nn's constructor names (spatial values as
   (h, w) pairs) plus ``input_shape``, and calls ``make(config)`` for a fresh layer;
2. sets the parameters the suite drew, in torch's layout (transposed for
   ``weight_layout="in_out"``: a Linear that keeps W as (in_features, out_features)), on
   the attributes ``params`` names; a case without a bias sets the layer's bias to zeros;
3. runs ``forward``, then in backward ``backward(grad)`` (a loss: ``backward()`` or
   ``backward(target)``, the gradient for an upstream gradient of 1, which the kernel
   scales by the suite's), and reads the parameter gradients from the attributes ``grads``
   names, back in torch's layout.

``NotImplementedError`` from ``make`` or ``forward`` marks a configuration the class does
not cover: counted as unsupported, never as passed. Anything that breaks the protocol (make
returning None, backward returning None, a gradient of the wrong shape or dtype, a
missing attribute, a float32 input giving float64) raises :class:`LayerProtocolError`,
whose message names the class and says what was expected and what came. A Python float
returned as a loss has no dtype of its own and is taken in the input's dtype; a NumPy value
keeps its dtype, and a mismatch is reported, never cast. A layer's ctx has no ``indices``
(max pooling's check of PyTorch's flat indices does not apply to it: see
:func:`not_applicable`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from refcnn import kernels

__all__ = ["LayerProtocolError", "is_layer", "not_applicable", "register_layer"]


class LayerProtocolError(Exception):
    """A layer class broke the protocol the suite relies on (the message says how)."""


# ---- the ops a layer can implement -------------------------------------------------------------
def _pairs(kw: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {n: tuple(int(v) for v in kw[n]) for n in names}


def _conv2d_config(a: Mapping[str, Any], kw: Mapping[str, Any]) -> dict[str, Any]:
    x, w = a["x"], a["weight"]
    return {"in_channels": int(x.shape[1]), "out_channels": int(w.shape[0]),
            "kernel_size": (int(w.shape[2]), int(w.shape[3])), **_pairs(kw, "stride", "padding", "dilation"),
            "groups": int(kw["groups"]), "bias": a["bias"] is not None}  # fmt: skip


def _linear_config(a: Mapping[str, Any], kw: Mapping[str, Any]) -> dict[str, Any]:
    w = a["weight"]
    return {"in_features": int(w.shape[1]), "out_features": int(w.shape[0]), "bias": a["bias"] is not None}


def _max_pool2d_config(a: Mapping[str, Any], kw: Mapping[str, Any]) -> dict[str, Any]:
    return {**_pairs(kw, "kernel_size", "stride", "padding", "dilation"), "ceil_mode": bool(kw["ceil_mode"])}


def _avg_pool2d_config(a: Mapping[str, Any], kw: Mapping[str, Any]) -> dict[str, Any]:
    return {**_pairs(kw, "kernel_size", "stride", "padding"), "ceil_mode": bool(kw["ceil_mode"]),
            "count_include_pad": bool(kw["count_include_pad"]), "divisor_override": kw["divisor_override"]}  # fmt: skip


def _class_loss_config(a: Mapping[str, Any], kw: Mapping[str, Any]) -> dict[str, Any]:
    # target_shape == input_shape: the target holds class probabilities (as PyTorch decides)
    return {"weight": a["weight"] is not None, **kw, "target_shape": tuple(np.shape(a["target"]))}


def _as_is(a: Mapping[str, Any], kw: Mapping[str, Any]) -> dict[str, Any]:
    return dict(kw)


@dataclass(frozen=True)
class _Op:
    inputs: tuple[str, ...]  # the kernel's positional arguments, torch's names (x first, a loss's target second)
    config: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]
    params: tuple[str, ...] = ()  # inputs the layer holds as attributes
    grads: tuple[str, ...] = ()  # parameters whose gradients backward returns after x's
    loss: bool = False


_AFFINE = ("x", "weight", "bias")
_ELEMENTWISE = ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardtanh", "softmax", "log_softmax")
OPS: dict[str, _Op] = {
    "conv2d": _Op(_AFFINE, _conv2d_config, params=("weight", "bias"), grads=("weight", "bias")),
    "linear": _Op(_AFFINE, _linear_config, params=("weight", "bias"), grads=("weight", "bias")),
    "max_pool2d": _Op(("x",), _max_pool2d_config),
    "avg_pool2d": _Op(("x",), _avg_pool2d_config),
    **{op: _Op(("x",), _as_is) for op in _ELEMENTWISE},
    "cross_entropy": _Op(("x", "target", "weight"), _class_loss_config, params=("weight",), loss=True),
    "nll_loss": _Op(("x", "target", "weight"), _class_loss_config, params=("weight",), loss=True),
}
_NOT_APPLICABLE = {"max_pool2d": ("indices",)}  # what a layer cannot have: PyTorch's flat indices


# ---- registration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layer:
    op: str
    impl: str
    make: Callable[[dict[str, Any]], Any]
    params: Mapping[str, str]
    grads: Mapping[str, str]
    weight_layout: str

    @property
    def spec(self) -> _Op:
        return OPS[self.op]


_registered: dict[tuple[str, str], Callable[..., Any]] = {}  # (op, impl) -> the kernel forward it registered


def register_layer(
    op: str,
    impl: str,
    make: Callable[[dict[str, Any]], Any],
    *,
    params: Mapping[str, str] | None = None,
    grads: Mapping[str, str] | None = None,
    weight_layout: str = "torch",
) -> None:
    """Register layers built by ``make(config)`` as implementation ``impl`` of ``op``.

    ``params`` maps torch's parameter names to the layer's attributes the suite sets
    (``{"weight": "W", "bias": "b"}``), ``grads`` to the attributes it reads after backward
    (``{"weight": "dW", "bias": "db"}``). ``weight_layout="in_out"``: a linear layer keeps
    its weight as (in_features, out_features). Registering again under the same name
    replaces an earlier layer (re-running a notebook cell); refcnn's own implementations
    are never replaced.

    ``config``, under torch.nn's constructor names, spatial values as (h, w) pairs, and
    always ``input_shape``:

    - conv2d: in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
    - linear: in_features, out_features, bias
    - max_pool2d: kernel_size, stride, padding, dilation, ceil_mode
    - avg_pool2d: kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    - relu, sigmoid, tanh, silu: nothing else; leaky_relu: negative_slope; elu: alpha;
      gelu: approximate; hardtanh: min_val, max_val; softmax, log_softmax: dim
    - cross_entropy: weight (bool: class weights given), ignore_index, reduction,
      label_smoothing, target_shape (equal to input_shape: class probabilities);
      nll_loss: the same without label_smoothing
    """
    if op not in OPS:
        raise ValueError(f"register_layer: refcnn cannot check layers for op {op!r}; it can for {sorted(OPS)}")
    spec = OPS[op]
    params, grads = dict(params or {}), dict(grads or {})
    if not callable(make):
        raise TypeError(f"register_layer({op!r}, {impl!r}): make must be a function of the config, got {make!r}")
    if weight_layout not in ("torch", "in_out") or (weight_layout == "in_out" and op != "linear"):
        raise ValueError(
            f"register_layer({op!r}, {impl!r}): weight_layout must be 'torch'"
            + (" or 'in_out'" if op == "linear" else "")
            + f", got {weight_layout!r}"
        )
    for what, names, allowed in (("params", params, spec.params), ("grads", grads, spec.grads)):
        extra = sorted(set(names) - set(allowed))
        if extra:
            raise ValueError(
                f"register_layer({op!r}, {impl!r}): {what} names {extra}, but {op} has "
                + (f"only {list(allowed)}" if allowed else "none")
            )
    missing = [p for p in spec.grads if p in params and p not in grads]
    if missing:
        raise ValueError(
            f"register_layer({op!r}, {impl!r}): grads must say where the layer keeps the gradient of every "
            f"parameter in params; missing {missing} (e.g. grads={{'weight': 'dW', 'bias': 'db'}})"
        )
    if spec.grads and "weight" not in params:
        raise ValueError(
            f"register_layer({op!r}, {impl!r}): params must name the layer's weight (e.g. {{'weight': 'W'}})"
        )
    if not isinstance(impl, str) or not impl:
        raise ValueError(f"register_layer({op!r}, ...): impl must be a non-empty name, got {impl!r}")
    if op in kernels.ops() and impl in kernels.available(op) and not is_layer(op, impl):
        raise ValueError(
            f"register_layer: {op} already has an implementation named {impl!r} that is not a layer; "
            "choose another name"
        )
    layer = _Layer(op, impl, make, params, grads, weight_layout)

    def forward(*args: Any, **config: Any) -> tuple[Any, _Ctx]:
        return _forward(layer, args, config)

    def backward(grad_y: Any, ctx: _Ctx) -> tuple[Any, ...]:
        return _backward(layer, grad_y, ctx)

    forward.__doc__ = f"{op} through layers made by {_qualname(make)} (conformance.layers)."
    kernels.register(op, impl, forward, backward, replace=True)  # only a layer of ours (checked above)
    _registered[(op, impl)] = forward


def is_layer(op: str, impl: str) -> bool:
    """Whether (op, impl) is a layer registered by :func:`register_layer` (and still is)."""
    if (op, impl) not in _registered or op not in kernels.ops() or impl not in kernels.available(op):
        return False
    return kernels.get(op, impl).forward_impl is _registered[(op, impl)]


def not_applicable(op: str, impl: str) -> tuple[str, ...]:
    """The checks a layer cannot have (max_pool2d's ``indices``); empty for a kernel."""
    return _NOT_APPLICABLE.get(op, ()) if is_layer(op, impl) else ()


# ---- the kernel pair -------------------------------------------------------------------------
class _Ctx:
    """What the layer kernel's forward hands to its backward: the layer itself and what
    checking its answers needs. No ``indices``: a layer keeps its own bookkeeping."""

    __slots__ = ("bias", "layer", "loss_shape", "reduction", "target", "x_dtype", "x_shape")

    def __init__(self, layer: Any, x: np.ndarray, bias: bool, target: Any, reduction: str | None, loss_shape: Any):
        self.layer, self.x_shape, self.x_dtype = layer, x.shape, x.dtype
        self.bias, self.target, self.reduction, self.loss_shape = bias, target, reduction, loss_shape


def _name(layer: Any) -> str:
    return type(layer).__name__


def _forward(layer: _Layer, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, _Ctx]:
    spec = layer.spec
    arrays = dict(zip(spec.inputs, args, strict=False))
    arrays.update({k: kw.pop(k) for k in spec.inputs[len(args) :] if k in kw})
    x = arrays["x"]
    config = {**spec.config(arrays, kw), "input_shape": tuple(x.shape)}
    for p in spec.params:
        if arrays[p] is not None and p not in layer.params:
            raise NotImplementedError(f"the layer takes no {p} (register_layer's params has no {p!r})")
    obj = layer.make(dict(config))
    if obj is None:
        raise LayerProtocolError(
            f"{_qualname(layer.make)}(config) returned None for {layer.op} '{layer.impl}' (config {config}); it "
            "must return a layer object with forward and backward, or raise NotImplementedError for a "
            "configuration the layer does not cover"
        )
    for method in ("forward", "backward"):
        if not callable(getattr(obj, method, None)):
            raise LayerProtocolError(
                f"{_qualname(layer.make)}(config) for {layer.op} '{layer.impl}' returned a {_name(obj)}, which has "
                f"no {method}() method"
            )
    for p, attr in layer.params.items():
        _set_param(layer, obj, p, attr, arrays[p], x)
    target = arrays.get("target")
    out = obj.forward(x, target) if spec.loss else obj.forward(x)
    if spec.loss and isinstance(out, (tuple, list)):
        if not out:
            raise LayerProtocolError(f"{_name(obj)}.forward returned an empty {type(out).__name__}; it must "
                                     "return the loss, or a tuple that starts with it")  # fmt: skip
        out = out[0]
    what = "the loss" if spec.loss else "its output"
    if spec.loss and isinstance(out, (float, int)) and not isinstance(out, bool):
        out = np.asarray(out, dtype=x.dtype)  # a Python number has no dtype of its own
    if not isinstance(out, (np.ndarray, np.generic)):
        raise LayerProtocolError(f"{_name(obj)}.forward returned {_what(out)}; it must return {what} as a NumPy array")
    out = np.asarray(out)
    if out.dtype != x.dtype:
        raise LayerProtocolError(
            f"{_name(obj)}.forward returned {what} in {out.dtype} for a {x.dtype} input; a layer must compute "
            f"in its input's dtype, as PyTorch does ({x.dtype} in, {x.dtype} out)"
        )
    reduction = kw.get("reduction") if spec.loss else None
    loss_shape = None
    if spec.loss:
        loss_shape = () if reduction != "none" else tuple(x.shape[:1] + x.shape[2:]) if x.ndim > 1 else ()
        if out.shape != loss_shape:
            raise LayerProtocolError(
                f"{_name(obj)}.forward returned a loss of shape {out.shape}; with reduction={reduction!r} it must "
                f"have shape {loss_shape}"
            )
    bias = "bias" in spec.params and arrays["bias"] is not None
    return out, _Ctx(obj, x, bias, target, reduction, loss_shape)


def _set_param(layer: _Layer, obj: Any, p: str, attr: str, value: Any, x: np.ndarray) -> None:
    """Put the suite's parameter on the layer, in the layer's layout (a missing bias: zeros)."""
    if not hasattr(obj, attr):
        raise LayerProtocolError(
            f"{_name(obj)} has no attribute {attr!r}, where register_layer's params says it keeps its {p}"
        )
    if value is None:
        if getattr(obj, attr) is not None and p == "bias":  # no bias: a bias of zeros is the same layer
            setattr(obj, attr, np.zeros(np.shape(getattr(obj, attr)), dtype=x.dtype))
        return
    value = np.ascontiguousarray(value.T if p == "weight" and layer.weight_layout == "in_out" else value)
    current = getattr(obj, attr)
    if current is not None and np.shape(current) != value.shape:
        layout = " (weight_layout='in_out': (in_features, out_features))" if layer.weight_layout == "in_out" else ""
        raise LayerProtocolError(
            f"{_name(obj)}.{attr} has shape {np.shape(current)} but the {p} for this case has shape "
            f"{value.shape}{layout}; make(config) must build the layer for the config it gets"
        )
    setattr(obj, attr, value.copy())


def _backward(layer: _Layer, grad_y: np.ndarray, ctx: _Ctx) -> tuple[Any, ...]:
    spec, obj = layer.spec, ctx.layer
    if spec.loss:
        dx = obj.backward(ctx.target) if _takes_argument(obj.backward) else obj.backward()
        dx = _check_grad(obj, "backward", dx, ctx.x_shape, ctx.x_dtype, "its input (the logits)")
        # the layer's gradient is for an upstream gradient of 1: scale by the suite's, per
        # row for reduction='none' (each loss element depends on its own row only)
        g = grad_y if ctx.reduction != "none" or len(ctx.x_shape) < 2 else np.expand_dims(grad_y, 1)
        return (dx * g,)
    dx = _check_grad(obj, "backward", obj.backward(grad_y), ctx.x_shape, ctx.x_dtype, "its input")
    out: list[np.ndarray | None] = [dx]
    for p in spec.grads:
        if p == "bias" and not ctx.bias:
            out.append(None)
            continue
        attr = layer.grads[p]
        if not hasattr(obj, attr):
            raise LayerProtocolError(
                f"{_name(obj)} has no attribute {attr!r} after backward, where register_layer's grads says it "
                f"keeps the gradient of its {p}"
            )
        shape = np.shape(getattr(obj, layer.params[p]))
        g = _check_grad(obj, attr, getattr(obj, attr), shape, ctx.x_dtype, f"its {p} {layer.params[p]}")
        out.append(np.ascontiguousarray(g.T) if p == "weight" and layer.weight_layout == "in_out" else g)
    return tuple(out)


def _check_grad(obj: Any, where: str, g: Any, shape: tuple[int, ...], dtype: np.dtype, wrt: str) -> np.ndarray:
    """A gradient as the protocol wants it: an array of the shape and dtype of what it is for."""
    if where == "backward":
        said, want = f"{_name(obj)}.backward returned", f"it must return the gradient with respect to {wrt}"
    else:
        said, want = f"{_name(obj)}.{where} after backward is", f"it must be the gradient with respect to {wrt}"
    want += f", shape {tuple(shape)}"
    if not isinstance(g, (np.ndarray, np.generic)):
        raise LayerProtocolError(f"{said} {_what(g)}; {want}")
    g = np.asarray(g)
    if g.shape != tuple(shape):
        raise LayerProtocolError(f"{said} an array of shape {g.shape}; {want}")
    if g.dtype != dtype:
        raise LayerProtocolError(f"{said} a {g.dtype} array for a {dtype} input; {want}, in {dtype}")
    return g


def _qualname(f: Any) -> str:
    return str(getattr(f, "__qualname__", f))


def _what(v: Any) -> str:
    if v is None:
        return "None"
    if isinstance(v, (tuple, list)):
        return f"a {type(v).__name__} of {len(v)}"
    return f"a {type(v).__name__}"


def _takes_argument(method: Callable[..., Any]) -> bool:
    """Whether a loss's backward takes the target (``backward(y)``, ``backward(y=None)``)."""
    try:
        ps = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in ps)
