"""Ready-made networks. Each is an ``nn.Sequential`` (or a Module of them) so its state_dict
keys are those of the same torch.nn architecture, and a checkpoint moves between the two."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import nn

__all__ = ["SimpleCNN", "LeNet5", "VGGNet", "BasicBlock", "ResNet", "MODELS", "build"]


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


class VGGNet(nn.Sequential):
    """A VGG-style network for MNIST: two stages of two 3x3 convolutions, each followed by
    BatchNorm and ReLU, max-pooled; then a dropout-regularised two-layer head.

    ``features``: Conv2d(1, 32, 3, padding=1, bias=False) -> BatchNorm2d(32) -> ReLU ->
    Conv2d(32, 32, 3, padding=1, bias=False) -> BatchNorm2d(32) -> ReLU -> MaxPool2d(2) ->
    Conv2d(32, 64, 3, padding=1, bias=False) -> BatchNorm2d(64) -> ReLU ->
    Conv2d(64, 64, 3, padding=1, bias=False) -> BatchNorm2d(64) -> ReLU -> MaxPool2d(2).

    ``classifier``: Flatten -> Dropout(0.25) -> Linear(64*7*7, 128, bias=False) ->
    BatchNorm1d(128) -> ReLU -> Dropout(0.5) -> Linear(128, 10).

    Shape: (N, 1, 28, 28) -> features (N, 64, 7, 7) -> (N, 10) logits.

    The convolutions and the hidden Linear have no bias: the BatchNorm after each removes
    any constant per channel, and its own ``bias`` is the shift. ``state_dict`` keys are those
    of ``torch.nn.Sequential(OrderedDict(features=..., classifier=...))`` with the same
    layers (``features.0.weight``, ``features.1.running_mean``, ``classifier.6.bias``, ...).
    Train it in ``train()`` mode (batch statistics, dropout) and predict in ``eval()`` mode.
    """

    def __init__(self, num_classes: int = 10, dtype: Any = None) -> None:
        def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False, dtype=dtype),
                nn.BatchNorm2d(c_out, dtype=dtype),
                nn.ReLU(),
            ]

        features = nn.Sequential(
            *conv_bn_relu(1, 32), *conv_bn_relu(32, 32), nn.MaxPool2d(2),
            *conv_bn_relu(32, 64), *conv_bn_relu(64, 64), nn.MaxPool2d(2),
        )  # fmt: skip
        classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(64 * 7 * 7, 128, bias=False, dtype=dtype),
            nn.BatchNorm1d(128, dtype=dtype),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, num_classes, dtype=dtype),
        )
        super().__init__(OrderedDict(features=features, classifier=classifier))


class BasicBlock(nn.Module):
    """The residual block of ResNet-18/34 (He et al. 2016), torchvision's ``BasicBlock``.

    branch(x)   = bn2(conv2(relu1(bn1(conv1(x)))))
                  conv1: Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
                  conv2: Conv2d(planes, planes, 3, padding=1, bias=False)
    shortcut(x) = x                                      if stride == 1 and in_planes == planes
                = downsample(x) = bn(conv1x1(x))         otherwise (a projection:
                  Sequential(Conv2d(in_planes, planes, 1, stride, bias=False), BatchNorm2d(planes)))
    y           = relu2(branch(x) + shortcut(x))

    Backward: with g = dL/dy, the sum splits the gradient of s = branch + shortcut to both
    paths unchanged, so

        g_s   = g * [s > 0]                               (relu2)
        dL/dx = branch.backward(g_s) + shortcut.backward(g_s)   (identity: + g_s itself)

    and each path accumulates its own parameters' gradients.

    Shape: (N, in_planes, H, W) -> (N, planes, H_out, W_out), H_out = (H - 1) // stride + 1.

    ``state_dict`` keys equal torchvision's BasicBlock's: ``conv1.weight``, ``bn1.*``,
    ``conv2.weight``, ``bn2.*`` and, with a projection, ``downsample.0.weight``,
    ``downsample.1.*``. (torchvision applies one ``relu`` module twice; here there are two,
    ``relu1`` and ``relu2``, with no state, so the backward reads as the forward reversed.
    A module used twice in one forward would work too: each use keeps its own context.)
    """

    downsample: nn.Sequential | None

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dtype: Any = None) -> None:
        super().__init__()
        self.in_planes, self.planes, self.stride = in_planes, planes, stride
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False, dtype=dtype)
        self.bn1 = nn.BatchNorm2d(planes, dtype=dtype)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False, dtype=dtype)
        self.bn2 = nn.BatchNorm2d(planes, dtype=dtype)
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False, dtype=dtype),
                nn.BatchNorm2d(planes, dtype=dtype),
            )
        else:
            self.downsample = None  # a plain attribute, as torchvision's: no state
        self.relu2 = nn.ReLU()

    def _branch(self) -> list[nn.Module]:
        return [self.conv1, self.bn1, self.relu1, self.conv2, self.bn2]

    def forward(self, x: Any) -> Any:
        out = x
        for m in self._branch():
            out = m(out)
        identity = x if self.downsample is None else self.downsample(x)
        if identity.shape != out.shape:
            raise ValueError(
                f"BasicBlock({self.in_planes}, {self.planes}, stride={self.stride}): the branch gives "
                f"{out.shape} but the shortcut {identity.shape} (input {x.shape})"
            )
        return self.relu2(out + identity)

    def backward(self, grad_output: Any) -> Any:
        grad_sum = self.relu2.backward(grad_output)
        grad_branch = grad_sum
        for m in reversed(self._branch()):
            grad_branch = m.backward(grad_branch)
        grad_skip = grad_sum if self.downsample is None else self.downsample.backward(grad_sum)
        return grad_branch + grad_skip

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.planes}, stride={self.stride}"


class ResNet(nn.Sequential):
    """A small residual network for MNIST: a 3x3 stem and three stages of BasicBlocks
    (16, 32, 64 channels; the last two halve the resolution with a projection shortcut),
    global average pooling and a Linear head.

    conv1: Conv2d(1, 16, 3, padding=1, bias=False) -> bn1: BatchNorm2d(16) -> relu ->
    layer1: BasicBlock(16, 16) -> layer2: BasicBlock(16, 32, stride=2) ->
    layer3: BasicBlock(32, 64, stride=2) -> avgpool: AdaptiveAvgPool2d(1) -> flatten ->
    fc: Linear(64, 10).

    ``blocks=(b1, b2, b3)`` puts b_i blocks in stage i (the first of a stage changes the
    shape). Shape: (N, 1, 28, 28) -> (N, 16, 28, 28) -> (N, 32, 14, 14) -> (N, 64, 7, 7) ->
    (N, 10) logits.

    ``state_dict`` keys follow torchvision's ResNet (``conv1.weight``, ``bn1.running_var``,
    ``layer2.0.downsample.0.weight``, ``fc.bias``, ...); the module is a
    ``Sequential(OrderedDict(...))``, so PyTorch's ``nn.Sequential`` of the same layers (with
    a BasicBlock of the same attributes) loads it as is.
    """

    def __init__(self, num_classes: int = 10, dtype: Any = None, blocks: tuple[int, int, int] = (1, 1, 1)) -> None:
        widths = (16, 32, 64)
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv1=nn.Conv2d(1, widths[0], kernel_size=3, padding=1, bias=False, dtype=dtype),
            bn1=nn.BatchNorm2d(widths[0], dtype=dtype),
            relu=nn.ReLU(),
        )
        in_planes = widths[0]
        for stage, (planes, count) in enumerate(zip(widths, blocks, strict=True), start=1):
            stride = 1 if stage == 1 else 2
            stage_blocks = []
            for i in range(count):
                stage_blocks.append(BasicBlock(in_planes, planes, stride=stride if i == 0 else 1, dtype=dtype))
                in_planes = planes
            layers[f"layer{stage}"] = nn.Sequential(*stage_blocks)
        layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(widths[-1], num_classes, dtype=dtype)
        super().__init__(layers)


MODELS: dict[str, Callable[..., nn.Module]] = {  # name -> class (called with dtype=)
    "simplecnn": SimpleCNN,
    "lenet5": LeNet5,
    "vgg": VGGNet,
    "resnet": ResNet,
}


def build(name: str, dtype: Any = None) -> nn.Module:
    """A model by its command-line name (``simplecnn``, ``lenet5``, ``vgg``, ``resnet``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](dtype=dtype)
