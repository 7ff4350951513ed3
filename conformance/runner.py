"""``python -m refcnn conformance`` (or ``python -m conformance.runner``): run every spec on
hypothesis-drawn cases, for every implementation and float32/float64, then the mutants and
the meta-check, and write DIR/conformance.json and DIR/conformance.md.

The runner drives hypothesis directly (no pytest): one task per (spec, dtype) draws its
cases once and checks every selected implementation on each, so PyTorch's reference is
computed once per case. Tasks run in worker processes (``--jobs``, default: every core).
Profiles: ``ci`` is derandomized (the same cases every run); ``thorough`` draws 20x as many
from ``--seed``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

PROFILES = {"ci": 250, "thorough": 5000}  # examples per (spec, dtype) before the spec's weight
FD_BUDGET = {"ci": 8, "thorough": 80}

_plugins_loaded: list[str] = []


# ---- plugins -------------------------------------------------------------------------------
def load_plugin(ref: str) -> None:
    """Import a plugin by module name or file path (it registers kernels on import)."""
    if ref in _plugins_loaded:
        return
    if ref.endswith(".py") or os.sep in ref:
        path = os.path.abspath(ref)
        if not os.path.exists(path):
            raise SystemExit(f"conformance: plugin file {ref!r} does not exist")
        name = "refcnn_plugin_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"conformance: cannot import plugin file {ref!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(ref)
    _plugins_loaded.append(ref)
    from . import core

    core.PLUGINS.append(ref)


def _worker_init(plugins: list[str]) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=UserWarning)  # PyTorch's deprecation notes on drawn inputs

    torch.set_num_threads(1)
    for p in plugins:
        load_plugin(p)


# ---- one task --------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised inside a mutant run once something failed: no need to draw further."""


def run_task(
    spec_name: str,
    dtype: str,
    impls: list[str],
    profile: str,
    seed: int,
    stop_on_failure: bool = False,
    max_examples: int | None = None,
) -> tuple[list[Any], Any, float]:
    """Check one spec in one dtype on the profile's cases; returns (tallies, coverage, seconds)."""
    from hypothesis import HealthCheck, Phase, example, given, settings
    from hypothesis import seed as hseed

    from . import core, specs
    from .report import Coverage

    spec = specs.get(spec_name)
    n = max_examples if max_examples is not None else max(1, round(PROFILES[profile] * spec.weight))
    fd = FD_BUDGET[profile]
    rec = core.Recorder(spec.name, dtype, fd_budget=fd)
    cov = Coverage()
    start = time.perf_counter()

    def body(case: dict[str, Any]) -> None:
        rec.begin(case, spec.size(case))
        cov.add(spec.name, spec.features(case), spec.pairs)
        before = sum(t.failed for t in rec.tallies.values())
        try:
            spec.check(case, dtype, impls, rec)
        except Exception as exc:  # a crash of the suite itself is a failure, with the traceback
            detail = f"the check crashed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
            for impl in impls:
                rec.fail(impl, "forward", detail)
        if stop_on_failure and sum(t.failed for t in rec.tallies.values()) > before:
            raise _Stop

    test = given(case=spec.strategy())(body)
    for ex in reversed(spec.examples):
        test = example(case=ex)(test)
    test = settings(
        max_examples=n,
        derandomize=(profile == "ci"),
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(test)
    if profile != "ci":
        test = hseed(seed)(test)
    try:
        test()
    except _Stop:
        pass
    except BaseException as exc:  # hypothesis re-raises the failing example's _Stop wrapped, or a crash
        if not stop_on_failure or "_Stop" not in repr(exc):
            raise
    return list(rec.tallies.values()), cov, time.perf_counter() - start


def _run_task_safe(args: tuple[Any, ...]) -> tuple[list[Any], Any, float, str]:
    try:
        tallies, cov, secs = run_task(*args)
        return tallies, cov, secs, ""
    except Exception as exc:
        return [], None, 0.0, f"{args[0]} {args[1]}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"


# ---- the meta-check ----------------------------------------------------------------------------
def meta_problems() -> list[str]:
    """Every op in the registry and every public Module, optimizer and scheduler class of
    refcnn needs a spec; each one without is a failure of the run."""
    import refcnn
    from refcnn import kernels

    from . import specs

    have = set(specs.all_specs())
    problems = [f"{op}: op in refcnn.kernels.ops() has no conformance spec" for op in kernels.ops() if op not in have]
    for cls in public_classes(refcnn.nn, refcnn.nn.Module):
        if f"nn.{cls.__name__}" not in have:
            problems.append(f"nn.{cls.__name__}: Module subclass in refcnn.nn has no conformance spec")
    optim = getattr(refcnn, "optim", None)
    base = getattr(optim, "Optimizer", None)
    if base is not None:
        for cls in public_classes(optim, base):
            if f"optim.{cls.__name__}" not in have:
                problems.append(f"optim.{cls.__name__}: optimizer has no conformance spec")
    sched_mod = getattr(optim, "lr_scheduler", None)
    sched_base = getattr(sched_mod, "LRScheduler", None) if sched_mod is not None else None
    if sched_base is not None:
        for cls in public_classes(sched_mod, sched_base):
            if f"lr_scheduler.{cls.__name__}" not in have:
                problems.append(f"lr_scheduler.{cls.__name__}: scheduler has no conformance spec")
    for family, err in specs.load_errors.items():
        problems.append(f"specs.{family}: the spec family could not be loaded ({err})")
    return problems


def public_classes(module: Any, base: type) -> list[type]:
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(module, n, None)
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base and not n.startswith("_"):
            out.append(obj)
    return out


# ---- main ----------------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m refcnn conformance", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    p.add_argument(
        "--op", action="append", default=[], help="only this op/spec (repeatable): conv2d, nn.Conv2d, optim.SGD, ..."
    )
    p.add_argument("--impl", action="append", default=[], help="only this implementation (repeatable)")
    p.add_argument(
        "--plugin", action="append", default=[], help="module or .py file imported first (registers kernels)"
    )
    p.add_argument("--report-dir", default="conformance-report")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed of the thorough profile (ci is derandomized)")
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: every core)")
    p.add_argument("--mutants", choices=["auto", "yes", "no"], default="auto",
                   help="run the mutants (auto: when no --op/--impl narrows the run)")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    t0 = time.perf_counter()
    for ref in args.plugin:
        load_plugin(ref)

    from . import mutants, specs, tolerance
    from .report import Coverage, Outcome, write

    all_specs = specs.all_specs()
    unknown = [o for o in args.op if o not in all_specs]
    if unknown:
        print(f"conformance: no spec named {unknown}; known: {sorted(all_specs)}", file=sys.stderr)
        return 2
    selected = [s for n, s in all_specs.items() if not args.op or n in args.op]
    tasks = []
    notes = []
    for spec in selected:
        impls = spec.impls()
        if args.impl:
            if spec.kind != "op":
                continue
            impls = [i for i in impls if i in args.impl]
            if not impls:
                continue
        for dtype in spec.dtypes():
            tasks.append((spec.name, dtype, impls, args.profile, args.seed))
    if args.impl:
        missing = [i for i in args.impl if not any(i in s.impls() for s in selected if s.kind == "op")]
        if missing:
            print(f"conformance: no selected op has an implementation named {missing}", file=sys.stderr)
            return 2
    jobs = args.jobs or os.cpu_count() or 1
    print(f"conformance: {len(tasks)} tasks ({args.profile} profile) on {jobs} workers", flush=True)
    # long tasks first, so the pool ends together
    tasks.sort(key=lambda t: -all_specs[t[0]].weight)
    results = []
    if jobs == 1:
        _worker_init([])
        results = [_run_task_safe(t) for t in tasks]
    else:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(args.plugin,)) as pool:
            futures = [pool.submit(_run_task_safe, t) for t in tasks]
            for task, fut in zip(tasks, futures, strict=True):
                try:
                    res = fut.result()
                except Exception as exc:  # a worker died (a native crash): report the task, keep going
                    res = ([], None, 0.0, f"{task[0]} {task[1]}: worker process died: {type(exc).__name__}: {exc}")
                results.append(res)
                print(f"  {task[0]:<28} {task[1]:<8} {res[2]:6.1f} s{'  CRASHED' if res[3] else ''}", flush=True)
    tallies = []
    cov = Coverage()
    crashes = []
    for t, c, _, err in results:
        tallies.extend(t)
        if c is not None:
            cov.merge(c)
        if err:
            crashes.append(err)
    tallies.sort(key=lambda t: (t.op, t.impl, t.dtype, _check_order(t.check)))
    problems = meta_problems() if not args.op and not args.impl else []
    problems += [f"crash: {c}" for c in crashes]
    run_mutants = args.mutants == "yes" or (args.mutants == "auto" and not args.op and not args.impl)
    mutant_rows = mutants.run_all(args.profile, jobs) if run_mutants else []
    if not run_mutants:
        notes.append("mutants not run (the run was narrowed with --op/--impl, or --mutants no)")
    if args.plugin:
        notes.append(f"plugins: {', '.join(args.plugin)}")
    outcome = Outcome(
        profile=args.profile,
        seed=args.seed,
        policy=tolerance.policy_text(),
        tallies=tallies,
        coverage=cov,
        domains={n: s.domains for n, s in all_specs.items()},
        mutants=mutant_rows,
        meta_problems=problems,
        notes=notes,
        elapsed=time.perf_counter() - t0,
    )
    jpath, mpath = write(outcome, args.report_dir)
    _print_summary(outcome, jpath, mpath)
    return 0 if outcome.passed else 1


def _check_order(check: str) -> tuple[int, str]:
    order = ["rejects", "forward", "grad_input"]
    return (order.index(check), check) if check in order else (len(order), check)


def _print_summary(outcome: Any, jpath: str, mpath: str) -> None:
    from .core import repro_text

    bad = [t for t in outcome.tallies if not t.passed and not (t.skipped and t.skipped == t.configs)]
    for t in bad:
        print(
            f"FAILED {t.op} {t.impl} {t.dtype} {t.check}: {t.failed} failed, {t.unsupported} unsupported of {t.configs}"
        )
        if t.failure is not None:
            print(repro_text("op", t.op, t.impl, t.dtype, t.check, t.failure["case"], t.failure["detail"]))
    for m in outcome.mutants:
        if not m["caught"]:
            print(f"MUTANT NOT CAUGHT: {m['name']} ({m['op']}): {m['description']}")
    for p in outcome.meta_problems:
        print(f"META: {p}")
    worst = max((t.worst_ratio for t in outcome.tallies if t.passed), default=0.0)
    print(
        f"conformance {'PASSED' if outcome.passed else 'FAILED'}: {len(outcome.tallies)} rows, {len(bad)} not passed, "
        f"{sum(m['caught'] for m in outcome.mutants)}/{len(outcome.mutants)} mutants caught, worst passing ratio "
        f"{worst:.3g}, {outcome.elapsed:.0f} s; reports: {jpath}, {mpath}"
    )


def repro(kind: str, name: str, impl: str, dtype: str, case: dict[str, Any]) -> None:
    """Re-run one case verbosely: every check's outcome on it (for a failure's repro)."""
    from . import core, specs

    spec = specs.get(name)
    rec = core.Recorder(spec.name, dtype, fd_budget=1, verbose=True)
    rec.begin(case, spec.size(case))
    print(f"{name} impl={impl} dtype={dtype} case={case}")
    spec.check(case, dtype, [impl], rec)


if __name__ == "__main__":
    sys.exit(main())
