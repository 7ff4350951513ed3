"""Convolutions: conv2d and conv_transpose2d (sums of products: the Higham bound)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..core import rng_for
from ..strategies import make_normal, seeds, spatial_axis
from .base import Built, OpSpec


@st.composite
def _channels(draw: Any) -> dict[str, Any]:
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    depthwise = groups > 1 and draw(st.booleans())
    cin_per = 1 if depthwise else draw(st.integers(1, 2))
    cout_per = draw(st.integers(1, 2))
    return {
        "groups": groups,
        "depthwise": depthwise,
        "C_in": groups * cin_per + draw(st.sampled_from([0] * 14 + [1])),  # not divisible: rejected
        "C_out": groups * cout_per,
    }


# Sizes where kernels chunk and long sums accumulate, drawn as their own class in a few cases:
# a batch past 16 ("batch"), or one channel's plane past 32x32 ("plane"; one channel keeps the
# reference kernels' loops cheap). The rest stay small.
SIZE_CLASS = st.sampled_from(["small"] * 14 + ["batch", "plane"])


@st.composite
def _plane_axis(draw: Any, max_stride: int = 2) -> dict[str, int]:
    """One axis of a plane past 32: kernel 1-5, stride 1-2, padding up to half the kernel."""
    k = draw(st.integers(1, 5))
    return {"k": k, "s": draw(st.integers(1, max_stride)), "d": 1, "p": draw(st.integers(0, k // 2)),
            "size": draw(st.integers(33, 40))}  # fmt: skip


@st.composite
def _conv2d_cases(draw: Any) -> dict[str, Any]:
    ch = draw(_channels())
    size = draw(SIZE_CLASS)
    h = draw(spatial_axis(max_kernel=4, max_stride=3, max_dilation=2))
    w = draw(spatial_axis(max_kernel=4, max_stride=3, max_dilation=2))
    if size == "plane":
        ch = {"groups": 1, "depthwise": False, "C_in": 1, "C_out": draw(st.integers(1, 2))}
        h, w = draw(_plane_axis()), draw(_plane_axis())
    return {
        # the fast kernel takes a batch in chunks of at most 3/4 of its im2col matrix: batches
        # of 2 and 3 run in several chunks, a batch past 16 in chunks of several images
        "N": draw(st.sampled_from([17, 20])) if size == "batch" else draw(st.integers(1, 3)),
        **ch, "H": h["size"], "W": w["size"],
        "kernel_size": [h["k"], w["k"]], "stride": [h["s"], w["s"]], "padding": [h["p"], w["p"]],
        "dilation": [h["d"], w["d"]], "bias": draw(st.booleans()), "seed": draw(seeds),
    }  # fmt: skip


class _ConvBase(OpSpec):
    grads = ("x", "weight", "bias")
    linear = True
    adjoint_drop = ("bias",)
    pairs = [("stride", "dilation"), ("groups", "padding"), ("kernel_size", "stride"), ("groups", "N"),  # noqa: RUF012
             ("depthwise", "stride")]  # fmt: skip

    def batched(self, built: Built) -> bool:
        return len(getattr(built.arrays["x"], "shape", ())) == 4

    def size(self, case: dict[str, Any]) -> int:
        return (
            case["N"] * case["C_in"] * case["H"] * case["W"]
            + case["C_out"] * case["C_in"] * case["kernel_size"][0] * case["kernel_size"][1]
        )

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        f = super().features(case)
        f["stride>kernel"] = any(s > k for s, k in zip(case["stride"], case["kernel_size"], strict=True))
        return f


class Conv2dSpec(_ConvBase):
    op = "conv2d"
    examples = [  # noqa: RUF012
        # kernel exactly the padded input (output 1x1), asymmetric everything
        {"N": 1, "groups": 1, "depthwise": False, "C_in": 2, "C_out": 3, "H": 3, "W": 1, "kernel_size": [3, 5],
         "stride": [2, 1], "padding": [0, 2], "dilation": [1, 1], "bias": True, "seed": 1},
        # depthwise with stride larger than the kernel and dilation
        {"N": 2, "groups": 3, "depthwise": True, "C_in": 3, "C_out": 6, "H": 7, "W": 6, "kernel_size": [2, 3],
         "stride": [3, 4], "padding": [1, 0], "dilation": [2, 1], "bias": False, "seed": 2},
        # groups=2, batch of one, single output channel per group
        {"N": 1, "groups": 2, "depthwise": False, "C_in": 4, "C_out": 2, "H": 5, "W": 4, "kernel_size": [3, 2],
         "stride": [1, 2], "padding": [1, 1], "dilation": [1, 2], "bias": True, "seed": 3},
        # a batch past 16 (the fast kernel's chunks of several images) and a plane past 32x32
        {"N": 17, "groups": 1, "depthwise": False, "C_in": 2, "C_out": 3, "H": 6, "W": 5, "kernel_size": [3, 2],
         "stride": [2, 1], "padding": [1, 0], "dilation": [1, 1], "bias": True, "seed": 5},
        {"N": 2, "groups": 1, "depthwise": False, "C_in": 1, "C_out": 2, "H": 36, "W": 38, "kernel_size": [3, 5],
         "stride": [2, 1], "padding": [1, 2], "dilation": [1, 1], "bias": True, "seed": 6},
        # the kernel one row larger than the padded input: rejected
        {"N": 1, "groups": 1, "depthwise": False, "C_in": 1, "C_out": 1, "H": 2, "W": 4, "kernel_size": [3, 3],
         "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "bias": True, "seed": 4},
    ]  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _conv2d_cases()

    def build(self, case: dict[str, Any]) -> Built:
        rng = rng_for(case)
        G = case["groups"]
        x = make_normal(rng, [case["N"], case["C_in"], case["H"], case["W"]])
        w = make_normal(rng, [case["C_out"], max(case["C_in"] // G, 1), *case["kernel_size"]])
        b = make_normal(rng, [case["C_out"]]) if case["bias"] else None
        cfg: dict[str, Any] = {k: tuple(case[k]) for k in ("stride", "padding", "dilation")}
        cfg["groups"] = G

        def fn(x: torch.Tensor, weight: torch.Tensor, bias: Any) -> torch.Tensor:
            return F.conv2d(x, weight, bias, **cfg)

        return Built({"x": x, "weight": w, "bias": b}, cfg, fn)


@st.composite
def _transpose_cases(draw: Any) -> dict[str, Any]:
    ch = draw(_channels())
    axes = []
    for _ in range(2):
        k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
        size = draw(st.integers(1, 4))
        p = draw(st.integers(0, d * (k - 1)))  # large paddings make the output empty: rejected
        op = draw(st.sampled_from([0, 0, max(s, d) - 1, max(s, d)]))  # max(s, d): rejected
        axes.append({"k": k, "s": s, "d": d, "size": size, "p": p, "op": op})
    h, w = axes
    size_class = draw(SIZE_CLASS)
    if size_class == "plane":  # an output plane past 32x32: input 17-20 at stride 2
        ch = {"groups": 1, "depthwise": False, "C_in": 1, "C_out": draw(st.integers(1, 2))}
        h, w = ({"k": draw(st.integers(1, 4)), "s": 2, "d": 1, "size": draw(st.integers(17, 20)),
                 "p": draw(st.integers(0, 1)), "op": draw(st.integers(0, 1))} for _ in range(2))  # fmt: skip
    return {
        "N": draw(st.sampled_from([17, 20])) if size_class == "batch" else draw(st.integers(1, 3)),  # 2-3: in chunks
        **ch, "H": h["size"], "W": w["size"],
        "kernel_size": [h["k"], w["k"]], "stride": [h["s"], w["s"]], "padding": [h["p"], w["p"]],
        "output_padding": [h["op"], w["op"]], "dilation": [h["d"], w["d"]], "bias": draw(st.booleans()),
        "seed": draw(seeds),
    }  # fmt: skip


class ConvTranspose2dSpec(_ConvBase):
    op = "conv_transpose2d"
    pairs = [*_ConvBase.pairs, ("output_padding", "stride")]  # noqa: RUF012
    examples = [  # noqa: RUF012
        # output_padding below the stride, groups, asymmetric
        {"N": 1, "groups": 2, "depthwise": False, "C_in": 2, "C_out": 4, "H": 3, "W": 2, "kernel_size": [3, 2],
         "stride": [2, 3], "padding": [1, 0], "output_padding": [1, 2], "dilation": [1, 1], "bias": True, "seed": 1},
        # a batch past 16, and an output plane past 32x32
        {"N": 17, "groups": 1, "depthwise": False, "C_in": 2, "C_out": 2, "H": 3, "W": 4, "kernel_size": [3, 2],
         "stride": [2, 1], "padding": [1, 0], "output_padding": [1, 0], "dilation": [1, 1], "bias": True, "seed": 3},
        {"N": 2, "groups": 1, "depthwise": False, "C_in": 1, "C_out": 2, "H": 18, "W": 17, "kernel_size": [3, 4],
         "stride": [2, 2], "padding": [1, 0], "output_padding": [1, 0], "dilation": [1, 1], "bias": False, "seed": 4},
        # output_padding below the dilation though not the stride
        {"N": 2, "groups": 1, "depthwise": False, "C_in": 1, "C_out": 2, "H": 2, "W": 3, "kernel_size": [2, 2],
         "stride": [1, 1], "padding": [0, 1], "output_padding": [1, 0], "dilation": [2, 1], "bias": False, "seed": 2},
    ]  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _transpose_cases()

    def build(self, case: dict[str, Any]) -> Built:
        rng = rng_for(case)
        G = case["groups"]
        x = make_normal(rng, [case["N"], case["C_in"], case["H"], case["W"]])
        w = make_normal(rng, [case["C_in"], case["C_out"] // G, *case["kernel_size"]])
        b = make_normal(rng, [case["C_out"]]) if case["bias"] else None
        cfg: dict[str, Any] = {k: tuple(case[k]) for k in ("stride", "padding", "output_padding", "dilation")}
        cfg["groups"] = G

        def fn(x: torch.Tensor, weight: torch.Tensor, bias: Any) -> torch.Tensor:
            return F.conv_transpose2d(x, weight, bias, **cfg)

        return Built({"x": x, "weight": w, "bias": b}, cfg, fn)


SPECS = [Conv2dSpec(), ConvTranspose2dSpec()]
