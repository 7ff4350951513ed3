"""dropout, dropout2d kernels and the Dropout, Dropout2d modules.

The mask is random, so the checks are on what must hold for every draw (kept values scaled
exactly by PyTorch's 1/(1 - p), whole channels kept or dropped together, backward reusing
the forward's mask), on reproducibility under a seed, and on the keep rate against a
binomial bound (6 standard deviations, with a fixed seed: deterministic).
"""

import math
import warnings

import numpy as np
import pytest

import refcnn
from refcnn import kernels, nn
from refcnn.testing import assert_gradient

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]


def _scale(p, dtype):
    """PyTorch's kept-value factor: 1 / (1 - p), with 1 - p formed in float64 then rounded."""
    return np.asarray(1, dtype) / dtype(1.0 - p)


def _x(shape, dtype, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


# ---- kernels ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "p", [pytest.param(0.5, id="p0.5"), pytest.param(0.75, id="p0.75"), pytest.param(0.3, id="p0.3")]
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kept_values_are_scaled_exactly(dtype, p):
    x = _x((40, 30), dtype)
    y, _ = kernels.get("dropout").forward(x, p=p, training=True, generator=np.random.default_rng(1))
    assert y.dtype == dtype
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept] * _scale(p, dtype))
    if p in (0.5, 0.75):  # by hand: the factor is 2 or 4, exact in both dtypes
        np.testing.assert_array_equal(y[kept], x[kept] * (1 / (1 - p)))


@pytest.mark.parametrize(
    "op, shape, mask_shape",
    [pytest.param("dropout", (200, 300), (200, 300), id="dropout-200x300"),
     pytest.param("dropout2d", (300, 200, 2, 3), (300, 200), id="dropout2d-300x200x2x3")],
)  # fmt: skip
def test_keep_rate_and_mean_are_preserved(op, shape, mask_shape):
    p = 0.3
    n = math.prod(mask_shape)
    y, _ = kernels.get(op).forward(np.ones(shape), p=p, training=True, generator=np.random.default_rng(7))
    kept = (y != 0).reshape(*mask_shape, -1)[..., 0]
    sigma = math.sqrt(n * p * (1 - p))  # binomial standard deviation of the kept count
    assert abs(kept.sum() - n * (1 - p)) < 6 * sigma
    # E[y] = x: the mean of y is (kept/n) / (1 - p) times 1, within the same 6 sigma
    assert abs(y.mean() - 1) < 6 * sigma / (n * (1 - p))


def test_dropout2d_zeroes_whole_channels():
    x = _x((5, 7, 3, 4), np.float64)
    y, ctx = kernels.get("dropout2d").forward(x, p=0.5, training=True, generator=np.random.default_rng(2))
    per_channel = (y != 0).reshape(5, 7, -1)
    assert (per_channel.all(axis=-1) | ~per_channel.any(axis=-1)).all()  # all kept or all dropped
    assert 0 < per_channel.all(axis=-1).sum() < 35
    assert ctx.noise.shape == (5, 7, 1, 1)


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_reuses_the_forward_mask(op, dtype):
    x = _x((4, 6, 3, 5), dtype)
    k = kernels.get(op)
    y, ctx = k.forward(x, p=0.4, training=True, generator=np.random.default_rng(3))
    gy = _x(x.shape, dtype, seed=1)
    (gx,) = k.backward(gy, ctx)
    assert gx.dtype == dtype
    np.testing.assert_array_equal(gx, np.where(y != 0, gy * _scale(0.4, dtype), 0))


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
def test_finite_differences_with_a_fixed_mask(op):
    x = _x((3, 4, 2, 5), np.float64)
    gy = _x(x.shape, np.float64, seed=1)
    k = kernels.get(op)

    def loss():  # the same seed each call: the same mask, so a fixed linear map
        return float((gy * k.forward(x, p=0.4, training=True, generator=np.random.default_rng(4))[0]).sum())

    _, ctx = k.forward(x, p=0.4, training=True, generator=np.random.default_rng(4))
    assert_gradient(loss, x, k.backward(gy, ctx)[0], what=op)


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
def test_same_generator_state_same_mask(op):
    x = _x((6, 5, 4), np.float32)
    k = kernels.get(op)
    a, _ = k.forward(x, p=0.5, training=True, generator=np.random.default_rng(11))
    b, _ = k.forward(x, p=0.5, training=True, generator=np.random.default_rng(11))
    c, _ = k.forward(x, p=0.5, training=True, generator=np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_p0_keeps_everything_and_p1_zeroes_everything(op, dtype):
    x = _x((3, 4, 5), dtype)
    k = kernels.get(op)
    y, ctx = k.forward(x, p=0, training=True, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(k.backward(x, ctx)[0], x)
    y, ctx = k.forward(x, p=1.0, training=True, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(y, np.zeros_like(x))
    np.testing.assert_array_equal(k.backward(x, ctx)[0], np.zeros_like(x))


def test_p1_multiplies_by_zero_like_pytorch():
    # PyTorch computes x * 0, so nan and inf inputs give nan.
    y, _ = kernels.get("dropout").forward(
        np.array([np.nan, 1.0, np.inf]), p=1, training=True, generator=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(y, [np.nan, 0.0, np.nan])


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
def test_eval_is_identity_and_draws_nothing(op):
    x = _x((3, 4, 5), np.float32)
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    y, ctx = kernels.get(op).forward(x, p=0.5, training=False, generator=rng)
    assert y is x  # as PyTorch, which returns the input itself
    gy = _x(x.shape, np.float32, seed=1)
    np.testing.assert_array_equal(kernels.get(op).backward(gy, ctx)[0], gy)
    assert rng.bit_generator.state == state


def test_dropout_accepts_any_shape():
    y, _ = kernels.get("dropout").forward(np.array(2.0), p=0.5, training=True, generator=np.random.default_rng(0))
    assert y.shape == () and y in (0.0, 4.0)


KERNEL_ERRORS = [
    ("p-above", "dropout", dict(p=1.5), ValueError, "dropout probability has to be between 0 and 1, but got 1.5"),
    ("p-below", "dropout2d", dict(p=-0.1), ValueError, "dropout probability has to be between 0 and 1, but got -0.1"),
    ("p-nan", "dropout", dict(p=float("nan")), ValueError, "but got nan"),
    ("p-str", "dropout", dict(p="0.5"), TypeError, "p must be a real number, got '0.5'"),
    ("no-generator", "dropout", dict(generator=None), TypeError, "generator must be a numpy.random.Generator in training, got NoneType"),
    ("legacy-random", "dropout2d", dict(generator=np.random.RandomState(0)), TypeError, "got RandomState"),
    ("training-str", "dropout", dict(training="yes"), TypeError, "training must be a bool, got 'yes'"),
    ("int-x", "dropout", dict(x=np.ones(3, np.int32)), TypeError, "x must be float32 or float64, got dtype int32"),
    ("2d-on-1d", "dropout2d", dict(x=np.ones(3)), ValueError, r"at least 2 dimensions \(N, C, \*\), got shape \(3,\)"),
]  # fmt: skip


@pytest.mark.parametrize("case, op, kwargs, exc, match", KERNEL_ERRORS, ids=[c[0] for c in KERNEL_ERRORS])
def test_kernel_rejects(case, op, kwargs, exc, match):
    args = dict(x=np.ones((2, 3, 4)), p=0.5, training=True, generator=np.random.default_rng(0)) | kwargs
    x = args.pop("x")
    with pytest.raises(exc, match=match):
        kernels.get(op).forward(x, **args)


# ---- modules --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [nn.Dropout, nn.Dropout2d])
def test_module_is_reproducible_under_manual_seed(cls):
    x = _x((4, 6, 3, 5), np.float32)
    refcnn.manual_seed(123)
    a = cls(0.4)(x)
    refcnn.manual_seed(123)
    b = cls(0.4)(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cls(0.4)(x))  # the next draw differs


@pytest.mark.parametrize("cls", [nn.Dropout, nn.Dropout2d])
def test_module_train_eval_and_backward(cls):
    refcnn.manual_seed(0)
    m = cls(0.5)
    x = _x((4, 6, 3, 5), np.float64)
    y = m(x)
    gy = _x(x.shape, np.float64, seed=1)
    np.testing.assert_array_equal(m.backward(gy), np.where(y != 0, gy * 2, 0))
    with pytest.raises(RuntimeError, match="without a forward"):
        m.backward(gy)
    m.eval()
    assert m(x) is x
    np.testing.assert_array_equal(m.backward(gy), gy)
    m.train()
    assert not np.array_equal(m(x), x)


@pytest.mark.parametrize("cls", [nn.Dropout, nn.Dropout2d])
def test_inplace_writes_the_output_into_the_input(cls):
    refcnn.manual_seed(1)
    x = _x((4, 6, 3, 5), np.float32)
    original = x.copy()
    m = cls(0.5, inplace=True)
    y = m(x)
    assert y is x
    kept = x != 0
    np.testing.assert_array_equal(x[kept], original[kept] * 2)
    np.testing.assert_array_equal(m.backward(np.ones_like(x)), np.where(kept, 2, 0))
    with pytest.raises(ValueError, match=r"Dropout\(inplace=True\) needs a writeable input"):
        nn.Dropout(inplace=True)(np.broadcast_to(np.float32(1), (2, 3)))


def test_dropout2d_on_3d_input_follows_pytorch_with_a_warning():
    # PyTorch 2.13 treats (C, H, W) as (N, C, L): whole rows x[i, j, :] are dropped, and it warns.
    refcnn.manual_seed(2)
    x = np.ones((6, 8, 5), np.float32)
    with pytest.warns(UserWarning, match=r"treated as \(N, C, L\)"):
        y = nn.Dropout2d(0.5)(x)
    assert (y == y[..., :1]).all()  # constant along the last axis
    assert not (y == y[:, :1, :1]).all()  # but not along the second: rows, not channels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.Dropout2d(0.5)(x[None])  # 4-D: no warning


def test_module_keeps_dtype_and_randomness_comes_from_the_default_generator():
    refcnn.manual_seed(9)
    y = nn.Dropout(0.25)(np.ones((50, 40), np.float32))
    assert y.dtype == np.float32
    expected = np.where(np.random.default_rng(9).random((50, 40)) >= 0.25, _scale(0.25, np.float32), 0)
    np.testing.assert_array_equal(y, expected)


def test_kernels_use_reaches_the_module():
    calls = []

    def fwd(x, *, p, training, generator):
        calls.append(p)
        return kernels.get("dropout", "reference").forward_impl(x, p=p, training=training, generator=generator)

    kernels.register("dropout", "spy", fwd, kernels.get("dropout", "reference").backward_impl)
    try:
        with kernels.use(dropout="spy"):
            nn.Dropout(0.2)(np.ones(3))
    finally:
        kernels.unregister("dropout", "spy")
    assert calls == [0.2]


@pytest.mark.parametrize(
    "module, text",
    [(nn.Dropout(), "Dropout(p=0.5, inplace=False)"), (nn.Dropout2d(0.2, True), "Dropout2d(p=0.2, inplace=True)"),
     (nn.Dropout(1), "Dropout(p=1, inplace=False)"), (nn.Dropout(0), "Dropout(p=0, inplace=False)")],
    ids=["default", "2d-inplace", "p-int-1", "p-int-0"],
)  # fmt: skip
def test_repr_equals_pytorch(module, text):
    # strings printed by PyTorch 2.13 for the same constructors
    assert repr(module) == text
    assert module.state_dict() == {} and list(module.parameters()) == []


MODULE_ERRORS = [
    ("p-above", lambda: nn.Dropout(1.5), ValueError, r"Dropout: dropout probability has to be between 0 and 1, but got 1.5"),
    ("p-below", lambda: nn.Dropout2d(-0.1), ValueError, r"Dropout2d: dropout probability has to be between 0 and 1, but got -0.1"),
    ("p-str", lambda: nn.Dropout("a"), TypeError, "Dropout: p must be a real number, got 'a'"),
    ("p-none", lambda: nn.Dropout2d(None), TypeError, "Dropout2d: p must be a real number, got None"),
    ("2d-on-2d", lambda: nn.Dropout2d()(np.ones((2, 3))), ValueError, r"Dropout2d expected input of shape \(N, C, H, W\) or \(C, H, W\), got \(2, 3\)"),
    ("2d-on-5d", lambda: nn.Dropout2d()(np.ones((1, 2, 3, 4, 5))), ValueError, r"got \(1, 2, 3, 4, 5\)"),
    ("2d-list", lambda: nn.Dropout2d()([1.0]), TypeError, "Dropout2d expected a numpy.ndarray input"),
    ("int-input", lambda: nn.Dropout()(np.ones(3, np.int64)), TypeError, "dropout: x must be float32 or float64"),
]  # fmt: skip


@pytest.mark.parametrize("case, make, exc, match", MODULE_ERRORS, ids=[c[0] for c in MODULE_ERRORS])
def test_module_rejects(case, make, exc, match):
    with pytest.raises(exc, match=match):
        make()
