"""The module classes the suite checks (conformance/specs/modules.py): for each, how to draw
its constructor arguments and an input, the tolerance method and rounding count of its op,
and the cancellation terms of a mixed module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from .. import tolerance
from .activation import TERMS
from .normalization import norm_terms


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
