"""refcnn.nn.init: fans, gains and distributions as torch.nn.init computes them."""

import math

import numpy as np
import pytest

from refcnn import manual_seed, nn
from refcnn.nn import init


@pytest.mark.parametrize(
    "shape, fans",
    [((7, 3), (3, 7)), ((16, 4, 3, 5), (4 * 15, 16 * 15)), ((2, 3, 1, 1), (3, 2))],
    ids=["linear-7x3", "conv-16x4-k3x5", "conv-1x1"],
)
def test_fans_as_pytorch(shape, fans):
    assert init.calculate_fan_in_and_fan_out(np.zeros(shape)) == fans


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match=r"shape \(5,\) \(fewer than 2 dimensions\)"):
        init.calculate_fan_in_and_fan_out(np.zeros(5))


@pytest.mark.parametrize(
    "name, param, gain",
    [("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0), ("tanh", None, 5 / 3),
     ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
     ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)), ("selu", None, 0.75)],
    ids=lambda v: str(v),
)  # fmt: skip
def test_gains(name, param, gain):
    assert init.calculate_gain(name, param) == pytest.approx(gain, rel=1e-15)


def test_unknown_nonlinearity_and_mode():
    with pytest.raises(ValueError, match="Unsupported nonlinearity swish"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(np.zeros((3, 3)), mode="fan_avg")


def test_default_conv_linear_init_bound_is_one_over_sqrt_fan_in():
    """kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    manual_seed(0)
    w = init.kaiming_uniform_(np.zeros((64, 8, 3, 5)), a=math.sqrt(5))
    bound = 1 / math.sqrt(8 * 15)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # 7680 draws reach the edge
    # mean of U(-b, b) over 7680 draws: |mean| < 4 standard errors (b / sqrt(3 * 7680))
    assert abs(w.mean()) < 4 * bound / math.sqrt(3 * w.size)


@pytest.mark.parametrize("fn", [init.kaiming_normal_, init.xavier_normal_], ids=["kaiming", "xavier"])
def test_normal_inits_have_the_stated_std(fn):
    w = fn(np.zeros((200, 30, 3, 3)), generator=np.random.default_rng(1))
    fan_in, fan_out = 30 * 9, 200 * 9
    std = (
        math.sqrt(2 / (1 + 0.0)) / math.sqrt(fan_in)
        if fn is init.kaiming_normal_
        else math.sqrt(2 / (fan_in + fan_out))
    )
    # the sample std of 54000 normal draws is within 4 standard errors (std / sqrt(2n))
    assert abs(w.std() - std) < 4 * std / math.sqrt(2 * w.size)


def test_init_fills_parameters_in_place_in_their_dtype():
    p = nn.Parameter(np.zeros((4, 3), np.float32))
    data = p.data
    init.xavier_uniform_(p, generator=np.random.default_rng(0))
    assert p.data is data and data.dtype == np.float32 and np.abs(data).max() <= math.sqrt(6 / 7)
    init.ones_(p)
    assert (p.data == 1).all()
    init.zeros_(data)
    assert not data.any()


def test_manual_seed_makes_init_reproducible():
    manual_seed(3)
    a = init.uniform_(np.zeros(5))
    manual_seed(3)
    b = init.uniform_(np.zeros(5))
    np.testing.assert_array_equal(a, b)
