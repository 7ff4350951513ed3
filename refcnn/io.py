"""Checkpoints as safetensors files: ``save(state_dict, path)`` / ``load(path)``.

A safetensors file is an 8-byte little-endian header length, a JSON header (each
tensor's dtype, shape and byte range) and the raw little-endian data. Nothing in it can
run code, and nothing here ever unpickles: a pickle (``torch.save``'s legacy format) or a
zip archive (``torch.save``'s default format, ``numpy.savez``) is rejected with an error
that says what the file is. A refcnn checkpoint loads in PyTorch as is::

    model.load_state_dict(safetensors.torch.load_file("model.safetensors"))

and a PyTorch one saved with ``safetensors.torch.save_file`` loads here (dtypes NumPy has).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

__all__ = ["CheckpointError", "load", "save"]

# dtypes both safetensors.numpy and torch store; '__metadata__' is the header's reserved key
_DTYPES = {np.dtype(t) for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                 np.int64, np.uint64, np.float16, np.float32, np.float64, np.complex64)}  # fmt: skip
_ORDER_KEY = "refcnn.keys"
_MAX_HEADER = (
    100_000_000  # safetensors' own limit on the header length  # header metadata: the keys in the order they were saved
)


class CheckpointError(ValueError):
    """A file is not a checkpoint refcnn can load (missing, truncated, not safetensors)."""


def save(state_dict: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Write ``state_dict`` (str -> numpy.ndarray) to ``path`` as safetensors.

    Arrays are stored C-contiguous, little-endian, with their dtype and shape (0-d arrays
    such as BatchNorm's ``num_batches_tracked`` included). Keys keep their order. The file is
    written to a temporary name and moved into place, so an interrupted save never leaves
    a half-written checkpoint. Raises TypeError for a non-str key, a non-ndarray value or a
    dtype safetensors cannot store, ValueError for the reserved key ``'__metadata__'``.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"refcnn.io.save expects a mapping str -> numpy.ndarray, got {type(state_dict).__name__}")
    tensors: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"refcnn.io.save: keys must be str, got {key!r} ({type(key).__name__})")
        if key == "__metadata__":
            raise ValueError("refcnn.io.save: '__metadata__' is reserved by the safetensors format")
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"refcnn.io.save: the value of {key!r} must be a numpy.ndarray, got {type(value).__name__} "
                "(convert it with np.asarray)"
            )
        dtype = value.dtype.newbyteorder("=")
        if dtype not in _DTYPES:
            raise TypeError(
                f"refcnn.io.save: the value of {key!r} has dtype {value.dtype}, which safetensors cannot store"
            )
        # np.asarray(order="C"), not np.ascontiguousarray, which turns a 0-d array into shape (1,)
        tensors[key] = np.asarray(value, dtype=dtype.newbyteorder("<"), order="C")
    blob = safetensors.numpy.save(tensors, metadata={_ORDER_KEY: json.dumps(list(tensors))})
    out = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


def _diagnose(name: str, blob: bytes) -> str | None:
    """Why ``blob`` is not a safetensors file, or None if its framing looks right."""
    if len(blob) >= 8:
        n = int.from_bytes(blob[:8], "little")
        if 8 + n <= len(blob) and blob[8:9] == b"{":
            try:
                header = json.loads(blob[8 : 8 + n])
                if not isinstance(header, dict):
                    raise ValueError("the header is not a JSON object")
                ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
            except (ValueError, TypeError, KeyError, IndexError) as err:
                return f"is not a valid safetensors file: its header is not valid ({err})"
            need, have = max(ends, default=0), len(blob) - 8 - n
            if have < need:
                return f"is truncated: its header describes {need} bytes of data, the file holds {have}"
            return None
    if blob[:4] == b"PK\x03\x04":
        return (
            "is a zip archive (torch.save's format, or numpy.savez), not a safetensors file; refcnn never "
            "unpickles: in PyTorch, save with safetensors.torch.save_file(model.state_dict(), path)"
        )
    if blob[:1] == b"\x80" and blob[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (
            f"is a pickle file (protocol {blob[1]}: torch.save's legacy format, or pickle.dump), not a "
            "safetensors file; it was not unpickled (refcnn never unpickles: unpickling runs arbitrary code)"
        )
    if len(blob) < 8:
        return f"is not a safetensors file: {len(blob)} bytes, shorter than the 8-byte header length"
    n = int.from_bytes(blob[:8], "little")
    if 8 + n > len(blob) and n <= _MAX_HEADER and blob[8:9] in (b"", b"{"):
        return f"is truncated: its header length says {n} bytes, the file holds {len(blob) - 8} after the length"
    return f"is not a safetensors file (it starts with {blob[:8]!r})"


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a safetensors checkpoint into ``{key: ndarray}`` (fresh writeable arrays, in the
    order they were saved when refcnn saved them).

    Raises CheckpointError (a ValueError) naming the file for a missing file, a
    directory, a truncated file, a pickle or zip file (never unpickled) or any other
    non-safetensors content, or a dtype NumPy has no type for (bfloat16).
    """
    name = os.fspath(path)
    try:
        blob = Path(name).read_bytes()
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint {name} does not exist") from err
    except IsADirectoryError as err:
        raise CheckpointError(f"checkpoint {name} is a directory, not a safetensors file") from err
    problem = _diagnose(name, blob)
    if problem is not None:
        raise CheckpointError(f"checkpoint {name} {problem}")
    try:
        tensors = safetensors.numpy.load(blob)
    except KeyError as err:  # safetensors.numpy's dtype table lacks it
        raise CheckpointError(
            f"checkpoint {name} holds a tensor of dtype {err} (safetensors' name), which NumPy has no type for; "
            "convert it in PyTorch first (e.g. bfloat16 -> float32)"
        ) from err
    except Exception as err:  # SafetensorError
        raise CheckpointError(
            f"checkpoint {name} could not be read as safetensors: {type(err).__name__}: {err}"
        ) from err
    n = int.from_bytes(blob[:8], "little")
    metadata = json.loads(blob[8 : 8 + n]).get("__metadata__") or {}
    order: Any = metadata.get(_ORDER_KEY)
    try:
        keys = json.loads(order) if isinstance(order, str) else None
    except ValueError:
        keys = None
    if not (isinstance(keys, list) and sorted(keys) == sorted(tensors)):
        keys = sorted(tensors)
    return {k: tensors[k] if tensors[k].flags.writeable else tensors[k].copy() for k in keys}
