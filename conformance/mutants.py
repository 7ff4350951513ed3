"""Deliberately broken kernels: each is a real implementation made wrong in one corner
only. The suite proves it can fail by catching every one of them with the ci profile's own
cases (``run_all``; conformance/test_mutants.py asserts the same under pytest).

A mutant is registered as implementation ``mutant_<name>`` of its op for the duration of
its run, checked exactly as a contributor's kernel would be, then removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from refcnn import kernels


@dataclass(frozen=True)
class Mutant:
    name: str
    op: str
    description: str
    make: Callable[[kernels.Kernel], tuple[Callable[..., Any], Callable[..., Any]]]  # base -> (forward, backward)
    base: str = "reference"

    @property
    def impl(self) -> str:
        return f"mutant_{self.name}"


def _fb(base: kernels.Kernel) -> tuple[Callable[..., Any], Callable[..., Any]]:
    return base.forward_impl, base.backward_impl


# ---- conv2d ---------------------------------------------------------------------------------
def conv_stride_edge(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, weight: Any, bias: Any, **cfg: Any) -> Any:
        y, ctx = fwd(x, weight, bias, **cfg)
        if cfg["stride"][0] > weight.shape[2] and y.shape[2] > 1:
            y = y.copy()
            y[:, :, -1] = 0  # the last output row lost when the stride skips past the kernel
        return y, ctx

    return forward, bwd


def conv_groups(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, weight: Any, bias: Any, **cfg: Any) -> Any:
        G = cfg["groups"]
        if G > 1:  # every group convolved with the next group's filters
            weight = np.roll(weight, weight.shape[0] // G, axis=0)
        return fwd(x, weight, bias, **cfg)

    return forward, bwd


def conv_batch_of_one(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def backward(gy: Any, ctx: Any) -> Any:
        gx, gw, gb = bwd(gy, ctx)
        if gy.shape[0] == 1:
            gw = gw * gw.dtype.type(0.5)  # an off-by-one batch average that only N=1 shows
        return gx, gw, gb

    return fwd, backward


def conv_bias_grad_mean(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def backward(gy: Any, ctx: Any) -> Any:
        gx, gw, gb = bwd(gy, ctx)
        if gb is not None:
            gb = gb / gy.dtype.type(gy.shape[0] * gy.shape[2] * gy.shape[3])  # averaged, not summed
        return gx, gw, gb

    return fwd, backward


# ---- linear ------------------------------------------------------------------------------------
def linear_f64_through_f32(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, weight: Any, bias: Any) -> Any:
        if x.dtype == np.float64:  # float64 computed through float32
            y, ctx = fwd(
                x.astype(np.float32), weight.astype(np.float32), None if bias is None else bias.astype(np.float32)
            )
            _, ctx = fwd(x, weight, bias)
            return y.astype(np.float64), ctx
        return fwd(x, weight, bias)

    return forward, bwd


def linear_square_transposed(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def backward(gy: Any, ctx: Any) -> Any:
        gx, gw, gb = bwd(gy, ctx)
        if gw.shape[0] == gw.shape[1]:
            gw = np.ascontiguousarray(gw.T)  # only a square weight hides the swapped axes
        return gx, gw, gb

    return fwd, backward


# ---- pooling -------------------------------------------------------------------------------------
def maxpool_zero_padding(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, **cfg: Any) -> Any:
        y, ctx = fwd(x, **cfg)
        (pH, pW), ceil = cfg["padding"], cfg["ceil_mode"]
        if (pH or pW) and not ceil:  # padding with zeros instead of -inf
            xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))
            y, _ = fwd(xp, **{**cfg, "padding": (0, 0)})
        return y, ctx

    return forward, bwd


def avgpool_ceil_divisor(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, **cfg: Any) -> Any:
        y, ctx = fwd(x, **cfg)
        if cfg["ceil_mode"] and cfg["count_include_pad"] and cfg["divisor_override"] is None:
            k = cfg["kernel_size"]  # a ceil_mode window past the padded input divided by the full kernel area
            y, _ = fwd(x, **{**cfg, "divisor_override": int(k[0] * k[1])})
        return y, ctx

    return forward, bwd


def adaptive_floor_bins(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, *, output_size: Any) -> Any:
        y, ctx = fwd(x, output_size=output_size)
        H, W = x.shape[2:]
        Ho, Wo = output_size
        if Ho and Wo and (H % Ho or W % Wo):  # bins end at floor((i+1)*H/Ho) instead of ceil
            y = y.copy()
            for i in range(Ho):
                h0, h1 = (i * H) // Ho, max((i + 1) * H // Ho, (i * H) // Ho + 1)
                for j in range(Wo):
                    w0, w1 = (j * W) // Wo, max((j + 1) * W // Wo, (j * W) // Wo + 1)
                    y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return y, ctx

    return forward, bwd


# ---- activations ---------------------------------------------------------------------------------
def relu_grad_at_zero(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any) -> Any:
        y, ctx = fwd(x)
        return y, (ctx, x)

    def backward(gy: Any, ctx: Any) -> Any:
        inner, x = ctx
        (gx,) = bwd(gy, inner)
        return (np.where(x == 0, gy, gx).astype(gy.dtype),)  # relu'(0) = 1 instead of PyTorch's 0

    return forward, backward


def softmax_no_shift(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, *, dim: int) -> Any:
        y, ctx = fwd(x, dim=dim)
        if x.ndim:
            with np.errstate(over="ignore", invalid="ignore"):
                e = np.exp(x)  # no max subtracted: overflows for logits of 1e4
                y = (e / e.sum(axis=dim, keepdims=True)).astype(x.dtype)
        return y, ctx

    return forward, bwd


def log_softmax_negative_dim(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, *, dim: int) -> Any:
        if dim < 0 and x.ndim > 1:
            dim = dim - 1 if dim - 1 >= -x.ndim else dim  # a negative dim wrapped one too far
        return fwd(x, dim=dim)

    return forward, bwd


# ---- losses, normalisation, dropout -------------------------------------------------------------
def ce_ignore_index_in_mean(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(logits: Any, target: Any, weight: Any, **cfg: Any) -> Any:
        y, ctx = fwd(logits, target, weight, **cfg)
        if cfg["reduction"] == "mean" and target.shape != logits.shape and target.size:
            ignored = int(np.sum(target == cfg["ignore_index"]))
            if 0 < ignored < target.size:  # ignored samples counted in the mean's divisor
                y = (y * logits.dtype.type((target.size - ignored) / target.size)).astype(logits.dtype)
        return y, ctx

    return forward, bwd


def mse_sum_as_mean(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(input: Any, target: Any, *, reduction: str) -> Any:
        y, ctx = fwd(input, target, reduction=reduction)
        if reduction == "sum":
            y, _ = fwd(input, target, reduction="mean")
        return y, ctx

    return forward, bwd


def bn_biased_running_var(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any, **cfg: Any) -> Any:
        old = None if running_var is None else running_var.copy()
        y, ctx = fwd(x, weight, bias, running_mean, running_var, **cfg)
        if cfg["training"] and running_var is not None:
            R = x.size // x.shape[1]
            m = cfg["momentum"]
            new_part = running_var - old * (1 - m)  # m * unbiased variance
            running_var[...] = old * (1 - m) + new_part * (R - 1) / R  # the biased variance instead
        return y, ctx

    return forward, bwd


def dropout_scale(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, **cfg: Any) -> Any:
        y, ctx = fwd(x, **cfg)
        p = cfg["p"]
        if cfg["training"] and 0 < p < 1:
            y = (y * x.dtype.type((1 - p) ** 2)).astype(x.dtype)  # kept values scaled by (1-p), not 1/(1-p)
        return y, ctx

    return forward, bwd


# ---- binary_cross_entropy_with_logits -------------------------------------------------------
def bcel_cancelling(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, target: Any, weight: Any, pos_weight: Any, *, reduction: str) -> Any:
        _, ctx = fwd(x, target, weight, pos_weight, reduction=reduction)
        p = 1 if pos_weight is None else pos_weight
        # PyTorch's unsplit formula in the input's dtype: (1 - t) x and the log term cancel for x << 0
        per = (1 - target) * x + (1 + (p - 1) * target) * (np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x))))
        if weight is not None:
            per = per * weight
        if reduction == "none":
            return per, ctx
        return (per.sum() if reduction == "sum" else per.mean()).astype(x.dtype), ctx

    return forward, bwd


# ---- the caller's arrays, memory layouts, hazards, chunked batches --------------------------
def relu_memory_order(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any) -> Any:
        _, ctx = fwd(x)
        # the values read in memory order (fast for any layout), laid back out in C order
        return np.maximum(x.ravel(order="K"), 0).reshape(x.shape).astype(x.dtype), ctx

    return forward, bwd


def leaky_relu_overwrites_input(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, **cfg: Any) -> Any:
        y, ctx = fwd(x, **cfg)
        if x.size:
            np.copyto(x, y)  # the result stored over the caller's input, to save memory
        return y, ctx

    return forward, bwd


def maxpool_skips_nan(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, **cfg: Any) -> Any:
        return fwd(np.where(np.isnan(x), -np.inf, x).astype(x.dtype), **cfg)  # nan never wins (np.fmax)

    return forward, bwd


def dropout_zeroes_dropped(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, **cfg: Any) -> Any:
        y, ctx = fwd(x, **cfg)
        if ctx.noise is None:
            return y, ctx
        # a dropped element written as 0 rather than multiplied by 0: a dropped nan or inf gives 0, not nan
        return np.where(np.broadcast_to(ctx.noise, x.shape) == 0, 0, y).astype(x.dtype), ctx

    return forward, bwd


def linear_chunk_drops_tail(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def backward(gy: Any, ctx: Any, **kw: Any) -> Any:
        gx, gw, gb = bwd(gy, ctx, **kw)
        if gy.ndim >= 2 and gy.shape[0] > 16:  # chunks of 16 items: the last partial one not added to gw
            kept = np.array(gy, copy=True)
            kept[16 * (gy.shape[0] // 16) :] = 0
            _, gw, _ = bwd(kept, ctx, **kw)
        return gx, gw, gb

    return fwd, backward


def conv_chunk_drops_tail(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def backward(gy: Any, ctx: Any, **kw: Any) -> Any:
        gx, gw, gb = bwd(gy, ctx, **kw)
        if gy.shape[0] > 16:  # chunks of 16 images: the last partial one not added to gw
            kept = np.array(gy, copy=True)
            kept[16 * (gy.shape[0] // 16) :] = 0
            _, gw, _ = bwd(kept, ctx, **kw)
        return gx, gw, gb

    return fwd, backward


def ce_plain_path_overflow(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(logits: Any, target: Any, weight: Any, **cfg: Any) -> Any:
        y, ctx = fwd(logits, target, weight, **cfg)
        plain = weight is None and cfg["reduction"] == "mean" and not cfg["label_smoothing"]
        if plain and logits.ndim == 2 and target.ndim == 1 and target.dtype.kind == "i" and target.size:
            keep = target != cfg["ignore_index"]
            if keep.any():
                with np.errstate(over="ignore", invalid="ignore"):  # log(sum(exp)) with no max subtracted
                    lse = np.log(np.exp(logits[keep]).sum(axis=1))
                    y = np.asarray(np.mean(lse - logits[keep, target[keep]]), dtype=logits.dtype)
        return y, ctx

    return forward, bwd


# ---- caught by the metamorphic relations (conformance/relations.py) ----------------------------
def _half_max_shift(x: Any, axis: int) -> Any:
    """x minus its row max taken in float16 (a bandwidth saving): inf once a row passes 65504."""
    with np.errstate(over="ignore", invalid="ignore"):
        m = x.astype(np.float16).max(axis=axis, keepdims=True).astype(x.dtype)
        return np.asarray(x - m, dtype=x.dtype)


def softmax_half_max(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, *, dim: int) -> Any:
        return fwd(_half_max_shift(x, dim) if x.ndim else x, dim=dim)

    return forward, bwd


def ce_half_max(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(logits: Any, target: Any, weight: Any, **cfg: Any) -> Any:
        return fwd(_half_max_shift(logits, 0 if logits.ndim == 1 else 1), target, weight, **cfg)

    return forward, bwd


def relu_flush_small(base: kernels.Kernel) -> Any:
    def forward(x: Any) -> Any:
        keep = x > x.dtype.type(1e-4)  # activations below 1e-4 flushed to zero: not homogeneous
        return np.where(keep, x, 0).astype(x.dtype), keep

    def backward(gy: Any, keep: Any) -> Any:
        return (np.where(keep, gy, 0).astype(gy.dtype),)

    return forward, backward


def conv_row_tiles(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, weight: Any, bias: Any, **cfg: Any) -> Any:
        y, ctx = fwd(x, weight, bias, **cfg)
        if y.shape[2] > 5:  # output rows in tiles of 4; later tiles read one stride too low
            y = y.copy()
            y[:, :, 4:-1] = y[:, :, 5:]
        return y, ctx

    return forward, bwd


# ---- wrong only where a hazard value meets one code path (conformance/hazards.py) --------------
def ce_weighted_drops_nan(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(logits: Any, target: Any, weight: Any, **cfg: Any) -> Any:
        y, ctx = fwd(logits, target, weight, **cfg)
        if weight is not None and cfg["reduction"] in ("mean", "sum") and target.dtype.kind == "i":
            rows, _ = fwd(logits, target, weight, **{**cfg, "reduction": "none"})
            keep = target != cfg["ignore_index"]
            total = np.nansum(rows)  # the weighted sum with np.nansum: a nan logit's row dropped
            if cfg["reduction"] == "mean":
                total = total / np.sum(weight[np.where(keep, target, 0)] * keep)
            y = np.asarray(total, dtype=logits.dtype)
        return y, ctx

    return forward, bwd


def avgpool_padded_integral(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)

    def forward(x: Any, **cfg: Any) -> Any:
        y, ctx = fwd(x, **cfg)
        (pH, pW), (kH, kW), (sH, sW) = cfg["padding"], cfg["kernel_size"], cfg["stride"]
        if not (pH or pW) or not y.size:
            return y, ctx
        # the padded path's window sums from an integral image (prefix sums): exact enough for
        # finite values, but past an inf the differences are inf - inf = nan
        with np.errstate(invalid="ignore", over="ignore"):
            xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pH, pH), (pW, pW)))
            integral = np.pad(xp.cumsum(axis=2).cumsum(axis=3), ((0, 0), (0, 0), (1, 0), (1, 0)))
            r0 = np.arange(y.shape[2]) * sH
            c0 = np.arange(y.shape[3]) * sW
            r1 = np.minimum(r0 + kH, xp.shape[2])[:, None]
            c1 = np.minimum(c0 + kW, xp.shape[3])[None, :]
            r0, c0 = r0[:, None], c0[None, :]
            sums = integral[..., r1, c1] - integral[..., r0, c1] - integral[..., r1, c0] + integral[..., r0, c0]
        y = np.where(np.isfinite(sums), y, sums).astype(x.dtype)  # its rounding aside: only nan and inf differ
        return y, ctx

    return forward, bwd


MUTANTS = [
    Mutant("conv_stride_edge", "conv2d", "last output row zeroed when the stride exceeds the kernel", conv_stride_edge),
    Mutant("conv_groups", "conv2d", "groups > 1 use the next group's filters", conv_groups),
    Mutant("conv_batch_of_one", "conv2d", "grad_weight halved for a batch of 1", conv_batch_of_one),
    Mutant("conv_bias_grad_mean", "conv2d", "bias gradient averaged instead of summed", conv_bias_grad_mean),
    Mutant("linear_f64_through_f32", "linear", "float64 computed through float32", linear_f64_through_f32),
    Mutant("linear_square_transposed", "linear", "grad_weight transposed (visible only when square)", linear_square_transposed),
    Mutant("maxpool_zero_padding", "max_pool2d", "padding is 0 instead of -inf (negative inputs with padding)", maxpool_zero_padding),
    Mutant("avgpool_ceil_divisor", "avg_pool2d", "ceil_mode window past the padded input divided by the full kernel", avgpool_ceil_divisor),
    Mutant("adaptive_floor_bins", "adaptive_avg_pool2d", "adaptive bins end at floor instead of ceil", adaptive_floor_bins),
    Mutant("relu_grad_at_zero", "relu", "relu'(0) = 1 instead of 0", relu_grad_at_zero),
    Mutant("softmax_no_shift", "softmax", "no max subtracted: overflow for logits of 1e4", softmax_no_shift),
    Mutant("log_softmax_negative_dim", "log_softmax", "a negative dim wrapped one axis too far", log_softmax_negative_dim),
    Mutant("ce_ignore_index_in_mean", "cross_entropy", "ignored samples counted in the mean's divisor", ce_ignore_index_in_mean),
    Mutant("mse_sum_as_mean", "mse_loss", "reduction='sum' returns the mean", mse_sum_as_mean),
    Mutant("bn_biased_running_var", "batch_norm", "running_var updated with the biased variance", bn_biased_running_var),
    Mutant("bcel_cancelling", "binary_cross_entropy_with_logits", "PyTorch's cancelling formula in float32 (x << 0)", bcel_cancelling),
    Mutant("dropout_scale", "dropout", "kept values scaled by (1-p) instead of 1/(1-p)", dropout_scale),
    Mutant("relu_memory_order", "relu", "input read in memory order (ravel order='K'): wrong for any non-C layout", relu_memory_order),
    Mutant("leaky_relu_overwrites_input", "leaky_relu", "the output written over the caller's input", leaky_relu_overwrites_input),
    Mutant("maxpool_skips_nan", "max_pool2d", "nan skipped (fmax) instead of propagated", maxpool_skips_nan),
    Mutant("linear_chunk_drops_tail", "linear", "grad_weight drops the last partial chunk of 16 batch items", linear_chunk_drops_tail),
    Mutant("ce_plain_path_overflow", "cross_entropy", "no max subtracted on the plain path (no weight, mean, no smoothing): 1e4 logits overflow", ce_plain_path_overflow),
    Mutant("softmax_half_max", "softmax", "row max taken in float16: logits past 65504 give inf - inf (shift_invariance)", softmax_half_max),
    Mutant("ce_half_max", "cross_entropy", "row max taken in float16: logits past 65504 give inf - inf (shift_invariance)", ce_half_max),
    Mutant("relu_flush_small", "relu", "activations below 1e-4 flushed to zero: not homogeneous (homogeneity)", relu_flush_small),
    Mutant("conv_row_tiles", "conv2d", "output rows past the first tile of 4 read one stride too low (translation)", conv_row_tiles),
    Mutant("conv_chunk_drops_tail", "conv2d", "fast grad_weight drops the last partial chunk of 16 images", conv_chunk_drops_tail, base="fast"),
    Mutant("ce_weighted_drops_nan", "cross_entropy", "the weighted, reduced path sums with np.nansum: a nan logit's row dropped", ce_weighted_drops_nan),
    Mutant("dropout_zeroes_dropped", "dropout", "dropped elements written as 0, not multiplied by 0: a dropped nan or inf gives 0, not nan", dropout_zeroes_dropped),
    Mutant("avgpool_padded_integral", "avg_pool2d", "the padded path sums windows from prefix sums: inf - inf turns windows past an inf into nan", avgpool_padded_integral),
]  # fmt: skip


def by_name(name: str) -> Mutant:
    for m in MUTANTS:
        if m.name == name:
            return m
    raise KeyError(f"no mutant named {name!r}")


def register(m: Mutant) -> None:
    base = kernels.get(m.op, m.base)
    forward, backward = m.make(base)
    kernels.register(m.op, m.impl, forward, backward)


def run_one(name: str, profile: str) -> dict[str, Any]:
    """Register the mutant, check its op with the profile's cases, unregister; report what caught it."""
    from .engine import run_task

    m = by_name(name)
    row: dict[str, Any] = {"name": m.name, "op": m.op, "description": m.description, "caught": False, "checks": []}
    if m.op not in kernels.ops() or m.base not in kernels.available(m.op):
        row["description"] += " (op not in the registry: not run)"
        return row
    register(m)
    try:
        for dtype in ("float32", "float64"):
            result = run_task(m.op, dtype, [m.impl], profile, 0, stop_on_failure=True, extend=False)
            failed = sorted({t.check for t in result.tallies if t.failed})
            if failed:
                row["caught"] = True
                row["checks"] = [f"{c} ({dtype})" for c in failed]
                break
        if not row["caught"]:
            _check_chains(m, profile, row)  # a bug only a chain of modules shows (ChainMutant)
    finally:
        kernels.unregister(m.op, m.impl)
    return row


def run_all(profile: str, jobs: int = 1, names: list[str] | None = None) -> list[dict[str, Any]]:
    names = [m.name for m in MUTANTS] if names is None else names
    if jobs <= 1:
        return [run_one(n, profile) for n in names]
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from .engine import worker_init

    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=worker_init, initargs=([],)) as pool:
        return list(pool.map(run_one, names, [profile] * len(names)))


# ---- kernels that are right one call at a time: only a chain of modules shows them ----------
@dataclass(frozen=True)
class ChainMutant(Mutant):
    """A mutant its op's own spec cannot catch (every single call is right): ``run_one`` also
    checks the chain specs named in ``chains`` (conformance/specs/chains.py) with it in force."""

    chains: tuple[str, ...] = ()


def _check_chains(m: Mutant, profile: str, row: dict[str, Any]) -> None:
    from .engine import run_task

    for spec in getattr(m, "chains", ()):
        for dtype in ("float32", "float64"):
            with kernels.use(**{m.op: m.impl}):  # what the modules of the chain call
                result = run_task(spec, dtype, ["default"], profile, 0, stop_on_failure=True, extend=False)
            failed = sorted({t.check for t in result.tallies if t.failed})
            if failed:
                row["caught"] = True
                row["checks"] = [f"{spec}: {c} ({dtype})" for c in failed]
                return


def tanh_output_in_workspace(base: kernels.Kernel) -> Any:
    fwd, bwd = _fb(base)
    workspace: dict[np.dtype, np.ndarray] = {}

    def forward(x: Any) -> Any:
        y, ctx = fwd(x)
        buf = workspace.get(y.dtype)
        if buf is None or buf.size < y.size:
            buf = workspace[y.dtype] = np.empty(max(y.size, 1), y.dtype)
        out = buf[: y.size].reshape(y.shape)  # handed back in a buffer the next call reuses (no allocation)
        out[...] = y
        return out, ctx

    return forward, bwd


MUTANTS.append(
    ChainMutant("tanh_output_in_workspace", "tanh", "output handed back in a buffer the next tanh call overwrites, "
                "while the next Linear keeps it for its backward", tanh_output_in_workspace,
                chains=("chain.linear_tanh_dropout_linear",))
)  # fmt: skip
