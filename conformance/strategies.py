"""Hypothesis strategies shared by the specs, and the array makers every case uses.

A case is a JSON-able dict of configuration values plus a ``seed``; its arrays are made
from that seed by NumPy (``make_*`` below), so a failing case is reproduced from the dict
alone. Strategies draw valid and invalid configurations from the same distribution:
PyTorch decides which are which, and the suite checks refcnn agrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

seeds = st.integers(min_value=0, max_value=2**31 - 1)


@st.composite
def spatial_axis(
    draw: Any,
    *,
    max_kernel: int = 4,
    max_stride: int = 3,
    max_dilation: int = 2,
    pad: str = "any",
    ceil_mode: bool = False,
    invalid: bool = True,
) -> dict[str, int]:
    """One spatial axis of a sliding-window op: kernel k, stride s, dilation d, padding p
    and the input size, chosen from the output size so that the interesting corners come
    often: output size exactly 1 with the kernel covering the whole padded input, strides
    larger than the kernel, pooling padding at its limit k // 2, a ceil_mode window that
    starts in the padding, and (if ``invalid``) an input too small for the kernel."""
    k = draw(st.integers(1, max_kernel))
    s = draw(st.integers(1, max_stride))
    d = draw(st.integers(1, max_dilation))
    eff = d * (k - 1) + 1
    if pad == "pool":  # PyTorch: 0 <= p <= k // 2; one past the limit is invalid
        p = draw(st.sampled_from(sorted({0, k // 2, min(1, k // 2)} | ({k // 2 + 1} if invalid else set()))))
    elif pad == "none":
        p = 0
    else:
        p = draw(st.integers(0, min(eff, 3)))
    out = draw(st.integers(0 if invalid else 1, 4))
    if out == 0:  # one row short of the kernel: PyTorch rejects
        size = eff - 2 * p - 1
    else:
        size = eff - 2 * p + (out - 1) * s + draw(st.integers(0, s - 1))
    if ceil_mode and draw(st.booleans()):
        size += 1  # a partial last window: ceil_mode adds it, or drops it when it starts in the padding
    return {"k": k, "s": s, "d": d, "p": p, "size": max(size, 1)}


def pair(a: dict[str, int], b: dict[str, int], key: str) -> list[int]:
    return [a[key], b[key]]


def make_normal(rng: np.random.Generator, shape: Any, scale: float = 1.0) -> np.ndarray:
    return np.asarray(rng.standard_normal(tuple(shape)) * scale)


def make_tie_free(rng: np.random.Generator, shape: Any) -> np.ndarray:
    """Distinct values at least 1/(2*size) apart (far above the FD step), in random order,
    with random signs and magnitudes around 1."""
    size = int(np.prod(shape)) if len(shape) else 1
    ranks = rng.permutation(size).astype(np.float64)
    return ((ranks + 0.5) / size * 4.0 - 2.0).reshape(tuple(shape))


def make_ties(rng: np.random.Generator, shape: Any) -> np.ndarray:
    """Small integers: many exact ties (PyTorch routes a tie to the first maximum)."""
    return rng.integers(-1, 2, size=tuple(shape)).astype(np.float64)


def make_upstream(rng: np.random.Generator, shape: Any) -> np.ndarray:
    """A non-uniform upstream gradient (never all ones)."""
    g = np.asarray(rng.standard_normal(tuple(shape)))
    if g.size == 1:
        g = g * 0 + (0.37 + abs(float(g.reshape(-1)[0])))
    return np.asarray(g)
