"""What a spec is, and the generic check of a kernel op against PyTorch.

A spec names what it checks (an op in the registry, a Module class, an optimizer...), how
to draw cases (a hypothesis strategy plus pinned ``examples``), and ``check(case, dtype,
impls, rec)``, which records every check's outcome on one case in the Recorder.

:class:`OpSpec` implements the whole kernel contract once; an op's spec only says how to
build its arrays and config from a case and how to call PyTorch:

1. PyTorch (float64, on the upcast inputs) rejects the case: refcnn must reject it with its
   own error (check ``rejects``); PyTorch accepts: refcnn must accept it too.
2. ``forward``, ``grad_input``, ``grad_<param>`` against PyTorch under the spec's tolerance
   method (see conformance/tolerance.py), with a random non-uniform upstream gradient.
3. ``adjoint`` for ops linear in x: <op(x), g> = <x, op^T(g)>.
4. ``finite_difference`` in float64 with refcnn.testing's central differences (no PyTorch).
5. ``extra_checks`` for state a forward changes (BatchNorm running statistics).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from refcnn import kernels, testing

from .. import core, gradcheck, hazards, layouts, relations, tolerance
from ..strategies import make_upstream


@dataclass
class Built:
    """A case made concrete: the kernel's positional arrays (x first; None for an absent
    parameter), its keyword config, and how to call PyTorch."""

    arrays: dict[str, np.ndarray | None]
    config: dict[str, Any]
    torch_fn: Callable[..., torch.Tensor]
    R: int = 0  # reduction length for the mixed bounds
    extra: dict[str, Any] = field(default_factory=dict)


class Spec:
    kind = "op"
    name = ""
    weight = 1.0  # relative number of examples per profile
    fd_budget = 4  # finite-difference cases per impl in the ci profile
    examples: list[dict[str, Any]] = []  # noqa: RUF012
    pairs: list[tuple[str, str]] = []  # noqa: RUF012  (pairwise coverage to report)
    domains: dict[str, list[Any]] = {}  # noqa: RUF012
    layouts = False  # draw a memory layout per case (conformance/layouts.py)

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        raise NotImplementedError

    def cases(self) -> st.SearchStrategy[dict[str, Any]]:
        """The strategy the engine draws from: ``strategy()``, with the layout axis if drawn."""
        return self.strategy().map(layouts.with_layout) if self.layouts else self.strategy()

    def impls(self) -> list[str]:
        return ["default"]

    def dtypes(self) -> list[str]:
        return ["float32", "float64"]

    def size(self, case: dict[str, Any]) -> int:
        return sum(int(v) for v in _ints(case) if v > 0)

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        return {k: _label(v) for k, v in case.items() if k != "seed"}

    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        raise NotImplementedError


def _ints(case: dict[str, Any]) -> list[int]:
    out: list[int] = []
    for v in case.values():
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(int(u) for u in v if isinstance(u, int) and not isinstance(u, bool))
    return out


def _label(v: Any) -> Any:
    if isinstance(v, list):
        return "x".join(str(u) for u in v)
    return v


HAZARD_PAIR = ("hazard", "path")  # the coverage table's hazard x code path (conformance/hazards.py)


def _with_hazards(build: Callable[[Any, dict[str, Any]], Built]) -> Callable[[Any, dict[str, Any]], Built]:
    """``build``, then the case's hazard set in a few elements of the op's inputs (every
    caller of ``build``, the repro's saved arrays too, sees the same arrays)."""

    @functools.wraps(build)
    def wrapped(self: Any, case: dict[str, Any]) -> Built:
        built = build(self, {k: v for k, v in case.items() if k != "hazard"})  # the spec's own keys only
        hazard = hazards.hazard_of(case)
        if hazard != "none" and "hazard" not in built.extra:
            built.arrays = hazards.apply(self.op, case, built.arrays)
            built.extra.update(hazard=hazard, no_fd=True)  # no derivative at a tie, a kink or an infinity
        return built

    return wrapped


class OpSpec(Spec):
    """The generic kernel-op check (see the module docstring)."""

    op = ""
    pairs = [HAZARD_PAIR]  # noqa: RUF012
    method = "higham"  # tolerance method: higham | selection | mixed
    grads: tuple[str, ...] = ("x",)  # backward's outputs, in order (x first)
    linear = False  # check the adjoint identity (op linear in x once params in `adjoint_drop` are None)
    adjoint_drop: tuple[str, ...] = ()
    fd_max = 240  # finite differences only on cases with at most this many input elements
    jac_over: list[str] | None = None  # mixed: the inputs the Jacobian runs over (default: every float)
    layouts = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every op spec gets the hazard axis without editing it: its ``build`` applies the
        case's hazard, and its coverage pairs include hazard x path."""
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _with_hazards(cls.__dict__["build"])  # type: ignore[method-assign,assignment]
        if "pairs" in cls.__dict__ and HAZARD_PAIR not in cls.pairs:
            cls.pairs = [*cls.pairs, HAZARD_PAIR]

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.op

    @property
    def weight(self) -> float:
        """Relative number of cases: more where rare paths must meet every hazard (hazards.DRAWS)."""
        return self.__dict__.get("_weight", hazards.DRAWS.get(self.op, 1.0))

    @weight.setter
    def weight(self, value: float) -> None:
        self._weight = value

    @property
    def domains(self) -> dict[str, list[Any]]:  # type: ignore[override]
        return hazards.domains(self.op)

    def cases(self) -> st.SearchStrategy[dict[str, Any]]:
        """``Spec.cases()`` with the hazard axis (conformance/hazards.py) where the op takes hazards."""
        if self.op in hazards.NO_HAZARDS:
            return super().cases()
        return super().cases().map(hazards.drawer(self.op))

    def features(self, case: dict[str, Any]) -> dict[str, Any]:
        return {**super().features(case), "hazard": hazards.hazard_of(case), "path": hazards.path_of(self.op, case)}

    def impls(self) -> list[str]:
        return kernels.available(self.op)

    def build(self, case: dict[str, Any]) -> Built:
        raise NotImplementedError

    def extra_terms(self, built: Built, upcast: dict[str, Any], g: np.ndarray) -> dict[str, np.ndarray]:
        """Mixed method: magnitudes of the terms PyTorch's own formula sums where it cancels
        (1 - sigmoid, 1 + erf, ...), added to S: the float64 reference carries that error too.
        Keys: "forward" or a gradient's input name."""
        return {}

    def updated(self, built: Built) -> tuple[str, ...]:
        """The inputs this case's forward updates in place (running statistics in training):
        handed in C-ordered and writeable, and left out of ``caller_arrays``."""
        return ()

    def batched(self, built: Built) -> bool:
        """Whether x's axis 0 is a batch whose items the op treats independently (the
        ``batch_items`` relation is checked on cases where this holds and N > 1)."""
        return False

    def skip_gradients(self, built: Built, upcast: dict[str, Any]) -> bool:
        """True where PyTorch's own gradient is undefined (see max_pool2d)."""
        return False

    def count_fn(self, case: dict[str, Any]) -> Callable[..., torch.Tensor] | None:
        return None

    def extra_checks(
        self, case: dict[str, Any], built: Built, dtype: str, impl: str, inputs: dict[str, Any], rec: core.Recorder
    ) -> None:
        """State a forward changes (called after the forward ran on ``inputs``)."""

    def checks(self, dtype: str) -> list[str]:
        names = ["forward", "caller_arrays"] + [grad_check(k, i) for i, k in enumerate(self.grads)]
        if self.linear:
            names.append("adjoint")
        if dtype == "float64":
            names += ["finite_difference", "vjp_direction"]
        if type(self).batched is not OpSpec.batched:
            names.append("batch_items")
        return names + relations.names(self.op)

    def call(self, kernel: kernels.Kernel, inputs: dict[str, Any], built: Built) -> tuple[Any, Any]:
        return kernel.forward(*inputs.values(), **built.config)

    def output(self, y: Any) -> np.ndarray:
        """The array compared as ``forward`` (kernels whose forward returns more override)."""
        return np.asarray(y)

    # ---- the generic check -------------------------------------------------------------
    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        with np.errstate(invalid="ignore"):  # the suite's own sums and bounds on a hazard case's inf and nan
            self.check_case(case, dtype, impls, rec)

    def check_case(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        built = self.build(case)
        dt = np.dtype(dtype)
        inputs = {k: _cast(v, dt) for k, v in built.arrays.items()}
        upcast = {k: _cast(v, np.dtype(np.float64)) for k, v in inputs.items()}
        try:
            with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                built.torch_fn(**core.to_torch(upcast))
        except Exception as exc:  # PyTorch rejects: refcnn must too
            self._expect_rejection(case, built, inputs, impls, rec, f"{type(exc).__name__}: {exc}")
            return
        # PyTorch accepts with a warning that the result is likely wrong or the input
        # deprecated (a mis-shaped loss target it broadcasts): refcnn may reject it instead
        torch_warning = next((str(w.message) for w in caught if issubclass(w.category, UserWarning)), "")
        # each implementation's forward first: a case every implementation declines costs no reference
        attempts = {}
        layout = layouts.layout_of(case)
        for impl in impls:
            kernel = kernels.get(self.op, impl)
            updated = self.updated(built)
            fresh = {k: layouts.apply(v, "C" if k in updated else layout) for k, v in inputs.items()}
            try:
                attempts[impl] = (kernel, fresh, self.call(kernel, fresh, built), None)
            except NotImplementedError as exc:
                rec.unsupported(impl, ["rejects", *self.checks(dtype)], f"NotImplementedError: {exc}")
            except Exception as exc:
                attempts[impl] = (kernel, fresh, None, exc)
        if not attempts:
            return
        diff = [k for k in self.grads if upcast.get(k) is not None]
        if self.skip_gradients(built, upcast):
            diff = []
        y_shape = built.torch_fn(**core.to_torch(upcast)).shape
        # the reference sees exactly the upstream gradient refcnn gets: rounded to dt, upcast
        g_dt = make_upstream(core.rng_for(case, 99), y_shape).astype(dt)
        g = g_dt.astype(np.float64)
        counts = tolerance.BOUNDS.get(self.op)
        try:
            ref = core.reference(
                built.torch_fn, upcast, diff, g, self.method, counts, built.R, self.jac_over, self.count_fn(case)
            )
        except RuntimeError:  # PyTorch's backward refuses (an empty output): forward only, no gradients checked
            ref = core.reference(
                built.torch_fn, upcast, [], None, self.method, counts, built.R, self.jac_over, self.count_fn(case)
            )
            diff = []
        built.extra["dtype"] = dt
        for check_name, terms in self.extra_terms(built, upcast, g).items():
            terms = hazards.bound_terms(terms, built.extra.get("hazard", "none"))
            target = ref.forward if check_name == "forward" else ref.grads[check_name]
            target.S = np.asarray(target.S) + terms
        for impl, attempt in attempts.items():
            self.check_impl(case, built, dtype, impl, attempt, inputs, upcast, diff, g_dt, g, ref, torch_warning, rec)

    def check_impl(
        self,
        case: dict[str, Any],
        built: Built,
        dtype: str,
        impl: str,
        attempt: tuple[kernels.Kernel, dict[str, Any], Any, BaseException | None],
        inputs: dict[str, Any],
        upcast: dict[str, Any],
        diff: list[str],
        g_dt: np.ndarray,
        g: np.ndarray,
        ref: core.Reference,
        torch_warning: str,
        rec: core.Recorder,
    ) -> None:
        """Every check of one implementation on one case PyTorch accepts, after its forward
        (``attempt``: the kernel, the inputs it got, (y, ctx) or the exception; ``inputs`` as they
        were before it, for the adjoint and finite differences). A NotImplementedError
        anywhere is the implementation declining (unsupported); any other exception from inside
        it is its crash; once the forward failed, its gradients are not checked (one failure,
        one message)."""
        kernel, fresh, result, exc = attempt
        grad_checks = [grad_check(k, i) for i, k in enumerate(self.grads)]
        if exc is not None:
            if not core.rejected_by_validator(exc, self.op):
                rec.ok(impl, "rejects")
                rec.crash(impl, "forward", "forward", exc)
                return
            own, what = core.classify_rejection(exc)
            if torch_warning and own:
                rec.ok(impl, "rejects", detail=f"PyTorch warns ({torch_warning[:80]}); refcnn rejects: {what}")
            else:
                rec.fail(impl, "rejects", f"refcnn's {self.op} rejected a configuration PyTorch accepts: {what}")
            return
        y, ctx = result
        rec.ok(impl, "rejects")
        before = layouts.snapshot(inputs)
        written = layouts.changed(fresh, before, skip=self.updated(built))
        exact = self.zero_signs(inputs, ref.forward.value)
        if not rec.compare(
            impl, "forward", self.output(y), ref.forward.value, ref.forward.n, ref.forward.S, "forward", exact
        ):
            self.record_caller_arrays(rec, impl, written, "forward")
            return
        if not diff:
            self.record_caller_arrays(rec, impl, written, "forward")
            return
        self.compare_forward_extra(case, built, y, ctx, upcast, impl, rec)
        self.extra_checks(case, built, dtype, impl, fresh, rec)
        # the caller's upstream gradient in the case's layout; then the caller writes into the output
        g_in = layouts.apply(g_dt, layouts.layout_of(case))
        relation = "batch_items" in self.checks(dtype) and self.batched(built) and np.shape(inputs["x"])[0] > 1
        y_batch = np.array(self.output(y), copy=True) if relation else None  # before the caller writes into y
        wrote = layouts.overwrite(y)
        try:
            got = kernel.backward(g_in, ctx)
        except NotImplementedError as exc:
            rec.unsupported(impl, [c for c in self.checks(dtype) if c != "forward"], f"NotImplementedError: {exc}")
            return
        except Exception as exc:
            rec.crash(impl, "grad_input", "backward", exc)
            return
        later = layouts.changed(fresh, before, skip=[*self.updated(built), *written])
        written += [f"{k} (in backward)" for k in later if not layouts.shares(fresh[k], y)]
        if layouts.changed({"grad_y": g_in}, layouts.snapshot({"grad_y": g_dt})):
            written.append("grad_y (in backward)")
        self.record_caller_arrays(rec, impl, written, "forward and backward")
        if len(got) != len(self.grads):
            rec.fail(
                impl,
                "grad_input",
                f"{impl}'s backward returned {len(got)} gradients, expected {len(self.grads)} ({', '.join(self.grads)})",
            )
            return
        for i, (k, gk) in enumerate(zip(self.grads, got, strict=True)):
            exp = ref.grads.get(k)
            why = hazards.undefined(self.op, case, grad_checks[i])
            if why:
                rec.not_applicable(impl, grad_checks[i], why)
            elif exp is None:
                rec.compare(impl, grad_checks[i], gk, None, 0, 0, f"grad of {k} (absent parameter)")
            else:
                where = f"grad of {k}"
                if wrote and not _matches(gk, exp, dtype):
                    where += self.write_matters(kernel, inputs, built, g_dt, i, exp, dtype)
                rec.compare(impl, grad_checks[i], gk, exp.value, exp.n, exp.S, where)
        if relation:
            try:
                self.check_batch_items(built, inputs, y_batch, got, g_dt, ref, impl, kernel, rec)
            except NotImplementedError as exc:
                rec.unsupported(impl, ["batch_items"], f"NotImplementedError: {exc}")
        elif "batch_items" in self.checks(dtype):
            rec.skipped(impl, "batch_items", "not applicable to this case: a batch of one, or no batch axis")
        relations.check(relations.Run(self, case, built, dtype, impl, kernel, inputs, upcast, diff, g_dt, ref, rec))
        if self.linear:
            try:
                self.check_adjoint(case, built, inputs, upcast, g, dtype, impl, kernel, rec)
            except NotImplementedError as exc:  # e.g. declines the case without its bias
                rec.unsupported(impl, ["adjoint"], f"NotImplementedError: {exc}")
        if dtype == "float64" and self.fd_allowed(built, upcast) and rec.take_fd(impl):
            try:
                self.check_fd(built, inputs, g, kernel, impl, rec)
            except NotImplementedError as exc:
                rec.unsupported(impl, ["finite_difference"], f"NotImplementedError: {exc}")
        elif dtype == "float64" and not built.extra.get("no_fd") and not self.fd_allowed(built, upcast):
            try:  # too large for element-wise differences: one random direction (JAX's check_grads)
                gradcheck.check_vjp(self, built, inputs, g, ref, kernel, impl, rec, core.rng_for(case, 97))
            except NotImplementedError as exc:
                rec.unsupported(impl, ["vjp_direction"], f"NotImplementedError: {exc}")

    def write_matters(
        self,
        kernel: kernels.Kernel,
        inputs: dict[str, Any],
        built: Built,
        g_dt: np.ndarray,
        index: int,
        exp: core.Expected,
        dtype: str,
    ) -> str:
        """A gradient failed after the caller wrote into the forward's output: say so when the
        same gradient, computed without the write, matches (the kernel kept its output for
        backward), nothing when it fails anyway (the bug is elsewhere)."""
        try:
            fresh = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}
            _, ctx = self.call(kernel, fresh, built)
            again = kernel.backward(np.array(g_dt, copy=True), ctx)[index]
        except Exception:
            return ""
        if _matches(again, exp, dtype):
            return " (computed after the caller wrote into the forward's output; without that write it matches)"
        return ""

    @staticmethod
    def record_caller_arrays(rec: core.Recorder, impl: str, written: list[str], calls: str) -> None:
        """``caller_arrays``: the arrays the caller handed in are as they were after ``calls``."""
        if written:
            rec.fail(impl, "caller_arrays", f"{impl} wrote into the caller's {', '.join(written)}")
        else:
            rec.ok(impl, "caller_arrays", detail=f"no input or upstream gradient changed by the {calls}")

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
        """Extra forward outputs (max_pool2d's indices) checked inside ``forward``."""

    def zero_signs(self, inputs: dict[str, Any], expected: Any) -> bool | np.ndarray:
        """Where the forward's zeros must have PyTorch's sign: in a selection (the result is one of
        x's values, computing nothing) a zero keeps its input's sign. An elementwise selection
        (relu, hardtanh, flatten: as many results as inputs, in order) is asked only where x itself
        is a zero; relu(-1) is a constant 0, whose sign is no input's."""
        if self.method != "selection":
            return False
        x = inputs.get("x")
        if isinstance(x, np.ndarray) and x.size == np.size(expected):
            return np.asarray(x == 0).reshape(np.shape(expected))
        return True

    def fd_allowed(self, built: Built, arrays: dict[str, Any]) -> bool:
        """Finite differences on this case: small enough, and smooth (``built.extra["no_fd"]``
        marks a case at a kink or with ties, where the derivative does not exist)."""
        size = sum(v.size for k, v in arrays.items() if k in self.grads and isinstance(v, np.ndarray))
        return size <= self.fd_max and not built.extra.get("no_fd")

    def _expect_rejection(
        self, case: dict[str, Any], built: Built, inputs: dict[str, Any], impls: list[str], rec: core.Recorder, why: str
    ) -> None:
        for impl in impls:
            kernel = kernels.get(self.op, impl)
            core.expect_rejection(rec, impl, lambda k=kernel: self.call(k, inputs, built), f"({why})")

    def check_adjoint(
        self,
        case: dict[str, Any],
        built: Built,
        inputs: dict[str, Any],
        upcast: dict[str, Any],
        g: np.ndarray,
        dtype: str,
        impl: str,
        kernel: kernels.Kernel,
        rec: core.Recorder,
    ) -> None:
        """<op(x), g> = <x, op^T(g)> with the affine parameters dropped; bound from the
        Higham sums of both inner products (see tolerance.policy_text)."""
        dt = np.dtype(dtype)
        lin = {k: (None if k in self.adjoint_drop else v) for k, v in inputs.items()}
        y, ctx = self.call(kernel, lin, built)
        if not all(np.all(np.isfinite(v)) for v in lin.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"):
            rec.skipped(impl, "adjoint", "not applicable to a case with inf or nan inputs (no inner product)")
            return
        gx = kernel.backward(g.astype(dt), ctx)[0]
        lhs = float(np.sum(np.asarray(y, np.float64) * g.astype(dt).astype(np.float64)))
        rhs = float(np.sum(np.asarray(lin["x"], np.float64) * np.asarray(gx, np.float64)))
        t = core.to_torch({k: (None if k in self.adjoint_drop else v) for k, v in upcast.items()})
        absd = {k: (v.abs() if core.is_float(v) else v) for k, v in t.items()}
        ones = {k: (torch.ones_like(v) if core.is_float(v) else v) for k, v in t.items()}
        with torch.no_grad():
            S = float((built.torch_fn(**absd) * torch.from_numpy(np.abs(g.astype(dt).astype(np.float64)))).sum())
            counter = self.count_fn(case) or built.torch_fn
            n_y = float(counter(**ones).max()) + (1 if self.count_fn(case) is not None else 0)
        n = max(n_y + np.size(y), n_y + np.size(inputs["x"]))
        res = testing.compare(np.array(lhs), np.array(rhs), n, S, dtype)
        if res.passed:
            rec.ok(impl, "adjoint", res.worst_abs_err, res.worst_ratio)
        else:
            rec.fail(impl, "adjoint", f"<op(x), g> = {core.num(lhs)} but <x, op^T(g)> = {core.num(rhs)}: "
                     f"{res.describe()}", res.worst_abs_err, res.worst_ratio)  # fmt: skip

    def check_batch_items(
        self,
        built: Built,
        inputs: dict[str, Any],
        y_batch: Any,
        got: tuple[Any, ...],
        g_dt: np.ndarray,
        ref: core.Reference,
        impl: str,
        kernel: kernels.Kernel,
        rec: core.Recorder,
    ) -> None:
        """Metamorphic ``batch_items``: the batch's output and input gradient equal its items'
        run one by one, and each parameter's gradient equals the float64 sum of the items'.
        No reference needed; it catches paths that depend on the batch size (chunking).

        Bound: both sides approximate the same exact value, each within the forward's (or the
        gradient's) bound K(gamma(n) S + n eta) with the reference's n and S (an item's S is its
        slice of the batch's; its parameter-gradient S_i sum to S and n_i <= n), so they differ
        by at most twice that, <= K(gamma(2n) S + 2n eta) (gamma is superadditive); the sum
        of N item gradients in float64 adds N roundings of float64: n' = 2n + N there."""
        x = inputs["x"]
        N = x.shape[0]
        ys, grads = [], []
        for i in range(N):
            item = {k: (np.array(v[i : i + 1]) if k == "x" else v) for k, v in inputs.items()}
            yi, ctxi = self.call(kernel, item, built)
            ys.append(np.asarray(self.output(yi)))
            grads.append(kernel.backward(np.array(g_dt[i : i + 1]), ctxi))
        pairs = [("forward", np.concatenate(ys), y_batch, 2 * np.asarray(ref.forward.n), ref.forward.S)]
        for j, k in enumerate(self.grads):
            exp = ref.grads.get(k)
            if exp is None or got[j] is None:
                continue
            if j == 0:
                pairs.append(
                    (f"grad of {k}", np.concatenate([gi[0] for gi in grads]), got[0], 2 * np.asarray(exp.n), exp.S)
                )
            else:
                total = np.sum([np.asarray(gi[j], np.float64) for gi in grads], axis=0)
                pairs.append((f"grad of {k}", np.asarray(got[j]), total, 2 * np.asarray(exp.n) + N, exp.S))
        worst = (0.0, 0.0)
        for what, items, batch, n, S in pairs:
            res = testing.compare(np.asarray(items), np.asarray(batch, np.float64), n, S, x.dtype)
            if not res.passed:
                rec.fail(impl, "batch_items", f"{what}, a batch of {N} vs its items one by one: {res.describe()}",
                         res.worst_abs_err, res.worst_ratio)  # fmt: skip
                return
            worst = max(worst, (res.worst_ratio, res.worst_abs_err))
        rec.ok(impl, "batch_items", worst[1], worst[0])

    def check_fd(
        self, built: Built, inputs: dict[str, Any], g: np.ndarray, kernel: kernels.Kernel, impl: str, rec: core.Recorder
    ) -> None:
        work = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}
        y, ctx = self.call(kernel, {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in work.items()}, built)
        out = self.output(y)
        if not np.all(np.isfinite(out)):
            return  # an infinite output (max over a window all in the padding) has no finite differences
        if float(np.sum(np.abs(out) * np.abs(g))) > 100:
            return  # FD_POLICY assumes unit-scale losses (rounding eps*|L|/h); logits of 1e4 are not
        analytic = kernel.backward(g, ctx)

        def loss() -> float:
            fresh = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in work.items()}
            out, _ = self.call(kernel, fresh, built)
            return float(np.sum(self.output(out) * g))

        worst = (True, 0.0, 0.0, "")
        for k, a in zip(self.grads, analytic, strict=True):
            arr = work.get(k)
            if arr is None or a is None:
                continue
            ok, err, ratio, detail = gradcheck.finite_difference(loss, arr, a)
            if not ok or ratio > worst[2]:
                worst = (ok, err, ratio, f"d/d{k}: {detail}")
            if not ok:
                break
        if worst[0]:
            rec.ok(impl, "finite_difference", worst[1], worst[2])
        else:
            rec.fail(impl, "finite_difference", worst[3], worst[1], worst[2])


def _matches(got: Any, exp: core.Expected, dtype: str) -> bool:
    try:
        return bool(testing.compare(np.asarray(got), exp.value, exp.n, exp.S, dtype).passed)
    except Exception:
        return False


def grad_check(name: str, index: int) -> str:
    return "grad_input" if index == 0 else f"grad_{name}"


def _cast(v: Any, dt: np.dtype) -> Any:
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return np.asarray(v.astype(dt))  # a 0-D array stays an array
    return v


def is_nan(v: float) -> bool:
    return isinstance(v, float) and math.isnan(v)
