"""Facts about the machine a benchmark ran on: CPU, NumPy's BLAS (library, core type,
threads), the matmul peak, the load.

NumPy's BLAS decides most of refcnn's speed, and OpenBLAS picks its kernels for the CPU it
finds unless ``OPENBLAS_CORETYPE`` names another: a machine that sets it (some need it) can
run GEMM at half the rate of the same CPU without it. threadpoolctl tells which library,
core type and thread count are in use, and limits the threads for a table.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .timing import interleaved

__all__ = [
    "blas_threads", "blas_facts", "overrides", "override_warning", "limit_threads", "matmul_peak_gflops",
    "torch_matmul_gflops", "cpu_name", "load_average", "MissingThreadpoolctl",
]  # fmt: skip

OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class MissingThreadpoolctl(RuntimeError):
    """threadpoolctl is needed to limit NumPy's BLAS threads for a table."""


def _threadpool_info() -> list[dict[str, Any]] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [dict(i) for i in threadpool_info()]


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
    info = _threadpool_info()
    counts = [int(i["num_threads"]) for i in info or [] if i.get("user_api") == "blas"]
    if counts:
        return max(counts), "threadpoolctl"
    found = _openblas_threads()
    if found is not None:
        return found
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value), f"${var}"
    return os.cpu_count() or 1, "os.cpu_count() (could not ask the BLAS)"


def _build_blas() -> str:
    try:
        config: Any = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def blas_facts(info: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """NumPy's BLAS as threadpoolctl sees it: library (internal_api, version, file), core
    type (OpenBLAS's ``architecture``: the kernels it runs), threads, threading layer; and
    the OpenBLAS variables set in the environment. ``info``: threadpoolctl's
    ``threadpool_info()`` (asked when None; without threadpoolctl the library is the one
    NumPy was built against and the rest unknown)."""
    info = _threadpool_info() if info is None else info
    blas = [i for i in info or [] if i.get("user_api") == "blas"]
    facts: dict[str, Any] = {"source": "threadpoolctl" if info is not None else "numpy build info (no threadpoolctl)"}
    if blas:
        lib = blas[0]
        facts.update(
            library=f"{lib.get('internal_api')} {lib.get('version')}",
            file=Path(str(lib.get("filepath", ""))).name,
            core_type=lib.get("architecture"),
            threads=int(lib.get("num_threads", 0)),
            threading_layer=lib.get("threading_layer"),
        )
    else:
        facts.update(library=_build_blas(), file=None, core_type=None, threads=None, threading_layer=None)
    facts["overrides"] = overrides()
    return facts


def overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The OpenBLAS variables that override what it would pick for this CPU, as set."""
    env = os.environ if environ is None else environ
    return {k: env[k] for k in OVERRIDES if env.get(k)}


def override_warning(facts: Mapping[str, Any]) -> str | None:
    """One line saying that the core type (or cache size) is overridden, and how to measure
    as a machine without the override runs; None when nothing is overridden."""
    set_ = facts.get("overrides") or {}
    if not set_:
        return None
    listed = " ".join(f"{k}={v}" for k, v in set_.items())
    unset = " ".join(f"-u {k}" for k in set_)
    return (
        f"warning: {listed} overrides what OpenBLAS picks for this CPU (core type in use: "
        f"{facts.get('core_type') or 'unknown'}); NumPy's GEMM may run at another rate than on a machine without "
        f"it: to measure as such a machine runs, run this command as env {unset} python -m refcnn bench"
    )


@contextmanager
def limit_threads(n: int, torch: Any) -> Iterator[None]:
    """NumPy's BLAS (threadpoolctl) and torch both on ``n`` threads, restored afterwards."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise MissingThreadpoolctl(
            "python -m refcnn bench sets NumPy's BLAS threads with threadpoolctl, which did not import: "
            "pip install threadpoolctl (it is in the bench extra: pip install 'refcnn[bench]')"
        ) from exc
    before = torch.get_num_threads()
    with threadpool_limits(limits=n, user_api="blas"):
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work running during
    the benchmark slows it unevenly, so the report records it."""
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


def torch_matmul_gflops(torch: Any, size: int, tries: int, clock: Callable[[], float]) -> float:
    """torch.mm's rate on the same problem as :func:`matmul_peak_gflops`: a GEMM-bound case
    can beat NumPy only by as much as torch's BLAS beats NumPy's."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    best = min(interleaved({"mm": lambda: torch.mm(a, b, out=out)}, tries, 0, clock)["mm"])
    return 2.0 * size**3 / best / 1e9
