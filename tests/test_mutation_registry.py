"""Registry contracts that mutation testing (tox -e mutation) found unchecked, as a plugin
author meets them: each half of the callable check in ``register``; the whole text of the
errors (read to know what to do next); a backward that ``inspect`` cannot read (a builtin)
called plainly, without the ``needs_input_grad`` keyword; an output that is not exactly an
ndarray saved with its shape and dtype; the ctx's attributes reachable through ``Saved``;
inf * 0 silent (nan) in any implementation while a division by zero still warns; and which
implementation ``get`` picks when "fast" is not the first name."""

from __future__ import annotations

import inspect
import re
import warnings

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


# ---- Kernel: what forward saves, what backward checks ----------------------------------------
class _Sub(np.ndarray):
    """An ndarray subclass: a plugin's forward may return one (not exactly np.ndarray)."""


@pytest.mark.parametrize(
    "make_y, shape",
    [
        (lambda x: float(x.sum()), ()),
        (lambda x: [float(v) for v in x], (3,)),
        (lambda x: (x * 2).view(_Sub).reshape(1, 3), (1, 3)),
    ],
    ids=["python-float", "list", "ndarray-subclass-1x3"],
)
def test_a_plugin_output_that_is_not_exactly_an_ndarray_is_saved_with_its_shape_and_dtype(toy_op, make_y, shape):
    # the backward then checks grad_y against that shape and dtype, and gets the plugin's own ctx
    seen = []

    def bwd(gy, ctx):
        seen.append(ctx)
        return (np.broadcast_to(gy.sum() * ctx, (3,)),)

    registry.register(toy_op, "plugin", lambda x: (make_y(x), 5.0), bwd)
    k = registry.get(toy_op, "plugin")
    _y, ctx = k.forward(np.array([1.0, 2.0, 3.0]))
    assert (ctx.shape, ctx.dtype, ctx.inner) == (shape, np.dtype(np.float64), 5.0)
    (gx,) = k.backward(np.ones(shape), ctx)
    np.testing.assert_array_equal(gx, np.full(3, 5.0 * np.prod(shape)))
    assert seen == [5.0]
    with pytest.raises(ValueError, match=re.escape(f"toy_small backward expected grad_y of shape {shape}")):
        k.backward(np.ones((2, *shape)), ctx)
    with pytest.raises(TypeError, match=r"expected grad_y of dtype float64 \(the output's\), got float32"):
        k.backward(np.ones(shape, np.float32), ctx)


def test_saved_lets_backward_read_the_implementations_ctx_attributes(toy_op):
    # as max_pool2d's ctx.indices: attribute access falls through to the implementation's ctx
    from collections import namedtuple

    Ctx = namedtuple("Ctx", "indices scale")
    registry.register(toy_op, "attrs", lambda x: (x * 3, Ctx(np.array([2, 0]), 3)), _bwd)
    _y, ctx = registry.get(toy_op, "attrs").forward(np.ones(2))
    np.testing.assert_array_equal(ctx.indices, [2, 0])
    assert ctx.scale == 3
    with pytest.raises(AttributeError, match="no_such_field"):
        _ = ctx.no_such_field


def test_backward_given_a_foreign_ctx_names_what_it_got(toy_op):
    k = registry.get(toy_op)
    _y, ctx = k.forward(np.ones(2))
    message = "toy_small backward expects the ctx its forward returned, got int"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        k.backward(np.ones(2), ctx.inner)


def test_backward_checked_computes_the_input_gradient_by_default(toy_op):
    k = registry.get(toy_op)
    _y, ctx = k.forward(np.array([1.0, 2.0]))
    (gx,) = k.backward_checked(np.array([1.0, 3.0]), ctx)  # needs_input_grad defaults to True
    np.testing.assert_array_equal(gx, [2.0, 6.0])


# ---- IEEE: inf and nan silently, for any implementation --------------------------------------
HAZARDS = {  # a plugin's plain NumPy on each floating-point exception, and what PyTorch returns
    "invalid": (lambda x: x * 0.0, [np.inf, 1.0], [np.nan, 0.0]),  # inf * 0
    "overflow": (lambda x: x * 10.0, [1e308, 1.0], [np.inf, 10.0]),  # past float64's range
    "divide": (lambda x: 1.0 / x, [0.0, 2.0], [np.inf, 0.5]),  # division by zero
}


@pytest.mark.parametrize("hazard", list(HAZARDS))
def test_a_plugin_without_its_own_errstate_gives_inf_and_nan_silently(toy_op, hazard):
    # The registry runs forward and backward under errstate(over, invalid, divide = "ignore")
    # (PyTorch is silent): a plugin's plain NumPy must not warn, even under warnings-as-errors.
    f, x, expected = HAZARDS[hazard]
    registry.register(toy_op, hazard, lambda x: (f(x), None), lambda gy, ctx: (f(gy),))
    k = registry.get(toy_op, hazard)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, ctx = k.forward(np.array(x))
        (gx,) = k.backward(np.array(x), ctx)
        (gx2,) = k.backward_checked(np.array(x), ctx)
    for name, a in (("y", y), ("gx", gx), ("gx via backward_checked", gx2)):
        np.testing.assert_array_equal(a, expected, err_msg=f"{hazard}: {name}")
    with pytest.warns(RuntimeWarning):  # the caller's own error state is untouched afterwards
        f(np.array(x))


# ---- get: which implementation ---------------------------------------------------------------
def test_get_prefers_fast_even_when_another_name_sorts_first(toy_op):
    registry.register(toy_op, "alpha", _fwd, _bwd)  # "alpha" < "fast" < "reference"
    assert registry.get(toy_op).name == "fast"


def test_get_without_fast_and_without_default_takes_the_first_registered():
    # registered in sorted order, so "first registered" and "first by name" agree
    registry.register("toy_nofast", "alpha", _fwd, _bwd)
    registry.register("toy_nofast", "beta", _fwd, _bwd)
    try:
        assert registry.get("toy_nofast").name == "alpha"
    finally:
        registry._impls.pop("toy_nofast", None)


def test_get_on_an_op_whose_implementations_were_all_removed(toy_op):
    registry.unregister(toy_op, "fast")
    registry.unregister(toy_op, "reference")
    message = "op 'toy_small' has no implementation registered"
    with pytest.raises(KeyError, match=f"^{re.escape(repr(message))}$"):
        registry.get(toy_op)
    assert toy_op not in registry.ops()
