"""MNIST from its IDX files: ``load_mnist`` (normalised arrays) and the ``MNIST`` dataset.

Where the files come from. A directory ``root`` holds the official file names, raw or
gzip-compressed (``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``, and the same
for ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``); the
first existing name in :data:`FILES` wins (raw first, as torchvision extracts them). The
official images and labels of a split must hold the same number of items.

Head files. When the full training images are absent, a *head file*
``train-head{K}-images-idx3-ubyte[.gz]`` is used instead: the first K official training
images, in an IDX file whose header says K (``../shared/data/mnist`` holds
``train-head6309-*``). Its labels are ``train-head{K}-labels-idx1-ubyte[.gz]`` (K labels) if
present, else the first K of the official training labels: truncating labels to the images'
count happens only here, for a file whose name documents that it is a head. With several
head files, the largest K wins. Every other count mismatch is an error.

Normalisation. ``load_mnist`` returns ``(x / 255 - 0.1307) / 0.3081`` in float32, step by step
as torchvision's ``ToTensor()`` then ``Normalize((0.1307,), (0.3081,))`` compute it (float32
division by 255, then float32 subtraction and division), so the arrays equal the tensors a
torchvision MNIST pipeline feeds a PyTorch model, bit for bit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .idx import read_idx

__all__ = ["MNIST", "MNIST_MEAN", "MNIST_STD", "FILES", "MNISTNotFoundError", "load_mnist", "sample_dir"]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

FILES: dict[tuple[bool, str], tuple[str, ...]] = {
    (True, "images"): ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"),
    (True, "labels"): ("train-labels-idx1-ubyte", "train-labels-idx1-ubyte.gz"),
    (False, "images"): ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"),
    (False, "labels"): ("t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz"),
}
_HEAD = re.compile(r"train-head(\d+)-images-idx3-ubyte(\.gz)?")


class MNISTNotFoundError(FileNotFoundError):
    """The directory does not hold the MNIST files a split needs."""


def sample_dir() -> Path:
    """The MNIST sample bundled with refcnn: the first 2,000 training and 1,000 test images
    and labels under the official file names (see its README.md), for offline use."""
    return Path(__file__).resolve().parent / "sample"


def _first_existing(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_file():
            return root / name
    return None


def _find_files(root: Path, train: bool) -> tuple[Path, Path, int | None]:
    """(images, labels, K): K is the documented count of a head images file, else None."""
    images = _first_existing(root, FILES[train, "images"])
    labels = _first_existing(root, FILES[train, "labels"])
    if images is not None:
        if labels is None:
            raise MNISTNotFoundError(f"{root}: found {images.name} but none of {list(FILES[train, 'labels'])}")
        return images, labels, None
    if train and root.is_dir():
        heads = sorted(
            ((int(m[1]), p) for p in root.iterdir() if p.is_file() and (m := _HEAD.fullmatch(p.name))),
            key=lambda kp: (-kp[0], kp[1].name),  # largest K; raw before .gz
        )
        if heads:
            k, head_images = heads[0]
            own = _first_existing(root, (f"train-head{k}-labels-idx1-ubyte", f"train-head{k}-labels-idx1-ubyte.gz"))
            head_labels = own or labels
            if head_labels is None:
                raise MNISTNotFoundError(
                    f"{root}: found {head_images.name} but neither its labels (train-head{k}-labels-idx1-ubyte[.gz]) "
                    f"nor the official {list(FILES[True, 'labels'])}"
                )
            return head_images, head_labels, k
    split = "training" if train else "test"
    wanted = list(FILES[train, "images"]) + (["train-head{K}-images-idx3-ubyte[.gz]"] if train else [])
    raise MNISTNotFoundError(
        f"MNIST {split} images not found in {root}: looked for {wanted}. Use MNIST(root, download=True), "
        f"or refcnn.data.sample_dir() for the bundled sample"
    )


def _read(root: str | os.PathLike[str], train: bool) -> tuple[np.ndarray, np.ndarray]:
    """The split's raw images (N, 28, 28) uint8 and labels (N,) int64, checked."""
    root = Path(root)
    images_path, labels_path, head_k = _find_files(root, train)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path}: MNIST images must be uint8 of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path}: MNIST labels must be uint8 of shape (N,), got {labels.dtype} {labels.shape}")
    n, m = len(images), len(labels)
    if head_k is not None:
        if n != head_k:
            raise ValueError(f"{images_path}: a head file named for {head_k} images holds {n}")
        if m < n:
            raise ValueError(f"{labels_path}: {m} labels for the {n} images of {images_path.name}")
        labels = labels[:n]  # a documented head: its labels are the first n official ones
    elif n != m:
        raise ValueError(f"{root}: {images_path.name} holds {n} images but {labels_path.name} holds {m} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: MNIST labels must be 0..9, found {int(labels.max())}")
    return images, labels.astype(np.int64)


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28): ``(x / 255 - 0.1307) / 0.3081``, each step
    in float32 as torchvision's ToTensor + Normalize."""
    x = images[:, None].astype(np.float32) / np.float32(255)
    x -= np.float32(MNIST_MEAN)
    x /= np.float32(MNIST_STD)
    return x


def load_mnist(root: str | os.PathLike[str], train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The training (``train=True``) or test split from ``root`` (see the module docstring for
    the file names accepted, head files included).

    Returns ``images`` float32 (N, 1, 28, 28), normalised ``(x / 255 - 0.1307) / 0.3081``, and
    ``labels`` int64 (N,). Raises MNISTNotFoundError (a FileNotFoundError) if the files are
    missing, IDXError for a corrupt file, ValueError for wrong shapes, label values or counts.
    """
    images, labels = _read(root, train)
    return normalize(images), labels


class MNIST:
    """MNIST as ``torchvision.datasets.MNIST``: ``len(ds)``, ``ds[i] -> (image, label)``.

    Args:
        root: the directory holding the files (directly: torchvision looks in
            ``root/MNIST/raw``, pass that folder to use a torchvision download).
        train (True): the training split, else the test split.
        transform (None): applied to each image; without one the image is the raw uint8
            (28, 28) array (torchvision gives a PIL image there). ``transforms.Compose(
            [transforms.ToFloat(), transforms.Normalize((0.1307,), (0.3081,))])`` gives what
            torchvision's ``ToTensor()`` + ``Normalize`` give: float32 (1, 28, 28).
        target_transform (None): applied to each label (a Python int).
        download (False): fetch the four official files into ``root`` first if they are not
            there (see :mod:`refcnn.data.download`; md5-verified).

    Attributes:
        data: uint8 (N, 28, 28), the raw images.  targets: int64 (N,), the labels.

    ``get_batch(indices)`` returns ``(images, labels)`` for an index array at once, equal to
    stacking ``ds[i]`` (vectorised when the transform is one of refcnn's own transforms);
    :class:`refcnn.data.DataLoader` uses it.
    """

    classes: ClassVar[list[str]] = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
                                   "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]  # fmt: skip

    def __init__(
        self,
        root: str | os.PathLike[str],
        train: bool = True,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        download: bool = False,
    ) -> None:
        self.root = Path(root)
        self.train = bool(train)
        self.transform = transform
        self.target_transform = target_transform
        if download:
            from . import download as _download  # late: tests replace its MIRRORS/RESOURCES

            _download.download_mnist(self.root)
        self.data, self.targets = _read(self.root, self.train)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img: Any = self.data[index]
        target: Any = int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def get_batch(self, indices: Any) -> tuple[Any, Any]:
        """``(images, labels)`` for the 1-D integer array ``indices``: what stacking ``self[i]``
        over ``indices`` gives. With no transform or a batchable one (refcnn's transforms, a
        Compose of them), the batch is built by fancy indexing and the transform's vectorised
        ``batch`` method; any other transform, or a target_transform, is called item by item."""
        idx = np.asarray(indices)
        vectorised = self.transform is None or getattr(self.transform, "batchable", False)
        if self.target_transform is not None or not vectorised:
            items = [self[int(i)] for i in idx]
            return np.stack([im for im, _ in items]), np.asarray([t for _, t in items])
        images: Any = self.data[idx]
        if self.transform is not None:
            images = self.transform.batch(images)  # type: ignore[attr-defined]
        return images, self.targets[idx]

    def __repr__(self) -> str:
        return (
            f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
            f"    Root location: {self.root}\n    Split: {'Train' if self.train else 'Test'}"
        )
