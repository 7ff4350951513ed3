"""Mini-batches: ``batches(x, y, ...)`` for arrays and ``DataLoader`` for arrays or datasets.

Order. Without ``shuffle`` the items come in order. With it, each pass draws a fresh
permutation ``generator.permutation(N)`` at the start of the pass, from the ``generator``
given, else from refcnn's generator in force then (``refcnn.manual_seed`` seeds it), as
torch's DataLoader draws from the global generator at each ``iter()``. The last batch
is smaller (``N % batch_size`` items) unless ``drop_last`` drops it.

Arrays are batched by fancy indexing (``x[idx]``, a copy), never a Python loop over items.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .._random import default_generator

__all__ = ["DataLoader", "batches"]


def _check_batch_args(owner: str, batch_size: Any, generator: Any) -> int:
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{owner}: batch_size should be a positive integer value, but got batch_size={batch_size!r}")
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"{owner}: generator must be a numpy.random.Generator or None, got {type(generator).__name__}")
    return int(batch_size)


def _num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def _index_batches(
    n: int, batch_size: int, shuffle: bool, drop_last: bool, generator: np.random.Generator | None
) -> Iterator[np.ndarray]:
    order = (generator or default_generator()).permutation(n) if shuffle else np.arange(n)
    for b in range(_num_batches(n, batch_size, drop_last)):
        yield order[b * batch_size : (b + 1) * batch_size]


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    generator: np.random.Generator | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x[idx], y[idx])`` for consecutive index batches of ``batch_size`` (see the
    module docstring for order and the last batch). ``x`` and ``y`` must have the same
    length (first axis). The permutation is drawn when iteration starts."""
    batch_size = _check_batch_args("batches", batch_size, generator)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(f"batches: x and y must have the same length, got shapes {x.shape} and {y.shape}")
    return _array_batches((x, y), batch_size, shuffle, drop_last, generator)  # type: ignore[return-value]


def _array_batches(
    arrays: tuple[np.ndarray, ...],
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
    generator: np.random.Generator | None,
) -> Iterator[tuple[np.ndarray, ...]]:
    for idx in _index_batches(len(arrays[0]), batch_size, shuffle, drop_last, generator):
        yield tuple(a[idx] for a in arrays)


class DataLoader:
    """Iterate over mini-batches of arrays or of a dataset (after torch.utils.data.DataLoader).

    Args:
        dataset_or_arrays: a tuple of arrays with one length, e.g. ``(x, y)``, giving
            tuples of batches; a single array, giving batches of it; or a dataset (``len``
            and ``ds[i] -> (image, label)``; a list of such pairs is one, as in torch). A dataset with a ``get_batch(indices)``
            method (refcnn's MNIST) is asked for each batch at once; any other is called item
            by item and the items stacked field by field (``np.stack``).
        batch_size (1): items per batch.
        shuffle (False): a fresh permutation on every pass.
        drop_last (False): drop the last batch if it is smaller than ``batch_size``.
        generator (None): the numpy Generator for shuffling; None uses refcnn's.

    ``len(loader)`` is the number of batches per pass.
    """

    def __init__(
        self,
        dataset_or_arrays: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: np.random.Generator | None = None,
    ) -> None:
        self.batch_size = _check_batch_args("DataLoader", batch_size, generator)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self._single = isinstance(dataset_or_arrays, np.ndarray)
        if self._single or isinstance(dataset_or_arrays, tuple):
            arrays = (dataset_or_arrays,) if self._single else tuple(np.asarray(a) for a in dataset_or_arrays)
            if not arrays or any(a.ndim == 0 for a in arrays) or len({len(a) for a in arrays}) != 1:
                shapes = [np.shape(a) for a in arrays]
                raise ValueError(
                    f"DataLoader: the arrays must be non-empty in number and share one length, got shapes {shapes}"
                )
            self.arrays: tuple[np.ndarray, ...] | None = arrays
            self.dataset = None
            self._n = len(arrays[0])
        else:
            if not (hasattr(dataset_or_arrays, "__len__") and hasattr(dataset_or_arrays, "__getitem__")):
                raise TypeError(
                    "DataLoader: expected an array, a tuple of arrays or a dataset with __len__ and "
                    f"__getitem__, got {type(dataset_or_arrays).__name__}"
                )
            self.arrays = None
            self.dataset = dataset_or_arrays
            self._n = len(dataset_or_arrays)

    def __len__(self) -> int:
        return _num_batches(self._n, self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[Any]:
        if self.arrays is not None:
            for batch in _array_batches(self.arrays, self.batch_size, self.shuffle, self.drop_last, self.generator):
                yield batch[0] if self._single else batch
            return
        get_batch = getattr(self.dataset, "get_batch", None)
        for idx in _index_batches(self._n, self.batch_size, self.shuffle, self.drop_last, self.generator):
            if get_batch is not None:
                yield get_batch(idx)
            else:
                yield _collate([self.dataset[int(i)] for i in idx])  # type: ignore[index]


def _collate(items: list[Any]) -> Any:
    """Stack a list of items: tuples field by field, arrays and numbers with np.stack."""
    first = items[0]
    if isinstance(first, (tuple, list)):
        return tuple(_collate([it[k] for it in items]) for k in range(len(first)))
    return np.stack([np.asarray(it) for it in items])
