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
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as tnn
from hypothesis import strategies as st

import refcnn
import refcnn.nn as rnn

from .. import core, layouts, tolerance
from ..core import rng_for
from ..strategies import make_normal, make_tie_free, seeds
from .activation import TERMS
from .base import Spec
from .normalization import norm_terms

IGNORED_TORCH_PARAMS = {"device", "size_average", "reduce", "min_value", "max_value"}


@dataclass
class Entry:
    """How to draw and check one module class."""

    cls: str
    ctor: Any  # strategy of (kwargs, input shape)
    method: str = "higham"
    op: str = ""  # the BOUNDS row of a mixed module
    input: str = "normal"  # normal | tie_free | probs | logits
    target: str | None = None  # loss modules: "class" | "same" | "probs"
    R: Callable[[dict[str, Any], list[int]], int] = lambda kw, shape: 0
    terms: Callable[..., dict[str, np.ndarray]] | None = None
    train_only: bool = False
    init_ctor: dict[str, Any] | None = None  # a big layer for the init statistics
    examples: list[dict[str, Any]] = field(default_factory=list)


def _pair_or_int(draw: Any, lo: int, hi: int) -> Any:
    a, b = draw(st.integers(lo, hi)), draw(st.integers(lo, hi))
    return a if draw(st.booleans()) else (a, b)


@st.composite
def _conv_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = _pair_or_int(draw, 1, 3)
    padding = draw(st.sampled_from([0, 1, (1, 0), "same", "valid", (2, 1)]))
    stride = draw(st.sampled_from([1, 1, 2, (1, 2)]))  # 'same' with stride > 1: rejected
    kw = {"in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": stride, "padding": padding,
          "dilation": draw(st.sampled_from([1, 1, 2, (2, 1)])), "groups": groups, "bias": draw(st.booleans()),
          "padding_mode": draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))}  # fmt: skip
    H, W = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    shape = [draw(st.integers(1, 2)), cin, H, W] if draw(st.integers(0, 4)) else [cin, H, W]  # unbatched too
    return kw, shape


@st.composite
def _convt_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    s = draw(st.sampled_from([1, 2, (2, 1)]))
    kw = {"in_channels": cin, "out_channels": cout, "kernel_size": _pair_or_int(draw, 1, 3), "stride": s,
          "padding": draw(st.sampled_from([0, 1, (0, 1)])), "output_padding": draw(st.sampled_from([0, 0, 1])),
          "groups": groups, "bias": draw(st.booleans()), "dilation": draw(st.sampled_from([1, 2]))}  # fmt: skip
    return kw, [draw(st.integers(1, 2)), cin, draw(st.integers(1, 4)), draw(st.integers(1, 4))]


@st.composite
def _linear_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    fin, fout = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    return {"in_features": fin, "out_features": fout, "bias": draw(st.booleans())}, [*lead, fin]


@st.composite
def _maxpool_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    k = _pair_or_int(draw, 1, 3)
    kw = {"kernel_size": k, "stride": draw(st.sampled_from([None, 1, 2, (2, 1)])),
          "padding": draw(st.sampled_from([0, 1])), "dilation": draw(st.sampled_from([1, 2])),
          "ceil_mode": draw(st.booleans())}  # fmt: skip
    shape = [draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(2, 7)), draw(st.integers(2, 7))]
    return kw, shape if draw(st.integers(0, 4)) else shape[1:]


@st.composite
def _avgpool_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    kw = {"kernel_size": _pair_or_int(draw, 1, 3), "stride": draw(st.sampled_from([None, 1, 2, (2, 1)])),
          "padding": draw(st.sampled_from([0, 1])), "ceil_mode": draw(st.booleans()),
          "count_include_pad": draw(st.booleans()), "divisor_override": draw(st.sampled_from([None, None, 2]))}  # fmt: skip
    shape = [draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(2, 7)), draw(st.integers(2, 7))]
    return kw, shape if draw(st.integers(0, 4)) else shape[1:]


@st.composite
def _adaptive_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    out = draw(st.sampled_from([1, 2, (2, 3), (3, None), (None, 1)]))
    return {"output_size": out}, [
        draw(st.integers(1, 2)),
        draw(st.integers(1, 2)),
        draw(st.integers(1, 6)),
        draw(st.integers(1, 6)),
    ]


def _shape(draw: Any, lo: int = 0) -> list[int]:
    return draw(st.lists(st.integers(1, 4), min_size=lo, max_size=3))


def _simple(kwargs: Any, lo: int = 0) -> Any:
    @st.composite
    def ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
        return draw(kwargs), _shape(draw, lo)

    return ctor()


@st.composite
def _softmax_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    shape = _shape(draw, 1)
    return {"dim": draw(st.integers(-len(shape), len(shape) - 1))}, shape


@st.composite
def _bn_ctor(draw: Any, two_d: bool) -> tuple[dict[str, Any], list[int]]:
    C = draw(st.integers(1, 3))
    kw = {"num_features": C, "eps": draw(st.sampled_from([1e-5, 1e-3])), "momentum": draw(st.sampled_from([0.1, None, 0.5])),
          "affine": draw(st.booleans()), "track_running_stats": draw(st.booleans())}  # fmt: skip
    N = draw(st.integers(2, 4))
    shape = (
        [N, C, draw(st.integers(1, 3)), draw(st.integers(1, 3))]
        if two_d
        else [N, C] + ([draw(st.integers(1, 3))] if draw(st.booleans()) else [])
    )
    return kw, shape


@st.composite
def _gn_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    G = draw(st.integers(1, 3))
    C = G * draw(st.integers(1, 2))
    kw = {"num_groups": G, "num_channels": C, "eps": 1e-5, "affine": draw(st.booleans())}
    return kw, [draw(st.integers(1, 3)), C, draw(st.integers(1, 3)), draw(st.integers(1, 3))]


@st.composite
def _ln_ctor(draw: Any) -> tuple[dict[str, Any], list[int]]:
    shape = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(1, 3)))]
    k = draw(st.integers(1, len(shape)))
    ns = shape[-k:]
    return {"normalized_shape": ns[0] if k == 1 and draw(st.booleans()) else tuple(ns),
            "elementwise_affine": draw(st.booleans()), "bias": draw(st.booleans())}, shape  # fmt: skip


@st.composite
def _loss_ctor(draw: Any, cls: str) -> tuple[dict[str, Any], list[int]]:
    kw: dict[str, Any] = {"reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    if cls in ("CrossEntropyLoss", "NLLLoss"):
        kw["ignore_index"] = draw(st.sampled_from([-100, 1]))
        if cls == "CrossEntropyLoss":
            kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.2]))
        return kw, [draw(st.integers(1, 4)), draw(st.integers(2, 5))]
    if cls == "SmoothL1Loss":
        kw["beta"] = draw(st.sampled_from([1.0, 0.5]))
    return kw, _shape(draw, 1)


def _norm_terms_module(kind: str) -> Callable[..., dict[str, np.ndarray]]:
    def terms(
        module: Any, kw: dict[str, Any], t: dict[str, Any], params: dict[str, torch.Tensor], g: torch.Tensor
    ) -> dict[str, np.ndarray]:
        x = t["x"]
        w = params.get("weight")
        if kind == "bn":
            shape_w = [1, x.shape[1]] + [1] * (x.dim() - 2)
            dims = [0, *range(2, x.dim())]
            if module.training or module.running_mean is None:
                return norm_terms(x, w, g, dims, kw.get("eps", 1e-5), shape_w, w_sum=dims)
            rm, rv = module.running_mean.reshape(shape_w), module.running_var.reshape(shape_w)
            return norm_terms(x, w, g, dims, kw.get("eps", 1e-5), shape_w, None, rm, rv, dims)
        if kind == "gn":
            N, G = x.shape[0], kw["num_groups"]
            shape_w = [1, x.shape[1]] + [1] * (x.dim() - 2)
            return norm_terms(x, w, g, [2], 1e-5, shape_w, lambda a: a.reshape(N, G, -1), w_sum=[0, *range(2, x.dim())])
        ns = kw["normalized_shape"]
        k = 1 if isinstance(ns, int) else len(ns)
        return norm_terms(
            x, w, g, list(range(x.dim() - k, x.dim())), 1e-5, list(x.shape[-k:]), w_sum=list(range(x.dim() - k))
        )

    return terms


def _act_terms(op: str) -> Callable[..., dict[str, np.ndarray]] | None:
    fn = TERMS.get(op)
    if fn is None:
        return None

    def terms(
        module: Any, kw: dict[str, Any], t: dict[str, Any], params: dict[str, Any], g: torch.Tensor
    ) -> dict[str, np.ndarray]:
        fwd, grad = fn(t["x"], g, kw)
        return {"forward": fwd.numpy(), "x": grad.numpy()}

    return terms


def _ce_terms(
    module: Any, kw: dict[str, Any], t: dict[str, Any], params: dict[str, Any], g: torch.Tensor
) -> dict[str, np.ndarray]:
    """CrossEntropyLoss: the kernel spec's cancellation terms on the module's arguments."""
    from .base import Built
    from .loss import ClassLossSpec

    cfg = {"ignore_index": kw.get("ignore_index", -100), "reduction": kw.get("reduction", "mean"),
           "label_smoothing": kw.get("label_smoothing", 0.0)}  # fmt: skip
    up = {"x": t["x"].numpy(), "target": t["target"].numpy(), "weight": None}
    built = Built(up, cfg, lambda **a: a["x"], extra={"layout": "NC"})
    return ClassLossSpec("cross_entropy").extra_terms(built, up, g.numpy())


def _dim_len(kw: dict[str, Any], shape: list[int]) -> int:
    return shape[kw["dim"]] if shape else 1


def _bn_R(kw: dict[str, Any], shape: list[int]) -> int:
    return shape[0] * math.prod(shape[2:])


ENTRIES = [
    Entry("Conv2d", _conv_ctor(), init_ctor={"in_channels": 8, "out_channels": 32, "kernel_size": (3, 5)}),
    Entry("ConvTranspose2d", _convt_ctor(), init_ctor={"in_channels": 16, "out_channels": 8, "kernel_size": (5, 3)}),
    Entry("Linear", _linear_ctor(), init_ctor={"in_features": 50, "out_features": 60}),
    Entry("MaxPool2d", _maxpool_ctor(), method="selection", input="tie_free"),
    Entry("AvgPool2d", _avgpool_ctor(), method="mixed", op="avg_pool2d_module"),
    Entry("AdaptiveAvgPool2d", _adaptive_ctor(), method="mixed", op="avg_pool2d_module"),
    Entry("AdaptiveMaxPool2d", _adaptive_ctor(), method="selection", input="tie_free"),
    Entry("ReLU", _simple(st.just({})), method="selection"),
    Entry("LeakyReLU", _simple(st.fixed_dictionaries({"negative_slope": st.sampled_from([0.01, 0.3])})), method="mixed", op="leaky_relu"),
    Entry("ELU", _simple(st.fixed_dictionaries({"alpha": st.sampled_from([1.0, 0.5])})), method="mixed", op="elu", terms=_act_terms("elu")),
    Entry("GELU", _simple(st.fixed_dictionaries({"approximate": st.sampled_from(["none", "tanh"])})), method="mixed", op="gelu", terms=_act_terms("gelu")),
    Entry("SiLU", _simple(st.just({})), method="mixed", op="silu", terms=_act_terms("silu")),
    Entry("Sigmoid", _simple(st.just({})), method="mixed", op="sigmoid", terms=_act_terms("sigmoid")),
    Entry("Tanh", _simple(st.just({})), method="mixed", op="tanh", terms=_act_terms("tanh")),
    Entry("Hardtanh", _simple(st.sampled_from([{}, {"min_val": -0.5, "max_val": 2.0}, {"min_val": 1.0, "max_val": -1.0}])), method="selection"),
    Entry("Softmax", _softmax_ctor(), method="mixed", op="softmax", R=_dim_len),
    Entry("LogSoftmax", _softmax_ctor(), method="mixed", op="log_softmax", R=_dim_len),
    Entry("Flatten", _simple(st.sampled_from([{}, {"start_dim": 0}, {"start_dim": 0, "end_dim": 1}]), lo=2), method="selection"),
    Entry("Identity", _simple(st.just({})), method="selection"),
    Entry("Dropout", _simple(st.fixed_dictionaries({"p": st.sampled_from([0.5, 0.2, 1.5])})), method="selection"),
    Entry("Dropout2d", _simple(st.fixed_dictionaries({"p": st.sampled_from([0.5, 0.2])}), lo=3), method="selection"),
    Entry("BatchNorm1d", _bn_ctor(False), method="mixed", op="batch_norm", R=_bn_R, terms=_norm_terms_module("bn"),
          init_ctor={"num_features": 2000}),
    Entry("BatchNorm2d", _bn_ctor(True), method="mixed", op="batch_norm", R=_bn_R, terms=_norm_terms_module("bn"),
          init_ctor={"num_features": 2000}),
    Entry("GroupNorm", _gn_ctor(), method="mixed", op="group_norm", R=lambda kw, s: s[1] // kw["num_groups"] * math.prod(s[2:]),
          terms=_norm_terms_module("gn"), init_ctor={"num_groups": 4, "num_channels": 2000}),
    Entry("LayerNorm", _ln_ctor(), method="mixed", op="layer_norm",
          R=lambda kw, s: math.prod(s[-(1 if isinstance(kw["normalized_shape"], int) else len(kw["normalized_shape"])):]),
          terms=_norm_terms_module("ln"), init_ctor={"normalized_shape": 2000}),
    Entry("CrossEntropyLoss", _loss_ctor("CrossEntropyLoss"), method="mixed", op="cross_entropy", target="class", terms=_ce_terms,
          R=lambda kw, s: s[0] + s[1]),
    Entry("NLLLoss", _loss_ctor("NLLLoss"), method="mixed", op="nll_loss", target="class", input="logprobs", R=lambda kw, s: s[0]),
    Entry("MSELoss", _loss_ctor("MSELoss"), method="mixed", op="mse_loss", target="same", R=lambda kw, s: math.prod(s)),
    Entry("L1Loss", _loss_ctor("L1Loss"), method="mixed", op="l1_loss", target="same", R=lambda kw, s: math.prod(s)),
    Entry("SmoothL1Loss", _loss_ctor("SmoothL1Loss"), method="mixed", op="smooth_l1_loss", target="same", R=lambda kw, s: math.prod(s)),
    Entry("BCELoss", _loss_ctor("BCELoss"), method="mixed", op="binary_cross_entropy", target="probs", input="probs",
          R=lambda kw, s: math.prod(s)),
    Entry("BCEWithLogitsLoss", _loss_ctor("BCEWithLogitsLoss"), method="mixed", op="binary_cross_entropy_with_logits",
          target="probs", R=lambda kw, s: math.prod(s)),
]  # fmt: skip

# AvgPool2d/AdaptiveAvgPool2d at module level: an average of R terms is a sum of products (n = R + 1)
tolerance.BOUNDS.setdefault(
    "avg_pool2d_module",
    {
        "forward": tolerance.Count(1, 0, 1, "window sum and a division"),
        "grad": tolerance.Count(1, 0, 1, "a sum over the windows and a division"),
    },
)


def _R_avg(kw: dict[str, Any], shape: list[int]) -> int:
    return shape[-1] * shape[-2]


for _e in ENTRIES:
    if _e.op == "avg_pool2d_module":
        _e.R = _R_avg


class ModuleSpec(Spec):
    kind = "module"
    layouts = True

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.name = f"nn.{entry.cls}"
        self.weight = 0.5
        self.pairs = [("kwargs", "shape")]

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        @st.composite
        def cases(draw: Any) -> dict[str, Any]:
            kw, shape = draw(self.entry.ctor)
            return {"kwargs": kw, "shape": shape, "training": draw(st.booleans()), "seed": draw(seeds)}

        return cases()

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        f = {f"{k}": _lbl(v) for k, v in case["kwargs"].items()}
        f["shape"] = _lbl(case["shape"])
        f["kwargs"] = ",".join(sorted(case["kwargs"]))
        f["training"] = case["training"]
        f["memory"] = layouts.layout_of(case)
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
        return out

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
