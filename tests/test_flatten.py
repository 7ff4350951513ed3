"""The flatten kernel (torch.flatten semantics) and the Flatten module."""

from __future__ import annotations

import numpy as np
import pytest

from refcnn import kernels, nn
from refcnn.kernels.shape import wrap_dim
from refcnn.testing import assert_gradient


def run(x, gy=None, **config):
    kernel = kernels.get("flatten")
    y, ctx = kernel.forward(x, **config)
    if gy is None:
        return y
    (gx,) = kernel.backward(gy, ctx)
    return y, gx


CASES = [  # x shape, start_dim, end_dim, y shape (as torch.flatten gives)
    ((2, 3, 4, 5), 1, -1, (2, 60)),
    ((2, 3, 4, 5), 0, -1, (120,)),
    ((2, 3, 4, 5), 1, 2, (2, 12, 5)),
    ((2, 3, 4, 5), -3, -2, (2, 12, 5)),
    ((2, 3, 4, 5), 2, 2, (2, 3, 4, 5)),  # a single dim: unchanged
    ((2, 3, 4, 5), -1, -1, (2, 3, 4, 5)),
    ((2, 0, 4), 1, -1, (2, 0)),  # zero-size dims multiply to 0
    ((), 0, -1, (1,)),  # 0-D becomes (1,)
    ((), -1, 0, (1,)),
    ((7,), 0, 0, (7,)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "shape, start, end, out", CASES, ids=[f"{'x'.join(map(str, c[0])) or '0d'}-s{c[1]}-e{c[2]}" for c in CASES]
)
def test_flatten_shapes_values_and_gradient(shape, start, end, out, dtype):
    x = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    gy = -np.arange(int(np.prod(out)), dtype=dtype).reshape(out)
    y, gx = run(x, gy, start_dim=start, end_dim=end)
    assert y.shape == out and y.dtype == dtype
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))  # row-major order kept
    assert gx.shape == shape and gx.dtype == dtype
    np.testing.assert_array_equal(gx.reshape(-1), gy.reshape(-1))


def test_flatten_defaults_are_torch_flattens():
    assert run(np.ones((2, 3, 4))).shape == (24,)  # torch.flatten: start_dim=0, end_dim=-1


def test_flatten_of_a_non_contiguous_input():
    x = np.arange(24.0).reshape(2, 3, 4).transpose(0, 2, 1)  # (2, 4, 3), not C-contiguous
    y, gx = run(x, np.arange(24.0).reshape(2, 12), start_dim=1)
    np.testing.assert_array_equal(y, [x[0].reshape(-1), x[1].reshape(-1)])
    np.testing.assert_array_equal(gx, np.arange(24.0).reshape(2, 4, 3))


def test_flatten_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    weights = rng.standard_normal((2, 12))
    _, gx = run(x, weights, start_dim=1)
    assert_gradient(lambda: float(np.sum(weights * run(x, start_dim=1))), x, gx, "flatten")


@pytest.mark.parametrize(
    "x, config, error, message",
    [
        (np.ones((2, 3, 4)), {"start_dim": 3}, IndexError,
         r"flatten: start_dim out of range \(expected to be in range of \[-3, 2\], but got 3\) for x of shape \(2, 3, 4\)"),
        (np.ones((2, 3, 4)), {"end_dim": -4}, IndexError,
         r"flatten: end_dim out of range \(expected to be in range of \[-3, 2\], but got -4\)"),
        (np.array(1.0), {"start_dim": 1}, IndexError,
         r"flatten: start_dim out of range \(expected to be in range of \[-1, 0\], but got 1\) for x of shape \(\)"),
        (np.ones((2, 3, 4)), {"start_dim": 2, "end_dim": 1}, ValueError,
         r"flatten: start_dim cannot come after end_dim, got start_dim=2, end_dim=1 for x of shape \(2, 3, 4\)"),
        (np.ones((2, 3, 4)), {"start_dim": -1, "end_dim": 1}, ValueError,
         r"flatten: start_dim cannot come after end_dim, got start_dim=-1, end_dim=1"),
        (np.ones((2, 3)), {"start_dim": 1.0}, TypeError, r"flatten: start_dim must be an int, got 1.0"),
        (np.ones((2, 3)), {"end_dim": True}, TypeError, r"flatten: end_dim must be an int, got True"),
        (np.ones((2, 3), np.int32), {}, TypeError, r"flatten: x must be float32 or float64, got dtype int32"),
    ],
    ids=["start-range", "end-range", "0d-range", "start-after-end", "negative-after", "float-dim", "bool-dim", "int"],
)  # fmt: skip
def test_flatten_rejects_bad_input(x, config, error, message):
    with pytest.raises(error, match=message):
        kernels.get("flatten").forward(x, **config)


def test_wrap_dim_counts_from_the_end():
    assert [wrap_dim("op", "dim", d, (2, 3, 4)) for d in (-3, -2, -1, 0, 1, 2)] == [0, 1, 2, 0, 1, 2]
    assert wrap_dim("op", "dim", np.int64(-1), ()) == 0


# ---- the Flatten module ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_flatten_module_keeps_the_batch_dim(dtype):
    m = nn.Flatten()
    x = np.arange(2 * 3 * 4 * 5, dtype=dtype).reshape(2, 3, 4, 5)
    y = m(x)
    assert y.shape == (2, 60) and y.dtype == dtype
    gx = m.backward(np.ones((2, 60), dtype))
    assert gx.shape == x.shape and gx.dtype == dtype
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Flatten(-2)(x).shape == (2, 3, 20)


def test_flatten_module_on_1d_input_is_rejected_as_pytorch():
    # nn.Flatten() on a 1-D tensor: start_dim=1 is out of range for 1 dim, in PyTorch too
    with pytest.raises(IndexError, match=r"start_dim out of range \(expected to be in range of \[-1, 0\], but got 1\)"):
        nn.Flatten()(np.ones(5, np.float32))


def test_flatten_module_repr_and_arguments():
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.Flatten(0, 2)) == "Flatten(start_dim=0, end_dim=2)"
    with pytest.raises(TypeError, match=r"Flatten: start_dim must be an int, got 1.0"):
        nn.Flatten(1.0)
    with pytest.raises(TypeError, match=r"Flatten: end_dim must be an int, got True"):
        nn.Flatten(0, True)


def test_flatten_module_rejects_integer_input():
    with pytest.raises(TypeError, match=r"Flatten expected a float32 or float64 input, got dtype int64"):
        nn.Flatten()(np.ones((2, 3), np.int64))


def test_flatten_module_backward_before_forward_and_twice_raise():
    m = nn.Flatten()
    with pytest.raises(RuntimeError, match=r"Flatten.backward called without a forward before it \(or twice"):
        m.backward(np.ones((2, 12)))
    m(np.ones((2, 3, 4)))
    m.backward(np.ones((2, 12)))
    with pytest.raises(RuntimeError, match=r"Flatten.backward called without a forward before it \(or twice"):
        m.backward(np.ones((2, 12)))


def test_flatten_module_backward_checks_the_gradient_shape():
    m = nn.Flatten()
    m(np.ones((2, 3, 4)))
    with pytest.raises(
        ValueError, match=r"Flatten.backward expected grad_output of shape \(2, 12\) \(the output's\), got \(2, 3, 4\)"
    ):
        m.backward(np.ones((2, 3, 4)))
