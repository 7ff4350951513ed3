"""Registry contracts that mutation testing (tox -e mutation) found unchecked: each half of the
callable check in ``register``, the whole text of its errors (a plugin author reads them to
know what to do next), and a backward that ``inspect`` cannot read (a builtin) being called
plainly, without the ``needs_input_grad`` keyword it may not take."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from refcnn.kernels import registry


def _fwd(x):
    return x * 2, 2


def _bwd(gy, ctx):
    return (gy * ctx,)


@pytest.fixture
def toy_op():
    """A throwaway op 'toy_small' with implementations 'fast' and 'reference'."""
    registry.register("toy_small", "reference", _fwd, _bwd)
    registry.register("toy_small", "fast", _fwd, _bwd)
    yield "toy_small"
    registry._impls.pop("toy_small", None)
    registry._defaults.pop("toy_small", None)


@pytest.mark.parametrize(
    "forward, backward",
    [(_fwd, None), (None, _bwd), (_fwd, "not a function"), (np.ones(2), _bwd)],
    ids=["backward-None", "forward-None", "backward-str", "forward-array"],
)
def test_register_refuses_either_half_not_callable(toy_op, forward, backward):
    # one callable half is not enough: the other would fail only later, at the first call
    message = "register('toy_small', 'half'): forward and backward must be callable"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        registry.register(toy_op, "half", forward, backward)
    assert registry.available(toy_op) == ["fast", "reference"]  # nothing was added


def test_register_taken_name_message_says_what_to_do(toy_op):
    message = (
        "register('toy_small', 'fast'): toy_small already has an implementation named 'fast'; "
        "choose another name, or pass replace=True to replace it"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        registry.register(toy_op, "fast", _fwd, _bwd)


def test_unregister_unknown_impl_names_the_available_ones(toy_op):
    # str(KeyError(m)) is repr(m): the message in quotes
    message = "op 'toy_small' has no implementation 'nope'; available: ['fast', 'reference']"
    with pytest.raises(KeyError, match=f"^{re.escape(repr(message))}$"):
        registry.unregister(toy_op, "nope")
    assert registry.available(toy_op) == ["fast", "reference"]


def test_unregister_unknown_op_names_the_known_ops(toy_op):
    with pytest.raises(KeyError, match=r"unknown op 'no_such_op'; known ops: \[.*'toy_small'"):
        registry.unregister("no_such_op", "fast")


def test_a_builtin_backward_without_a_signature_is_called_plainly(toy_op):
    # zip has no signature inspect can read; called with needs_input_grad=... it would raise
    # TypeError. register must note that it does not take the keyword, and the registry then
    # calls it plainly and drops the dL/dx it computed when none is needed.
    with pytest.raises(ValueError):
        inspect.signature(zip)  # the premise: no signature
    registry.register(toy_op, "builtin", lambda x: (x, np.array([10.0, 20.0])), zip)
    k = registry.get(toy_op, "builtin")
    assert k.takes_needs_input_grad is False
    _y, ctx = k.forward(np.array([1.0, 2.0]))
    grads = k.backward(np.array([3.0, 4.0]), ctx)
    assert grads == ((3.0, 10.0), (4.0, 20.0))
    assert k.backward(np.array([3.0, 4.0]), ctx, needs_input_grad=False) == (None, (4.0, 20.0))
