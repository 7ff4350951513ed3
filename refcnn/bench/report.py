"""The benchmark's results, the targets it checks and the tables and JSON it writes.

Every figure is a ratio refcnn / torch of two timings taken side by side in one run (above
1: refcnn slower). GFLOP/s count forward + backward: a convolution's forward is
``2*N*C_out*H_out*W_out*C_in/groups*kH*kW`` flops and its backward twice that; a training
step counts 3x the forward flops of its convolutions and linear layers. The summary says
whether each target is met; the command exits 0 either way: it is a measurement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .timing import geomean

__all__ = ["TARGETS", "Result", "Check", "summarize", "report", "format_table", "best_geomean"]

# The targets the summary checks, measured with one thread on each side.
TARGETS = {
    "geomean_ratio": 1.0,  # geometric mean of refcnn/torch over the 6 conv + 2 pool cases, at most
    "max_ratio": 1.6,  # worst single conv/pool case, at most
    "lenet5_step_ratio": 1.3,  # a LeNet-5 training step (batch 64), at most
    "notebook_epoch_speedup": 2000.0,  # one epoch of the notebook's experiment, refcnn over its loops, at least
    "workspace_im2col": 1.0,  # a conv's extra memory in forward + backward over its full im2col matrix, at most
}
OPS = ("conv2d", "max_pool2d")


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
    peak_mem_bytes: int | None = None  # refcnn's extra memory: the peak minus the arrays it returns
    input_bytes: int | None = None
    im2col_bytes: int | None = None  # a conv's full im2col matrix
    refcnn_fwd_ms: float | None = None  # the forward alone (as run in training: torch records its graph)
    torch_fwd_ms: float | None = None
    refcnn_best_ms: float | None = None  # the fastest repeat: less sensitive to other work on the machine
    torch_best_ms: float | None = None
    ratio_spread: tuple[float, float] | None = None  # quartiles of the repeats' side-by-side ratios
    threads: int = 1

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

    @property
    def workspace_ratio(self) -> float | None:
        """Extra memory over the full im2col matrix (convolutions only)."""
        if self.peak_mem_bytes is None or not self.im2col_bytes:
            return None
        return self.peak_mem_bytes / self.im2col_bytes

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
            "threads": self.threads,
            "ratio_q25": None if self.ratio_spread is None else self.ratio_spread[0],
            "ratio_q75": None if self.ratio_spread is None else self.ratio_spread[1],
            "kind": self.kind,
            "config": self.config,
            "flops": self.flops,
            "gflops": gflops,
            "torch_gflops": self.gflops(self.torch_ms),
            "peak_fraction": None if gflops is None or not peak_gflops else gflops / peak_gflops,
            "peak_mem_bytes": self.peak_mem_bytes,
            "input_bytes": self.input_bytes,
            "im2col_bytes": self.im2col_bytes,
            "workspace_im2col_ratio": self.workspace_ratio,
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
    """One target: ``value op target``; ``met`` is None when it could not be measured."""

    name: str
    value: float | None
    op: str  # "<=", ">=" or "<"
    target: float
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return {"<=": self.value <= self.target, ">=": self.value >= self.target, "<": self.value < self.target}[
            self.op
        ]

    @property
    def by(self) -> float | None:
        """How far off a missed target is, as a factor (value / target, or target / value
        for an at-least target); None when met or not measured."""
        if self.met is not False or self.value is None:
            return None
        return self.target / self.value if self.op == ">=" else self.value / self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "value": self.value, "op": self.op, "target": self.target,
            "met": self.met, "by": self.by, "note": self.note,
        }  # fmt: skip

    def line(self) -> str:
        verdict = {True: "meets ", False: "misses", None: "n/a   "}[self.met]
        value = "not measured" if self.value is None else f"{self.value:.3g}"
        off = "" if self.by is None else f", off by {self.by:.2f}x"
        note = f"  ({self.note})" if self.note else ""
        return f"  {verdict}  {self.name}: {value} (target {self.op} {self.target:g}{off}){note}"


def summarize(results: Sequence[Result], notebook: Mapping[str, Any] | None, mygrad: str | None) -> list[Check]:
    """The targets, checked on the one-thread results: geomean and worst ratio over the
    conv + pool cases, the LeNet-5 training step's ratio, each conv's extra memory against
    its im2col matrix, refcnn faster than mygrad on every conv/pool case (``mygrad``: its
    version, or None if it did not import), the notebook experiment's epoch speed-up."""
    ops = [r for r in results if r.kind in OPS]
    checks = []
    if ops:
        worst = max(ops, key=lambda r: r.ratio)
        checks.append(Check(f"geomean refcnn/torch over the {len(ops)} conv2d + max_pool2d cases",
                            geomean(r.ratio for r in ops), "<=", TARGETS["geomean_ratio"]))  # fmt: skip
        checks.append(Check("worst single case refcnn/torch", worst.ratio, "<=", TARGETS["max_ratio"], worst.name))
    for r in results:
        if r.kind == "train_step" and r.config.get("model") == "lenet5":
            checks.append(Check(f"{r.name} refcnn/torch", r.ratio, "<=", TARGETS["lenet5_step_ratio"]))
    mem = [r for r in ops if r.workspace_ratio is not None]
    if mem:
        worst_mem = max(mem, key=lambda r: r.workspace_ratio or 0.0)
        checks.append(Check("conv extra memory over its im2col matrix (worst case)", worst_mem.workspace_ratio,
                            "<=", TARGETS["workspace_im2col"], worst_mem.name))  # fmt: skip
    if ops:
        timed = [r for r in ops if r.mygrad_ms is not None]
        name = "faster than mygrad on every conv2d/max_pool2d case (worst refcnn/mygrad)"
        if mygrad is None or not timed:
            checks.append(Check(name, None, "<", 1.0, "mygrad does not import here: pip install mygrad"))
        else:
            worst_mg = max(timed, key=lambda r: r.refcnn_ms / (r.mygrad_ms or 1.0))
            checks.append(Check(name, worst_mg.refcnn_ms / (worst_mg.mygrad_ms or 1.0), "<", 1.0,
                                f"mygrad {mygrad}; worst: {worst_mg.name}"))  # fmt: skip
    if notebook is not None:
        checks.append(Check(f"notebook experiment ({notebook['epoch_images']} images, batch {notebook['batch']}, "
                            "one epoch): speed-up over the notebook's loops", notebook["epoch_speedup"], ">=",
                            TARGETS["notebook_epoch_speedup"]))  # fmt: skip
    return checks


def best_geomean(results: Sequence[Result]) -> float | None:
    """The geomean of the ratios of the fastest repeats (None if any is missing)."""
    ratios = [r.best_ratio for r in results]
    if not ratios or any(v is None for v in ratios):
        return None
    return geomean(v for v in ratios if v is not None)


def report(
    results: Sequence[Result], checks: Sequence[Check], versions: Mapping[str, Any], machine: Mapping[str, Any],
    notebook: Mapping[str, Any] | None = None, denormals: Mapping[str, Any] | None = None,
    more_threads: Mapping[int, Sequence[Result]] | None = None, epoch: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The JSON document: ``results`` (the one-thread table the targets are checked on, each
    entry's keys ``name, shape, dtype, refcnn_ms, torch_ms, ratio`` first), ``versions``,
    ``machine``, ``summary``, ``results_by_threads`` (the other tables, by thread count) and
    the ``notebook``, ``epoch`` and ``denormals`` sections."""
    peak = machine.get("matmul_peak_gflops")
    ops = [r for r in results if r.kind in OPS]
    summary: dict[str, Any] = {
        "checks": [c.to_json() for c in checks],
        "all_met": all(c.met is True for c in checks),
        "geomean_ratio": geomean(r.ratio for r in ops) if ops else None,
        "max_ratio": max(r.ratio for r in ops) if ops else None,
        "train_step_ratios": {r.name: r.ratio for r in results if r.kind == "train_step"},
        "geomean_best_ratio": best_geomean(ops),
        "notebook_speedup": None if notebook is None else notebook.get("epoch_speedup"),
        "targets": dict(TARGETS),
    }
    return {
        "results": [r.to_json(peak) for r in results],
        "versions": dict(versions),
        "machine": dict(machine),
        "summary": summary,
        "results_by_threads": {str(n): [r.to_json(peak) for r in rs] for n, rs in (more_threads or {}).items()},
        "notebook": None if notebook is None else dict(notebook),
        "epoch": None if epoch is None else dict(epoch),
        "denormals": None if denormals is None else dict(denormals),
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_table(results: Sequence[Result], peak_gflops: float | None) -> str:
    """The results as an aligned text table."""
    head = ("case", "refcnn ms", "torch ms", "ratio", "q25-q75", "fwd|bwd", "GFLOP/s", "% peak", "torch GF/s",
            "mygrad ms", "extra mem", "/im2col", "input")  # fmt: skip
    rows = [head]
    for r in results:
        d = r.to_json(peak_gflops)
        frac = d["peak_fraction"]
        rows.append((
            r.name, f"{r.refcnn_ms:.3f}", f"{r.torch_ms:.3f}", f"{r.ratio:.2f}",
            "-" if r.ratio_spread is None else f"{r.ratio_spread[0]:.2f}-{r.ratio_spread[1]:.2f}",
            "-" if r.fwd_ratio is None else f"{r.fwd_ratio:.2f}|{fmt(r.bwd_ratio, '.2f')}", fmt(d["gflops"], ".1f"),
            fmt(None if frac is None else 100 * frac, ".1f"), fmt(d["torch_gflops"], ".1f"),
            fmt(r.mygrad_ms, ".3f"), _bytes(r.peak_mem_bytes), fmt(r.workspace_ratio, ".2f"), _bytes(r.input_bytes),
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
