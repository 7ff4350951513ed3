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


# ---- validators: one clear line, naming the op, the argument and the value -------------------------
# Anchored at the start: the op's own name comes first, then the argument's.
X34, T3 = np.zeros((3, 4)), np.array([0, 1, 3])
P23 = np.full((2, 3), 0.5)
CE = {"ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0}
NLL = {"ignore_index": -100, "reduction": "mean"}
MEAN = {"reduction": "mean"}
F32 = np.float32

REJECTED = {
    # cross_entropy: logits
    "ce-logits-list": ("cross_entropy", ([[0.0, 1.0]], np.array([0]), None), CE, TypeError,
                       r"cross_entropy: logits must be a numpy.ndarray, got list$"),
    "ce-logits-int": ("cross_entropy", (np.zeros((3, 4), np.int64), T3, None), CE, TypeError,
                      r"cross_entropy: logits must be float32 or float64, got dtype int64$"),
    "ce-logits-0d": ("cross_entropy", (np.array(1.0), np.array(0), None), CE, ValueError,
                     r"cross_entropy: logits must have a class axis: shape \(C,\), \(N, C\) or \(N, C, d1, \.\.\.\), "
                     r"got shape \(\)$"),
    "ce-logits-no-class-1d": ("cross_entropy", (np.zeros(0), np.array(0), None), CE, ValueError,
                              r"cross_entropy: logits needs at least one class \(C >= 1\), got shape \(0,\)$"),
    "ce-logits-no-class-2d": ("cross_entropy", (np.zeros((2, 0)), np.zeros(2, np.int64), None), CE, ValueError,
                              r"cross_entropy: logits needs at least one class \(C >= 1\), got shape \(2, 0\)$"),
    "ce-logits-no-class-spatial": ("cross_entropy", (np.zeros((2, 0, 3)), np.zeros((2, 3), np.int64), None), CE,
                                   ValueError, r"cross_entropy: logits needs at least one class \(C >= 1\), "
                                   r"got shape \(2, 0, 3\)$"),
    # cross_entropy: the other arguments
    "ce-target-list": ("cross_entropy", (X34, [0, 1, 3], None), CE, TypeError,
                       r"cross_entropy: target must be a numpy.ndarray, got list$"),
    "ce-ignore-index-float": ("cross_entropy", (X34, T3, None), {**CE, "ignore_index": 1.0}, TypeError,
                              r"cross_entropy: ignore_index must be an int, got 1.0$"),
    "ce-ignore-index-numpy-bool": ("cross_entropy", (X34, T3, None), {**CE, "ignore_index": np.bool_(True)},
                                   TypeError, r"cross_entropy: ignore_index must be an int, got np.True_$"),
    "ce-reduction": ("cross_entropy", (X34, T3, None), {**CE, "reduction": "avg"}, ValueError,
                     r"cross_entropy: reduction must be 'none', 'mean' or 'sum', got 'avg'$"),
    "ce-smoothing-str": ("cross_entropy", (X34, T3, None), {**CE, "label_smoothing": "0.1"}, TypeError,
                         r"cross_entropy: label_smoothing must be a float in \[0, 1\], got '0.1'$"),
    "ce-smoothing-numpy-bool": ("cross_entropy", (X34, T3, None), {**CE, "label_smoothing": np.bool_(False)},
                                TypeError, r"cross_entropy: label_smoothing must be a float in \[0, 1\], got np.False_$"),
    "ce-smoothing-above-1": ("cross_entropy", (X34, T3, None), {**CE, "label_smoothing": 1.5}, ValueError,
                             r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5$"),
    "ce-smoothing-int-2": ("cross_entropy", (X34, T3, None), {**CE, "label_smoothing": 2}, ValueError,
                           r"cross_entropy: label_smoothing must be in \[0, 1\], got 2$"),
    "ce-smoothing-negative": ("cross_entropy", (X34, T3, None), {**CE, "label_smoothing": -0.1}, ValueError,
                              r"cross_entropy: label_smoothing must be in \[0, 1\], got -0.1$"),
    "ce-weight-list": ("cross_entropy", (X34, T3, [1.0] * 4), CE, TypeError,
                       r"cross_entropy: weight must be a numpy.ndarray, got list$"),
    "ce-weight-int": ("cross_entropy", (X34, T3, np.ones(4, np.int64)), CE, TypeError,
                      r"cross_entropy: weight must be float32 or float64, got dtype int64$"),
    "ce-weight-length": ("cross_entropy", (X34, T3, np.ones(3)), CE, ValueError,
                         r"cross_entropy: weight must have shape \(C,\) = \(4,\), one entry per class, got \(3,\)$"),
    "ce-weight-unbatched": ("cross_entropy", (np.zeros(4), np.array(1), np.ones(3)), CE, ValueError,
                            r"cross_entropy: weight must have shape \(C,\) = \(4,\), one entry per class, got \(3,\)$"),
    "ce-weight-spatial": ("cross_entropy", (np.zeros((2, 4, 3)), np.zeros((2, 3), np.int64), np.ones(2)), CE,
                          ValueError, r"cross_entropy: weight must have shape \(C,\) = \(4,\), one entry per class, "
                          r"got \(2,\)$"),
    "ce-weight-dtype": ("cross_entropy", (X34, T3, np.ones(4, F32)), CE, TypeError,
                        r"cross_entropy: all arrays must share one dtype, got logits=float64, weight=float32$"),
    # cross_entropy: class-probability targets
    "ce-prob-int": ("cross_entropy", (X34, np.zeros((3, 4), np.int64), None), CE, TypeError,
                    r"cross_entropy: a target of the logits' shape \(3, 4\) holds class probabilities and must be "
                    r"float32 or float64, got dtype int64$"),
    "ce-prob-bool": ("cross_entropy", (X34, np.zeros((3, 4), bool), None), CE, TypeError,
                     r"cross_entropy: a target of the logits' shape \(3, 4\) holds class probabilities .* got dtype bool$"),
    "ce-prob-float16": ("cross_entropy", (X34, np.zeros((3, 4), np.float16), None), CE, TypeError,
                        r"cross_entropy: target must be float32 or float64, got dtype float16$"),
    "ce-prob-ignore-index-0": ("cross_entropy", (X34, np.zeros((3, 4)), None), {**CE, "ignore_index": 0}, ValueError,
                               r"cross_entropy: ignore_index is not supported for class-probability targets, got 0$"),
    "ce-prob-dtype": ("cross_entropy", (X34, np.zeros((3, 4), F32), None), CE, TypeError,
                      r"cross_entropy: all arrays must share one dtype, got logits=float64, target=float32$"),
    "ce-prob-weight-dtype": ("cross_entropy", (X34, np.zeros((3, 4)), np.ones(4, F32)), CE, TypeError,
                             r"cross_entropy: all arrays must share one dtype, got logits=float64, target=float64, "
                             r"weight=float32$"),
    # cross_entropy: class-index targets
    "ce-labels-float": ("cross_entropy", (X34, np.array([0.0, 1.0, 3.0]), None), CE, TypeError,
                        r"cross_entropy: a float target must hold class probabilities of the logits' shape \(3, 4\), "
                        r"got shape \(3,\); class indices must be an int64 or uint8 array of shape \(3,\)$"),
    "ce-labels-float-spatial": ("cross_entropy", (np.zeros((2, 4, 3)), np.zeros((2, 3)), None), CE, TypeError,
                                r"cross_entropy: a float target must hold class probabilities of the logits' shape "
                                r"\(2, 4, 3\), got shape \(2, 3\); class indices must be an int64 or uint8 array of "
                                r"shape \(2, 3\)$"),
    "ce-labels-int32": ("cross_entropy", (X34, T3.astype(np.int32), None), CE, TypeError,
                        r"cross_entropy: class-index target must be an int64 or uint8 array \(PyTorch's Long or Byte\), "
                        r"got dtype int32$"),
    "ce-labels-uint8-spatial": ("cross_entropy", (np.zeros((2, 4, 3)), np.zeros((2, 3), np.uint8), None), CE,
                                TypeError, r"cross_entropy: class-index target for logits of shape \(2, 4, 3\) "
                                r"\(N, C, d1, \.\.\.\) must be int64 \(PyTorch's Long\), got dtype uint8$"),
    "ce-labels-unbatched-(1,)": ("cross_entropy", (np.zeros(4), np.array([1]), None), CE, ValueError,
                                 r"cross_entropy: an unbatched logits of shape \(4,\) takes one class index \(a target "
                                 r"of shape \(\)\), got target of shape \(1,\)$"),
    "ce-labels-length": ("cross_entropy", (X34, np.array([0, 1]), None), CE, ValueError,
                         r"cross_entropy: target must have shape \(N,\) = \(3,\) for logits of shape \(3, 4\), "
                         r"got \(2,\)$"),
    "ce-labels-spatial-shape": ("cross_entropy", (np.zeros((2, 4, 3)), np.zeros((2, 5), np.int64), None), CE,
                                ValueError, r"cross_entropy: target must have shape \(N, d1, \.\.\.\) = \(2, 3\) for "
                                r"logits of shape \(2, 4, 3\), got \(2, 5\)$"),
    "ce-label-C": ("cross_entropy", (X34, np.array([0, 4, 4]), None), CE, IndexError,
                   r"cross_entropy: target label 4 at index \(1,\) is out of range for C=4 classes \(labels must be "
                   r"in \[0, 3\] or equal ignore_index=-100\); 2 of 3 labels are out of range$"),
    "ce-label-minus-1": ("cross_entropy", (X34, np.array([0, 1, -1]), None), CE, IndexError,
                         r"cross_entropy: target label -1 at index \(2,\) is out of range for C=4 classes \(labels "
                         r"must be in \[0, 3\] or equal ignore_index=-100\); 1 of 3 labels are out of range$"),
    "ce-label-spatial": ("cross_entropy", (np.zeros((2, 4, 3)), np.array([[0, 9, 2], [3, 4, 0]]), None),
                         {**CE, "ignore_index": 9}, IndexError,
                         r"cross_entropy: target label 4 at index \(1, 1\) is out of range for C=4 classes \(labels "
                         r"must be in \[0, 3\] or equal ignore_index=9\); 1 of 6 labels are out of range$"),
    "ce-label-unbatched": ("cross_entropy", (np.zeros(4), np.array(4), None), CE, IndexError,
                           r"cross_entropy: target label 4 at index \(\) is out of range for C=4 classes"),
    "ce-label-uint8": ("cross_entropy", (X34, np.array([0, 200, 1], np.uint8), None), CE, IndexError,
                       r"cross_entropy: target label 200 at index \(1,\) is out of range for C=4 classes"),
    "ce-label-huge": ("cross_entropy", (X34, np.array([0, 2**60 + 1, 1]), None), CE, IndexError,
                      r"cross_entropy: target label 1152921504606846977 at index \(1,\) is out of range for C=4"),
    # nll_loss
    "nll-input-list": ("nll_loss", ([[0.0]], np.array([0]), None), NLL, TypeError,
                       r"nll_loss: input must be a numpy.ndarray, got list$"),
    "nll-input-0d": ("nll_loss", (np.array(1.0), np.array(0), None), NLL, ValueError,
                     r"nll_loss: input must have a class axis: shape \(C,\), \(N, C\) or \(N, C, d1, \.\.\.\), "
                     r"got shape \(\)$"),
    "nll-target-list": ("nll_loss", (X34, [0, 1, 3], None), NLL, TypeError,
                        r"nll_loss: target must be a numpy.ndarray, got list$"),
    "nll-ignore-index-str": ("nll_loss", (X34, T3, None), {**NLL, "ignore_index": "-100"}, TypeError,
                             r"nll_loss: ignore_index must be an int, got '-100'$"),
    "nll-reduction": ("nll_loss", (X34, T3, None), {**NLL, "reduction": None}, ValueError,
                      r"nll_loss: reduction must be 'none', 'mean' or 'sum', got None$"),
    "nll-labels-float": ("nll_loss", (X34, np.array([0.0, 1.0, 3.0]), None), NLL, TypeError,
                         r"nll_loss: target must hold class indices, an int64 or uint8 array of shape \(3,\), "
                         r"got dtype float64$"),
    "nll-labels-float-of-input-shape": ("nll_loss", (X34, np.zeros((3, 4)), None), NLL, TypeError,
                                        r"nll_loss: target must hold class indices, an int64 or uint8 array of "
                                        r"shape \(3,\), got dtype float64$"),
    "nll-labels-int32": ("nll_loss", (X34, T3.astype(np.int32), None), NLL, TypeError,
                         r"nll_loss: class-index target must be an int64 or uint8 array"),
    "nll-labels-uint8-spatial": ("nll_loss", (np.zeros((2, 4, 3)), np.zeros((2, 3), np.uint8), None), NLL,
                                 TypeError, r"nll_loss: class-index target for input of shape \(2, 4, 3\) "
                                 r"\(N, C, d1, \.\.\.\) must be int64"),
    "nll-labels-unbatched-(1,)": ("nll_loss", (np.zeros(4), np.array([1]), None), NLL, ValueError,
                                  r"nll_loss: an unbatched input of shape \(4,\) takes one class index"),
    "nll-labels-length": ("nll_loss", (X34, np.array([0, 1]), None), NLL, ValueError,
                          r"nll_loss: target must have shape \(N,\) = \(3,\) for input of shape \(3, 4\), got \(2,\)$"),
    "nll-label-C": ("nll_loss", (X34, np.array([0, 1, 4]), None), NLL, IndexError,
                    r"nll_loss: target label 4 at index \(2,\) is out of range for C=4 classes"),
    "nll-weight-list": ("nll_loss", (X34, T3, [1.0] * 4), NLL, TypeError,
                        r"nll_loss: weight must be a numpy.ndarray, got list$"),
    "nll-weight-length": ("nll_loss", (X34, T3, np.ones(5)), NLL, ValueError,
                          r"nll_loss: weight must have shape \(C,\) = \(4,\), one entry per class, got \(5,\)$"),
    "nll-weight-dtype": ("nll_loss", (X34, T3, np.ones(4, F32)), NLL, TypeError,
                         r"nll_loss: all arrays must share one dtype, got input=float64, weight=float32$"),
}  # fmt: skip

for _op in ("mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"):
    _extra = {"smooth_l1_loss": ((), {"beta": 1.0}), "binary_cross_entropy": ((None,), {}),
              "binary_cross_entropy_with_logits": ((None, None), {})}.get(_op, ((), {}))  # fmt: skip

    def _add(name, x, y, config, error, message, op=_op, extra=_extra):
        REJECTED[f"{op}-{name}"] = (op, (x, y, *extra[0]), {**MEAN, **extra[1], **config}, error, f"{op}: {message}")

    # fmt: off
    _add("input-list", P23.tolist(), P23, {}, TypeError, r"input must be a numpy.ndarray, got list$")
    _add("input-int", np.zeros((2, 3), np.int64), P23, {}, TypeError, r"input must be float32 or float64, got dtype int64$")
    _add("target-list", P23, P23.tolist(), {}, TypeError, r"target must be a numpy.ndarray, got list$")
    _add("target-int", P23, np.zeros((2, 3), np.int64), {}, TypeError, r"target must be float32 or float64, got dtype int64$")
    _add("target-shape", P23, np.full((3, 2), 0.5), {}, ValueError, r"target must have the input's shape \(2, 3\), got \(3, 2\)$")
    _add("target-broadcasts", P23, np.full((1, 3), 0.5), {}, ValueError, r"target must have the input's shape \(2, 3\), got \(1, 3\)$")
    _add("reduction", P23, P23, {"reduction": "batchmean"}, ValueError, r"reduction must be 'none', 'mean' or 'sum', got 'batchmean'$")
    _add("dtypes", P23.astype(F32), P23, {}, TypeError, r"all arrays must share one dtype, got input=float32, target=float64")
    # fmt: on

REJECTED.update({
    "smooth_l1_loss-beta-negative": ("smooth_l1_loss", (P23, P23), {**MEAN, "beta": -1.0}, ValueError,
                                     r"smooth_l1_loss: beta must be a float >= 0, got -1.0$"),
    "smooth_l1_loss-beta-str": ("smooth_l1_loss", (P23, P23), {**MEAN, "beta": "1"}, ValueError,
                                r"smooth_l1_loss: beta must be a float >= 0, got '1'$"),
    "smooth_l1_loss-beta-nan": ("smooth_l1_loss", (P23, P23), {**MEAN, "beta": float("nan")}, ValueError,
                                r"smooth_l1_loss: beta must be a float >= 0, got nan$"),
    # binary_cross_entropy: probabilities, the first one out of [0, 1] named with its index
    "bce-input-above-1": ("binary_cross_entropy", (np.array([[0.5, 0.0, 1.0], [1.0, 0.2, 1.5]]), P23, None), MEAN,
                          ValueError, r"binary_cross_entropy: every element of input must be a probability in \[0, 1\], "
                          r"got 1.5 at index \(1, 2\)$"),
    "bce-input-negative": ("binary_cross_entropy", (np.array([0.5, -0.0, -1e-300]), np.full(3, 0.5), None), MEAN,
                           ValueError, r"binary_cross_entropy: every element of input must be a probability in "
                           r"\[0, 1\], got -1e-300 at index \(2,\)$"),
    "bce-input-nan": ("binary_cross_entropy", (np.array([0.5, np.nan]), np.full(2, 0.5), None), MEAN, ValueError,
                      r"binary_cross_entropy: every element of input must be a probability in \[0, 1\], "
                      r"got nan at index \(1,\)$"),
    "bce-target-above-1": ("binary_cross_entropy", (P23, np.array([[0.0, 1.0, 0.5], [0.5, 1.0000001, 0.5]]), None),
                           MEAN, ValueError, r"binary_cross_entropy: every element of target must be a probability "
                           r"in \[0, 1\], got 1.0000001 at index \(1, 1\)$"),
    "bce-target-nan": ("binary_cross_entropy", (np.full(2, 0.5), np.array([np.nan, 0.5]), None), MEAN, ValueError,
                       r"binary_cross_entropy: every element of target must be a probability in \[0, 1\], "
                       r"got nan at index \(0,\)$"),
    "bce-weight-list": ("binary_cross_entropy", (P23, P23, [1.0]), MEAN, TypeError,
                        r"binary_cross_entropy: weight must be a numpy.ndarray, got list$"),
    "bce-weight-int": ("binary_cross_entropy", (P23, P23, np.ones(3, np.int64)), MEAN, TypeError,
                       r"binary_cross_entropy: weight must be float32 or float64, got dtype int64$"),
    "bce-weight-other-rows": ("binary_cross_entropy", (P23, P23, np.ones((3, 1))), MEAN, ValueError,
                              r"binary_cross_entropy: weight of shape \(3, 1\) does not broadcast to the input's "
                              r"shape \(2, 3\)$"),
    "bce-weight-grows": ("binary_cross_entropy", (P23, P23, np.ones((2, 2, 3))), MEAN, ValueError,
                         r"binary_cross_entropy: weight of shape \(2, 2, 3\) does not broadcast to the input's "
                         r"shape \(2, 3\)$"),
    "bce-weight-dtype": ("binary_cross_entropy", (P23, P23, np.ones(3, F32)), MEAN, TypeError,
                         r"binary_cross_entropy: all arrays must share one dtype, got input=float64, target=float64, "
                         r"weight=float32$"),
    # binary_cross_entropy_with_logits: weight and pos_weight
    "bcel-weight-list": ("binary_cross_entropy_with_logits", (P23, P23, [1.0], None), MEAN, TypeError,
                         r"binary_cross_entropy_with_logits: weight must be a numpy.ndarray, got list$"),
    "bcel-weight-other-rows": ("binary_cross_entropy_with_logits", (P23, P23, np.ones((3, 3)), None), MEAN,
                               ValueError, r"binary_cross_entropy_with_logits: weight of shape \(3, 3\) does not "
                               r"broadcast to the input's shape \(2, 3\)$"),
    "bcel-weight-grows": ("binary_cross_entropy_with_logits", (P23, P23, np.ones((1, 2, 3)), None), MEAN,
                          ValueError, r"binary_cross_entropy_with_logits: weight of shape \(1, 2, 3\) does not "
                          r"broadcast to the input's shape \(2, 3\)$"),
    "bcel-pos-weight-int": ("binary_cross_entropy_with_logits", (P23, P23, None, np.ones(3, np.int64)), MEAN,
                            TypeError, r"binary_cross_entropy_with_logits: pos_weight must be float32 or float64, "
                            r"got dtype int64$"),
    "bcel-pos-weight-grows": ("binary_cross_entropy_with_logits", (P23, P23, None, np.ones((2, 2, 3))), MEAN,
                              ValueError, r"binary_cross_entropy_with_logits: pos_weight of shape \(2, 2, 3\) does "
                              r"not broadcast to the input's shape \(2, 3\)$"),
    "bcel-weight-dtype": ("binary_cross_entropy_with_logits", (P23, P23, np.ones(3, F32), None), MEAN, TypeError,
                          r"binary_cross_entropy_with_logits: all arrays must share one dtype, got input=float64, "
                          r"target=float64, weight=float32$"),
    "bcel-pos-weight-dtype": ("binary_cross_entropy_with_logits", (P23, P23, np.ones(3), np.ones(3, F32)), MEAN,
                              TypeError, r"binary_cross_entropy_with_logits: all arrays must share one dtype, got "
                              r"input=float64, target=float64, weight=float64, pos_weight=float32$"),
})  # fmt: skip


@pytest.mark.parametrize("case", REJECTED.keys())
def test_a_bad_argument_gets_one_error_naming_the_op_the_argument_and_the_value(case):
    op, args, config, error, message = REJECTED[case]
    with pytest.raises(error, match="^" + message) as info:
        kernels.get(op).forward(*args, **config)
    assert "\n" not in str(info.value), f"{case}: more than one line: {info.value}"


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
