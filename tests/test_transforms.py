"""refcnn.data.transforms: hand-computed cases, vectorised batch vs per-image loops, seeding,
and every validation error."""

from __future__ import annotations

import math

import numpy as np
import pytest

import refcnn
from refcnn.data import transforms as T
from refcnn.testing import assert_close

RNG = np.random.default_rng(1234)


# ---- ToFloat -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,out_shape",
    [((2, 3), (1, 2, 3)), ((2, 5, 3), (2, 5, 3)), ((4, 2, 5, 3), (4, 2, 5, 3))],
    ids=["HxW", "CxHxW", "NxCxHxW"],
)
def test_tofloat_scales_and_adds_channel(shape, out_shape):
    x = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    x.flat[0], x.flat[1] = 0, 255
    y = T.ToFloat()(x)
    assert y.shape == out_shape and y.dtype == np.float32
    np.testing.assert_array_equal(y.ravel(), x.ravel().astype(np.float32) / np.float32(255))
    assert y.flat[0] == 0 and y.flat[1] == 1


def test_tofloat_batch_of_2d_images_gets_channel_axis():
    x = RNG.integers(0, 256, size=(4, 2, 3), dtype=np.uint8)
    y = T.ToFloat().batch(x)
    assert y.shape == (4, 1, 2, 3)
    np.testing.assert_array_equal(y, np.stack([T.ToFloat()(im) for im in x]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_tofloat_leaves_float_unscaled(dtype):
    x = RNG.random((2, 3)).astype(dtype) * 9
    y = T.ToFloat()(x)
    assert y.dtype == dtype and y.shape == (1, 2, 3)
    np.testing.assert_array_equal(y[0], x)


# ---- Normalize -----------------------------------------------------------------------------------
def test_normalize_hand_values_per_channel():
    x = np.array([[[0.0, 1.0, 0.5]], [[2.0, -1.0, 4.0]]], dtype=np.float32)  # (C=2, H=1, W=3)
    y = T.Normalize((0.5, 1.0), (0.25, 2.0))(x)
    np.testing.assert_array_equal(y, np.array([[[-2.0, 2.0, 0.0]], [[0.5, -1.0, 1.5]]], dtype=np.float32))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(x[0, 0], [0.0, 1.0, 0.5])  # not in place


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_normalize_is_torch_sub_then_div_in_dtype(dtype):
    x = RNG.random((3, 1, 4, 5)).astype(dtype)
    y = T.Normalize((0.1307,), (0.3081,))(x)
    assert y.dtype == dtype
    # tensor.sub_(mean).div_(std), mean and std converted to the tensor's dtype first
    np.testing.assert_array_equal(y, (x - dtype(0.1307)) / dtype(0.3081))


def test_normalize_single_mean_broadcasts_and_inplace():
    x = RNG.random((2, 3, 4, 5))
    expected = (x - 0.5) / 2.0
    same = T.Normalize(0.5, 2.0, inplace=True)(x)
    assert same is x
    np.testing.assert_array_equal(x, expected)


NORMALIZE_ERRORS = [
    ("uint8", (0.5,), (0.5,), np.zeros((1, 2, 3), np.uint8), TypeError, r"Normalize expects float32 or float64 images \(use ToFloat first\), got dtype uint8"),
    ("2d", (0.5,), (0.5,), np.zeros((2, 3)), ValueError, r"Normalize expects images with a channel axis, \(C, H, W\), got images of shape \(2, 3\)"),
    ("mean-count", (0.1, 0.2), (1.0,), np.zeros((3, 2, 5)), ValueError, r"Normalize: mean has 2 values for images of 3 channels"),
    ("std-count", (0.1,), (1.0, 2.0), np.zeros((3, 2, 5)), ValueError, r"Normalize: std has 2 values for images of 3 channels"),
    ("std-zero", (0.1,), (0.0,), np.zeros((1, 2, 5)), ValueError, r"Normalize: std evaluated to zero after conversion to float64, got std=\(0.0,\)"),
    ("std-underflow-f32", (0.1,), (1e-50,), np.zeros((1, 2, 5), np.float32), ValueError, r"Normalize: std evaluated to zero after conversion to float32"),
]  # fmt: skip


@pytest.mark.parametrize(
    "mean,std,x,err,match", [e[1:] for e in NORMALIZE_ERRORS], ids=[e[0] for e in NORMALIZE_ERRORS]
)
def test_normalize_errors(mean, std, x, err, match):
    with pytest.raises(err, match=match):
        T.Normalize(mean, std)(x)


@pytest.mark.parametrize(
    "mean,std", [("a", (1.0,)), ((), (1.0,)), ((0.1,), None), ((True,), (1.0,))], ids=["str", "empty", "none", "bool"]
)
def test_normalize_bad_arguments(mean, std):
    with pytest.raises(
        TypeError, match=r"Normalize: (mean|std) must be a number or a non-empty sequence of numbers, got"
    ):
        T.Normalize(mean, std)


# ---- RandomShift ---------------------------------------------------------------------------------
def shift_reference(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[..., i, j] = img[..., i - dy, j - dx], zero outside: plain loops."""
    out = np.zeros_like(img)
    H, W = img.shape[-2:]
    for i in range(H):
        for j in range(W):
            if 0 <= i - dy < H and 0 <= j - dx < W:
                out[..., i, j] = img[..., i - dy, j - dx]
    return out


def test_shift_hand_case():
    x = np.arange(1, 13, dtype=np.float32).reshape(1, 3, 4)
    got = T.shift(x, np.array([[1, -2]]))  # down 1, left 2
    np.testing.assert_array_equal(got[0], [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0]])


@pytest.mark.parametrize("shape", [(5, 7, 4), (5, 2, 7, 4)], ids=["NxHxW", "NxCxHxW"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64], ids=["u8", "f32", "f64"])
def test_shift_batch_equals_per_image_loops(shape, dtype):
    x = (RNG.random(shape) * 200 + 1).astype(dtype)
    shifts = np.array([[0, 0], [1, 2], [-3, 1], [7, -4], [-2, -5]])  # incl. shifted fully out (7 >= H)
    got = T.shift(x, shifts)
    assert got.dtype == x.dtype and got.shape == x.shape
    for n, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(got[n], shift_reference(x[n], dy, dx), err_msg=f"item {n} shift {(dy, dx)}")


def test_random_shift_draws_from_generator_and_range():
    x = RNG.random((400, 1, 6, 9))
    got = T.RandomShift((1, 3), generator=np.random.default_rng(5)).batch(x)
    shifts = np.random.default_rng(5).integers([-1, -3], [1, 3], endpoint=True, size=(400, 2))
    np.testing.assert_array_equal(got, T.shift(x, shifts))
    assert set(shifts[:, 0]) == {-1, 0, 1} and set(shifts[:, 1]) == set(range(-3, 4))


def test_random_shift_single_image_and_refcnn_seed():
    img = RNG.integers(1, 256, size=(6, 9), dtype=np.uint8)
    t = T.RandomShift(2)
    refcnn.manual_seed(11)
    a = t(img)
    refcnn.manual_seed(11)
    b = t(img)
    assert a.shape == (6, 9) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    dy, dx = np.random.default_rng(11).integers([-2, -2], [2, 2], endpoint=True, size=(1, 2))[0]
    np.testing.assert_array_equal(a, shift_reference(img, dy, dx))


@pytest.mark.parametrize(
    "arg,err,match",
    [(-1, ValueError, r"max_shift must be ints >= 0, got -1"), ((1, -2), ValueError, r"max_shift must be ints >= 0, got \(1, -2\)"),
     (1.5, ValueError, "max_shift must be ints >= 0, got 1.5"), ("2", TypeError, "max_shift must be a number or a pair of numbers, got '2'"),
     ((1, 2, 3), TypeError, r"max_shift must be a number or a pair of numbers, got \(1, 2, 3\)")],
    ids=["negative", "negative-w", "float", "str", "triple"],
)  # fmt: skip
def test_random_shift_bad_arguments(arg, err, match):
    with pytest.raises(err, match="RandomShift: " + match):
        T.RandomShift(arg)


# ---- RandomRotation ------------------------------------------------------------------------------
def test_cos_sin_degrees_accurate_and_exact_on_quarter_turns():
    deg = np.array([0.0, 30.0, -73.5, 44.9, 45.0, 89.99, 90.0, 135.5, 180.0, -270.0, 359.0, 721.25])
    c, s = T._cos_sin_degrees(deg)
    rad = np.deg2rad(deg.astype(np.longdouble))  # extended precision as the reference
    # two rounded steps (deg2rad of the reduced angle, then cos/sin), each |error| <= eps * 1
    assert_close(c, np.cos(rad), n=2, S=1.0, dtype=np.float64, what="cos")
    assert_close(s, np.sin(rad), n=2, S=1.0, dtype=np.float64, what="sin")
    quarter = np.array([0.0, 90.0, 180.0, 270.0, -90.0, 450.0])
    cq, sq = T._cos_sin_degrees(quarter)
    assert cq.tolist() == [1.0, 0.0, -1.0, 0.0, 0.0, 0.0] and sq.tolist() == [0.0, 1.0, 0.0, -1.0, -1.0, 1.0]


def rotate_reference(img: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear rotation (counter-clockwise as displayed) about the centre, zero outside, as
    plain loops; returns the result and S = sum_k w_k |v_k| per output pixel (float64).
    cos and sin of the angle come from the function the fast code uses (tested above): the
    coordinates must agree to the bit for the bilinear corners to be the same."""
    C, H, W = img.shape
    cos_sin = T._cos_sin_degrees(np.array([angle]))
    c, s = float(cos_sin[0][0]), float(cos_sin[1][0])
    cy, cx = (H - 1) / 2, (W - 1) / 2
    out, S = np.zeros((C, H, W)), np.zeros((C, H, W))
    for i in range(H):
        for j in range(W):
            y, x = i - cy, j - cx
            ys, xs = s * x + c * y + cy, c * x - s * y + cx
            y0, x0 = math.floor(ys), math.floor(xs)
            for r, q, w in [(y0, x0, (1 - (ys - y0)) * (1 - (xs - x0))), (y0, x0 + 1, (1 - (ys - y0)) * (xs - x0)),
                            (y0 + 1, x0, (ys - y0) * (1 - (xs - x0))), (y0 + 1, x0 + 1, (ys - y0) * (xs - x0))]:  # fmt: skip
                if 0 <= r < H and 0 <= q < W:
                    out[:, i, j] += w * img[:, r, q]
                    S[:, i, j] += abs(w * img[:, r, q])
    return out, S


def test_rotate_hand_case_2x2_by_45():
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    got = T.rotate(x, np.array([45.0]))
    # output (0, 0) reads (ys, xs) = (0.5 - sqrt(2)/2, 0.5): row -1 is outside (weight 0),
    # row 0 gets wy = 1.5 - sqrt(2)/2, shared half and half between columns 0 and 1
    wy = 1.5 - math.sqrt(2) / 2
    expected = wy * 0.5 * (1.0 + 2.0)
    assert_close(got[0, 0, 0], expected, n=4, S=expected, dtype=np.float64, what="rotate 2x2 by 45")
    # the centre of an odd image is fixed, for any angle
    odd = np.zeros((1, 3, 5))
    odd[0, 1, 2] = 1.0
    assert T.rotate(odd, np.array([33.0]))[0, 1, 2] == 1.0


@pytest.mark.parametrize(
    "angle,k", [(90.0, 1), (-90.0, -1), (270.0, -1), (180.0, 2), (-360.0, 0), (450.0, 1)], ids=lambda v: str(v)
)
def test_rotate_quarter_turns_are_exact(angle, k):
    x = RNG.random((1, 2, 6, 6))
    got = T.rotate(x, np.array([angle]))
    np.testing.assert_array_equal(got[0], np.rot90(x[0], k, axes=(1, 2)))  # rot90: counter-clockwise


def test_rotate_180_non_square():
    x = RNG.random((1, 5, 8))
    np.testing.assert_array_equal(T.rotate(x, np.array([180.0]))[0], x[0, ::-1, ::-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_rotate_batch_matches_reference_loops(dtype):
    x = RNG.standard_normal((4, 2, 5, 7)).astype(dtype)
    angles = np.array([30.0, -73.5, 12.25, 160.0])
    got = T.rotate(x, angles)
    assert got.dtype == dtype and got.shape == x.shape
    for n, a in enumerate(angles):
        ref, S = rotate_reference(x[n].astype(np.float64), a)
        assert_close(got[n], ref, n=4, S=S, dtype=dtype, what=f"rotate item {n} by {a}")


def test_rotate_uint8_rounds():
    x = RNG.integers(0, 256, size=(3, 1, 6, 5), dtype=np.uint8)
    angles = np.array([10.0, -45.0, 77.0])
    got = T.rotate(x, angles)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(
        got, np.clip(np.rint(T.rotate(x.astype(np.float32), angles)), 0, 255).astype(np.uint8)
    )


def test_random_rotation_draws_uniform_angles():
    x = RNG.random((6, 1, 5, 7)).astype(np.float32)
    got = T.RandomRotation((-10, 30), generator=np.random.default_rng(9)).batch(x)
    angles = np.random.default_rng(9).uniform(-10.0, 30.0, size=6)
    np.testing.assert_array_equal(got, T.rotate(x, angles))
    single = T.RandomRotation(15, generator=np.random.default_rng(2))(x[0, 0])
    assert single.shape == (5, 7)
    np.testing.assert_array_equal(single, T.rotate(x[:1, 0], np.random.default_rng(2).uniform(-15.0, 15.0, size=1))[0])


@pytest.mark.parametrize(
    "arg,err,match",
    [(-5, ValueError, "if degrees is a single number, it must be positive, got -5"), ((20, 10), ValueError, r"degrees must be \(min, max\) with min <= max, got \(20, 10\)"),
     ("x", TypeError, "degrees must be a number or a pair of numbers, got 'x'")],
    ids=["negative", "reversed", "str"],
)  # fmt: skip
def test_random_rotation_bad_arguments(arg, err, match):
    with pytest.raises(err, match="RandomRotation: " + match):
        T.RandomRotation(arg)


def test_random_rotation_rejects_int_images():
    with pytest.raises(TypeError, match="RandomRotation expects uint8, float32 or float64 images, got dtype int32"):
        T.RandomRotation(5)(np.zeros((3, 4), np.int32))


# ---- Compose, shapes, repr -----------------------------------------------------------------------
def test_compose_batch_equals_per_item_for_deterministic_steps():
    x = RNG.integers(0, 256, size=(5, 6, 7), dtype=np.uint8)
    pipe = T.Compose([T.ToFloat(), T.Normalize((0.1307,), (0.3081,))])
    np.testing.assert_array_equal(pipe.batch(x), np.stack([pipe(im) for im in x]))
    assert pipe(x[:, None]).shape == (5, 1, 6, 7)  # 4-D input is a batch


def test_compose_of_callables_and_batchable():
    pipe = T.Compose([T.ToFloat(), lambda im: im + 1])
    assert not pipe.batchable and T.Compose([T.ToFloat()]).batchable
    assert pipe(np.zeros((2, 3), np.uint8)).tolist() == [[[1, 1, 1], [1, 1, 1]]]
    with pytest.raises(TypeError, match=r"Compose.batch needs refcnn transforms only; not batchable"):
        pipe.batch(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(TypeError, match="Compose: every transform must be callable, got 3"):
        T.Compose([T.ToFloat(), 3])  # type: ignore[list-item]


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4, 5)], ids=["1d", "5d"])
def test_rank_errors(shape):
    with pytest.raises(
        ValueError, match=r"ToFloat expects an image \(H, W\) or \(C, H, W\), or a batch \(N, C, H, W\), got shape"
    ):
        T.ToFloat()(np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match=r"RandomShift.batch expects \(N, H, W\) or \(N, C, H, W\), got shape"):
        T.RandomShift(1).batch(np.zeros(shape, np.uint8))


def test_tofloat_rejects_other_dtypes():
    with pytest.raises(TypeError, match="ToFloat expects uint8 \\(or float32/float64\\) images, got dtype int16"):
        T.ToFloat()(np.zeros((2, 3), np.int16))


def test_reprs():
    pipe = T.Compose([T.RandomRotation(10), T.RandomShift((1, 2)), T.ToFloat(), T.Normalize((0.1307,), (0.3081,))])
    assert repr(pipe) == (
        "Compose(\n    RandomRotation(degrees=[-10.0, 10.0], interpolation=bilinear, fill=0)\n"
        "    RandomShift(max_shift=(1, 2))\n    ToFloat()\n    Normalize(mean=(0.1307,), std=(0.3081,))\n)"
    )
