"""A name already registered for an op is not silently replaced (a plugin registering "fast"
would otherwise swap out refcnn's own kernel for every model)."""

import pytest

from refcnn.kernels import registry


@pytest.fixture
def toy_names():
    def fwd(x):
        return x, None

    def bwd(gy, ctx):
        return (gy,)

    registry.register("toy_names", "fast", fwd, bwd)
    yield fwd, bwd
    registry._impls.pop("toy_names", None)


def test_registering_a_taken_name_is_an_error(toy_names):
    fwd, bwd = toy_names
    with pytest.raises(ValueError, match=r"already has an implementation named 'fast'.*replace=True"):
        registry.register("toy_names", "fast", fwd, bwd)


def test_replace_true_replaces(toy_names):
    fwd, _ = toy_names

    def other_bwd(gy, ctx):
        return (2 * gy,)

    registry.register("toy_names", "fast", fwd, other_bwd, replace=True)
    assert registry.get("toy_names", "fast").backward_impl is other_bwd
