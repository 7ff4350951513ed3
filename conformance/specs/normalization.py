"""Normalisation: batch_norm (with its running statistics), group_norm, layer_norm."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from .. import core, tolerance
from ..core import rng_for
from ..strategies import make_normal, seeds
from .base import Built, OpSpec


def _x(case: dict[str, Any], shape: list[int]) -> np.ndarray:
    rng = rng_for(case)
    return make_normal(rng, shape, case["scale"]) + case["offset"]


def _affine(case: dict[str, Any], shape: list[int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not case["affine"]:
        return None, None
    rng = rng_for(case, 1)
    return 1.0 + 0.5 * make_normal(rng, shape), make_normal(rng, shape)


def norm_terms(
    x: torch.Tensor,
    w: Any,
    g: torch.Tensor,
    dims: list[int],
    eps: float,
    shape_w: list[int],
    grouped: Any = None,
    centre: Any = None,
    var: Any = None,
    w_sum: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """Magnitudes of the terms of the textbook normalisation (added to the mixed S), with
    xa = (|x| + mean|x|) * rstd the magnitude behind x_hat = (x - mean) * rstd:
    forward |w|*xa (+ |b|, already in the Jacobian term); grad_x rstd*(|gw| + mean|gw| +
    xa*mean(|gw|*xa)) with gw = g*w; grad_weight sum |g|*xa. ``grouped`` reshapes x to the layout whose
    ``dims`` are reduced (group_norm); ``centre``/``var``: running statistics (evaluation)."""
    shape = x.shape
    wa = w.abs().reshape(shape_w) if w is not None else torch.ones(())
    view = grouped if grouped is not None else (lambda a: a)
    xv = view(x)
    gw_abs = view((g * wa).abs())  # the gradient reaching x_hat: g*w (w varies inside a layer_norm group)
    if centre is None:
        mabs = xv.abs().mean(dim=dims, keepdim=True)
        rstd = 1 / torch.sqrt(xv.var(dim=dims, unbiased=False, keepdim=True) + eps)
        xa = (xv.abs() + mabs) * rstd
        inner = gw_abs + gw_abs.mean(dim=dims, keepdim=True) + xa * (gw_abs * xa).mean(dim=dims, keepdim=True)
    else:
        rstd = 1 / torch.sqrt(var + eps)
        xa = (xv.abs() + centre.abs()) * rstd
        inner = gw_abs
    gx = (rstd * inner).reshape(shape)
    xa = xa.reshape(shape)
    out = {"forward": (wa * xa).numpy(), "x": gx.numpy()}
    if w is not None:
        per = g.abs() * xa
        out["weight"] = (per.sum(dim=w_sum) if w_sum else per).reshape(w.shape).numpy()  # sum(dim=[]) sums all
    return out


# The normalisations' long sums, drawn in a few cases only: the mixed method's reference
# Jacobian costs the square of the input's size (a plane of 33x34 is about 0.2 s).
LONG = st.sampled_from(["small"] * 38 + ["batch", "plane"])


@st.composite
def _bn_cases(draw: Any) -> dict[str, Any]:
    size = draw(LONG)  # a few long sums: a batch past 16, or one channel's plane past 32x32
    return {
        "N": {"batch": 20, "plane": 1}.get(size) or draw(st.integers(1, 4)),
        "C": {"batch": 2, "plane": 1}.get(size) or draw(st.integers(1, 3)),
        "spatial": {"batch": [7], "plane": [33, 34]}.get(size)
        or draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)),
        "affine": draw(st.booleans()),
        "track": draw(st.booleans()),
        "training": draw(st.booleans()),
        "momentum": draw(st.sampled_from([0.1, 0.1, 0.5, 1.0, 0.0])),
        "eps": draw(st.sampled_from([1e-5, 1e-5, 0.1])),
        "scale": draw(st.sampled_from([1.0, 1.0, 10.0])),
        "offset": draw(st.sampled_from([0.0, 0.0, 5.0])),
        "bad_channels": draw(st.sampled_from([False] * 9 + [True])),  # a weight of the wrong length
        "seed": draw(seeds),
    }


class BatchNormSpec(OpSpec):
    op = "batch_norm"
    method = "mixed"
    grads = ("x", "weight", "bias")
    # PyTorch's batch_norm is not differentiable in the running statistics; their part of S
    # (evaluation) is in norm_terms: |w|*(|x| + |running_mean|)*rstd.
    jac_over = ["x", "weight", "bias"]  # noqa: RUF012
    pairs = [("training", "track"), ("N", "spatial"), ("affine", "training")]  # noqa: RUF012

    def updated(self, built: Built) -> tuple[str, ...]:
        return ("running_mean", "running_var") if built.config["training"] else ()

    examples = [  # noqa: RUF012
        # batch of one with a 1x1 plane in training: one value per channel, rejected
        {"N": 1, "C": 2, "spatial": [1, 1], "affine": True, "track": True, "training": True, "momentum": 0.1,
         "eps": 1e-5, "scale": 1.0, "offset": 0.0, "bad_channels": False, "seed": 1},
        # batch of one, a 3x2 plane: fine; running_var uses the unbiased variance
        {"N": 1, "C": 3, "spatial": [3, 2], "affine": True, "track": True, "training": True, "momentum": 0.5,
         "eps": 1e-5, "scale": 1.0, "offset": 5.0, "bad_channels": False, "seed": 2},
        # evaluation with running statistics, (N, C) input
        {"N": 4, "C": 2, "spatial": [], "affine": False, "track": True, "training": False, "momentum": 0.1,
         "eps": 0.1, "scale": 10.0, "offset": 0.0, "bad_channels": False, "seed": 3},
        # momentum=None is not a kernel config (the module's cumulative average); training without stats
        {"N": 2, "C": 1, "spatial": [4], "affine": True, "track": False, "training": True, "momentum": 0.1,
         "eps": 1e-5, "scale": 1.0, "offset": 0.0, "bad_channels": False, "seed": 4},
    ]  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _bn_cases()

    def checks(self, dtype: str) -> list[str]:
        return [*super().checks(dtype), "state"]

    def size(self, case: dict[str, Any]) -> int:
        return case["N"] * case["C"] * math.prod(case["spatial"])

    def build(self, case: dict[str, Any]) -> Built:
        C = case["C"]
        x = _x(case, [case["N"], C, *case["spatial"]])
        w, b = _affine(case, [C + 1 if case["bad_channels"] else C])
        if b is not None:
            b = b[:C]
        rng = rng_for(case, 2)
        rm = make_normal(rng, [C]) if case["track"] else None
        rv = rng.uniform(0.5, 2.0, C) if case["track"] else None
        training, momentum, eps = case["training"], case["momentum"], case["eps"]
        cfg = {"training": training, "momentum": momentum, "eps": eps}

        def fn(x: torch.Tensor, weight: Any, bias: Any, running_mean: Any, running_var: Any) -> torch.Tensor:
            if training and running_mean is not None:  # the update happens on copies
                running_mean, running_var = running_mean.detach().clone(), running_var.detach().clone()
            return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)

        R = case["N"] * math.prod(case["spatial"])
        return Built({"x": x, "weight": w, "bias": b, "running_mean": rm, "running_var": rv}, cfg, fn, R=R)

    def extra_terms(self, built: Built, upcast: dict[str, Any], g: np.ndarray) -> dict[str, np.ndarray]:
        t = core.to_torch(upcast)
        x = t["x"]
        shape_w = [1, x.shape[1]] + [1] * (x.dim() - 2)
        dims = [0, *range(2, x.dim())]
        eval_stats = not built.config["training"]
        centre = t["running_mean"].reshape(shape_w) if eval_stats else None
        var = t["running_var"].reshape(shape_w) if eval_stats else None
        return norm_terms(
            x, t["weight"], torch.from_numpy(g), dims, built.config["eps"], shape_w, None, centre, var, dims
        )

    def extra_checks(
        self, case: dict[str, Any], built: Built, dtype: str, impl: str, inputs: dict[str, Any], rec: core.Recorder
    ) -> None:
        if not case["training"] or not case["track"]:
            return
        orig = {
            k: (v.astype(dtype).astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in built.arrays.items()
        }
        t = core.to_torch(orig)
        rm, rv = t["running_mean"].clone(), t["running_var"].clone()
        F.batch_norm(t["x"], rm, rv, t["weight"], t["bias"], True, built.config["momentum"], built.config["eps"])
        m = built.config["momentum"]
        dims = [0, *range(2, t["x"].dim())]

        def state(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor) -> torch.Tensor:
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=True)
            return torch.cat([(1 - m) * running_mean + m * mean, (1 - m) * running_var + m * var])

        _, S = core.jacobian_S(state, {"x": t["x"], "running_mean": t["running_mean"], "running_var": t["running_var"]},
                               ["x", "running_mean", "running_var"])  # fmt: skip
        n = tolerance.BOUNDS["batch_norm"]["state"].n(built.R)
        got = np.concatenate([np.asarray(inputs["running_mean"]), np.asarray(inputs["running_var"])])
        rec.compare(impl, "state", got, torch.cat([rm, rv]).numpy(), n, S.numpy(), "running_mean, running_var")


@st.composite
def _gn_cases(draw: Any) -> dict[str, Any]:
    G = draw(st.integers(1, 3))
    per = draw(st.integers(1, 3))
    size = draw(LONG)
    if size == "plane":  # one sample, one group of two channels over a 24x24 plane: 1,152 values
        G, per = 1, 2
    return {
        "N": {"batch": 20, "plane": 1}.get(size) or draw(st.integers(1, 3)),
        "C": G * per + draw(st.sampled_from([0] * 9 + [1])),  # C not divisible by the groups: rejected
        "num_groups": G,
        "spatial": {"batch": [], "plane": [24, 24]}.get(size, None)
        if size != "small"
        else draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)),
        "affine": draw(st.booleans()),
        "eps": draw(st.sampled_from([1e-5, 0.1])),
        "scale": draw(st.sampled_from([1.0, 10.0])),
        "offset": draw(st.sampled_from([0.0, 0.0, 5.0])),
        "seed": draw(seeds),
    }


class GroupNormSpec(OpSpec):
    op = "group_norm"
    method = "mixed"
    grads = ("x", "weight", "bias")
    pairs = [("num_groups", "C"), ("affine", "spatial")]  # noqa: RUF012
    examples = [  # noqa: RUF012
        # depthwise-like: one channel per group, a single element per group (variance 0)
        {"N": 2, "C": 3, "num_groups": 3, "spatial": [], "affine": True, "eps": 1e-5, "scale": 1.0, "offset": 0.0, "seed": 1},
        {"N": 1, "C": 4, "num_groups": 2, "spatial": [3, 2], "affine": False, "eps": 0.1, "scale": 10.0, "offset": 5.0, "seed": 2},
    ]  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _gn_cases()

    def size(self, case: dict[str, Any]) -> int:
        return case["N"] * case["C"] * math.prod(case["spatial"])

    def build(self, case: dict[str, Any]) -> Built:
        C, G = case["C"], case["num_groups"]
        x = _x(case, [case["N"], C, *case["spatial"]])
        w, b = _affine(case, [C])
        cfg = {"num_groups": G, "eps": case["eps"]}

        def fn(x: torch.Tensor, weight: Any, bias: Any) -> torch.Tensor:
            return F.group_norm(x, G, weight, bias, case["eps"])

        return Built({"x": x, "weight": w, "bias": b}, cfg, fn, R=max(C // G, 1) * math.prod(case["spatial"]))

    def extra_terms(self, built: Built, upcast: dict[str, Any], g: np.ndarray) -> dict[str, np.ndarray]:
        t = core.to_torch(upcast)
        x = t["x"]
        N, G = x.shape[0], built.config["num_groups"]
        shape_w = [1, x.shape[1]] + [1] * (x.dim() - 2)
        return norm_terms(x, t["weight"], torch.from_numpy(g), [2], built.config["eps"], shape_w,
                          lambda a: a.reshape(N, G, -1), w_sum=[0, *range(2, x.dim())])  # fmt: skip


@st.composite
def _ln_cases(draw: Any) -> dict[str, Any]:
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    size = draw(LONG)  # 20 rows into the parameters' gradients, or a 24x24 plane per set (its
    shape = {"batch": [20, shape[-1]], "plane": [1, 24, 24]}.get(size, shape)  # weight is as large)
    k = draw(st.integers(1, len(shape)))
    normalized = shape[-k:]
    if draw(st.sampled_from([False] * 9 + [True])):  # does not match x's trailing dims: rejected
        normalized = [*normalized[:-1], normalized[-1] + 1]
    return {
        "shape": shape,
        "normalized_shape": normalized,
        "affine": draw(st.booleans()),
        "eps": draw(st.sampled_from([1e-5, 0.1])),
        "scale": draw(st.sampled_from([1.0, 10.0])),
        "offset": draw(st.sampled_from([0.0, 0.0, 5.0])),
        "seed": draw(seeds),
    }


class LayerNormSpec(OpSpec):
    op = "layer_norm"
    method = "mixed"
    grads = ("x", "weight", "bias")
    pairs = [("normalized_shape", "affine")]  # noqa: RUF012
    examples = [  # noqa: RUF012
        {"shape": [2, 3, 4], "normalized_shape": [3, 4], "affine": True, "eps": 1e-5, "scale": 1.0, "offset": 5.0, "seed": 1},
        {"shape": [5], "normalized_shape": [5], "affine": False, "eps": 1e-5, "scale": 10.0, "offset": 0.0, "seed": 2},
        {"shape": [2, 1], "normalized_shape": [1], "affine": True, "eps": 0.1, "scale": 1.0, "offset": 0.0, "seed": 3},
    ]  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _ln_cases()

    def build(self, case: dict[str, Any]) -> Built:
        x = _x(case, case["shape"])
        ns = tuple(case["normalized_shape"])
        w, b = _affine(case, list(ns))
        cfg = {"normalized_shape": ns, "eps": case["eps"]}

        def fn(x: torch.Tensor, weight: Any, bias: Any) -> torch.Tensor:
            return F.layer_norm(x, ns, weight, bias, case["eps"])

        return Built({"x": x, "weight": w, "bias": b}, cfg, fn, R=math.prod(ns))

    def extra_terms(self, built: Built, upcast: dict[str, Any], g: np.ndarray) -> dict[str, np.ndarray]:
        t = core.to_torch(upcast)
        x = t["x"]
        k = len(built.config["normalized_shape"])
        dims = list(range(x.dim() - k, x.dim()))
        lead = list(range(x.dim() - k))
        return norm_terms(
            x, t["weight"], torch.from_numpy(g), dims, built.config["eps"], list(x.shape[-k:]), w_sum=lead
        )


SPECS = [BatchNormSpec(), GroupNormSpec(), LayerNormSpec()]
