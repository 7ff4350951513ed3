"""Grad mode and which forward a backward belongs to.

- no_grad / enable_grad / set_grad_enabled: nesting, decorating, threads, as torch's;
- a forward under no_grad keeps nothing, and a backward there or after it raises;
- a backward never silently mixes two forwards: a shared layer within one forward pass
  works, a second forward pass before the backward (a logging forward) is refused, unless
  it ran under no_grad (then it is harmless).
"""

import threading
import tracemalloc

import numpy as np
import pytest

import refcnn
from refcnn import models, nn, no_grad
from refcnn.testing import assert_gradient

F64 = np.float64


# ---- the mode itself ----------------------------------------------------------------------
def test_no_grad_nests_and_restores():
    assert refcnn.is_grad_enabled()
    with no_grad():
        assert not refcnn.is_grad_enabled()
        with refcnn.enable_grad():
            assert refcnn.is_grad_enabled()
            with no_grad():
                assert not refcnn.is_grad_enabled()
            assert refcnn.is_grad_enabled()
        assert not refcnn.is_grad_enabled()
    assert refcnn.is_grad_enabled()


def test_no_grad_restores_after_an_exception():
    with pytest.raises(KeyError), no_grad():
        raise KeyError("boom")
    assert refcnn.is_grad_enabled()


@pytest.mark.parametrize("decorator", [no_grad(), no_grad], ids=["called", "bare"])
def test_no_grad_decorates_a_function(decorator):
    @decorator
    def mode(x):
        """docstring kept"""
        return refcnn.is_grad_enabled(), x

    assert mode(3) == (False, 3) and mode.__doc__ == "docstring kept"
    assert refcnn.is_grad_enabled()


def test_decorated_function_that_raises_restores_the_mode():
    @no_grad()
    def fails():
        raise ValueError("x")

    with pytest.raises(ValueError):
        fails()
    assert refcnn.is_grad_enabled()


def test_no_grad_refuses_a_generator_function():
    with pytest.raises(TypeError, match="cannot decorate the generator function 'gen'"):

        @no_grad()
        def gen():
            yield 1


def test_set_grad_enabled_as_function_and_context():
    with refcnn.set_grad_enabled(False):
        assert not refcnn.is_grad_enabled()
    assert refcnn.is_grad_enabled()
    refcnn.set_grad_enabled(False)  # a plain call switches it, as torch's
    try:
        assert not refcnn.is_grad_enabled()
    finally:
        refcnn.set_grad_enabled(True)
    with pytest.raises(TypeError, match="takes a bool, got 0"):
        refcnn.set_grad_enabled(0)


def test_grad_mode_is_per_thread():
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait()
        seen["other"] = refcnn.is_grad_enabled()
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with no_grad():
        inside.set()
        done.wait(5)
        seen["main"] = refcnn.is_grad_enabled()
    t.join()
    assert seen == {"main": False, "other": True}


# ---- forwards under no_grad ---------------------------------------------------------------------
def _lenet(dtype=np.float32):
    refcnn.manual_seed(0)
    return models.LeNet5(dtype=dtype)


def _batch(n=4, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(dtype)


def test_forward_under_no_grad_keeps_nothing_and_gives_the_same_output():
    model = _lenet()
    x = _batch()
    with no_grad():
        y = model(x)
    assert not any(m.__dict__["_ctx"] not in (None, "no_grad") for m in model.modules())
    np.testing.assert_array_equal(y, model(x))


def test_backward_after_a_no_grad_forward_raises():
    model = _lenet()
    with no_grad():
        y = model(_batch())
    with pytest.raises(RuntimeError, match=r"the forward before it ran under refcnn.no_grad\(\)"):
        model.backward(np.ones_like(y))


def test_backward_inside_no_grad_raises_and_keeps_the_context():
    model = _lenet()
    y = model(_batch())
    with no_grad(), pytest.raises(RuntimeError, match=r"Linear.backward called inside refcnn.no_grad\(\)"):
        model.backward(np.ones_like(y))
    model.backward(np.ones_like(y))  # outside, the forward's context is still there


def test_a_no_grad_forward_between_forward_and_backward_is_harmless():
    """A logging forward on another batch under no_grad: the gradient is the training batch's."""
    x, other = _batch(seed=1), _batch(seed=2)
    reference = _lenet()
    g = np.random.default_rng(3).standard_normal((4, 10)).astype(np.float32)
    reference(x)
    reference.backward(g)
    model = _lenet()
    model(x)
    with no_grad():
        model(other)
    model.backward(g)
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)


def test_batchnorm_in_training_still_updates_its_statistics_under_no_grad():
    """As torch: no_grad is about gradients, not about the mode."""
    bn = nn.BatchNorm1d(3)
    with no_grad():
        bn(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    assert int(bn.num_batches_tracked) == 1 and bn.running_mean.any()


def test_no_grad_frees_the_forward_memory():
    """What a forward keeps for backward (the activations) is not held under no_grad:
    what stays allocated after the output is deleted is a small fraction of grad mode's."""
    model = _lenet()
    x = _batch(64)
    with no_grad():
        model(x)  # the kernels' reusable workspaces exist before anything is measured

    def retained():
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            y = model(x)
            del y
            return tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()

    with_grad = retained()
    model.zero_grad()
    for m in model.modules():  # start clean: no context from the forward above
        object.__setattr__(m, "_ctx", None)
    with no_grad():
        without = retained()
    assert with_grad > 4 * x.nbytes, with_grad  # the activations of six layers at least
    assert without < x.nbytes // 10, (without, with_grad)


# ---- which forward a backward belongs to ----------------------------------------------------------
def _mlp():
    refcnn.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 4, dtype=F64), nn.Tanh(), nn.Linear(4, 2, dtype=F64))


def test_a_second_forward_before_the_backward_cannot_give_the_wrong_batch_gradient():
    """The hazard: forward on the training batch, a logging forward on another batch of the
    same shape, then backward with the training batch's gradient. Before, the gradient
    silently came from the logging batch's activations; now the backward refuses."""
    model = _mlp()
    rng = np.random.default_rng(0)
    x_train, x_log = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    g = rng.standard_normal((5, 2))
    model(x_train)
    model(x_log)  # logging forward, in grad mode
    with pytest.raises(RuntimeError, match=r"Linear ran forward in a new call before the backward of its previous"):
        model.backward(g)
    assert all(p.grad is None for p in model.parameters())  # nothing was accumulated
    # run again, the training forward right before its backward: the gradient of x_train
    model(x_train)
    gx = model.backward(g)
    assert_gradient(lambda: float(np.sum(model(x_train) * g)), x_train, gx, what="dL/dx of the training batch")


def test_a_shared_layer_within_one_forward_gets_both_gradients():
    """One Linear used twice in one Sequential (weight tying): each use keeps its context
    and the backwards take them newest first, so the gradients are those of the math."""
    refcnn.manual_seed(2)
    shared = nn.Linear(3, 3, dtype=F64)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    rng = np.random.default_rng(1)
    x, r = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))

    def loss():
        return float(np.sum(model(x) * r))

    model(x)
    gx = model.backward(r)
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    assert list(grads) == ["0.weight", "0.bias"]
    assert_gradient(loss, x, gx, what="dL/dx")
    assert_gradient(loss, shared.weight.data, grads["0.weight"], what="dL/dweight (both uses)")
    assert_gradient(loss, shared.bias.data, grads["0.bias"], what="dL/dbias (both uses)")


def test_each_forward_then_its_backward_accumulates_as_before():
    model = _mlp()
    x = np.ones((2, 3))
    for _ in range(3):
        model(x)
        model.backward(np.ones((2, 2)))
    single = _mlp()
    single(x)
    single.backward(np.ones((2, 2)))
    np.testing.assert_allclose(model[0].weight.grad, 3 * single[0].weight.grad, rtol=1e-15)


def test_switching_the_mode_drops_an_evaluation_pass():
    """model.eval(); forward (no no_grad); model.train(); forward; backward works: the
    evaluation pass belongs to eval mode and is dropped by train()."""
    model = _lenet()
    model.eval()
    model(_batch(seed=5))
    model.train()
    y = model(_batch(seed=6))
    model.backward(np.ones_like(y))
    # and a backward after a mode switch has no forward to use: refused, not mixed
    model(_batch(seed=6))
    model.eval()
    with pytest.raises(RuntimeError, match="called without a forward before it"):
        model.backward(np.ones_like(y))


def test_a_forward_that_raised_leaves_nothing_behind():
    """Layers before the one that rejected the input ran; their contexts must not block
    (or mix into) the next forward's backward."""
    model = _lenet()
    with pytest.raises(ValueError, match="in layer '0' \\(Conv2d\\) of LeNet5"):
        model(np.ones((2, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match="in layer '7' \\(Linear\\) of LeNet5"):
        model(np.ones((2, 1, 32, 32), np.float32))  # fails after the convolutions ran
    y = model(_batch())
    model.backward(np.ones_like(y))


def test_forward_called_directly_counts_as_a_pass_of_its_own():
    """m.forward(x) twice (not through __call__) is two passes, not one shared use."""
    m = nn.Linear(3, 2, dtype=F64)
    m.forward(np.ones((1, 3)))
    m.forward(np.zeros((1, 3)))
    with pytest.raises(RuntimeError, match="ran forward in a new call"):
        m.backward(np.ones((1, 2)))
