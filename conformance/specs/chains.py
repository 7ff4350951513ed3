"""Chains of modules (refcnn.nn vs torch.nn under autograd): what one op at a time cannot show.

Two families, in both dtypes, with a random non-uniform upstream gradient in the case's memory
layout:

- ``chain.<Module>+inplace``: every module with a module spec (drawn as its spec draws it; a
  loss with ``reduction='none'``, the one whose output is an array) followed, in turn, by every
  refcnn module that takes ``inplace=True`` (found by signature: Dropout, Dropout2d (where the
  output has 3 or 4 dims), ReLU, LeakyReLU, ELU, SiLU, Hardtanh). The successor writes into the
  module's output; a module whose backward still reads that array gets a wrong gradient.
- ``chain.<net>``: module pairs inside a few small networks (a convolution block, a
  Linear -> Sigmoid -> ReLU(inplace=True) head, two Tanh layers around a Linear, ...).

How a chain is checked. refcnn runs it module by module, as Sequential does, keeping a copy of
each stage's input as the stage saw it and of the upstream gradient each backward got. Every
stage is then checked against torch autograd at exactly those values, under that module's own
bound (its module spec's method, counts and cancellation terms): its output (``forward``), the
gradient it hands back for its input (``grad_input``; stage 0's is the chain's input gradient)
and each of its parameters' (``grad_<stage>.<name>``). Each comparison keeps a derived bound
(a bound for the whole composition would have to carry every stage's rounding through the
later ones), and a failure names the stage. Dropout's mask is the one refcnn drew: re-drawn from
the case's seed by refcnn's own Dropout on ones; torch applies it as ``t.mul_(mask)`` (in place)
or ``t * mask``, which is what its dropout does with its own mask.

``inplace``: torch also runs the whole chain as written, inplace=True, in float64. Where it
raises (a tensor its backward saved was modified in place), the right gradient is that of
the same chain with inplace=False, which is what the stage-wise references compute: refcnn
must give it, or raise its own one-line error; raising where torch computes, or an error that
is not refcnn's own, fails. A silently wrong gradient fails ``grad_input``/``grad_*``.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as tnn
from hypothesis import strategies as st

import refcnn
import refcnn.nn as rnn

from .. import core, layouts, tolerance
from ..core import rng_for
from ..strategies import make_normal, make_upstream, seeds
from .base import Spec
from .modules import ENTRIES, Entry, ModuleSpec, _lbl, _torch_kwargs

IMPL = "default"
BY_CLASS = {e.cls: e for e in ENTRIES}
DROPOUTS = ("Dropout", "Dropout2d")  # the in-place modules that write in refcnn (its activations compute out of place)
Stage = list[Any]  # [class name, kwargs]: JSON-able, so a case dict states its chain


def inplace_classes() -> list[str]:
    """Every refcnn module class that takes ``inplace`` (so a new one is checked without an edit)."""
    out = []
    for name in sorted(rnn.__all__):
        cls = getattr(rnn, name, None)
        if inspect.isclass(cls) and issubclass(cls, rnn.Module) and "inplace" in inspect.signature(cls).parameters:
            out.append(name)
    return out


def label(stage: Stage) -> str:
    cls, kw = stage
    return f"{cls}({', '.join(f'{k}={v!r}' for k, v in kw.items())})"


def chain_text(stages: list[Stage]) -> str:
    return " -> ".join(label(s) for s in stages)


def _writes(stage: Stage) -> bool:
    return stage[0] in DROPOUTS and bool(stage[1].get("inplace"))


def _make(stage: Stage, dt: np.dtype) -> tuple[Any, Any]:
    """(refcnn module, torch module in dt) with the torch module's weights loaded into refcnn's."""
    cls, kw = stage
    rcls, tcls = getattr(rnn, cls), getattr(tnn, cls)
    has_dtype = "dtype" in inspect.signature(rcls).parameters
    tdt = torch.float32 if dt == np.float32 else torch.float64
    tm = tcls(**_torch_kwargs(kw), **({"dtype": tdt} if has_dtype else {}))
    rm = rcls(**kw, **({"dtype": dt} if has_dtype else {}))
    if rm.state_dict():
        rm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return rm, tm


def _torch_step(stage: Stage, tm: Any, noise: np.ndarray | None) -> Callable[..., torch.Tensor]:
    """One stage as torch runs it (float64); a dropout applies refcnn's mask (None: out of
    training) the way torch's does."""
    if stage[0] in DROPOUTS:
        if noise is None:
            return lambda t: t
        mask = torch.from_numpy(np.asarray(noise, np.float64))
        return (lambda t: t.mul_(mask)) if stage[1].get("inplace") else (lambda t: t * mask)
    return lambda t, *rest: tm(t, *rest)


class ChainSpec(Spec):
    """A chain of modules, drawn by ``draw_chain`` (a case: stages, input shape, training, seed)."""

    kind = "module"
    layouts = True

    def __init__(self, name: str, draw_chain: Any, weight: float) -> None:
        self.name = name
        self.draw_chain = draw_chain
        self.weight = weight
        self.pairs = [("chain", "memory")]

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return self.draw_chain

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        f = {"chain": " -> ".join(s[0] for s in case["chain"]), "shape": _lbl(case["shape"])}
        f.update({f"{i}.{k}": _lbl(v) for i, (_, kw) in enumerate(case["chain"]) for k, v in kw.items()})
        f["training"] = case["training"]
        f["memory"] = layouts.layout_of(case)
        return f

    def size(self, case: dict[str, Any]) -> int:
        return math.prod(case["shape"]) + len(case["chain"])

    def checks(self, dtype: str) -> list[str]:
        return ["forward", "grad_input", "inplace"]

    def inputs(self, case: dict[str, Any]) -> dict[str, np.ndarray]:
        """x (and a loss's target), as the first module's own spec makes them."""
        first = BY_CLASS.get(case["chain"][0][0])
        if first is None:
            return {"x": make_normal(rng_for(case), case["shape"])}
        return ModuleSpec(first)._inputs(case)

    def chains(self, case: dict[str, Any]) -> list[list[Stage]]:
        return [case["chain"]]

    def modes(self, case: dict[str, Any], stages: list[Stage]) -> list[bool]:
        """Each stage's mode (True: training): the case's."""
        return [bool(case["training"])] * len(stages)

    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        for stages in self.chains(case):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Dropout2d on 3-D input, softmax's dim: both libraries warn alike
                check_chain(stages, self.modes(case, stages), case, np.dtype(dtype), self.inputs(case), rec)


def check_chain(
    stages: list[Stage],
    modes: list[bool],
    case: dict[str, Any],
    dt: np.dtype,
    arrays: dict[str, np.ndarray],
    rec: core.Recorder,
) -> None:
    """Every check of one chain (its stages in ``modes``, True for training) on one case (see
    the module docstring)."""
    text = chain_text(stages)
    torch.manual_seed(case["seed"] % 2**31)
    try:
        built = [_make(s, dt) for s in stages]
    except Exception as exc:  # the modules' own specs check their constructors
        rec.skipped(IMPL, "forward", f"PyTorch or refcnn rejects a module of {text}: {type(exc).__name__}: {exc}")
        return
    rms = [r for r, _ in built]
    t64 = [copy.deepcopy(t).double() for _, t in built]
    for r, t, training in zip(rms, t64, modes, strict=True):
        r.train(training)
        t.train(training)
    x = arrays["x"].astype(dt)
    target = arrays.get("target")
    target = target.astype(dt) if target is not None and target.dtype.kind == "f" else target
    rest = () if target is None else (target,)
    rest_t = tuple(core.to_torch({"t": r})["t"] for r in rest)  # float64 or int64
    # torch, out of place, for the shapes (and PyTorch's verdict on the input)
    shapes: list[tuple[int, ...]] = []
    try:
        with torch.no_grad():
            t = torch.from_numpy(x.astype(np.float64))
            for i, (s, tm) in enumerate(zip(stages, t64, strict=True)):
                shapes.append(tuple(t.shape))
                step = _torch_step(s, _out_of_place(tm), None)
                t = t if s[0] in DROPOUTS else step(t, *(rest_t if i == 0 else ()))
    except Exception as exc:
        core.expect_rejection(
            rec, IMPL, lambda: _run_refcnn(rms, x, rest, None, "C"), f"{text} on {case['shape']} ({exc})"
        )
        return
    noises = _replay_masks(stages, shapes, dt, case["seed"], modes)
    layout = layouts.layout_of(case)
    if layout == "readonly" and any(_writes(s) for s in stages):
        layout = "C"  # an in-place module may write into the caller's x through Identity/Flatten, as torch's does
    g = make_upstream(rng_for(case, 99), tuple(t.shape)).astype(dt)
    refcnn.manual_seed(case["seed"])
    try:
        ins, ups, gxs = _run_refcnn(rms, x, rest, g, layout)
        mine: BaseException | None = None
    except Exception as exc:
        mine = exc
    theirs = _torch_verdict(stages, t64, noises, x, rest_t, g)
    if not _record_inplace(rec, text, theirs, mine):
        return
    for i, (s, rm, tm) in enumerate(zip(stages, rms, t64, strict=True)):
        where = f"{text}: stage {i} ({label(s)})"
        ref = _stage_reference(s, tm, ins[i], rest if i == 0 else (), ups[i], noises[i], dt)
        rec.compare(IMPL, "forward", ins[i + 1], ref.forward.value, ref.forward.n, ref.forward.S, f"{where} forward")
        exp = ref.grads["x"]
        got = ups[i - 1] if i else gxs[0]  # as it came back, before an earlier stage's backward read it
        rec.compare(IMPL, "grad_input", got, exp.value, exp.n, exp.S, f"{where} grad of its input")
        for name, p in rm.named_parameters():
            pexp = ref.grads.get(name)
            if pexp is not None:
                rec.compare(IMPL, f"grad_{i}.{name}", p.grad, pexp.value, pexp.n, pexp.S, f"{where} grad of {name}")


def _out_of_place(tm: Any) -> Any:
    if getattr(tm, "inplace", False):
        tm = copy.deepcopy(tm)
        tm.inplace = False
    return tm


def _replay_masks(
    stages: list[Stage], shapes: list[tuple[int, ...]], dt: np.dtype, seed: int, modes: list[bool]
) -> list[np.ndarray | None]:
    """The masks (times 1/(1-p)) refcnn's dropouts draw in this chain, re-drawn from the seed
    by refcnn's own Dropout on ones: nothing else in a forward draws from its generator."""
    refcnn.manual_seed(seed)
    out: list[np.ndarray | None] = []
    for s, shape, training in zip(stages, shapes, modes, strict=True):
        if s[0] in DROPOUTS and training:
            with refcnn.no_grad():
                out.append(np.array(getattr(rnn, s[0])(p=s[1]["p"])(np.ones(shape, dt)), copy=True))
        else:
            out.append(None)
    return out


def _run_refcnn(
    rms: list[Any], x: np.ndarray, rest: tuple[Any, ...], g: np.ndarray | None, layout: str
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """refcnn's chain, module by module: each stage's input as the stage saw it (and the
    output last), each backward's upstream gradient, and the input gradient each returned."""
    a = layouts.apply(x, layout)
    ins = [np.array(x, copy=True)]
    for i, m in enumerate(rms):
        a = m(a, *rest) if i == 0 else m(a)
        ins.append(np.array(a, copy=True))  # before the next module can write into it
    if g is None:
        return ins, [], []
    ups: list[np.ndarray] = [np.empty(0)] * len(rms)
    gxs: list[np.ndarray] = [np.empty(0)] * len(rms)
    cur = layouts.apply(g, layout)
    for i in reversed(range(len(rms))):
        ups[i] = np.array(cur, copy=True)
        cur = rms[i].backward(cur)
        gxs[i] = cur
    return ins, ups, gxs


def _torch_verdict(
    stages: list[Stage],
    t64: list[Any],
    noises: list[Any],
    x: np.ndarray,
    rest_t: tuple[Any, ...],
    g: np.ndarray,
) -> str:
    """'' if torch computes the chain as written (inplace=True where asked), else its error's first line."""
    models = [copy.deepcopy(t) for t in t64]  # running statistics of the copies only
    try:
        leaf = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
        t = leaf.clone()  # as inside a network: the input is no leaf of the graph
        for i, (s, tm, noise) in enumerate(zip(stages, models, noises, strict=True)):
            t = _torch_step(s, tm, noise)(t, *(rest_t if i == 0 else ()))
        t.backward(torch.from_numpy(g.astype(np.float64)))
    except RuntimeError as exc:
        return str(exc).splitlines()[0]
    return ""


def _record_inplace(rec: core.Recorder, text: str, theirs: str, mine: BaseException | None) -> bool:
    """The ``inplace`` check; True if refcnn computed the chain (its numbers are checked next)."""
    if mine is None:
        if theirs:
            rec.ok(
                IMPL, "inplace", detail=f"{text}: PyTorch raises ({theirs}); refcnn computes the inplace=False gradient"
            )
        else:
            rec.ok(IMPL, "inplace", detail=f"{text}: both compute")
        return True
    own, what = core.classify_rejection(mine)
    one_line = "\n" not in str(mine).strip()
    if not theirs:
        rec.fail(IMPL, "inplace", f"{text}: refcnn raised where PyTorch computes the gradient: {what}")
    elif own and one_line:
        rec.ok(IMPL, "inplace", detail=f"{text}: PyTorch raises ({theirs}); refcnn raises its own error: {what}")
    else:
        rec.fail(
            IMPL, "inplace", f"{text}: PyTorch raises ({theirs}); refcnn's error is not its own one-line one: {what}"
        )
    return False


def _stage_reference(
    stage: Stage,
    tm: Any,
    a: np.ndarray,
    rest: tuple[Any, ...],
    up: np.ndarray,
    noise: Any,
    dt: np.dtype,
) -> core.Reference:
    """PyTorch's float64 forward and vector-Jacobian product of one stage at the input it saw
    and the upstream gradient it got, with the n and S of that module's own bound."""
    u = np.asarray(up, np.float64)
    x64 = np.asarray(a, np.float64)
    if noise is not None:  # a dropout in training, refcnn's mask: x * mask/(1-p), one product
        mask = torch.from_numpy(np.asarray(noise, np.float64))
        return core.reference(lambda x: x * mask, {"x": x64}, ["x"], u, "mixed", tolerance.BOUNDS["dropout"], 0)
    e: Entry = BY_CLASS[stage[0]]
    tm = _out_of_place(tm)
    params = {k: p.detach().double().numpy() for k, p in tm.named_parameters()}
    buffers = dict(tm.named_buffers())
    up_in = {"x": x64}
    if rest:
        r = np.asarray(rest[0])
        up_in["target"] = r.astype(np.float64) if r.dtype.kind == "f" else r

    def fn(x: torch.Tensor, target: Any = None, **p: torch.Tensor) -> torch.Tensor:
        state = {**p, **{k: b.clone() for k, b in buffers.items()}}
        return torch.func.functional_call(tm, state, (x,) if target is None else (x, target))

    diff = ["x", *params] if e.target is None else ["x"]
    R = e.R(stage[1], list(a.shape))
    ref = core.reference(fn, {**up_in, **params}, diff, u, e.method, tolerance.BOUNDS.get(e.op), R,
                         jac_over=None if e.target is None else ["x", "target"])  # fmt: skip
    if e.terms is not None:
        t = core.to_torch({**up_in, **params})
        sig = inspect.signature(getattr(rnn, stage[0])).parameters  # the terms read every argument, defaults too
        kw = {k: q.default for k, q in sig.items() if q.default is not q.empty} | stage[1]
        extra = e.terms(tm, {**kw, "__dtype": dt}, t, {k: t[k] for k in params}, torch.from_numpy(u))
        for name, terms in extra.items():
            target = ref.forward if name == "forward" else ref.grads.get(name)
            if target is not None:
                target.S = np.asarray(target.S) + terms
    return ref


# ---- the in-place family: every module with a module spec, then each in-place module ---------
class InplaceSpec(ChainSpec):
    """``chain.<Module>+inplace``: the module as its spec draws it, then (one chain each) every
    module that takes inplace=True, with inplace=True (the case's ``then``)."""

    def chains(self, case: dict[str, Any]) -> list[list[Stage]]:
        first = case["chain"][0]
        return [[first, s] for s in case["then"] if s[0] != "Dropout2d" or len(self._out_shape(case)) in (3, 4)]

    def modes(self, case: dict[str, Any], stages: list[Stage]) -> list[bool]:
        """The module in the case's mode; the in-place module in training, where refcnn's dropouts write."""
        return [bool(case["training"]), True]

    def _out_shape(self, case: dict[str, Any]) -> tuple[int, ...]:
        cls, kw = case["chain"][0]
        arrays = core.to_torch(self.inputs(case))
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return tuple(getattr(tnn, cls)(**_torch_kwargs(kw)).double()(*arrays.values()).shape)
        except Exception:
            return ()

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        f = super().features(case)
        f["then"] = ",".join(s[0] for s in case["then"])
        return f


def _inplace_cases(entry: Entry) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def cases(draw: Any) -> dict[str, Any]:
        kw, shape = draw(entry.ctor)
        if entry.target is not None:
            kw = {**kw, "reduction": "none"}  # a reduced loss is a Python float: nothing to write into
        then = []
        for cls in inplace_classes():
            skw: dict[str, Any] = {"p": draw(st.sampled_from([0.5, 0.2]))} if cls in DROPOUTS else {}
            if cls == "LeakyReLU":
                skw["negative_slope"] = 0.2  # torch's in-place leaky_relu backward needs a slope >= 0
            then.append([cls, {**skw, "inplace": True}])
        return {"chain": [[entry.cls, kw]], "then": then, "shape": shape, "training": draw(st.booleans()),
                "seed": draw(seeds)}  # fmt: skip

    return cases()


# ---- small networks: module pairs in context ------------------------------------------------
@st.composite
def _conv_block(draw: Any) -> dict[str, Any]:
    """Conv2d -> BatchNorm2d -> ReLU(inplace=True) -> MaxPool2d -> Flatten -> Linear."""
    N, C, H, W, F = (draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (1, 2), (5, 8), (4, 7), (2, 4)))
    Ho, Wo = (H + 2 - 3) // 2 + 1, W + 1  # kernel (3, 2), stride (2, 1), padding 1
    feat = 3 * (Ho // 2) * (Wo // 2)
    chain = [["Conv2d", {"in_channels": C, "out_channels": 3, "kernel_size": [3, 2], "stride": [2, 1], "padding": 1}],
             ["BatchNorm2d", {"num_features": 3}], ["ReLU", {"inplace": True}], ["MaxPool2d", {"kernel_size": 2}],
             ["Flatten", {}], ["Linear", {"in_features": feat, "out_features": F}]]  # fmt: skip
    return {"chain": chain, "shape": [N, C, H, W], "training": draw(st.booleans()), "seed": draw(seeds)}


@st.composite
def _linear_sigmoid_relu(draw: Any) -> dict[str, Any]:
    """Linear -> Sigmoid -> ReLU(inplace=True): torch raises (sigmoid saved its output)."""
    fin, fout, N = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    chain = [["Linear", {"in_features": fin, "out_features": fout}], ["Sigmoid", {}], ["ReLU", {"inplace": True}]]
    return {"chain": chain, "shape": [N, fin], "training": draw(st.booleans()), "seed": draw(seeds)}


@st.composite
def _tanh_linear_tanh(draw: Any) -> dict[str, Any]:
    """Linear -> Tanh -> Dropout(inplace=True) -> Linear -> Tanh -> LogSoftmax: the second
    Linear keeps its input (the first Tanh's output) for its backward while the second Tanh runs."""
    fin, hid, N = draw(st.integers(1, 5)), draw(st.integers(3, 6)), draw(st.integers(1, 4))
    fout = draw(st.integers(2, hid))
    chain = [["Linear", {"in_features": fin, "out_features": hid}], ["Tanh", {}],
             ["Dropout", {"p": draw(st.sampled_from([0.5, 0.2])), "inplace": True}],
             ["Linear", {"in_features": hid, "out_features": fout}], ["Tanh", {}], ["LogSoftmax", {"dim": 1}]]  # fmt: skip
    return {"chain": chain, "shape": [N, fin], "training": draw(st.booleans()), "seed": draw(seeds)}


@st.composite
def _conv_gelu_dropout2d_conv(draw: Any) -> dict[str, Any]:
    """Conv2d -> GELU -> Dropout2d(inplace=True) -> Conv2d -> AvgPool2d -> LayerNorm."""
    N, C, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(4, 7)), draw(st.integers(5, 8))
    chain = [["Conv2d", {"in_channels": C, "out_channels": 2, "kernel_size": [3, 5], "padding": [1, 2]}], ["GELU", {}],
             ["Dropout2d", {"p": 0.5, "inplace": True}],
             ["Conv2d", {"in_channels": 2, "out_channels": 2, "kernel_size": [2, 3], "stride": [2, 1]}],
             ["AvgPool2d", {"kernel_size": [1, 2]}], ["LayerNorm", {"normalized_shape": [(W - 2) // 2]}]]  # fmt: skip
    return {"chain": chain, "shape": [N, C, H, W], "training": draw(st.booleans()), "seed": draw(seeds)}


@st.composite
def _norm_elu_softmax(draw: Any) -> dict[str, Any]:
    """GroupNorm -> ELU(inplace=True) -> AdaptiveAvgPool2d -> Flatten -> Softmax -> Dropout(inplace=True)."""
    N, G, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(2, 5)), draw(st.integers(2, 5))
    chain = [["GroupNorm", {"num_groups": G, "num_channels": 2 * G}], ["ELU", {"inplace": True}],
             ["AdaptiveAvgPool2d", {"output_size": [2, 1]}], ["Flatten", {}], ["Softmax", {"dim": 1}],
             ["Dropout", {"p": 0.5, "inplace": True}]]  # fmt: skip
    return {"chain": chain, "shape": [N, 2 * G, H, W], "training": draw(st.booleans()), "seed": draw(seeds)}


NETWORKS = {
    "chain.conv_bn_relu_pool_linear": _conv_block(),
    "chain.linear_sigmoid_relu": _linear_sigmoid_relu(),
    "chain.linear_tanh_dropout_linear": _tanh_linear_tanh(),
    "chain.conv_gelu_dropout2d_conv": _conv_gelu_dropout2d_conv(),
    "chain.groupnorm_elu_softmax_dropout": _norm_elu_softmax(),
}

SPECS: list[Spec] = [
    *[InplaceSpec(f"chain.{e.cls}+inplace", _inplace_cases(e), 0.012) for e in ENTRIES],
    *[ChainSpec(name, strategy, 0.024) for name, strategy in NETWORKS.items()],
]
