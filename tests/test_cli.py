"""The train command end to end on a tiny run, and the model zoo's shapes and fixes."""

import math

import numpy as np
import pytest
from safetensors.numpy import load_file

from refcnn import cli, manual_seed, models, nn


def test_train_command_end_to_end(tmp_path, capsys):
    checkpoint = tmp_path / "tiny.safetensors"
    code = cli.main(
        ["train", "--model", "simplecnn", "--epochs", "2", "--train-limit", "200", "--batch-size", "20",
         "--lr", "0.05", "--checkpoint", str(checkpoint), "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "epoch   2/2" in out and "test acc" in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.5, out  # 2 epochs on 200 images is far above chance (0.1)
    saved = load_file(str(checkpoint))
    model = models.SimpleCNN()
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(saved)


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "must be > 0, got 0"),
    (["train", "--model", "resnet1000"], "invalid choice: 'resnet1000'"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
], ids=["zero-epochs", "unknown-model", "unknown-flag"])  # fmt: skip
def test_train_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(models.MODELS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_models_map_mnist_to_ten_logits(name, dtype):
    model = models.build(name, dtype=dtype)
    x = np.zeros((3, 1, 28, 28), dtype)
    y = model(x)
    assert y.shape == (3, 10) and y.dtype == dtype
    assert model.backward(np.ones_like(y)).shape == x.shape


def test_simplecnn_first_loss_is_near_ln10():
    """The notebook's wrong-fan Linear init gave a first loss of ~18; PyTorch's gives ~ln(10)."""
    manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    loss = nn.CrossEntropyLoss()(models.SimpleCNN()(x), rng.integers(0, 10, 64))
    assert abs(loss - math.log(10)) < 0.5


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'alexnet'; choose one of"):
        models.build("alexnet")
