"""Loss corners that mutation testing (tox -e mutation) found unchecked: what PyTorch gives when
a class the target does not pick is extreme (a -inf logit, an infinite class weight) and label
smoothing is off or on, non-finite differences that PyTorch turns into nan without a warning,
and, in test_mutation_loss_validation.py, the validators' errors.

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


# ---- reductions and divisions at the edge of the range: silent, as PyTorch ------------------------
@pytest.mark.parametrize("op", ["mse_loss", "l1_loss"])
def test_a_float32_sum_past_float32s_range_is_inf_silently(op):
    # each squared error fits float32 (2.25e38 < 3.4e38), their sum does not: PyTorch gives inf
    x = np.array([1.5e19, 1.5e19, 0.0], np.float32) if op == "mse_loss" else np.array([3e38, 3e38, 0.0], np.float32)
    loss, gx = _run(op, "reference", (x, np.zeros(3, np.float32)), {"reduction": "sum"})
    assert loss.dtype == np.float32 and loss == np.inf, f"{op}: {loss!r}"
    np.testing.assert_array_equal(gx, 2 * x if op == "mse_loss" else [1.0, 1.0, 0.0])


BCE_X = np.array([0.0, 1.0, 1.0, 0.0, 0.5])
BCE_Y = np.array([0.0, 1.0, 0.0, 1.0, 0.25])
BCE_SLOPE = 1 / float(np.float32(1e-12))  # PyTorch: (x - y) / max(x (1 - x), EPSILON = float 1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_at_probabilities_0_and_1_clamps_its_logs_silently(reduction):
    # log(0) = -inf is clamped at -100 (a miss costs 100), without numpy's divide-by-zero warning
    loss, gx = _run("binary_cross_entropy", "reference", (BCE_X, BCE_Y, None), {"reduction": reduction})
    per = np.array([0.0, 0.0, 100.0, 100.0, np.log(2)])
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    _assert_same(loss, want, f"{reduction} loss")
    grad = np.array([0.0, 0.0, BCE_SLOPE, -BCE_SLOPE, 1.0]) / (5 if reduction == "mean" else 1)
    _assert_same(gx, grad, f"{reduction} grad")


@pytest.mark.parametrize("impl", CE_IMPLS)
@pytest.mark.parametrize("ls", [0.0, 0.3], ids=["ls0", "ls0.3"])
def test_a_mean_over_zero_counted_weight_is_nan_silently(impl, ls):
    # every target's class weighs 0: the mean divides by 0 (the smoothing part: nonzero / 0), and
    # its backward divides grad_loss by 0; PyTorch gives nan for the loss and every gradient
    x, w = np.array([[0.5, 0.2, 1.0], [2.0, 0.0, -1.0]]), np.array([0.0, 1.0, 0.0])
    loss, gx = _run("cross_entropy", impl, (x, T, w), _ce_config("mean", ls))
    assert np.isnan(loss) and np.isnan(gx).all(), f"{impl} ls={ls}: {loss}, {gx}"


@pytest.mark.parametrize("grad_loss", [1.0, 0.0], ids=["grad1", "grad0"])
@pytest.mark.parametrize("op", ["cross_entropy-reference", "cross_entropy-fast", "nll_loss-reference"])
def test_a_mean_over_only_ignored_rows_is_nan_with_a_zero_gradient_silently(op, grad_loss):
    # 0 / 0 in the forward, grad_loss / 0 (inf, or nan for a zero grad_loss) in the backward, and
    # no row to carry it: PyTorch's loss is nan and its gradient 0. The implementation itself
    # (no registry around it) divides silently.
    name, impl = op.split("-")
    config = _ce_config("mean", 0.0) if name == "cross_entropy" else {"ignore_index": -100, "reduction": "mean"}
    kernel = kernels.get(name, impl)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, ctx = kernel.forward_impl(X2, np.array([-100, -100]), None, **config)
        (gx,) = kernel.backward_impl(np.array(grad_loss), ctx)
    assert np.isnan(loss), f"{op}: {loss}"
    np.testing.assert_array_equal(gx, np.zeros((2, 3)), err_msg=op)


# ---- cross_entropy: class-probability targets with label smoothing -----------------------------------
Q = np.array([[0.7, 0.2, 0.1, 0.0], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
XQ = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.5, -0.5, 3.0], [0.0, 0.1, 0.2, -2.0]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", [0.0, 0.2, 1.0], ids=["ls0", "ls0.2", "ls1"])
@pytest.mark.parametrize("impl", CE_IMPLS)
def test_probability_targets_are_smoothed_to_q_times_1_minus_ls_plus_ls_over_C(impl, ls, reduction):
    # PyTorch: q -> q (1 - ls) + ls / C for ls > 0; the mean divides by the M rows, whatever the weights
    w = np.array([1.0, 2.0, 0.5, 3.0])
    loss, gx = _run("cross_entropy", impl, (XQ, Q, w), _ce_config(reduction, ls))
    lsm = XQ - XQ.max(axis=1, keepdims=True)
    lsm = lsm - np.log(np.exp(lsm).sum(axis=1, keepdims=True))
    a = w * (Q * (1 - ls) + ls / 4)
    per, grad = -(a * lsm).sum(axis=1), np.exp(lsm) * a.sum(axis=1, keepdims=True) - a
    want = {"none": per, "sum": per.sum(), "mean": per.sum() / 3}[reduction]
    _assert_same(loss, want, f"{impl} ls={ls} {reduction} loss")
    _assert_same(gx, grad / 3 if reduction == "mean" else grad, f"{impl} ls={ls} {reduction} grad")


# ---- the sign of a zero loss: PyTorch's -0.0 ------------------------------------------------------
@pytest.mark.parametrize("target", ["class-index", "probabilities"])
@pytest.mark.parametrize("impl", CE_IMPLS)
def test_a_loss_of_zero_per_row_is_minus_zero_as_pytorchs(impl, target):
    # -(w * log p) with log p = 0 (a certain prediction), or -(q * log p) with q = -0.0: PyTorch's
    # 'none' loss is -0.0; without smoothing nothing is added to it, nor to the targets
    if target == "class-index":
        x, t = np.array([[0.0, -INF, -INF], [2.0, -INF, -INF]]), np.array([0, 0])
    else:
        x, t = np.array([[0.5, 0.1, 1.0], [2.0, 0.0, -1.0]]), np.full((2, 3), -0.0)
    loss, gx = _run("cross_entropy", impl, (x, t, None), _ce_config("none", 0.0))
    np.testing.assert_array_equal(loss, [0.0, 0.0])
    assert np.signbit(loss).all(), f"{impl} {target}: {loss!r}, PyTorch tensor([-0., -0.])"
    if target == "probabilities":  # the targets unsmoothed: dL/dx = -(-0.0) - softmax * 0 = +0.0, as PyTorch's
        assert not np.signbit(gx).any() and not gx.any(), f"{impl}: {gx!r}, PyTorch all +0.0"


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("impl", CE_IMPLS)
def test_negative_class_weights_that_cancel_give_a_smoothed_mean_of_inf_minus_inf(impl, reduction):
    # PyTorch takes negative weights. Here the counted targets' weights sum to 1 + (-1) = 0: the
    # mean's nll part is (positive) / 0 = inf, its smoothing part (negative) / 0 = -inf, and PyTorch's
    # (1 - ls) * inf + ls / C * -inf is nan, silently
    x, t, w = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]]), np.array([0, 1]), np.array([1.0, -1.0, -5.0])
    loss, gx = _run("cross_entropy", impl, (x, t, w), _ce_config(reduction, 0.3))
    if reduction == "mean":
        assert np.isnan(loss) and np.isnan(gx).all(), f"{impl}: {loss}, {gx}"
    else:
        want_loss, want_grad = _ce_float64(x, t, w, 0.3, reduction)
        _assert_same(loss, want_loss, f"{impl} {reduction} loss")
        _assert_same(gx, want_grad, f"{impl} {reduction} grad")


def test_nll_loss_mean_over_zero_counted_weight_has_nan_at_the_targets_silently():
    # the mean divides by 0; its backward's 0 * inf is nan at each counted target, 0 elsewhere
    # (PyTorch: tensor([[nan, 0., 0.], [0., 0., nan]])); the implementation itself stays silent
    config = {"ignore_index": -100, "reduction": "mean"}
    loss, gx = _run("nll_loss", "reference", (X2, T, np.array([0.0, 1.0, 0.0])), config)
    assert np.isnan(loss), loss
    _assert_same(gx, [[NAN, 0.0, 0.0], [0.0, 0.0, NAN]], "grad")


# ---- non-finite inputs: the implementation itself is as silent as the registry makes it -------------
_ROWS_NAN_LSM = np.array([[1.0, 2.0, 0.5], [-INF, -INF, -INF], [0.0, INF, 1.0]])  # rows 1, 2: log-softmax nan
_BCEL_X = np.array([-INF, -INF, -INF, INF, -1e4, -1e30])
_BCEL_T = np.array([1.0, 0.3, 0.0, 1.0, 0.3, 1.0])
SILENT = {
    **{
        f"ce-{impl}-ls{ls}-{red}": ("cross_entropy", impl, (_ROWS_NAN_LSM, np.array([0, -100, -100]), None),
                                    _ce_config(red, ls))
        for impl in CE_IMPLS for ls in (0.0, 0.2) for red in ("none", "mean")
    },
    "ce-fast-counted-nan-rows": ("cross_entropy", "fast", (_ROWS_NAN_LSM, np.array([0, 1, 2]), None),
                                 _ce_config("sum", 0.0)),
    "ce-reference-counted-nan-rows": ("cross_entropy", "reference", (_ROWS_NAN_LSM, np.array([0, 1, 2]), None),
                                      _ce_config("sum", 0.0)),
    "bcel-no-pos-weight": ("binary_cross_entropy_with_logits", "reference", (_BCEL_X, _BCEL_T, None, None),
                           {"reduction": "none"}),
    "bcel-pos-weight-2": ("binary_cross_entropy_with_logits", "reference",
                          (_BCEL_X, _BCEL_T, None, np.full(6, 2.0)), {"reduction": "none"}),
    "bcel-pos-weight-inf": ("binary_cross_entropy_with_logits", "reference",
                            (_BCEL_X, _BCEL_T, np.full(6, 0.5), np.full(6, INF)), {"reduction": "sum"}),
    # PyTorch 2.13: tensor([inf, 1.0000e+308]), its (pos_weight * y) * 1e308 past float64's range
    "bcel-overflow": ("binary_cross_entropy_with_logits", "reference",
                      (np.array([-1e308, -1e308]), np.array([1.0, 0.5]), None, np.array([2.0, 2.0])), {"reduction": "none"}),
}  # fmt: skip


@pytest.mark.parametrize("case", SILENT.keys())
def test_the_implementation_gives_the_registrys_nan_and_inf_without_a_warning(case):
    # the registry runs every kernel under np.errstate(invalid="ignore"); these kernels promise
    # PyTorch's silent nan and inf on their own too (their own np.errstate)
    op, impl, args, config = SILENT[case]
    kernel = kernels.get(op, impl)
    loss, ctx = kernel.forward(*args, **config)
    (gx,) = kernel.backward(np.ones_like(loss), ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        direct_loss, direct_ctx = kernel.forward_impl(*args, **config)
        (direct_gx,) = kernel.backward_impl(np.ones_like(loss), direct_ctx)
    assert not (np.isfinite(loss).all() and np.isfinite(gx).all()), f"{case}: the case should reach a nan or inf"
    np.testing.assert_array_equal(direct_loss, loss, err_msg=f"{case} loss")
    np.testing.assert_array_equal(direct_gx, gx, err_msg=f"{case} grad")


def test_nll_loss_divides_by_the_weight_sum_taken_in_float64():
    """The mean's divisor sum(w[t]) is taken in float64, as the sum it divides: with class
    weights (2**24, 1) and targets (0, 1, 1, 1), float32 would round 2**24 + 1 + 1 + 1 to 2**24
    and give (2**24 + 3) / 2**24 rounded, not the exact mean 1."""
    x = -np.ones((4, 2), dtype=np.float32)
    weight = np.array([2.0**24, 1.0], dtype=np.float32)
    loss, _ = _run(
        "nll_loss", "reference", (x, np.array([0, 1, 1, 1]), weight), {"ignore_index": -100, "reduction": "mean"}
    )
    assert loss.dtype == np.float32 and loss == 1.0, f"mean weighted loss {loss!r}, want float32 1.0"


def test_bce_with_logits_near_float32s_lowest_logit_is_finite():
    """x = -3e38, y = 0.5 in float32: PyTorch's (1 - y) x + max(-x, 0) + log(...) is -1.5e38 + 3e38,
    finite, so the loss is 1.5e38; the unsplit form kept for PyTorch's non-finite cases must not
    overflow on the way (with its unit pos weight taken as 2 it would: 2 * -3e38 is -inf)."""
    x = np.array([-3e38, 1.0], dtype=np.float32)
    y = np.array([0.5, 0.5], dtype=np.float32)
    loss, _ = _run("binary_cross_entropy_with_logits", "reference", (x, y, None, None), {"reduction": "none"})
    want = np.array([1.5e38, 0.5 + np.log1p(np.exp(-1.0))], dtype=np.float32)
    np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_smooth_l1_at_a_difference_of_exactly_beta_takes_the_linear_branch():
    """|x - y| = beta takes |d| - beta/2, as PyTorch's ``z < beta ? 0.5 z^2 / beta : z - 0.5 beta``:
    the two branches agree there in exact arithmetic, but with beta = 1e30 in float32 the square
    branch overflows (d * d = inf) where the linear one gives 5e29."""
    x = np.array([1e30, -1e30, 0.5], dtype=np.float32)
    y = np.zeros(3, dtype=np.float32)
    loss, gx = _run("smooth_l1_loss", "reference", (x, y), {"reduction": "none", "beta": 1e30})
    np.testing.assert_array_equal(loss, np.array([5e29, 5e29, 0.5 * 0.25 / 1e30], dtype=np.float32))
    np.testing.assert_array_equal(gx, np.array([1.0, -1.0, 0.5 / 1e30], dtype=np.float32))


# x - y, (x - y)^2 and 2 (x - y) past float32's range: inf, silently (PyTorch's values, float32)
OVERFLOW = {
    "l1_loss": ({}, [INF, INF, 2e19], [1.0, -1.0, 1.0]),
    "mse_loss": ({}, [INF, INF, INF], [INF, -INF, 4e19]),
    "smooth_l1_loss-beta1": ({"beta": 1.0}, [INF, INF, 2e19], [1.0, -1.0, 1.0]),
    "smooth_l1_loss-beta1e30": ({"beta": 1e30}, [INF, INF, 1.9999998e8], [1.0, -1.0, 2e-11]),
}


@pytest.mark.parametrize("case", OVERFLOW.keys())
def test_a_difference_past_float32s_range_is_inf_silently(case):
    """x - y = +-6e38 overflows float32, and (2e19)^2 does: PyTorch gives inf without a word;
    so must refcnn, through the registry and called directly."""
    config, want_loss, want_grad = OVERFLOW[case]
    x = np.array([3e38, -3e38, 2e19], dtype=np.float32)
    y = np.array([-3e38, 3e38, 0.0], dtype=np.float32)
    loss, gx = _run(case.split("-")[0], "reference", (x, y), {"reduction": "none", **config})
    np.testing.assert_allclose(loss, np.array(want_loss, dtype=np.float32), rtol=1e-7, err_msg=f"{case}: loss")
    np.testing.assert_allclose(gx, np.array(want_grad, dtype=np.float32), rtol=1e-7, err_msg=f"{case}: dL/dx")


@pytest.mark.parametrize("op", ["l1_loss", "mse_loss", "smooth_l1_loss"])
def test_a_gradient_past_float32s_range_is_inf_silently(op):
    """grad_loss 3e38 (reduction sum passes it to every element as is) times the slope: 2e10 for
    mse, past float32's range (inf, -inf), and +-1 for the others; PyTorch answers without a
    warning either way."""
    x = np.array([1e10, -1e10], dtype=np.float32)
    y = np.zeros(2, dtype=np.float32)
    config = {"reduction": "sum", **({"beta": 1.0} if op == "smooth_l1_loss" else {})}
    kernel = kernels.get(op, "reference")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, ctx = kernel.forward_impl(x, y, **config)
        (gx,) = kernel.backward_impl(np.float32(3e38), ctx)
    want = [INF, -INF] if op == "mse_loss" else [3e38, -3e38]
    np.testing.assert_array_equal(gx, np.array(want, dtype=np.float32), err_msg=op)


@pytest.mark.parametrize("impl", CE_IMPLS)
def test_cross_entropy_divides_by_the_weight_sum_taken_in_float64(impl):
    """As nll_loss: class weights (2**24, 1), targets (0, 1, 1, 1) and equal logits, so every
    row's -log_softmax is L = float32(log 2) and the weighted mean is L exactly: the products
    2**24 L and the float64 sum (2**24 + 3) L are exact. A float32 divisor would be 2**24 and
    the mean L (1 + 1.8e-7), an ulp or two off."""
    x = np.zeros((4, 2), dtype=np.float32)
    weight = np.array([2.0**24, 1.0], dtype=np.float32)
    config = {"ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0}
    loss, _ = _run("cross_entropy", impl, (x, np.array([0, 1, 1, 1]), weight), config)
    want = np.float32(np.log(np.float32(2)))
    assert loss.dtype == np.float32 and loss == want, f"{impl}: mean weighted loss {loss!r}, want {want!r}"
