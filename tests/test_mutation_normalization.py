"""The normalisation kernels called directly (they are exported: ``__all__``), outside the
registry's errstate, on the IEEE edges PyTorch answers silently: eps = 0 on a constant set
(1/sqrt(0) = inf, then 0 * inf = nan), an inf in the input (inf - inf = nan) and, for the
backward kernels, a zero gradient meeting rstd = inf or an inf gradient meeting xhat = 0. Each kernel
must give PyTorch's values (expected values below are torch 2.13's, float64) with no NumPy
warning: its own errstate, not the registry's, has to cover these. Mutation testing
(tox -e mutation) found the kernels' errstate arguments unchecked: every earlier test went
through the registry, which silences "invalid" for every op.

The second half pins the validators' boundaries as PyTorch draws them (one group, x exactly
normalized_shape, zero-size dims accepted; a float or bool dim refused) and each rejection
as one exact line naming the op, the argument and the value: the mutation pre-scan found
names and boundaries that only unanchored matches or no test checked."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from refcnn.kernels import normalization as nk

nan, inf = np.nan, np.inf

BN = {
    "reference": (nk.batch_norm_reference_forward, nk.batch_norm_reference_backward),
    "fast": (nk.batch_norm_fast_forward, nk.batch_norm_fast_backward),
}


def _silently(forward, backward, x, params, gy_at=None, **config):
    """forward then backward (gy = 1, 2, 3, ... in C order, with gy[index] = value for each
    (index, value) in gy_at) with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = forward(x, *params, **config)
        gy = np.arange(1.0, y.size + 1).reshape(y.shape)
        for index, value in gy_at or ():
            gy[index] = value
        grads = backward(gy, ctx)
    return y, grads


def _check(name, got, want):
    np.testing.assert_allclose(got, np.asarray(want).reshape(np.shape(got)), rtol=1e-12, atol=1e-12, err_msg=name)


# x (2, 2, 3): channel 0 constant over the batch, channel 1 not
X_BN = np.array([[[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]], [[1.0, 1.0, 1.0], [3.0, 4.0, 5.0]]])
W_BN, B_BN = np.array([2.0, 3.0]), np.array([0.5, -1.0])


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_batch_norm_eval_eps0_on_a_zero_running_var_is_nan_and_inf_silently(impl):
    # channel 0: running_var 0 and eps 0, so rstd = 1/sqrt(0) = inf and xhat = 0 * inf = nan
    y, (gx, gw, gb) = _silently(
        *BN[impl], X_BN, (W_BN, B_BN, np.array([1.0, 2.0]), np.array([0.0, 1.0])), training=False, momentum=0.1, eps=0.0
    )
    _check("y", y, [nan, nan, nan, -7.0, -4.0, -1.0, nan, nan, nan, 2.0, 5.0, 8.0])
    _check("gx", gx, [inf, inf, inf, 12.0, 15.0, 18.0, inf, inf, inf, 30.0, 33.0, 36.0])
    _check("gw", gw, [nan, 55.0])
    _check("gb", gb, [30.0, 48.0])


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_batch_norm_train_with_an_inf_is_nan_in_that_channel_silently(impl):
    x = X_BN.copy()
    x[0, 1, 2] = inf  # channel 1's mean is inf, and inf - inf = nan
    rm, rv = np.zeros(2), np.ones(2)
    y, (gx, gw, gb) = _silently(*BN[impl], x, (W_BN, B_BN, rm, rv), training=True, momentum=0.1, eps=1e-5)
    _check("y", y, [0.5, 0.5, 0.5, nan, nan, nan, 0.5, 0.5, 0.5, nan, nan, nan])
    c = 1264.9110640673516  # channel 0: xhat = 0, so gx = w * rstd * (g - mean(g)), rstd = 1/sqrt(1e-5)
    _check("gx", gx, [-2 * c, -1.5 * c, -c, nan, nan, nan, c, 1.5 * c, 2 * c, nan, nan, nan])
    _check("gw", gw, [0.0, nan])
    _check("gb", gb, [30.0, 48.0])
    _check("running_mean", rm, [0.1, inf])  # PyTorch: the inf reaches the running statistics
    _check("running_var", rv, [0.9, nan])


def test_group_norm_eps0_on_a_constant_group_is_nan_silently():
    x = np.arange(24.0).reshape(2, 4, 3)
    x[0, :2] = 7.0  # sample 0, group 0 (channels 0 and 1): constant
    w, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 1.0, 0.0, -1.0])
    y, (gx, gw, gb) = _silently(nk.group_norm_forward, nk.group_norm_backward, x, (w, b), num_groups=2, eps=0.0)
    # sample 0, group 0 is nan; the rest is finite
    _check("y[0, 2:]", y[0, 2:], [-4.3915503282684005, -2.6349301969610406, -0.8783100656536806,
                                  0.1710800875382401, 2.51324026261472, 4.8554004376912])  # fmt: skip
    assert np.isnan(y[0, :2]).all() and np.isnan(gx[0, :2]).all()
    _check("gx[1]", gx[1], [1.5893229759447536, -1.0372423632481542, -3.663807702441069, 3.078267658671944,
                            1.0372423632481542, -1.003782932175632, 2.0912144420325802, -1.438755536118407,
                            -4.96872551426938, 4.383185470500273, 1.438755536118407, -1.5056743982634373])  # fmt: skip
    _check("gw", gw, [nan, nan, -71.43588533983264, 91.92978687175183])
    _check("gb", gb, [48.0, 66.0, 84.0, 102.0])


XL = np.array([[1.0, 2.0, 4.0, 8.0], [5.0, 5.0, 5.0, 5.0], [0.0, -1.0, 1.0, 3.0]])
WL, BL = np.array([1.0, -1.0, 2.0, 0.5]), np.zeros(4)


def test_layer_norm_eps0_on_a_constant_row_is_nan_silently():
    y, (gx, gw, gb) = _silently(
        nk.layer_norm_forward, nk.layer_norm_backward, XL, (WL, BL), normalized_shape=(4,), eps=0.0
    )
    _check("y", y, [-1.025755289064345, 0.6527533657682196, 0.18650096164806276, 0.7926290870042667, nan, nan, nan, nan,
                    -0.50709255283711, 1.1832159566199232, 0.3380617018914066, 0.7606388292556648])  # fmt: skip
    _check("gx", gx, [0.1037918395258785, -1.1546842147253973, 1.550390602917809, -0.4994982277182899, nan, nan, nan, nan,
                      3.2453923381575027, -7.302132760854383, 9.73617701447251, -5.679436591775629])  # fmt: skip
    _check("gw", gw, [nan, nan, nan, nan])
    _check("gb", gb, [15.0, 18.0, 21.0, 24.0])


def test_layer_norm_with_a_minus_inf_is_nan_in_that_row_silently():
    x = XL.copy()
    x[2, 1] = -inf
    y, (gx, gw, gb) = _silently(
        nk.layer_norm_forward, nk.layer_norm_backward, x, (WL, BL), normalized_shape=(4,), eps=1e-5
    )
    _check("y", y, [-1.0257545754961932, 0.6527529116793956, 0.18650083190839875, 0.7926285356106947, 0.0, 0.0, 0.0, 0.0,
                    nan, nan, nan, nan])  # fmt: skip
    _check("gx", gx, [0.10379123369861287, -1.1546837510467656, 1.5503895728976431, -0.4994970555494904,
                      237.17082451262831, -3241.3346016725886, 3083.2207186641695, -79.05694150420959,
                      nan, nan, nan, nan])  # fmt: skip
    _check("gw", gw, [nan, nan, nan, nan])
    _check("gb", gb, [15.0, 18.0, 21.0, 24.0])


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_batch_norm_eval_backward_of_a_zero_gradient_times_an_infinite_rstd_is_nan_silently(impl):
    _y, (gx, gw, gb) = _silently(
        *BN[impl],
        X_BN,
        (W_BN, B_BN, np.array([1.0, 2.0]), np.array([0.0, 1.0])),
        gy_at=[((0, 0, 1), 0.0)],
        training=False,
        momentum=0.1,
        eps=0.0,
    )
    _check("gx", gx, [inf, nan, inf, 12.0, 15.0, 18.0, inf, inf, inf, 30.0, 33.0, 36.0])
    _check("gw", gw, [nan, 55.0])
    _check("gb", gb, [28.0, 48.0])


def test_layer_norm_backward_of_an_inf_gradient_on_a_constant_row_is_nan_silently():
    # row 1 is constant: xhat = 0 there, so dL/dw takes inf * 0 = nan and dL/dx inf - inf = nan
    _y, (gx, gw, gb) = _silently(
        nk.layer_norm_forward,
        nk.layer_norm_backward,
        XL,
        (WL, BL),
        gy_at=[((1, 2), inf)],
        normalized_shape=(4,),
        eps=1e-5,
    )
    _check("gx", gx, [0.10379123369861287, -1.1546837510467656, 1.5503895728976431, -0.4994970555494904, nan, nan, nan, nan,
                      3.2453770385302443, -7.302134460752917, 9.736157387634272, -5.679399965411601])  # fmt: skip
    _check("gw", gw, [-5.589577119447718, -13.137638344714595, nan, 24.596318460691656])
    _check("gb", gb, [15.0, 18.0, inf, 24.0])


def test_group_norm_backward_of_an_inf_gradient_on_a_constant_group_is_nan_silently():
    x = np.arange(24.0).reshape(2, 4, 3)
    x[0, :2] = 7.0  # sample 0, group 0: constant, xhat = 0 (eps > 0)
    w, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 1.0, 0.0, -1.0])
    _y, (gx, gw, gb) = _silently(
        nk.group_norm_forward, nk.group_norm_backward, x, (w, b), gy_at=[((0, 1, 1), inf)], num_groups=2, eps=1e-5
    )
    assert np.isnan(gx[0, :2]).all(), gx[0, :2]
    _check("gx[0, 2:]", gx[0, 2:], [1.0873998191539815, -0.6357459964829015, -2.3588918121197846,
                                    1.7733527721310205, 0.6357459964829051, -0.5018607791652094])  # fmt: skip
    _check("gw", gw, [-35.7178814393149, nan, -71.4357628786298, 91.92962927823672])
    _check("gb", gb, [48.0, inf, 84.0, 102.0])


# ---- the per-channel vectors' type and dtype checks: one line naming op, argument and value ----
def _bn_args(**change):
    args = {"weight": None, "bias": None, "running_mean": np.zeros(3), "running_var": np.ones(3)}
    args.update(change)
    return args


@pytest.mark.parametrize("name", ["weight", "bias", "running_mean", "running_var"])
@pytest.mark.parametrize(
    "bad, got",
    [([1.0, 2.0, 3.0], "a numpy.ndarray, got list"), (np.ones(3, np.int64), "float32 or float64, got dtype int64")],
    ids=["list", "int64"],
)
def test_batch_norm_vector_of_the_wrong_type_is_named(name, bad, got):
    a = _bn_args(**{name: bad})
    x = np.ones((2, 3, 4))
    with pytest.raises(TypeError, match=f"^{re.escape(f'batch_norm: {name} must be {got}')}$"):
        nk.validate_batch_norm(
            x, a["weight"], a["bias"], a["running_mean"], a["running_var"], training=False, momentum=0.1, eps=1e-5
        )


@pytest.mark.parametrize("name", ["weight", "bias"])
def test_group_norm_vector_of_the_wrong_dtype_is_named(name):
    params = {"weight": None, "bias": None, name: np.ones(4, np.float16)}
    with pytest.raises(
        TypeError, match=f"^{re.escape(f'group_norm: {name} must be float32 or float64, got dtype float16')}$"
    ):
        nk.validate_group_norm(np.ones((2, 4, 3)), params["weight"], params["bias"], num_groups=2, eps=1e-5)


VALIDATE_WITH_EPS = {
    "batch_norm": lambda eps: nk.validate_batch_norm(
        np.ones((2, 3)), None, None, None, None, training=True, momentum=0.1, eps=eps
    ),
    "group_norm": lambda eps: nk.validate_group_norm(np.ones((2, 4)), None, None, num_groups=2, eps=eps),
    "layer_norm": lambda eps: nk.validate_layer_norm(np.ones((2, 4)), None, None, normalized_shape=(4,), eps=eps),
}


@pytest.mark.parametrize("op", list(VALIDATE_WITH_EPS))
@pytest.mark.parametrize("eps", ["1e-5", True, None, np.ones(1)], ids=["str", "bool", "None", "array"])
def test_an_eps_that_is_not_a_real_number_is_named_with_the_op(op, eps):
    with pytest.raises(TypeError, match=f"^{re.escape(f'{op}: eps must be a real number, got {eps!r}')}$"):
        VALIDATE_WITH_EPS[op](eps)


VALIDATE_X = {
    "batch_norm": lambda x: nk.validate_batch_norm(x, None, None, None, None, training=True, momentum=0.1, eps=1e-5),
    "group_norm": lambda x: nk.validate_group_norm(x, None, None, num_groups=1, eps=1e-5),
    "layer_norm": lambda x: nk.validate_layer_norm(x, None, None, normalized_shape=(2,), eps=1e-5),
}


@pytest.mark.parametrize("op", list(VALIDATE_X))
@pytest.mark.parametrize(
    "x, got",
    [([[1.0, 2.0]], "a numpy.ndarray, got list"), (np.ones((2, 2), np.int32), "float32 or float64, got dtype int32")],
    ids=["list", "int32"],
)
def test_an_x_of_the_wrong_type_is_named_with_the_op(op, x, got):
    with pytest.raises(TypeError, match=f"^{re.escape(f'{op}: x must be {got}')}$"):
        VALIDATE_X[op](x)


def test_group_norm_with_one_group_normalises_each_sample_whole():
    # num_groups=1 is valid (PyTorch): one set per sample, over all its channels and positions
    x = np.array([[[0.0, 2.0], [4.0, 6.0]], [[1.0, 1.0], [1.0, 5.0]]])
    nk.validate_group_norm(x, None, None, num_groups=1, eps=0.0)
    y, _ = _silently(nk.group_norm_forward, nk.group_norm_backward, x, (None, None), num_groups=1, eps=0.0)
    s = np.sqrt(5.0)  # sample 0: mean 3, var 5; sample 1: mean 2, var 3
    _check("y", y, [-3 / s, -1 / s, 1 / s, 3 / s, -1 / np.sqrt(3), -1 / np.sqrt(3), -1 / np.sqrt(3), 3 / np.sqrt(3)])


X_GN = np.ones((2, 4, 3))


@pytest.mark.parametrize(
    "params, exc, message",
    [
        (dict(num_groups=3), ValueError, "group_norm: expected the number of channels of x to be divisible by "
                                         "num_groups, got x of shape (2, 4, 3) and num_groups=3"),
        (dict(num_groups=0), ValueError, "group_norm: num_groups must be >= 1, got 0"),
        (dict(num_groups=2.0), TypeError, "group_norm: num_groups must be an int, got 2.0"),
        (dict(weight=np.ones(3)), ValueError,
         "group_norm: weight should contain 4 elements (one per channel of x of shape (2, 4, 3)), got shape (3,)"),
        (dict(bias=np.ones((4, 1))), ValueError,
         "group_norm: bias should contain 4 elements (one per channel of x of shape (2, 4, 3)), got shape (4, 1)"),
        (dict(weight=np.ones(4, np.float32)), TypeError, "group_norm: all arrays must share one dtype, got x=float64, weight=float32"),
        (dict(bias=np.ones(4, np.float32)), TypeError, "group_norm: all arrays must share one dtype, got x=float64, bias=float32"),
    ],
    ids=["groups-3-of-4", "groups-0", "groups-float", "weight-3", "bias-4x1", "weight-f32", "bias-f32"],
)  # fmt: skip
def test_group_norm_rejects_with_one_line_naming_the_value(params, exc, message):
    call = {"weight": None, "bias": None, "num_groups": 2, **params}
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        nk.validate_group_norm(X_GN, call["weight"], call["bias"], num_groups=call["num_groups"], eps=1e-5)


@pytest.mark.parametrize(
    "shape, G",
    [((1, 2, 2), 1), ((2, 4, 2), 4), ((1, 2, 3, 1), 2), ((1, 2, 1, 3), 2)],
    ids=["1x2x2-G1", "2x4x2-G4", "1x2x3x1-G2", "1x2x1x3-G2"],
)  # as many sets as values per set, or one set per group over a plane of H x 1 or 1 x W: PyTorch accepts these
def test_group_norm_accepts_more_than_one_value_per_batch_norm_channel(shape, G):
    # PyTorch's check runs on [N*C/G, G, *spatial]: it refuses only N*C/G * prod(spatial) == 1
    nk.validate_group_norm(np.ones(shape), None, None, num_groups=G, eps=1e-5)


def test_group_norm_refuses_a_single_value_per_batch_norm_channel():
    with pytest.raises(
        ValueError, match=re.escape("Expected more than 1 value per channel when training, got input size [1, 2]")
    ):
        nk.validate_group_norm(np.ones((1, 2)), None, None, num_groups=2, eps=1e-5)


@pytest.mark.parametrize(
    "normalized_shape",
    [(4.0,), (2, np.float64(2.0)), (True,)],
    ids=["float", "np-float-second", "bool"],
)
def test_layer_norm_normalized_shape_must_be_a_tuple_of_ints(normalized_shape):
    # a float or a bool among the dims is refused (PyTorch: "expected int"), naming the value
    message = f"layer_norm: normalized_shape must be a tuple of ints, got {normalized_shape!r}"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        nk.validate_layer_norm(np.ones((3, 1)), None, None, normalized_shape=normalized_shape, eps=1e-5)


@pytest.mark.parametrize(
    "shape, normalized_shape",
    [((4,), (4,)), ((2, 3), (2, 3)), ((2, 0), (0,)), ((0, 3), (3,))],
    ids=["1d-whole", "2d-whole", "empty-set", "empty-batch"],
)
def test_layer_norm_accepts_x_that_is_exactly_normalized_shape_or_empty(shape, normalized_shape):
    # PyTorch: x.ndim == len(normalized_shape) is one set; a dim of 0 gives an empty output
    nk.validate_layer_norm(np.ones(shape), None, None, normalized_shape=normalized_shape, eps=1e-5)
    y, _ = nk.layer_norm_forward(np.ones(shape), None, None, normalized_shape=normalized_shape, eps=1e-5)
    assert y.shape == shape


@pytest.mark.parametrize(
    "params, exc, message",
    [
        (dict(bias=np.ones(3)), ValueError, "layer_norm: bias must have the shape normalized_shape=(4,), got (3,)"),
        (dict(weight=np.ones((1, 4))), ValueError, "layer_norm: weight must have the shape normalized_shape=(4,), got (1, 4)"),
        (dict(bias=np.ones(4, np.int64)), TypeError, "layer_norm: bias must be float32 or float64, got dtype int64"),
        (dict(weight=[1.0] * 4), TypeError, "layer_norm: weight must be a numpy.ndarray, got list"),
        (dict(bias=np.ones(4, np.float32)), TypeError, "layer_norm: all arrays must share one dtype, got x=float64, bias=float32"),
        (dict(weight=np.ones(4, np.float32), bias=np.ones(4, np.float32)), TypeError,
         "layer_norm: all arrays must share one dtype, got x=float64, weight=float32, bias=float32"),
    ],
    ids=["bias-3", "weight-1x4", "bias-int64", "weight-list", "bias-f32", "both-f32"],
)  # fmt: skip
def test_layer_norm_rejects_with_one_line_naming_the_value(params, exc, message):
    call = {"weight": None, "bias": None, **params}
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        nk.validate_layer_norm(np.ones((2, 4)), call["weight"], call["bias"], normalized_shape=(4,), eps=1e-5)


# ---- batch_norm's reference backward: the textbook chain rule, every term of it ------------------
def test_batch_norm_reference_backward_keeps_the_mean_terms_that_cancel_a_rounded_float32_mean():
    """dmu's dvar * (-2/M) * sum(x - mu) is zero in exact arithmetic, but the forward's float32
    mean is rounded, so the stored x - mu does not sum to zero; with the term, the error of the
    mean cancels out of dx (to first order). Values 256 + k/256 are exact in float32, so the only
    error besides the kernel's roundings is the mean's. Measured: the float32 reference is 6.6e-7
    of the largest gradient from the exact one; without the term, or with its sign or factor
    changed, 2e-5 to 8e-5 (the bound below, 4e-6, is about 32 float32 roundings)."""
    rng = np.random.default_rng(0)
    k = rng.integers(-200, 200, size=(64, 3, 31))
    x = (256 + k / 256).astype(np.float32)
    gy = k / 200 + 0.1 * rng.standard_normal(k.shape)  # correlated with x - mu: dvar is large
    gy = (gy - gy.mean(axis=(0, 2), keepdims=True)).astype(np.float32)
    _, ctx = nk.batch_norm_reference_forward(x, None, None, None, None, training=True, momentum=0.1, eps=1e-5)
    assert np.abs(ctx.xc.sum(axis=(0, 2), dtype=np.float64)).min() > 1e-3, "the float32 mean came out exact"
    gx, _, _ = nk.batch_norm_reference_backward(gy, ctx)

    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    xhat = (x64 - x64.mean(axis=(0, 2), keepdims=True)) / np.sqrt(x64.var(axis=(0, 2), keepdims=True) + 1e-5)
    want = (
        g64 - g64.mean(axis=(0, 2), keepdims=True) - xhat * (g64 * xhat).mean(axis=(0, 2), keepdims=True)
    ) / np.sqrt(x64.var(axis=(0, 2), keepdims=True) + 1e-5)
    err = np.abs(gx - want).max() / np.abs(want).max()
    assert err < 4e-6, f"dL/dx is {err:.2e} of the largest gradient off the exact one"


def _told_no_input_grad(backward, gy, ctx, case):
    """backward with needs_input_grad=False: no dL/dx, and the parameter gradients of a full
    backward. Returns dL/db."""
    gx, gw, gb = backward(gy, ctx, needs_input_grad=False)
    assert gx is None, f"{case}: gave a dL/dx it was told is not needed: {gx!r}"
    _, gw_full, gb_full = backward(gy, ctx)
    np.testing.assert_array_equal(gw, gw_full, err_msg=f"{case}: dL/dw")
    np.testing.assert_array_equal(gb, gb_full, err_msg=f"{case}: dL/db")
    return gb


@pytest.mark.parametrize("shape", [(3, 2, 4), (0, 2, 4)], ids=["batch3", "empty-batch"])
@pytest.mark.parametrize("impl", BN.keys())
def test_batch_norm_backward_without_needs_input_grad_gives_no_input_gradient(impl, shape):
    forward, backward = BN[impl]
    x = np.random.default_rng(1).standard_normal(shape)
    w, b = np.array([1.5, -0.5]), np.array([0.25, 2.0])
    y, ctx = forward(x, w, b, None, None, training=True, momentum=0.1, eps=1e-5)
    gy = np.arange(1.0, y.size + 1).reshape(y.shape)
    gb = _told_no_input_grad(backward, gy, ctx, f"{impl} {shape}")
    want_gb = gy.sum(axis=(0, 2))  # zeros for an empty batch, as PyTorch gives
    assert gb.dtype == x.dtype, f"{impl} {shape}: dL/db is {gb.dtype}, x is {x.dtype}"
    np.testing.assert_allclose(gb, want_gb, rtol=1e-12, atol=0, err_msg=f"{impl} {shape}: dL/db")


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-weight"])
@pytest.mark.parametrize("shape", [(0, 2), (0, 2, 5), (0, 2, 3, 4)], ids=["0x2", "0x2x5", "0x2x3x4"])
@pytest.mark.parametrize("impl", BN.keys())
def test_batch_norm_backward_of_an_empty_batch_is_empty_like_x(impl, shape, affine):
    """An empty batch (PyTorch accepts N = 0 in training): dL/dx is empty in x's shape and dtype
    (float32 here), the parameter gradients zeros of x's dtype."""
    forward, backward = BN[impl]
    x = np.zeros(shape, dtype=np.float32)
    w, b = (np.array([1.5, -0.5], np.float32), np.array([0.25, 2.0], np.float32)) if affine else (None, None)
    y, ctx = forward(x, w, b, None, None, training=True, momentum=0.1, eps=1e-5)
    gx, gw, gb = backward(np.zeros_like(y), ctx)
    assert gx.shape == x.shape and gx.dtype == x.dtype, f"{impl}: dL/dx {gx.shape} {gx.dtype}"
    for name, g in [("dL/dw", gw), ("dL/db", gb)]:
        if affine:
            assert g.dtype == x.dtype, f"{impl}: {name} is {g.dtype}"
            np.testing.assert_array_equal(g, [0.0, 0.0], err_msg=f"{impl}: {name}")
        else:
            assert g is None, f"{impl}: {name} without the parameter"


# ---- batch_norm's validator: each argument's own line ---------------------------------------------
BN_VECTORS = ["weight", "bias", "running_mean", "running_var"]


def _bn_call(**change):
    args = {name: np.ones(3) for name in BN_VECTORS} | {"training": True, "momentum": 0.1, "eps": 1e-5} | change
    return lambda: nk.validate_batch_norm(
        np.ones((2, 3)),
        *(args[name] for name in BN_VECTORS),
        training=args["training"],
        momentum=args["momentum"],
        eps=args["eps"],
    )


@pytest.mark.parametrize("name", BN_VECTORS)
def test_batch_norm_vector_of_the_other_float_dtype_is_named(name):
    listed = ", ".join(f"{k}={'float32' if k == name else 'float64'}" for k in ["x", *BN_VECTORS])
    with pytest.raises(TypeError, match=f"^{re.escape(f'batch_norm: all arrays must share one dtype, got {listed}')}$"):
        _bn_call(**{name: np.ones(3, np.float32)})()


def test_batch_norm_momentum_that_is_not_a_real_number_is_named():
    message = "batch_norm: momentum must be a real number, got '0.1'"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        _bn_call(momentum="0.1")()


@pytest.mark.parametrize("name", ["running_mean", "running_var"])
def test_batch_norm_read_only_running_statistic_in_training_is_named(name):
    frozen = np.ones(3)
    frozen.flags.writeable = False
    message = f"batch_norm: {name} must be writeable: training updates it in place"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _bn_call(**{name: frozen})()
    _bn_call(**{name: frozen, "training": False})()  # evaluation only reads it


# ---- group_norm / layer_norm backward, called directly -------------------------------------------
NORMS = {
    "group_norm": (nk.group_norm_forward, nk.group_norm_backward, (2, 4, 0), {"num_groups": 2}, 4),
    "layer_norm": (nk.layer_norm_forward, nk.layer_norm_backward, (3, 0), {"normalized_shape": (0,)}, 0),
}


@pytest.mark.parametrize("op", NORMS.keys())
def test_norm_backward_of_empty_sets_is_empty_like_x(op):
    """Sets of no values (a zero-size plane, PyTorch accepts it): dL/dx is empty in x's shape and
    dtype, and dL/db zeros of x's dtype."""
    forward, backward, shape, config, C = NORMS[op]
    x = np.zeros(shape, dtype=np.float32)
    w, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    if op == "layer_norm":
        w, b = w.reshape(0), b.reshape(0)
    y, ctx = forward(x, w, b, eps=1e-5, **config)
    gx, _, gb = backward(np.zeros_like(y), ctx)
    assert gx.shape == x.shape and gx.dtype == x.dtype, f"{op}: dL/dx {gx.shape} {gx.dtype}"
    assert gb.dtype == x.dtype, f"{op}: dL/db is {gb.dtype}"
    np.testing.assert_array_equal(gb, np.zeros(C), err_msg=f"{op}: dL/db")


@pytest.mark.parametrize(
    ("shape", "groups", "want"),
    [((2, 4, 0, 3), 2, np.nan), ((1, 4, 3, 0), 1, np.nan), ((0, 4, 0, 3), 2, 0.0), ((2, 4, 1, 1), 4, 0.0)],
    ids=["batch2-empty-planes", "one-set-empty-planes", "empty-batch", "one-value-sets"],
)
def test_group_norm_weight_gradient_over_zero_size_planes_is_pytorchs(shape, groups, want):
    # PyTorch 2.13: dw_c = sum_n (ds - db * mean) * rstd with mean = 0/0 = nan, so nan for every
    # channel when there is a sample, and 0 (a sum over no samples) for an empty batch. refcnn
    # gave 0 for both: the sum of g * xhat over no values. Sets of one value are not empty:
    # xhat = 0 there, and dw = 0.
    x = np.zeros(shape, dtype=np.float32)
    w, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    y, ctx = nk.group_norm_forward(x, w, b, num_groups=groups, eps=1e-5)
    _, gw, gb = nk.group_norm_backward(np.ones_like(y), ctx)
    assert gw.dtype == np.float32, gw.dtype
    np.testing.assert_array_equal(gw, np.full(4, want), err_msg=f"dL/dw, x of shape {shape}")
    np.testing.assert_array_equal(gb, np.full(4, y.size / 4), err_msg=f"dL/db, x of shape {shape}")


@pytest.mark.parametrize("op", NORMS.keys())
def test_norm_backward_of_one_value_sets_propagates_an_infinite_gradient(op):
    """Sets of one value have xhat = 0, so dL/dx is 0 there, but an infinite upstream gradient
    makes it inf - inf = nan, as PyTorch 2.13 gives ([[nan], [0.]] for layer_norm over (1,)).
    A kernel that treats one-value sets as empty ones returns 0 instead."""
    forward, backward = NORMS[op][:2]
    x = np.array([[[0.5], [1.0]], [[2.0], [3.0]]], np.float32)
    config = {"num_groups": 2} if op == "group_norm" else {"normalized_shape": (1,)}
    w = np.ones(2 if op == "group_norm" else 1, np.float32)
    _, ctx = forward(x, w, np.zeros_like(w), eps=1e-5, **config)
    g = np.array([[[np.inf], [1.0]], [[1.0], [-2.0]]], np.float32)
    gx = backward(g, ctx)[0]
    np.testing.assert_array_equal(gx, [[[np.nan], [0.0]], [[0.0], [0.0]]], err_msg=f"{op}: dL/dx")


@pytest.mark.parametrize("op", NORMS.keys())
def test_norm_backward_without_needs_input_grad_gives_no_input_gradient(op):
    forward, backward = NORMS[op][:2]
    x = np.random.default_rng(3).standard_normal((2, 4, 3))
    config = {"num_groups": 2} if op == "group_norm" else {"normalized_shape": (4, 3)}
    w = np.linspace(0.5, 2.0, 4) if op == "group_norm" else np.linspace(0.5, 2.0, 12).reshape(4, 3)
    y, ctx = forward(x, w, w + 1, eps=1e-5, **config)
    _told_no_input_grad(backward, np.arange(1.0, y.size + 1).reshape(y.shape), ctx, op)
