"""How the benchmark times and measures: interleaved repeats, medians, memory peaks.

Timings are interleaved (refcnn, torch, mygrad, refcnn, torch, ...) after a warm-up, with
the garbage collector off, and each figure is the median of the repeats (the fastest
repeat is kept too: it is less sensitive to other work on the machine).
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Options", "median_ms", "best_ms", "spread", "geomean", "interleaved", "peak_memory"]


@dataclass
class Options:
    """What one run measures and how often."""

    repeats: int
    warmup: int
    notebook_repeats: int
    denormal_train_steps: int
    matmul_size: int
    matmul_tries: int
    epoch_repeats: int
    cpu_time: bool = False
    threads: tuple[int, ...] = (1, 2)

    @classmethod
    def make(
        cls, repeats: int | None, quick: bool, cpu_time: bool = False, threads: tuple[int, ...] = (1, 2)
    ) -> Options:
        if quick:
            return cls(repeats or 3, 1, 1, 10, 1024, 3, 1, cpu_time, threads)
        return cls(repeats or 15, 2, 2, 200, 2048, 5, 3, cpu_time, threads)

    @property
    def clock(self) -> Callable[[], float]:
        """Wall time; with --cpu-time the process's CPU time (= wall time of one busy thread
        that nobody interrupts, so other work on the machine does not count)."""
        return time.process_time if self.cpu_time else time.perf_counter


def median_ms(seconds: Sequence[float]) -> float:
    """The median of timings in seconds, in milliseconds."""
    if not seconds:
        raise ValueError("median_ms needs at least one timing")
    return 1000.0 * statistics.median(seconds)


def best_ms(seconds: Sequence[float]) -> float:
    """The fastest repeat, in ms."""
    return 1000.0 * min(seconds)


def spread(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The quartiles (25th and 75th percentile) of the ratios a[k] / b[k] of repeats taken
    side by side: how much one run's ratio moves with the machine's other work."""
    ratios = sorted(x / y for x, y in zip(a, b, strict=True))
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    q = statistics.quantiles(ratios, n=4, method="inclusive")
    return q[0], q[2]


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
    release = getattr(sys.modules.get("refcnn.kernels._im2col"), "release_workspace", None)
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
