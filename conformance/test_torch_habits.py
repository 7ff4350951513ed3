"""The library habits of a PyTorch user, checked against torch itself (needs torch):
containers and their children's names, state_dict keys, what load_state_dict takes, the
channel error's wording, grad mode, Parameters as arrays, frozen parameters.

    pytest conformance/test_torch_habits.py
"""

from collections import OrderedDict

import numpy as np
import pytest
import torch

import refcnn
from refcnn import nn as rnn
from refcnn import optim as roptim

tnn = torch.nn


# ---- one architecture built with every container habit, in both libraries --------------------
def _build(nn, array):
    """Sequential (nested, sliced, named), ModuleList, ModuleDict, add_module, persistent and
    non-persistent buffers, a module shared within a Sequential, BatchNorm's buffers."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 4, (3, 5)), nn.BatchNorm2d(4), nn.ReLU())
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
            self.blocks.append(nn.LayerNorm(4))
            self.heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))})
            self.heads.update([("aux", nn.GroupNorm(2, 4))])
            self.add_module("extra", nn.BatchNorm1d(4))
            self.register_buffer("scale", array([1.0, 2.0]))
            self.register_buffer("cache", array([0.0]), persistent=False)
            shared = nn.Linear(4, 4)
            self.tied = nn.Sequential(shared, nn.Tanh(), shared)
            self.tail = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 5), nn.Dropout())[1:4]
            self.named = nn.Sequential(OrderedDict(a=nn.Linear(5, 5), b=nn.ReLU(), c=nn.Linear(5, 1)))[::2]

    return Net()


@pytest.fixture(scope="module")
def twins():
    return _build(rnn, lambda v: np.array(v, np.float32)), _build(tnn, lambda v: torch.tensor(v))


def test_state_dict_keys_shapes_and_dtypes_equal_torchs(twins):
    r, t = twins
    want = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in t.state_dict().items()]
    got = [(k, tuple(v.shape), str(v.dtype)) for k, v in r.state_dict().items()]
    assert got == want


@pytest.mark.parametrize(
    "listing",
    [
        lambda m: [n for n, _ in m.named_parameters()],
        lambda m: [n for n, _ in m.named_parameters(remove_duplicate=False)],
        lambda m: [n for n, _ in m.named_buffers()],
        lambda m: [n for n, _ in m.named_buffers(recurse=False)],
        lambda m: [n for n, _ in m.named_modules()],
        lambda m: [n for n, _ in m.named_modules(remove_duplicate=False)],
        lambda m: [n for n, _ in m.named_children()],
        lambda m: [n for n, _ in m.tail.named_children()],
        lambda m: [n for n, _ in m.named.named_children()],
        lambda m: [type(c).__name__ for c in m.children()],
        lambda m: [n for n, _ in m.blocks[1:].named_children()],
        lambda m: list(m.heads.keys()),
    ],
    ids=["parameters", "parameters-dup", "buffers", "buffers-own", "modules", "modules-dup", "children",
         "sliced-children", "named-slice", "children-types", "modulelist-slice", "moduledict-keys"],
)  # fmt: skip
def test_traversals_name_what_torch_names(twins, listing):
    r, t = twins
    assert listing(r) == listing(t)


def test_apply_visits_in_torchs_order(twins):
    r, t = twins
    seen_r, seen_t = [], []
    r.apply(lambda m: seen_r.append(type(m).__name__))
    t.apply(lambda m: seen_t.append(type(m).__name__))
    assert seen_r == seen_t


def test_state_dict_from_torch_loads_into_refcnn(twins):
    r, t = twins
    r.load_state_dict(t.state_dict())
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(np.asarray(r.state_dict()[k]), v.numpy(), err_msg=k)


# ---- Sequential and ModuleList editing, step by step against torch ------------------------------
def _edits(nn):
    mods = [nn.Linear(i + 1, i + 1) for i in range(6)]
    seq = nn.Sequential(*mods[:4])
    out = []
    del seq[1]
    out.append([n for n, _ in seq.named_children()])
    seq.insert(-1, mods[4])
    seq.insert(0, mods[5])
    out.append([m.in_features for m in seq])
    seq.pop(2)
    seq.append(mods[1])
    out.append([(n, m.in_features) for n, m in seq.named_children()])
    out.append([(n, m.in_features) for n, m in seq[1:4].named_children()])
    out.append([(n, m.in_features) for n, m in seq[-2:].named_children()])
    del seq[::2]
    out.append([(n, m.in_features) for n, m in seq.named_children()])
    out.append([(n, m.in_features) for n, m in (seq + nn.Sequential(mods[0])).named_children()])
    ml = nn.ModuleList(mods)
    del ml[1:3]
    ml.insert(1, mods[1])
    out.append([(n, m.in_features) for n, m in ml.named_children()])
    out.append([(n, m.in_features) for n, m in ml[::-2].named_children()])
    return out


def test_container_edits_give_torchs_names():
    assert _edits(rnn) == _edits(tnn)


# ---- what load_state_dict takes ------------------------------------------------------------------
def _bn_net(nn):
    return nn.Sequential(nn.Conv2d(2, 3, (3, 5)), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 2 * 4, 2))


def _torch_state(seed=0):
    torch.manual_seed(seed)
    t = _bn_net(tnn)
    t.train()
    t(torch.randn(4, 2, 4, 8))  # running statistics and num_batches_tracked move off their defaults
    return t


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda sd, t: t.state_dict(keep_vars=True), id="requires-grad"),
        pytest.param(lambda sd, t: {k: v.t().contiguous().t() if v.dim() == 2 else v for k, v in sd.items()},
                     id="non-contiguous"),
        pytest.param(lambda sd, t: {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in sd.items()},
                     id="bfloat16"),
        pytest.param(lambda sd, t: {k: v.half() if v.is_floating_point() else v for k, v in sd.items()},
                     id="float16"),
        pytest.param(lambda sd, t: {k: v.double() if v.is_floating_point() else v for k, v in sd.items()},
                     id="float64"),
    ],
)  # fmt: skip
def test_load_state_dict_takes_what_torch_takes(transform):
    """The same values as torch's own load_state_dict of the same dict (which converts to
    the module's dtype with copy_), bit for bit."""
    source = _torch_state()
    given = transform(source.state_dict(), source)
    torch.manual_seed(1)
    t = _bn_net(tnn)
    t.load_state_dict(given)
    refcnn.manual_seed(1)
    r = _bn_net(rnn)
    r.load_state_dict(given)
    for k, v in t.state_dict().items():
        got = r.state_dict()[k]
        assert got.dtype == np.dtype(str(v.dtype).replace("torch.", "")), k
        np.testing.assert_array_equal(got, v.numpy(), err_msg=k)


def test_non_contiguous_tensors_really_are():
    sd = _torch_state().state_dict()
    w = sd["3.weight"].t().contiguous().t()
    assert not w.is_contiguous() and torch.equal(w, sd["3.weight"])


@pytest.mark.parametrize("keep_metadata", [False, True], ids=["plain-dict", "torch-state-dict"])
def test_missing_num_batches_tracked_as_torch(keep_metadata):
    """A plain dict without num_batches_tracked loads in torch (BatchNorm fills in its own
    count); a torch state dict whose metadata says version 2 does not: refcnn does the same."""
    sd = _torch_state().state_dict()  # with torch's _metadata (a copy would lose it)
    del sd["1.num_batches_tracked"]
    assert hasattr(sd, "_metadata")
    if not keep_metadata:
        sd = dict(sd)
    torch.manual_seed(1)
    t = _bn_net(tnn)
    t(torch.randn(4, 2, 4, 8))
    t(torch.randn(4, 2, 4, 8))  # num_batches_tracked = 2 before loading
    refcnn.manual_seed(1)
    r = _bn_net(rnn)
    for _ in range(2):
        with refcnn.no_grad():
            r(np.random.default_rng(0).standard_normal((4, 2, 4, 8)).astype(np.float32))
    if keep_metadata:
        with pytest.raises(RuntimeError, match=r'Missing key.*"1\.num_batches_tracked"'):
            t.load_state_dict(sd)
        with pytest.raises(ValueError, match=r"missing keys \['1.num_batches_tracked'\]"):
            r.load_state_dict(sd)
        return
    t.load_state_dict(sd)
    r.load_state_dict(sd)
    assert int(r[1].num_batches_tracked) == int(t[1].num_batches_tracked) == 2
    np.testing.assert_array_equal(r[1].running_mean, t[1].running_mean.numpy())


def test_the_torch_state_dict_case_really_has_version_2_metadata():
    assert _torch_state().state_dict()._metadata["1"]["version"] == 2


# ---- errors in torch's words ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda nn: nn.Conv2d(3, 16, 3), (2, 4, 8, 8)),
        (lambda nn: nn.Conv2d(4, 6, (3, 5), groups=2), (2, 6, 8, 9)),
        (lambda nn: nn.ConvTranspose2d(3, 16, 3), (2, 4, 8, 8)),
    ],
    ids=["conv", "conv-groups", "conv-transpose"],
)
def test_wrong_channel_count_says_what_torch_says(make, shape):
    with pytest.raises(RuntimeError) as t_info:
        make(tnn)(torch.zeros(shape))
    torch_message = str(t_info.value)
    assert torch_message.startswith("Given ")
    with pytest.raises(ValueError) as r_info:
        make(rnn)(np.zeros(shape, np.float32))
    assert str(r_info.value).endswith("g" + torch_message[1:]), (str(r_info.value), torch_message)


# ---- grad mode, as torch's -------------------------------------------------------------------------
def _mode_script(lib):
    seen = [lib.is_grad_enabled()]
    with lib.no_grad():
        seen.append(lib.is_grad_enabled())
        with lib.enable_grad():
            seen.append(lib.is_grad_enabled())
        with lib.set_grad_enabled(True):
            seen.append(lib.is_grad_enabled())
        seen.append(lib.is_grad_enabled())

    @lib.no_grad()
    def decorated():
        return lib.is_grad_enabled()

    @lib.enable_grad()
    def enabled():
        return lib.is_grad_enabled()

    seen.append(decorated())
    with lib.no_grad():
        seen.append(enabled())
    lib.set_grad_enabled(False)
    seen.append(lib.is_grad_enabled())
    lib.set_grad_enabled(True)
    seen.append(lib.is_grad_enabled())
    return seen


def test_grad_mode_behaves_as_torchs():
    assert _mode_script(refcnn) == _mode_script(torch)


# ---- Parameters as arrays --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op",
    [
        lambda p, x: p * 2,
        lambda p, x: 2 - p,
        lambda p, x: -p,
        lambda p, x: p / 3,
        lambda p, x: p @ x,
        lambda p, x: x.T @ p.T,
        lambda p, x: p[1],
        lambda p, x: abs(p),
        lambda p, x: p > 0,
    ],
    ids=["mul", "rsub", "neg", "div", "matmul", "rmatmul", "index", "abs", "greater"],
)
def test_parameter_arithmetic_as_torch(op):
    values = np.array([[1.5, -2.0, 0.25], [3.0, 0.0, -1.0]], np.float32)
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 4.0]], np.float32)
    got = op(rnn.Parameter(values.copy()), x)
    want = op(tnn.Parameter(torch.from_numpy(values.copy())), torch.from_numpy(x)).detach().numpy()
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_parameter_shape_queries_as_torch():
    values = np.zeros((2, 3, 4), np.float32)
    r, t = rnn.Parameter(values), tnn.Parameter(torch.from_numpy(values))
    assert (r.size(), r.size(1), r.numel(), r.dim(), len(r)) == (tuple(t.size()), t.size(1), t.numel(), t.dim(), len(t))
    np.testing.assert_array_equal(np.asarray(r), t.detach().numpy())


# ---- frozen parameters ----------------------------------------------------------------------------
def test_frozen_parameters_are_skipped_as_torch_skips_them():
    """requires_grad_(False) on the first layer: after steps of SGD with momentum, in both
    libraries it has no grad, no optimizer state and its initial values; the rest moved."""
    torch.manual_seed(0)
    t = tnn.Sequential(tnn.Linear(3, 4), tnn.ReLU(), tnn.Linear(4, 2)).double()
    r = rnn.Sequential(rnn.Linear(3, 4, dtype=np.float64), rnn.ReLU(), rnn.Linear(4, 2, dtype=np.float64))
    r.load_state_dict(t.state_dict())
    t[0].requires_grad_(False)
    assert r[0].requires_grad_(False) is r[0]
    initial = {k: v.clone().numpy() for k, v in t.state_dict().items()}
    t_opt = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
    r_opt = roptim.SGD(r.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(0).standard_normal((5, 3))
    for _ in range(3):
        t_opt.zero_grad()
        t(torch.from_numpy(x)).sum().backward()
        t_opt.step()
        r_opt.zero_grad()
        r.backward(np.ones_like(r(x)))
        r_opt.step()
    for lib, model, opt in (("torch", t, t_opt), ("refcnn", r, r_opt)):
        first, last = list(model[0].parameters()), list(model[2].parameters())
        assert all(p.grad is None for p in first), lib
        assert all(p not in opt.state for p in first) and all(p in opt.state for p in last), lib
    for k, v in r.state_dict().items():
        moved = not np.array_equal(np.asarray(v), initial[k])
        assert moved == k.startswith("2."), k
