"""What one parity run is: its configuration, the bounds it is judged by, where its data is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import sample_dir

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
MODEL_NAMES = ("simplecnn", "lenet5", "vgg", "resnet")
OPTIMIZER_NAMES = ("sgd", "adam")

FLOAT64_REL_LOSS = 1e-10
FLOAT64_ABS_WEIGHT = 1e-9
FLOAT32_ACCURACY_POINTS = 0.2

EVAL_BATCH = 250  # test images per forward: bounds the memory of a float64 VGGNet's im2col buffers


@dataclass(frozen=True)
class RunConfig:
    model: str = "lenet5"
    optimizer: str = "sgd"
    dtype: str = "float64"
    steps: int | None = None  # None: ``epochs`` full epochs
    epochs: int = 1
    batch_size: int = 64
    lr: float | None = None  # None: 0.01 for SGD (momentum 0.9), 0.001 for Adam
    momentum: float = 0.9
    seed: int = 0
    scheduler: str = "none"  # "cosine": CosineAnnealingLR(T_max=steps), stepped after every step

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.01 if self.optimizer == "sgd" else 0.001


def data_dir(data: Path | None) -> Path:
    """``--data`` if given; else ../shared/data/mnist next to the repository if it holds the
    test set; else the bundled sample."""
    if data is not None:
        return data
    if (DEFAULT_DATA / "t10k-images-idx3-ubyte.gz").is_file() or (DEFAULT_DATA / "t10k-images-idx3-ubyte").is_file():
        return DEFAULT_DATA
    return sample_dir()
