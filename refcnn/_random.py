"""The one source of randomness: a numpy Generator the user seeds with manual_seed."""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed refcnn's generator (initialisation, dropout, shuffling), as torch.manual_seed."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    """The generator in force: what init, Dropout and the batch iterator draw from."""
    return _generator
