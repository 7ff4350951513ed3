"""The cases the benchmark times: their shapes, flop counts and how each is run on each side.

A conv case is conv2d forward + backward (input, weight and bias gradients) on float32
arrays; a pool case is max_pool2d forward + backward. refcnn runs through its kernel
registry (the default implementation, ``fast``), PyTorch runs ``torch.nn.functional`` +
``torch.autograd.grad``, mygrad (when it imports) its ``conv_nd`` / ``max_pool``: the same
work on the same arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import kernels, nn
from .._grad_mode import no_grad
from .report import Result
from .timing import Options, best_ms, interleaved, median_ms, peak_memory, spread

__all__ = [
    "ConvCase", "PoolCase", "CONV_CASES", "POOL_CASES", "conv2d_flops", "linear_flops", "model_forward_flops",
    "conv_case", "pool_case",
]  # fmt: skip


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
    def output_hw(self) -> tuple[int, int]:
        return (
            _out(self.H, self.kernel, self.stride, self.padding),
            _out(self.W, self.kernel, self.stride, self.padding),
        )

    @property
    def config(self) -> dict[str, Any]:
        k, s, p = (self.kernel,) * 2, (self.stride,) * 2, (self.padding,) * 2
        return {"C_out": self.C_out, "kernel_size": list(k), "stride": list(s), "padding": list(p)}

    def flops(self) -> int:
        """Forward + backward: 3x the forward's flops."""
        k, s, p = (self.kernel,) * 2, (self.stride,) * 2, (self.padding,) * 2
        return 3 * conv2d_flops(self.N, self.C_in, self.H, self.W, self.C_out, k, s, p)

    def im2col_bytes(self, itemsize: int = 4) -> int:
        """The full im2col matrix of the batch: (C_in*kH*kW) x (N*H_out*W_out) values."""
        return self.C_in * self.kernel**2 * self.N * math.prod(self.output_hw) * itemsize


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
    found by running it layer by layer (a weight of 4 dims is a conv, of 2 a linear), under
    no_grad: a forward that keeps its contexts would make the model's next backward refuse."""
    total = 0
    with no_grad():
        for layer in model:
            y = layer(x)
            weight = getattr(layer, "weight", None)
            if weight is not None and weight.data.ndim == 4:
                total += 2 * y.size * math.prod(weight.data.shape[1:])
            elif weight is not None and weight.data.ndim == 2:
                total += 2 * y.size * weight.data.shape[1]
            x = y
    return total


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


def conv_case(torch: Any, mg: Any, case: ConvCase, opts: Options) -> Result:
    """Time one conv case on every side, interleaved, and measure refcnn's workspace: the
    tracemalloc peak of one cold forward + backward minus the arrays it returns."""
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    bound = 1.0 / math.sqrt(case.C_in * case.kernel**2)
    x = rng.standard_normal(case.input_shape, dtype=np.float32)
    w = rng.uniform(-bound, bound, (case.C_out, case.C_in, case.kernel, case.kernel)).astype(np.float32)
    b = rng.uniform(-bound, bound, case.C_out).astype(np.float32)
    s, p = (case.stride,) * 2, (case.padding,) * 2
    gy = rng.standard_normal((case.N, case.C_out, *case.output_hw), dtype=np.float32)
    conv = kernels.get("conv2d")

    def refcnn_forward() -> Any:
        return conv.forward(x, w, b, stride=s, padding=p, dilation=(1, 1), groups=1)

    def run_refcnn() -> tuple[Any, ...]:
        y, ctx = refcnn_forward()
        return (y, *conv.backward(gy, ctx))

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
    outputs = sum(a.nbytes for a in run_refcnn() if a is not None)
    return Result(
        case.name, "conv2d", list(case.input_shape), median_ms(times["refcnn"]), median_ms(times["torch"]),
        config=case.config, flops=case.flops(), mygrad_ms=median_ms(times["mygrad"]) if "mygrad" in times else None,
        peak_mem_bytes=max(0, peak_memory(run_refcnn) - outputs), input_bytes=x.nbytes,
        im2col_bytes=case.im2col_bytes(), refcnn_fwd_ms=median_ms(times["refcnn_fwd"]),
        torch_fwd_ms=median_ms(times["torch_fwd"]), refcnn_best_ms=best_ms(times["refcnn"]),
        torch_best_ms=best_ms(times["torch"]), ratio_spread=spread(times["refcnn"], times["torch"]),
    )  # fmt: skip


def pool_case(torch: Any, mg: Any, case: PoolCase, opts: Options) -> Result:
    """Time one max_pool2d case on every side, interleaved."""
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
        return pool.forward(x, kernel_size=k, stride=s, padding=p, dilation=(1, 1), ceil_mode=False)

    def run_refcnn() -> tuple[Any, ...]:
        y, ctx = refcnn_forward()
        return (y, *pool.backward(gy, ctx))

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
    outputs = sum(a.nbytes for a in run_refcnn())
    return Result(
        case.name, "max_pool2d", list(case.input_shape), median_ms(times["refcnn"]), median_ms(times["torch"]),
        config=case.config, mygrad_ms=median_ms(times["mygrad"]) if "mygrad" in times else None,
        peak_mem_bytes=max(0, peak_memory(run_refcnn) - outputs), input_bytes=x.nbytes,
        refcnn_fwd_ms=median_ms(times["refcnn_fwd"]), torch_fwd_ms=median_ms(times["torch_fwd"]),
        refcnn_best_ms=best_ms(times["refcnn"]), torch_best_ms=best_ms(times["torch"]),
        ratio_spread=spread(times["refcnn"], times["torch"]),
    )  # fmt: skip
