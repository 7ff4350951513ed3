"""refcnn: a convolutional-network package in plain NumPy, every layer verified against PyTorch."""

from . import data, io, kernels, nn, optim
from ._random import default_generator, manual_seed

__version__ = "0.1.0"

__all__ = ["data", "default_generator", "io", "kernels", "manual_seed", "nn", "optim", "__version__"]
