"""``python -m refcnn bench [--json FILE] [--repeats R] [--quick] [--cpu-time]``: refcnn against PyTorch.

Everything is measured in one run on this machine, in float32, forward + backward (the
input's and the weights' gradients), so every figure is a ratio of two timings taken side
by side rather than a number to compare across machines:

- refcnn runs through its kernel registry (``kernels.get("conv2d")`` ..., the default
  implementation, ``fast``); PyTorch runs ``torch.nn.functional`` + autograd
  (``torch.autograd.grad``), the same work on the same arrays.
- Both use the same number of threads: PyTorch is set (``torch.set_num_threads``) to the
  number NumPy's BLAS uses (threadpoolctl if installed, else OpenBLAS asked through ctypes,
  else the environment, else ``os.cpu_count()``; the report says which).
- Timings are interleaved (refcnn, torch, mygrad, refcnn, torch, ...) after a warm-up, with
  the garbage collector off, and each figure is the median of the repeats.
- GFLOP/s count forward + backward: a convolution's forward is ``2*N*C_out*H_out*W_out*
  C_in/groups*kH*kW`` flops and its backward twice that (input and weight gradients); a
  training step counts 3x the forward flops of its convolutions and linear layers. The
  fraction is of this machine's float32 matmul peak, measured in the same run with
  ``np.matmul`` on large square matrices (best of a few).
- Peak memory is what ``tracemalloc`` sees during one cold refcnn forward + backward (the
  conv kernels' reusable scratch released first), shown next to the input's size.
- mygrad (optional, in the ``bench`` extra) is timed on the same conv and pool cases where
  it imports; the notebook's loop implementation (:mod:`refcnn.notebook`) is timed once or
  twice on its own batch of 20; the denormal section trains LeNet5 on real MNIST and times
  a training step with normal values, with subnormal inputs and with subnormal gradients.

Other work on the machine slows multi-threaded code unevenly; the command warns when the load
average shows some, and ``--cpu-time`` (with one thread: ``OPENBLAS_NUM_THREADS=1``) times by
the process's CPU time instead, which that work does not inflate.

The summary checks each target (PASS/FAIL) but the command exits 0 whatever they say: it
is a measurement, not a test. It exits 2 if PyTorch is missing, 1 if anything errored.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, kernels, models, nn, optim
from ._random import manual_seed
from .nn.module import backward_params

__all__ = [
    "TARGETS", "CONV_CASES", "POOL_CASES", "ConvCase", "PoolCase", "Result", "Check", "BenchError",
    "conv2d_flops", "linear_flops", "geomean", "median_ms", "interleaved", "blas_threads",
    "matmul_peak_gflops", "count_subnormal", "summarize", "report", "format_table", "main",
]  # fmt: skip

# The targets the summary checks (see the issue that asked for this command).
TARGETS = {
    "geomean_ratio": 2.0,  # geometric mean of refcnn/torch over the 6 conv + 2 pool cases, at most
    "max_ratio": 3.5,  # worst single conv/pool case, at most
    "train_step_ratio": 2.5,  # each whole training step, at most
    "notebook_speedup": 1000.0,  # refcnn's SimpleCNN step over the notebook's loops, at least
}
NOTEBOOK_BATCH = 20  # the notebook's experiment: batches of 20 from the first 1,000 images
NOTEBOOK_IMAGES = 1000
TRAIN_BATCH = 64
SUBNORMAL_INPUT = 1e-39  # MNIST's normalised pixels (|x| <= 2.83) times this are all subnormal
SUBNORMAL_GRAD = 1e-37  # the loss-gradient scale that leaves the most gradient values subnormal


class BenchError(RuntimeError):
    """The benchmark cannot run here (PyTorch missing); the message says what to do."""


def _torch() -> Any:
    """PyTorch, imported only when the benchmark runs (refcnn itself never needs it)."""
    try:
        import torch
    except ImportError as exc:
        raise BenchError(
            f"python -m refcnn bench times refcnn against PyTorch and needs torch, which did not import "
            f"({exc}). Install it with: pip install -e .[bench]  (torch==2.13.0, CPU build)"
        ) from exc
    return torch


# ---- cases and flop counts -----------------------------------------------------------------
def _out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_flops(
    N: int, C_in: int, H: int, W: int, C_out: int, kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int], dilation: tuple[int, int] = (1, 1), groups: int = 1,
) -> int:  # fmt: skip
    """Flops of one conv2d *forward*: 2*N*C_out*H_out*W_out*(C_in/groups)*kH*kW (a multiply
    and an add per weight per output element). Its backward costs twice that: the input
    gradient and the weight gradient are each a product of the same size."""
    H_out = _out(H, kernel[0], stride[0], padding[0], dilation[0])
    W_out = _out(W, kernel[1], stride[1], padding[1], dilation[1])
    return 2 * N * C_out * H_out * W_out * (C_in // groups) * kernel[0] * kernel[1]


def linear_flops(M: int, in_features: int, out_features: int) -> int:
    """Flops of one linear forward over M rows: 2*M*in*out (backward: twice that)."""
    return 2 * M * in_features * out_features


@dataclass(frozen=True)
class ConvCase:
    """conv2d (N, C_in, H, W) -> C_out with a square kernel, stride and padding, with bias."""

    N: int
    C_in: int
    H: int
    W: int
    C_out: int
    kernel: int
    stride: int
    padding: int

    @property
    def name(self) -> str:
        return (
            f"conv2d {self.N}x{self.C_in}x{self.H}x{self.W}->{self.C_out} k{self.kernel} s{self.stride} p{self.padding}"
        )

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C_in, self.H, self.W)

    @property
    def config(self) -> dict[str, Any]:
        k, s, p = (self.kernel,) * 2, (self.stride,) * 2, (self.padding,) * 2
        return {"C_out": self.C_out, "kernel_size": list(k), "stride": list(s), "padding": list(p)}

    def flops(self) -> int:
        """Forward + backward: 3x the forward's flops."""
        k, s, p = (self.kernel,) * 2, (self.stride,) * 2, (self.padding,) * 2
        return 3 * conv2d_flops(self.N, self.C_in, self.H, self.W, self.C_out, k, s, p)


@dataclass(frozen=True)
class PoolCase:
    """max_pool2d over (N, C, H, W) with a square window, stride and padding."""

    N: int
    C: int
    H: int
    W: int
    kernel: int
    stride: int
    padding: int

    @property
    def name(self) -> str:
        return f"max_pool2d {self.N}x{self.C}x{self.H}x{self.W} k{self.kernel} s{self.stride} p{self.padding}"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def config(self) -> dict[str, Any]:
        return {"kernel_size": [self.kernel] * 2, "stride": [self.stride] * 2, "padding": [self.padding] * 2}


CONV_CASES = (
    ConvCase(64, 1, 28, 28, 16, 3, 1, 1),
    ConvCase(64, 16, 14, 14, 32, 3, 1, 1),
    ConvCase(64, 32, 7, 7, 64, 3, 1, 1),
    ConvCase(32, 64, 32, 32, 128, 3, 1, 1),
    ConvCase(64, 6, 14, 14, 16, 5, 1, 0),
    ConvCase(64, 32, 16, 16, 64, 3, 2, 1),
)
POOL_CASES = (
    PoolCase(64, 16, 28, 28, 2, 2, 0),
    PoolCase(64, 32, 16, 16, 3, 2, 1),
)


def model_forward_flops(model: nn.Sequential, x: np.ndarray) -> int:
    """Flops of the convolutions and linear layers of one forward of ``model`` on ``x``,
    found by running it layer by layer (a weight of 4 dims is a conv, of 2 a linear)."""
    total = 0
    for layer in model:
        y = layer(x)
        weight = getattr(layer, "weight", None)
        if weight is not None and weight.data.ndim == 4:
            total += 2 * y.size * math.prod(weight.data.shape[1:])
        elif weight is not None and weight.data.ndim == 2:
            total += 2 * y.size * weight.data.shape[1]
        x = y
    return total


# ---- statistics and timing -------------------------------------------------------------------
def median_ms(seconds: Sequence[float]) -> float:
    """The median of timings in seconds, in milliseconds."""
    if not seconds:
        raise ValueError("median_ms needs at least one timing")
    return 1000.0 * statistics.median(seconds)


def geomean(values: Iterable[float]) -> float:
    """Geometric mean of positive numbers (the mean of ratios that treats 2x and 0.5x alike)."""
    vals = list(values)
    if not vals or min(vals) <= 0:
        raise ValueError(f"geomean needs positive numbers, got {vals}")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def interleaved(
    fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:  # fmt: skip
    """Time each function ``repeats`` times, taking turns (a, b, c, a, b, c, ...), after
    ``warmup`` untimed rounds, with the garbage collector off: seconds per call, per name.

    Taking turns spreads any drift of the machine (clock boost, another process) evenly
    over the contestants instead of charging it to whoever ran during it."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"interleaved needs repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in fns.items():
                start = clock()
                fn()
                times[name].append(clock() - start)
    finally:
        if was_enabled:
            gc.enable()
    return times


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (NumPy's buffers included) during one call of ``fn``, measured
    by tracemalloc from a clean start, with the conv kernels' scratch released first."""
    release = getattr(sys.modules.get("refcnn.kernels.conv"), "release_workspace", None)
    if callable(release):
        release()
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(0, peak - base)


def count_subnormal(a: Any) -> int:
    """How many elements of a float array are subnormal (nonzero, below the smallest normal)."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return 0
    tiny = np.finfo(a.dtype).tiny
    return int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))


# ---- the machine ---------------------------------------------------------------------------
def _openblas_threads() -> tuple[int, str] | None:
    """Ask the OpenBLAS library this process loaded (NumPy's) for its thread count."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                n = int(fn())
                if n > 0:
                    return n, f"{symbol}() of {Path(path).name}"
    return None


def blas_threads() -> tuple[int, str]:
    """The number of threads NumPy's BLAS uses, and how it was found."""
    try:
        from threadpoolctl import threadpool_info

        counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
        if counts:
            return max(counts), "threadpoolctl"
    except ImportError:
        pass
    found = _openblas_threads()
    if found is not None:
        return found
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value), f"${var}"
    return os.cpu_count() or 1, "os.cpu_count() (could not ask the BLAS)"


def _blas_name() -> str:
    try:
        config: Any = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_matmul_gflops(torch: Any, size: int, tries: int, clock: Callable[[], float]) -> float:
    """torch.mm's rate on the same problem as :func:`matmul_peak_gflops`: a GEMM-bound case
    can beat NumPy only by as much as torch's BLAS beats NumPy's."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    best = min(interleaved({"mm": lambda: torch.mm(a, b, out=out)}, tries, 0, clock)["mm"])
    return 2.0 * size**3 / best / 1e9


def _load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work running during
    the benchmark slows multi-threaded code unevenly, so the report records it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def matmul_peak_gflops(size: int = 2048, tries: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
    """This machine's float32 matmul rate (GFLOP/s): np.matmul of two size x size matrices,
    the best of ``tries`` (after one warm-up), 2*size**3 flops each."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = min(interleaved({"matmul": lambda: np.matmul(a, b, out=out)}, tries, 0, clock)["matmul"])
    return 2.0 * size**3 / best / 1e9


# ---- results and the summary -----------------------------------------------------------------
@dataclass
class Result:
    """One case: refcnn's and torch's median times (ms) and what else was measured."""

    name: str
    kind: str  # conv2d | max_pool2d | train_step
    shape: list[int]  # the input's shape
    refcnn_ms: float
    torch_ms: float
    dtype: str = "float32"
    config: dict[str, Any] = field(default_factory=dict)
    flops: int | None = None  # forward + backward
    mygrad_ms: float | None = None
    peak_mem_bytes: int | None = None
    input_bytes: int | None = None
    refcnn_fwd_ms: float | None = None  # the forward alone (as run in training: torch records its graph)
    torch_fwd_ms: float | None = None
    refcnn_best_ms: float | None = None  # the fastest repeat: less sensitive to other work on the machine
    torch_best_ms: float | None = None

    @property
    def ratio(self) -> float:
        """refcnn's time over torch's: above 1, refcnn is slower."""
        return self.refcnn_ms / self.torch_ms

    @property
    def best_ratio(self) -> float | None:
        if self.refcnn_best_ms is None or self.torch_best_ms is None:
            return None
        return self.refcnn_best_ms / self.torch_best_ms

    @property
    def fwd_ratio(self) -> float | None:
        if self.refcnn_fwd_ms is None or self.torch_fwd_ms is None:
            return None
        return self.refcnn_fwd_ms / self.torch_fwd_ms

    @property
    def bwd_ratio(self) -> float | None:
        """The backward's ratio, its time taken as the whole's minus the forward's."""
        if self.refcnn_fwd_ms is None or self.torch_fwd_ms is None:
            return None
        refcnn, torch = self.refcnn_ms - self.refcnn_fwd_ms, self.torch_ms - self.torch_fwd_ms
        return refcnn / torch if refcnn > 0 and torch > 0 else None

    def gflops(self, ms: float | None) -> float | None:
        if self.flops is None or ms is None:
            return None
        return self.flops / (ms / 1000.0) / 1e9

    def to_json(self, peak_gflops: float | None) -> dict[str, Any]:
        gflops = self.gflops(self.refcnn_ms)
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "refcnn_ms": self.refcnn_ms,
            "torch_ms": self.torch_ms,
            "ratio": self.ratio,
            "kind": self.kind,
            "config": self.config,
            "flops": self.flops,
            "gflops": gflops,
            "torch_gflops": self.gflops(self.torch_ms),
            "peak_fraction": None if gflops is None or not peak_gflops else gflops / peak_gflops,
            "peak_mem_bytes": self.peak_mem_bytes,
            "input_bytes": self.input_bytes,
            "mygrad_ms": self.mygrad_ms,
            "mygrad_ratio": None if self.mygrad_ms is None else self.refcnn_ms / self.mygrad_ms,
            "refcnn_fwd_ms": self.refcnn_fwd_ms,
            "torch_fwd_ms": self.torch_fwd_ms,
            "fwd_ratio": self.fwd_ratio,
            "bwd_ratio": self.bwd_ratio,
            "refcnn_best_ms": self.refcnn_best_ms,
            "torch_best_ms": self.torch_best_ms,
            "best_ratio": self.best_ratio,
        }


@dataclass(frozen=True)
class Check:
    """One target: ``value op target``; ``passed`` is None when it could not be measured."""

    name: str
    value: float | None
    op: str  # "<=", ">=" or "<"
    target: float
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return {"<=": self.value <= self.target, ">=": self.value >= self.target, "<": self.value < self.target}[
            self.op
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "value": self.value, "op": self.op, "target": self.target,
            "passed": self.passed, "note": self.note,
        }  # fmt: skip

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[self.passed]
        value = "not measured" if self.value is None else f"{self.value:.3g}"
        note = f"  ({self.note})" if self.note else ""
        return f"  {verdict}  {self.name}: {value} (target {self.op} {self.target:g}){note}"


def summarize(results: Sequence[Result], notebook: Mapping[str, Any] | None, mygrad: str | None) -> list[Check]:
    """The targets, checked on the results: geomean and worst ratio over the conv + pool
    cases, each training step's ratio, refcnn faster than mygrad on every conv/pool case
    (``mygrad``: its version, or None if it did not import), the notebook speed-up."""
    ops = [r for r in results if r.kind in ("conv2d", "max_pool2d")]
    checks = []
    if ops:
        worst = max(ops, key=lambda r: r.ratio)
        checks.append(Check(f"geomean refcnn/torch over the {len(ops)} conv2d + max_pool2d cases",
                            geomean(r.ratio for r in ops), "<=", TARGETS["geomean_ratio"]))  # fmt: skip
        checks.append(Check("worst single case refcnn/torch", worst.ratio, "<=", TARGETS["max_ratio"], worst.name))
    for r in results:
        if r.kind == "train_step":
            checks.append(Check(f"{r.name} refcnn/torch", r.ratio, "<=", TARGETS["train_step_ratio"]))
    if ops:
        timed = [r for r in ops if r.mygrad_ms is not None]
        if mygrad is None or not timed:
            checks.append(Check("faster than mygrad on every conv2d/max_pool2d case (worst refcnn/mygrad)", None,
                                "<", 1.0, "mygrad does not import here: pip install mygrad"))  # fmt: skip
        else:
            worst_mg = max(timed, key=lambda r: r.refcnn_ms / (r.mygrad_ms or 1.0))
            checks.append(Check("faster than mygrad on every conv2d/max_pool2d case (worst refcnn/mygrad)",
                                worst_mg.refcnn_ms / (worst_mg.mygrad_ms or 1.0), "<", 1.0,
                                f"mygrad {mygrad}; worst: {worst_mg.name}"))  # fmt: skip
    if notebook is not None:
        checks.append(Check(f"SimpleCNN train step speed-up over the notebook's loops (batch {notebook['batch']})",
                            notebook["speedup"], ">=", TARGETS["notebook_speedup"]))  # fmt: skip
    return checks


def _best_geomean(results: Sequence[Result]) -> float | None:
    """The geomean of the ratios of the fastest repeats (None if any is missing)."""
    ratios = [r.best_ratio for r in results]
    if not ratios or any(v is None for v in ratios):
        return None
    return geomean(v for v in ratios if v is not None)


def report(
    results: Sequence[Result], checks: Sequence[Check], versions: Mapping[str, Any], machine: Mapping[str, Any],
    notebook: Mapping[str, Any] | None = None, denormals: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The JSON document: ``results`` (each with DESIGN's keys ``name, shape, dtype,
    refcnn_ms, torch_ms, ratio`` first), ``versions``, ``machine``, ``summary``, and the
    ``notebook`` and ``denormals`` sections."""
    peak = machine.get("matmul_peak_gflops")
    ops = [r for r in results if r.kind in ("conv2d", "max_pool2d")]
    summary: dict[str, Any] = {
        "checks": [c.to_json() for c in checks],
        "all_passed": all(c.passed is True for c in checks),
        "geomean_ratio": geomean(r.ratio for r in ops) if ops else None,
        "max_ratio": max(r.ratio for r in ops) if ops else None,
        "train_step_ratios": {r.name: r.ratio for r in results if r.kind == "train_step"},
        "geomean_best_ratio": _best_geomean(ops),
        "notebook_speedup": None if notebook is None else notebook["speedup"],
        "targets": dict(TARGETS),
    }
    return {
        "results": [r.to_json(peak) for r in results],
        "versions": dict(versions),
        "machine": dict(machine),
        "summary": summary,
        "notebook": None if notebook is None else dict(notebook),
        "denormals": None if denormals is None else dict(denormals),
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def format_table(results: Sequence[Result], peak_gflops: float | None) -> str:
    """The results as an aligned text table."""
    head = ("case", "refcnn ms", "torch ms", "ratio", "fwd|bwd", "GFLOP/s", "% peak", "torch GF/s", "mygrad ms",
            "peak mem", "input")  # fmt: skip
    rows = [head]
    for r in results:
        d = r.to_json(peak_gflops)
        frac = d["peak_fraction"]
        rows.append((
            r.name, f"{r.refcnn_ms:.3f}", f"{r.torch_ms:.3f}", f"{r.ratio:.2f}",
            "-" if r.fwd_ratio is None else f"{r.fwd_ratio:.2f}|{_fmt(r.bwd_ratio, '.2f')}", _fmt(d["gflops"], ".1f"),
            _fmt(None if frac is None else 100 * frac, ".1f"), _fmt(d["torch_gflops"], ".1f"),
            _fmt(r.mygrad_ms, ".3f"), _bytes(r.peak_mem_bytes), _bytes(r.input_bytes),
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- the measurements (these need torch) ------------------------------------------------------
@dataclass
class Options:
    repeats: int
    warmup: int
    notebook_repeats: int
    denormal_train_steps: int
    matmul_size: int
    matmul_tries: int
    cpu_time: bool = False

    @classmethod
    def make(cls, repeats: int | None, quick: bool, cpu_time: bool = False) -> Options:
        if quick:
            return cls(repeats or 3, 1, 1, 10, 1024, 3, cpu_time)
        return cls(repeats or 15, 2, 2, 200, 2048, 5, cpu_time)

    @property
    def clock(self) -> Callable[[], float]:
        """Wall time; with --cpu-time the process's CPU time (= wall time of one busy thread
        that nobody interrupts, so other work on the machine does not count)."""
        return time.process_time if self.cpu_time else time.perf_counter


def _mygrad() -> Any:
    try:
        import mygrad
    except ImportError:
        return None
    return mygrad


def _best_ms(seconds: Sequence[float]) -> float:
    """The fastest repeat, in ms."""
    return 1000.0 * min(seconds)


class _MygradWindow:
    """mygrad's conv_nd and max_pool take only windows that tile their input exactly, and
    max_pool no padding: the input is padded by hand (zeros for a conv, -inf, never a
    maximum, for a pool), cut to the rows/columns PyTorch's floor uses, and the gradient
    cropped back, all inside the timing, as the other two do the same internally."""

    def __init__(self, shape: tuple[int, ...], kernel: int, stride: int, padding: int, fill: float) -> None:
        self.H, self.W = shape[2], shape[3]
        self.padding, self.fill = padding, fill
        self.used = tuple((_out(n, kernel, stride, padding) - 1) * stride + kernel for n in (self.H, self.W))
        self.native = fill == 0.0 and self.used == (self.H + 2 * padding, self.W + 2 * padding)

    def pad(self, x: np.ndarray) -> np.ndarray:
        p = self.padding
        if p == 0 and self.used == (self.H, self.W):
            return x
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.fill)
        return xp[:, :, : self.used[0], : self.used[1]]

    def crop(self, grad: np.ndarray) -> np.ndarray:
        """The gradient w.r.t. the (N, C, H, W) input: zero where no window reached."""
        p = self.padding
        if p == 0 and grad.shape[2:] == (self.H, self.W):
            return grad
        inner = grad[:, :, p : p + self.H, p : p + self.W]
        out = np.zeros((*grad.shape[:2], self.H, self.W), dtype=grad.dtype)
        out[:, :, : inner.shape[2], : inner.shape[3]] = inner
        return out


def _conv_case(torch: Any, mg: Any, case: ConvCase, opts: Options) -> Result:
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    bound = 1.0 / math.sqrt(case.C_in * case.kernel**2)
    x = rng.standard_normal(case.input_shape, dtype=np.float32)
    w = rng.uniform(-bound, bound, (case.C_out, case.C_in, case.kernel, case.kernel)).astype(np.float32)
    b = rng.uniform(-bound, bound, case.C_out).astype(np.float32)
    s, p = (case.stride,) * 2, (case.padding,) * 2
    H_out, W_out = (
        _out(case.H, case.kernel, case.stride, case.padding),
        _out(case.W, case.kernel, case.stride, case.padding),
    )
    gy = rng.standard_normal((case.N, case.C_out, H_out, W_out), dtype=np.float32)
    conv = kernels.get("conv2d")

    def refcnn_forward() -> Any:
        return conv.forward(x, w, b, stride=s, padding=p, dilation=(1, 1), groups=1)[1]

    def run_refcnn() -> None:
        conv.backward(gy, refcnn_forward())

    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    gyt = torch.from_numpy(gy)

    def torch_forward() -> Any:
        return F.conv2d(xt, wt, bt, stride=s, padding=p)

    def run_torch() -> None:
        torch.autograd.grad(torch_forward(), (xt, wt, bt), gyt)

    fns: dict[str, Callable[[], object]] = {
        "refcnn": run_refcnn, "torch": run_torch, "refcnn_fwd": refcnn_forward, "torch_fwd": torch_forward,
    }  # fmt: skip
    if mg is not None:
        from mygrad.nnet import conv_nd

        xm, wm, bm = mg.tensor(x), mg.tensor(w), mg.tensor(b.reshape(-1, 1, 1))
        window = _MygradWindow(case.input_shape, case.kernel, case.stride, case.padding, 0.0)

        def run_mygrad() -> None:
            if window.native:
                (conv_nd(xm, wm, stride=s, padding=p) + bm).backward(gy)
            else:
                xp = mg.tensor(window.pad(x))
                (conv_nd(xp, wm, stride=s) + bm).backward(gy)
                window.crop(xp.grad)

        fns["mygrad"] = run_mygrad
    times = interleaved(fns, opts.repeats, opts.warmup, opts.clock)
    return Result(
        case.name, "conv2d", list(case.input_shape), median_ms(times["refcnn"]), median_ms(times["torch"]),
        config=case.config, flops=case.flops(), mygrad_ms=median_ms(times["mygrad"]) if "mygrad" in times else None,
        peak_mem_bytes=peak_memory(run_refcnn), input_bytes=x.nbytes, refcnn_fwd_ms=median_ms(times["refcnn_fwd"]),
        torch_fwd_ms=median_ms(times["torch_fwd"]), refcnn_best_ms=_best_ms(times["refcnn"]),
        torch_best_ms=_best_ms(times["torch"]),
    )  # fmt: skip


def _pool_case(torch: Any, mg: Any, case: PoolCase, opts: Options) -> Result:
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    x = rng.standard_normal(case.input_shape, dtype=np.float32)
    k, s, p = (case.kernel,) * 2, (case.stride,) * 2, (case.padding,) * 2
    H_out, W_out = (
        _out(case.H, case.kernel, case.stride, case.padding),
        _out(case.W, case.kernel, case.stride, case.padding),
    )
    gy = rng.standard_normal((case.N, case.C, H_out, W_out), dtype=np.float32)
    pool = kernels.get("max_pool2d")

    def refcnn_forward() -> Any:
        return pool.forward(x, kernel_size=k, stride=s, padding=p, dilation=(1, 1), ceil_mode=False)[1]

    def run_refcnn() -> None:
        pool.backward(gy, refcnn_forward())

    xt, gyt = torch.from_numpy(x.copy()).requires_grad_(), torch.from_numpy(gy)

    def torch_forward() -> Any:
        return F.max_pool2d(xt, k, s, p)

    def run_torch() -> None:
        torch.autograd.grad(torch_forward(), (xt,), gyt)

    fns: dict[str, Callable[[], object]] = {
        "refcnn": run_refcnn, "torch": run_torch, "refcnn_fwd": refcnn_forward, "torch_fwd": torch_forward,
    }  # fmt: skip
    if mg is not None:
        from mygrad.nnet import max_pool

        window = _MygradWindow(case.input_shape, case.kernel, case.stride, case.padding, -np.inf)

        def run_mygrad() -> None:
            xm = mg.tensor(window.pad(x))
            max_pool(xm, k, s).backward(gy)
            window.crop(xm.grad)

        fns["mygrad"] = run_mygrad
    times = interleaved(fns, opts.repeats, opts.warmup, opts.clock)
    return Result(
        case.name, "max_pool2d", list(case.input_shape), median_ms(times["refcnn"]), median_ms(times["torch"]),
        config=case.config, mygrad_ms=median_ms(times["mygrad"]) if "mygrad" in times else None,
        peak_mem_bytes=peak_memory(run_refcnn), input_bytes=x.nbytes, refcnn_fwd_ms=median_ms(times["refcnn_fwd"]),
        torch_fwd_ms=median_ms(times["torch_fwd"]), refcnn_best_ms=_best_ms(times["refcnn"]),
        torch_best_ms=_best_ms(times["torch"]),
    )  # fmt: skip


def _torch_twin(model: nn.Module) -> Any:
    """The same architecture in torch.nn holding copies of ``model``'s weights
    (:func:`refcnn.interop.to_torch`: same state_dict keys, strict load)."""
    from .interop import to_torch

    return to_torch(model)


@dataclass
class _Pair:
    """A refcnn model and its torch twin, each with CrossEntropyLoss and SGD, one step each."""

    model: nn.Sequential
    twin: Any
    opt: optim.SGD
    topt: Any
    criterion: nn.CrossEntropyLoss
    torch: Any

    @classmethod
    def make(cls, torch: Any, name: str, lr: float, seed: int = 0) -> _Pair:
        manual_seed(seed)
        model = models.build(name)
        twin = _torch_twin(model)
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        topt = torch.optim.SGD(twin.parameters(), lr=lr, momentum=0.9)
        return cls(model, twin, opt, topt, nn.CrossEntropyLoss(), torch)  # type: ignore[arg-type]

    def refcnn_step(self, x: np.ndarray, y: np.ndarray, grad_scale: float = 1.0) -> float:
        loss = self.criterion(self.model(x), y)
        self.opt.zero_grad()
        backward_params(self.model, self.criterion.backward(grad_scale))  # as torch: no grad for the images
        self.opt.step()
        return float(loss)

    def torch_step(self, xt: Any, yt: Any, grad_scale: float = 1.0) -> float:
        self.topt.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.twin(xt), yt)
        loss.backward(self.torch.tensor(grad_scale, dtype=loss.dtype))
        self.topt.step()
        return float(loss.item())


def _train_case(torch: Any, name: str, x: np.ndarray, y: np.ndarray, opts: Options) -> Result:
    pair = _Pair.make(torch, name, lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    flops = 3 * model_forward_flops(pair.model, x)
    times = interleaved(
        {"refcnn": lambda: pair.refcnn_step(x, y), "torch": lambda: pair.torch_step(xt, yt)},
        opts.repeats, opts.warmup, opts.clock,
    )  # fmt: skip
    label = type(pair.model).__name__
    # Both took the same steps on the same batch: one more each shows they still compute the same thing.
    losses = {"refcnn_loss_after": pair.refcnn_step(x, y), "torch_loss_after": pair.torch_step(xt, yt)}
    return Result(
        f"train step {label} batch {len(x)}", "train_step", list(x.shape), median_ms(times["refcnn"]),
        median_ms(times["torch"]), config={"model": name, "optimizer": "SGD lr=0.01 momentum=0.9",
        "loss": "CrossEntropyLoss", **losses}, flops=flops, peak_mem_bytes=peak_memory(lambda: pair.refcnn_step(x, y)),
        input_bytes=x.nbytes, refcnn_best_ms=_best_ms(times["refcnn"]),
        torch_best_ms=_best_ms(times["torch"]),
    )  # fmt: skip


def _notebook(x: np.ndarray, y: np.ndarray, opts: Options) -> dict[str, Any]:
    """The notebook's loop implementation against refcnn's SimpleCNN, one step on the same
    batch of 20 each; the epoch projection is 50 such steps (1,000 images)."""
    from .notebook import NotebookCNN

    xb, yb = x[:NOTEBOOK_BATCH], y[:NOTEBOOK_BATCH]
    loops = NotebookCNN(seed=0)
    loops.train_step(xb[:1], yb[:1], 0.01)  # warm-up on one image (its cost is per image)
    loop_s = []
    for _ in range(opts.notebook_repeats):
        start = opts.clock()
        loops.train_step(xb, yb, 0.01)
        loop_s.append(opts.clock() - start)
    manual_seed(0)
    model = models.SimpleCNN()
    criterion = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(xs: np.ndarray, ys: np.ndarray) -> None:
        criterion(model(xs), ys)
        opt.zero_grad()
        backward_params(model, criterion.backward())
        opt.step()

    refcnn_s = interleaved({"refcnn": lambda: step(xb, yb)}, max(opts.repeats, 5), opts.warmup, opts.clock)["refcnn"]
    steps = NOTEBOOK_IMAGES // NOTEBOOK_BATCH
    start = opts.clock()
    for i in range(steps):
        sl = slice(i * NOTEBOOK_BATCH, (i + 1) * NOTEBOOK_BATCH)
        step(x[sl], y[sl])
    epoch_s = opts.clock() - start
    loop_ms, refcnn_ms = median_ms(loop_s), median_ms(refcnn_s)
    return {
        "batch": NOTEBOOK_BATCH,
        "notebook_step_ms": loop_ms,
        "notebook_step_runs": len(loop_s),
        "refcnn_step_ms": refcnn_ms,
        "speedup": loop_ms / refcnn_ms,
        "epoch_images": NOTEBOOK_IMAGES,
        "notebook_epoch_s_projected": steps * loop_ms / 1000.0,
        "refcnn_epoch_s_measured": epoch_s,
        "epoch_speedup": steps * loop_ms / 1000.0 / epoch_s,
        "note": "the notebook's net is the buggy one (pool stride 1: Linear(5000, 10)); refcnn's is SimpleCNN "
        "(Linear(1352, 10)), as the notebook's experiment would now run",
    }


def _census(arrays: Iterable[Any]) -> dict[str, int]:
    """Subnormal values among the given arrays (torch tensors or ndarrays; None skipped)."""
    arrs = [np.asarray(a.detach().numpy() if hasattr(a, "detach") else a) for a in arrays if a is not None]
    return {"subnormal": sum(count_subnormal(a) for a in arrs), "total": sum(a.size for a in arrs)}


def _add_census(total: dict[str, dict[str, int]], part: Mapping[str, Mapping[str, int]]) -> None:
    for kind, c in part.items():
        into = total.setdefault(kind, {"subnormal": 0, "total": 0})
        into["subnormal"] += c["subnormal"]
        into["total"] += c["total"]


def _refcnn_census_step(pair: _Pair, x: np.ndarray, y: np.ndarray, grad_scale: float, step: bool) -> dict[str, Any]:
    """One refcnn forward + backward (and SGD step if ``step``), layer by layer, counting the
    subnormal values in the activations (the input and every layer's output), the gradients
    (the loss's, every layer's input gradient, every parameter's) and the weights."""
    pair.model.zero_grad()
    acts = [x]
    for layer in pair.model:
        acts.append(layer(acts[-1]))
    pair.criterion(acts[-1], y)
    grads: list[Any] = [pair.criterion.backward(grad_scale)]
    for layer in reversed(list(pair.model)):
        grads.append(layer.backward(grads[-1]))
    params = list(pair.model.parameters())
    grads += [p.grad for p in params]
    counts = {"activations": _census(acts), "gradients": _census(grads), "weights": _census(p.data for p in params)}
    if step:
        pair.opt.step()
    return counts


def _torch_census(pair: _Pair, x: np.ndarray, y: np.ndarray, grad_scale: float) -> dict[str, Any]:
    """The same census for the torch twin (intermediate gradients through retain_grad)."""
    torch = pair.torch
    pair.twin.zero_grad()
    acts = [torch.from_numpy(x).requires_grad_()]
    for layer in pair.twin:
        acts.append(layer(acts[-1]))
        acts[-1].retain_grad()
    loss = torch.nn.functional.cross_entropy(acts[-1], torch.from_numpy(y))
    loss.backward(torch.tensor(grad_scale, dtype=loss.dtype))
    params = list(pair.twin.parameters())
    grads = [a.grad for a in acts] + [p.grad for p in params]
    counts = {"activations": _census(acts), "gradients": _census(grads), "weights": _census(params)}
    pair.twin.zero_grad()
    return counts


def _denormals(torch: Any, x_all: np.ndarray, y_all: np.ndarray, opts: Options) -> dict[str, Any]:
    """Does refcnn meet subnormal numbers on real MNIST, and what do they cost it?

    LeNet5 (refcnn, and its torch twin alongside) trains on real MNIST batches, every refcnn
    step counting the subnormal values it computed. Then one training step (lr 0: the work of
    a step, the weights kept) is timed on a real batch, on the same batch with subnormal
    inputs (x * 1e-39: every input value subnormal) and with subnormal gradients (the loss's
    gradient 1e-37 instead of 1: the scale that makes most gradient values subnormal, about
    a third of them, rather than zero),
    for both, and for torch also with flush-to-zero on (``torch.set_flush_denormal``; NumPy
    has no such switch)."""
    pair = _Pair.make(torch, "lenet5", lr=0.02)
    n_batches = len(x_all) // TRAIN_BATCH
    during: dict[str, dict[str, int]] = {}
    for i in range(opts.denormal_train_steps):  # refcnn and torch train side by side, same batches
        sl = slice((i % n_batches) * TRAIN_BATCH, (i % n_batches + 1) * TRAIN_BATCH)
        _add_census(during, _refcnn_census_step(pair, x_all[sl], y_all[sl], 1.0, step=True))
        pair.torch_step(torch.from_numpy(x_all[sl]), torch.from_numpy(y_all[sl]))
    for group in (*pair.opt.param_groups, *pair.topt.param_groups):
        group["lr"] = 0.0
    x, y = x_all[-TRAIN_BATCH:], y_all[-TRAIN_BATCH:]
    scenarios = {
        "real MNIST": (x, 1.0),
        f"subnormal inputs (x * {SUBNORMAL_INPUT:g})": ((x * np.float32(SUBNORMAL_INPUT)).astype(np.float32), 1.0),
        f"subnormal gradients (loss grad {SUBNORMAL_GRAD:g})": (x, SUBNORMAL_GRAD),
    }
    out: dict[str, Any] = {
        "model": "LeNet5", "batch": TRAIN_BATCH, "trained_steps": opts.denormal_train_steps,
        "smallest_normal_float32": float(np.finfo(np.float32).tiny), "refcnn_during_training": during,
        "torch_flush_denormal_supported": None, "scenarios": {},
    }  # fmt: skip
    base: dict[str, float] = {}
    for label, (xs, scale) in scenarios.items():
        xt, yt = torch.from_numpy(xs), torch.from_numpy(y)
        census = {"refcnn": _refcnn_census_step(pair, xs, y, scale, step=False),
                  "torch": _torch_census(pair, xs, y, scale)}  # fmt: skip
        times = interleaved(
            {"refcnn": partial(pair.refcnn_step, xs, y, scale), "torch": partial(pair.torch_step, xt, yt, scale)},
            opts.repeats, opts.warmup, opts.clock,
        )  # fmt: skip
        ftz_ok = bool(torch.set_flush_denormal(True))
        try:
            ftz = interleaved({"torch": partial(pair.torch_step, xt, yt, scale)}, opts.repeats, 1, opts.clock)
        finally:
            torch.set_flush_denormal(False)
        out["torch_flush_denormal_supported"] = ftz_ok
        entry: dict[str, Any] = {
            "census": census,
            "refcnn_ms": median_ms(times["refcnn"]),
            "torch_ms": median_ms(times["torch"]),
            "torch_flush_denormal_ms": median_ms(ftz["torch"]) if ftz_ok else None,
        }
        if not base:
            base = {"refcnn": entry["refcnn_ms"], "torch": entry["torch_ms"]}
        entry["refcnn_slowdown"] = entry["refcnn_ms"] / base["refcnn"]
        entry["torch_slowdown"] = entry["torch_ms"] / base["torch"]
        out["scenarios"][label] = entry
    return out


def _versions(torch: Any, mg: Any) -> dict[str, Any]:
    return {
        "refcnn": __version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mygrad": None if mg is None else getattr(mg, "__version__", "unknown"),
    }


def _print_denormals(d: Mapping[str, Any]) -> None:
    print(
        f"\nDenormals: {d['model']} trained {d['trained_steps']} steps on real MNIST (batch {d['batch']}), then one "
        f"training step each (lr 0)\n(subnormal = nonzero and |v| < {d['smallest_normal_float32']:.3g}; counts are "
        "subnormal/total over activations, gradients, weights)"
    )
    c = d["refcnn_during_training"]
    print(
        "  refcnn during training: " + "  ".join(f"{k} {v['subnormal']}/{v['total']}" for k, v in c.items())
        + " subnormal"
    )  # fmt: skip
    head = f"  {'scenario':<40}{'refcnn ms':>10}{'slowdown':>9}{'torch ms':>10}{'slowdown':>9}{'torch FTZ ms':>13}"
    print(head)
    for label, e in d["scenarios"].items():
        print(
            f"  {label:<40}{e['refcnn_ms']:>10.3f}{e['refcnn_slowdown']:>8.2f}x{e['torch_ms']:>10.3f}"
            f"{e['torch_slowdown']:>8.2f}x{_fmt(e['torch_flush_denormal_ms'], '.3f'):>13}"
        )
        for side in ("refcnn", "torch"):
            c = e["census"][side]
            print(
                "      " + f"{side:<7}"
                + "  ".join(f"{k} {v['subnormal']}/{v['total']}" for k, v in c.items())
            )  # fmt: skip


def run(opts: Options) -> dict[str, Any]:
    """Every measurement, printed as it goes; returns the JSON document."""
    torch = _torch()
    from .data import load_mnist, sample_dir

    mg = _mygrad()
    threads, source = blas_threads()
    if opts.cpu_time and threads != 1:
        raise BenchError(
            f"--cpu-time counts the process's CPU time, which is the run time only for one thread, but NumPy's "
            f"BLAS uses {threads} (found via {source}): run it as OPENBLAS_NUM_THREADS=1 python -m refcnn bench "
            "--cpu-time (or MKL_NUM_THREADS=1 / OMP_NUM_THREADS=1 for another BLAS)"
        )
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(f"refcnn {__version__} vs torch {torch.__version__}, float32, forward + backward")
    print(
        f"threads: {threads} for both (NumPy's BLAS, via {source}); torch.get_num_threads() = {torch.get_num_threads()}"
    )
    load = _load_average()
    if load is not None and load > 0.5 * threads and not opts.cpu_time:
        print(
            f"warning: this machine is busy (1-minute load average {load:.2f} on {os.cpu_count()} CPUs): "
            "multi-threaded timings (torch's most of all) suffer; rerun on a quiet machine, or single-threaded "
            "with OPENBLAS_NUM_THREADS=1 and --cpu-time"
        )
    peak = matmul_peak_gflops(opts.matmul_size, opts.matmul_tries, opts.clock)
    machine = {
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "threads": threads, "threads_source": source, "torch_threads": torch.get_num_threads(),
        "torch_mkldnn": bool(torch.backends.mkldnn.is_available()),
        "blas": _blas_name(), "matmul_peak_gflops": peak, "matmul_size": opts.matmul_size,
        "repeats": opts.repeats, "warmup": opts.warmup,
        "clock": "process CPU time (--cpu-time)" if opts.cpu_time else "wall time (perf_counter)",
        "impls": {op: kernels.get(op).name for op in ("conv2d", "max_pool2d", "linear", "cross_entropy")},
        "load_average_start": load,
    }  # fmt: skip
    machine["torch_matmul_gflops"] = torch_peak = _torch_matmul_gflops(
        torch, opts.matmul_size, opts.matmul_tries, opts.clock
    )
    print(
        f"float32 matmul peak: {peak:.1f} GFLOP/s (np.matmul {opts.matmul_size}^2, best of {opts.matmul_tries}); "
        f"torch.mm: {torch_peak:.1f} GFLOP/s"
    )
    print(
        f"kernels: {machine['impls']}; median of {opts.repeats} interleaved repeats after {opts.warmup} warm-up; "
        f"clock: {machine['clock']}"
    )
    print("mygrad: " + (f"{mg.__version__}" if mg is not None else "not installed (pip install mygrad): not timed"))
    results: list[Result] = []
    for conv_case in CONV_CASES:
        results.append(_conv_case(torch, mg, conv_case, opts))
        print(f"  measured {results[-1].name}", file=sys.stderr, flush=True)
    for pool_case in POOL_CASES:
        results.append(_pool_case(torch, mg, pool_case, opts))
        print(f"  measured {results[-1].name}", file=sys.stderr, flush=True)
    x_all, y_all = load_mnist(sample_dir(), train=True)
    for name in ("lenet5", "simplecnn"):
        results.append(_train_case(torch, name, x_all[:TRAIN_BATCH], y_all[:TRAIN_BATCH], opts))
        print(f"  measured {results[-1].name}", file=sys.stderr, flush=True)
    print()
    print(format_table(results, peak))
    print("  ratio = refcnn / torch (above 1: refcnn slower); fwd|bwd: the forward's ratio and the backward's")
    print("  (whole minus forward); GFLOP/s count forward + backward;")
    print("  peak mem = tracemalloc peak of one cold refcnn forward + backward")
    ops = [r for r in results if r.kind in ("conv2d", "max_pool2d")]
    best = _best_geomean(ops)
    if best is not None:
        worst = max(ops, key=lambda r: r.best_ratio or 0.0)
        print(
            f"  with the fastest repeat of each instead of the median: geomean {best:.2f}, worst {worst.best_ratio:.2f} "
            f"({worst.name}); train steps "
            + ", ".join(f"{_fmt(r.best_ratio, '.2f')}" for r in results if r.kind == "train_step")
        )
    notebook = _notebook(x_all, y_all, opts)
    print(
        f"\nNotebook loops (refcnn.notebook.NotebookCNN): {notebook['notebook_step_ms'] / 1000:.2f} s per train step "
        f"on {NOTEBOOK_BATCH} images (median of {notebook['notebook_step_runs']}); refcnn SimpleCNN "
        f"{notebook['refcnn_step_ms']:.3f} ms: {notebook['speedup']:.0f}x faster"
    )
    print(
        f"  one epoch of {NOTEBOOK_IMAGES} images: notebook {notebook['notebook_epoch_s_projected']:.0f} s "
        f"(projected), refcnn {notebook['refcnn_epoch_s_measured']:.3f} s (measured): {notebook['epoch_speedup']:.0f}x"
    )
    denormals = _denormals(torch, x_all, y_all, opts)
    _print_denormals(denormals)
    machine["load_average_end"] = _load_average()
    checks = summarize(results, notebook, None if mg is None else mg.__version__)
    print("\nSummary (a measurement: the exit status does not depend on it)")
    for check in checks:
        print(check.line())
    return report(results, checks, _versions(torch, mg), machine, notebook, denormals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refcnn bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--repeats", type=int, default=None, metavar="R",
                        help="timed repeats per case (median reported; default 15, 3 with --quick)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="few repeats and a short denormal run: a smoke test")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time instead of the wall clock (needs one thread: "
                        "OPENBLAS_NUM_THREADS=1); other work on the machine then does not count")  # fmt: skip
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    try:
        doc = run(Options.make(args.repeats, args.quick, args.cpu_time))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nJSON: {args.json}")
    return 0
