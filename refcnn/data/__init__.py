"""Data: the IDX reader, MNIST (arrays, dataset, bundled sample),
mini-batches and NumPy image transforms."""

from . import transforms
from .idx import IDXError, read_idx, write_idx
from .loader import DataLoader, batches
from .mnist import MNIST, MNIST_MEAN, MNIST_STD, MNISTNotFoundError, load_mnist, sample_dir

__all__ = [
    "DataLoader",
    "IDXError",
    "MNIST",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNISTNotFoundError",
    "batches",
    "load_mnist",
    "read_idx",
    "sample_dir",
    "transforms",
    "write_idx",
]
