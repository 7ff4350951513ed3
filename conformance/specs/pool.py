"""Pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from .. import core
from ..core import rng_for
from ..strategies import make_normal, make_tie_free, make_ties, seeds, spatial_axis
from .base import Built, OpSpec
from .conv import SIZE_CLASS, _plane_axis


def _x(case: dict[str, Any], shape: list[int]) -> np.ndarray:
    rng = rng_for(case)
    if case.get("ties"):
        return make_ties(rng, shape)
    x = make_tie_free(rng, shape) if case.get("tie_free", True) else make_normal(rng, shape)
    x = x - case.get("shift", 0.0)
    if case.get("nan") and x.size:  # one nan: PyTorch's max propagates it, and its index points at it
        x.reshape(-1)[rng.integers(x.size)] = np.nan
    return x


@st.composite
def _window_cases(draw: Any, op: str) -> dict[str, Any]:
    ceil_mode = draw(st.booleans())
    kw = {"pad": "pool", "ceil_mode": ceil_mode, "max_dilation": 2 if op == "max_pool2d" else 1}
    h, w = draw(spatial_axis(**kw)), draw(spatial_axis(**kw))
    size = draw(SIZE_CLASS)  # a few cases with a batch past 16 or a plane past 32x32 (see conv)
    if size == "plane":
        h, w = draw(_plane_axis(max_stride=3)), draw(_plane_axis(max_stride=3))
    case: dict[str, Any] = {
        "N": draw(st.sampled_from([17, 20])) if size == "batch" else draw(st.integers(1, 2)),
        "C": 1 if size == "plane" else draw(st.integers(1, 3)),
        "H": h["size"],
        "W": w["size"],
        "kernel_size": [h["k"], w["k"]],
        "stride": [h["s"], w["s"]],
        "padding": [h["p"], w["p"]],
        "ceil_mode": ceil_mode,
    }
    if op == "max_pool2d":
        case["dilation"] = [h["d"], w["d"]]
        case["ties"] = draw(st.sampled_from([False] * 7 + [True]))
        case["shift"] = draw(st.sampled_from([0.0, 0.0, 2.5]))  # 2.5: every value negative (padding must not win)
        case["nan"] = draw(st.sampled_from([False] * 5 + [True]))
    else:
        case["count_include_pad"] = draw(st.booleans())
        case["divisor_override"] = draw(st.sampled_from([None, None, None, 1, 3]))
    case["seed"] = draw(seeds)
    return case


class _Window(OpSpec):
    pairs = [("stride", "dilation"), ("ceil_mode", "padding"), ("kernel_size", "stride"), ("H", "W")]  # noqa: RUF012

    def batched(self, built: Built) -> bool:
        return len(getattr(built.arrays["x"], "shape", ())) == 4

    def size(self, case: dict[str, Any]) -> int:
        return case["N"] * case["C"] * case["H"] * case["W"]

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        f = super().features(case)
        k, s, p = case["kernel_size"], case["stride"], case["padding"]
        f["stride>kernel"] = any(si > ki for si, ki in zip(s, k, strict=True))
        f["pad_at_limit"] = any(pi == ki // 2 and pi > 0 for pi, ki in zip(p, k, strict=True))
        f["padding"] = "x".join(map(str, p))
        return f


def _compare_indices(got: Any, expected: np.ndarray, impl: str, rec: core.Recorder) -> None:
    """ctx.indices of a max pooling against PyTorch's flat indices (return_indices=True)."""
    got = np.asarray(got)
    if got.shape != expected.shape or not np.array_equal(got, expected):
        bad = "shape" if got.shape != expected.shape else f"{int((got != expected).sum())} differ"
        rec.fail(impl, "indices", f"ctx.indices differ from PyTorch's ({bad})")
    else:
        rec.ok(impl, "indices")


class MaxPool2dSpec(_Window):
    op = "max_pool2d"
    method = "selection"
    examples = [  # noqa: RUF012
        # ceil_mode: the last window would start in the right padding and is dropped
        {"N": 1, "C": 1, "H": 5, "W": 4, "kernel_size": [2, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1],
         "ceil_mode": True, "ties": False, "shift": 0.0, "seed": 1},
        # every value negative with padding: the padding (-inf) must never win
        {"N": 2, "C": 1, "H": 3, "W": 2, "kernel_size": [3, 2], "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1],
         "ceil_mode": False, "ties": False, "shift": 2.5, "seed": 2},
        # ties: PyTorch routes the gradient to the first maximum of the window
        {"N": 1, "C": 2, "H": 4, "W": 5, "kernel_size": [2, 2], "stride": [1, 2], "padding": [0, 1], "dilation": [1, 2],
         "ceil_mode": False, "ties": True, "shift": 0.0, "seed": 3},
        # stride larger than the kernel, dilation, output exactly 1x1
        {"N": 1, "C": 1, "H": 3, "W": 7, "kernel_size": [3, 2], "stride": [4, 5], "padding": [0, 0], "dilation": [1, 3],
         "ceil_mode": False, "ties": False, "shift": 0.0, "seed": 4},
        # a plane past 32x32, and a batch past 16
        {"N": 1, "C": 1, "H": 35, "W": 33, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 1], "dilation": [1, 1],
         "ceil_mode": True, "ties": False, "shift": 0.0, "seed": 6},
        {"N": 17, "C": 2, "H": 4, "W": 5, "kernel_size": [2, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1],
         "ceil_mode": False, "ties": False, "shift": 0.0, "seed": 7},
        # padding one past half the kernel: rejected
        {"N": 1, "C": 1, "H": 4, "W": 4, "kernel_size": [2, 2], "stride": [1, 1], "padding": [2, 0], "dilation": [1, 1],
         "ceil_mode": False, "ties": False, "shift": 0.0, "seed": 5},
    ]  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _window_cases("max_pool2d")

    def build(self, case: dict[str, Any]) -> Built:
        x = _x(case, [case["N"], case["C"], case["H"], case["W"]])
        cfg: dict[str, Any] = {k: tuple(case[k]) for k in ("kernel_size", "stride", "padding", "dilation")}
        cfg["ceil_mode"] = case["ceil_mode"]

        def fn(x: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(x, **cfg)

        # FD needs a tie-free, finite input
        return Built({"x": x}, cfg, fn, extra={"no_fd": bool(case.get("ties") or case.get("nan"))})

    def checks(self, dtype: str) -> list[str]:
        return [*super().checks(dtype), "indices"]

    def skip_gradients(self, built: Built, upcast: dict[str, Any]) -> bool:
        """A window lying wholly in the padding (dilation steps over the input) gives -inf,
        and PyTorch's index for it is an artifact: sometimes an element outside the window,
        sometimes out of the input's range, where its backward writes out of bounds (heap
        corruption, a PyTorch bug). Forward is still compared (-inf); indices and gradients,
        undefined in PyTorch there, are not."""
        with torch.no_grad():
            y = F.max_pool2d(torch.from_numpy(upcast["x"]), **built.config)
        built.extra["empty_window"] = bool(torch.isneginf(y).any())
        return bool(built.extra["empty_window"])

    def compare_forward_extra(
        self,
        case: dict[str, Any],
        built: Built,
        y: Any,
        ctx: Any,
        upcast: dict[str, Any],
        impl: str,
        rec: core.Recorder,
    ) -> None:
        if built.extra.get("empty_window"):
            return
        _, idx = F.max_pool2d(torch.from_numpy(upcast["x"]), return_indices=True, **built.config)
        got = getattr(ctx, "indices", None)
        if got is None:
            rec.not_applicable(impl, "indices", "its ctx keeps no .indices (PyTorch's flat argmax indices)")
            return
        _compare_indices(got, idx.numpy(), impl, rec)


class AvgPool2dSpec(_Window):
    op = "avg_pool2d"
    linear = True
    examples = [  # noqa: RUF012
        # count_include_pad=False at the corner: the divisor counts only the real elements
        {"N": 1, "C": 1, "H": 3, "W": 5, "kernel_size": [3, 4], "stride": [2, 3], "padding": [1, 2],
         "ceil_mode": True, "count_include_pad": False, "divisor_override": None, "seed": 1},
        # ceil_mode window past the padded input with count_include_pad=True
        {"N": 2, "C": 2, "H": 4, "W": 6, "kernel_size": [2, 3], "stride": [3, 2], "padding": [1, 1],
         "ceil_mode": True, "count_include_pad": True, "divisor_override": None, "seed": 2},
        # divisor_override
        {"N": 1, "C": 1, "H": 2, "W": 3, "kernel_size": [2, 3], "stride": [1, 1], "padding": [0, 0],
         "ceil_mode": False, "count_include_pad": True, "divisor_override": 3, "seed": 3},
        # a plane past 32x32 with a 5x4 window, and a batch past 16
        {"N": 1, "C": 1, "H": 37, "W": 34, "kernel_size": [5, 4], "stride": [2, 1], "padding": [2, 1],
         "ceil_mode": False, "count_include_pad": True, "divisor_override": None, "seed": 4},
        {"N": 17, "C": 2, "H": 4, "W": 5, "kernel_size": [2, 3], "stride": [2, 1], "padding": [1, 1],
         "ceil_mode": True, "count_include_pad": False, "divisor_override": None, "seed": 5},
    ]  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _window_cases("avg_pool2d")

    def _cfg(self, case: dict[str, Any]) -> dict[str, Any]:
        cfg: dict[str, Any] = {k: tuple(case[k]) for k in ("kernel_size", "stride", "padding")}
        cfg.update(ceil_mode=case["ceil_mode"], count_include_pad=case["count_include_pad"])
        cfg["divisor_override"] = case["divisor_override"]
        return cfg

    def build(self, case: dict[str, Any]) -> Built:
        x = make_normal(rng_for(case), [case["N"], case["C"], case["H"], case["W"]])
        cfg = self._cfg(case)

        def fn(x: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(x, **cfg)

        return Built({"x": x}, cfg, fn)

    def count_fn(self, case: dict[str, Any]) -> Any:
        cfg = dict(self._cfg(case), divisor_override=1, count_include_pad=True)

        def summed(x: torch.Tensor) -> torch.Tensor:  # the window sums: on ones, the terms summed
            return F.avg_pool2d(x, **cfg)

        return summed


def _bin_sizes(size: int, out: int) -> torch.Tensor:
    i = torch.arange(out)
    return (
        torch.div((i + 1) * size + out - 1, out, rounding_mode="floor")
        - torch.div(i * size, out, rounding_mode="floor")
    ).double()


@st.composite
def _adaptive_cases(draw: Any) -> dict[str, Any]:
    size = draw(SIZE_CLASS)  # a plane past 32x32: bins of up to 64 elements a side (a global pool)
    H, W = (draw(st.integers(33, 64)), draw(st.integers(33, 64))) if size == "plane" else (draw(st.integers(1, 7)), draw(st.integers(1, 7)))  # fmt: skip
    out = [draw(st.sampled_from([1, 1, 2, 3, 4, H, H + 1, 0])), draw(st.sampled_from([1, 2, 3, 5, W, W + 2]))]
    N = draw(st.sampled_from([17, 20])) if size == "batch" else draw(st.integers(1, 2))
    C = 1 if size == "plane" else draw(st.integers(1, 3))
    return {"N": N, "C": C, "H": H, "W": W, "output_size": out,
            "shift": draw(st.sampled_from([0.0, 2.5])), "seed": draw(seeds)}  # fmt: skip


class AdaptiveAvgPool2dSpec(OpSpec):
    op = "adaptive_avg_pool2d"
    linear = True
    pairs = [("H", "output_size"), ("W", "output_size")]  # noqa: RUF012
    examples = [  # noqa: RUF012
        # bins of unequal sizes that overlap (7 -> 3) and an output larger than the input (2 -> 3)
        {"N": 1, "C": 2, "H": 7, "W": 2, "output_size": [3, 3], "shift": 0.0, "seed": 1},
        {"N": 2, "C": 1, "H": 5, "W": 6, "output_size": [1, 1], "shift": 0.0, "seed": 2},  # global average
        {"N": 1, "C": 1, "H": 64, "W": 48, "output_size": [1, 1], "shift": 0.0, "seed": 3},  # 3,072 summed
        {"N": 17, "C": 2, "H": 5, "W": 6, "output_size": [2, 4], "shift": 0.0, "seed": 4},  # a batch past 16
    ]

    def batched(self, built: Built) -> bool:
        return len(getattr(built.arrays["x"], "shape", ())) == 4

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _adaptive_cases()

    def size(self, case: dict[str, Any]) -> int:
        return case["N"] * case["C"] * case["H"] * case["W"]

    def build(self, case: dict[str, Any]) -> Built:
        x = _x(case, [case["N"], case["C"], case["H"], case["W"]])
        out = tuple(case["output_size"])

        def fn(x: torch.Tensor) -> torch.Tensor:
            return F.adaptive_avg_pool2d(x, out)

        return Built({"x": x}, {"output_size": out}, fn)

    def count_fn(self, case: dict[str, Any]) -> Any:
        out = tuple(case["output_size"])
        area = _bin_sizes(case["H"], out[0])[:, None] * _bin_sizes(case["W"], out[1])[None, :]

        def summed(x: torch.Tensor) -> torch.Tensor:
            return F.adaptive_avg_pool2d(x, out) * area

        return summed


class AdaptiveMaxPool2dSpec(AdaptiveAvgPool2dSpec):
    op = "adaptive_max_pool2d"
    method = "selection"
    linear = False
    examples = [  # noqa: RUF012
        {"N": 1, "C": 2, "H": 7, "W": 2, "output_size": [3, 3], "shift": 2.5, "seed": 1},
        {"N": 2, "C": 1, "H": 5, "W": 6, "output_size": [1, 1], "shift": 0.0, "seed": 2},
        {"N": 1, "C": 1, "H": 48, "W": 40, "output_size": [1, 3], "shift": 0.0, "seed": 3},  # bins of 48 rows
    ]

    def build(self, case: dict[str, Any]) -> Built:
        x = _x(case, [case["N"], case["C"], case["H"], case["W"]])
        out = tuple(case["output_size"])

        def fn(x: torch.Tensor) -> torch.Tensor:
            return F.adaptive_max_pool2d(x, out)

        return Built({"x": x}, {"output_size": out}, fn)

    def count_fn(self, case: dict[str, Any]) -> Any:
        return None

    def checks(self, dtype: str) -> list[str]:
        return [*super().checks(dtype), "indices"]

    def compare_forward_extra(
        self,
        case: dict[str, Any],
        built: Built,
        y: Any,
        ctx: Any,
        upcast: dict[str, Any],
        impl: str,
        rec: core.Recorder,
    ) -> None:
        if not upcast["x"].size or 0 in built.config["output_size"]:
            return
        _, idx = F.adaptive_max_pool2d(torch.from_numpy(upcast["x"]), built.config["output_size"], return_indices=True)
        got = getattr(ctx, "indices", None)
        if got is None:
            return  # indices are required of max_pool2d only
        _compare_indices(got, idx.numpy(), impl, rec)


SPECS = [MaxPool2dSpec(), AvgPool2dSpec(), AdaptiveAvgPool2dSpec(), AdaptiveMaxPool2dSpec()]
