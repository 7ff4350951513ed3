"""Modules (refcnn.nn vs torch.nn): for each class, on drawn constructor arguments and inputs:

- ``defaults``: the constructor's parameters and defaults equal torch's (inspect.signature;
  torch's ``device`` and its deprecated ``size_average``/``reduce``/``min_value``/``max_value``
  aside; refcnn may add ``dtype`` only);
- ``rejects``: constructor arguments (and inputs) PyTorch rejects, refcnn rejects with its own error;
- ``extra_repr`` equal to torch's; ``state_dict`` keys, shapes and dtypes equal torch's;
- ``init``: the default initialisation follows torch's distribution (a two-sample
  Kolmogorov-Smirnov test at alpha = 1e-3 on a layer of >= 2000 weights, fixed seeds, plus
  refcnn's values inside torch's support);
- ``forward``, ``grad_input``, ``grad_<param>``: the whole module against torch.nn with the
  same weights (loaded through load_state_dict), under the tolerance method of its op;
- ``state``: BatchNorm running statistics and num_batches_tracked after a training forward.

Each case also carries a hazard (conformance/hazards.py), set in the inputs of the kernel the
module runs, as that kernel's own cases carry one: a module's path (train or eval for
BatchNorm, reduced or not for a loss, else one) cycles through the hazards, and the coverage
table shows which met which. Non-finite results are compared exactly.
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import numpy as np
import torch
import torch.nn as tnn
from hypothesis import strategies as st

import refcnn
import refcnn.nn as rnn

from .. import core, hazards, layouts, tolerance
from ..core import rng_for
from ..strategies import make_normal, make_tie_free, seeds
from .base import HAZARD_PAIR, Spec
from .module_entries import ENTRIES, Entry

IGNORED_TORCH_PARAMS = {"device", "size_average", "reduce", "min_value", "max_value"}
# the kernel a module runs, where its entry names no op: which inputs take a hazard and how
# large "large" is (conformance/hazards.py); Identity copies its input, as flatten does
KERNEL_OF = {"Conv2d": "conv2d", "ConvTranspose2d": "conv_transpose2d", "Linear": "linear", "MaxPool2d": "max_pool2d",
             "AvgPool2d": "avg_pool2d", "AdaptiveAvgPool2d": "adaptive_avg_pool2d",
             "AdaptiveMaxPool2d": "adaptive_max_pool2d", "ReLU": "relu", "Hardtanh": "hardtanh",
             "Flatten": "flatten", "Identity": "flatten", "Dropout": "dropout", "Dropout2d": "dropout2d"}  # fmt: skip


class ModuleSpec(Spec):
    kind = "module"
    layouts = True
    draws_hazards = True  # the hazard axis (SequentialSpec has its own check, without one)

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.name = f"nn.{entry.cls}"
        self.weight = 0.5
        self.kernel = KERNEL_OF.get(entry.cls, entry.op)
        self.pairs = [("kwargs", "shape"), *([HAZARD_PAIR] if self.draws_hazards else [])]
        if entry.cls.startswith("BatchNorm"):
            paths = ["train", "eval"]
        else:
            paths = ["reduced", "unreduced"] if entry.target is not None else ["plain"]
        self.domains = {"hazard": list(hazards.KINDS), "path": paths} if self.draws_hazards else {}

    def path(self, case: dict[str, Any]) -> str:
        """The code path a case takes: BatchNorm's mode, a loss's reduction, else the one path."""
        if self.entry.cls.startswith("BatchNorm"):
            return "train" if case["training"] else "eval"
        if self.entry.target is not None:
            return "unreduced" if case["kwargs"].get("reduction", "mean") == "none" else "reduced"
        return "plain"

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        @st.composite
        def cases(draw: Any) -> dict[str, Any]:
            kw, shape = draw(self.entry.ctor)
            return {"kwargs": kw, "shape": shape, "training": draw(st.booleans()), "seed": draw(seeds)}

        return cases()

    def cases(self) -> st.SearchStrategy[dict[str, Any]]:
        """``Spec.cases()`` with the hazard axis: a path's cases cycle through the hazards."""
        drawn = super().cases()
        return drawn.map(hazards.drawer(self.kernel, self.path)) if self.draws_hazards else drawn

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        f = {f"{k}": _lbl(v) for k, v in case["kwargs"].items()}
        f["shape"] = _lbl(case["shape"])
        f["kwargs"] = ",".join(sorted(case["kwargs"]))
        f["training"] = case["training"]
        f["memory"] = layouts.layout_of(case)
        if self.draws_hazards:
            f["hazard"], f["path"] = hazards.hazard_of(case), self.path(case)
        return f

    def size(self, case: dict[str, Any]) -> int:
        return math.prod(case["shape"]) + sum(
            v for v in case["kwargs"].values() if isinstance(v, int) and not isinstance(v, bool)
        )

    def checks(self, dtype: str) -> list[str]:
        return ["forward", "caller_arrays", "grad_input"]

    # ---- the checks ----------------------------------------------------------------------
    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        impl = impls[0]
        e = self.entry
        rcls, tcls = getattr(rnn, e.cls), getattr(tnn, e.cls)
        self._check_signature(rcls, tcls, impl, rec)
        kw = _torch_kwargs(case["kwargs"])
        dt = np.dtype(dtype)
        tdt = torch.float32 if dt == np.float32 else torch.float64
        has_dtype = "dtype" in inspect.signature(rcls).parameters
        torch.manual_seed(case["seed"] % 2**31)
        try:
            tm = tcls(**kw, **({"dtype": tdt} if has_dtype else {}))
        except Exception as exc:
            core.expect_rejection(
                rec,
                impl,
                lambda: rcls(**case["kwargs"], **({"dtype": dt} if has_dtype else {})),
                f"{e.cls}({kw}) ({type(exc).__name__}: {exc})",
            )
            return
        try:
            rm = rcls(**case["kwargs"], **({"dtype": dt} if has_dtype else {}))
        except NotImplementedError as exc:
            rec.unsupported(impl, ["rejects", "forward"], str(exc))
            return
        except Exception as exc:
            ok, what = core.classify_rejection(exc)
            try:  # PyTorch accepts some bad arguments at construction and rejects them at forward
                with torch.no_grad():
                    tm(*core.to_torch(self._inputs(case)).values())
            except Exception as texc:
                if ok:
                    rec.ok(
                        impl,
                        "rejects",
                        detail=f"refcnn rejects at construction what PyTorch rejects at forward ({texc})",
                    )
                else:
                    rec.fail(impl, "rejects", f"PyTorch rejects ({texc}); refcnn's error is not its own: {what}")
                return
            rec.fail(
                impl,
                "rejects",
                f"refcnn rejected {e.cls}({case['kwargs']}) that PyTorch accepts: {type(exc).__name__}: {exc}",
            )
            return
        rec.ok(impl, "rejects")
        # extra_repr and state_dict
        if rm.extra_repr() == tm.extra_repr():
            rec.ok(impl, "extra_repr")
        else:
            rec.fail(impl, "extra_repr", f"refcnn {rm.extra_repr()!r}, PyTorch {tm.extra_repr()!r}")
        rsd, tsd = rm.state_dict(), tm.state_dict()
        want = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in tsd.items()]
        got = [(k, tuple(np.shape(v)), str(np.asarray(v).dtype)) for k, v in rsd.items()]
        if want == got:
            rec.ok(impl, "state_dict")
        else:
            rec.fail(impl, "state_dict", f"refcnn {got} != torch {want}")
            return
        if e.init_ctor is not None and rec.once(("init", impl)):
            self._check_init(rcls, tcls, impl, rec)
        with np.errstate(invalid="ignore"):  # the suite's own sums and bounds on a hazard case's inf and nan
            self._check_numbers(case, kw, rm, tm, dt, impl, rec)

    def _check_signature(self, rcls: Any, tcls: Any, impl: str, rec: core.Recorder) -> None:
        tsig = inspect.signature(tcls)
        rsig = inspect.signature(rcls)
        tparams = {k: p for k, p in tsig.parameters.items() if k not in IGNORED_TORCH_PARAMS and k != "dtype"}
        if "dtype" in tsig.parameters and "dtype" not in rsig.parameters:
            rec.fail(impl, "defaults", "torch takes dtype=None, refcnn does not")
            return
        if any(p.kind == p.VAR_POSITIONAL for p in tparams.values()):
            rec.ok(impl, "defaults", detail="torch takes *args: nothing to compare")
            return
        rparams = {k: p for k, p in rsig.parameters.items() if k != "dtype"}
        problems = []
        for k, p in tparams.items():
            if k not in rparams:
                problems.append(f"missing {k}")
            elif p.default is not rparams[k].default and p.default != rparams[k].default:
                problems.append(f"{k} default {rparams[k].default!r} != torch {p.default!r}")
        problems += [f"extra parameter {k}" for k in rparams if k not in tparams]
        tpos = [k for k, p in tparams.items() if p.kind == p.POSITIONAL_OR_KEYWORD and k in rparams]
        rpos = [k for k, p in rparams.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
        if rpos != tpos[: len(rpos)]:
            problems.append(f"positional order {rpos} != torch {tpos}")
        if problems:
            rec.fail(impl, "defaults", "; ".join(problems))
        else:
            rec.ok(impl, "defaults")

    def _check_init(self, rcls: Any, tcls: Any, impl: str, rec: core.Recorder) -> None:
        kw = self.entry.init_ctor or {}
        refcnn.manual_seed(1234)
        torch.manual_seed(1234)
        names = [k for k, v in tcls(**kw).state_dict().items() if v.dtype != torch.int64]
        for name in names:  # >= 4000 values of each parameter from each library (several instances)
            tvals: list[np.ndarray] = []
            rvals: list[np.ndarray] = []
            while sum(v.size for v in tvals) < 4000:
                tvals.append(tcls(**kw).state_dict()[name].detach().double().numpy().reshape(-1))
                rvals.append(np.asarray(rcls(**kw).state_dict()[name], np.float64).reshape(-1))
            tval, rval = np.concatenate(tvals), np.concatenate(rvals)
            D = _ks(rval, tval)
            crit = 1.95 * math.sqrt((rval.size + tval.size) / (rval.size * tval.size))  # alpha = 1e-3
            lo, hi = tval.min(), tval.max()
            span = (hi - lo) or 1.0
            outside = np.sum((rval < lo - span * 0.01) | (rval > hi + span * 0.01))
            if D <= crit and outside == 0:
                rec.ok(impl, "init", D, D / crit if crit else 0.0, f"{name}: KS D={D:.3g} <= {crit:.3g}")
            else:
                rec.fail(impl, "init", f"{name}: KS D={D:.3g} (critical {crit:.3g}), {outside} values outside torch's range "
                                       f"[{lo:.3g}, {hi:.3g}]", D, D / crit if crit else math.inf)  # fmt: skip

    def _inputs(self, case: dict[str, Any]) -> dict[str, np.ndarray]:
        e, shape = self.entry, case["shape"]
        rng = rng_for(case)
        if e.input == "tie_free":
            x = make_tie_free(rng, shape)
        elif e.input == "probs":
            x = rng.uniform(0.02, 0.98, shape)
        elif e.input == "logprobs":
            z = make_normal(rng, shape)
            x = (
                z
                - z.max(axis=1, keepdims=True)
                - np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
            )
        else:
            x = make_normal(rng, shape)
        out = {"x": x}
        if e.target == "class":
            t = rng.integers(0, shape[1], shape[0]).astype(np.int64)
            out["target"] = t
        elif e.target == "same":
            out["target"] = make_normal(rng, shape)
        elif e.target == "probs":
            out["target"] = rng.uniform(0, 1, shape)
        return hazards.apply(self.kernel, case, out) if self.draws_hazards else out

    def _check_numbers(
        self, case: dict[str, Any], kw: dict[str, Any], rm: Any, tm: Any, dt: np.dtype, impl: str, rec: core.Recorder
    ) -> None:
        e = self.entry
        training = case["training"] and e.cls not in ("Dropout", "Dropout2d")  # dropout's mask: checked at kernel level
        rm.train(training)
        tm.train(training)
        if rm.state_dict():
            rm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        tm64 = copy.deepcopy(tm).double()
        arrays = {k: (v.astype(dt) if v.dtype.kind == "f" else v) for k, v in self._inputs(case).items()}
        up = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
        params = {k: p.detach().double().numpy() for k, p in tm64.named_parameters()}
        buffers = {k: b for k, b in tm64.named_buffers()}

        def fn(x: torch.Tensor, target: Any = None, **p: torch.Tensor) -> torch.Tensor:
            state = {**p, **{k: b.clone() for k, b in buffers.items()}}
            args = (x,) if target is None else (x, target)
            return torch.func.functional_call(tm64, state, args)

        try:
            with torch.no_grad():
                y_t = fn(**core.to_torch({**up, **params}))
        except Exception as exc:  # PyTorch rejects the input
            core.expect_rejection(rec, impl, lambda: rm(*arrays.values()), f"an input of shape {case['shape']} ({exc})")
            return
        # rounded to dt first, so the reference sees exactly the gradient refcnn gets
        g = np.asarray(np.random.default_rng([case["seed"], 7]).standard_normal(tuple(y_t.shape)) + 0.1)
        g = np.asarray(g.astype(dt).astype(np.float64))
        diff = ["x", *params] if e.target is None else ["x"]
        counts = tolerance.BOUNDS.get(e.op)
        R = e.R(case["kwargs"], case["shape"])
        ref = core.reference(fn, {**up, **params}, diff, g, e.method, counts, R,
                             jac_over=None if e.target is None else ["x", "target"])  # fmt: skip
        if e.terms is not None:
            t = core.to_torch({**up, **params})
            kwd = {**case["kwargs"], "__dtype": dt}
            extra = e.terms(tm64, kwd, t, {k: t[k] for k in params}, torch.from_numpy(np.asarray(g)))
            for name, terms in extra.items():
                terms = hazards.bound_terms(terms, hazards.hazard_of(case))
                target = ref.forward if name == "forward" else ref.grads.get(name)
                if target is not None:
                    target.S = np.asarray(target.S) + terms
        # the caller's arrays in the case's layout; its parameters and they must come back unchanged
        inplace = bool(case["kwargs"].get("inplace"))  # writes into x, as PyTorch's does: x left out
        layout = "C" if inplace and layouts.layout_of(case) == "readonly" else layouts.layout_of(case)
        given = {k: layouts.apply(v, layout) for k, v in arrays.items()}
        before = layouts.snapshot(arrays)
        pbefore = layouts.snapshot({k: p.data for k, p in rm.named_parameters()})
        try:
            y = rm(*given.values())
        except NotImplementedError as exc:
            rec.unsupported(impl, ["forward", "grad_input"], str(exc))
            return
        except Exception as exc:
            rec.fail(impl, "rejects", f"refcnn rejected an input PyTorch accepts: {type(exc).__name__}: {exc}")
            return
        written = layouts.changed(given, before, skip=["x"] if inplace else [])
        if e.target is not None:
            y = np.asarray(y, dtype=dt) if np.ndim(y) else np.asarray(y)
            if not isinstance(y, np.ndarray) or y.dtype != dt:
                y = np.asarray(y).astype(dt) if np.ndim(y) == 0 else y
        rec.compare(impl, "forward", y, ref.forward.value, ref.forward.n, ref.forward.S, "module forward")
        if training and e.cls.startswith("BatchNorm") and case["kwargs"].get("track_running_stats", True):
            self._check_state(rm, tm, arrays, rec, impl, R)
        gy = g.astype(dt) if e.target is None else (g.astype(dt) if g.ndim else float(g))
        gy_in = layouts.apply(gy, layout)
        after_write = " (computed after the caller wrote into the output)" if layouts.overwrite(y) else ""
        try:
            gx = rm.backward(gy_in)
        except NotImplementedError as exc:
            rec.unsupported(impl, ["grad_input"], str(exc))
            return
        written += [f"{k} (in backward)" for k in layouts.changed(given, before, skip=[*written, *(["x"] if inplace else [])])
                    if not layouts.shares(given[k], y)]  # fmt: skip
        if isinstance(gy, np.ndarray):
            written += [
                f"{k} (in backward)" for k in layouts.changed({"grad_y": gy_in}, layouts.snapshot({"grad_y": gy}))
            ]
        written += [f"parameter {k}" for k in layouts.changed({k: p.data for k, p in rm.named_parameters()}, pbefore)]
        if written:
            rec.fail(impl, "caller_arrays", f"{e.cls} wrote into the caller's {', '.join(written)}")
        else:
            rec.ok(impl, "caller_arrays")
        exp = ref.grads["x"]
        why = hazards.undefined(self.kernel, case, "grad_input")
        if why:
            rec.not_applicable(impl, "grad_input", why)
        else:
            rec.compare(impl, "grad_input", gx, exp.value, exp.n, exp.S, f"module grad of x{after_write}")
        for name, p in rm.named_parameters():
            pexp = ref.grads.get(name)
            if pexp is not None:
                rec.compare(
                    impl, f"grad_{name}", p.grad, pexp.value, pexp.n, pexp.S, f"module grad of {name}{after_write}"
                )

    def _check_state(self, rm: Any, tm: Any, arrays: dict[str, Any], rec: core.Recorder, impl: str, R: int) -> None:
        """Running statistics after one training forward, bound as the kernel's ``state``."""
        t2 = copy.deepcopy(tm).double()
        x = torch.from_numpy(arrays["x"].astype(np.float64))
        rm0, rv0 = t2.running_mean.clone(), t2.running_var.clone()
        t2(x)
        m = t2.momentum if t2.momentum is not None else 1.0 / float(t2.num_batches_tracked)
        dims = [0, *range(2, x.dim())]

        def state(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor) -> torch.Tensor:
            return torch.cat(
                [(1 - m) * running_mean + m * x.mean(dim=dims), (1 - m) * running_var + m * x.var(dim=dims)]
            )

        _, S = core.jacobian_S(
            state, {"x": x, "running_mean": rm0, "running_var": rv0}, ["x", "running_mean", "running_var"]
        )
        sd = rm.state_dict()
        got = np.concatenate([np.asarray(sd["running_mean"]), np.asarray(sd["running_var"])])
        n = tolerance.BOUNDS["batch_norm"]["state"].n(R)
        rec.compare(
            impl, "state", got, torch.cat([t2.running_mean, t2.running_var]).numpy(), n, S.numpy(), "running stats"
        )
        nbt = np.asarray(sd["num_batches_tracked"])
        if nbt.dtype != np.int64 or int(nbt) != int(t2.num_batches_tracked):
            rec.fail(
                impl, "state", f"num_batches_tracked {nbt!r} ({nbt.dtype}), torch {int(t2.num_batches_tracked)} (int64)"
            )


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b|."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def _torch_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    out = dict(kw)
    if isinstance(out.get("normalized_shape"), list):
        out["normalized_shape"] = tuple(out["normalized_shape"])
    return out


def _lbl(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return "x".join(str(u) for u in v)
    return v


class SequentialSpec(ModuleSpec):
    """Sequential(Conv2d, ReLU, Flatten, Linear): state_dict keys and the whole net against
    torch.nn.Sequential. Every layer is a sum of products or 1-Lipschitz and sign-preserving
    on |inputs|, so the Higham bound with S = net(|x|, |W|) and n = net(ones) holds."""

    layouts = False  # its own check: C-ordered arrays only
    draws_hazards = False  # and ordinary values (its kernels' and modules' cases carry the hazards)

    def __init__(self) -> None:
        super().__init__(Entry("Sequential", None))
        self.name = "nn.Sequential"

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({
            "C": st.integers(1, 2), "F": st.integers(1, 4), "H": st.integers(3, 5), "W": st.integers(2, 4),
            "N": st.integers(1, 2), "seed": seeds,
        })  # fmt: skip

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in case.items() if k != "seed"}

    def size(self, case: dict[str, Any]) -> int:
        return case["N"] * case["C"] * case["H"] * case["W"]

    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        impl = impls[0]
        dt = np.dtype(dtype)
        C, Fo, H, W = case["C"], case["F"], case["H"], case["W"]
        torch.manual_seed(case["seed"] % 2**31)
        tm = tnn.Sequential(
            tnn.Conv2d(C, 3, (3, 2), padding=1), tnn.ReLU(), tnn.Flatten(), tnn.Linear(3 * H * (W + 1), Fo)
        ).double()
        rm = rnn.Sequential(rnn.Conv2d(C, 3, (3, 2), padding=1, dtype=dt), rnn.ReLU(), rnn.Flatten(),
                            rnn.Linear(3 * H * (W + 1), Fo, dtype=dt))  # fmt: skip
        want = [(k, tuple(v.shape)) for k, v in tm.state_dict().items()]
        got = [(k, tuple(np.shape(v))) for k, v in rm.state_dict().items()]
        if want != got:
            rec.fail(impl, "state_dict", f"refcnn {got} != torch {want}")
            return
        rec.ok(impl, "state_dict")
        rm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        params = {k: v.detach().numpy().astype(dt).astype(np.float64) for k, v in tm.named_parameters()}
        x = make_normal(rng_for(case), [case["N"], C, H, W]).astype(dt)

        def fn(x: torch.Tensor, **p: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(tm, p, (x,))

        g = make_normal(rng_for(case, 5), [case["N"], Fo]).astype(dt).astype(np.float64)  # as refcnn gets it
        ref = core.reference(fn, {"x": x.astype(np.float64), **params}, ["x", *params], g, "higham")
        y = rm(x)
        rec.compare(impl, "forward", y, ref.forward.value, ref.forward.n, ref.forward.S, "Sequential forward")
        gx = rm.backward(g.astype(dt))
        rec.compare(impl, "grad_input", gx, ref.grads["x"].value, ref.grads["x"].n, ref.grads["x"].S, "grad of x")
        for name, p in rm.named_parameters():
            e = ref.grads[name]
            rec.compare(impl, f"grad_{name}", p.grad, e.value, e.n, e.S, f"grad of {name}")


class ContainerSpec(Spec):
    """nn.ModuleList / nn.ModuleDict (no forward of their own): on drawn contents and edits
    (a slice, a deletion, an insertion; an update), the children's names and the state_dict
    keys, shapes and dtypes equal torch's."""

    kind = "module"

    def __init__(self, cls: str) -> None:
        self.cls = cls
        self.name = f"nn.{cls}"
        self.weight = 0.2

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({
            "n": st.integers(1, 4), "start": st.integers(-4, 4), "stop": st.integers(-4, 4),
            "step": st.sampled_from([None, 1, 2, -1]), "at": st.integers(0, 3), "seed": seeds,
        })  # fmt: skip

    def checks(self, dtype: str) -> list[str]:
        return ["state_dict"]

    def _build(self, nn: Any, case: dict[str, Any], dt: Any) -> list[Any]:
        layers = [nn.Linear(i + 1, i + 2, dtype=dt) for i in range(case["n"])]
        if self.cls == "ModuleList":
            ml = nn.ModuleList(layers)
            part = ml[case["start"] : case["stop"] : case["step"]]
            del ml[min(case["at"], len(ml) - 1)]
            ml.insert(min(case["at"], len(ml)), nn.ReLU())
            return [ml, part]
        md = nn.ModuleDict({f"k{i}": m for i, m in enumerate(layers)})
        md.update([(f"k{case['at']}", nn.Linear(2, 3, dtype=dt)), ("extra", nn.ReLU())])
        del md[next(iter(md))]
        return [md]

    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        impl = impls[0]
        mine = self._build(rnn, case, np.dtype(dtype))
        theirs = self._build(tnn, case, torch.float32 if dtype == "float32" else torch.float64)
        for r, t in zip(mine, theirs, strict=True):
            want = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in t.state_dict().items()]
            got = [(k, tuple(np.shape(v)), str(v.dtype)) for k, v in r.state_dict().items()]
            names = ([n for n, _ in r.named_children()], [n for n, _ in t.named_children()])
            if want != got or names[0] != names[1]:
                rec.fail(impl, "state_dict", f"refcnn {got} {names[0]} != torch {want} {names[1]}")
                return
        rec.ok(impl, "state_dict")


SPECS: list[Spec] = [
    *[ModuleSpec(e) for e in ENTRIES], SequentialSpec(), ContainerSpec("ModuleList"), ContainerSpec("ModuleDict"),
]  # fmt: skip
