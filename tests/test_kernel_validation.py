"""Validator edge cases that mutation testing found unchecked (tox -e mutation): a bound off by
the padding, an `and` for an `or`, an argument of the wrong kind (a list, an int, a bool) that
the validator must name in refcnn's own error rather than let through."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from refcnn import kernels

RNG = np.random.default_rng(0)
CONV = {"stride": (1, 1), "padding": (0, 1), "dilation": (1, 1), "groups": 1}


def _conv2d_float64(x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """Stride-1 cross-correlation, as sums over the padded input (float64)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    kH, kW = w.shape[2:]
    H, W = xp.shape[2] - kH + 1, xp.shape[3] - kW + 1
    y = np.empty((x.shape[0], w.shape[0], H, W))
    for i in range(H):
        for j in range(W):
            y[:, :, i, j] = np.einsum("nchw,ochw->no", xp[:, :, i : i + kH, j : j + kW], w)
    return y + b[:, None, None]


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_conv2d_takes_a_kernel_wider_than_the_input_by_up_to_twice_the_padding(impl):
    # W = 3, padding 1 on each side: a kernel 5 wide fits exactly (one output column); a check
    # that counts the padding once would reject it
    x, w, b = RNG.standard_normal((2, 3, 4, 3)), RNG.standard_normal((5, 3, 3, 5)), RNG.standard_normal(5)
    y, _ = kernels.get("conv2d", impl).forward(x, w, b, **CONV)
    assert y.shape == (2, 5, 2, 1), f"{impl}: shape {y.shape}"
    np.testing.assert_allclose(y, _conv2d_float64(x, w, b, (0, 1)), rtol=1e-12, atol=1e-12, err_msg=impl)


def test_conv2d_rejects_a_kernel_one_wider_than_the_padded_input():
    x, w = np.ones((2, 3, 4, 3)), np.ones((5, 3, 3, 6))
    with pytest.raises(ValueError, match=r"conv2d: calculated padded input size per channel: \(4 x 5\); kernel size "):
        kernels.get("conv2d").forward(x, w, None, **CONV)


@pytest.mark.parametrize("shape", [(1, 2, 3, 0), (1, 2, 0, 3)], ids=["zero-width", "zero-height"])
def test_conv_transpose2d_rejects_an_input_empty_along_one_axis(shape):
    # PyTorch: "Only zero batch or zero channel inputs are supported"
    with pytest.raises(ValueError, match=r"conv_transpose2d: input must have a non-empty height and width"):
        kernels.get("conv_transpose2d").forward(
            np.ones(shape), np.ones((2, 3, 2, 2)), None,
            stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1), groups=1,
        )  # fmt: skip


# ---- loss validators: arguments of the wrong kind ---------------------------------------
X, T, P = np.zeros((3, 4)), np.array([0, 1, 2]), np.full((3, 4), 0.5)
CE = {"ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0}
NLL = {"ignore_index": -100, "reduction": "mean"}

REJECTED: list[tuple[str, str, tuple[Any, ...], dict[str, Any], type[Exception], str]] = [
    ("ce-list-target", "cross_entropy", (X, [0, 1, 2], None), CE, TypeError,
     r"cross_entropy: target must be a numpy.ndarray, got list"),
    ("ce-list-ignore-index", "cross_entropy", (X, T, None), {**CE, "ignore_index": [1]}, TypeError,
     r"cross_entropy: ignore_index must be an int, got \[1\]"),
    ("ce-bool-ignore-index", "cross_entropy", (X, T, None), {**CE, "ignore_index": True}, TypeError,
     r"cross_entropy: ignore_index must be an int, got True"),
    ("ce-list-reduction", "cross_entropy", (X, T, None), {**CE, "reduction": ["mean"]}, ValueError,
     r"cross_entropy: reduction must be 'none', 'mean' or 'sum', got \['mean'\]"),
    ("ce-list-smoothing", "cross_entropy", (X, T, None), {**CE, "label_smoothing": [0.1]}, TypeError,
     r"cross_entropy: label_smoothing must be a float in \[0, 1\], got \[0.1\]"),
    ("ce-bool-smoothing", "cross_entropy", (X, T, None), {**CE, "label_smoothing": True}, TypeError,
     r"cross_entropy: label_smoothing must be a float in \[0, 1\], got True"),
    ("nll-list-target", "nll_loss", (X, [0, 1, 2], None), NLL, TypeError,
     r"nll_loss: target must be a numpy.ndarray, got list"),
    ("nll-list-input", "nll_loss", ([[0.0]], T, None), NLL, TypeError,
     r"nll_loss: input must be a numpy.ndarray, got list"),
    ("mse-int-reduction", "mse_loss", (P, P), {"reduction": 0}, ValueError,
     r"mse_loss: reduction must be 'none', 'mean' or 'sum', got 0"),
    ("smooth-l1-list-target", "smooth_l1_loss", (X, X.tolist()), {"reduction": "mean", "beta": 1.0}, TypeError,
     r"smooth_l1_loss: target must be a numpy.ndarray, got list"),
    ("smooth-l1-list-beta", "smooth_l1_loss", (X, X), {"reduction": "mean", "beta": [1.0]}, ValueError,
     r"smooth_l1_loss: beta must be a float >= 0, got \[1.0\]"),
    ("smooth-l1-bool-beta", "smooth_l1_loss", (X, X), {"reduction": "mean", "beta": True}, ValueError,
     r"smooth_l1_loss: beta must be a float >= 0, got True"),
    ("smooth-l1-negative-beta", "smooth_l1_loss", (X, X), {"reduction": "mean", "beta": -0.5}, ValueError,
     r"smooth_l1_loss: beta must be a float >= 0, got -0.5"),
    ("bce-weight-other-rows", "binary_cross_entropy", (P, P, np.ones((2, 4))), {"reduction": "mean"}, ValueError,
     r"binary_cross_entropy: weight of shape \(2, 4\) does not broadcast to the input's shape \(3, 4\)"),
    ("bce-weight-grows", "binary_cross_entropy", (P, P, np.ones((1, 3, 4))), {"reduction": "mean"}, ValueError,
     r"binary_cross_entropy: weight of shape \(1, 3, 4\) does not broadcast to the input's shape \(3, 4\)"),
    ("bce-list-weight", "binary_cross_entropy", (P, P, [1.0]), {"reduction": "mean"}, TypeError,
     r"binary_cross_entropy: weight must be a numpy.ndarray, got list"),
    ("bcel-pos-weight-other-rows", "binary_cross_entropy_with_logits", (P, P, None, np.ones((2, 4))),
     {"reduction": "mean"}, ValueError,
     r"binary_cross_entropy_with_logits: pos_weight of shape \(2, 4\) does not broadcast to the input's shape \(3, 4\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("op", "args", "config", "error", "message"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_loss_validators_reject_arguments_of_the_wrong_kind(op, args, config, error, message):
    with pytest.raises(error, match=message):
        kernels.get(op).forward(*args, **config)


ACCEPTED = [
    ("ce-int-smoothing", "cross_entropy", (X, T, None), {**CE, "label_smoothing": 1}),
    ("ce-numpy-int-ignore-index", "cross_entropy", (X, T, None), {**CE, "ignore_index": np.int64(1)}),
    ("smooth-l1-int-beta", "smooth_l1_loss", (X, X), {"reduction": "mean", "beta": 0}),
    ("bce-weight-broadcasts", "binary_cross_entropy", (P, P, np.ones((3, 1))), {"reduction": "mean"}),
    ("bcel-pos-weight-per-class", "binary_cross_entropy_with_logits", (P, P, None, np.ones(4)), {"reduction": "mean"}),
]


@pytest.mark.parametrize(("op", "args", "config"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_loss_validators_accept_ints_where_pytorch_takes_a_number(op, args, config):
    y, _ = kernels.get(op).forward(*args, **config)
    assert np.isfinite(y).all(), f"{op}: {y}"


# ---- dropout: the error names the op it came from ----------------------------------------
@pytest.mark.parametrize(
    ("op", "x", "config", "message"),
    [
        ("dropout", np.ones((2, 3)), {"p": 1.5}, r"^dropout: dropout probability has to be between 0 and 1"),
        ("dropout2d", np.ones((2, 3)), {"p": 1.5}, r"^dropout2d: dropout probability has to be between 0 and 1"),
        ("dropout2d", np.ones(3), {"p": 0.5}, r"^dropout2d: x must have at least 2 dimensions"),
    ],
    ids=["dropout-p", "dropout2d-p", "dropout2d-1d"],
)
def test_dropout_errors_name_their_op(op, x, config, message):
    with pytest.raises(ValueError, match=message):
        kernels.get(op).forward(x, training=True, generator=np.random.default_rng(0), **config)


def test_linear_rejects_a_0d_input_in_these_words():
    with pytest.raises(ValueError) as info:
        kernels.get("linear").forward(np.array(1.0), np.ones((2, 1)), None)
    assert str(info.value) == "linear: x must have at least 1 dimension (*, in_features), got a 0-D array"


def test_check_float_takes_any_of_a_tuple_of_ranks():
    from refcnn.kernels._checks import check_float

    for a in (np.ones((2, 3)), np.ones((2, 3, 4))):
        check_float("op", "x", a, (2, 3))  # no error
    with pytest.raises(ValueError, match=r"^op: x must be 2-D or 3-D, got shape \(2,\)$"):
        check_float("op", "x", np.ones(2), (2, 3))
