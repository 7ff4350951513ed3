"""Contracts of the built-in kernels that only a direct call sees, found by mutation testing
(tox -e mutation): a mutant that changes a keyword default survives every test that goes
through the registry, which always passes the keyword.

- Every built-in backward takes ``needs_input_grad=True``: called without it, it returns dL/dx
  (the registry's docstring promises this to a caller of the implementation itself).
- A kernel called with its config left out uses PyTorch's defaults (flatten on a 1-D input).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from refcnn import kernels
from refcnn.kernels import registry

RNG = np.random.default_rng(0)


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def _case(op: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A small valid call of ``op``: asymmetric shapes, every config given."""
    x4 = _x(2, 4, 5, 6)
    pool = {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0)}
    conv = {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2}
    logits, classes = _x(3, 4), np.array([0, 3, 1])
    probs = 1 / (1 + np.exp(-_x(3, 4)))
    cases: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
        "adaptive_avg_pool2d": ((x4,), {"output_size": (3, 2)}),
        "adaptive_max_pool2d": ((x4,), {"output_size": (3, 2)}),
        "avg_pool2d": ((x4,), {**pool, "ceil_mode": False, "count_include_pad": True, "divisor_override": None}),
        "max_pool2d": ((x4,), {**pool, "dilation": (1, 1), "ceil_mode": False}),
        "batch_norm": (
            (x4, _x(4), _x(4), None, None),
            {"training": True, "momentum": 0.1, "eps": 1e-5},
        ),
        "group_norm": ((x4, _x(4), _x(4)), {"num_groups": 2, "eps": 1e-5}),
        "layer_norm": ((x4, _x(5, 6), _x(5, 6)), {"normalized_shape": (5, 6), "eps": 1e-5}),
        "conv2d": ((x4, _x(6, 2, 3, 2), _x(6)), conv),
        "conv_transpose2d": ((x4, _x(4, 3, 3, 2), _x(6)), {**conv, "output_padding": (1, 0)}),
        "linear": ((_x(3, 4), _x(5, 4), _x(5)), {}),
        "binary_cross_entropy": ((probs, RNG.random((3, 4)), None), {"reduction": "mean"}),
        "binary_cross_entropy_with_logits": ((logits, RNG.random((3, 4)), None, None), {"reduction": "mean"}),
        "cross_entropy": ((logits, classes, None), {"ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0}),
        "nll_loss": ((logits, classes, None), {"ignore_index": -100, "reduction": "mean"}),
        "l1_loss": ((logits, _x(3, 4)), {"reduction": "mean"}),
        "mse_loss": ((logits, _x(3, 4)), {"reduction": "mean"}),
        "smooth_l1_loss": ((logits, _x(3, 4)), {"reduction": "mean", "beta": 1.0}),
        "dropout": ((x4,), {"p": 0.5, "training": True, "generator": np.random.default_rng(1)}),
        "dropout2d": ((x4,), {"p": 0.5, "training": True, "generator": np.random.default_rng(1)}),
        "flatten": ((x4,), {"start_dim": 1, "end_dim": 2}),
        "softmax": ((x4,), {"dim": 1}),
        "log_softmax": ((x4,), {"dim": 1}),
    }
    return cases.get(op, ((x4,), {}))  # the activations: x alone


IMPLS = [(op, impl) for op in registry.ops() for impl in registry.available(op)]


@pytest.mark.parametrize(("op", "impl"), IMPLS, ids=[f"{op}-{impl}" for op, impl in IMPLS])
def test_a_backward_called_without_needs_input_grad_returns_the_input_gradient(op, impl):
    args, config = _case(op)
    kernel = kernels.get(op, impl)
    if "generator" in config:
        config = {**config, "generator": np.random.default_rng(1)}
    y, ctx = kernel.forward(*args, **config)
    gy = RNG.standard_normal(np.shape(y))
    plain = kernel.backward_impl(gy, ctx.inner)
    told = kernel.backward_impl(gy, ctx.inner, needs_input_grad=True)
    assert plain[0] is not None, f"{op} {impl}: backward without needs_input_grad gave no dL/dx"
    assert len(plain) == len(told), f"{op} {impl}: {len(plain)} gradients without the keyword, {len(told)} with it"
    for i, (a, b) in enumerate(zip(plain, told, strict=True)):
        if b is None:
            assert a is None, f"{op} {impl}: gradient {i}"
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{op} {impl}: gradient {i}")


def test_flatten_with_its_config_left_out_flattens_a_1d_input_whole():
    # torch.flatten(x) of a 1-D x is x: start_dim=0, end_dim=-1
    y, _ = kernels.get("flatten").forward(np.arange(3.0))
    np.testing.assert_array_equal(y, [0.0, 1.0, 2.0])
