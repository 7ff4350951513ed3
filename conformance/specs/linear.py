"""linear (and flatten): y = x @ w.T + b over any leading dims; flatten's reshape."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..core import rng_for
from ..strategies import make_normal, seeds
from .base import Built, OpSpec


@st.composite
def _linear_cases(draw: Any) -> dict[str, Any]:
    lead = draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))
    if lead and draw(st.sampled_from([False] * 5 + [True])):  # a batch past 16: where kernels chunk
        lead[0] = draw(st.sampled_from([17, 40, 40, 300]))  # 300: sums of gw and gb over many rows
    fin = draw(st.integers(1, 6))
    fout = draw(st.integers(1, 5))
    case = {"lead": lead, "in": fin, "out": fout, "bias": draw(st.booleans()), "seed": draw(seeds)}
    # invalid configurations from the same draws: x's features or the bias length do not match
    case["x_in"] = draw(st.sampled_from([fin] * 8 + [fin + 1]))
    case["bias_len"] = draw(st.sampled_from([fout] * 8 + [fout + 1]))
    return case


class LinearSpec(OpSpec):
    op = "linear"
    grads = ("x", "weight", "bias")
    linear = True
    adjoint_drop = ("bias",)
    pairs = [("lead", "bias"), ("in", "out")]  # noqa: RUF012
    examples = [  # noqa: RUF012
        # a 1-D x is a single row (no batch dim)
        {"lead": [], "in": 3, "out": 2, "bias": True, "x_in": 3, "bias_len": 2, "seed": 1},
        # batch of one, one feature in and out
        {"lead": [1], "in": 1, "out": 1, "bias": False, "x_in": 1, "bias_len": 1, "seed": 2},
        # a batch past 16 (chunked kernels), and 300 rows summed into grad_weight and grad_bias
        {"lead": [17], "in": 6, "out": 5, "bias": True, "x_in": 6, "bias_len": 5, "seed": 4},
        {"lead": [300], "in": 6, "out": 5, "bias": True, "x_in": 6, "bias_len": 5, "seed": 5},
        # two leading dims, mismatched features: rejected
        {"lead": [2, 3], "in": 4, "out": 5, "bias": True, "x_in": 5, "bias_len": 5, "seed": 3},
    ]

    def batched(self, built: Built) -> bool:
        return len(getattr(built.arrays["x"], "shape", ())) >= 2

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _linear_cases()

    def build(self, case: dict[str, Any]) -> Built:
        rng = rng_for(case)
        x = make_normal(rng, [*case["lead"], case["x_in"]])
        w = make_normal(rng, [case["out"], case["in"]])
        b = make_normal(rng, [case["bias_len"]]) if case["bias"] else None

        def fn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            return F.linear(x, weight, bias)

        return Built({"x": x, "weight": w, "bias": b}, {}, fn)


@st.composite
def _flatten_cases(draw: Any) -> dict[str, Any]:
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    nd = len(shape)
    start = draw(st.integers(-nd - 1, nd))  # one past either end: invalid
    end = draw(st.integers(-nd, nd - 1))
    return {"shape": shape, "start_dim": start, "end_dim": end, "seed": draw(seeds)}


class FlattenSpec(OpSpec):
    op = "flatten"
    method = "selection"
    grads = ("x",)
    linear = True
    pairs = [("start_dim", "end_dim")]  # noqa: RUF012
    examples = [  # noqa: RUF012
        {"shape": [2, 3, 4, 5], "start_dim": 1, "end_dim": -1, "seed": 0},  # nn.Flatten's default
        {"shape": [1, 3], "start_dim": 1, "end_dim": 0, "seed": 0},  # end before start: rejected
        {"shape": [3], "start_dim": 0, "end_dim": -1, "seed": 0},
    ]

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _flatten_cases()

    def build(self, case: dict[str, Any]) -> Built:
        x = make_normal(rng_for(case), case["shape"])
        cfg = {"start_dim": case["start_dim"], "end_dim": case["end_dim"]}

        def fn(x: torch.Tensor) -> torch.Tensor:
            return torch.flatten(x, **cfg)

        return Built({"x": x}, cfg, fn)


SPECS = [LinearSpec(), FlattenSpec()]
