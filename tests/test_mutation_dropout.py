"""Dropout corners that mutation testing (tox -e mutation) found unchecked: the keep test at a
draw equal to p, and the silent inf * 0 in the backward and in the exported kernels called
directly (outside the registry's errstate)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from refcnn import kernels
from refcnn.kernels import dropout


class _Draws(np.random.Generator):
    """A Generator whose uniform draws are given: the mask at chosen draws, exactly."""

    def __init__(self, draws: np.ndarray) -> None:
        super().__init__(np.random.PCG64(0))
        self.draws = draws

    def random(self, size=None, dtype=np.float64, out=None):
        assert size == self.draws.shape, (size, self.draws.shape)
        return self.draws.copy()


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
@pytest.mark.parametrize("p", [0.0, 0.25], ids=["p0", "p0.25"])
def test_an_element_whose_draw_equals_p_is_kept(op, p):
    # keep = u >= p for u uniform in [0, 1): P(keep) = 1 - p exactly, and p = 0 keeps everything.
    # x of shape (1, 4, 1): dropout's mask and dropout2d's (one draw per channel) are both (1, 4, 1)
    x = np.arange(1.0, 5.0).reshape(1, 4, 1)
    draws = np.array([p, 0.9, p / 2, 0.5]).reshape(1, 4, 1)
    y, _ = kernels.get(op).forward(x, p=p, training=True, generator=_Draws(draws))
    kept = np.array([True, True, p == 0.0, True]).reshape(1, 4, 1)
    np.testing.assert_array_equal(y, np.where(kept, x / (1 - p), 0.0), err_msg=f"{op} p={p}")


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
def test_backward_of_an_inf_gradient_through_a_dropped_element_is_nan_without_a_warning(op):
    # PyTorch: grad * mask gives nan silently; numpy would warn "invalid value" without errstate
    x = np.ones((1, 2, 1))
    k = kernels.get(op)
    _, ctx = k.forward(x, p=0.5, training=True, generator=_Draws(np.array([0.0, 0.9]).reshape(1, 2, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (gx,) = k.backward(np.array([[[np.inf], [1.0]]]), ctx)
    assert np.isnan(gx[0, 0, 0]) and gx[0, 1, 0] == 2.0, gx


@pytest.mark.parametrize(
    "forward",
    [dropout.dropout_forward, dropout.dropout2d_forward],
    ids=["dropout_forward", "dropout2d_forward"],
)
def test_the_exported_kernels_called_directly_give_nan_for_inf_times_zero_without_a_warning(forward):
    # dropout_forward, dropout2d_forward and dropout_backward are public (__all__): called
    # directly, without the registry's errstate around them, an inf in a dropped element (forward)
    # or an inf gradient there (backward) still gives nan silently, as PyTorch does.
    x = np.array([[[np.inf], [1.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = forward(x, p=0.5, training=True, generator=_Draws(np.array([0.0, 0.9]).reshape(1, 2, 1)))
        (gx,) = dropout.dropout_backward(np.array([[[np.inf], [1.0]]]), ctx)
    assert np.isnan(y[0, 0, 0]) and y[0, 1, 0] == 2.0, y
    assert np.isnan(gx[0, 0, 0]) and gx[0, 1, 0] == 2.0, gx
