"""The shared argument checks (refcnn.kernels._checks), called directly at their boundaries:
what passes, what fails, and the one error line naming the op, the argument and the value.
Every validator is built from these, so a check that drifts (a pair of three ints accepted,
a bool taken for an int, the minimum itself refused) drifts for every op; mutation testing
(tox -e mutation) looks for such drifts that no test notices."""

from __future__ import annotations

import re

import numpy as np
import pytest

from refcnn.kernels import linear
from refcnn.kernels._checks import check_float, check_pair, check_same_dtype


def _raises(exc, message):
    return pytest.raises(exc, match=f"^{re.escape(message)}$")


# ---- check_pair --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [(1, 2), (np.int64(3), 1), (1, np.int32(5)), (1, 1)],
    ids=["ints", "np-int64-first", "np-int32-second", "at-the-minimum"],
)
def test_check_pair_accepts_a_pair_of_ints_at_or_above_the_minimum(value):
    check_pair("op", "stride", value, 1)


@pytest.mark.parametrize(
    "value",
    [(1, 2, 3), (1,), (), [1, 2], (True, 1), (1, False), (1.0, 2), (1, 2.0), (1, "2"), 2, None],
    ids=[
        "three",
        "one",
        "empty",
        "list",
        "bool-first",
        "bool-second",
        "float-first",
        "float-second",
        "str",
        "int",
        "None",
    ],
)
def test_check_pair_refuses_anything_but_a_pair_of_ints(value):
    with _raises(TypeError, f"op: stride must be a pair of ints, got {value!r}"):
        check_pair("op", "stride", value, 1)


@pytest.mark.parametrize(
    "value, minimum",
    [((0, 1), 1), ((1, 0), 1), ((-1, 0), 0), ((2, 1), 2)],
    ids=["0-first", "0-second", "-1-min0", "1-min2"],
)
def test_check_pair_refuses_a_value_below_the_minimum_on_either_axis(value, minimum):
    with _raises(ValueError, f"op: padding must be >= {minimum} on both axes, got {value}"):
        check_pair("op", "padding", value, minimum)


# ---- check_float -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("ndim", [None, 2, (1, 2), (2,)], ids=["any", "2", "1-or-2", "tuple-2"])
def test_check_float_accepts_float32_and_float64_of_an_allowed_ndim(dtype, ndim):
    check_float("op", "x", np.ones((2, 3), dtype), ndim)


@pytest.mark.parametrize(
    "a, message",
    [
        ([1.0], "op: x must be a numpy.ndarray, got list"),
        (1.0, "op: x must be a numpy.ndarray, got float"),
        (np.float64(1.0), "op: x must be a numpy.ndarray, got float64"),
        (np.ones(2, np.float16), "op: x must be float32 or float64, got dtype float16"),
        (np.ones(2, np.int64), "op: x must be float32 or float64, got dtype int64"),
        (np.ones(2, np.complex128), "op: x must be float32 or float64, got dtype complex128"),
        (np.ones(2, bool), "op: x must be float32 or float64, got dtype bool"),
    ],
    ids=["list", "float", "np-scalar", "f16", "i64", "c128", "bool"],
)
def test_check_float_refuses_what_is_not_a_float32_or_float64_array(a, message):
    with _raises(TypeError, message):
        check_float("op", "x", a)


@pytest.mark.parametrize(
    "shape, ndim, message",
    [
        ((2, 3, 4), 2, "op: w must be 2-D, got shape (2, 3, 4)"),
        ((), 1, "op: w must be 1-D, got shape ()"),
        ((5,), (2, 3), "op: w must be 2-D or 3-D, got shape (5,)"),
        ((1, 1, 1, 1), (2, 3), "op: w must be 2-D or 3-D, got shape (1, 1, 1, 1)"),
    ],
    ids=["3d-for-2", "0d-for-1", "1d-for-2or3", "4d-for-2or3"],
)
def test_check_float_refuses_a_wrong_ndim_naming_the_allowed_ones(shape, ndim, message):
    with _raises(ValueError, message):
        check_float("op", "w", np.ones(shape), ndim)


# ---- check_same_dtype --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "arrays",
    [
        {},
        {"x": None, "w": None},
        {"x": np.ones(2, np.float32)},
        {"x": np.ones(2, np.float32), "w": None, "b": np.ones(1, np.float32)},
    ],
    ids=["none-given", "all-None", "one", "None-skipped"],
)
def test_check_same_dtype_accepts_one_dtype_skipping_none(arrays):
    check_same_dtype("op", **arrays)


def test_check_same_dtype_lists_the_given_arrays_in_order_skipping_none():
    arrays = {"x": np.ones(2), "w": None, "b": np.ones(1, np.float32), "rm": np.ones(1)}
    with _raises(TypeError, "op: all arrays must share one dtype, got x=float64, b=float32, rm=float64"):
        check_same_dtype("op", **arrays)


# ---- linear: the fast weight gradient's row blocks, the skipped input gradient, the messages ----
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rows", [255, 256, 257, 600], ids=["255", "256=block", "257", "600=2-blocks-and-tail"])
def test_linear_fast_weight_gradient_over_row_blocks_equals_the_reference(rows, dtype):
    # small integers: every sum is exact in any order, so fast (blocks of SUM_BLOCK rows added
    # in float64) and reference (row by row) must agree exactly, in x's dtype
    rng = np.random.default_rng(rows)
    x = rng.integers(-3, 4, (rows, 5)).astype(dtype)
    w = rng.integers(-3, 4, (3, 5)).astype(dtype)
    gy = rng.integers(-3, 4, (rows, 3)).astype(dtype)
    _, ctx = linear.linear_fast_forward(x, w, None)
    _, gw, gb = linear.linear_fast_backward(gy, ctx)
    _, rctx = linear.linear_reference_forward(x, w, None)
    _, rgw, _ = linear.linear_reference_backward(gy, rctx)
    assert gw.dtype == dtype and gb is None
    np.testing.assert_array_equal(gw, rgw)
    np.testing.assert_array_equal(gw, (gy.astype(np.float64).T @ x.astype(np.float64)).astype(dtype))


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_linear_backward_called_directly_without_the_input_gradient(impl):
    forward, backward = {
        "reference": (linear.linear_reference_forward, linear.linear_reference_backward),
        "fast": (linear.linear_fast_forward, linear.linear_fast_backward),
    }[impl]
    x = np.arange(12.0).reshape(2, 2, 3)
    w, b = np.arange(6.0).reshape(2, 3), np.array([1.0, -1.0])
    _, ctx = forward(x, w, b)
    gy = np.ones((2, 2, 2))
    gx, gw, gb = backward(gy, ctx, needs_input_grad=False)
    if impl == "reference":  # the fast kernel may compute dL/dx anyway (the registry drops it)
        assert gx is None
    np.testing.assert_array_equal(gw, np.ones((4, 2)).T @ x.reshape(4, 3))
    np.testing.assert_array_equal(gb, [4.0, 4.0])


def test_linear_feature_mismatch_names_the_last_dim_of_a_3d_x():
    message = "linear: x has 4 features (last dim of shape (2, 3, 4)) but weight of shape (5, 3) expects 3"
    with _raises(ValueError, message):
        linear.validate_linear(np.ones((2, 3, 4)), np.ones((5, 3)), None)
