"""The tolerance policy itself: gamma, the bound, and compare's verdicts."""

import numpy as np
import pytest

from refcnn import testing


def test_gamma_matches_higham():
    eps = 2.0**-24
    assert testing.gamma(1, eps) == pytest.approx(eps / (1 - eps), rel=1e-15)
    assert testing.gamma(1000, eps) == pytest.approx(1000 * eps / (1 - 1000 * eps), rel=1e-15)
    with pytest.raises(ValueError, match="n\\*eps < 1"):
        testing.gamma(2**24, eps)


def test_unit_roundoff_per_dtype():
    assert testing.unit_roundoff(np.float32) == 2.0**-24
    assert testing.unit_roundoff(np.float64) == 2.0**-53


def test_float32_sum_is_within_its_bound_and_a_wrong_sum_is_not():
    rng = np.random.default_rng(0)
    terms = rng.standard_normal((50, 300))
    exact = terms.sum(axis=1)
    got32 = terms.astype(np.float32).sum(axis=1, dtype=np.float32)
    # the inputs are rounded to float32 first, so compare with the float64 sum of those
    exact32 = terms.astype(np.float32).astype(np.float64).sum(axis=1)
    S = np.abs(terms.astype(np.float32).astype(np.float64)).sum(axis=1)
    assert testing.compare(got32, exact32, 300, S, np.float32).passed
    wrong = got32.copy()
    wrong[7] += 1e-3 * S[7]
    result = testing.compare(wrong, exact32, 300, S, np.float32)
    assert not result.passed and result.worst_index == (7,)
    assert np.isfinite(exact).all()


@pytest.mark.parametrize(
    "actual, expected, ok",
    [
        ([np.inf, 1.0], [np.inf, 1.0], True),
        ([np.nan, 1.0], [np.nan, 1.0], True),
        ([np.inf, 1.0], [1.0, 1.0], False),
        ([1.0, 1.0], [np.nan, 1.0], False),
        ([1.0], [1.0, 1.0], False),
    ],
    ids=["same-inf", "same-nan", "spurious-inf", "missing-nan", "shape"],
)
def test_compare_nonfinite_and_shapes(actual, expected, ok):
    assert testing.compare(np.array(actual), np.array(expected), 1, 1.0, np.float64).passed is ok


def test_assert_gradient_catches_a_wrong_gradient():
    x = np.linspace(-1, 1, 7)
    testing.assert_gradient(lambda: float((x**3).sum()), x, 3 * x**2, "cube")
    with pytest.raises(AssertionError, match="finite differences differ"):
        testing.assert_gradient(lambda: float((x**3).sum()), x, 3 * x**2 + 1e-3, "cube-wrong")


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64 only"):
        testing.numerical_gradient(lambda: 0.0, np.zeros(2, np.float32))


def test_assert_matches_reference_catches_a_broken_implementation():
    """A conv2d whose bias gradient is averaged instead of summed must fail the check."""
    from refcnn.kernels import registry

    ref = registry.get("conv2d", "reference")

    def broken_backward(gy, ctx):
        gx, gw, gb = ref.backward_impl(gy, ctx)
        return gx, gw, gb / (gy.shape[0] * gy.shape[2] * gy.shape[3])

    registry.register("conv2d", "broken_bias_mean", ref.forward_impl, broken_backward)
    rng = np.random.default_rng(0)
    arrays = (rng.standard_normal((2, 3, 5, 7)), rng.standard_normal((4, 3, 3, 5)), rng.standard_normal(4))
    config = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 1), groups=1)
    gy = rng.standard_normal((2, 4, 3, 7))
    try:
        testing.assert_matches_reference("conv2d", "fast", np.float32, arrays, gy, **config)
        with pytest.raises(AssertionError, match="conv2d broken_bias_mean grad of argument 2"):
            testing.assert_matches_reference("conv2d", "broken_bias_mean", np.float64, arrays, gy, **config)
    finally:
        registry.unregister("conv2d", "broken_bias_mean")
