"""Loss validator errors that mutation testing (tox -e mutation) found unchecked: each bad
argument (a list, an int, a bool, a wrong dtype or shape, a value out of range) gets one error
line that starts with the op's name and names the argument and the value, as the loss
validators promise; a mutant that drops the op or the argument's name, or lets the value
through, fails here. (The loss kernels' numerical corners are in test_mutation_loss.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from refcnn import kernels

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
