"""The train command end to end on a tiny run, and the model zoo's shapes and fixes."""

import argparse
import gzip
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from refcnn import __version__ as refcnn_version
from refcnn import cli, io, manual_seed, models, nn
from refcnn.data import sample_dir


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


# ---- the command in a subprocess: exit status, one line on stderr, no traceback -----------------------
ROOT = Path(__file__).resolve().parents[1]  # the cwd of the subprocess: it imports this refcnn
TINY = ["--model", "simplecnn", "--train-limit", "60", "--batch-size", "20", "--no-progress"]


def refcnn(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "refcnn", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip


def assert_user_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit status 2, one line on stderr that holds ``message``, no traceback, no training."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0], lines[0]
    assert "epoch" not in result.stdout, result.stdout  # nothing was trained


def corrupt_data(tmp_path: Path) -> Path:
    """The bundled sample with the training images cut short."""
    root = tmp_path / "corrupt"
    shutil.copytree(sample_dir(), root)
    raw = gzip.decompress((root / "train-images-idx3-ubyte.gz").read_bytes())
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    return root


# (id, arguments with {tmp} for the test's folder, the message)
USER_ERRORS = [
    ("zero-epochs", ["--epochs", "0"], "argument --epochs: must be > 0, got 0"),
    ("negative-momentum", ["--momentum", "-1"], "argument --momentum: must be >= 0, got -1"),
    ("negative-seed", ["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    ("text-lr", ["--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
    ("momentum-with-adam", ["--optimizer", "adam", "--momentum", "0.5"],
     "--momentum applies to --optimizer sgd only; adam has no momentum option"),
    ("unknown-model", ["--model", "resnet1000"], "invalid choice: 'resnet1000'"),
    ("unknown-flag", ["--bogus"], "unrecognized arguments: --bogus"),
    ("missing-data", ["--data", "{tmp}/nowhere"], "{tmp}/nowhere is not a directory; add --download"),
    ("empty-data", ["--data", "{tmp}/empty"], "--data: no MNIST files in {tmp}/empty"),
    ("corrupt-idx", ["--data", "{tmp}/corrupt"], "corrupt MNIST file: {tmp}/corrupt/train-images-idx3-ubyte.gz"),
    ("download-without-data", ["--download"], "--download needs --data DIR"),
    ("checkpoint-under-a-file", ["--checkpoint", "{tmp}/file/m.safetensors"],
     "--checkpoint: {tmp}/file exists and is not a directory"),
    ("checkpoint-is-a-directory", ["--checkpoint", "{tmp}/empty"], "--checkpoint: {tmp}/empty is a directory"),
    ("plot-is-a-file", ["--plot", "{tmp}/file"], "--plot: {tmp}/file exists and is not a directory"),
    ("resume-missing", ["--resume", "{tmp}/nope.resume.safetensors"],
     "--resume: checkpoint {tmp}/nope.resume.safetensors does not exist"),
]  # fmt: skip


@pytest.mark.parametrize("argv, message", [e[1:] for e in USER_ERRORS], ids=[e[0] for e in USER_ERRORS])
def test_train_user_errors_are_one_line(argv, message, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a folder")
    corrupt_data(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--checkpoint" not in argv:
        argv += ["--checkpoint", str(tmp_path / "out" / "m.safetensors")]
    assert_user_error(refcnn("train", *TINY, *argv), message.replace("{tmp}", str(tmp_path)))
    assert not (tmp_path / "out" / "m.safetensors").exists()


def test_missing_data_names_download(tmp_path):
    result = refcnn("train", *TINY, "--data", str(tmp_path), "--checkpoint", str(tmp_path / "m.safetensors"))
    assert_user_error(result, "add --download to download them there, or leave out --data for the bundled sample")


@pytest.fixture
def unwritable(tmp_path):
    """A folder this user cannot write into: a read-only one, or sysfs for root on Linux."""
    if os.name == "posix" and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        yield locked
        locked.chmod(0o700)
    elif Path("/sys/kernel").is_dir():
        yield Path("/sys")  # read-only even for root
    else:
        pytest.skip("no folder this user cannot write into")


def test_unwritable_checkpoint_folder_is_found_before_training(unwritable):
    result = refcnn("train", *TINY, "--checkpoint", str(unwritable / "m.safetensors"))
    assert_user_error(result, f"--checkpoint: cannot write into {unwritable}")


def test_plot_without_matplotlib_is_found_before_training(tmp_path):
    fake = tmp_path / "site" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('matplotlib is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    result = refcnn("train", *TINY, "--plot", str(tmp_path / "plots"),
                    "--checkpoint", str(tmp_path / "m.safetensors"), env=env)  # fmt: skip
    assert_user_error(result, "--plot needs matplotlib, which cannot be imported")


def test_help_shows_every_option_with_its_default():
    result = refcnn("train", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    parser = argparse.ArgumentParser()
    cli._train_parser(parser.add_subparsers())
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    for action in train._actions:
        if action.dest == "help":
            continue
        assert action.help and "(default: " in action.help, action.option_strings
        assert action.option_strings[0] in text
    assert "(default: 0.9 with sgd; not an option of adam)" in text
    assert "Ctrl-C stops after the step under way" in text


@pytest.mark.parametrize(
    "argv", [["--help"], ["train", "--help"], ["parity", "--help"]], ids=["top", "train", "parity"]
)
def test_help_cites_no_internal_document(argv):
    result = refcnn(*argv)
    assert result.returncode == 0, result.stderr
    for bad in ("``", "DESIGN", "\u00a7", str(ROOT.parent)):  # no install path (parity's --data default had one)
        assert bad not in result.stdout, bad


def test_version():
    result = refcnn("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"refcnn {refcnn_version}"


# ---- Ctrl-C and --resume --------------------------------------------------------------------------------
RUN = ["--model", "simplecnn", "--epochs", "3", "--train-limit", "1000", "--batch-size", "10", "--no-progress"]


def interrupted_run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Start the run, send SIGINT just after its first epoch is reported (in epoch 2 of 3, 100
    steps each, or, on a slow machine, right after epoch 1), wait for it to end."""
    proc = subprocess.Popen([sys.executable, "-m", "refcnn", "train", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    out = [proc.stdout.readline(), proc.stdout.readline()]  # the run's line, epoch 1's line
    assert out[1].startswith("epoch   1/3"), (out, proc.stderr and proc.stderr.read())
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(out) + rest, err)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = io.load(a), io.load(b)
    return list(wa) == list(wb) and all(np.array_equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("recipe", [["--optimizer", "sgd", "--momentum", "0.8"],
                                    ["--optimizer", "adam", "--lr", "0.001"]], ids=["sgd-momentum", "adam"])  # fmt: skip
def test_ctrl_c_saves_and_resume_gives_the_uninterrupted_weights(recipe, tmp_path):
    """Ctrl-C lands somewhere in epoch 2 (wherever it lands): the resumed run ends bit for bit
    where the run never stopped ends (cosine schedule, the default, included). The same with a
    stop at a chosen step: tests/test_train.py."""
    stopped, whole = tmp_path / "stopped.safetensors", tmp_path / "whole.safetensors"
    result = interrupted_run([*RUN, *recipe, "--checkpoint", str(stopped)])
    assert result.returncode == 130, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    state = tmp_path / "stopped.resume.safetensors"
    where = lines[0].removeprefix("train: interrupted ").split(";")[0]
    assert where == "after epoch 1/3" or re.fullmatch(r"in epoch 2/3 after step \d+ of 100", where), lines[0]
    assert lines[0].endswith(f"saved {stopped} and {state}: continue with python -m refcnn train --resume {state}")
    assert "epoch   2/3" not in result.stdout
    saved = io.load(state)["training"]
    assert saved["epoch"] == 1 and (saved["order"] is None) == (saved["step"] == 0) and saved["step"] < 100

    resumed = refcnn("train", "--resume", str(state), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing at epoch 2, step " in resumed.stdout and "epoch   3/3" in resumed.stdout
    assert refcnn("train", *RUN, *recipe, "--checkpoint", str(whole)).returncode == 0
    assert same_weights(stopped, whole)
    histories = [io.load(p)["training"]["history"] for p in (state, tmp_path / "whole.resume.safetensors")]
    for h in histories:
        for epoch in h:
            del epoch["seconds"]
    assert histories[0] == histories[1]  # the interrupted epoch's loss and accuracy too


def test_resume_errors_are_one_line(tmp_path):
    ck = tmp_path / "m.safetensors"
    assert refcnn("train", *TINY, "--epochs", "2", "--checkpoint", str(ck)).returncode == 0
    state = tmp_path / "m.resume.safetensors"
    assert_user_error(
        refcnn("train", "--resume", str(ck)),
        f"holds model weights only; resume from the training state beside it, {state}",
    )
    assert_user_error(refcnn("train", "--resume", str(state)), "has finished its 2 epochs; nothing to resume")
    assert_user_error(refcnn("train", "--resume", str(state), "--lr", "0.5"), "leave out --lr 0.5 (the run has 0.02)")
    (tmp_path / "cut.resume.safetensors").write_bytes(state.read_bytes()[:-10])
    assert_user_error(refcnn("train", "--resume", str(tmp_path / "cut.resume.safetensors")), "is truncated")
    other = tmp_path / "other"
    shutil.copytree(sample_dir(), other)
    (other / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(gzip.decompress(
        (sample_dir() / "train-labels-idx1-ubyte.gz").read_bytes())[:8] + bytes(2000)))  # fmt: skip
    assert_user_error(refcnn("train", "--resume", str(state), "--data", str(other)), "are not the ones the run")


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
