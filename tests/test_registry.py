"""The kernel registry: selection order, nesting, threads, validation in front of every impl."""

import threading

import numpy as np
import pytest

from refcnn.kernels import registry


@pytest.fixture
def toy_op():
    """A throwaway op 'toy_double' with two implementations and a validator."""

    def fwd(x, *, scale):
        return x * 2 * scale, scale

    def bwd(gy, ctx):
        return (gy * 2 * ctx,)

    def validate(x, *, scale):
        if scale < 0:
            raise ValueError(f"toy_double: scale must be >= 0, got {scale}")

    registry.register("toy_double", "reference", fwd, bwd)
    registry.register("toy_double", "fast", fwd, bwd)
    registry.register("toy_double", "other", fwd, bwd)
    registry.set_validator("toy_double", validate)
    yield "toy_double"
    registry._impls.pop("toy_double", None)
    registry._validators.pop("toy_double", None)
    registry._defaults.pop("toy_double", None)


def test_available_lists_sorted_names(toy_op):
    assert registry.available(toy_op) == ["fast", "other", "reference"]
    assert toy_op in registry.ops()


def test_get_prefers_fast_then_default_then_use(toy_op):
    assert registry.get(toy_op).name == "fast"
    registry.set_default(toy_op, "other")
    assert registry.get(toy_op).name == "other"
    with registry.use(toy_double="reference"):
        assert registry.get(toy_op).name == "reference"
        assert registry.get(toy_op, impl="fast").name == "fast"  # an explicit impl wins
    assert registry.get(toy_op).name == "other"


def test_use_nests_innermost_wins(toy_op):
    with registry.use(toy_double="reference"):
        with registry.use(toy_double="other"):
            assert registry.get(toy_op).name == "other"
        assert registry.get(toy_op).name == "reference"


def test_use_is_thread_local(toy_op):
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other_thread():
        inside.wait()
        seen["other"] = registry.get(toy_op).name
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with registry.use(toy_double="reference"):
        inside.set()
        done.wait(5)
        seen["main"] = registry.get(toy_op).name
    t.join()
    assert seen == {"main": "reference", "other": "fast"}


def test_validator_runs_before_every_implementation(toy_op):
    for impl in registry.available(toy_op):
        with pytest.raises(ValueError, match=r"scale must be >= 0, got -1"):
            registry.get(toy_op, impl).forward(np.ones(2), scale=-1)


def test_backward_checks_grad_shape_and_dtype(toy_op):
    k = registry.get(toy_op)
    _y, ctx = k.forward(np.ones((2, 3), np.float32), scale=1.0)
    with pytest.raises(ValueError, match=r"grad_y of shape \(2, 3\).*got \(3, 2\)"):
        k.backward(np.ones((3, 2), np.float32), ctx)
    with pytest.raises(TypeError, match=r"dtype float32.*got float64"):
        k.backward(np.ones((2, 3)), ctx)
    (gx,) = k.backward(np.full((2, 3), 0.5, np.float32), ctx)
    np.testing.assert_array_equal(gx, np.ones((2, 3), np.float32))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: registry.get("no_such_op"), KeyError, "unknown op 'no_such_op'"),
        (lambda: registry.get("toy_double", "nope"), KeyError, "no implementation 'nope'"),
        (lambda: registry.set_default("toy_double", "nope"), KeyError, "available"),
        (lambda: registry.use(toy_double="nope").__enter__(), KeyError, "no implementation 'nope'"),
        (lambda: registry.register("toy_double", "x", None, None), TypeError, "must be callable"),
    ],
    ids=["unknown-op", "unknown-impl", "bad-default", "bad-use", "not-callable"],
)
def test_bad_choices_are_named(toy_op, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_unregister_removes_impl_and_default(toy_op):
    registry.set_default(toy_op, "other")
    registry.unregister(toy_op, "other")
    assert registry.available(toy_op) == ["fast", "reference"]
    assert registry.get(toy_op).name == "fast"


def test_every_builtin_op_has_a_validator():
    import refcnn.kernels  # noqa: F401  (registers the built-ins)

    assert registry.ops(), "no kernels registered"
    missing = [op for op in registry.ops() if op not in registry._validators]
    assert not missing, f"ops without a validator: {missing}"


def test_backward_without_input_grad(toy_op):
    """An impl that does not take needs_input_grad still works: the registry drops gx."""
    k = registry.get(toy_op)
    assert not k.takes_needs_input_grad  # noted once, at register
    _y, ctx = k.forward(np.ones(3), scale=1.0)
    assert k.backward(np.ones(3), ctx, needs_input_grad=False) == (None,)


def test_a_backward_taking_the_keyword_is_told(toy_op):
    calls = []

    def bwd(gy, ctx, *, needs_input_grad=True):
        calls.append(needs_input_grad)
        return (gy * 2 * ctx if needs_input_grad else None,)

    registry.register(toy_op, "keyword", lambda x, *, scale: (x * 2 * scale, scale), bwd)
    k = registry.get(toy_op, "keyword")
    assert k.takes_needs_input_grad
    _y, ctx = k.forward(np.ones(3), scale=1.0)
    assert k.backward(np.ones(3), ctx, needs_input_grad=False) == (None,)
    np.testing.assert_array_equal(k.backward(np.ones(3), ctx)[0], np.full(3, 2.0))
    assert calls == [False, True]


def test_builtin_backwards_take_needs_input_grad():
    import refcnn.kernels  # noqa: F401

    lacking = [
        f"{op}/{impl}"
        for op in registry.ops()
        for impl in registry.available(op)
        if not registry.get(op, impl).takes_needs_input_grad
    ]
    assert not lacking, f"backwards without the needs_input_grad keyword: {lacking}"


@pytest.mark.parametrize(
    "op, args",
    [
        ("linear", lambda r: (r.standard_normal((4, 3)), r.standard_normal((2, 3)), r.standard_normal(2))),
        (
            "batch_norm",
            lambda r: (r.standard_normal((4, 3, 2)), r.standard_normal(3), r.standard_normal(3), None, None),
        ),
        ("layer_norm", lambda r: (r.standard_normal((4, 3)), r.standard_normal(3), r.standard_normal(3))),
        ("group_norm", lambda r: (r.standard_normal((4, 4, 3)), r.standard_normal(4), r.standard_normal(4))),
        ("relu", lambda r: (r.standard_normal((4, 3)),)),
        ("dropout", lambda r: (r.standard_normal((4, 3)),)),
    ],
    ids=["linear", "batch_norm", "layer_norm", "group_norm", "relu", "dropout"],
)
def test_skipping_the_input_gradient_leaves_the_others(op, args):
    import refcnn.kernels  # noqa: F401

    config = {
        "batch_norm": dict(training=True, momentum=0.1, eps=1e-5),
        "layer_norm": dict(normalized_shape=(3,), eps=1e-5),
        "group_norm": dict(num_groups=2, eps=1e-5),
        "dropout": dict(p=0.5, training=True, generator=np.random.default_rng(3)),
    }.get(op, {})
    for impl in registry.available(op):
        k = registry.get(op, impl)
        y, ctx = k.forward(*args(np.random.default_rng(0)), **config)
        g = np.random.default_rng(1).standard_normal(y.shape)
        full, skipped = k.backward(g, ctx), k.backward(g, ctx, needs_input_grad=False)
        assert full[0] is not None and skipped[0] is None, impl
        for a, b in zip(full[1:], skipped[1:], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{op}/{impl}")


def test_conv2d_fast_skips_the_input_gradient():
    import refcnn.kernels  # noqa: F401

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((4, 3, 3, 5)), rng.standard_normal(4)
    k = registry.get("conv2d", "fast")
    config = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 1), groups=1)
    y, ctx = k.forward(x, w, b, **config)
    g = rng.standard_normal(y.shape)
    gx, gw, gb = k.backward(g, ctx)
    none, gw2, gb2 = k.backward(g, ctx, needs_input_grad=False)
    assert gx is not None and none is None
    np.testing.assert_array_equal(gw, gw2)
    np.testing.assert_array_equal(gb, gb2)
