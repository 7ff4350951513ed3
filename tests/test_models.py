"""The model zoo: shapes, state_dict keys as torch.nn would name them, the residual block's
backward (both paths, checked by finite differences), and train/eval behaviour."""

import numpy as np
import pytest

from refcnn import manual_seed, models, nn, no_grad
from refcnn.testing import assert_gradient

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def _bn(prefix, C):
    """BatchNorm's five entries, in torch's order: parameters, then buffers."""
    return [
        (f"{prefix}.weight", (C,)), (f"{prefix}.bias", (C,)), (f"{prefix}.running_mean", (C,)),
        (f"{prefix}.running_var", (C,)), (f"{prefix}.num_batches_tracked", ()),
    ]  # fmt: skip


def _block(prefix, c_in, c_out, projection):
    keys = [(f"{prefix}.conv1.weight", (c_out, c_in, 3, 3)), *_bn(f"{prefix}.bn1", c_out)]
    keys += [(f"{prefix}.conv2.weight", (c_out, c_out, 3, 3)), *_bn(f"{prefix}.bn2", c_out)]
    if projection:
        keys += [(f"{prefix}.downsample.0.weight", (c_out, c_in, 1, 1)), *_bn(f"{prefix}.downsample.1", c_out)]
    return keys


# What torch.nn's state_dict() of the same architecture holds, written out by hand.
EXPECTED_KEYS = {
    "simplecnn": [("0.weight", (8, 1, 3, 3)), ("0.bias", (8,)), ("4.weight", (10, 1352)), ("4.bias", (10,))],
    "lenet5": [
        ("0.weight", (6, 1, 5, 5)), ("0.bias", (6,)), ("3.weight", (16, 6, 5, 5)), ("3.bias", (16,)),
        ("7.weight", (120, 400)), ("7.bias", (120,)), ("9.weight", (84, 120)), ("9.bias", (84,)),
        ("11.weight", (10, 84)), ("11.bias", (10,)),
    ],
    "vgg": [
        ("features.0.weight", (32, 1, 3, 3)), *_bn("features.1", 32),
        ("features.3.weight", (32, 32, 3, 3)), *_bn("features.4", 32),
        ("features.7.weight", (64, 32, 3, 3)), *_bn("features.8", 64),
        ("features.10.weight", (64, 64, 3, 3)), *_bn("features.11", 64),
        ("classifier.2.weight", (128, 3136)), *_bn("classifier.3", 128),
        ("classifier.6.weight", (10, 128)), ("classifier.6.bias", (10,)),
    ],
    "resnet": [
        ("conv1.weight", (16, 1, 3, 3)), *_bn("bn1", 16),
        *_block("layer1.0", 16, 16, projection=False),
        *_block("layer2.0", 16, 32, projection=True),
        *_block("layer3.0", 32, 64, projection=True),
        ("fc.weight", (10, 64)), ("fc.bias", (10,)),
    ],
}  # fmt: skip


def test_every_model_has_its_expected_keys():
    assert sorted(models.MODELS) == sorted(EXPECTED_KEYS)


@pytest.mark.parametrize("name", sorted(EXPECTED_KEYS))
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_state_dict_keys_shapes_dtypes_as_torch(name, dtype):
    state = models.build(name, dtype=dtype).state_dict()
    assert [(k, v.shape) for k, v in state.items()] == EXPECTED_KEYS[name]
    for key, value in state.items():
        assert value.dtype == (np.int64 if key.endswith("num_batches_tracked") else dtype), key


def test_resnet_blocks_per_stage():
    keys = list(models.ResNet(blocks=(2, 1, 1)).state_dict())
    assert "layer1.1.conv2.weight" in keys and "layer1.1.downsample.0.weight" not in keys
    assert "layer2.1.conv1.weight" not in keys


@pytest.mark.parametrize("name", sorted(EXPECTED_KEYS))
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_forward_backward_shapes(name, dtype):
    manual_seed(0)
    model = models.build(name, dtype=dtype)
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(dtype)
    y = model(x)
    assert y.shape == (3, 10) and y.dtype == dtype
    gx = model.backward(np.ones_like(y))
    assert gx.shape == x.shape and gx.dtype == dtype
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


@pytest.mark.parametrize(
    "c_in, c_out, stride, hw, projection",
    [(3, 3, 1, (5, 4), False), (2, 3, 2, (5, 6), True), (3, 3, 2, (6, 5), True), (2, 4, 1, (4, 5), True)],
    ids=["identity-3ch-5x4", "proj-2to3-s2-5x6", "proj-3ch-s2-6x5", "proj-2to4-s1-4x5"],
)
def test_basic_block_gradients_by_finite_differences(c_in, c_out, stride, hw, projection):
    """dL/dx and every parameter gradient of a tiny block (BatchNorm in training mode), in
    float64: only the sum of the branch's and the shortcut's gradients passes."""
    manual_seed(3)
    block = models.BasicBlock(c_in, c_out, stride=stride, dtype=F64)
    assert (block.downsample is not None) == projection
    rng = np.random.default_rng(4)
    for p in block.parameters():  # move BatchNorm's weight/bias off 1/0 so they matter
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) if p.data.ndim == 1 else p.data
    x = rng.standard_normal((2, c_in, *hw))
    with no_grad():  # a forward for the shape only: no backward will come
        r = rng.standard_normal(block(x).shape)

    def loss():
        return float(np.sum(block(x) * r))

    loss()
    block.zero_grad()
    grad_x = block.backward(r)
    grads = {name: p.grad.copy() for name, p in block.named_parameters()}
    assert_gradient(loss, x, grad_x, what="BasicBlock dL/dx")
    for name, p in block.named_parameters():
        assert_gradient(loss, p.data, grads[name], what=f"BasicBlock dL/d{name}")


def test_basic_block_identity_gradient_is_the_skip_path_when_the_branch_is_constant():
    """conv2 = 0 makes the branch the constant bn2.bias, so dL/dx = g * [y > 0] exactly (the
    skip path alone); a block that dropped the skip gradient would return 0."""
    manual_seed(5)
    block = models.BasicBlock(2, 2, dtype=F64)
    block.conv2.weight.data[...] = 0
    block.bn2.bias.data[...] = np.array([0.25, -0.5])
    x = np.random.default_rng(6).standard_normal((2, 2, 4, 3))
    y = block(x)
    np.testing.assert_array_equal(y, np.maximum(x + np.array([0.25, -0.5])[:, None, None], 0))
    g = np.random.default_rng(7).standard_normal(y.shape)
    np.testing.assert_array_equal(block.backward(g), g * (y > 0))


def test_basic_block_backward_needs_a_forward():
    block = models.BasicBlock(2, 2)
    with pytest.raises(RuntimeError, match=r"ReLU\.backward called without a forward"):
        block.backward(np.ones((1, 2, 3, 3), np.float32))


def test_basic_block_repr_and_shape():
    block = models.BasicBlock(4, 8, stride=2)
    assert repr(block).startswith("BasicBlock(4, 8, stride=2\n  (conv1): Conv2d(4, 8, kernel_size=(3, 3)")
    assert block(np.zeros((2, 4, 7, 6), np.float32)).shape == (2, 8, 4, 3)


@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_train_mode_updates_batchnorm_statistics_and_eval_mode_does_not(name):
    manual_seed(0)
    model = models.build(name)
    x = np.random.default_rng(2).standard_normal((4, 1, 28, 28)).astype(np.float32)
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    model(x)
    assert all(int(m.num_batches_tracked) == 1 for m in bns)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    model.eval()
    assert not any(m.training for m in model.modules())
    y1, y2 = model(x), model(x)
    np.testing.assert_array_equal(y1, y2)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    model.train()
    assert all(m.training for m in model.modules())


def test_vgg_dropout_is_random_in_training_and_off_in_eval():
    manual_seed(0)
    model = models.VGGNet()
    x = np.random.default_rng(3).standard_normal((4, 1, 28, 28)).astype(np.float32)
    assert not np.array_equal(model(x), model(x))  # fresh dropout masks
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))


def test_models_convert_dtype():
    model = models.ResNet().to(np.float64)
    assert all(v.dtype == F64 for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert model(np.zeros((2, 1, 28, 28))).dtype == F64


def test_build_rejects_unknown_names():
    with pytest.raises(
        ValueError, match=r"unknown model 'vgg16'; choose one of \['lenet5', 'resnet', 'simplecnn', 'vgg'\]"
    ):
        models.build("vgg16")
