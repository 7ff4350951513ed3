"""refcnn.train.Training: a run stopped anywhere and resumed from its saved state (through
refcnn.io, no pickle) ends with the same weights, bit for bit, as a run never stopped; a
state that does not fit is rejected with nothing half-loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refcnn import io, manual_seed, models, optim
from refcnn.data import load_mnist, sample_dir
from refcnn.train import Training

EPOCHS, BATCH = 3, 16


@pytest.fixture(scope="module")
def data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    x, y = load_mnist(sample_dir(), train=True)
    xt, yt = load_mnist(sample_dir(), train=False)
    return (x[:88], y[:88]), (xt[:40], yt[:40])  # 6 steps per epoch, the last one of 8 images


def new_run(model_name: str, optimizer: str, data: Any, seed: int = 0) -> Training:
    """A fresh run; ``seed`` sets its initial weights, so a resumed run starts from other ones."""
    generator = manual_seed(seed)
    model = models.build(model_name)
    opt: optim.Optimizer
    if optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = optim.Adam(model.parameters(), lr=0.002)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    return Training(model, opt, *data, epochs=EPOCHS, batch_size=BATCH, generator=generator, scheduler=scheduler)


def weights(run: Training) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in run.model.state_dict().items()}


CASES = [
    # (id, model, optimizer, stop after this many epochs, or after this many steps in all)
    ("sgd-after-epoch-1", "simplecnn", "sgd", ("epochs", 1)),
    ("sgd-mid-epoch-2", "lenet5", "sgd", ("steps", 9)),
    ("adam-after-epoch-2", "lenet5", "adam", ("epochs", 2)),
    ("adam-last-step-of-epoch-2", "simplecnn", "adam", ("steps", 12)),  # before its schedule step and evaluation
    ("adam-first-step", "simplecnn", "adam", ("steps", 1)),
    ("vgg-dropout-batchnorm-mid-epoch-3", "vgg", "sgd", ("steps", 14)),
]


@pytest.mark.parametrize("model_name, optimizer, stop_at", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_stopped_and_resumed_run_ends_with_the_same_weights(model_name, optimizer, stop_at, data, tmp_path):
    whole = new_run(model_name, optimizer, data)
    assert whole.run(progress=False)
    expected = weights(whole)

    stopped = new_run(model_name, optimizer, data)
    unit, count = stop_at

    def stop() -> bool:  # called after every step and after every epoch's evaluation
        if unit == "epochs":
            return stopped.step == 0 and stopped.epoch == count
        return stopped.epoch * stopped.steps_per_epoch + stopped.step >= count

    assert not stopped.run(progress=False, stop=stop)
    path = io.save(stopped.state_dict(), tmp_path / "state.safetensors")

    resumed = new_run(model_name, optimizer, data, seed=99)  # other initial weights, other generator state
    resumed.load_state_dict(io.load(path))
    assert resumed.epoch * resumed.steps_per_epoch + resumed.step == count * (6 if unit == "epochs" else 1)
    assert resumed.step == 0 if unit == "epochs" else resumed.step > 0  # a stop after epoch 2's last step is in it
    assert resumed.run(progress=False)
    got = weights(resumed)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert [s.test_accuracy for s in resumed.history] == [s.test_accuracy for s in whole.history]
    assert [s.train_loss for s in resumed.history] == [s.train_loss for s in whole.history]


def test_without_the_generator_state_the_resumed_run_differs(data, tmp_path):
    """The check can fail: a resume that restores everything but the shuffling generator ends elsewhere."""
    whole = new_run("simplecnn", "sgd", data)
    whole.run(progress=False)
    stopped = new_run("simplecnn", "sgd", data)
    stopped.run(progress=False, stop=lambda: stopped.epoch == 1)
    state = stopped.state_dict()
    resumed = new_run("simplecnn", "sgd", data, seed=99)
    state["generators"]["shuffle"] = resumed.generator.bit_generator.state
    resumed.load_state_dict(state)
    resumed.run(progress=False)
    assert not np.array_equal(weights(resumed)["4.weight"], weights(whole)["4.weight"])


def _broken(state: dict[str, Any], part: str) -> dict[str, Any]:
    if part == "optimizer":
        state["optimizer"]["param_groups"] = state["optimizer"]["param_groups"] * 2
    elif part == "scheduler":
        state["scheduler"]["no_such_attribute"] = 1
    elif part == "order":
        state["order"] = state["order"][:-1]
    elif part == "model":
        state["model"].pop(next(iter(state["model"])))
    return state


@pytest.mark.parametrize("part", ["model", "optimizer", "scheduler", "order"])
def test_a_state_that_does_not_fit_changes_nothing(part, data):
    source = new_run("simplecnn", "adam", data)
    source.run(progress=False, stop=lambda: source.epoch * source.steps_per_epoch + source.step >= 8)
    target = new_run("simplecnn", "adam", data, seed=5)
    target.run(progress=False, stop=lambda: target.step >= 2)
    before = (weights(target), target.opt.state_dict(), target.scheduler.state_dict(), target.step)
    with pytest.raises((ValueError, TypeError, KeyError)):
        target.load_state_dict(_broken(source.state_dict(), part))
    for key, value in before[0].items():
        np.testing.assert_array_equal(target.model.state_dict()[key], value, err_msg=key)
    assert target.opt.state_dict()["param_groups"] == before[1]["param_groups"]
    for index, buffers in before[1]["state"].items():
        for name, value in buffers.items():
            np.testing.assert_array_equal(target.opt.state_dict()["state"][index][name], value)
    assert target.scheduler.state_dict() == before[2] and target.step == before[3]


def test_a_truncated_state_file_is_rejected_naming_it(data, tmp_path):
    run = new_run("simplecnn", "sgd", data)
    run.run(progress=False, stop=lambda: run.step >= 3)
    blob = io.save(run.state_dict(), tmp_path / "s.safetensors").read_bytes()
    cut = Path(tmp_path / "cut.safetensors")
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(io.CheckpointError, match=f"checkpoint {cut} is truncated"):
        io.load(cut)
