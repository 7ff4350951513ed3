"""Data: the IDX reader, MNIST (arrays, dataset, checksummed download, bundled sample),
mini-batches and NumPy image transforms."""

from . import download, transforms
from .download import DownloadError, download_mnist
from .idx import IDXError, read_idx, write_idx
from .loader import DataLoader, batches
from .mnist import MNIST, MNIST_MEAN, MNIST_STD, MNISTNotFoundError, load_mnist, sample_dir

__all__ = [
    "DataLoader",
    "DownloadError",
    "IDXError",
    "MNIST",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNISTNotFoundError",
    "batches",
    "download",
    "download_mnist",
    "load_mnist",
    "read_idx",
    "sample_dir",
    "transforms",
    "write_idx",
]
