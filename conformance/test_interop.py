"""Checkpoints move between refcnn and PyTorch through safetensors, for every model in
refcnn.models.MODELS, and the moved weights give the same predictions (needs torch).

    pytest conformance/test_interop.py
"""

import copy

import numpy as np
import pytest
import safetensors.torch
import torch

from refcnn import io, manual_seed, models, nn
from refcnn.data import load_mnist, sample_dir
from refcnn.interop import ConversionError, to_torch

DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


@pytest.fixture(scope="module")
def images():
    x, _ = load_mnist(sample_dir(), train=False)
    return x[:256]


def _trained_refcnn(name, dtype, x, seed):
    """A refcnn model whose weights and BatchNorm statistics are no longer their initial
    values: three SGD steps on the first 48 images of ``x`` in training mode, then eval mode."""
    x = x[:48]
    manual_seed(seed)
    model = models.build(name, dtype=dtype)
    from refcnn import optim

    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    labels = np.arange(len(x)) % 10
    for _ in range(3):
        loss = criterion(model(x), labels)
        assert np.isfinite(loss)
        opt.zero_grad()
        model.backward(criterion.backward())
        opt.step()
    return model.eval()


def _trained_torch(name, dtype, x, seed):
    """The torch.nn model of the same architecture, initialised by torch's own generator and
    trained three steps in torch on the first 48 images of ``x``, then eval mode."""
    x = x[:48]
    torch.manual_seed(seed)
    tmodel = to_torch(models.build(name, dtype=dtype))
    for m in tmodel.modules():
        if hasattr(m, "reset_parameters") and m is not tmodel:
            m.reset_parameters()  # torch's init, torch's generator
    opt = torch.optim.SGD(tmodel.parameters(), lr=0.05, momentum=0.9)
    tx, labels = torch.from_numpy(x), torch.arange(len(x)) % 10
    tmodel.train()
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(tmodel(tx), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tmodel.eval()


def _torch_logits(tmodel, x):
    with torch.no_grad():
        return tmodel(torch.from_numpy(x)).numpy()


def assert_same_predictions(model, tmodel, x):
    """Both models, holding the same weights, predict the same class for every image of ``x``.

    Compared in float64 (float32 weights upcast exactly): in float32 an image whose two best
    logits lie within the last bits of each other may flip with the BLAS kernel or thread
    count a machine uses, so an exact float32 comparison of two libraries tests the machine.
    The images are checked to be no such near tie in float64 either, so the comparison below
    cannot depend on the rounding of a particular BLAS."""
    model = copy.deepcopy(model).to(np.float64)
    tmodel = copy.deepcopy(tmodel).to(torch.float64)
    x = x.astype(np.float64)
    ours, theirs = model(x), _torch_logits(tmodel, x)
    top2 = np.sort(theirs, axis=1)[:, -2:]
    margin = (top2[:, 1] - top2[:, 0]) / np.abs(theirs).max(axis=1)
    assert margin.min() > 1e-9, f"image {margin.argmin()} is a near tie (relative margin {margin.min():.2g})"
    np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_refcnn_checkpoint_loads_into_torch(name, dtype, images, tmp_path):
    x = images.astype(dtype)
    model = _trained_refcnn(name, dtype, x, seed=1)
    path = io.save(model.state_dict(), tmp_path / f"{name}.safetensors")

    tmodel = to_torch(models.build(name, dtype=dtype))  # the same architecture, other weights
    loaded = safetensors.torch.load_file(str(path))
    tmodel.load_state_dict(loaded)  # strict: every key present, none extra
    tmodel.eval()
    for key, value in model.state_dict().items():
        other = tmodel.state_dict()[key]
        assert other.dtype == (torch.int64 if value.dtype == np.int64 else TORCH_DTYPE[dtype]), key
        np.testing.assert_array_equal(other.numpy(), value, err_msg=key)  # bit for bit
    assert_same_predictions(model, tmodel, x)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_torch_checkpoint_loads_into_refcnn(name, dtype, images, tmp_path):
    x = images.astype(dtype)
    tmodel = _trained_torch(name, dtype, x, seed=2)
    path = tmp_path / f"{name}.safetensors"
    safetensors.torch.save_file(tmodel.state_dict(), str(path))

    manual_seed(3)
    model = models.build(name, dtype=dtype)
    model.load_state_dict(io.load(path))  # strict
    model.eval()
    for key, value in tmodel.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value.numpy(), err_msg=key)
        assert model.state_dict()[key].dtype == value.numpy().dtype, key
    assert_same_predictions(model, tmodel, x)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_to_torch_copies_weights_mode_and_dtype(name, images):
    manual_seed(4)
    model = models.build(name, dtype=np.float64)
    model.eval()
    tmodel = to_torch(model)
    assert not any(m.training for m in tmodel.modules())
    assert list(tmodel.state_dict()) == list(model.state_dict())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(tmodel.state_dict()[key].numpy(), value, err_msg=key)
    assert all(p.dtype == torch.float64 for p in tmodel.parameters())
    assert_same_predictions(model, tmodel, images)
    first = next(iter(model.state_dict()))
    before = model.state_dict()[first].copy()
    with torch.no_grad():
        tmodel.get_parameter(first).add_(1.0)
    np.testing.assert_array_equal(model.state_dict()[first], before)  # torch holds copies


def test_to_torch_keeps_train_mode_per_module():
    model = models.VGGNet()
    model.features.eval()
    tmodel = to_torch(model)
    assert tmodel.training and tmodel.classifier.training and not tmodel.features.training
    assert not tmodel.features[1].training and tmodel.classifier[3].training


class _Custom(nn.Module):
    def forward(self, x):
        return x

    def backward(self, g):
        return g


class _OwnForward(nn.Sequential):
    def forward(self, x):
        return super().forward(x) * 2


def test_to_torch_rejects_what_it_cannot_convert():
    with pytest.raises(ConversionError, match=r"cannot convert _Custom at 1: no torch.nn counterpart.*convertible: "):
        to_torch(nn.Sequential(nn.ReLU(), _Custom()))
    with pytest.raises(
        ConversionError, match="_OwnForward at <root> subclasses Sequential but defines its own forward"
    ):
        to_torch(_OwnForward(nn.ReLU()))
    with pytest.raises(TypeError, match=r"to_torch expects a refcnn nn\.Module, got Sequential"):
        to_torch(torch.nn.Sequential())
