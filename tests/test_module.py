"""Module, Parameter, Sequential: registration, state_dict, dtype, modes, backward bookkeeping.

Uses a toy module (y = w * x + b per feature) so the bookkeeping is tested on its own.
"""

from collections import OrderedDict

import numpy as np
import pytest

from refcnn import nn


class Affine(nn.Module):
    """y = w * x + b, with a running count buffer: enough surface for the bookkeeping."""

    def __init__(self, features, bias=True, dtype=None):
        super().__init__()
        self.dtype = nn.module.float_dtype(dtype, "Affine")
        self.weight = nn.Parameter(np.arange(1, features + 1, dtype=self.dtype))
        if bias:
            self.bias = nn.Parameter(np.zeros(features, self.dtype))
        else:
            self.register_parameter("bias", None)
        self.register_buffer("calls", np.zeros((), np.int64))

    def forward(self, x):
        self.calls += 1
        self._save_for_backward(x)
        return x * self.weight.data + (0 if self.bias is None else self.bias.data)

    def backward(self, grad_output):
        x = self._take_ctx()
        self.weight.accumulate((grad_output * x).sum(axis=0))
        if self.bias is not None:
            self.bias.accumulate(grad_output.sum(axis=0))
        return grad_output * self.weight.data


def net():
    return nn.Sequential(Affine(3), Affine(3, bias=False))


def test_state_dict_keys_order_shapes_dtypes():
    sd = net().state_dict()
    assert list(sd) == ["0.weight", "0.bias", "0.calls", "1.weight", "1.calls"]
    assert sd["0.weight"].dtype == np.float32 and sd["0.calls"].dtype == np.int64
    assert sd["1.weight"].shape == (3,)


def test_named_parameters_skip_none_and_dedupe_shared():
    shared = Affine(2)
    model = nn.Sequential(shared, shared)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in net().named_parameters()] == ["0.weight", "0.bias", "1.weight"]


def test_gradients_accumulate_until_zero_grad():
    model = net()
    x = np.ones((2, 3), np.float32)
    for _ in range(2):
        model(x)
        model.backward(np.ones((2, 3), np.float32))
    # d(sum y)/d w0 = sum_n x * w1 = 2 * [1, 2, 3], twice
    np.testing.assert_array_equal(model[0].weight.grad, 2 * 2 * np.array([1, 2, 3], np.float32))
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_zero_grad_keep_arrays():
    model = net()
    model(np.ones((1, 3), np.float32))
    model.backward(np.ones((1, 3), np.float32))
    grad = model[0].weight.grad
    model.zero_grad(set_to_none=False)
    assert model[0].weight.grad is grad and not grad.any()


def test_backward_without_forward_or_twice_raises():
    m = Affine(3)
    with pytest.raises(RuntimeError, match=r"Affine.backward called without a forward"):
        m.backward(np.ones((1, 3), np.float32))
    m(np.ones((1, 3), np.float32))
    m.backward(np.ones((1, 3), np.float32))
    with pytest.raises(RuntimeError, match="or twice for one forward"):
        m.backward(np.ones((1, 3), np.float32))


def test_load_state_dict_copies_in_place_and_casts():
    model = net()
    weight = model[0].weight.data
    sd = {k: np.full_like(v, 7) for k, v in net().state_dict().items()}
    sd["0.weight"] = [5.0, 6.0, 7.0]  # anything np.asarray takes
    model.load_state_dict(sd)
    assert model[0].weight.data is weight  # optimizers keep their references
    np.testing.assert_array_equal(weight, np.array([5, 6, 7], np.float32))
    assert weight.dtype == np.float32 and int(model[1].calls) == 7


def test_load_state_dict_names_every_problem_and_changes_nothing():
    model = net()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    sd = dict(net().state_dict())
    del sd["0.bias"]
    sd["2.weight"] = np.zeros(3, np.float32)
    sd["1.weight"] = np.zeros((3, 1), np.float32)
    with pytest.raises(ValueError) as info:
        model.load_state_dict(sd)
    message = str(info.value)
    assert "missing keys ['0.bias']" in message
    assert "unexpected keys ['2.weight']" in message
    assert "1.weight: expected (3,), got (3, 1)" in message
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_non_strict_reports_keys():
    model = net()
    sd = OrderedDict((k, v) for k, v in net().state_dict().items() if k != "0.bias")
    sd["extra"] = np.zeros(1)
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra"]


def test_to_float64_converts_params_grads_and_float_buffers_only():
    model = net()
    model(np.ones((1, 3), np.float32))
    model.backward(np.ones((1, 3), np.float32))
    model.to(np.float64)
    assert all(p.data.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    assert model[0].calls.dtype == np.int64 and model[0].dtype == np.float64
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int32"):
        model.to(np.int32)


def test_train_eval_propagate():
    model = net()
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_parameter_rejects_integer_data_and_misfit_gradients():
    with pytest.raises(TypeError, match="float32 or float64, got dtype int64"):
        nn.Parameter(np.arange(3))
    p = nn.Parameter(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"shape \(2,\) and dtype float32 does not fit"):
        p.accumulate(np.zeros(2, np.float32))


def test_assigning_non_parameter_to_parameter_slot_is_an_error():
    m = Affine(2)
    with pytest.raises(TypeError, match="cannot assign ndarray to parameter 'weight'"):
        m.weight = np.zeros(2)


def test_sequential_indexing_and_repr():
    model = net()
    assert len(model) == 2 and isinstance(model[-1], Affine)
    assert len(model[1:]) == 1
    with pytest.raises(IndexError, match="index 5 is out of range for Sequential of length 2"):
        model[5]
    with pytest.raises(TypeError, match="Sequential takes Modules, got int at position 0"):
        nn.Sequential(3)
    assert repr(model) == "Sequential(\n  (0): Affine()\n  (1): Affine()\n)"


def test_sequential_backward_runs_in_reverse():
    model = net()
    x = np.array([[1.0, -2.0, 0.5]], np.float32)
    y = model(x)
    np.testing.assert_array_equal(y, x * np.array([1, 2, 3]) ** 2)
    gx = model.backward(np.ones_like(y))
    np.testing.assert_array_equal(gx, np.array([[1, 4, 9]], np.float32))


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Sequential(nn.Conv2d(2, 3, (3, 5), stride=(2, 1), padding_mode="reflect", padding=1), nn.ReLU()),
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(2 * 7 * 9, 4)),
        lambda: nn.Sequential(nn.ReLU(), nn.Conv2d(2, 3, 3)),  # the first module cannot skip: still no dL/dx
        lambda: net_2d(),
    ],
    ids=["conv-first", "linear-after-flatten", "relu-first", "toy-first"],
)
def test_backward_without_input_grad_gives_the_same_parameter_grads(make):
    """input_grad=False returns None and leaves every parameter gradient as a full backward does."""
    from refcnn import manual_seed

    manual_seed(0)
    model = make()
    x = np.random.default_rng(1).standard_normal((2, 2, 7, 9)).astype(np.float32)
    g = np.random.default_rng(2).standard_normal(model(x).shape).astype(np.float32)
    model.backward(g)
    full = {k: p.grad.copy() for k, p in model.named_parameters()}
    model.zero_grad()
    model(x)
    assert model.backward(g, input_grad=False) is None
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, full[k], err_msg=k)


def net_2d():
    return nn.Sequential(nn.Flatten(), Affine(2 * 7 * 9))
