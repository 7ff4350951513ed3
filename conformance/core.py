"""The small core every spec uses: tallies, comparisons, PyTorch references with their n and
S, rejection classification, and repro text (the gradient checks are in gradcheck.py).

A spec's ``check(case, dtype, impls, rec)`` computes refcnn's results and PyTorch's and hands
each pair to the :class:`Recorder`, which applies refcnn.testing's bound and tallies the
outcome under (op, impl, dtype, check).
"""

from __future__ import annotations

import dis
import json
import math
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import refcnn
from refcnn import testing

from . import hazards, layouts, tolerance

REFCNN_DIR = os.path.dirname(os.path.abspath(refcnn.__file__))
# IndexError too: PyTorch raises it for a dim out of range, and refcnn mirrors it (from a raise statement)
ACCEPTED_ERRORS = (ValueError, TypeError, RuntimeError, IndexError)


# ---- tallies ------------------------------------------------------------------------------
@dataclass
class Tally:
    """One report row: how one check fared for one (op, impl, dtype) over all cases."""

    op: str
    impl: str
    dtype: str
    check: str
    configs: int = 0
    failed: int = 0
    unsupported: int = 0
    skipped: int = 0
    worst_abs_err: float = 0.0
    worst_ratio: float = 0.0
    worst_config: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None  # the smallest failing case: {"case", "detail", "size"}
    skip_reason: str = ""
    note: str = ""  # why the check has fewer supported configurations than the profile asks

    @property
    def supported(self) -> int:
        return self.configs - self.unsupported - self.skipped

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.configs - self.unsupported - self.skipped > 0

    @property
    def only_skipped(self) -> bool:
        """Every configuration the implementation took was skipped (the check is not applicable
        to it, or to those cases): nothing was checked, so never passed, but nothing failed."""
        return self.skipped > 0 and self.skipped == self.configs - self.unsupported

    def merge(self, other: Tally) -> None:
        self.configs += other.configs
        self.failed += other.failed
        self.unsupported += other.unsupported
        self.skipped += other.skipped
        self.skip_reason = self.skip_reason or other.skip_reason
        self.note = self.note or other.note
        if other.worst_config is not None and (self.worst_config is None or other.worst_ratio > self.worst_ratio):
            self.worst_ratio, self.worst_config = other.worst_ratio, other.worst_config
        self.worst_abs_err = max(self.worst_abs_err, other.worst_abs_err)
        if other.failure is not None and (self.failure is None or other.failure["size"] < self.failure["size"]):
            self.failure = other.failure

    def row(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "impl": self.impl,
            "dtype": self.dtype,
            "check": self.check,
            "configs": self.configs,
            "failed": self.failed,
            "unsupported": self.unsupported,
            "worst_abs_err": _finite(self.worst_abs_err),
            "worst_ratio_to_tolerance": _finite(self.worst_ratio),
            "worst_config": self.worst_config,
            "passed": self.passed,
        }


def _finite(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


class Recorder:
    """Collects outcomes for the case being checked (``begin`` sets it)."""

    def __init__(self, op: str, dtype: str, fd_budget: int = 0, verbose: bool = False) -> None:
        self.op = op
        self.dtype = dtype
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.case: dict[str, Any] = {}
        self.size = 0
        self.fd_left: dict[str, int] = {}
        self.fd_budget = fd_budget
        self.verbose = verbose
        self.done: set[Any] = set()  # checks run once per task (a module's init distribution)
        self.cases: dict[str, dict[str, int]] = {}  # impl -> configurations checked / unsupported / failed
        self._status: dict[str, str] = {}  # impl -> the current case's outcome so far

    def once(self, key: Any) -> bool:
        """True the first time ``key`` is asked in this task."""
        if key in self.done:
            return False
        self.done.add(key)
        return True

    def failures(self) -> int:
        return sum(t.failed for t in self.tallies.values())

    def begin(self, case: dict[str, Any], size: int) -> None:
        self.finish()
        self.case, self.size = case, size

    def finish(self) -> None:
        """Count the current case for each implementation: failed if any check failed, else
        unsupported if the implementation declined any part of it, else checked."""
        for impl, status in self._status.items():
            counts = self.cases.setdefault(impl, {"checked": 0, "unsupported": 0, "failed": 0})
            counts[status] += 1
        self._status = {}

    def _mark(self, impl: str, status: str) -> None:
        order = ["checked", "unsupported", "failed"]
        now = self._status.get(impl, "checked")
        self._status[impl] = max(now, status, key=order.index)

    def tally(self, impl: str, check: str) -> Tally:
        key = (impl, check)
        if key not in self.tallies:
            self.tallies[key] = Tally(self.op, impl, self.dtype, check)
        return self.tallies[key]

    def _say(self, impl: str, check: str, status: str, detail: str) -> None:
        if self.verbose:
            print(f"  {self.op} {impl} {self.dtype} {check}: {status} {detail}")

    def ok(self, impl: str, check: str, abs_err: float = 0.0, ratio: float = 0.0, detail: str = "") -> None:
        self._mark(impl, "checked")
        t = self.tally(impl, check)
        t.configs += 1
        t.worst_abs_err = max(t.worst_abs_err, abs_err)
        if t.worst_config is None or ratio > t.worst_ratio:
            t.worst_ratio, t.worst_config = ratio, dict(self.case)
        self._say(impl, check, "ok", detail or f"|err| {abs_err:.3g}, {ratio:.3g} x bound")

    def fail(self, impl: str, check: str, detail: str, abs_err: float = math.inf, ratio: float = math.inf) -> None:
        hazard = hazards.hazard_of(self.case)
        if hazard != "none":  # the hazard values the case's inputs hold (conformance/hazards.py)
            detail = f"{detail} [hazard: {hazards.DESCRIBED.get(hazard, hazard)}]"
        layout = layouts.layout_of(self.case)
        if layout != "C":  # the memory layout the arrays were handed in (conformance/layouts.py)
            detail = f"{detail} [arrays handed in as {layouts.DESCRIBED.get(layout, layout)}]"
        self._mark(impl, "failed")
        t = self.tally(impl, check)
        t.configs += 1
        t.failed += 1
        t.worst_abs_err = max(t.worst_abs_err, abs_err)
        if t.worst_config is None or not ratio <= t.worst_ratio:
            t.worst_ratio, t.worst_config = ratio, dict(self.case)
        if t.failure is None or self.size < t.failure["size"]:
            t.failure = {"case": dict(self.case), "detail": detail, "size": self.size}
        self._say(impl, check, "FAILED", detail)

    def unsupported(self, impl: str, checks: Iterable[str], detail: str) -> None:
        self._mark(impl, "unsupported")
        for check in checks:
            t = self.tally(impl, check)
            t.configs += 1
            t.unsupported += 1
            self._say(impl, check, "unsupported", detail)

    def skipped(self, impl: str, check: str, reason: str) -> None:
        t = self.tally(impl, check)
        t.configs += 1
        t.skipped += 1
        t.skip_reason = reason
        self._say(impl, check, "skipped", reason)

    def not_applicable(self, impl: str, check: str, reason: str) -> None:
        """A check this implementation cannot have (a layer class keeps no ctx.indices)."""
        self.skipped(impl, check, f"not applicable: {reason}")

    def crash(self, impl: str, check: str, stage: str, exc: BaseException) -> None:
        """An exception from inside the checked implementation: its crash, with its last frames."""
        self.fail(impl, check, crash_text(impl, stage, exc))

    def compare(
        self,
        impl: str,
        check: str,
        actual: Any,
        expected: Any,
        n: Any,
        S: Any,
        where: str = "",
        signed_zeros: bool | np.ndarray = False,
    ) -> bool:
        """Apply refcnn.testing's bound; record and return whether it held. Non-finite values
        must match exactly (nan where PyTorch gives nan, inf of the same sign); with
        ``signed_zeros`` (a result that selects an input's value, computing nothing) so must
        the sign of a zero: everywhere, or where a boolean mask of the result's shape says."""
        if actual is None or expected is None:
            if actual is None and expected is None:
                self.ok(impl, check)
                return True
            self.fail(impl, check, f"{where}: {impl} gave {_what(actual)}, PyTorch {_what(expected)}")
            return False
        if not isinstance(actual, (np.ndarray, np.generic, float, int)):
            self.fail(impl, check, f"{where}: {impl} gave a {type(actual).__name__}, expected a NumPy array")
            return False
        actual = np.asarray(actual)
        if actual.dtype != np.dtype(self.dtype):
            self.fail(
                impl, check, f"{where}: {impl} gave dtype {actual.dtype}, expected {self.dtype} (the input dtype)"
            )
            return False
        res = testing.compare(actual, expected, n, S, self.dtype)
        asked = np.ones(actual.shape, bool) if signed_zeros is True else signed_zeros
        signs = _zero_signs(actual, expected, impl, asked) if res.passed and asked is not False else ""
        if signs:
            self.fail(impl, check, f"{where}: {signs}" if where else signs, 0.0, math.inf)
            return False
        if not res.passed:
            detail = res.describe()
            if res.shape_ok and not res.finite_ok:
                detail = _nonfinite_text(actual, expected, impl)
            elif res.shape_ok and res.finite_ok and res.worst_index is not None:
                i = res.worst_index
                detail += (
                    f": {impl} {num(np.asarray(actual, dtype=np.float64)[i])}, PyTorch {num(np.asarray(expected)[i])}"
                )
            elif not res.shape_ok:
                detail = f"{impl} gave shape {np.shape(actual)}, expected {np.shape(expected)}"
            self.fail(impl, check, f"{where}: {detail}" if where else detail, res.worst_abs_err, res.worst_ratio)
            return False
        self.ok(impl, check, res.worst_abs_err, res.worst_ratio)
        return True

    def take_fd(self, impl: str) -> bool:
        """Whether this impl still has finite-difference budget (FD is slow: element by element)."""
        left = self.fd_left.setdefault(impl, self.fd_budget)
        if left <= 0:
            return False
        self.fd_left[impl] = left - 1
        return True


def _nonfinite_text(actual: Any, expected: Any, impl: str) -> str:
    """Where refcnn's and PyTorch's non-finite values part: the first such element, and how many."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        same = (a == e) | (np.isnan(a) & np.isnan(e))
    bad = ~same & ~(np.isfinite(a) & np.isfinite(e))
    where = np.argwhere(bad)
    if not len(where):
        return "non-finite values differ"
    i = tuple(int(v) for v in where[0])
    return (
        f"{impl} gives {num(a[i])} where PyTorch gives {num(e[i])} at {i} "
        f"({len(where)} element{'s' if len(where) > 1 else ''} whose nan/inf differ)"
    )


def _zero_signs(actual: Any, expected: Any, impl: str, where: Any) -> str:
    """Where (among ``where``) a zero's sign differs from PyTorch's (-0.0 vs +0.0): what to say
    ("" nowhere)."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    bad = np.argwhere((a == 0) & (e == 0) & (np.signbit(a) != np.signbit(e)) & np.asarray(where, bool))
    if not len(bad):
        return ""
    i = tuple(int(v) for v in bad[0])
    return (
        f"{impl} gives {num(a[i])} where PyTorch gives {num(e[i])} at {i} ({len(bad)} zero(s) of the other sign; "
        "the result is one of the input's values, so its sign is the input's)"
    )


def _what(a: Any) -> str:
    return "None" if a is None else f"an array of shape {np.shape(a)}"


def num(v: Any) -> str:
    """A number as people write it (never ``np.float64(...)``)."""
    f = float(v)
    signed_zero = f == 0 and math.copysign(1.0, f) < 0
    return repr(int(f)) if f.is_integer() and abs(f) < 1e16 and not signed_zero else repr(f)


# ---- crashes: an exception from inside the checked implementation ----------------------------
_SUITE_DIR = os.path.dirname(os.path.abspath(__file__))


def crash_text(impl: str, stage: str, exc: BaseException) -> str:
    """``impl``'s forward/backward raised (or returned something unusable): the exception and
    the last frames of its traceback below the registry's call into the implementation."""
    from refcnn.kernels import registry

    if type(exc).__name__ == "LayerProtocolError":  # a layer class broke the protocol: its message says how
        return f"{impl}'s {stage}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    wrapper = os.path.abspath(registry.__file__)
    calls = [i for i, f in enumerate(frames) if os.path.abspath(f.filename) == wrapper]
    if calls:
        mine = frames[calls[-1] + 1 :]
    else:
        mine = [f for f in frames if not os.path.abspath(f.filename).startswith(_SUITE_DIR + os.sep)]
    if calls and not mine:  # the registry could not use what the implementation returned
        shape = "(y, ctx)" if stage == "forward" else "a tuple of gradients (x first, then each parameter)"
        head = f"{impl}'s {stage} must return {shape}; what it returned failed with {type(exc).__name__}: {exc}"
    else:
        head = f"{impl}'s {stage} crashed: {type(exc).__name__}: {exc}"
    where = "".join(f"\n    {f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in mine[-3:])
    return head + where


def rejected_by_validator(exc: BaseException, op: str) -> bool:
    """Whether ``exc`` came from the op's validator (refcnn's check of the arguments, run before
    every implementation), not from inside the implementation."""
    from refcnn.kernels import registry

    validator = registry._validators.get(op)
    code = getattr(validator, "__code__", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


# ---- errors: whose are they -----------------------------------------------------------------
def classify_rejection(exc: BaseException) -> tuple[bool, str]:
    """(ok, why): a rejection is refcnn's own when it is a ValueError/TypeError/RuntimeError
    raised by a ``raise`` statement in refcnn's source, not an error from inside NumPy."""
    name = f"{type(exc).__module__}.{type(exc).__name__}"
    if not isinstance(exc, ACCEPTED_ERRORS) or type(exc).__module__.startswith("numpy"):
        return False, f"{name}: {exc}"
    tb = exc.__traceback__
    if tb is None:
        return False, f"{name} without a traceback: {exc}"
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    filename = os.path.abspath(code.co_filename)
    if not filename.startswith(REFCNN_DIR + os.sep):
        return False, f"{name} raised outside refcnn ({filename}:{tb.tb_lineno}): {exc}"
    ops = [i.opname for i in dis.get_instructions(code) if i.offset == tb.tb_lasti]
    if ops != ["RAISE_VARARGS"]:
        where = f"{os.path.relpath(filename, os.path.dirname(REFCNN_DIR))}:{tb.tb_lineno}"
        return False, f"{name} from a NumPy/Python call at {where} (not refcnn's own check): {exc}"
    return True, f"{type(exc).__name__}: {exc}"


def expect_rejection(rec: Recorder, impl: str, attempt: Callable[[], Any], why: str) -> None:
    """PyTorch rejected a call (``why`` says what and how): refcnn's ``attempt()`` of the same
    call must raise its own clear error (:func:`classify_rejection`), recorded as ``impl``'s
    ``rejects`` check. A NotImplementedError is the implementation declining: unsupported."""
    try:
        attempt()
    except NotImplementedError as exc:
        rec.unsupported(impl, ["rejects"], f"NotImplementedError: {exc}")
        return
    except Exception as exc:
        ok, what = classify_rejection(exc)
        if ok:
            rec.ok(impl, "rejects", detail=f"both reject: {what}")
        else:
            rec.fail(impl, "rejects", f"PyTorch rejects {why}; refcnn's error is not its own: {what}")
        return
    rec.fail(impl, "rejects", f"PyTorch rejects {why}; refcnn ({impl}) accepted it")


# ---- PyTorch references ---------------------------------------------------------------------
def to_torch(arrays: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in arrays.items():
        if v is None or not isinstance(v, np.ndarray):
            out[k] = v
        elif v.dtype.kind == "f":
            out[k] = torch.from_numpy(np.array(v, dtype=np.float64))
        else:
            out[k] = torch.from_numpy(np.array(v, dtype=np.int64))
    return out


def is_float(v: Any) -> bool:
    return isinstance(v, torch.Tensor) and v.is_floating_point()


def _np(t: Any) -> Any:
    """A tensor as a float64 ndarray (None stays None)."""
    return t.detach().cpu().numpy().astype(np.float64) if t is not None else None


@dataclass
class Expected:
    """PyTorch's float64 answer for one check, with the n and S of its bound."""

    value: np.ndarray | None
    n: Any
    S: Any


@dataclass
class Reference:
    y: np.ndarray
    forward: Expected
    grads: dict[str, Expected] = field(default_factory=dict)


def _grads(y: torch.Tensor, inputs: dict[str, Any], names: list[str], g: torch.Tensor, create: bool = False) -> list:
    wanted = [inputs[k] for k in names]
    got = torch.autograd.grad(y, wanted, g, allow_unused=True, create_graph=create)
    return [torch.zeros_like(w) if r is None else r for r, w in zip(got, wanted, strict=True)]


def _with_grad(tensors: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    out = dict(tensors)
    for k in names:
        out[k] = tensors[k].detach().clone().requires_grad_(True)
    return out


def jacobian_S(
    fn: Callable[..., torch.Tensor], tensors: dict[str, Any], over: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, S) with S = |y| + sum_j |dy/da_j| |a_j| over the inputs named in ``over``."""
    fixed = dict(tensors)

    def f(*args: torch.Tensor) -> torch.Tensor:
        call = dict(fixed)
        call.update(zip(over, args, strict=True))
        return fn(**call)

    args = tuple(tensors[k].detach() for k in over)
    y = f(*args).detach()
    if not over:
        return y, y.abs()
    try:
        jac = torch.autograd.functional.jacobian(f, args, vectorize=True)
    except Exception:
        jac = torch.autograd.functional.jacobian(f, args)
    S = y.abs().reshape(-1).clone()
    for a, J in zip(args, jac, strict=True):
        Jabs = J.reshape(y.numel(), a.numel()).abs()
        # a zero input is exact (its relative perturbation is 0): its column adds nothing,
        # even where the derivative is infinite there (log at 0); any other nan counts as inf
        Jabs[:, a.reshape(-1) == 0] = 0
        # so is an infinite or nan one (a hazard value): where the result is finite it does not
        # depend on it (a saturated exp), where it is not the comparison is exact
        Jabs[:, ~torch.isfinite(a.reshape(-1))] = 0
        finite = torch.where(torch.isfinite(a), a.abs(), torch.zeros_like(a)).reshape(-1)
        S += torch.nan_to_num(Jabs, nan=math.inf) @ finite
    return y, S.reshape(y.shape)


def reference(
    fn: Callable[..., torch.Tensor],
    arrays: dict[str, Any],
    diff: list[str],
    g: np.ndarray | None,
    method: str,
    counts: dict[str, tolerance.Count] | None = None,
    R: int = 0,
    jac_over: list[str] | None = None,
    count_fn: Callable[..., torch.Tensor] | None = None,
) -> Reference:
    """PyTorch float64 forward and gradients of ``fn(**arrays)`` with each check's n and S.

    ``diff``: the inputs whose gradients are checked (first one is the input x). ``g`` the
    upstream gradient (None: forward only). ``count_fn`` (higham): the op as a plain sum
    (e.g. average pooling with divisor 1), whose value on ones is the reduction length;
    the division it leaves out adds one rounding (n + 1).
    """
    t = to_torch(arrays)
    floats = [k for k, v in t.items() if is_float(v)]
    tg = _with_grad(t, diff)
    y = fn(**tg)
    ref = Reference(_np(y), Expected(_np(y), 0, 0))
    gt = torch.from_numpy(np.asarray(g, dtype=np.float64)) if g is not None else None
    grads = _grads(y, tg, diff, gt) if (gt is not None and diff) else []

    if method == "higham":
        absd = {k: (v.abs() if k in floats else v) for k, v in t.items()}
        ones = {k: (torch.ones_like(v) if k in floats else v) for k, v in t.items()}
        ta, to = _with_grad(absd, diff), _with_grad(ones, diff)
        ya = fn(**ta)
        counter = count_fn or fn
        yo = counter(**to)
        extra = 1 if count_fn is not None else 0
        ref.forward = Expected(_np(y), _np(yo) + extra, _np(ya))
        if gt is not None and diff:
            Sg = _grads(ya, ta, diff, gt.abs())
            ng = _grads(yo, to, diff, torch.ones_like(gt))
            for k, gr, s, n in zip(diff, grads, Sg, ng, strict=True):
                ref.grads[k] = Expected(_np(gr), _np(n) + extra, _np(s))
    elif method == "selection":
        ref.forward = Expected(_np(y), 0, 0)
        if gt is not None and diff:
            y2 = fn(**tg)
            Sg = _grads(y2, tg, diff, gt.abs())
            y3 = fn(**tg)
            ng = _grads(y3, tg, diff, torch.ones_like(gt))
            for k, gr, s, n in zip(diff, grads, Sg, ng, strict=True):
                ref.grads[k] = Expected(_np(gr), _np(n).__abs__(), _np(s).__abs__())
    elif method == "mixed":
        assert counts is not None
        over = [k for k in (jac_over if jac_over is not None else floats) if k in floats]
        _, S = jacobian_S(fn, t, over)
        ref.forward = Expected(_np(y), counts["forward"].n(R), _np(S))
        if gt is not None and diff:
            for k, gr in zip(diff, grads, strict=True):

                def gfn(_k: str = k, **kw: Any) -> torch.Tensor:
                    gg = kw.pop("__g")
                    kw = dict(kw)
                    if not kw[_k].requires_grad:
                        kw[_k] = kw[_k].detach().requires_grad_(True)
                    return torch.autograd.grad(fn(**kw), kw[_k], gg, create_graph=True)[0]

                tt = dict(t)
                tt["__g"] = gt
                _, S_grad = jacobian_S(gfn, tt, [*over, "__g"])
                ref.grads[k] = Expected(_np(gr), counts["grad"].n(R), _np(S_grad))
    else:
        raise ValueError(f"unknown tolerance method {method!r}")
    return ref


# ---- repro -------------------------------------------------------------------------------------
def repro_text(kind: str, name: str, impl: str, dtype: str, check: str, case: dict[str, Any], detail: str) -> str:
    """A standalone snippet that re-runs one failing case from any folder: it prints every
    check's outcome on it and the case's arrays, and saves them as an .npz."""
    from .engine import PLUGINS

    first = detail.splitlines()[0] if detail else ""
    return (
        f"# {name} impl={impl} dtype={dtype} check={check}: {first}\n"
        f"# config (seed included): {json.dumps(case, sort_keys=True)}\n"
        "python - <<'EOF'\n"
        "from refcnn.conformance import load_plugin, repro\n"
        + "".join(f"load_plugin({p!r})\n" for p in PLUGINS)
        + f"repro({kind!r}, {name!r}, {impl!r}, {dtype!r}, {dict(sorted(case.items()))!r})\n"
        "EOF"
    )


def rng_for(case: dict[str, Any], stream: int = 0) -> np.random.Generator:
    """The generator that makes a case's arrays: everything follows from case['seed']."""
    return np.random.default_rng([int(case["seed"]), stream])
