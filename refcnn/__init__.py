"""refcnn: a convolutional-network package in plain NumPy, every layer verified against PyTorch."""

from . import data, io, kernels, nn, optim
from ._grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from ._random import default_generator, manual_seed

__version__ = "0.1.0"

__all__ = [
    "data", "default_generator", "enable_grad", "io", "is_grad_enabled", "kernels", "manual_seed", "nn",
    "no_grad", "optim", "set_grad_enabled", "__version__",
]  # fmt: skip
