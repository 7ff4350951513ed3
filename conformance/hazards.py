"""Hazard values crossed with every code path: the values where kernels go wrong.

Large magnitudes (logits of 1e4, 1e30 where the op is linear in its input), ties, zeros of
both signs, +inf, -inf, nan and subnormals: each op case carries a ``hazard``, added as it is
drawn (every other drawn value stays as it was; kept in the case, so a repro rebuilds it).
After the spec's ``build()`` a few elements of each input the op declares below are set to
that hazard; the rest of the case stays ordinary. Each op also names the code path a case
takes (plain or weighted, reduced or not, padded or not, ceil_mode, groups, bias, training
or evaluation...); a path's cases cycle through the hazards, and the report's coverage table
shows which hazard met which path, so ``ci`` is seen to meet each hazard on each path, not
only in a pinned example.

The comparison treats non-finite results exactly (nan where PyTorch gives nan, inf of the
same sign where it gives inf); finite differences are skipped on hazard cases (there is no
derivative at a tie, a kink or an infinity). Where PyTorch itself has no consistent answer
(``TORCH_UNDEFINED``) the check is recorded as not applicable, with the reason, never as passed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# The hazards a path's cases cycle through, in order: none in 3 of 10, each hazard in 1 of 10;
# a path's first case is ordinary, its next seven meet the seven hazards (a rarely drawn path
# meets them all in 8 cases).
CYCLE = ("none", "nan", "+inf", "-inf", "zeros", "large", "ties", "subnormal", "none", "none")
KINDS = tuple(dict.fromkeys(CYCLE))
DESCRIBED = {
    "none": "no hazard values",
    "large": "a few elements of large magnitude",
    "ties": "a few elements tied (equal to a neighbour, and to the target where there is one)",
    "zeros": "a few elements +0.0 and -0.0",
    "+inf": "a few elements +inf",
    "-inf": "a few elements -inf",
    "nan": "a few elements nan",
    "subnormal": "a few subnormal elements (float32's and float64's, both signs)",
}
# subnormal in float32 (normal in float64) and in float64 (0 in float32): each dtype gets one
SUBNORMALS = (3e-41, -7e-42, 5e-320, -1e-315)


def drawer(op: str, path: Callable[[dict[str, Any]], str] | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Adds a ``hazard`` to each case drawn: the n-th case on a code path (``path(case)``, by
    default the op's, :func:`path_of`) gets ``CYCLE[n % 10]``,
    so every path drawn at least 8 times meets every hazard (a hash of the case would leave
    gaps: ci's derandomized draws repeat a few seeds, and some paths come rarely). Every
    other drawn value stays as it was; the hazard is kept in the case, so a repro rebuilds it.
    One drawer per run of a spec's strategy: the same cases get the same hazards every run."""
    seen: dict[str, int] = {}

    def add(case: dict[str, Any]) -> dict[str, Any]:
        if "seed" not in case:
            return case
        key = path(case) if path is not None else path_of(op, case)
        n = seen[key] = seen.get(key, -1) + 1
        return {**case, "hazard": CYCLE[n % len(CYCLE)]}

    return add


def bound_terms(terms: Any, hazard: str) -> np.ndarray:
    """A bound's extra magnitude terms on a case with ``hazard``: a nan term is 0 * inf (a -inf
    logit's term weighted by a zero probability), which adds nothing; elsewhere as they are."""
    if hazard == "none":
        return np.asarray(terms)
    return np.nan_to_num(np.asarray(terms, dtype=np.float64), nan=0.0)


def hazard_of(case: dict[str, Any]) -> str:
    """The case's hazard (its ``hazard`` key; a pinned example without one: none)."""
    return str(case.get("hazard", "none"))


# ---- which inputs get hazards, and how large "large" is, per op ------------------------------
def _inputs(op: str) -> tuple[str, ...]:
    if op in NO_HAZARDS:
        return ()
    if op in ("mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy_with_logits"):
        return ("x", "target")
    return ("x",)


# ops whose inputs take no hazard, with the reason (none today: dropout reads its mask off a
# twin run on ordinary values, conformance/specs/dropout.py)
NO_HAZARDS: dict[str, str] = {}

# 1e30 where the op is linear (or piecewise linear) in x; 1e4 where it squares, exponentiates or
# normalises (1e30 would overflow float32 where float64, the reference, does not)
LARGE_1E30 = {"conv2d", "conv_transpose2d", "linear", "flatten", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
              "adaptive_max_pool2d", "relu", "leaky_relu", "hardtanh", "elu", "sigmoid", "tanh", "l1_loss",
              "dropout", "dropout2d"}  # fmt: skip


def large(op: str) -> float:
    return 1e30 if op in LARGE_1E30 else 1e4


# ---- where PyTorch has no consistent answer ----------------------------------------------------
TORCH_UNDEFINED: dict[tuple[str, str], dict[str, str]] = {
    ("elu", "nan"): {
        "grad_input": "PyTorch's elu backward at a nan input gives the upstream gradient in its scalar loop "
        "(short arrays, the tail of a long one) and nan in its vectorised loop: no one answer to match",
    },
    ("max_pool2d", "nan"): {
        "grad_input": "a window holding several nans has no maximum: PyTorch gives its gradient to the last nan "
        "it scans, an order rather than a value (refcnn's own kernels follow it, which check indices pins)",
    },
    ("hardtanh", "nan"): {
        "grad_input": "PyTorch's hardtanh backward at a nan input gives the upstream gradient in its scalar loop "
        "(short arrays, the tail of a long one) and 0 in its vectorised loop: no one answer to match",
    },
}


def undefined(op: str, case: dict[str, Any], check: str) -> str:
    """Why ``check`` is not applicable to this case ("" where it is)."""
    return TORCH_UNDEFINED.get((op, hazard_of(case)), {}).get(check, "")


# ---- applying a hazard ---------------------------------------------------------------------------
def apply(op: str, case: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    """``arrays`` (float64, as ``build()`` made them) with the case's hazard set in a few
    elements of each input ``op`` declares: new arrays, the others as they were."""
    hazard = hazard_of(case)
    names = [k for k in _inputs(op) if isinstance(arrays.get(k), np.ndarray) and arrays[k].dtype.kind == "f"]
    if hazard == "none" or not names or "seed" not in case:
        return arrays
    out = dict(arrays)
    rng = np.random.default_rng([int(case["seed"]), 77])
    first = out[names[0]] = np.array(out[names[0]], dtype=np.float64, copy=True)
    if first.size == 0:
        return out
    at = _positions(rng, first.shape)
    _set(first, at, hazard, op, rng)
    for k in names[1:]:
        a = out[k] = np.array(out[k], dtype=np.float64, copy=True)
        if hazard == "ties" and a.shape == first.shape:  # tied with the input: the kink of a loss
            a.reshape(-1)[at] = first.reshape(-1)[at]
        elif a.size and hazard != "ties":  # elsewhere than the input's, mostly
            _set(a, _positions(rng, a.shape), hazard, op, rng)
    return out


def _positions(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A few flat positions (one per 8 elements, at most 3): most of the case stays ordinary."""
    size = int(np.prod(shape))
    return rng.choice(size, size=min(3, max(1, size // 8)), replace=False)


def _set(a: np.ndarray, at: np.ndarray, hazard: str, op: str, rng: np.random.Generator) -> None:
    flat = a.reshape(-1)
    if hazard == "large":
        flat[at] = large(op) * np.where(rng.random(at.size) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 1.0, at.size)
    elif hazard == "zeros":
        flat[at] = np.resize([-0.0, 0.0], at.size)
    elif hazard == "+inf":
        flat[at] = np.inf
    elif hazard == "-inf":
        flat[at] = -np.inf
    elif hazard == "nan":
        flat[at] = np.nan
    elif hazard == "subnormal":
        flat[at] = np.resize(rng.permutation(SUBNORMALS), at.size)
    elif hazard == "ties":  # each chosen element's value copied to its next neighbours along the
        # last two axes (the same pooling window, mostly), and the chosen ones tied with each other
        flat[at] = flat[at[0]]
        shape = a.shape
        for i in at:
            idx = list(np.unravel_index(int(i), shape)) if shape else []
            for ax in range(max(0, len(shape) - 2), len(shape)):
                if idx[ax] + 1 < shape[ax]:
                    nb = list(idx)
                    nb[ax] += 1
                    a[tuple(nb)] = flat[i]


# ---- the code path a case takes, per op -----------------------------------------------------------
def _reduction(case: dict[str, Any]) -> str:
    """reduced (mean or sum: one sum, over different divisors) or unreduced; an invalid
    reduction (rejected before any path) is a path of its own, "invalid"."""
    r = case.get("reduction", "mean")
    return "unreduced" if r == "none" else ("reduced" if r in ("mean", "sum") else "invalid")


def _padded(case: dict[str, Any]) -> str:
    return "padded" if any(case.get("padding", [0])) else "unpadded"


def _conv(case: dict[str, Any]) -> str:
    groups = "grouped" if case["groups"] > 1 else "ungrouped"
    return f"{groups}-{'bias' if case['bias'] else 'nobias'}-{_padded(case)}"


def _max_pool(case: dict[str, Any]) -> str:
    return f"{_padded(case)}-{'ceil' if case['ceil_mode'] else 'floor'}"


def _avg_pool(case: dict[str, Any]) -> str:
    if case.get("divisor_override") is not None:
        div = "override"
    elif any(case["padding"]):
        div = "padded-incl" if case["count_include_pad"] else "padded-excl"
    else:
        div = "unpadded"
    return f"{div}-{'ceil' if case['ceil_mode'] else 'floor'}"


def _adaptive(case: dict[str, Any]) -> str:
    Ho, Wo = case["output_size"]
    even = Ho and Wo and case["H"] % Ho == 0 and case["W"] % Wo == 0
    return "even-bins" if even else "uneven-bins"


def _class_loss(case: dict[str, Any]) -> str:
    target = "probs" if case.get("probs") else ("smooth" if case.get("label_smoothing") else "index")
    prefix = "" if "label_smoothing" not in case else f"{target}-"
    if _reduction(case) == "invalid":
        return "invalid"
    return f"{prefix}{'weighted' if case['weight'] else 'plain'}-{_reduction(case)}"


def _bce(case: dict[str, Any]) -> str:
    w = [k for k in ("weight", "pos_weight") if case.get(k)]
    return "invalid" if _reduction(case) == "invalid" else f"{'+'.join(w) or 'plain'}-{_reduction(case)}"


def _batch_norm(case: dict[str, Any]) -> str:
    mode = "train" if case["training"] else ("eval-running" if case["track"] else "eval-batch")
    return f"{mode}-{'affine' if case['affine'] else 'plain'}"


def _affine(case: dict[str, Any]) -> str:
    return "affine" if case["affine"] else "plain"


def _group_norm(case: dict[str, Any]) -> str:
    return f"{'one-group' if case['num_groups'] == 1 else 'groups'}-{_affine(case)}"


def _softmax(case: dict[str, Any]) -> str:
    nd = max(len(case["shape"]), 1)
    return "last-dim" if case["dim"] in (-1, nd - 1) else "inner-dim"


REDUCED = ("reduced", "unreduced")
PATHS: dict[str, tuple[Callable[[dict[str, Any]], str], list[str]]] = {
    # op -> (the case's path, every path: the table lists those never met)
    "conv2d": (_conv, [f"{g}-{b}-{p}" for g in ("ungrouped", "grouped") for b in ("bias", "nobias")
                       for p in ("padded", "unpadded")]),
    "conv_transpose2d": (_conv, [f"{g}-{b}-{p}" for g in ("ungrouped", "grouped") for b in ("bias", "nobias")
                                 for p in ("padded", "unpadded")]),
    "linear": (lambda c: f"{'bias' if c['bias'] else 'nobias'}-{'batched' if c['lead'] else 'single'}",
               ["bias-batched", "bias-single", "nobias-batched", "nobias-single"]),
    "max_pool2d": (_max_pool, ["padded-ceil", "padded-floor", "unpadded-ceil", "unpadded-floor"]),
    "avg_pool2d": (_avg_pool, [f"{d}-{c}" for d in ("unpadded", "padded-incl", "padded-excl", "override")
                               for c in ("ceil", "floor")]),
    "adaptive_avg_pool2d": (_adaptive, ["even-bins", "uneven-bins"]),
    "adaptive_max_pool2d": (_adaptive, ["even-bins", "uneven-bins"]),
    "leaky_relu": (lambda c: "negative-slope" if c["negative_slope"] < 0 else "slope",
                   ["slope", "negative-slope"]),
    "elu": (lambda c: "alpha0" if c["alpha"] == 0 else "alpha", ["alpha", "alpha0"]),
    "gelu": (lambda c: str(c["approximate"]), ["none", "tanh"]),
    "hardtanh": (lambda c: "ordered" if c["min_val"] < c["max_val"] else "collapsed", ["ordered", "collapsed"]),
    "softmax": (_softmax, ["last-dim", "inner-dim"]),
    "log_softmax": (_softmax, ["last-dim", "inner-dim"]),
    "cross_entropy": (_class_loss, [f"{t}-{w}-{r}" for t in ("index", "smooth", "probs")
                                    for w in ("plain", "weighted") for r in REDUCED]),
    "nll_loss": (_class_loss, [f"{w}-{r}" for w in ("plain", "weighted") for r in REDUCED]),
    "mse_loss": (_bce, [f"plain-{r}" for r in REDUCED]),
    "l1_loss": (_bce, [f"plain-{r}" for r in REDUCED]),
    "smooth_l1_loss": (lambda c: "invalid" if _reduction(c) == "invalid" or c["beta"] < 0
                       else f"{'beta0' if c['beta'] == 0 else 'beta'}-{_reduction(c)}",
                       [f"{b}-{r}" for b in ("beta", "beta0") for r in REDUCED]),
    "binary_cross_entropy": (_bce, [f"{w}-{r}" for w in ("plain", "weight") for r in REDUCED]),
    "binary_cross_entropy_with_logits": (_bce, [f"{w}-{r}" for w in ("plain", "weight", "pos_weight",
                                                                      "weight+pos_weight")
                                                for r in REDUCED]),
    "batch_norm": (_batch_norm, [f"{m}-{a}" for m in ("train", "eval-running", "eval-batch")
                                 for a in ("affine", "plain")]),
    "group_norm": (_group_norm, [f"{g}-{a}" for g in ("one-group", "groups") for a in ("affine", "plain")]),
    "layer_norm": (lambda c: _affine(c), ["affine", "plain"]),
    "dropout": (lambda c: "train" if c["training"] else "eval", ["train", "eval"]),
    "dropout2d": (lambda c: "train" if c["training"] else "eval", ["train", "eval"]),
}  # fmt: skip


# ops drawn more often than the profile's count, so that each of their paths comes at least
# 8 times in ci and meets every hazard (checked by conformance/test_hazards.py); a few seconds each
DRAWS = {"cross_entropy": 3.0, "conv_transpose2d": 1.5, "conv2d": 1.3, "binary_cross_entropy_with_logits": 1.5,
         "smooth_l1_loss": 1.8}  # fmt: skip


def path_of(op: str, case: dict[str, Any]) -> str:
    """The code path ``op`` takes on ``case`` (one path, "plain", for an op with one)."""
    entry = PATHS.get(op)
    if entry is None:
        return "plain"
    try:
        return entry[0](case)
    except (KeyError, TypeError, ValueError):  # a hand-written case without every key
        return "other"


def domains(op: str) -> dict[str, list[Any]]:
    """Every hazard and every path of ``op``: the coverage table lists the pairs never met."""
    if op in NO_HAZARDS:
        return {"hazard": ["none"], "path": [path_of(op, {})]}
    return {"hazard": list(KINDS), "path": PATHS[op][1] if op in PATHS else ["plain"]}
