"""Losses: cross_entropy, nll_loss (class targets) and the pointwise losses (mse, l1,
smooth_l1, binary_cross_entropy, binary_cross_entropy_with_logits)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..core import rng_for
from ..strategies import make_normal, seeds
from .base import Built, OpSpec

REDUCTIONS = ["mean", "mean", "sum", "none", "max"]  # "max": invalid
# Long sums, in a few cases only: the mixed method's reference Jacobian costs the square of
# the input's size (1,296 values: about 0.2 s).
LONG = st.sampled_from([False] * 39 + [True])


@st.composite
def _class_cases(draw: Any, op: str) -> dict[str, Any]:
    C = draw(st.integers(1, 5))
    layout = draw(st.sampled_from(["NC", "NC", "NCd", "C"]))
    case = {
        "layout": layout,
        "N": draw(st.integers(1, 4)),
        "C": C,
        "d": draw(st.integers(1, 3)),
        "weight": draw(st.booleans()),
        "ignore_index": draw(st.sampled_from([-100, -100, 0, 1, -1])),
        "reduction": draw(st.sampled_from(REDUCTIONS)),
        "scale": draw(st.sampled_from([1.0, 1.0, 10.0, 1e4])),
        "bad_target": draw(st.sampled_from([False] * 9 + [True])),  # a class index == C: rejected
        "seed": draw(seeds),
    }
    if draw(LONG):  # a loss over 648 rows: its sums and the mean's divisor run long
        rows = draw(st.sampled_from([{"layout": "NC", "N": 648, "d": 1}, {"layout": "NCd", "N": 2, "d": 324}]))
        case.update(rows, C=2)
    if op == "cross_entropy":
        case["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.5]))  # 1.5: rejected
        case["probs"] = draw(st.sampled_from([False] * 4 + [True]))
    return case


class ClassLossSpec(OpSpec):
    method = "mixed"
    grads = ("x",)
    # PyTorch's losses are not differentiable in the class weights; a weight only scales a
    # term, so its rounding is inside the |y| part of S.
    jac_over = ["x", "target"]  # noqa: RUF012
    pairs = [("ignore_index", "reduction"), ("layout", "reduction"), ("weight", "reduction")]  # noqa: RUF012

    def __init__(self, op: str) -> None:
        self.op = op
        base = {"layout": "NC", "N": 3, "C": 4, "d": 2, "weight": True, "ignore_index": 1, "reduction": "mean",
                "scale": 1.0, "bad_target": False, "seed": 1}  # fmt: skip
        if op == "cross_entropy":
            base.update(label_smoothing=0.0, probs=False)
        self.examples = [
            # ignore_index with class weights and the weighted mean
            base,
            # logits of 1e4: a naive log(sum(exp)) overflows
            {**base, "scale": 1e4, "ignore_index": -100, "seed": 2},
            # batch of one, every target ignored: mean of nothing is nan, as PyTorch
            {**base, "N": 1, "C": 2, "ignore_index": 0, "weight": False, "seed": 3, "force_target": 0},
            # unbatched (C,) logits with a () target, sum reduction
            {**base, "layout": "C", "reduction": "sum", "seed": 4},
            # the plain path (no weight, mean, no smoothing) with logits of 1e4
            {**base, "scale": 1e4, "weight": False, "ignore_index": -100, "seed": 9},
            # 648 rows summed, with the weighted mean's divisor
            {**base, "N": 648, "C": 2, "d": 1, "ignore_index": -100, "seed": 8},
            # (N, C, d) layout, no reduction
            {**base, "layout": "NCd", "reduction": "none", "ignore_index": -100, "seed": 5},
        ]
        if op == "cross_entropy":
            self.examples.append({**base, "probs": True, "ignore_index": -100, "label_smoothing": 0.1, "seed": 6})
            self.examples.append({**base, "label_smoothing": 0.5, "reduction": "sum", "seed": 7})
            # the rarest path, class probabilities with weights and no reduction (drawn 7 times in
            # ci, one short of the hazard cycle), with the hazard its draws miss
            self.examples.append({**base, "probs": True, "reduction": "none", "ignore_index": -100, "seed": 8,
                                  "hazard": "subnormal"})  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _class_cases(self.op)

    def size(self, case: dict[str, Any]) -> int:
        return case["N"] * case["C"] * case["d"]

    def build(self, case: dict[str, Any]) -> Built:
        rng = rng_for(case)
        N, C, d = case["N"], case["C"], case["d"]
        shape = {"NC": [N, C], "NCd": [N, C, d], "C": [C]}[case["layout"]]
        tshape = {"NC": [N], "NCd": [N, d], "C": []}[case["layout"]]
        x = make_normal(rng, shape, case["scale"])
        if self.op == "nll_loss":
            axis = 0 if case["layout"] == "C" else 1  # nll_loss takes log-probabilities
            m = x.max(axis=axis, keepdims=True)
            x = x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
        probs = case.get("probs", False)
        if probs:
            p = rng.uniform(0, 1, shape)
            target: np.ndarray = p / p.sum(axis=0 if case["layout"] == "C" else 1, keepdims=True)
        else:
            target = rng.integers(0, C, tshape).astype(np.int64)
            if "force_target" in case:
                target[...] = case["force_target"]
            if case["bad_target"]:
                target.reshape(-1)[0] = C
        w = rng.uniform(0.2, 2.0, C) if case["weight"] else None
        cfg: dict[str, Any] = {"ignore_index": case["ignore_index"], "reduction": case["reduction"]}
        if self.op == "cross_entropy":
            cfg["label_smoothing"] = case["label_smoothing"]
        torch_op = F.cross_entropy if self.op == "cross_entropy" else F.nll_loss

        def fn(x: torch.Tensor, target: torch.Tensor, weight: Any) -> torch.Tensor:
            return torch_op(x, target, weight, **cfg)

        rows = N * (d if case["layout"] == "NCd" else 1) if case["layout"] != "C" else 1
        R = (C if self.op == "cross_entropy" else 0) + rows
        return Built({"x": x, "target": target, "weight": w}, cfg, fn, R=R, extra={"layout": case["layout"]})

    def extra_terms(self, built: Built, upcast: dict[str, Any], g: np.ndarray) -> dict[str, np.ndarray]:
        """cross_entropy: the log_softmax terms of every (row, class) the loss sums, and for
        the gradient A_r*(p - q) (q the smoothed target, A_r the row's scale) the magnitudes
        |A_r|*(a_r*p + w*q): p - q cancels when p is close to the target."""
        if self.op != "cross_entropy":
            return {}
        layout, cfg = built.extra["layout"], built.config
        x = torch.from_numpy(np.asarray(upcast["x"]))
        C = x.shape[-1] if layout == "C" else x.shape[1]
        rows = {"C": lambda a: a.reshape(1, C), "NC": lambda a: a,
                "NCd": lambda a: a.permute(0, 2, 1).reshape(-1, C)}[layout]  # fmt: skip
        xr = rows(x)
        M = xr.shape[0]
        t = np.asarray(upcast["target"])
        w = torch.ones(C, dtype=torch.float64) if upcast["weight"] is None else torch.from_numpy(upcast["weight"])
        eps = cfg["label_smoothing"]
        if t.dtype.kind == "f":
            q = rows(torch.from_numpy(t))
            valid = torch.ones(M, dtype=torch.bool)
            denom = float(M)
        else:
            ti = torch.from_numpy(t.astype(np.int64)).reshape(-1)
            valid = ti != cfg["ignore_index"]
            q = torch.zeros(M, C, dtype=torch.float64)
            q[valid, ti[valid]] = 1.0
            denom = float(w[ti[valid]].sum()) if bool(valid.any()) else float("nan")
        if eps > 0:
            q = torch.where(valid[:, None], q * (1 - eps) + eps / C, q)
        m = xr.max(dim=1, keepdim=True).values
        lse = torch.log(torch.exp(xr - m).sum(dim=1, keepdim=True))
        p = torch.softmax(xr, dim=1)
        ga = torch.from_numpy(np.asarray(np.abs(np.asarray(g, dtype=np.float64))))
        if cfg["reduction"] == "none":
            scale = ga.reshape(-1) if ga.numel() == M else ga.reshape(-1).expand(M)
        else:
            scale = (ga.reshape(()) / (denom if cfg["reduction"] == "mean" else 1.0)).expand(M)
        scale = torch.nan_to_num(scale, nan=0.0)
        # a class the loss does not weigh (w*q = 0) adds nothing, also where its logit is -inf
        # (0 * inf would make the row's sum nan, and a reduced loss's whole S with it)
        wq = w * q
        per_row = torch.where(wq != 0, wq * ((xr - m).abs() + lse + 1), 0.0).sum(dim=1)
        a = wq.sum(dim=1, keepdim=True)
        grad_rows = scale[:, None] * (a * p + wq)
        unrows = {"C": lambda r: r.reshape(C), "NC": lambda r: r,
                  "NCd": lambda r: r.reshape(x.shape[0], x.shape[2], C).permute(0, 2, 1)}[layout]  # fmt: skip
        if cfg["reduction"] == "none":
            fwd = per_row.reshape(np.shape(g))
        else:
            fwd = (per_row * scale / ga.reshape(()).clamp_min(1e-300)).sum().reshape(())
        return {"forward": fwd.numpy(), "x": unrows(grad_rows).numpy()}


@st.composite
def _pointwise_cases(draw: Any, op: str) -> dict[str, Any]:
    case: dict[str, Any] = {
        "shape": draw(st.sampled_from([[1296], [36, 36]]))
        if draw(LONG)
        else draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)),
        "reduction": draw(st.sampled_from(REDUCTIONS)),
        "scale": draw(st.sampled_from([1.0, 1.0, 10.0])),
        "kinks": draw(st.sampled_from([False] * 5 + [True])),
        "bad_shape": draw(st.sampled_from([False] * 9 + [True])),  # target of another shape: rejected
        "seed": draw(seeds),
    }
    if op == "smooth_l1_loss":
        case["beta"] = draw(st.sampled_from([1.0, 0.5, 0.0, 2.0, -1.0]))  # -1: rejected
    if op in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        case["weight"] = draw(st.booleans())
    if op == "binary_cross_entropy_with_logits":
        case["pos_weight"] = draw(st.booleans())
        case["small_targets"] = draw(st.sampled_from([False, False, True]))  # in [0, 0.01)
    return case


POINTWISE = {
    "mse_loss": lambda x, target, **kw: F.mse_loss(x, target, **kw),
    "l1_loss": lambda x, target, **kw: F.l1_loss(x, target, **kw),
    "smooth_l1_loss": lambda x, target, **kw: F.smooth_l1_loss(x, target, **kw),
    "binary_cross_entropy": lambda x, target, weight, **kw: F.binary_cross_entropy(x, target, weight, **kw),
    "binary_cross_entropy_with_logits": lambda x, target, weight, pos_weight, **kw: F.binary_cross_entropy_with_logits(
        x, target, weight, pos_weight=pos_weight, **kw
    ),
}


class PointwiseLossSpec(OpSpec):
    method = "mixed"
    grads = ("x",)
    jac_over = ["x", "target"]  # noqa: RUF012  (weights only scale terms: see ClassLossSpec)
    pairs = [("reduction", "kinks"), ("reduction", "shape")]  # noqa: RUF012

    def __init__(self, op: str) -> None:
        self.op = op
        base: dict[str, Any] = {
            "shape": [2, 3],
            "reduction": "mean",
            "scale": 1.0,
            "kinks": False,
            "bad_shape": False,
            "seed": 1,
        }
        if op == "smooth_l1_loss":
            base["beta"] = 0.5
        if op.startswith("binary"):
            base["weight"] = True
        if op == "binary_cross_entropy_with_logits":
            base["pos_weight"] = True
            base["small_targets"] = False
        self.examples = [
            base,
            {**base, "kinks": True, "reduction": "none", "seed": 2},  # x == target (and 0/1 for BCE)
            {**base, "shape": [], "reduction": "sum", "seed": 3},  # 0-D
            {**base, "shape": [1296], "reduction": "mean", "seed": 6},  # 1,296 terms summed
        ]
        if op == "smooth_l1_loss":
            self.examples.append({**base, "beta": 0.0, "seed": 4})  # beta = 0 is l1_loss
        if op == "binary_cross_entropy_with_logits":  # logits down to -20 with targets near 0: where
            # (1 - t) x + max(-x, 0) cancels, PyTorch's formula and the mutant bcel_cancelling
            self.examples.append({
                **base, "shape": [7, 5], "scale": 10.0, "reduction": "none", "weight": False, "pos_weight": False,
                "small_targets": True, "seed": 5,
            })  # fmt: skip

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _pointwise_cases(self.op)

    def build(self, case: dict[str, Any]) -> Built:
        rng = rng_for(case)
        shape = case["shape"]
        if self.op == "binary_cross_entropy":
            x = rng.uniform(0.02, 0.98, shape)
            t = rng.uniform(0, 1, shape)
        elif self.op == "binary_cross_entropy_with_logits":
            x = make_normal(rng, shape, case["scale"])
            t = rng.uniform(0, 1, shape) * (0.01 if case["small_targets"] else 1.0)
        else:
            x = make_normal(rng, shape, case["scale"])
            t = make_normal(rng, shape, case["scale"])
        if case["kinks"] and x.size:
            flat, tflat = x.reshape(-1), t.reshape(-1)
            flat[0] = tflat[0]  # d = 0: the kink of l1 and smooth_l1
            if self.op == "binary_cross_entropy":
                flat[0], tflat[0] = 1.0, 1.0  # log(0) terms: PyTorch clamps the log at -100
                if flat.size > 1:
                    flat[1] = 0.0
            if self.op == "smooth_l1_loss" and flat.size > 1:
                flat[1] = tflat[1] + case["beta"]  # |d| == beta: the switch point
        if case["bad_shape"]:
            t = np.concatenate([t.reshape(-1), [0.5]])
        arrays: dict[str, Any] = {"x": x, "target": t}
        w_shape = shape[-1:] if shape else []
        if "weight" in case:
            arrays["weight"] = rng.uniform(0.2, 2.0, w_shape) if case["weight"] else None
        if "pos_weight" in case:
            arrays["pos_weight"] = rng.uniform(0.2, 3.0, w_shape) if case["pos_weight"] else None
        cfg: dict[str, Any] = {"reduction": case["reduction"]}
        if "beta" in case:
            cfg["beta"] = case["beta"]
        torch_op: Any = POINTWISE[self.op]

        def fn(**kw: Any) -> torch.Tensor:
            return torch_op(**kw, **cfg)

        R = int(np.prod(shape)) if case["reduction"] in ("mean", "sum") else 1
        return Built(arrays, cfg, fn, R=R, extra={"no_fd": bool(case["kinks"])})  # no derivative at a kink

    def extra_terms(self, built: Built, upcast: dict[str, Any], g: np.ndarray) -> dict[str, np.ndarray]:
        """binary_cross_entropy_with_logits: PyTorch's float64 (1-t)*x + l*(max(-x,0) + log(...))
        cancels for x << 0 (refcnn's split form does not), so the magnitudes of its terms
        join the forward's S, reduced as the loss is. That error is the float64 reference's
        alone, so the terms are scaled to the checked dtype's unit roundoff: u64 / u for a
        float32 check, where they would otherwise admit a float32 kernel that cancels too."""
        if self.op != "binary_cross_entropy_with_logits":
            return {}
        x, t = np.asarray(upcast["x"], np.float64), np.asarray(upcast["target"], np.float64)
        if x.shape != t.shape:
            return {}
        p = 1.0 if upcast.get("pos_weight") is None else np.asarray(upcast["pos_weight"])
        w = 1.0 if upcast.get("weight") is None else np.asarray(upcast["weight"])
        lw = np.abs(1 + (p - 1) * t)
        terms = w * (np.abs((1 - t) * x) + lw * (np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))))
        terms = terms * (np.finfo(np.float64).eps / np.finfo(built.extra["dtype"]).eps)
        reduction = built.config["reduction"]
        if reduction == "sum":
            return {"forward": np.asarray(terms.sum())}
        if reduction == "mean":
            return {"forward": np.asarray(terms.mean() if terms.size else 0.0)}
        return {"forward": terms}


SPECS = [ClassLossSpec("cross_entropy"), ClassLossSpec("nll_loss")] + [PointwiseLossSpec(op) for op in POINTWISE]
