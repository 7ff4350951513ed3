"""The machinery every run shares (the runner, the mutants, the pytest form): loading plugins,
worker processes, and one task, which draws one spec's cases in one dtype with hypothesis and
checks the selected implementations on each.

A task draws its cases once and checks every implementation on each, so PyTorch's reference
is computed once per case. ``ci`` is derandomized (the same cases every run); ``thorough``
draws 20x as many from ``--seed``. A shard ``(k, n)`` checks every n-th case, starting at the
k-th, so n shards together check exactly the cases of one unsharded run.

Coverage follows the implementation: an implementation that declines configurations
(NotImplementedError) gets more cases drawn, until each of its checks has ``MIN_SUPPORTED``
supported configurations or ``EXTEND_LIMIT`` times the profile's cases were drawn; a check
left short says why in the report.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, NoReturn

PROFILES = {"ci": 250, "thorough": 5000}  # examples per (spec, dtype) before the spec's weight
FD_BUDGET = {"ci": 8, "thorough": 80}
MIN_SUPPORTED = {"ci": 100, "thorough": 1000}  # supported configurations each check should reach
EXTEND_LIMIT = 20  # at most this many times the profile's cases, when an implementation declines most
BUDGETED = {"finite_difference"}  # checks run on a fixed budget of cases (finite differences: element by element)

_plugins_loaded: list[str] = []


class UserError(Exception):
    """A mistake in what the user asked for or gave (a plugin, an option): one line, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage mistake told in one line (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def needs_torch() -> None:
    """The checks need torch and hypothesis: say so in one line when either does not import."""
    try:
        import hypothesis  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise UserError(
            f"the conformance suite needs torch and hypothesis, which do not import here ({exc}); "
            "install them with: pip install 'refcnn[conformance]'"
        ) from None


# ---- plugins -------------------------------------------------------------------------------
def plugin_ref(ref: str) -> str:
    """A plugin reference that works from any folder: a file as its absolute path."""
    return os.path.abspath(ref) if ref.endswith(".py") or os.sep in ref else ref


def load_plugin(ref: str) -> list[tuple[str, str]]:
    """Import a plugin by module name or file path; it registers implementations on import.
    Returns the (op, impl) pairs it registered. Raises :class:`UserError` with one line for a
    plugin that is missing, does not import, registers nothing, or registers an unknown op."""
    from refcnn import kernels

    ref = plugin_ref(ref)
    if ref in _plugins_loaded:
        return []
    before = {op: set(kernels.available(op)) for op in kernels.ops()}
    try:
        if ref.endswith(".py") or os.sep in ref:
            if not os.path.isfile(ref):
                raise UserError(f"plugin file {ref} does not exist")
            name = "refcnn_plugin_" + os.path.splitext(os.path.basename(ref))[0]
            spec = importlib.util.spec_from_file_location(name, ref)
            if spec is None or spec.loader is None:
                raise UserError(f"plugin {ref} is not a Python file that can be imported")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(ref)
            except ModuleNotFoundError as exc:
                if exc.name and ref.startswith(exc.name):
                    raise UserError(
                        f"plugin module {ref!r} was not found (give a module on sys.path or a .py file)"
                    ) from None
                raise
    except UserError:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        where = _last_frame(exc)
        raise UserError(f"plugin {ref} failed to import: {type(exc).__name__}: {exc}{where}") from None
    from . import specs

    added = [(op, i) for op in kernels.ops() for i in kernels.available(op) if i not in before.get(op, set())]
    known = specs.op_specs()
    unknown = sorted({op for op, _ in added if op not in known})
    if unknown:
        for op, i in added:  # leave the registry as it was
            kernels.unregister(op, i)
        raise UserError(
            f"plugin {ref} registers {', '.join(unknown)}, which refcnn has no such op; ops it can check: "
            f"{', '.join(sorted(known))}"
        )
    if not added:
        raise UserError(
            f"plugin {ref} registered no implementation: call refcnn.kernels.register(op, name, forward, backward) "
            "or refcnn.conformance.register_layer(...) in it"
        )
    _plugins_loaded.append(ref)
    PLUGINS.append(ref)
    REGISTERED.extend(added)
    return added


PLUGINS: list[str] = []  # plugins loaded in this process, as absolute references (repro snippets load them)
REGISTERED: list[tuple[str, str]] = []  # (op, impl) pairs the plugins registered


def check_layers(pairs: list[tuple[str, str]]) -> None:
    """Run each plugin implementation's forward on the first pinned case it covers: a layer
    class whose ``make`` breaks the protocol (returns None or an object without forward and
    backward) stops the run with one line (:class:`UserError`) instead of a report of crashes.
    Everything else it does wrong is found, and reported, by the checks themselves."""
    import numpy as np
    import torch

    from refcnn import kernels

    from . import core, specs

    for op, impl in pairs:
        spec = specs.op_specs().get(op)
        for case in getattr(spec, "examples", []):
            built = spec.build(case)  # type: ignore[union-attr]
            arrays = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                      for k, v in built.arrays.items()}  # fmt: skip
            try:
                with torch.no_grad():
                    built.torch_fn(**core.to_torch(arrays))
            except Exception:
                continue  # PyTorch rejects this case: it says nothing about the layer
            try:
                kernels.get(op, impl).forward(*arrays.values(), **built.config)
            except NotImplementedError:
                continue
            except Exception as exc:
                if type(exc).__name__ == "LayerProtocolError":
                    raise UserError(f"{impl} ({op}): {exc}") from None
            break


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {f.filename}:{f.lineno})"


def worker_init(plugins: list[str]) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=UserWarning)  # PyTorch's deprecation notes on drawn inputs
    torch.set_num_threads(1)
    for p in plugins:
        load_plugin(p)


# ---- one task --------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised inside a mutant run once something failed: no need to draw further."""


@dataclass
class TaskResult:
    tallies: list[Any]
    coverage: Any
    seconds: float
    error: str = ""
    cases: dict[str, dict[str, int]] = field(default_factory=dict)  # impl -> checked / unsupported / failed


def budget(spec: Any, profile: str, max_examples: int | None = None) -> int:
    return max_examples if max_examples is not None else max(1, round(PROFILES[profile] * spec.weight))


def run_task(
    spec_name: str,
    dtype: str,
    impls: list[str],
    profile: str,
    seed: int,
    stop_on_failure: bool = False,
    max_examples: int | None = None,
    shard: tuple[int, int] = (1, 1),
    extend: bool = True,
) -> TaskResult:
    """Check one spec in one dtype on the profile's cases (this shard's share of them)."""
    from . import core, specs
    from .report import Coverage

    spec = specs.get(spec_name)
    n = budget(spec, profile, max_examples)
    rec = core.Recorder(spec.name, dtype, fd_budget=math.ceil(FD_BUDGET[profile] / shard[1]))  # shared by shards
    cov = Coverage()
    start = time.perf_counter()
    k, of = shard
    index = [0]

    def body(case: dict[str, Any], checked: list[str]) -> None:
        i = index[0]
        index[0] += 1
        if i % of != k - 1:
            return
        rec.begin(case, spec.size(case))
        cov.add(spec.name, spec.features(case), spec.pairs)
        before = rec.failures()
        try:
            spec.check(case, dtype, checked, rec)
        except Exception as exc:  # a crash of the suite itself is a failure, with the traceback
            detail = (
                f"the conformance check itself crashed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
            )
            for impl in checked:
                rec.fail(impl, "forward", detail)
        if stop_on_failure and rec.failures() > before:
            raise _Stop

    drawn, rounds = n, 0
    want = math.ceil(min(MIN_SUPPORTED[profile], n) / of)
    try:
        _draw(spec, body, impls, n, profile, seed, examples=True)
        # coverage follows the implementation: more cases for one that declined most of them
        while extend:
            short = _short(rec, impls, want)
            if not short or drawn >= EXTEND_LIMIT * n:
                break
            rounds += 1
            _draw(spec, body, short, n, "extend", seed + 7919 * rounds, examples=False)
            drawn += n
    except _Stop:
        pass
    rec.finish()
    for t in rec.tallies.values():
        if t.unsupported and t.check not in BUDGETED and not t.only_skipped and t.supported < want:
            t.note = (
                f"only {t.supported} supported configurations after drawing {drawn} cases: {t.impl} declined "
                f"{t.unsupported} of {t.configs} (NotImplementedError)"
            )
    return TaskResult(list(rec.tallies.values()), cov, time.perf_counter() - start, cases=rec.cases)


def _short(rec: Any, impls: list[str], want: int) -> list[str]:
    """The implementations with a check below ``want`` supported configurations, having declined some."""
    out = []
    for impl in impls:
        rows = [t for t in rec.tallies.values() if t.impl == impl]
        declined = any(t.unsupported for t in rows)
        if declined and any(
            t.check not in BUDGETED and not t.only_skipped and t.configs - t.unsupported - t.skipped < want
            for t in rows
        ):
            out.append(impl)
    return out


def _draw(spec: Any, body: Any, impls: list[str], n: int, profile: str, seed: int, examples: bool) -> None:
    from hypothesis import HealthCheck, Phase, example, given, settings
    from hypothesis import seed as hseed

    def test(case: dict[str, Any]) -> None:
        body(case, impls)

    test = given(case=spec.cases())(test)
    if examples:
        for ex in reversed(spec.examples):
            test = example(case=ex)(test)
    test = settings(
        max_examples=n,
        derandomize=(profile == "ci"),
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate] if examples else [Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(test)
    if profile != "ci":
        test = hseed(seed)(test)
    try:
        test()
    except _Stop:
        raise
    except BaseException as exc:  # hypothesis re-raises the failing example's _Stop wrapped
        if "_Stop" in repr(exc) or isinstance(getattr(exc, "__cause__", None), _Stop):
            raise _Stop from None
        raise


def run_task_safe(args: tuple[Any, ...]) -> TaskResult:
    try:
        return run_task(*args)
    except Exception as exc:
        return TaskResult(
            [], None, 0.0, f"{args[0]} {args[1]}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        )
