"""Sequential, ModuleList, ModuleDict: children's names (and so state_dict keys), the list
and dict operations, and errors, as torch.nn's (the comparison against torch itself is in
conformance/test_torch_habits.py)."""

from collections import OrderedDict

import numpy as np
import pytest

import refcnn
from refcnn import models, nn


def _layers(n=4):
    refcnn.manual_seed(0)
    return [nn.Linear(i + 2, i + 3) for i in range(n)]


def _names(module):
    return [name for name, _ in module.named_children()]


# ---- Sequential -----------------------------------------------------------------------------
def test_slicing_keeps_the_children_names():
    """torch's seq[1:3] keeps keys '1' and '2' (refcnn renumbered them to '0', '1')."""
    seq = nn.Sequential(*_layers())
    part = seq[1:3]
    assert type(part) is nn.Sequential and _names(part) == ["1", "2"]
    assert list(part.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]
    assert part[0] is seq[1] and part[-1] is seq[2]  # integer indexing is positional
    assert _names(seq[::2]) == ["0", "2"] and _names(seq[-1:]) == ["3"]


def test_slicing_a_named_sequential_keeps_the_names():
    seq = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU(), flat=nn.Flatten()))
    assert _names(seq[1:]) == ["act", "flat"]


def test_slicing_a_model_gives_a_plain_sequential():
    """LeNet5's constructor takes no modules: its slice is a Sequential of the same layers."""
    refcnn.manual_seed(0)
    model = models.LeNet5()
    features = model[:6]
    assert type(features) is nn.Sequential and _names(features) == [str(i) for i in range(6)]
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(model[6:](features(x)), model(x))


def test_sliced_sequential_runs_forward_and_backward():
    seq = nn.Sequential(*_layers(3))
    part = seq[1:]
    x = np.ones((2, 3), np.float32)
    y = part(x)
    assert part.backward(np.ones_like(y)).shape == x.shape
    assert seq[1].weight.grad is not None  # the same modules


def test_delete_insert_append_extend_pop_renumber_as_torch():
    a, b, c, d = _layers()
    seq = nn.Sequential(a, b, c)
    del seq[0]
    assert _names(seq) == ["0", "1"] and seq[0] is b
    seq.insert(0, a)
    assert [m for m in seq] == [a, b, c]
    seq.insert(-1, d)  # before the last, as list.insert and torch
    assert [m for m in seq] == [a, b, d, c] and _names(seq) == ["0", "1", "2", "3"]
    assert seq.pop(2) is d and [m for m in seq] == [a, b, c]
    seq.append(d)
    assert _names(seq) == ["0", "1", "2", "3"]
    del seq[1:3]
    assert [m for m in seq] == [a, d] and _names(seq) == ["0", "1"]
    seq.extend([b, c])
    assert [m for m in seq] == [a, d, b, c]
    seq[1] = b
    assert seq[1] is b


def test_sequential_plus():
    a, b, c, _ = _layers()
    both = nn.Sequential(a, b) + nn.Sequential(c)
    assert [m for m in both] == [a, b, c] and _names(both) == ["0", "1", "2"]
    seq = nn.Sequential(a)
    seq += nn.Sequential(b)
    assert [m for m in seq] == [a, b]
    with pytest.raises(ValueError, match="add operator supports only objects of Sequential class"):
        nn.Sequential(a) + nn.ModuleList([b])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda s: s[3], IndexError, "index 3 is out of range for Sequential of length 3"),
        (lambda s: s[-4], IndexError, "index -4 is out of range"),
        (lambda s: s.__setitem__(0, 3), TypeError, "cannot assign int to module '0'"),
        (lambda s: s.insert(5, nn.ReLU()), IndexError, "index 5 is out of range for inserting"),
        (lambda s: s.append("relu"), TypeError, "Sequential takes Modules, got str"),
        (lambda s: s["0"], TypeError, "'str' object cannot be interpreted as an integer"),
    ],
    ids=["index", "negative-index", "set-non-module", "insert", "append-non-module", "str-key"],
)
def test_sequential_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(nn.Sequential(*_layers(3)))


# ---- ModuleList --------------------------------------------------------------------------------
class Tower(nn.Module):
    """A parent that uses a ModuleList in its forward and backward, as a user would."""

    def __init__(self):
        super().__init__()
        refcnn.manual_seed(0)
        self.blocks = nn.ModuleList([nn.Linear(3, 3, dtype=np.float64) for _ in range(3)])
        self.act = nn.Tanh()

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.act(x)

    def backward(self, grad_output):
        grad = self.act.backward(grad_output)
        for block in reversed(self.blocks):
            grad = block.backward(grad)
        return grad


def test_module_list_registers_its_modules():
    tower = Tower()
    assert list(tower.state_dict()) == [f"blocks.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    assert len(list(tower.parameters())) == 6
    tower.eval()
    assert not any(b.training for b in tower.blocks)


def test_module_list_in_a_custom_forward_and_backward():
    from refcnn.testing import assert_gradient

    tower = Tower()
    rng = np.random.default_rng(0)
    x, r = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    tower(x)
    gx = tower.backward(r)
    assert_gradient(lambda: float(np.sum(tower(x) * r)), x, gx, what="dL/dx through a ModuleList")


def test_module_list_operations_as_torch():
    a, b, c, d = _layers()
    ml = nn.ModuleList([a, b])
    ml.append(c)
    ml.extend([d])
    assert len(ml) == 4 and ml[-1] is d and _names(ml) == ["0", "1", "2", "3"]
    assert _names(ml[1:3]) == ["0", "1"] and ml[1:3][0] is b  # a ModuleList slice renumbers, as torch
    del ml[0]
    assert _names(ml) == ["0", "1", "2"] and ml[0] is b
    ml.insert(1, a)
    assert list(ml) == [b, a, c, d]
    assert ml.pop(1) is a and list(ml) == [b, c, d]
    ml[0] = a
    assert list(ml + nn.ModuleList([b])) == [a, c, d, b]
    ml += [b]
    assert list(ml) == [a, c, d, b]
    with pytest.raises(IndexError, match="index 9 is out of range for ModuleList of length 4"):
        ml[9]
    with pytest.raises(TypeError, match=r"ModuleList\.extend should be called with an iterable"):
        ml.extend(3)
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        ml.append(3)


def test_module_list_and_dict_have_no_forward_or_backward():
    with pytest.raises(NotImplementedError, match='Module \\[ModuleList\\] is missing the required "forward" function'):
        nn.ModuleList()(np.ones(2))
    with pytest.raises(NotImplementedError, match="ModuleDict does not define backward"):
        nn.ModuleDict().backward(np.ones(2))


# ---- ModuleDict --------------------------------------------------------------------------------
def test_module_dict_operations_as_torch():
    a, b, c, _ = _layers()
    md = nn.ModuleDict({"enc": a, "dec": b})
    assert list(md) == ["enc", "dec"] and "enc" in md and len(md) == 2
    assert list(md.keys()) == ["enc", "dec"] and list(md.values()) == [a, b]
    md["head"] = c
    assert list(md.state_dict()) == [f"{k}.{p}" for k in ("enc", "dec", "head") for p in ("weight", "bias")]
    md.update([("enc", c), ("extra", a)])
    assert md["enc"] is c and list(md) == ["enc", "dec", "head", "extra"]
    md.update(nn.ModuleDict({"dec": a}))
    assert md["dec"] is a
    assert md.pop("extra") is a and "extra" not in md
    del md["head"]
    assert list(md.items()) == [("enc", c), ("dec", a)]
    md.clear()
    assert len(md) == 0


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda md: md.__setitem__("a.b", nn.ReLU()), KeyError, r'module name can.*t contain "\.", got: a\.b'),
        (lambda md: md.__setitem__("", nn.ReLU()), KeyError, "module name can.*t be empty string"),
        (lambda md: md.__setitem__("x", 3), TypeError, "int is not a Module subclass"),
        (lambda md: md.__setitem__("train", nn.ReLU()), KeyError, "attribute 'train' already exists"),
        (lambda md: md.update(3), TypeError, "ModuleDict.update should be called with an iterable"),
        (lambda md: md.update([("a", nn.ReLU(), 1)]), ValueError, "element #0 has length 3; 2 is required"),
        (lambda md: md["missing"], KeyError, "missing"),
    ],
    ids=["dot", "empty", "not-a-module", "clashes-with-method", "not-iterable", "triple", "missing-key"],
)
def test_module_dict_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(nn.ModuleDict())
