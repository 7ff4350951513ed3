"""``python -m refcnn bench``: the command that runs every measurement and prints it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .. import __version__, kernels
from . import machine
from .cases import CONV_CASES, POOL_CASES, conv_case, pool_case
from .denormals import denormals, print_denormals
from .report import OPS, Result, best_geomean, fmt, format_table, report, summarize
from .timing import Options, geomean
from .training import NOTEBOOK_BATCH, NOTEBOOK_IMAGES, TRAIN_BATCH, epoch, notebook, train_case

__all__ = ["BenchError", "run", "main"]


class BenchError(RuntimeError):
    """The benchmark cannot run as asked (PyTorch missing, a bad option, an output it could
    not write); the message says what to do."""


def _torch() -> Any:
    """PyTorch, imported only when the benchmark runs (refcnn itself never needs it)."""
    try:
        import torch
    except ImportError as exc:
        raise BenchError(
            f"python -m refcnn bench times refcnn against PyTorch and needs torch, which did not import "
            f"({exc}). Install it with: pip install 'refcnn[bench]'  (torch==2.13.0, CPU build)"
        ) from exc
    return torch


def _mygrad() -> Any:
    try:
        import mygrad
    except ImportError:
        return None
    return mygrad


def _versions(torch: Any, mg: Any) -> dict[str, Any]:
    return {
        "refcnn": __version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mygrad": None if mg is None else getattr(mg, "__version__", "unknown"),
    }


def _table(torch: Any, mg: Any, x: np.ndarray, y: np.ndarray, opts: Options, threads: int) -> list[Result]:
    """Every conv, pool and training-step case with ``threads`` threads on each side."""
    results: list[Result] = []
    with machine.limit_threads(threads, torch):
        for conv in CONV_CASES:
            results.append(conv_case(torch, mg, conv, opts))
            print(f"  measured {results[-1].name} ({threads} thread(s))", file=sys.stderr, flush=True)
        for pool in POOL_CASES:
            results.append(pool_case(torch, mg, pool, opts))
            print(f"  measured {results[-1].name} ({threads} thread(s))", file=sys.stderr, flush=True)
        for name in ("lenet5", "simplecnn"):
            results.append(train_case(torch, name, x[:TRAIN_BATCH], y[:TRAIN_BATCH], opts))
            print(f"  measured {results[-1].name} ({threads} thread(s))", file=sys.stderr, flush=True)
    for r in results:
        r.threads = threads
    return results


def _print_table(results: Sequence[Result], peak: float, threads: int) -> None:
    ops = [r for r in results if r.kind in OPS]
    print(f"\n{threads} thread(s) on each side:")
    print(format_table(results, peak))
    worst = max(ops, key=lambda r: r.ratio)
    print(f"  geomean over the conv2d + max_pool2d cases {geomean(r.ratio for r in ops):.2f}, worst {worst.ratio:.2f} "
          f"({worst.name})")  # fmt: skip
    best = best_geomean(ops)
    if best is not None:
        print(f"  with the fastest repeat of each instead of the median: geomean {best:.2f}")


def _print_gains(tables: dict[int, list[Result]]) -> None:
    """What the second thread (and more) gives each side: t(1 thread) / t(n threads)."""
    if 1 not in tables or len(tables) < 2:
        return
    for n, results in tables.items():
        if n == 1:
            continue
        print(f"\nspeed-up from 1 to {n} threads (time at 1 / time at {n}):")
        for one, more in zip(tables[1], results, strict=True):
            print(f"  {one.name:<44} refcnn {one.refcnn_ms / more.refcnn_ms:5.2f}x  torch "
                  f"{one.torch_ms / more.torch_ms:5.2f}x")  # fmt: skip


def run(opts: Options, data: Path | None = None) -> dict[str, Any]:
    """Every measurement, printed as it goes; returns the JSON document."""
    from ..data import load_mnist, sample_dir
    from ..data.mnist import MNISTNotFoundError

    torch = _torch()
    mg = _mygrad()
    root = sample_dir() if data is None else data
    try:
        x_all, y_all = load_mnist(root, train=True)
    except (MNISTNotFoundError, ValueError, OSError) as exc:
        raise BenchError(f"--data {root}: {str(exc).splitlines()[0]}") from exc
    facts = machine.blas_facts()
    print(f"refcnn {__version__} vs torch {torch.__version__}, float32, forward + backward")
    print(
        f"NumPy's BLAS: {facts['library']} ({facts['file'] or 'file unknown'}), core type "
        f"{facts['core_type'] or 'unknown'}, {facts['threads'] or '?'} threads by default "
        f"({facts['threading_layer'] or 'threading unknown'}; via {facts['source']}); "
        f"tables run with {', '.join(map(str, opts.threads))} thread(s) on each side"
    )
    warning = machine.override_warning(facts)
    if warning is not None:
        print(warning)
        print(warning, file=sys.stderr)
    load = machine.load_average()
    if load is not None and load > 0.5 * (os.cpu_count() or 1) and not opts.cpu_time:
        print(
            f"warning: this machine is busy (1-minute load average {load:.2f} on {os.cpu_count()} CPUs): timings "
            "suffer unevenly; rerun on a quiet machine, or one thread with --threads 1 --cpu-time"
        )
    with machine.limit_threads(1, torch):
        peak = machine.matmul_peak_gflops(opts.matmul_size, opts.matmul_tries, opts.clock)
        torch_peak = machine.torch_matmul_gflops(torch, opts.matmul_size, opts.matmul_tries, opts.clock)
    info: dict[str, Any] = {
        "cpu": machine.cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "blas": facts, "threads": list(opts.threads), "torch_mkldnn": bool(torch.backends.mkldnn.is_available()),
        "matmul_peak_gflops": peak, "torch_matmul_gflops": torch_peak, "matmul_size": opts.matmul_size,
        "repeats": opts.repeats, "warmup": opts.warmup,
        "clock": "process CPU time (--cpu-time)" if opts.cpu_time else "wall time (perf_counter)",
        "impls": {op: kernels.get(op).name for op in ("conv2d", "max_pool2d", "linear", "cross_entropy")},
        "load_average_start": load, "warnings": [warning] if warning else [],
    }  # fmt: skip
    print(
        f"float32 matmul peak at one thread: {peak:.1f} GFLOP/s (np.matmul {opts.matmul_size}^2, best of "
        f"{opts.matmul_tries}); torch.mm: {torch_peak:.1f} GFLOP/s"
    )
    print(
        f"kernels: {info['impls']}; median of {opts.repeats} interleaved repeats after {opts.warmup} warm-up; "
        f"clock: {info['clock']}"
    )
    print("mygrad: " + (f"{mg.__version__}" if mg is not None else "not installed (pip install mygrad): not timed"))
    tables = {n: _table(torch, mg, x_all, y_all, opts, n) for n in opts.threads}
    for n, results in tables.items():
        _print_table(results, peak, n)
    print("  ratio = refcnn / torch (above 1: refcnn slower), the median of the repeats; q25-q75: the quartiles of")
    print("  the repeats' side-by-side ratios; fwd|bwd: the forward's ratio and the backward's (whole minus forward);")
    print("  GFLOP/s count forward + backward; extra mem: refcnn's peak memory in one cold forward + backward")
    print("  beyond the arrays it returns (tracemalloc), /im2col: that over the conv's full im2col matrix")
    _print_gains(tables)
    first = tables[opts.threads[0]]
    with machine.limit_threads(opts.threads[0], torch):
        nb = notebook(x_all, y_all, opts)
        ep = epoch(torch, x_all, y_all, opts, str(root))
        den = denormals(torch, x_all, y_all, opts)
    print(
        f"\nNotebook loops (refcnn.notebook.NotebookCNN): {nb['notebook_step_ms'] / 1000:.2f} s per train step "
        f"on {NOTEBOOK_BATCH} images (median of {nb['notebook_step_runs']}); refcnn SimpleCNN "
        f"{nb['refcnn_step_ms']:.3f} ms: {nb['speedup']:.0f}x faster"
    )
    print(
        f"  one epoch of {NOTEBOOK_IMAGES} images: notebook {nb['notebook_epoch_s_projected']:.0f} s "
        f"(projected), refcnn {nb['refcnn_epoch_s_measured']:.3f} s (measured): {nb['epoch_speedup']:.0f}x"
    )
    print(
        f"\nLeNet5 epoch: {ep['images']} images from {ep['data']}, batch {ep['batch']}: refcnn {ep['refcnn_s']:.2f} s, "
        f"torch {ep['torch_s']:.2f} s, ratio {ep['ratio']:.2f} (median of {ep['epochs_each']} epochs each, taking "
        f"turns; mean loss refcnn {fmt(ep.get('refcnn_mean_loss'), '.4f')}, torch {fmt(ep.get('torch_mean_loss'), '.4f')})"
    )
    print_denormals(den)
    info["load_average_end"] = machine.load_average()
    checks = summarize(first, nb, None if mg is None else mg.__version__)
    print(f"\nSummary against the targets ({opts.threads[0]} thread(s); a measurement: exit status 0 whatever it says)")
    for check in checks:
        print(check.line())
    more = {n: rs for n, rs in tables.items() if n != opts.threads[0]}
    return report(first, checks, _versions(torch, mg), info, nb, den, more, ep)


class _Parser(argparse.ArgumentParser):
    """argparse, with a user error as one line (and exit status 2) instead of the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _threads(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(t) for t in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"expected distinct thread counts >= 1 separated by commas, got {text!r}")
    return counts


def _repeats(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _check_writable(path: Path) -> None:
    """Fail before measuring (minutes) rather than after if the JSON cannot be written."""
    if path.is_dir():
        raise BenchError(f"--json {path}: is a directory; give a file name, e.g. {path / 'bench.json'}")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise BenchError(f"--json {path}: cannot write into {folder}; choose a writable location")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m refcnn bench",
        description="Time refcnn against PyTorch in one run, as ratios (float32, forward + backward): the conv and "
        "pool cases and whole training steps, with 1 and 2 threads on each side, and check the speed targets. "
        "Needs torch (pip install 'refcnn[bench]').",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write every result as JSON to FILE (default: none)")  # fmt: skip
    parser.add_argument("--repeats", type=_repeats, default=None, metavar="R",
                        help="timed repeats per case, the median reported (default: 15, or 3 with --quick)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="few repeats and a short denormal run: a smoke test (default: off)")  # fmt: skip
    parser.add_argument("--threads", type=_threads, default=(1, 2), metavar="N[,N...]",
                        help="the thread counts to run the tables with, each side limited to it; the targets are "
                        "checked on the first (default: 1,2)")  # fmt: skip
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="MNIST IDX files for the LeNet5 epoch and the training steps (default: the bundled "
                        "sample of 2,000 training images)")  # fmt: skip
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time instead of the wall clock, so other work on the "
                        "machine does not count; needs --threads 1 (default: off, wall clock)")  # fmt: skip
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.cpu_time and args.threads != (1,):
            raise BenchError(
                "--cpu-time counts the process's CPU time, which is the run time only for one thread: "
                f"add --threads 1 (got --threads {','.join(map(str, args.threads))})"
            )
        if args.json is not None:
            _check_writable(args.json)
        doc = run(Options.make(args.repeats, args.quick, args.cpu_time, args.threads), args.data)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
            print(f"\nJSON: {args.json}")
    except (BenchError, machine.MissingThreadpoolctl) as exc:
        print(f"python -m refcnn bench: error: {exc}", file=sys.stderr)
        return 2
    return 0
