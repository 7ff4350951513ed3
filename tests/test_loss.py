"""Losses: hand-computed cases, cross_entropy fast and reference against a float64 reference
on random configurations, float64 finite differences for every loss under every reduction,
logits of magnitude 1e4, every validation error, and the modules' forward/backward contract.

Tolerances come from refcnn.testing only. For cross_entropy (not a plain sum of products)
the bound is derived in ``ce_bounds``.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refcnn import kernels, nn, testing

FLOATS = [np.float32, np.float64]
FLOAT_IDS = ["f32", "f64"]
REDUCTIONS = ["none", "mean", "sum"]


def ce(impl, *args, **config):
    return kernels.get("cross_entropy", impl).forward(*args, **config)


def run(op, impl, args, config, grad):
    """Forward then backward through the registry; ``grad`` is cast to the loss's dtype."""
    kernel = kernels.get(op, impl)
    loss, ctx = kernel.forward(*args, **config)
    (gx,) = kernel.backward(np.asarray(grad, dtype=loss.dtype), ctx)
    return loss, gx


def close(actual, expected, n, S, dtype, what):
    testing.assert_close(actual, expected, n, S, dtype, what)


# ---- hand-computed cases ----------------------------------------------------------------------
# Two rows, C = 3: row 0 = (1, 2, 3) with target 2, row 1 = (1, 1, 1) with target 0.
L0 = math.log(1 + math.exp(-1) + math.exp(-2))  # -log softmax((1, 2, 3))[2]
L1 = math.log(3)  # -log softmax((1, 1, 1))[0]
P0 = np.array([math.exp(-2), math.exp(-1), 1.0]) / (1 + math.exp(-1) + math.exp(-2))  # softmax of row 0
LOGITS = [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
def test_cross_entropy_by_hand(impl, dt):
    x, t = np.array(LOGITS, dt), np.array([2, 0])
    cfg = dict(ignore_index=-100, label_smoothing=0.0)
    n, S = 8, 4.0  # a handful of roundings on values of size ~ 3
    none, gx = run("cross_entropy", impl, (x, t, None), dict(cfg, reduction="none"), [1.0, 2.0])
    close(none, [L0, L1], n, S, dt, "none")
    close(gx, [P0 - [0, 0, 1], 2 * (np.full(3, 1 / 3) - [1, 0, 0])], n, S, dt, "none grad")
    mean, gx = run("cross_entropy", impl, (x, t, None), dict(cfg, reduction="mean"), 1.0)
    assert mean.shape == () and mean.dtype == dt
    close(mean, (L0 + L1) / 2, n, S, dt, "mean")
    close(gx, [(P0 - [0, 0, 1]) / 2, (np.full(3, 1 / 3) - [1, 0, 0]) / 2], n, S, dt, "mean grad")
    total, _ = run("cross_entropy", impl, (x, t, None), dict(cfg, reduction="sum"), 1.0)
    close(total, L0 + L1, n, S, dt, "sum")


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_cross_entropy_weights_ignore_and_smoothing_by_hand(impl):
    x, w = np.array(LOGITS), np.array([1.0, 2.0, 3.0])
    n, S = 8, 8.0
    # weighted mean divides by the weights of the targets: (3 * L0 + 1 * L1) / (3 + 1)
    mean, gx = run(
        "cross_entropy",
        impl,
        (x, np.array([2, 0]), w),
        dict(ignore_index=-100, reduction="mean", label_smoothing=0.0),
        1.0,
    )
    close(mean, (3 * L0 + L1) / 4, n, S, np.float64, "weighted mean")
    close(gx[0], 3 * (P0 - [0, 0, 1]) / 4, n, S, np.float64, "weighted mean grad")
    # ignore_index in range (class 0): row 1 counts for nothing, its gradient is 0
    mean, gx = run(
        "cross_entropy",
        impl,
        (x, np.array([2, 0]), w),
        dict(ignore_index=0, reduction="mean", label_smoothing=0.0),
        1.0,
    )
    close(mean, L0, n, S, np.float64, "ignored row")
    assert np.all(gx[1] == 0)
    # label smoothing eps: (1 - eps) * nll + eps / C * sum_c -w_c lsm_c; row 1 has lsm = -log 3
    eps = 0.3
    lsm0 = np.log(P0)
    row0 = (1 - eps) * 3 * L0 + eps / 3 * -(w * lsm0).sum()
    row1 = (1 - eps) * 1 * L1 + eps / 3 * (w * L1).sum()
    none, gx = run(
        "cross_entropy",
        impl,
        (x, np.array([2, 0]), w),
        dict(ignore_index=-100, reduction="none", label_smoothing=eps),
        [1.0, 1.0],
    )
    close(none, [row0, row1], n, S, np.float64, "smoothed")
    a0 = (1 - eps) * np.array([0, 0, 3.0]) + eps / 3 * w  # the smoothed, weighted target of row 0
    close(gx[0], P0 * a0.sum() - a0, n, S, np.float64, "smoothed grad")
    mean, _ = run(
        "cross_entropy",
        impl,
        (x, np.array([2, 0]), w),
        dict(ignore_index=-100, reduction="mean", label_smoothing=eps),
        1.0,
    )
    close(mean, (row0 + row1) / 4, n, S, np.float64, "smoothed weighted mean")


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_cross_entropy_probability_targets_by_hand(impl):
    x, q, w = np.array(LOGITS), np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]]), np.array([1.0, 2.0, 3.0])
    lsm = np.log(np.array([P0, np.full(3, 1 / 3)]))
    cfg = dict(ignore_index=-100, label_smoothing=0.0)
    none, gx = run("cross_entropy", impl, (x, q, w), dict(cfg, reduction="none"), [1.0, 1.0])
    close(none, -(w * q * lsm).sum(axis=1), 8, 8.0, np.float64, "prob none")
    close(gx[0], P0 * (w * q[0]).sum() - w * q[0], 8, 8.0, np.float64, "prob grad")
    # the mean over probability targets divides by the number of rows, whatever the weights
    mean, _ = run("cross_entropy", impl, (x, q, w), dict(cfg, reduction="mean"), 1.0)
    close(mean, -(w * q * lsm).sum() / 2, 8, 8.0, np.float64, "prob mean")
    # smoothing turns q into q * (1 - eps) + eps / C
    eps = 0.4
    smoothed = q * (1 - eps) + eps / 3
    none, _ = run("cross_entropy", impl, (x, q, None), dict(cfg, reduction="none", label_smoothing=eps), [1.0, 1.0])
    close(none, -(smoothed * lsm).sum(axis=1), 8, 8.0, np.float64, "prob smoothed")


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_cross_entropy_unbatched_and_spatial_by_hand(impl):
    cfg = dict(ignore_index=-100, label_smoothing=0.0, reduction="none")
    loss, gx = run("cross_entropy", impl, (np.array([1.0, 2.0, 3.0]), np.array(2), None), cfg, 1.0)
    assert loss.shape == () and gx.shape == (3,)
    close(loss, L0, 8, 4.0, np.float64, "unbatched")
    close(gx, P0 - [0, 0, 1], 8, 4.0, np.float64, "unbatched grad")
    # (N, C, W) = (1, 3, 2): pixel 0 holds row 0 of LOGITS, pixel 1 row 1; classes on axis 1
    x = np.array(LOGITS).T[None]
    loss, gx = run("cross_entropy", impl, (x, np.array([[2, 0]]), None), cfg, np.ones((1, 2)))
    assert loss.shape == (1, 2) and gx.shape == (1, 3, 2)
    close(loss, [[L0, L1]], 8, 4.0, np.float64, "spatial")
    close(gx[0, :, 0], P0 - [0, 0, 1], 8, 4.0, np.float64, "spatial grad")


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_cross_entropy_all_ignored_is_nan_with_zero_gradient(impl):
    # as PyTorch: 0/0 for the mean (with or without smoothing), 0 for the sum, no gradient
    x, t = np.array(LOGITS), np.array([-100, -100])
    for ls in (0.0, 0.3):
        cfg = dict(ignore_index=-100, label_smoothing=ls)
        mean, gx = run("cross_entropy", impl, (x, t, None), dict(cfg, reduction="mean"), 1.0)
        assert np.isnan(mean) and np.all(gx == 0)
        total, gx = run("cross_entropy", impl, (x, t, None), dict(cfg, reduction="sum"), 1.0)
        assert total == 0 and np.all(gx == 0)
    # an empty batch: nan mean, as PyTorch
    mean, gx = run(
        "cross_entropy", impl, (np.zeros((0, 3)), np.zeros(0, np.int64), None), dict(cfg, reduction="mean"), 1.0
    )
    assert np.isnan(mean) and gx.shape == (0, 3)


def test_cross_entropy_zero_weight_mean_is_nan_like_torch():
    # every counted target has weight 0: the mean is 0/0 and PyTorch's gradient is nan on the
    # counted rows (0 * inf) and 0 on the ignored one
    x, w = np.array([LOGITS[0], LOGITS[1], LOGITS[0]]), np.array([0.0, 1.0, 1.0])
    for impl in ("fast", "reference"):
        mean, gx = run(
            "cross_entropy",
            impl,
            (x, np.array([0, -100, 0]), w),
            dict(ignore_index=-100, reduction="mean", label_smoothing=0.0),
            1.0,
        )
        assert np.isnan(mean)
        assert np.isnan(gx[[0, 2]]).all() and np.all(gx[1] == 0)
    mean, gx = run(
        "nll_loss", "reference", (x, np.array([0, -100, 0]), w), dict(ignore_index=-100, reduction="mean"), 1.0
    )
    assert np.isnan(mean) and np.isnan(gx[[0, 2], 0]).all()
    assert np.all(gx[:, 1:] == 0) and np.all(gx[1] == 0)


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("ls", [0.25, 1.0], ids=["ls0.25", "ls1"])
def test_cross_entropy_smoothing_with_zero_counted_weight_is_nan_like_torch(impl, ls):
    # Broke: the mean summed (1 - ls) * nll + ls/C * smooth per row before dividing by the
    # counted weight 0, giving inf; PyTorch divides each part by it, and its nll part is
    # 0/0 = nan, so the loss is nan. The reference's gradient was +-inf where
    # PyTorch's (and the fast kernel's) is nan on every counted row. Here every counted
    # target's class weighs 0 (row 1 is ignored).
    x, w, t = np.array([LOGITS[0], LOGITS[1], LOGITS[0]]), np.array([0.0, 1.0, 1.0]), np.array([0, -100, 0])
    counted = t != -100
    cfg = dict(ignore_index=-100, label_smoothing=ls)
    mean, gx = run("cross_entropy", impl, (x, t, w), dict(cfg, reduction="mean"), 1.0)
    assert np.isnan(mean), f"mean loss {mean}, PyTorch gives nan"
    assert np.isnan(gx[counted]).all(), f"gradient of the counted rows {gx[counted]}, PyTorch gives nan"
    assert np.all(gx[~counted] == 0)
    # 'sum' and 'none' divide by nothing: finite
    for reduction in ("sum", "none"):
        loss, gx = run(
            "cross_entropy", impl, (x, t, w), dict(cfg, reduction=reduction), np.ones(3) if reduction == "none" else 1.0
        )
        assert np.isfinite(loss).all() and np.isfinite(gx).all()


def test_uint8_labels_are_accepted_for_batched_rows():
    x = np.array(LOGITS)
    a, _ = ce("fast", x, np.array([2, 0], np.uint8), None, ignore_index=-100, reduction="mean", label_smoothing=0.0)
    b, _ = ce("fast", x, np.array([2, 0]), None, ignore_index=-100, reduction="mean", label_smoothing=0.0)
    assert a == b


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
def test_nll_loss_by_hand(dt):
    x = np.array([[-1.0, -2.0, -3.0], [-0.5, -1.5, -2.5]], dt)
    t, w = np.array([1, 2]), np.array([1.0, 2.0, 3.0], dt)
    cfg = dict(ignore_index=-100)
    none, gx = run("nll_loss", "reference", (x, t, None), dict(cfg, reduction="none"), [1.0, 2.0])
    close(none, [2.0, 2.5], 2, 3.0, dt, "none")
    close(gx, [[0, -1, 0], [0, 0, -2]], 2, 2.0, dt, "none grad")
    mean, gx = run("nll_loss", "reference", (x, t, w), dict(cfg, reduction="mean"), 1.0)
    close(mean, (2 * 2 + 3 * 2.5) / (2 + 3), 6, 12.0, dt, "weighted mean")
    close(gx, [[0, -2 / 5, 0], [0, 0, -3 / 5]], 6, 1.0, dt, "weighted mean grad")
    total, gx = run("nll_loss", "reference", (x, t, None), dict(ignore_index=1, reduction="sum"), 1.0)
    close(total, 2.5, 2, 3.0, dt, "ignored sum")
    close(gx, [[0, 0, 0], [0, 0, -1]], 2, 1.0, dt, "ignored sum grad")


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
def test_regression_losses_by_hand(dt):
    x, y = np.array([1.0, 2.0, 3.0, 0.25], dt), np.array([1.5, 2.0, 1.0, -0.75], dt)  # d = (-0.5, 0, 2, 1)
    n = 6
    loss, gx = run("mse_loss", "reference", (x, y), dict(reduction="none"), np.ones(4))
    close(loss, [0.25, 0, 4, 1], n, 4.0, dt, "mse none")
    close(gx, [-1, 0, 4, 2], n, 4.0, dt, "mse grad")
    loss, gx = run("mse_loss", "reference", (x, y), dict(reduction="mean"), 1.0)
    close(loss, 5.25 / 4, n, 2.0, dt, "mse mean")
    close(gx, np.array([-1, 0, 4, 2]) / 4, n, 1.0, dt, "mse mean grad")
    # l1: the gradient at d = 0 is sign(0) = 0, as autograd's abs
    loss, gx = run("l1_loss", "reference", (x, y), dict(reduction="sum"), 1.0)
    close(loss, 3.5, n, 4.0, dt, "l1 sum")
    close(gx, [-1, 0, 1, 1], n, 1.0, dt, "l1 grad")
    # smooth_l1, beta = 1: |d| < 1 quadratic 0.5 d^2, else |d| - 0.5; at |d| = beta the slope is sign(d)
    loss, gx = run("smooth_l1_loss", "reference", (x, y), dict(reduction="none", beta=1.0), np.ones(4))
    close(loss, [0.125, 0, 1.5, 0.5], n, 4.0, dt, "smooth_l1 none")
    close(gx, [-0.5, 0, 1, 1], n, 1.0, dt, "smooth_l1 grad")
    loss, gx = run("smooth_l1_loss", "reference", (x, y), dict(reduction="mean", beta=0.5), 1.0)
    close(loss, (0.25 + 0 + 1.75 + 0.75) / 4, n, 2.0, dt, "smooth_l1 beta=0.5 mean")
    close(gx, np.array([-1, 0, 1, 1]) / 4, n, 1.0, dt, "smooth_l1 beta=0.5 grad")
    # beta = 0 is l1, slope sign(0) = 0 at d = 0
    loss, gx = run("smooth_l1_loss", "reference", (x, y), dict(reduction="none", beta=0.0), np.ones(4))
    close(loss, [0.5, 0, 2, 1], n, 4.0, dt, "smooth_l1 beta=0")
    close(gx, [-1, 0, 1, 1], n, 1.0, dt, "smooth_l1 beta=0 grad")


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
def test_binary_cross_entropy_by_hand(dt):
    x, y = np.array([0.25, 0.5, 0.0, 1.0, 0.0, 1.0], dt), np.array([1.0, 0.5, 0.0, 1.0, 1.0, 0.0], dt)
    loss, gx = run("binary_cross_entropy", "reference", (x, y, None), dict(reduction="none"), np.ones(6))
    # log(0) is clamped at -100, so a confident wrong answer costs 100
    close(loss, [math.log(4), math.log(2), 0, 0, 100, 100], 6, 100.0, dt, "bce none")
    # PyTorch's backward: (x - y) / max(x (1 - x), EPSILON), EPSILON the float 1e-12
    eps = float(np.float32(1e-12))
    close(gx, [-0.75 / 0.1875, 0, 0, 0, -1 / eps, 1 / eps], 6, 1 / eps, dt, "bce grad")
    w = np.array([2.0, 1.0, 1.0, 1.0, 1.0, 0.5], dt)
    loss, gx = run("binary_cross_entropy", "reference", (x, y, w), dict(reduction="mean"), 1.0)
    close(loss, (2 * math.log(4) + math.log(2) + 100 + 50) / 6, 12, 200.0, dt, "bce weighted mean")
    close(gx[0], 2 * -4 / 6, 6, 4.0, dt, "bce weighted grad")


@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
def test_binary_cross_entropy_with_logits_by_hand(dt):
    x, y = np.array([[0.0, 2.0, -3.0]], dt), np.array([[1.0, 0.0, 0.5]], dt)
    sig = 1 / (1 + np.exp(-np.array([0.0, 2.0, -3.0])))
    expected = [
        math.log(2),
        math.log(1 + math.exp(2)),
        0.5 * math.log(1 + math.exp(-3)) + 0.5 * math.log(1 + math.exp(3)),
    ]
    loss, gx = run(
        "binary_cross_entropy_with_logits", "reference", (x, y, None, None), dict(reduction="none"), np.ones((1, 3))
    )
    close(loss, [expected], 8, 8.0, dt, "bcel none")
    close(gx, [sig - [1, 0, 0.5]], 8, 2.0, dt, "bcel grad")
    # pos_weight p scales the positive term: -(p y log s + (1 - y) log(1 - s))
    p = np.array([3.0, 1.0, 2.0], dt)
    loss, gx = run("binary_cross_entropy_with_logits", "reference", (x, y, None, p), dict(reduction="sum"), 1.0)
    want = (
        3 * math.log(2)
        + math.log(1 + math.exp(2))
        + 0.5 * 2 * math.log(1 + math.exp(3))
        + 0.5 * math.log(1 + math.exp(-3))
    )
    close(loss, want, 8, 16.0, dt, "bcel pos_weight")
    py = np.array([3.0, 0.0, 1.0])
    close(gx, [(py + 1 - [1, 0, 0.5]) * sig - py], 8, 4.0, dt, "bcel pos_weight grad")


# ---- cross_entropy: fast and reference against a float64 reference ------------------------------
def _class_last(a):
    return a.reshape(1, -1) if a.ndim == 1 else np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def ce_bounds(x, target, weight, ignore_index, label_smoothing, reduction, grad):
    """(n, S) of the policy for cross_entropy's loss and its gradient, in float64.

    Per row i: lsm[i, c] = (x - m) - log(sum exp(x - m)) is at most R_i + log C in size
    (R_i = max - min of the row), and its error is at most gamma * (2 R_i + log C + 1): the
    max-subtraction and the exp's argument errors (eps * R_i each), the log's (eps * log C)
    and the C-term sum's (gamma(C), absolute after the log). The loss -sum_c a[i, c] * lsm[i, c]
    (a = the weighted, smoothed target) adds a C-term sum, so with A_i = sum_c |a[i, c]|:

        loss:  n = 2C + 16,  S_i = A_i * (2 R_i + log C + 1)

    the 16 covering the elementwise steps, exp and log each within 4 ulp (8 unit roundoffs)
    in NumPy's SIMD loops. The gradient g_i * (p[i, c] * sum_k a[i, k] - a[i, c]) has p
    relatively off by the same gamma * (2 R_i + log C + 1):

        grad:  n = 2C + 16,  S_ic = |g_i| * (p[i, c] * A_i * (2 R_i + log C + 2) + |a[i, c]|)

    'sum' adds the M row losses (n += M, S = sum_i S_i); 'mean' also divides by the M-term
    sum of the counted weights D (n += M + 1, S = (sum_i S_i + |sum_i loss_i|) / D, and
    g_i = grad / D).
    """
    xr = _class_last(x.astype(np.float64))
    M, C = xr.shape
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    if target.shape == x.shape:
        q = _class_last(target.astype(np.float64))
        a = w * (q * (1 - label_smoothing) + label_smoothing / C if label_smoothing > 0 else q)
        D = float(M)
    else:
        t = target.reshape(-1).astype(np.int64)
        valid = t != ignore_index
        a = np.zeros((M, C))
        rows = np.flatnonzero(valid)
        a[rows, t[rows]] = (1 - label_smoothing) * w[t[rows]]
        a[rows] += label_smoothing / C * w
        D = float(w[t[rows]].sum())
    A = np.abs(a).sum(axis=1)
    R = xr.max(axis=1) - xr.min(axis=1)
    L = math.log(C)
    z = xr - xr.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    S_row = A * (2 * R + L + 1)
    n = 2 * C + 16
    with np.errstate(divide="ignore", invalid="ignore"):
        if reduction == "none":
            g = np.asarray(grad, np.float64).reshape(-1)
            n_loss, S_loss = n, S_row.reshape(np.shape(grad))
        elif reduction == "sum":
            g = np.full(M, float(grad))
            n_loss, S_loss = n + M, S_row.sum()
        else:
            g = np.full(M, float(grad) / D) if D else np.zeros(M)
            n_loss = n + M + 1
            S_loss = 2 * S_row.sum() / D if D else 0.0  # |loss_i| <= S_i
    S_grad = np.abs(g)[:, None] * (p * (A * (2 * R + L + 2))[:, None] + np.abs(a))
    if x.ndim == 1:
        S_grad = S_grad.reshape(x.shape)
    else:
        S_grad = np.moveaxis(S_grad.reshape((x.shape[0], *x.shape[2:], C)), -1, 1)
    return (n_loss, S_loss), (n + (M + 1 if reduction == "mean" else 0), S_grad)


@st.composite
def ce_configs(draw):
    dt = draw(st.sampled_from(FLOATS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    C = draw(st.integers(1, 5))
    unbatched = draw(st.integers(0, 5)) == 0
    shape = (C,) if unbatched else (draw(st.integers(1, 3)), C, *draw(st.lists(st.integers(1, 3), max_size=2)))
    scale = draw(st.sampled_from([1.0, 30.0, 1e4]))
    x = (rng.standard_normal(shape) * scale).astype(dt)
    weight = (rng.random(C) + 0.25).astype(dt) if draw(st.booleans()) else None
    ls = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]))
    reduction = draw(st.sampled_from(REDUCTIONS))
    if draw(st.booleans()):
        target, ignore_index = rng.random(shape).astype(dt), -100
    else:
        tshape = () if unbatched else (shape[0], *shape[2:])
        target = np.asarray(rng.integers(0, C, size=tshape), np.int64)
        ignore_index = draw(st.sampled_from([-100, -100, 0, C - 1]))
        if target.ndim and draw(st.booleans()):  # put ignored labels in
            target[rng.random(tshape) < 0.4] = ignore_index
    return x, target, weight, dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=ls)


@given(ce_configs(), st.sampled_from(["fast", "reference"]))
def test_cross_entropy_matches_float64_reference(config, impl):
    x, target, weight, cfg = config
    dt = x.dtype
    loss, ctx = ce(impl, x, target, weight, **cfg)
    assert loss.dtype == dt
    rng = np.random.default_rng(0)
    grad = rng.uniform(0.5, 1.5, size=loss.shape) * rng.choice([-1, 1], size=loss.shape)
    (gx,) = kernels.get("cross_entropy", impl).backward(np.asarray(grad, dt), ctx)
    assert gx.dtype == dt and gx.shape == x.shape
    up = (lambda a: None if a is None else a.astype(np.float64)) if dt == np.float32 else (lambda a: a)
    target64 = up(target) if target.dtype.kind == "f" else target
    loss64, ctx64 = ce("reference", up(x), target64, up(weight), **cfg)
    # the float64 reference gets the gradient the dtype under test was given, upcast
    (gx64,) = kernels.get("cross_entropy", "reference").backward(np.asarray(grad, dt).astype(np.float64), ctx64)
    (n, S), (n_g, S_g) = ce_bounds(
        x, target, weight, cfg["ignore_index"], cfg["label_smoothing"], cfg["reduction"], np.asarray(grad, dt)
    )
    testing.assert_close(loss, loss64, n, S, dt, f"cross_entropy {impl} loss")
    testing.assert_close(gx, gx64, n_g, S_g, dt, f"cross_entropy {impl} grad")


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_cross_entropy_bound_catches_a_wrong_loss(impl):
    # the bound of ce_bounds is tight enough to see a one-in-a-thousand error
    x = np.random.default_rng(1).standard_normal((4, 5, 3)).astype(np.float32)
    t = np.random.default_rng(2).integers(0, 5, (4, 3))
    cfg = dict(ignore_index=-100, reduction="none", label_smoothing=0.1)
    loss, _ = ce(impl, x, t, None, **cfg)
    loss64, _ = ce("reference", x.astype(np.float64), t, None, **cfg)
    (n, S), _ = ce_bounds(x, t, None, -100, 0.1, "none", np.ones(loss.shape))
    testing.assert_close(loss, loss64, n, S, np.float32, "exact")
    with pytest.raises(AssertionError, match="bound"):
        testing.assert_close(loss * np.float32(1.001), loss64, n, S, np.float32, "off by 1e-3")


# ---- logits of magnitude 1e4 ----------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("dt", FLOATS, ids=FLOAT_IDS)
def test_cross_entropy_is_stable_for_huge_logits(impl, dt):
    # exp(1e4) overflows both dtypes: only the max-subtracted log-sum-exp gets these right
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 1, -1e4]], dt)
    t = np.array([1, 0])
    loss, gx = run(
        "cross_entropy", impl, (x, t, None), dict(ignore_index=-100, reduction="none", label_smoothing=0.0), np.ones(2)
    )
    s = 1 / (1 + math.exp(-1))
    close(loss, [1e4, math.log(1 + math.exp(-1))], 8, 1e4, dt, "huge logits loss")
    close(gx, [[1, -1, 0], [s - 1, 1 - s, 0]], 8, 1.0, dt, "huge logits grad")
    q = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]], dt)
    loss, gx = run(
        "cross_entropy", impl, (x, q, None), dict(ignore_index=-100, reduction="sum", label_smoothing=0.2), 1.0
    )
    assert np.isfinite(loss) and np.isfinite(gx).all()
    c = math.log(1 + math.exp(-1))  # row 1: lse = 1e4 + c
    lsm = np.array([[0.0, -1e4, -2e4], [-c, -1 - c, -2e4 - c]])
    smoothed = q.astype(np.float64) * 0.8 + 0.2 / 3
    close(loss, -(smoothed * lsm).sum(), 12, 6e4, dt, "huge logits prob loss")


def test_bce_with_logits_is_stable_for_huge_logits():
    for dt in FLOATS:
        x, y = np.array([1e4, -1e4, 1e4, -1e4], dt), np.array([0.0, 1.0, 1.0, 0.0], dt)
        loss, gx = run(
            "binary_cross_entropy_with_logits", "reference", (x, y, None, None), dict(reduction="none"), np.ones(4)
        )
        close(loss, [1e4, 1e4, 0, 0], 4, 1e4, dt, "bcel huge")
        close(gx, [1, -1, 0, 0], 4, 1.0, dt, "bcel huge grad")


# ---- finite differences (float64) for every loss under every reduction --------------------------
def _fd_cases():
    rng = np.random.default_rng(7)
    x3 = rng.standard_normal((2, 3, 4))
    t3 = rng.integers(0, 3, (2, 4))
    t3[0, 1] = -100
    w3 = rng.random(3) + 0.5
    # d away from the kinks 0 and +-beta by more than the finite-difference step
    d = np.array([[-1.7, -0.3, 0.2, 0.45], [0.8, -0.6, 1.3, -2.2], [0.05, -0.07, 0.7, 2.9]])
    xr = rng.standard_normal((3, 4))
    p = rng.uniform(0.05, 0.95, (3, 4))
    cases = {
        "ce-spatial-weight-ignore-ls0.2": ("cross_entropy", (x3, t3, w3), dict(ignore_index=-100, label_smoothing=0.2)),
        "ce-ignore-in-range": (
            "cross_entropy",
            (x3, np.where(t3 < 0, 2, t3), None),
            dict(ignore_index=2, label_smoothing=0.0),
        ),
        "ce-prob-weight-ls0.3": (
            "cross_entropy",
            (x3, rng.random((2, 3, 4)), w3),
            dict(ignore_index=-100, label_smoothing=0.3),
        ),
        "ce-unbatched": (
            "cross_entropy",
            (rng.standard_normal(5), np.array(3), None),
            dict(ignore_index=-100, label_smoothing=0.1),
        ),
        "nll-spatial-weight-ignore": ("nll_loss", (x3, t3, w3), dict(ignore_index=-100)),
        "mse": ("mse_loss", (xr, xr - d), {}),
        "l1": ("l1_loss", (xr, xr - d), {}),
        "smooth_l1-b0.5": ("smooth_l1_loss", (xr, xr - d), dict(beta=0.5)),
        "smooth_l1-b0": ("smooth_l1_loss", (xr, xr - d), dict(beta=0.0)),
        "bce-weight": ("binary_cross_entropy", (p, rng.random((3, 4)), rng.random(4) + 0.5), {}),
        "bce_logits-weight-pos_weight": (
            "binary_cross_entropy_with_logits",
            (xr * 3, rng.random((3, 4)), rng.random((3, 1)) + 0.5, rng.random(4) * 3),
            {},
        ),
    }
    out = []
    for name, (op, args, cfg) in cases.items():
        for impl in kernels.available(op):
            for reduction in REDUCTIONS:
                out.append(
                    pytest.param(op, impl, args, dict(cfg, reduction=reduction), id=f"{name}-{impl}-{reduction}")
                )
    return out


@pytest.mark.parametrize("op, impl, args, cfg", _fd_cases())
def test_input_gradient_matches_finite_differences(op, impl, args, cfg):
    x = args[0].copy()
    rest = args[1:]
    kernel = kernels.get(op, impl)
    loss, ctx = kernel.forward(x, *rest, **cfg)
    grad = np.random.default_rng(3).uniform(0.5, 1.5, size=loss.shape)
    (gx,) = kernel.backward(grad, ctx)

    def total():
        return float(np.sum(kernel.forward(x, *rest, **cfg)[0] * grad))

    testing.assert_gradient(total, x, gx, f"{op} {impl} {cfg['reduction']}")


# ---- validation ---------------------------------------------------------------------------------
X = np.zeros((3, 4))
CE = dict(ignore_index=-100, reduction="mean", label_smoothing=0.0)


def _ce(x=X, t=None, w=None, **cfg):
    t = np.array([0, 1, 3]) if t is None else t
    return lambda: kernels.get("cross_entropy").forward(x, t, w, **dict(CE, **cfg))


def _nll(x=X, t=None, w=None, **cfg):
    t = np.array([0, 1, 3]) if t is None else t
    return lambda: kernels.get("nll_loss").forward(x, t, w, **dict(dict(ignore_index=-100, reduction="mean"), **cfg))


def _op(op, *args, **cfg):
    return lambda: kernels.get(op).forward(*args, **dict(dict(reduction="mean"), **cfg))


P = np.full((2, 3), 0.5)
VALIDATION = {
    "label-too-big": (_ce(t=np.array([0, 5, 3])), IndexError, r"cross_entropy: target label 5 at index \(1,\) is out of range for C=4 classes \(labels must be in \[0, 3\] or equal ignore_index=-100\)"),
    "label-negative": (_ce(t=np.array([0, 1, -1])), IndexError, r"target label -1 at index \(2,\) is out of range for C=4"),
    "label-spatial": (_ce(np.zeros((2, 4, 3)), np.array([[0, 1, 2], [3, 4, 0]])), IndexError, r"target label 4 at index \(1, 1\) is out of range for C=4"),
    "label-is-ignore-index-elsewhere": (_ce(t=np.array([0, 1, 7]), ignore_index=1), IndexError, r"target label 7 .* ignore_index=1\)"),
    "nll-label-too-big": (_nll(t=np.array([0, 4, 3])), IndexError, r"nll_loss: target label 4 at index \(1,\) is out of range for C=4"),
    "wrong-length": (_ce(t=np.array([0, 1])), ValueError, r"cross_entropy: target must have shape \(N,\) = \(3,\) for logits of shape \(3, 4\), got \(2,\)"),
    "wrong-spatial": (_ce(np.zeros((2, 4, 3)), np.zeros((2, 5), np.int64)), ValueError, r"target must have shape \(N, d1, \.\.\.\) = \(2, 3\) for logits of shape \(2, 4, 3\), got \(2, 5\)"),
    "unbatched-target-(1,)": (_ce(np.zeros(4), np.array([1])), ValueError, r"an unbatched logits of shape \(4,\) takes one class index \(a target of shape \(\)\), got target of shape \(1,\)"),
    "float-labels": (_ce(t=np.array([0.0, 1.0, 2.0])), TypeError, r"a float target must hold class probabilities of the logits' shape \(3, 4\), got shape \(3,\); class indices must be an int64 or uint8 array of shape \(3,\)"),
    "int32-labels": (_ce(t=np.array([0, 1, 2], np.int32)), TypeError, r"class-index target must be an int64 or uint8 array \(PyTorch's Long or Byte\), got dtype int32"),
    "bool-labels": (_ce(t=np.array([True, False, True])), TypeError, r"got dtype bool"),
    "uint8-spatial-labels": (_ce(np.zeros((2, 4, 3)), np.zeros((2, 3), np.uint8)), TypeError, r"must be int64 \(PyTorch's Long\), got dtype uint8"),
    "int-target-of-logits-shape": (_ce(t=np.zeros((3, 4), np.int64)), TypeError, r"a target of the logits' shape \(3, 4\) holds class probabilities and must be float32 or float64, got dtype int64"),
    "prob-target-dtype": (_ce(t=np.zeros((3, 4), np.float32)), TypeError, r"all arrays must share one dtype, got logits=float64, target=float32"),
    "prob-target-ignore-index": (_ce(t=np.zeros((3, 4)), ignore_index=0), ValueError, r"ignore_index is not supported for class-probability targets, got 0"),
    "weight-length": (_ce(w=np.ones(3)), ValueError, r"cross_entropy: weight must have shape \(C,\) = \(4,\), one entry per class, got \(3,\)"),
    "weight-2d": (_ce(w=np.ones((2, 2))), ValueError, r"weight must have shape \(C,\) = \(4,\), one entry per class, got \(2, 2\)"),
    "weight-dtype": (_ce(w=np.ones(4, np.float32)), TypeError, r"all arrays must share one dtype, got logits=float64, weight=float32"),
    "weight-int": (_ce(w=np.ones(4, np.int64)), TypeError, r"weight must be float32 or float64, got dtype int64"),
    "smoothing-above-1": (_ce(label_smoothing=1.5), ValueError, r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"),
    "smoothing-negative": (_ce(label_smoothing=-0.1), ValueError, r"label_smoothing must be in \[0, 1\], got -0.1"),
    "smoothing-str": (_ce(label_smoothing="0.1"), TypeError, r"label_smoothing must be a float in \[0, 1\], got '0.1'"),
    "reduction": (_ce(reduction="avg"), ValueError, r"cross_entropy: reduction must be 'none', 'mean' or 'sum', got 'avg'"),
    "reduction-mse": (_op("mse_loss", P, P, reduction="elementwise_mean"), ValueError, r"mse_loss: reduction must be .* got 'elementwise_mean'"),
    "ignore-index-float": (_ce(ignore_index=1.0), TypeError, r"ignore_index must be an int, got 1.0"),
    "logits-0d": (_ce(np.array(1.0), np.array(0)), ValueError, r"logits must have a class axis: shape \(C,\), \(N, C\) or \(N, C, d1, \.\.\.\), got shape \(\)"),
    "logits-no-class": (_ce(np.zeros((2, 0)), np.zeros(2, np.int64)), ValueError, r"logits needs at least one class \(C >= 1\), got shape \(2, 0\)"),
    "logits-int": (_ce(np.zeros((3, 4), np.int64)), TypeError, r"cross_entropy: logits must be float32 or float64, got dtype int64"),
    "logits-list": (_ce([[0.0, 1.0]], np.array([0])), TypeError, r"logits must be a numpy.ndarray, got list"),
    "target-list": (_ce(t=[0, 1, 2]), TypeError, r"cross_entropy: target must be a numpy.ndarray, got list"),
    "nll-float-labels": (_nll(t=np.array([0.0, 1.0, 2.0])), TypeError, r"nll_loss: target must hold class indices, an int64 or uint8 array of shape \(3,\), got dtype float64"),
    "nll-weight-length": (_nll(w=np.ones(5)), ValueError, r"nll_loss: weight must have shape \(C,\) = \(4,\)"),
    "mse-shape": (_op("mse_loss", np.zeros((3, 4)), np.zeros(4)), ValueError, r"mse_loss: target must have the input's shape \(3, 4\), got \(4,\)"),
    "mse-dtypes": (_op("mse_loss", np.zeros(3, np.float32), np.zeros(3)), TypeError, r"mse_loss: all arrays must share one dtype, got input=float32, target=float64"),
    "l1-int-target": (_op("l1_loss", np.zeros(3), np.zeros(3, np.int64)), TypeError, r"l1_loss: target must be float32 or float64, got dtype int64"),
    "smooth_l1-beta": (_op("smooth_l1_loss", P, P, beta=-1.0), ValueError, r"smooth_l1_loss: beta must be a float >= 0, got -1.0"),
    "bce-input-above-1": (_op("binary_cross_entropy", np.array([0.5, 1.5]), np.array([0.0, 1.0]), None), ValueError, r"binary_cross_entropy: every element of input must be a probability in \[0, 1\], got 1.5 at index \(1,\)"),
    "bce-input-nan": (_op("binary_cross_entropy", np.array([np.nan]), np.array([1.0]), None), ValueError, r"every element of input must be a probability in \[0, 1\], got nan at index \(0,\)"),
    "bce-target-negative": (_op("binary_cross_entropy", P, np.full((2, 3), -0.5), None), ValueError, r"every element of target must be a probability in \[0, 1\], got -0.5 at index \(0, 0\)"),
    "bce-shape": (_op("binary_cross_entropy", np.full(3, 0.5), np.full((3, 1), 0.5), None), ValueError, r"binary_cross_entropy: target must have the input's shape \(3,\), got \(3, 1\)"),
    "bce-dtypes": (_op("binary_cross_entropy", P, P.astype(np.float32), None), TypeError, r"all arrays must share one dtype, got input=float64, target=float32"),
    "bce-weight-shape": (_op("binary_cross_entropy", P, P, np.ones(2)), ValueError, r"binary_cross_entropy: weight of shape \(2,\) does not broadcast to the input's shape \(2, 3\)"),
    "bce-weight-grows": (_op("binary_cross_entropy", P, P, np.ones((4, 2, 3))), ValueError, r"weight of shape \(4, 2, 3\) does not broadcast to the input's shape \(2, 3\)"),
    "bcel-shape": (_op("binary_cross_entropy_with_logits", np.zeros(3), np.zeros((3, 1)), None, None), ValueError, r"binary_cross_entropy_with_logits: target must have the input's shape \(3,\), got \(3, 1\)"),
    "bcel-pos_weight-shape": (_op("binary_cross_entropy_with_logits", P, P, None, np.ones(2)), ValueError, r"pos_weight of shape \(2,\) does not broadcast to the input's shape \(2, 3\)"),
    "bcel-pos_weight-dtype": (_op("binary_cross_entropy_with_logits", P, P, None, np.ones(3, np.float32)), TypeError, r"got input=float64, target=float64, pos_weight=float32"),
}  # fmt: skip


@pytest.mark.parametrize("call, error, message", VALIDATION.values(), ids=VALIDATION.keys())
def test_validation_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_kernel_backward_checks_the_gradient():
    _, ctx = ce("fast", X, np.array([0, 1, 3]), None, **dict(CE, reduction="none"))
    with pytest.raises(ValueError, match=r"cross_entropy backward expected grad_y of shape \(3,\)"):
        kernels.get("cross_entropy").backward(np.ones(2), ctx)
    with pytest.raises(TypeError, match="expected grad_y of dtype float64"):
        kernels.get("cross_entropy").backward(np.ones(3, np.float32), ctx)


# ---- modules ----------------------------------------------------------------------------------------
LOGITS32 = np.array(LOGITS, np.float32)
LABELS = np.array([2, 0])
MODULES = {
    "CrossEntropyLoss": (nn.CrossEntropyLoss, LOGITS32, LABELS),
    "NLLLoss": (nn.NLLLoss, -LOGITS32, LABELS),
    "MSELoss": (nn.MSELoss, LOGITS32, LOGITS32[::-1].copy()),
    "L1Loss": (nn.L1Loss, LOGITS32, LOGITS32[::-1].copy()),
    "SmoothL1Loss": (nn.SmoothL1Loss, LOGITS32, LOGITS32[::-1].copy()),
    "BCELoss": (nn.BCELoss, LOGITS32 / 4, LOGITS32[::-1] / 4),
    "BCEWithLogitsLoss": (nn.BCEWithLogitsLoss, LOGITS32, LOGITS32[::-1] / 4),
}


@pytest.mark.parametrize("cls, x, y", MODULES.values(), ids=MODULES.keys())
def test_module_contract(cls, x, y):
    criterion = cls()
    assert repr(criterion) == f"{cls.__name__}()"  # PyTorch's loss modules print no arguments
    loss = criterion(x, y)
    assert type(loss) is float
    gx = criterion.backward()
    assert gx.dtype == np.float32 and gx.shape == x.shape
    with pytest.raises(RuntimeError, match=f"{cls.__name__}.backward called without a forward before it"):
        criterion.backward()
    with pytest.raises(RuntimeError, match="without a forward"):
        cls().backward()
    # 'none': an array of losses; its backward needs a gradient of that shape
    criterion = cls(reduction="none")
    losses = criterion(x, y)
    assert isinstance(losses, np.ndarray) and losses.dtype == np.float32
    with pytest.raises(
        ValueError,
        match=rf"{cls.__name__}\(reduction='none'\).backward: grad must have the loss's shape {re_shape(losses.shape)}, got \(\)",
    ):
        criterion.backward()
    with pytest.raises(TypeError, match="grad must have the loss's dtype float32, got float64"):
        criterion.backward(np.ones(losses.shape))
    # a bad gradient does not use up the forward: the right one still works, once
    g = np.ones(losses.shape, np.float32)
    gx_none = criterion.backward(g)
    summed = cls(reduction="sum")
    summed(x, y)
    testing.assert_close(gx_none, summed.backward(1.0), 1, 1.0, np.float32, "none with ones = sum")


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_module_float64_and_weights_as_buffers():
    w = np.array([1.0, 2.0, 3.0], np.float32)
    criterion = nn.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.25, reduction="sum")
    assert list(criterion.state_dict()) == ["weight"] and criterion.weight is w
    assert list(nn.NLLLoss().state_dict()) == []
    assert list(nn.BCEWithLogitsLoss(pos_weight=np.ones(3)).state_dict()) == ["pos_weight"]
    x64 = np.array(LOGITS)
    with pytest.raises(
        TypeError,
        match=r"CrossEntropyLoss holds a float32 weight but got a float64 input: convert the input \(x.astype\(np.float32\)\) or the loss \(.to\(np.float64\)\)",
    ):
        criterion(x64, LABELS)
    criterion.to(np.float64)
    assert criterion.weight.dtype == np.float64
    loss = criterion(x64, LABELS)
    expected, _ = ce("fast", x64, LABELS, w.astype(np.float64), ignore_index=1, reduction="sum", label_smoothing=0.25)
    assert loss == float(expected)
    assert criterion.backward().dtype == np.float64


def test_module_uses_the_kernel_chosen_by_use():
    criterion = nn.CrossEntropyLoss()
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    t = np.random.default_rng(1).integers(0, 5, (4, 3))
    with kernels.use(cross_entropy="reference"):
        criterion(x, t)
    assert criterion._peek_ctx().kernel.name == "reference"
    criterion.backward()
    criterion(x, t)
    assert criterion._peek_ctx().kernel.name == "fast"


MODULE_ARGS = {
    "reduction": (lambda: nn.CrossEntropyLoss(reduction="avg"), ValueError, r"CrossEntropyLoss: reduction must be 'none', 'mean' or 'sum', got 'avg'"),
    "reduction-none-object": (lambda: nn.MSELoss(reduction=None), ValueError, r"MSELoss: reduction must be .* got None"),
    "label_smoothing": (lambda: nn.CrossEntropyLoss(label_smoothing=1.5), ValueError, r"CrossEntropyLoss: label_smoothing must be in \[0, 1\], got 1.5"),
    "label_smoothing-negative": (lambda: nn.CrossEntropyLoss(label_smoothing=-0.5), ValueError, r"got -0.5"),
    "weight-list": (lambda: nn.CrossEntropyLoss(weight=[1.0, 2.0]), TypeError, r"CrossEntropyLoss: weight must be a 1-D float32 or float64 numpy array \(one entry per class\) or None, got list"),
    "weight-int": (lambda: nn.NLLLoss(weight=np.ones(3, np.int64)), TypeError, r"NLLLoss: weight must be .* or None, got dtype int64"),
    "weight-2d": (lambda: nn.CrossEntropyLoss(weight=np.ones((2, 2))), ValueError, r"weight must be a 1-D .* got shape \(2, 2\)"),
    "bce-weight-list": (lambda: nn.BCELoss(weight=[1.0]), TypeError, r"BCELoss: weight must be a float32 or float64 numpy array or None, got list"),
    "pos_weight-int": (lambda: nn.BCEWithLogitsLoss(pos_weight=np.ones(3, np.int64)), TypeError, r"BCEWithLogitsLoss: pos_weight must be .* got dtype int64"),
    "ignore_index": (lambda: nn.NLLLoss(ignore_index=0.5), TypeError, r"NLLLoss: ignore_index must be an int, got 0.5"),
    "beta": (lambda: nn.SmoothL1Loss(beta=-1.0), ValueError, r"SmoothL1Loss: beta must be a float >= 0, got -1.0"),
    # torch's second positional argument is the deprecated size_average: refuse it, not misread it
    "positional-after-weight": (lambda: nn.CrossEntropyLoss(None, -100), TypeError, r"positional argument"),
    "positional-reduction": (lambda: nn.MSELoss("sum"), TypeError, r"positional argument"),
}  # fmt: skip


@pytest.mark.parametrize("make, error, message", MODULE_ARGS.values(), ids=MODULE_ARGS.keys())
def test_module_argument_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_module_call_errors_come_from_the_kernel_validators():
    with pytest.raises(
        IndexError, match=r"cross_entropy: target label 3 at index \(1,\) is out of range for C=3 classes"
    ):
        nn.CrossEntropyLoss()(LOGITS32, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: every element of input must be a probability"):
        nn.BCELoss()(LOGITS32, LOGITS32 / 4)


@pytest.mark.parametrize("pos_weight", [None, 3.0], ids=["no-pos-weight", "pos-weight-3"])
def test_bce_with_logits_float32_does_not_cancel_for_negative_logits(pos_weight):
    # regression: (1 - y) * x - logsig(x) cancelled for x << 0 and y near 0 (thorough
    # conformance run: loss 0.013 from x = -8.65 was 500 ulp off, 5.75x its bound)
    x = np.array([-8.652131, 9.5, -3.25], np.float32)
    y = np.array([0.0014900835, 0.9987, 0.25], np.float32)
    p = None if pos_weight is None else np.full(3, pos_weight, np.float32)
    got, _ = kernels.get("binary_cross_entropy_with_logits").forward(x, y, None, p, reduction="none")
    x64, y64, p64 = x.astype(np.float64), y.astype(np.float64), 1.0 if p is None else p.astype(np.float64)
    exact = (1 - y64) * x64 + (1 + (p64 - 1) * y64) * np.log1p(np.exp(-x64))  # no cancellation in float64 here
    # an elementwise map of a few correctly rounded steps: n = 8, S = |loss|
    testing.assert_close(got, exact, 8, np.abs(exact), np.float32, "bce_with_logits float32")


# ---- non-finite corners, pinned to PyTorch 2.13 -----------------------------------------------
@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("ls", [0.0, 0.2], ids=["ls0", "ls0.2"])
@pytest.mark.parametrize("dtype", FLOATS, ids=FLOAT_IDS)
def test_cross_entropy_ignored_row_with_nan_log_softmax_has_nan_gradient(impl, ls, dtype):
    # Broke: the reference skipped ignored rows in backward (gradient 0), where PyTorch's
    # log_softmax backward gives 0 - exp(nan) * 0 = nan for a row of only -inf or holding
    # +inf (the fast kernel did too). The counted row is untouched by them.
    inf = np.inf
    x = np.array([[1.0, 2.0, 0.5], [-inf, -inf, -inf], [0.0, inf, 1.0]], dtype)
    cfg = dict(ignore_index=-100, reduction="mean", label_smoothing=ls)
    loss, gx = run("cross_entropy", impl, (x, np.array([0, -100, -100]), None), cfg, 1.0)
    alone, gx_alone = run("cross_entropy", impl, (x[:1], np.array([0]), None), cfg, 1.0)
    assert np.isnan(gx[1:]).all(), f"ignored rows' gradient {gx[1:]}, PyTorch 2.13 gives nan"
    assert loss == alone and np.array_equal(gx[0], gx_alone[0])
    # PyTorch 2.13 in float64: loss 1.464368784107945 (ls 0), 1.4310354507746117 (ls 0.2)
    torch_loss = {0.0: 1.464368784107945, 0.2: 1.4310354507746117}[ls]
    (n, S), _ = ce_bounds(x[:1], np.array([0]), None, -100, ls, "mean", 1.0)
    close(loss, torch_loss, n, S, dtype, "finite row's loss")


@pytest.mark.parametrize("op", ["l1_loss", "smooth_l1_loss-beta0"])
def test_l1_gradient_at_nan_difference_is_zero_as_torch(op):
    # Broke: the slope was np.sign(d), nan for d = nan (from nan, or inf - inf); autograd's
    # sign for abs is (d > 0) - (d < 0), so PyTorch 2.13 gives 0 there (and 0 at d = 0).
    inf, nan = np.inf, np.nan
    x, t = np.array([nan, inf, 1.0, 2.0, 3.0]), np.array([0.0, inf, nan, 2.0, 1.0])
    cfg = dict(reduction="none") if op == "l1_loss" else dict(reduction="none", beta=0.0)
    loss, gx = run(op.split("-")[0], "reference", (x, t), cfg, np.full(5, 0.5))
    # PyTorch 2.13: loss [nan, nan, nan, 0, 2], gradient [0, 0, 0, 0, 0.5]
    assert np.array_equal(loss, [nan, nan, nan, 0.0, 2.0], equal_nan=True)
    assert np.array_equal(gx, [0.0, 0.0, 0.0, 0.0, 0.5])


def test_smooth_l1_gradient_at_nan_difference_stays_nan_as_torch():
    # With beta > 0 PyTorch 2.13's smooth_l1 backward gives d / beta * g = nan for d = nan.
    x, t = np.array([np.nan, 1.0, 2.0]), np.array([0.0, np.nan, 2.5])
    _, gx = run("smooth_l1_loss", "reference", (x, t), dict(reduction="none", beta=0.5), np.full(3, 0.5))
    assert np.isnan(gx[:2]).all() and gx[2] == -0.5


@pytest.mark.parametrize("dtype", FLOATS, ids=FLOAT_IDS)
def test_bce_with_logits_non_finite_results_are_torchs(dtype):
    # Broke: the split form gave inf at x = -inf with a target > 0, where PyTorch 2.13's
    # (1 - t) x - l * logsigmoid(x) is nan (-inf + inf, or 0 * -inf); and nan (inf * 0) for
    # pos_weight = inf with a large negative x, where PyTorch gives inf.
    inf, nan = np.inf, np.nan
    x = np.array([-inf, -inf, -inf, inf, -1e4, -1e30], dtype)
    t = np.array([1.0, 0.3, 0.0, 1.0, 0.3, 1.0], dtype)
    gy = np.full(6, 0.5, dtype)
    loss, gx = run("binary_cross_entropy_with_logits", "reference", (x, t, None, None), dict(reduction="none"), gy)
    # PyTorch 2.13 (float64): loss [nan, nan, nan, nan, 3000, 1e30], grad [-0.5, -0.15, 0, 0, -0.15, -0.5]
    assert np.isnan(loss[:4]).all(), f"loss {loss[:4]}, PyTorch gives nan"
    close(loss[4:], [3000.0, 1e30], 8, np.abs(x[4:]), dtype, "finite losses")
    close(gx, [-0.5, -0.15, 0.0, 0.0, -0.15, -0.5], 8, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], dtype, "gradient")
    pw = np.array([2.0, 2.0, 2.0, 2.0, inf, inf], dtype)
    loss, gx = run("binary_cross_entropy_with_logits", "reference", (x, t, None, pw), dict(reduction="none"), gy)
    # PyTorch 2.13: loss [nan, nan, nan, nan, inf, inf], grad [-1, -0.3, 0, 0, nan, nan]
    assert np.array_equal(loss, [nan, nan, nan, nan, inf, inf], equal_nan=True)
    assert np.isnan(gx[4:]).all()
    close(gx[:4], [-1.0, -0.3, 0.0, 0.0], 8, [1.0, 1.0, 1.0, 1.0], dtype, "gradient")
    mean, _ = run(
        "binary_cross_entropy_with_logits", "reference", (x[4:], t[4:], None, pw[4:]), dict(reduction="mean"), 1.0
    )
    assert mean == inf  # PyTorch 2.13: inf


# ---- long reductions ----------------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("ls", [0.0, 0.1], ids=["ls0", "ls0.1"])
def test_cross_entropy_weighted_mean_over_6480_rows_stays_within_a_few_roundings(impl, ls):
    # Broke (ONNX's sce_NCd1d2d3d4d5_mean_weight shape): the reference summed the counted
    # weights serially in float32; 6,480 additions of 0.7 drift by 1.7e-5 relative, and the
    # mean (log 5 here: equal logits) came out 2.8e-5 off. Both kernels now accumulate the
    # mean's sums in float64 and round once, so n does not grow with the row count:
    # n = 2C + 16 for a row's loss (ce_bounds) + 3 (float64 sums, the division, the rounding).
    C, shape = 5, (3, 6, 6, 5, 3, 4)
    x = np.zeros((3, C, *shape[1:]), np.float32)
    t = np.zeros(shape, np.int64)  # every row counts class 0, of weight 0.7
    w = np.array([0.7, 1.0, 1.0, 1.0, 1.0], np.float32)
    cfg = dict(ignore_index=-100, reduction="mean", label_smoothing=ls)
    loss, _ = kernels.get("cross_entropy", impl).forward(x, t, w, **cfg)
    expected, _ = kernels.get("cross_entropy", "reference").forward(
        x.astype(np.float64), t, w.astype(np.float64), **cfg
    )
    # PyTorch 2.13 (float64): log(5) = 1.6094379124341003 without smoothing
    if ls == 0:
        assert float(expected) == pytest.approx(math.log(5), rel=1e-15)
    (_, S), _ = ce_bounds(x, t, w, -100, ls, "mean", 1.0)
    close(loss, expected, 2 * C + 16 + 3, S, np.float32, f"{impl} weighted mean over {t.size} rows")
