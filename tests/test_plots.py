"""refcnn.plots: every figure is written as a non-empty PNG; the confusion matrix by hand;
a clear error without matplotlib; ``train --plot`` end to end."""

import sys

import numpy as np
import pytest

from refcnn import cli, manual_seed, models
from refcnn.data import load_mnist, sample_dir
from refcnn.train import EpochStats

pytest.importorskip("matplotlib", reason="matplotlib (refcnn's optional 'plot' extra) is not installed")

from refcnn import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > min_bytes, f"{path}: only {len(data)} bytes"


@pytest.fixture(scope="module")
def test_images():
    x, y = load_mnist(sample_dir(), train=False)
    return x[:120], y[:120]


HISTORY = [
    EpochStats(1, 0.9, 0.71, 0.52, 0.84, 1.5),
    EpochStats(2, 0.41, 0.88, 0.35, 0.9, 1.4),
    EpochStats(3, 0.28, 0.92, 0.3, 0.91, 1.4),
]


@pytest.mark.parametrize("name", ["lenet5", "vgg"])
def test_write_training_plots_writes_four_pngs(tmp_path, test_images, name):
    manual_seed(0)
    model = models.build(name)
    paths = plots.write_training_plots(tmp_path / "plots", model, HISTORY, test_images)
    assert [p.name for p in paths] == [
        "training_curves.png",
        "filters.png",
        "confusion_matrix.png",
        "misclassified.png",
    ]
    for p in paths:
        _assert_png(p)
    assert all(m.training for m in model.modules())  # evaluating for the figures restores the mode


def test_curves_mark_the_best_epoch_and_title_the_final_accuracy(tmp_path, monkeypatch):
    """The marked point is the best test accuracy, which need not be the last epoch's."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    history = [*HISTORY, EpochStats(4, 0.25, 0.93, 0.31, 0.905, 1.4)]
    plots.plot_training_curves(history, tmp_path / "c.png")
    ax_acc = figures[0].axes[1]
    assert ax_acc.get_title() == "accuracy (test after the last epoch: 90.50%)"
    assert [t.get_text() for t in ax_acc.texts] == ["best 91.00%"]
    assert ax_acc.texts[0].xy == (3, 91.0)


def test_without_history_the_curves_are_skipped(tmp_path, test_images):
    paths = plots.write_training_plots(tmp_path, models.SimpleCNN(), [], test_images)
    assert [p.name for p in paths] == ["filters.png", "confusion_matrix.png", "misclassified.png"]


def test_confusion_matrix_by_hand():
    counts = plots.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), num_classes=3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    with pytest.raises(ValueError, match=r"must be 1-D of one length, got \(3,\), \(2,\)"):
        plots.confusion_matrix(np.zeros(3, int), np.zeros(2, int))


def test_misclassified_with_none_wrong(tmp_path, test_images):
    x, y = test_images
    _assert_png(plots.plot_misclassified(x, y, y.copy(), tmp_path / "none.png"), min_bytes=1000)


def test_filters_need_a_conv_layer(tmp_path):
    from refcnn import nn

    with pytest.raises(ValueError, match="Sequential has no Conv2d layer"):
        plots.plot_filters(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), tmp_path / "f.png")


def test_empty_history_curves_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="the history is empty"):
        plots.plot_training_curves([], tmp_path / "c.png")


def test_parity_plot(tmp_path):
    steps = 12
    rng = np.random.default_rng(0)
    losses = list(2.3 * np.exp(-0.1 * np.arange(steps)))
    run = {
        "model": "lenet5", "optimizer": "sgd", "dtype": "float32", "steps": steps,
        "losses": {"refcnn": losses, "torch": [v * (1 + 1e-7) for v in losses]},
        "rel_loss_diff": list(np.abs(rng.standard_normal(steps)) * 1e-7), "budget": [1e-5 * t for t in range(1, 13)],
        "first_step_beyond_budget": None,
    }  # fmt: skip
    run["rel_loss_diff"][3] = 0.0  # equal losses cannot be drawn on a log scale
    _assert_png(plots.write_parity_plot(tmp_path / "parity.png", [run, {**run, "dtype": "float64"}]))
    with pytest.raises(ValueError, match="no parity runs"):
        plots.write_parity_plot(tmp_path / "empty.png", [])


def test_missing_matplotlib_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"refcnn.plots needs matplotlib.*pip install 'refcnn\[plot\]'"):
        plots.plot_training_curves(HISTORY, tmp_path / "c.png")


def test_train_command_writes_plots(tmp_path, capsys):
    code = cli.main(
        ["train", "--model", "simplecnn", "--epochs", "2", "--train-limit", "200", "--batch-size", "20",
         "--checkpoint", str(tmp_path / "m.safetensors"), "--plot", str(tmp_path / "plots"), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    for name in ("training_curves", "filters", "confusion_matrix", "misclassified"):
        assert f"plot: {tmp_path / 'plots' / name}.png" in out
        _assert_png(tmp_path / "plots" / f"{name}.png")
