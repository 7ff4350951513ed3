"""``python -m refcnn conformance``: check every implementation against PyTorch on cases drawn
by hypothesis, in float32 and float64, then the mutants and the meta-check, and write
DIR/conformance.json and DIR/conformance.md. ``python -m refcnn conformance merge DIR...``
joins the reports of a sharded run into one (report.py).

Tasks (one per spec and dtype) run in worker processes (``--jobs``, default: every core);
see engine.py for how a task draws its cases.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from .engine import (
    PROFILES,
    OneLineParser,
    TaskResult,
    UserError,
    check_layers,
    load_plugin,
    needs_torch,
    plugin_ref,
    run_task_safe,
    worker_init,
)

PROG = "python -m refcnn conformance"


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


# ---- options ---------------------------------------------------------------------------------------
def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes K/N, e.g. 1/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard {text}: K must be between 1 and N (1/{n} ... {n}/{n})")
    return k, n


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _non_negative(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v}")
    return v


DESCRIPTION = (
    "Check refcnn's kernels, modules, optimizers and schedulers, and implementations you register in a "
    "plugin, against PyTorch on cases drawn by hypothesis, in float32 and float64; write "
    "conformance.json and conformance.md. Exit status: 0 all passed, 1 something failed, 2 bad input."
)


def parse(argv: list[str]) -> argparse.Namespace:
    p = OneLineParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=f"{PROG} merge DIR... [--report-dir DIR] joins the reports of the shards of one run.",
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci",
                   help="ci: the same cases every run, minutes; thorough: 20x as many, drawn from --seed "
                        "(default: ci)")  # fmt: skip
    p.add_argument("--op", action="append", default=[],
                   help="only this op or spec, repeatable: conv2d, max_pool2d, nn.Conv2d, optim.SGD, ... "
                        "(default: every one)")  # fmt: skip
    p.add_argument("--impl", action="append", default=[],
                   help="only this implementation, repeatable: fast, reference, or one a plugin registers "
                        "(default: every one)")  # fmt: skip
    p.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                   help="a .py file or module imported first; the implementations it registers are checked too "
                        "(repeatable)")  # fmt: skip
    p.add_argument("--report-dir", default="conformance-report", metavar="DIR",
                   help="where conformance.json and conformance.md are written (default: conformance-report)")  # fmt: skip
    p.add_argument("--shard", type=_shard, default=(1, 1), metavar="K/N",
                   help="check only the K-th of N deterministic shares of the cases, then merge the N reports "
                        "(default: 1/1, everything)")  # fmt: skip
    p.add_argument("--seed", type=_non_negative, default=0, help="hypothesis seed of the thorough profile (default: 0)")
    p.add_argument("--jobs", type=_non_negative, default=0, help="worker processes (default: 0, every core)")
    p.add_argument("--examples", type=_positive, default=None, metavar="N",
                   help="cases per op and dtype instead of the profile's number, for a quick look "
                        "(default: the profile's)")  # fmt: skip
    p.add_argument("--mutants", choices=["auto", "yes", "no"], default="auto",
                   help="check that the suite catches its deliberately broken kernels (default: auto, when no "
                        "--op, --impl or --plugin narrows the run)")  # fmt: skip
    return p.parse_args(argv)


def plan(ops: list[str], impls: list[str]) -> list[tuple[str, str, list[str]]]:
    """The tasks of a run: (spec name, dtype, implementations). Raises UserError for an --op
    or --impl that names nothing."""
    from . import specs

    all_specs = specs.all_specs()
    unknown = [o for o in ops if o not in all_specs]
    if unknown:
        raise UserError(
            f"no op or spec named {', '.join(unknown)}; ops: {', '.join(sorted(specs.op_specs()))} "
            "(and nn.*, optim.*, lr_scheduler.* specs)"
        )
    selected = [s for n, s in all_specs.items() if not ops or n in ops]
    if impls:
        ok = {i for s in selected if s.kind == "op" for i in s.impls()}
        missing = [i for i in impls if i not in ok]
        if missing:
            where = "; ".join(f"{s.name} has {', '.join(s.impls())}" for s in selected if s.kind == "op")[:400]
            raise UserError(
                f"no implementation named {', '.join(missing)} is registered for the selected ops ({where}); "
                "load the plugin that registers it with --plugin"
            )
    tasks = []
    for spec in selected:
        names = spec.impls()
        if impls:
            if spec.kind != "op":
                continue
            names = [i for i in names if i in impls]
            if not names:
                continue
        tasks.extend((spec.name, dtype, names) for dtype in spec.dtypes())
    if not tasks:
        raise UserError("nothing to check: no selected op has the selected implementations")
    return sorted(tasks, key=lambda t: -all_specs[t[0]].weight)  # long tasks first, so the pool ends together


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["merge"]:
            from .report import merge_main

            return merge_main(argv[1:])
        return _main(parse(argv))
    except UserError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no report written", file=sys.stderr)
        return 130


def _writable(report_dir: str) -> None:
    """Fail before the run, not after it, when the report cannot be written."""
    try:
        os.makedirs(report_dir, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the report folder {report_dir}: {exc.strerror}; give another --report-dir"
        ) from None
    if not os.access(report_dir, os.W_OK):
        raise UserError(f"the report folder {report_dir} is not writable; give another --report-dir")


def _main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    needs_torch()
    _writable(args.report_dir)
    plugins = [plugin_ref(p) for p in args.plugin]
    for ref in plugins:
        check_layers(load_plugin(ref))

    from . import mutants, specs, tolerance
    from .report import Coverage, Outcome, add_cases, print_summary, write

    tasks = plan(args.op, args.impl)
    k, n = args.shard
    jobs = args.jobs or os.cpu_count() or 1
    shard_note = f", shard {k}/{n}" if n > 1 else ""
    print(f"conformance: {len(tasks)} tasks ({args.profile} profile{shard_note}) on {jobs} workers", flush=True)
    work = [
        (name, dtype, impls, args.profile, args.seed, False, args.examples, args.shard) for name, dtype, impls in tasks
    ]
    results: list[TaskResult] = []
    if jobs == 1:
        worker_init([])
        for w in work:
            results.append(run_task_safe(w))
            _progress(w, results[-1])
    else:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=worker_init, initargs=(plugins,)) as pool:
            futures = [pool.submit(run_task_safe, w) for w in work]
            for w, fut in zip(work, futures, strict=True):
                try:
                    res = fut.result()
                except Exception as exc:  # a worker died (a native crash): report the task, keep going
                    res = TaskResult([], None, 0.0, f"{w[0]} {w[1]}: worker process died: {type(exc).__name__}: {exc}")
                results.append(res)
                _progress(w, res)
    tallies = []
    cov = Coverage()
    crashes = []
    cases: dict[str, dict[str, int]] = {}
    for r in results:
        tallies.extend(r.tallies)
        add_cases(cases, r.cases)
        if r.coverage is not None:
            cov.merge(r.coverage)
        if r.error:
            crashes.append(r.error)
    narrowed = bool(args.op or args.impl or args.plugin)
    problems = meta_problems() if not narrowed and k == 1 else []
    problems += [f"crash: {c}" for c in crashes]
    notes = []
    run_mutants = args.mutants == "yes" or (args.mutants == "auto" and not narrowed)
    names = [m.name for m in mutants.MUTANTS][k - 1 :: n]
    mutant_rows = mutants.run_all(args.profile, jobs, names) if run_mutants else []
    if not run_mutants:
        notes.append("mutants not run (the run was narrowed with --op, --impl or --plugin, or --mutants no)")
    if plugins:
        notes.append(f"plugins: {', '.join(plugins)}")
    if args.examples:
        notes.append(f"{args.examples} cases per (op, dtype) instead of the profile's number (--examples)")
    outcome = Outcome(
        profile=args.profile,
        seed=args.seed,
        policy=tolerance.policy_text(),
        tallies=tallies,
        coverage=cov,
        domains={name: s.domains for name, s in specs.all_specs().items()},
        mutants=mutant_rows,
        meta_problems=problems,
        notes=notes,
        elapsed=time.perf_counter() - t0,
        shards=[f"{k}/{n}"],
        plugins=plugins,
        cases=cases,
    )
    jpath, mpath = write(outcome, args.report_dir)
    print_summary(outcome, jpath, mpath)
    return 0 if outcome.passed else 1


def _progress(w: tuple[Any, ...], res: TaskResult) -> None:
    print(f"  {w[0]:<28} {w[1]:<8} {res.seconds:6.1f} s{'  CRASHED' if res.error else ''}", flush=True)


def repro(kind: str, name: str, impl: str, dtype: str, case: dict[str, Any], save: str | None = None) -> None:
    """Re-run one case verbosely: every check's outcome on it, then the case's arrays (shown,
    and saved as ``save`` or ``repro-<op>-<impl>-<dtype>.npz`` in the current folder) so you
    can step into your kernel with them."""
    import numpy as np

    from . import core, specs

    spec = specs.get(name)
    rec = core.Recorder(spec.name, dtype, fd_budget=1, verbose=True)
    rec.begin(case, spec.size(case))
    print(f"{name} impl={impl} dtype={dtype} case={case}")
    spec.check(case, dtype, [impl], rec)
    arrays = case_arrays(spec, case, dtype)
    if not arrays:
        return
    path = save or f"repro-{name}-{impl}-{dtype}.npz".replace("/", "_")
    np.savez(path, **arrays)
    with np.printoptions(precision=6, threshold=200, edgeitems=3, linewidth=110):
        for key, value in arrays.items():
            print(f"{key}: shape {value.shape} dtype {value.dtype}\n{value}")
    config = spec.build(case).config if hasattr(spec, "build") else {}
    print(f"config: {config}")
    print(f"saved the arrays to {os.path.abspath(path)} (numpy.load gives {', '.join(arrays)})")


def case_arrays(spec: Any, case: dict[str, Any], dtype: str) -> dict[str, Any]:
    """The arrays a kernel gets for this case, in the checked dtype (empty for non-op specs)."""
    import numpy as np

    if not hasattr(spec, "build"):
        return {}
    import torch

    from .core import rng_for, to_torch
    from .strategies import make_upstream

    built = spec.build(case)
    out = {}
    for k, v in built.arrays.items():
        if isinstance(v, np.ndarray):
            out[k] = v.astype(dtype) if v.dtype.kind == "f" else v
    try:
        with torch.no_grad():
            y = built.torch_fn(**to_torch({k: v for k, v in built.arrays.items()}))
        out["grad_y"] = make_upstream(rng_for(case, 99), y.shape).astype(dtype)  # the upstream gradient backward got
    except Exception:  # PyTorch rejects the case: there is no backward
        pass
    return out


if __name__ == "__main__":
    sys.exit(main())
