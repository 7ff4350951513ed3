"""Ready-made networks. Each is an ``nn.Sequential`` (or a Module of them) so its state_dict
keys are those of the same torch.nn architecture, and a checkpoint moves between the two."""

from __future__ import annotations

from typing import Any

from . import nn

__all__ = ["SimpleCNN", "LeNet5", "MODELS", "build"]


class SimpleCNN(nn.Sequential):
    """The original notebook's network, with each of its bugs fixed.

    Conv2d(1, 8, 3) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(8*13*13, 10).

    Shape: (N, 1, 28, 28) -> (N, 10) logits.

    The notebook's bugs (its code is kept, bugs and all, in ``refcnn.notebook``):

    1. Its conv backward computed the input gradient and returned nothing. Here every
       ``backward`` returns dL/dx, checked against PyTorch by the conformance suite.
    2. Its Linear drew weights with std ``sqrt(2 / fan_out)`` = 0.45 for 5000 inputs, so the
       first loss was about 18. Here Conv2d and Linear use PyTorch's default
       ``kaiming_uniform_(a=sqrt(5))``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)): first loss ~2.3.
    3. Its pool took the conv's stride of 1 (overlapping 2x2 windows, 25x25 output). Here
       ``MaxPool2d(2)`` defaults its stride to the kernel size, as PyTorch does: 13x13.
    4. Its layers looped over images and pixels in Python; here the kernels are
       vectorised (``refcnn.kernels``, implementation "fast").
    """

    def __init__(self, num_classes: int = 10, dtype: Any = None) -> None:
        super().__init__(
            nn.Conv2d(1, 8, kernel_size=3, dtype=dtype),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 13 * 13, num_classes, dtype=dtype),
        )


class LeNet5(nn.Sequential):
    """LeNet-5 for 28x28 MNIST, in its common modern form (ReLU and max pooling).

    Conv2d(1, 6, 5, padding=2) -> ReLU -> MaxPool2d(2) -> Conv2d(6, 16, 5) -> ReLU ->
    MaxPool2d(2) -> Flatten -> Linear(400, 120) -> ReLU -> Linear(120, 84) -> ReLU ->
    Linear(84, 10).

    Shape: (N, 1, 28, 28) -> (N, 10) logits. LeCun et al. 1998 used tanh/sigmoid and
    trainable subsampling; this is the variant PyTorch tutorials use.
    """

    def __init__(self, num_classes: int = 10, dtype: Any = None) -> None:
        super().__init__(
            nn.Conv2d(1, 6, kernel_size=5, padding=2, dtype=dtype),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5, dtype=dtype),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120, dtype=dtype),
            nn.ReLU(),
            nn.Linear(120, 84, dtype=dtype),
            nn.ReLU(),
            nn.Linear(84, num_classes, dtype=dtype),
        )


MODELS: dict[str, type[nn.Module]] = {"simplecnn": SimpleCNN, "lenet5": LeNet5}


def build(name: str, dtype: Any = None) -> nn.Module:
    """A model by its command-line name (``simplecnn``, ``lenet5``, ...)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](dtype=dtype)
