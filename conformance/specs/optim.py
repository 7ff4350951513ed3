"""Optimizers and lr schedulers against torch.optim.

Optimizers (check ``trajectory``): the same initial parameters (upcast for PyTorch, which
runs in float64) and the same gradient at every step; the parameters after every step
compared under the stated bound (tolerance.OPTIM_TEXT); ``defaults`` as for modules
(PyTorch's implementation switches foreach/fused/capturable/differentiable aside);
``rejects`` for hyperparameters PyTorch refuses.

Schedulers (check ``lr``): the learning rate (and OneCycleLR's momentum) after every epoch.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
import torch.optim as toptim
from hypothesis import strategies as st

import refcnn.nn as rnn
import refcnn.optim as roptim
from refcnn import testing
from refcnn.optim import lr_scheduler as rsched

from .. import core, tolerance
from ..core import rng_for
from ..strategies import make_normal, seeds
from .base import Spec

IGNORED = {"foreach", "fused", "capturable", "differentiable", "params", "optimizer"}

HYPER: dict[str, dict[str, Any]] = {
    "SGD": {"lr": [0.1, 0.01, -0.1], "momentum": [0.0, 0.9], "dampening": [0.0, 0.3], "weight_decay": [0.0, 0.05],
            "nesterov": [False, True], "maximize": [False, True]},
    "Adam": {"lr": [1e-3, 0.1], "betas": [(0.9, 0.999), (0.5, 0.9), (1.0, 0.9)], "eps": [1e-8, 1e-3],
             "weight_decay": [0.0, 0.1], "amsgrad": [False, True], "maximize": [False, True]},
    "AdamW": {"lr": [1e-3, 0.1], "betas": [(0.9, 0.999), (0.5, 0.9)], "eps": [1e-8, -1.0],
              "weight_decay": [0.01, 0.0, 0.5], "amsgrad": [False, True], "maximize": [False, True]},
    "RMSprop": {"lr": [0.01, 0.1], "alpha": [0.99, 0.5, -0.5], "eps": [1e-8, 1e-3], "weight_decay": [0.0, 0.1],
                "momentum": [0.0, 0.9], "centered": [False, True], "maximize": [False, True]},
    "Adagrad": {"lr": [0.01, 0.1], "lr_decay": [0.0, 0.1], "weight_decay": [0.0, 0.1],
                "initial_accumulator_value": [0.0, 0.5, -1.0], "eps": [1e-10, 1e-3], "maximize": [False, True]},
}  # fmt: skip


def _signature_problems(rcls: Any, tcls: Any) -> list[str]:
    tp = {k: p for k, p in inspect.signature(tcls).parameters.items() if k not in IGNORED}
    rp = {k: p for k, p in inspect.signature(rcls).parameters.items() if k not in IGNORED}
    out = [f"missing {k}" for k in tp if k not in rp]
    out += [f"extra parameter {k}" for k in rp if k not in tp]
    out += [
        f"{k} default {rp[k].default!r} != torch {p.default!r}"
        for k, p in tp.items()
        if k in rp and rp[k].default != p.default
    ]
    return out


class OptimizerSpec(Spec):
    kind = "optimizer"
    weight = 0.6
    pairs = [("momentum", "nesterov"), ("weight_decay", "maximize"), ("amsgrad", "weight_decay")]  # noqa: RUF012

    def __init__(self, cls: str) -> None:
        self.cls = cls
        self.name = f"optim.{cls}"
        self.domains = {k: list(v) for k, v in HYPER[cls].items()}

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        hyper = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in HYPER[self.cls].items()})
        return st.fixed_dictionaries({
            "hyper": hyper, "steps": st.integers(1, 6), "shapes": st.sampled_from([[[3, 2], [4]], [[5]], [[2, 1, 3], [1]]]),
            "none_grad_at": st.sampled_from([-1, -1, 1]), "scale": st.sampled_from([1.0, 1e-3, 100.0]), "seed": seeds,
        })  # fmt: skip

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        f = {k: (str(v) if isinstance(v, tuple) else v) for k, v in case["hyper"].items()}
        f.update(steps=case["steps"], scale=case["scale"])
        return f

    def size(self, case: dict[str, Any]) -> int:
        return case["steps"]

    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        impl = impls[0]
        rcls, tcls = getattr(roptim, self.cls), getattr(toptim, self.cls)
        problems = _signature_problems(rcls, tcls)
        (rec.fail(impl, "defaults", "; ".join(problems)) if problems else rec.ok(impl, "defaults"))
        dt = np.dtype(dtype)
        hyper = {k: (tuple(v) if isinstance(v, list) else v) for k, v in case["hyper"].items()}
        rng = rng_for(case)
        p0 = [make_normal(rng, s).astype(dt) for s in case["shapes"]]
        grads = [
            [(make_normal(rng, s) * case["scale"]).astype(dt) for s in case["shapes"]] for _ in range(case["steps"])
        ]
        tparams = [torch.tensor(p.astype(np.float64), requires_grad=True) for p in p0]
        try:
            topt = tcls(tparams, **hyper)
        except Exception as exc:
            core.expect_rejection(
                rec, impl, lambda: rcls([rnn.Parameter(p.copy()) for p in p0], **hyper), f"{self.cls}({hyper}) ({exc})"
            )
            return
        rparams = [rnn.Parameter(p.copy()) for p in p0]
        try:
            ropt = rcls(rparams, **hyper)
        except Exception as exc:
            rec.fail(
                impl,
                "rejects",
                f"refcnn rejected {self.cls}({hyper}) that PyTorch accepts: {type(exc).__name__}: {exc}",
            )
            return
        rec.ok(impl, "rejects")
        got, want, S_rows = [], [], []
        S_run = [np.zeros(p.shape) for p in p0]
        for step, gs in enumerate(grads):
            before = [t.detach().numpy().copy() for t in tparams]
            for i, (t, r, g) in enumerate(zip(tparams, rparams, gs, strict=True)):
                none = step == case["none_grad_at"] and i == 0  # a parameter without a gradient this step
                t.grad = None if none else torch.from_numpy(g.astype(np.float64))
                r.grad = None if none else g.copy()
            topt.step()
            ropt.step()
            for i, (t, r) in enumerate(zip(tparams, rparams, strict=True)):
                after = t.detach().numpy()
                S_run[i] = S_run[i] + np.abs(before[i]) + np.abs(after) + np.abs(after - before[i])
                got.append(np.array(r.data, dtype=np.float64).reshape(-1))  # a copy: step() updates in place
                want.append(after.copy().reshape(-1))
                S_rows.append(S_run[i].reshape(-1).copy())
                if r.data.dtype != dt:
                    rec.fail(impl, "trajectory", f"parameter dtype became {r.data.dtype}, expected {dt}")
                    return
        n = tolerance.BOUNDS["optimizer"]["trajectory"].n(case["steps"])
        res = testing.compare(np.concatenate(got), np.concatenate(want), n, np.concatenate(S_rows), dtype)
        if res.passed:
            rec.ok(impl, "trajectory", res.worst_abs_err, res.worst_ratio)
        else:
            rec.fail(
                impl, "trajectory", f"parameters after the steps: {res.describe()}", res.worst_abs_err, res.worst_ratio
            )


SCHED: dict[str, Any] = {
    "StepLR": st.fixed_dictionaries({"step_size": st.sampled_from([1, 2, 3, 0]), "gamma": st.sampled_from([0.1, 0.5, 1.0])}),
    "MultiStepLR": st.fixed_dictionaries({"milestones": st.sampled_from([[2, 4], [1], [3, 3, 5], []]), "gamma": st.sampled_from([0.1, 0.5])}),
    "ExponentialLR": st.fixed_dictionaries({"gamma": st.sampled_from([0.9, 0.5, 1.0])}),
    "CosineAnnealingLR": st.fixed_dictionaries({"T_max": st.sampled_from([3, 5, 10]), "eta_min": st.sampled_from([0.0, 1e-3])}),
    "OneCycleLR": st.fixed_dictionaries({
        "max_lr": st.sampled_from([0.1, 1.0]), "total_steps": st.sampled_from([8, 12, 20]), "pct_start": st.sampled_from([0.3, 0.5]),
        "anneal_strategy": st.sampled_from(["cos", "linear", "exp"]), "three_phase": st.booleans(),
        "div_factor": st.sampled_from([25.0, 10.0]), "final_div_factor": st.sampled_from([1e4, 100.0]),
    }),
    "ReduceLROnPlateau": st.fixed_dictionaries({
        "mode": st.sampled_from(["min", "max"]), "factor": st.sampled_from([0.1, 0.5, 1.5]), "patience": st.sampled_from([0, 1, 2]),
        "threshold": st.sampled_from([1e-4, 0.1]), "threshold_mode": st.sampled_from(["rel", "abs"]),
        "cooldown": st.sampled_from([0, 1]), "min_lr": st.sampled_from([0.0, 0.01]),
    }),
}  # fmt: skip


class SchedulerSpec(Spec):
    kind = "scheduler"
    weight = 0.5
    pairs = [("optimizer", "epochs")]  # noqa: RUF012

    def __init__(self, cls: str) -> None:
        self.cls = cls
        self.name = f"lr_scheduler.{cls}"

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({
            "config": SCHED[self.cls], "epochs": st.integers(1, 12), "lr": st.sampled_from([0.1, 0.05]),
            "optimizer": st.sampled_from(["SGD", "Adam"]), "seed": seeds,
        })  # fmt: skip

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        f = {k: (str(v) if isinstance(v, (list, tuple)) else v) for k, v in case["config"].items()}
        f.update(epochs=case["epochs"], optimizer=case["optimizer"])
        return f

    def dtypes(self) -> list[str]:
        return ["float64"]  # learning rates are Python floats

    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        impl = impls[0]
        rcls, tcls = getattr(rsched, self.cls), getattr(torch.optim.lr_scheduler, self.cls)
        problems = _signature_problems(rcls, tcls)
        (rec.fail(impl, "defaults", "; ".join(problems)) if problems else rec.ok(impl, "defaults"))
        cfg = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in case["config"].items()}
        okw: dict[str, Any] = {"lr": case["lr"]}
        if case["optimizer"] == "SGD":
            okw["momentum"] = 0.9
        topt = getattr(toptim, case["optimizer"])([torch.zeros(2, requires_grad=True)], **okw)
        ropt = getattr(roptim, case["optimizer"])([rnn.Parameter(np.zeros(2))], **okw)
        try:
            tsch = tcls(topt, **cfg)
        except Exception as exc:
            core.expect_rejection(rec, impl, lambda: rcls(ropt, **cfg), f"{self.cls}({cfg}) ({exc})")
            return
        try:
            rsch = rcls(ropt, **cfg)
        except Exception as exc:
            ok, what = core.classify_rejection(exc)
            try:  # PyTorch accepts some bad arguments at construction and fails on the first step
                for _ in range(case["epochs"]):
                    topt.step()
                    tsch.step(0.5) if self.cls == "ReduceLROnPlateau" else tsch.step()
            except Exception as texc:
                if ok:
                    rec.ok(
                        impl,
                        "rejects",
                        detail=f"refcnn rejects at construction what PyTorch fails on when stepping ({texc})",
                    )
                else:
                    rec.fail(impl, "rejects", f"PyTorch fails ({texc}); refcnn's error is not its own: {what}")
                return
            rec.fail(
                impl, "rejects", f"refcnn rejected {self.cls}({cfg}) that PyTorch accepts: {type(exc).__name__}: {exc}"
            )
            return
        rec.ok(impl, "rejects")
        metrics = np.random.default_rng(case["seed"]).uniform(0, 1, case["epochs"]).round(2)
        epochs = case["epochs"]
        if self.cls == "OneCycleLR":
            epochs = min(epochs, cfg["total_steps"])
        got, want = [], []

        def read(opt: Any) -> list[float]:
            g = opt.param_groups[0]
            mom = g.get("momentum", g.get("betas", (0.0,))[0])
            return [float(g["lr"]), float(mom)]

        got.append(read(ropt))
        want.append(read(topt))
        for e in range(epochs):
            topt.step()
            ropt.step()
            if self.cls == "ReduceLROnPlateau":
                tsch.step(float(metrics[e]))
                rsch.step(float(metrics[e]))
            else:
                tsch.step()
                rsch.step()
            got.append(read(ropt))
            want.append(read(topt))
        w = np.array(want)
        S = np.maximum(np.abs(w), max(case["lr"], cfg.get("max_lr", 0.0)))
        n = tolerance.BOUNDS["lr_scheduler"]["lr"].n(epochs)
        res = testing.compare(np.array(got), w, n, S, np.float64)
        if res.passed:
            rec.ok(impl, "lr", res.worst_abs_err, res.worst_ratio)
        else:
            at = res.worst_index
            rec.fail(impl, "lr", f"[lr, momentum] per epoch: {res.describe()}; refcnn {got[at[0]] if at else ''}, "
                                 f"torch {want[at[0]] if at else ''}", res.worst_abs_err, res.worst_ratio)  # fmt: skip


SPECS: list[Spec] = [OptimizerSpec(c) for c in HYPER] + [SchedulerSpec(c) for c in SCHED]
