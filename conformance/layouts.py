"""Memory layouts and the caller's arrays: how a kernel is handed its arrays in a case.

A user's arrays are not always fresh C-ordered ones: a transposed view, a Fortran-ordered
array from another library, a reversed or strided slice, a read-only array (a memory map, a
frozen buffer). A kernel must give the same answer on each (up to the order of its sums, which
the tolerance covers), must never write into them, and must not return an output that a later
backward still reads (the caller may write into its output: ``Dropout(inplace=True)`` after an
activation).

Each op and module case carries a ``memory`` layout (drawn with it, kept in the case dict, so a repro
rebuilds it): the kernel gets its inputs and its upstream gradient in that layout, in place of
C-ordered copies, so the checks cost no more time. Whatever the layout, the spec then checks
that no input, parameter or upstream gradient changed (check ``caller_arrays``), and writes
into the forward's output before calling backward (a gradient computed from an aliased output
then fails its comparison, and says so).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# C is drawn in 2 of 7 cases; each other layout in 1 of 7 (so ci meets each, per op and dtype).
LAYOUTS = ("C", "C", "fortran", "transposed", "negative", "step", "readonly")
DESCRIBED = {
    "C": "C-ordered arrays",
    "fortran": "Fortran-ordered arrays",
    "transposed": "views with the last two axes transposed",
    "negative": "negative-stride views (every axis reversed in memory)",
    "step": "step-2 slices of a larger array (its gaps hold nan)",
    "readonly": "read-only arrays",
}


def draw(seed: int) -> str:
    """The case's layout, a function of its seed: the seed is drawn anyway, so adding the axis
    leaves every other value of every drawn case as it was."""
    return LAYOUTS[((int(seed) * 2654435761) >> 13) % len(LAYOUTS)]


def with_layout(case: dict[str, Any]) -> dict[str, Any]:
    return {**case, "memory": draw(case["seed"])} if "seed" in case else case


def layout_of(case: dict[str, Any]) -> str:
    """The case's memory layout (its ``memory`` key; a pinned example without one: C)."""
    return str(case.get("memory", "C"))


def apply(a: Any, layout: str) -> Any:
    """``a``'s values in ``layout``, in memory of their own (never a view of ``a``: a kernel
    writing into them must not reach the arrays the other checks use); anything else as it is."""
    if not isinstance(a, np.ndarray):
        return a
    if layout == "fortran" and a.ndim >= 1:
        return np.asfortranarray(a.copy())
    if layout == "transposed" and a.ndim >= 2:
        return np.swapaxes(a, -1, -2).copy(order="C").swapaxes(-1, -2)
    if layout == "negative" and a.ndim >= 1:
        rev = (slice(None, None, -1),) * a.ndim
        return a[rev].copy(order="C")[rev]
    if layout == "step" and a.ndim >= 1:
        gap = np.nan if a.dtype.kind in "fc" else 0
        buf = np.full(tuple(2 * s for s in a.shape), gap, dtype=a.dtype)
        view = buf[(slice(None, None, 2),) * a.ndim]
        view[...] = a
        return view
    out = a.copy()
    if layout == "readonly":
        out.flags.writeable = False
    return out


def snapshot(arrays: dict[str, Any]) -> dict[str, bytes]:
    """Each array's exact contents (bytes: nan and -0.0 compare as they are)."""
    return {k: np.ascontiguousarray(v).tobytes() for k, v in arrays.items() if isinstance(v, np.ndarray)}


def changed(arrays: dict[str, Any], before: dict[str, bytes], skip: Any = ()) -> list[str]:
    """The names of the arrays whose contents differ from ``before`` (``skip``: leave out)."""
    return [
        k
        for k, b in before.items()
        if k not in skip and isinstance(arrays.get(k), np.ndarray) and np.ascontiguousarray(arrays[k]).tobytes() != b
    ]


def overwrite(y: Any) -> bool:
    """Write into the forward's output as a caller may (y = -3 y - 1, every float array of it
    that is writeable). True if anything was written."""
    wrote = False
    for a in y if isinstance(y, tuple) else (y,):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size and a.flags.writeable:
            with np.errstate(all="ignore"):
                a *= -3
                a -= 1
            wrote = True
    return wrote


def shares(a: Any, y: Any) -> bool:
    """Whether ``a`` may share memory with any array of the output ``y`` (a view: torch's too)."""
    return isinstance(a, np.ndarray) and any(
        isinstance(o, np.ndarray) and np.may_share_memory(a, o) for o in (y if isinstance(y, tuple) else (y,))
    )
