"""Activations: elementwise maps (relu ... tanh, hardtanh) and softmax/log_softmax."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..core import rng_for
from ..strategies import make_normal, seeds
from .base import Built, OpSpec

# op -> (torch function of (x, **config), strategy of the config, the kink points)
ELEMENTWISE: dict[str, tuple[Callable[..., torch.Tensor], Any, list[float]]] = {
    "relu": (lambda x: F.relu(x), st.just({}), [0.0]),
    "leaky_relu": (
        lambda x, negative_slope: F.leaky_relu(x, negative_slope),
        st.fixed_dictionaries({"negative_slope": st.sampled_from([0.01, 0.2, 0.0, -0.5, 1.5])}),
        [0.0],
    ),
    "elu": (
        lambda x, alpha: F.elu(x, alpha),
        st.fixed_dictionaries({"alpha": st.sampled_from([1.0, 0.5, 2.0, 0.0])}),
        [0.0],
    ),
    "gelu": (
        lambda x, approximate: F.gelu(x, approximate=approximate),
        st.fixed_dictionaries({"approximate": st.sampled_from(["none", "none", "tanh", "erf"])}),  # "erf": invalid
        [],
    ),
    "silu": (lambda x: F.silu(x), st.just({}), []),
    "sigmoid": (lambda x: torch.sigmoid(x), st.just({}), []),
    "tanh": (lambda x: torch.tanh(x), st.just({}), []),
    "hardtanh": (
        lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val),
        st.sampled_from([(-1.0, 1.0), (-0.5, 2.0), (0.0, 0.0), (-2.0, -1.0), (1.0, -1.0)]).map(
            lambda p: {"min_val": p[0], "max_val": p[1]}
        ),
        [-1.0, 1.0, -0.5, 2.0, 0.0, -2.0],
    ),
}


def _gelu_terms(x: torch.Tensor, g: torch.Tensor, cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    if cfg.get("approximate") == "tanh":  # 0.5*x*(1 + tanh(u)), u = sqrt(2/pi)*(x + 0.044715*x^3)
        u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        t = torch.tanh(u).abs()
        du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x**2)
        return 0.5 * x.abs() * (1 + t), g.abs() * (0.5 * (1 + t) + 0.5 * x.abs() * (1 + t * t) * du)
    e = torch.erf(x / math.sqrt(2)).abs()
    phi = torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    u = _underflow(x, cfg)
    return 0.5 * x.abs() * (1 + e) + u, g.abs() * (0.5 * (1 + e) + x.abs() * phi + u)


def _underflow(x: torch.Tensor, cfg: dict[str, Any]) -> torch.Tensor:
    """A subnormal intermediate (exp(-|x|) for large |x|) carries an absolute error of eta,
    which the final product with x amplifies: |x| * eta, written as S-term |x| * eta/eps."""
    dt = np.dtype(cfg.get("__dtype", np.float64))
    return x.abs() * float(np.finfo(dt).smallest_subnormal) / (float(np.finfo(dt).eps) / 2)


def _sigmoid_terms(x: torch.Tensor, g: torch.Tensor, cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.sigmoid(x)
    return 0 * x, g.abs() * s * (1 + s)  # g*s*(1 - s)


def _tanh_terms(x: torch.Tensor, g: torch.Tensor, cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.tanh(x)
    return 0 * x, g.abs() * (1 + t * t)  # g*(1 - t^2)


def _silu_terms(x: torch.Tensor, g: torch.Tensor, cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.sigmoid(x)
    u = _underflow(x, cfg)
    return u, g.abs() * (s * (1 + x.abs() * (1 + s)) + u)  # g*s*(1 + x*(1 - s))


def _elu_terms(x: torch.Tensor, g: torch.Tensor, cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    a = abs(cfg["alpha"])
    neg = x <= 0
    fwd = torch.where(neg, a * (torch.exp(x) + 1), 0 * x)  # alpha*(exp(x) - 1)
    grad = torch.where(neg, g.abs() * a * (torch.exp(x) + 1), 0 * x)  # g*(y + alpha)
    return fwd, grad


# The terms PyTorch's float64 formulas sum where they cancel: their magnitudes join S.
TERMS = {"gelu": _gelu_terms, "sigmoid": _sigmoid_terms, "tanh": _tanh_terms, "silu": _silu_terms, "elu": _elu_terms}


@st.composite
def _elementwise_cases(draw: Any, op: str) -> dict[str, Any]:
    config = draw(ELEMENTWISE[op][1])
    return {
        "shape": draw(st.lists(st.integers(1, 5), min_size=0, max_size=3)),
        "scale": draw(st.sampled_from([1.0, 1.0, 4.0, 30.0])),
        "kinks": draw(st.sampled_from([False] * 5 + [True])),
        **config,
        "seed": draw(seeds),
    }


class ElementwiseSpec(OpSpec):
    method = "mixed"
    pairs = [("scale", "kinks")]  # noqa: RUF012

    def __init__(self, op: str) -> None:
        self.op = op
        self.torch_op, _, self.kink_points = ELEMENTWISE[op]
        if op in ("relu", "hardtanh"):
            self.method = "selection"
        cfg = {k: v for k, v in _example_config(op).items()}
        self.examples = [
            # exactly at the kinks: PyTorch's one-sided derivatives
            {"shape": [2, 3], "scale": 1.0, "kinks": True, **cfg, "seed": 1},
            # 0-D input
            {"shape": [], "scale": 4.0, "kinks": False, **cfg, "seed": 2},
            # large magnitudes: saturation and overflow of exp
            {"shape": [3, 1, 4], "scale": 30.0, "kinks": False, **cfg, "seed": 3},
        ]

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _elementwise_cases(self.op)

    def config(self, case: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in case.items() if k not in ("shape", "scale", "kinks", "seed", "memory")}

    def build(self, case: dict[str, Any]) -> Built:
        rng = rng_for(case)
        x = make_normal(rng, case["shape"], case["scale"])
        if case["kinks"] and x.size:
            points = [*self.kink_points, float(case.get("min_val", 0.0)), float(case.get("max_val", 0.0))]
            flat = x.reshape(-1)
            flat[: min(len(points), flat.size)] = points[: flat.size]
        cfg = self.config(case)
        fn = self.torch_op

        def tfn(x: torch.Tensor) -> torch.Tensor:
            return fn(x, **cfg)

        return Built({"x": x}, cfg, tfn, R=0, extra={"no_fd": bool(case["kinks"])})  # no derivative at a kink

    def extra_terms(self, built: Built, upcast: dict[str, Any], g: Any) -> dict[str, Any]:
        fn = TERMS.get(self.op)
        if fn is None:
            return {}
        x = torch.from_numpy(np.asarray(upcast["x"]))
        fwd, grad = fn(x, torch.from_numpy(np.asarray(g)), {**built.config, "__dtype": built.extra.get("dtype")})
        return {"forward": fwd.numpy(), "x": grad.numpy()}


def _example_config(op: str) -> dict[str, Any]:
    configs: dict[str, dict[str, Any]] = {
        "leaky_relu": {"negative_slope": 0.2},
        "elu": {"alpha": 0.5},
        "gelu": {"approximate": "none"},
        "hardtanh": {"min_val": -0.5, "max_val": 2.0},
    }
    return configs.get(op, {})


@st.composite
def _softmax_cases(draw: Any) -> dict[str, Any]:
    shape = draw(st.lists(st.integers(1, 6), min_size=0, max_size=3))
    if draw(st.sampled_from([False] * 24 + [True])):  # a dim of 700: a long sum, along a strided axis or not
        shape = draw(st.sampled_from([[700, 2], [2, 700], [2, 350, 2]]))
    nd = max(len(shape), 1)
    return {
        "shape": shape,
        "dim": draw(st.integers(-nd - 1, nd)),  # one past either end: rejected
        "scale": draw(st.sampled_from([1.0, 10.0, 1e4])),  # 1e4 overflows a naive exp
        "seed": draw(seeds),
    }


class SoftmaxSpec(OpSpec):
    method = "mixed"
    pairs = [("dim", "scale")]  # noqa: RUF012

    def __init__(self, op: str) -> None:
        self.op = op
        self.examples = [
            # logits of 1e4: a naive exp overflows
            {"shape": [2, 5], "dim": 1, "scale": 1e4, "seed": 1},
            # softmax over the batch dim of a 4-D array, negative dim
            {"shape": [3, 2, 1, 4], "dim": -4, "scale": 1.0, "seed": 2},
            # a dim of size 1 and a 0-D input
            {"shape": [4, 1], "dim": 1, "scale": 10.0, "seed": 3},
            {"shape": [], "dim": 0, "scale": 1.0, "seed": 4},
            # 700 terms summed along a strided axis (dim 0 of a 2-D array)
            {"shape": [700, 2], "dim": 0, "scale": 1.0, "seed": 5},
        ]

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _softmax_cases()

    def build(self, case: dict[str, Any]) -> Built:
        x = make_normal(rng_for(case), case["shape"], case["scale"])
        dim = case["dim"]
        fn = F.softmax if self.op == "softmax" else F.log_softmax
        shape = case["shape"] or [1]
        R = shape[dim] if -len(shape) <= dim < len(shape) else 1

        def tfn(x: torch.Tensor) -> torch.Tensor:
            return fn(x, dim=dim)

        return Built({"x": x}, {"dim": dim}, tfn, R=int(R))

    def extra_terms(self, built: Built, upcast: dict[str, Any], g: Any) -> dict[str, Any]:
        """log_softmax: y = (x - m) - log(s), s = sum exp(x - m) >= 1: the sum's rounding is
        relative to s, an absolute error in log(s) up to its count, so T = |x - m| + log(s) + 1;
        its gradient g - exp(y)*sum(g): T = |g| + exp(y)*sum|g|. softmax's gradient
        y*(g - sum(g*y)): T = y*(|g| + sum|g|*y)."""
        x = torch.from_numpy(np.asarray(upcast["x"]))
        dim = built.config["dim"]
        x1 = x.reshape(1) if x.dim() == 0 else x
        ga = torch.from_numpy(np.asarray(np.abs(g))).reshape(x1.shape)
        m = x1.max(dim=dim, keepdim=True).values
        if self.op == "log_softmax":
            lse = torch.log(torch.exp(x1 - m).sum(dim=dim, keepdim=True))
            p = torch.softmax(x1, dim=dim)
            fwd = (x1 - m).abs() + lse + 1
            grad = ga + p * ga.sum(dim=dim, keepdim=True)
        else:
            p = torch.softmax(x1, dim=dim)
            fwd = 0 * x1
            grad = p * (ga + (ga * p).sum(dim=dim, keepdim=True))
        return {"forward": fwd.reshape(x.shape).numpy(), "x": grad.reshape(x.shape).numpy()}


SPECS = [ElementwiseSpec(op) for op in ELEMENTWISE] + [SoftmaxSpec("softmax"), SoftmaxSpec("log_softmax")]
