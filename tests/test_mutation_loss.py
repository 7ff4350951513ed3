"""Loss corners that mutation testing (tox -e mutation) found unchecked: what PyTorch gives when
a class the target does not pick is extreme (a -inf logit, an infinite class weight) and label
smoothing is off or on, non-finite differences that PyTorch turns into nan without a warning,
and the validators' handling of arguments of the wrong kind or shape.

Every expected value is PyTorch's (torch 2.13, F.cross_entropy and friends, float64), either
computed here by its formula in float64 or, where it is not finite, written out as PyTorch
printed it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from refcnn import kernels

CE_IMPLS = ["reference", "fast"]
REDUCTIONS = ["none", "sum", "mean"]
INF, NAN = np.inf, np.nan


def _run(op, impl, args, config, direct=True):
    """Forward then backward (grad_loss of ones), with every warning an error: PyTorch is silent
    on all of these inputs. ``direct``: of the implementation itself, called without the
    registry's np.errstate(invalid="ignore") around it (which a kernel leans on only where an
    invalid operation, inf * 0 or inf - inf, is PyTorch's answer)."""
    kernel = kernels.get(op, impl)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, ctx = kernel.forward(*args, **config)
        (gx,) = kernel.backward(np.ones_like(loss), ctx)
        if direct:
            loss, ctx = kernel.forward_impl(*args, **config)
            (gx,) = kernel.backward_impl(np.ones_like(loss), ctx)
    return loss, gx


def _ce_float64(x, t, w, ls, reduction):
    """PyTorch's cross_entropy and its input gradient for class indices (-100: ignored), in
    float64, on inputs where every term it sums is finite (a coefficient of 0 drops its term)."""
    N, C = x.shape
    w = np.ones(C) if w is None else w
    valid = t != -100
    t = np.where(valid, t, 0)
    lsm = x - x.max(axis=1, keepdims=True)
    lsm = lsm - np.log(np.exp(lsm).sum(axis=1, keepdims=True))
    a = ls / C * np.broadcast_to(w, (N, C)) if ls > 0 else np.zeros((N, C))  # PyTorch: no term for 0
    a[np.arange(N), t] += (1 - ls) * w[t]
    a[~valid] = 0
    per = -np.where(a != 0, a * np.where(a != 0, lsm, 0), 0).sum(axis=1)
    grad = np.exp(lsm) * a.sum(axis=1, keepdims=True) - a
    if reduction == "none":
        return per, grad
    if reduction == "sum":
        return per.sum(), grad
    W = w[t][valid].sum()
    return per.sum() / W, grad / W


def _assert_same(actual, expected, what):
    """Equal to PyTorch's within float64 rounding; nan and inf exactly where PyTorch has them."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, PyTorch {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=1e-13, atol=1e-15, equal_nan=True, err_msg=what)


# ---- cross_entropy: a class the target does not pick --------------------------------------------
# Row 0 rules class 1 out with a -inf logit; the optional third row (also -inf in class 1) is
# ignored (target -100), which takes the kernels' other path (not every row counted).
NEG_INF_ROWS = {
    "all-counted": (np.array([[0.5, -INF, 1.0], [2.0, 0.0, -1.0]]), np.array([0, 2])),
    "one-ignored": (np.array([[0.5, -INF, 1.0], [2.0, 0.0, -1.0], [1.0, -INF, 0.0]]), np.array([0, 2, -100])),
}


def _ce_config(reduction, ls):
    return {"ignore_index": -100, "reduction": reduction, "label_smoothing": ls}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("rows", NEG_INF_ROWS.keys())
@pytest.mark.parametrize("impl", CE_IMPLS)
def test_a_minus_inf_logit_off_target_costs_nothing_without_label_smoothing(impl, rows, reduction):
    # PyTorch takes the smoothing term only for label_smoothing > 0: with 0 the -inf logit's
    # log-probability (-inf) is never touched, and the loss and gradient are finite
    x, t = NEG_INF_ROWS[rows]
    loss, gx = _run("cross_entropy", impl, (x, t, None), _ce_config(reduction, 0.0))
    want_loss, want_grad = _ce_float64(x, t, None, 0.0, reduction)
    _assert_same(loss, want_loss, f"{impl} {rows} {reduction} loss")
    _assert_same(gx, want_grad, f"{impl} {rows} {reduction} grad")
    assert gx[0, 1] == 0.0, f"{impl} {rows} {reduction}: the ruled-out class gets gradient {gx[0, 1]}"


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("rows", NEG_INF_ROWS.keys())
@pytest.mark.parametrize("impl", CE_IMPLS)
def test_a_minus_inf_logit_off_target_makes_a_smoothed_loss_inf_and_its_gradient_finite(impl, rows, reduction):
    # label_smoothing 0.1: row 0 pays 0.1/3 * -log(0) = inf, as in PyTorch; the gradient stays
    # softmax * sum(a) - a (softmax 0 at the -inf logit: -0.1/3 there)
    x, t = NEG_INF_ROWS[rows]
    loss, gx = _run("cross_entropy", impl, (x, t, None), _ce_config(reduction, 0.1))
    per, want_grad = _ce_float64(np.where(np.isinf(x), -1e300, x), t, None, 0.1, reduction)
    if reduction == "none":
        per, _ = _ce_float64(np.where(np.isinf(x), -1e300, x), t, None, 0.1, "none")
        per[0] = INF
    _assert_same(loss, per if reduction == "none" else INF, f"{impl} {rows} {reduction} loss")
    _assert_same(gx, want_grad, f"{impl} {rows} {reduction} grad")
    np.testing.assert_allclose(gx[0, 1], -0.1 / 3 / (2 if reduction == "mean" else 1), rtol=1e-15)


@pytest.mark.parametrize("ls", [0.0, 0.1], ids=["ls0", "ls0.1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("rows", NEG_INF_ROWS.keys())
@pytest.mark.parametrize("impl", CE_IMPLS)
def test_a_zero_weight_on_a_minus_inf_logit(impl, rows, reduction, ls):
    # weight 0 on class 1: without smoothing its log-probability (-inf) is never weighed, and the
    # loss is finite; with smoothing PyTorch weighs it, 0 * -inf = nan, silently (the gradient
    # is finite: the log-softmax backward never multiplies by the -inf)
    x, t = NEG_INF_ROWS[rows]
    w = np.array([1.0, 0.0, 2.0])
    loss, gx = _run("cross_entropy", impl, (x, t, w), _ce_config(reduction, ls), direct=ls == 0)
    want_loss, want_grad = _ce_float64(x, t, w, ls, reduction)
    if ls > 0:
        want_loss = np.where(np.arange(len(t)) == 0, NAN, want_loss) if reduction == "none" else NAN
    _assert_same(loss, want_loss, f"{impl} {rows} {reduction} loss")
    _assert_same(gx, want_grad, f"{impl} {rows} {reduction} grad")


T = np.array([0, 2])
X2 = np.array([[0.5, 0.2, 1.0], [2.0, 0.0, -1.0]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("impl", CE_IMPLS)
def test_an_infinite_weight_on_a_class_no_target_picks_is_unused_without_label_smoothing(impl, reduction):
    w = np.array([1.0, INF, 2.0])
    loss, gx = _run("cross_entropy", impl, (X2, T, w), {"ignore_index": -100, "reduction": reduction,
                                                        "label_smoothing": 0.0})  # fmt: skip
    want_loss, want_grad = _ce_float64(X2, T, w, 0.0, reduction)
    _assert_same(loss, want_loss, f"{impl} {reduction} loss")
    _assert_same(gx, want_grad, f"{impl} {reduction} grad")


# PyTorch's values (float64) where an infinite class weight meets label smoothing or a target.
INF_WEIGHT_CASES = {
    # weight (1, inf, 2), smoothing 0.2: every row's smoothing term weighs class 1 by inf
    "off-target-ls0.2": ([1.0, INF, 2.0], 0.2, {
        "none": ([INF, INF], [[INF, NAN, INF], [INF, NAN, INF]]),
        "sum": (INF, [[INF, NAN, INF], [INF, NAN, INF]]),
        "mean": (INF, [[INF, NAN, INF], [INF, NAN, INF]]),
    }),
    # weight (inf, 1, 2): row 0's target weighs inf; the mean divides by inf
    "on-target-ls0": ([INF, 1.0, 2.0], 0.0, {
        "none": ([INF, 6.339692039112571], [[NAN, INF, INF], [1.687589468962679, 0.22839039876918896, -1.9159798677318678]]),
        "sum": (INF, [[NAN, INF, INF], [1.687589468962679, 0.22839039876918896, -1.9159798677318678]]),
        "mean": (NAN, [[NAN, NAN, NAN], [0.0, 0.0, 0.0]]),
    }),
    "on-target-ls0.2": ([INF, 1.0, 2.0], 0.2, {
        "none": ([INF, INF], [[NAN, INF, INF], [NAN, INF, INF]]),
        "sum": (INF, [[NAN, INF, INF], [NAN, INF, INF]]),
        "mean": (NAN, [[NAN, NAN, NAN], [NAN, NAN, NAN]]),
    }),
}  # fmt: skip


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", INF_WEIGHT_CASES.keys())
@pytest.mark.parametrize("impl", CE_IMPLS)
def test_an_infinite_class_weight_gives_pytorchs_inf_and_nan(impl, case, reduction):
    w, ls, by_reduction = INF_WEIGHT_CASES[case]
    want_loss, want_grad = by_reduction[reduction]
    loss, gx = _run("cross_entropy", impl, (X2, T, np.array(w)), {"ignore_index": -100, "reduction": reduction,
                                                                  "label_smoothing": ls})  # fmt: skip
    _assert_same(loss, want_loss, f"{impl} {case} {reduction} loss")
    _assert_same(gx, want_grad, f"{impl} {case} {reduction} grad")


# ---- pointwise losses: inf - inf --------------------------------------------------------------
# An input equal to its target at +inf or -inf: the difference is inf - inf = nan, which PyTorch
# gives silently. PyTorch's values (torch 2.13, float64), the grad_loss all ones:
POINTWISE_X = np.array([INF, -INF, 1.0, INF])
POINTWISE_Y = np.array([INF, -INF, 2.0, 1.0])
POINTWISE = {
    "mse_loss": ({}, [NAN, NAN, 1.0, INF], [NAN, NAN, -2.0, INF], [NAN, NAN, -0.5, INF]),
    "l1_loss": ({}, [NAN, NAN, 1.0, INF], [0.0, 0.0, -1.0, 1.0], [0.0, 0.0, -0.25, 0.25]),
    "smooth_l1_loss-beta0.5": ({"beta": 0.5}, [NAN, NAN, 0.75, INF], [NAN, NAN, -1.0, 1.0], [NAN, NAN, -0.25, 0.25]),
    "smooth_l1_loss-beta0": ({"beta": 0.0}, [NAN, NAN, 1.0, INF], [0.0, 0.0, -1.0, 1.0], [0.0, 0.0, -0.25, 0.25]),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", POINTWISE.keys())
def test_an_infinite_input_equal_to_its_target_gives_nan_silently(case, reduction):
    op = case.split("-")[0]
    config, per, grad, mean_grad = POINTWISE[case]
    loss, gx = _run(op, "reference", (POINTWISE_X, POINTWISE_Y), {"reduction": reduction, **config})
    _assert_same(loss, per if reduction == "none" else NAN, f"{case} {reduction} loss")
    _assert_same(gx, mean_grad if reduction == "mean" else grad, f"{case} {reduction} grad")
