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


# ---- Parameter: array-like, as a torch Parameter is tensor-like --------------------------------
def _param():
    return nn.Parameter(np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.5]], np.float32))


def test_parameter_is_its_array_for_numpy():
    p = _param()
    a = np.asarray(p)
    assert a is p.data and a.dtype == np.float32  # no copy, not a 0-d object array
    assert np.array(p) is not p.data and np.array_equal(np.array(p), p.data)  # np.array copies
    assert np.asarray(p, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="converting a float32 Parameter to float64 needs a copy"):
        p.__array__(np.float64, copy=False)
    assert p.__array__(copy=True) is not p.data
    assert np.sum(p) == pytest.approx(1.0) and np.maximum(p, 0).dtype == np.float32


def test_np_save_writes_the_numbers(tmp_path):
    """Before, np.save pickled the Parameter object; a load without pickle must work."""
    p = _param()
    np.save(tmp_path / "w.npy", p)
    loaded = np.load(tmp_path / "w.npy", allow_pickle=False)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, p.data)


@pytest.mark.parametrize(
    "op, expected",
    [
        (lambda p: p * 2, lambda a: a * 2),
        (lambda p: 2 - p, lambda a: 2 - a),
        (lambda p: -p, lambda a: -a),
        (lambda p: p / 4, lambda a: a / 4),
        (lambda p: 1 / (p + 3), lambda a: 1 / (a + 3)),
        (lambda p: p**2, lambda a: a**2),
        (lambda p: abs(p), np.abs),
        (lambda p: p @ np.ones((3, 2), np.float32), lambda a: a @ np.ones((3, 2), np.float32)),
        (lambda p: np.ones((4, 2), np.float32) @ p, lambda a: np.ones((4, 2), np.float32) @ a),
        (lambda p: np.ones(3, np.float32) * p, lambda a: np.ones(3, np.float32) * a),
        (lambda p: p + p, lambda a: a + a),
        (lambda p: p > 0, lambda a: a > 0),
        (lambda p: p[1], lambda a: a[1]),
        (lambda p: p.T, lambda a: a.T),
    ],
    ids=["mul", "rsub", "neg", "div", "rdiv", "pow", "abs", "matmul", "rmatmul", "ndarray-mul", "param-param",
         "compare", "index", "T"],
)  # fmt: skip
def test_parameter_arithmetic_gives_ndarrays(op, expected):
    p = _param()
    got = op(p)
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, expected(p.data))


def test_parameter_shape_attributes_and_inplace_update():
    p = _param()
    assert p.shape == (2, 3) and p.dtype == np.float32 and p.ndim == 2 and p.dim() == 2
    assert p.size() == (2, 3) and p.size(1) == 3 and p.numel() == 6 and len(p) == 2
    assert p.numpy() is p.data and p.tolist()[0] == [1.0, -2.0, 3.0]
    data = p.data
    p -= 0.5 * np.ones((2, 3), np.float32)  # a manual SGD step keeps the array's identity
    assert p.data is data and p.data[0, 0] == 0.5
    assert hash(p) == hash(p) and p != _param()  # identity equality: Parameters key optimizer state


# ---- buffers, children, apply, add_module -------------------------------------------------------
class Scaler(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("scale", np.ones(2, np.float32))
        self.register_buffer("cache", np.zeros(2, np.float32), persistent=False)
        self.inner = Affine(2)


def test_non_persistent_buffers_stay_out_of_state_dict():
    m = Scaler()
    assert [n for n, _ in m.named_buffers()] == ["scale", "cache", "inner.calls"]
    assert [n for n, _ in m.named_buffers(recurse=False)] == ["scale", "cache"]
    assert list(m.state_dict()) == ["scale", "inner.weight", "inner.bias", "inner.calls"]
    m.load_state_dict(m.state_dict())  # and load_state_dict does not ask for them
    m.to(np.float64)
    assert m.cache.dtype == np.float64  # but .to() converts them
    m.register_buffer("cache", m.cache, persistent=True)
    assert "cache" in m.state_dict()


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m.register_buffer("a.b", None), KeyError, "buffer name can.*t contain"),
        (lambda m: m.register_buffer("", None), KeyError, "buffer name can.*t be empty string"),
        (lambda m: m.register_buffer("inner", None), KeyError, "attribute 'inner' already exists"),
        (lambda m: m.register_buffer("b", [1.0]), TypeError, "cannot assign list object to buffer 'b'"),
        (lambda m: m.register_buffer(3, None), TypeError, "buffer name should be a string, got int"),
        (lambda m: m.add_module("scale", nn.ReLU()), KeyError, "attribute 'scale' already exists"),
        (lambda m: m.add_module("x", np.ones(2)), TypeError, "ndarray is not a Module subclass"),
        (lambda m: m.register_parameter("w", np.ones(2)), TypeError, "cannot assign ndarray object to parameter"),
    ],
    ids=["buffer-dot", "buffer-empty", "buffer-clash", "buffer-list", "buffer-name-int", "module-clash",
         "module-array", "parameter-array"],
)  # fmt: skip
def test_registration_errors_as_torch(call, error, match):
    with pytest.raises(error, match=match):
        call(Scaler())


def test_add_module_children_and_apply_order():
    model = nn.Sequential(Affine(2), nn.Sequential(Affine(2), nn.ReLU()))
    model.add_module("head", Affine(2))
    assert [n for n, _ in model.named_children()] == ["0", "1", "head"]
    assert list(model.children())[2] is model.head
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    # children first, then the module itself, as torch's apply
    assert seen == ["Affine", "Affine", "ReLU", "Sequential", "Affine", "Sequential"]


def test_apply_initialises_weights():
    def init(m):
        if isinstance(m, Affine):
            m.weight.data[...] = 0.5

    model = net().apply(init)
    assert all((m.weight.data == 0.5).all() for m in model)


def test_shared_module_appears_once_in_modules_but_under_both_names_in_state_dict():
    """As torch: named_modules/parameters deduplicate, state_dict keeps both paths."""
    shared = Affine(2)
    model = nn.Sequential(shared, shared)
    assert [n for n, _ in model.named_modules()] == ["", "0"]
    assert len(list(model.named_modules(remove_duplicate=False))) == 3
    assert list(model.state_dict()) == ["0.weight", "0.bias", "0.calls", "1.weight", "1.bias", "1.calls"]


# ---- freezing --------------------------------------------------------------------------------
def test_frozen_parameters_get_no_grad_and_optimizers_skip_them():
    from refcnn import optim

    model = net()
    model[0].requires_grad_(False)
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad
    frozen = {k: p.data.copy() for k, p in model[0].named_parameters()}
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        model(np.ones((2, 3), np.float32))
        model.backward(np.ones((2, 3), np.float32))
        opt.step()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[1].weight.grad is not None
    for k, p in model[0].named_parameters():
        np.testing.assert_array_equal(p.data, frozen[k], err_msg=k)
    assert model[0].weight not in opt.state and model[1].weight in opt.state
    assert model.requires_grad_() is model and model[0].weight.requires_grad


# ---- state dicts --------------------------------------------------------------------------------
def test_load_state_dict_without_num_batches_tracked_keeps_the_count():
    """As torch's BatchNorm: a checkpoint without num_batches_tracked loads, the count stays."""
    bn = nn.BatchNorm1d(2)
    bn(np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32))
    sd = {k: v.copy() + 1 for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    result = bn.load_state_dict(sd)
    assert result.missing_keys == [] and int(bn.num_batches_tracked) == 1
    np.testing.assert_array_equal(bn.running_var, sd["running_var"])
    with pytest.raises(ValueError, match=r"missing keys \['running_var'\]"):
        bn.load_state_dict({k: v for k, v in sd.items() if k != "running_var"})


def test_load_state_dict_takes_parameters_and_state_dict_keeps_vars():
    model, other = net(), net()
    other[0].weight.data[...] = 9
    model.load_state_dict(other.state_dict(keep_vars=True))
    assert isinstance(other.state_dict(keep_vars=True)["0.weight"], nn.Parameter)
    np.testing.assert_array_equal(model[0].weight.data, np.full(3, 9, np.float32))


# ---- errors that say what to do --------------------------------------------------------------------
class NoBackward(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = Affine(2), nn.ReLU()

    def forward(self, x):
        return self.b(self.a(x))


def test_custom_module_without_backward_says_what_to_write():
    m = NoBackward()
    m(np.ones((1, 2), np.float32))
    with pytest.raises(NotImplementedError, match="NoBackward does not define backward") as info:
        m.backward(np.ones((1, 2), np.float32))
    assert "calls the backward of each child its forward called, in the reverse order" in str(info.value)
    assert "returns dL/dinput" in str(info.value)
    with pytest.raises(NotImplementedError, match=r'Module \[Module\] is missing the required "forward" function'):
        nn.Module()(1)


@pytest.mark.parametrize(
    "model, x, match",
    [
        (lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 2)), np.ones((2, 7), np.float32),
         r"^in layer '1' \(Linear\) of Sequential: Linear expected input of shape \(\*, 6\), got \(2, 7\)$"),
        (lambda: nn.Sequential(OrderedDict(body=nn.Sequential(nn.ReLU(), nn.Linear(6, 2)))), np.ones((2, 7), np.float32),
         r"^in layer 'body.1' \(Linear\) of Sequential: Linear expected"),
        (lambda: nn.Sequential(nn.ReLU(), nn.Conv2d(3, 2, 3)), np.ones((1, 4, 5, 5), np.float32),
         r"^in layer '1' \(Conv2d\) of Sequential: Conv2d: given groups=1, weight of size \[2, 3, 3, 3\], "
         r"expected input\[1, 4, 5, 5\] to have 3 channels, but got 4 channels instead$"),
        (lambda: nn.Linear(6, 2), np.ones((2, 7), np.float32), r"^Linear expected input"),  # the model itself
    ],
    ids=["linear-in-sequential", "nested-name", "conv-channels", "bare-layer"],
)  # fmt: skip
def test_an_input_error_inside_a_model_names_the_layer(model, x, match):
    with pytest.raises(ValueError, match=match):
        model()(x)


def test_kernel_layer_backward_checks_the_gradient_before_using_the_context():
    m = nn.Linear(3, 2)
    m(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"Linear.backward expected grad_output of shape \(4, 2\) \(the output's\)"):
        m.backward(np.ones((4, 3), np.float32))
    with pytest.raises(TypeError, match=r"Linear\.backward expected grad_output of dtype float32 .* got float64"):
        m.backward(np.ones((4, 2)))
    assert m.backward(np.ones((4, 2), np.float32)).shape == (4, 3)  # the context was not used up
