"""Long float32 sums in the kernels: pairwise or in float64, never one running float32 sum.

A running float32 sum of n terms drifts by up to n*eps of the total: 1e5 terms of 0.1 come
out about 1e-4 off (ONNX's operator vectors found 1.9e-5 on a 6,480-row loss that way).
NumPy's sum along a contiguous axis is pairwise (about log2(n) + 16 roundings), a float64
accumulator is exact to float32's precision. Each test feeds one kernel a long sum of
values that do not round exactly in float32 and compares the float32 result with the sum
done in float64 under ``ROUNDINGS`` roundings: far above what pairwise or float64 costs,
far below what a running sum of thousands of terms costs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from refcnn import kernels

F32 = np.float32
ROUNDINGS = 64  # pairwise over 1e6 terms: <= 16 + 20 roundings; float64 then one rounding: 1


def _assert_sum_close(got: np.ndarray, exact: np.ndarray, magnitude: np.ndarray, what: str) -> None:
    eps = float(np.finfo(F32).eps) / 2
    allowed = ROUNDINGS * eps * np.abs(np.asarray(magnitude, np.float64))
    err = np.abs(np.asarray(got, np.float64) - np.asarray(exact, np.float64))
    at = np.unravel_index(int(np.argmax(err - allowed)), err.shape) if err.ndim else ()
    assert np.all(err <= allowed), (
        f"{what}: float32 result {np.asarray(got)[at]!r} is {float(err[at]):.3g} from the float64 sum "
        f"{np.asarray(exact)[at]!r}, more than {ROUNDINGS} roundings ({float(np.asarray(allowed)[at]):.3g}): "
        "a running float32 sum"
    )


def _tenth(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, 0.1, dtype=F32)


def _exact_tenths(count: int) -> float:
    return count * float(F32(0.1))


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_conv2d_weight_and_bias_gradients_sum_the_plane(impl: str) -> None:
    # gw and gb of a 1x1 kernel sum N*H*W products: 1 x 240 x 250 (reference) or 4 x 500 x 510
    shape = (1, 1, 240, 250) if impl == "reference" else (4, 1, 500, 510)
    x = _tenth(shape)
    w = np.ones((1, 1, 1, 1), F32)
    k = kernels.get("conv2d", impl)
    _, ctx = k.forward(x, w, np.zeros(1, F32), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)
    _, gw, gb = k.backward(_tenth(shape), ctx)
    terms = math.prod(shape)
    exact_gw = terms * float(F32(0.1)) ** 2
    _assert_sum_close(gw.reshape(()), np.asarray(exact_gw), np.asarray(exact_gw), f"conv2d {impl} grad_weight")
    _assert_sum_close(gb.reshape(()), np.asarray(_exact_tenths(terms)), np.asarray(_exact_tenths(terms)),
                      f"conv2d {impl} grad_bias")  # fmt: skip


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_conv_transpose2d_bias_gradient_sums_a_long_batch(impl: str) -> None:
    # gb sums over (N, H, W): N outermost, where NumPy's sum over several axes runs row by row
    shape = (3000, 1, 4, 5) if impl == "reference" else (20000, 1, 5, 6)
    k = kernels.get("conv_transpose2d", impl)
    _, ctx = k.forward(_tenth(shape), np.ones((1, 1, 1, 1), F32), np.zeros(1, F32), stride=(1, 1),
                       padding=(0, 0), output_padding=(0, 0), dilation=(1, 1), groups=1)  # fmt: skip
    _, _, gb = k.backward(_tenth(shape), ctx)
    exact = _exact_tenths(math.prod(shape))
    _assert_sum_close(gb.reshape(()), np.asarray(exact), np.asarray(exact), f"conv_transpose2d {impl} grad_bias")


@pytest.mark.parametrize("op", ["avg_pool2d", "adaptive_avg_pool2d"])
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_average_pools_sum_a_large_window(op: str, impl: str) -> None:
    H, W = 300, 280  # one window (or bin) of 84,000 values
    x = _tenth((1, 1, H, W))
    k = kernels.get(op, impl)
    if op == "avg_pool2d":
        cfg = {"kernel_size": (H, W), "stride": (1, 1), "padding": (0, 0), "ceil_mode": False,
               "count_include_pad": True, "divisor_override": 1}  # fmt: skip
    else:
        cfg = {"output_size": (1, 1)}
    y, _ = k.forward(x, **cfg)
    exact = _exact_tenths(H * W) / (1 if op == "avg_pool2d" else H * W)
    _assert_sum_close(y.reshape(()), np.asarray(exact), np.asarray(exact), f"{op} {impl} forward")


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_batch_norm_statistics_and_parameter_gradients_over_a_long_batch(impl: str) -> None:
    # x (N, 2): channel c is a strided column, where NumPy's sum of a view runs one by one
    N = 200_000
    x = np.where(np.arange(N)[:, None] % 2 == 0, F32(0.1), F32(0.3)) * np.ones((1, 2), F32)
    running_mean, running_var = np.zeros(2, F32), np.ones(2, F32)
    k = kernels.get("batch_norm", impl)
    _, ctx = k.forward(x, np.ones(2, F32), np.zeros(2, F32), running_mean, running_var,
                       training=True, momentum=1.0, eps=1e-5)  # fmt: skip
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0)
    _assert_sum_close(running_mean, mean, mean, f"batch_norm {impl} batch mean (momentum 1)")
    var = ((x64 - mean) ** 2).sum(axis=0) / (N - 1)
    _assert_sum_close(running_var, var, var, f"batch_norm {impl} unbiased variance (momentum 1)")
    g = _tenth(x.shape)
    _, _, gb = k.backward(g, ctx)
    exact = np.full(2, _exact_tenths(N))
    _assert_sum_close(gb, exact, exact, f"batch_norm {impl} grad_bias")


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim", [((200_000, 2), 0), ((2, 100_000, 2), 1), ((2, 200_000), 1)],
                         ids=["dim0-of-2d", "middle-dim", "last-dim"])  # fmt: skip
def test_softmax_sums_a_long_dim_along_any_axis(op: str, shape: tuple[int, ...], dim: int) -> None:
    # exp(x - max) is 1 and 0.1 in turn: their sum is not exact in float32
    n = shape[dim]
    index = np.arange(n).reshape([n if a == dim else 1 for a in range(len(shape))])
    x = np.where(index % 2 == 0, 0.0, np.log(0.1)) * np.ones(shape)
    y, ctx = kernels.get(op, "reference").forward(x.astype(F32), dim=dim)
    s = np.exp(x).sum(axis=dim, keepdims=True)
    if op == "softmax":
        exact = np.exp(x) / s
        _assert_sum_close(y, exact, exact, f"{op} forward along dim {dim} of {shape}")
    else:
        exact = x - np.log(s)
        _assert_sum_close(y, exact, np.abs(x) + np.log(s) + 1, f"{op} forward along dim {dim} of {shape}")
    # backward: sum_j gy_j (log_softmax) or sum_j gy_j y_j (softmax) along the same dim
    g = np.full(shape, 0.1)
    (gx,) = kernels.get(op, "reference").backward(g.astype(F32), ctx)
    p = np.exp(x) / s
    if op == "softmax":
        exact = p * (g - (g * p).sum(axis=dim, keepdims=True))
        magnitude = p * (g + (g * p).sum(axis=dim, keepdims=True))
    else:
        exact = g - p * g.sum(axis=dim, keepdims=True)
        magnitude = g + p * g.sum(axis=dim, keepdims=True)
    _assert_sum_close(gx, exact, magnitude, f"{op} backward along dim {dim} of {shape}")


@pytest.mark.parametrize(
    "op, impl",
    [(op, impl) for op in ("cross_entropy", "nll_loss") for impl in kernels.available(op)],
    ids=lambda v: str(v),
)
def test_class_losses_over_6480_rows(op: str, impl: str) -> None:
    # ONNX's case: a mean over 6,480 rows with class weights (the divisor is a sum too)
    rng = np.random.default_rng(0)
    M, C = 6480, 3
    x = np.full((M, C), np.log(0.1), F32) if op == "nll_loss" else rng.standard_normal((M, C)).astype(F32)
    t = rng.integers(0, C, M)
    w = np.array([0.1, 0.7, 0.3], F32)
    cfg = {"ignore_index": -100, "reduction": "mean"}
    if op == "cross_entropy":
        cfg["label_smoothing"] = 0.0
    y, _ = kernels.get(op, impl).forward(x, t, w, **cfg)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    lsm = x64 if op == "nll_loss" else x64 - np.log(np.exp(x64).sum(axis=1, keepdims=True))
    per = -w64[t] * lsm[np.arange(M), t]
    exact = per.sum() / w64[t].sum()
    _assert_sum_close(y, np.asarray(exact), np.abs(per).sum() / w64[t].sum(), f"{op} {impl} mean of {M} rows")


@pytest.mark.parametrize("op", ["mse_loss", "l1_loss"])
def test_pointwise_losses_over_a_million_elements(op: str) -> None:
    x = _tenth((1_000_000,))
    y, _ = kernels.get(op, "reference").forward(x, np.zeros_like(x), reduction="sum")
    per = float(F32(0.1)) ** 2 if op == "mse_loss" else float(F32(0.1))
    exact = np.asarray(1_000_000 * per)
    _assert_sum_close(y, exact, exact, f"{op} sum of 1e6 elements")


@pytest.mark.parametrize("rows", [1_000_000, 1_000_003], ids=["blocks", "blocks-and-tail"])
def test_linear_fast_weight_gradient_sums_a_million_rows(rows: int) -> None:
    # gw = gy.T @ x sums M rows: one BLAS product adds them in a running float32 sum
    x = _tenth((rows, 2))
    k = kernels.get("linear", "fast")
    _, ctx = k.forward(x, np.ones((3, 2), F32), np.zeros(3, F32))
    _, gw, gb = k.backward(_tenth((rows, 3)), ctx)
    exact = np.full((3, 2), rows * float(F32(0.1)) ** 2)
    _assert_sum_close(gw, exact, exact, f"linear fast grad_weight over {rows} rows")
    exact_b = np.full(3, _exact_tenths(rows))
    _assert_sum_close(gb, exact_b, exact_b, f"linear fast grad_bias over {rows} rows")
