"""Checkpoints as safetensors files: ``save(obj, path)`` / ``load(path)``.

A safetensors file is an 8-byte little-endian header length, a JSON header (each
tensor's dtype, shape and byte range, plus string metadata) and the raw little-endian data.
Nothing in it can run code, and nothing here ever unpickles: a pickle (``torch.save``'s
legacy format) or a zip archive (``torch.save``'s default format, ``numpy.savez``) is
rejected with an error that says what the file is.

Two kinds of content:

* A model's ``state_dict()`` (a flat mapping str -> ndarray) is stored as plain tensors
  under its own keys, so it loads in PyTorch as is::

      model.load_state_dict(safetensors.torch.load_file("model.safetensors"))

  and a PyTorch one saved with ``safetensors.torch.save_file`` loads here (dtypes NumPy has).
* Anything else ``torch.save`` would hold for a checkpoint: nested dicts, lists and tuples
  of arrays, numbers, strings, bools and None (a model's, an optimizer's and a scheduler's
  ``state_dict()``, the epoch, a generator's state). Each array becomes a tensor named by
  its path (``optimizer/state/0/momentum_buffer``); the structure, with every other value,
  is JSON in the header metadata (key ``refcnn.tree``). ``load`` rebuilds it: dict keys keep
  their type (an optimizer's int parameter indices stay ints), tuples stay tuples, NumPy
  scalars come back as NumPy scalars of their dtype, floats exactly (nan and inf included).
"""

from __future__ import annotations

import json
import math
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
_ORDER_KEY = "refcnn.keys"  # header metadata: a flat dict's keys in the order they were saved
_TREE_KEY = "refcnn.tree"  # header metadata: the structure of anything else (see the module docstring)
_MAX_HEADER = 100_000_000  # safetensors' own limit on the header length


class CheckpointError(ValueError):
    """A file is not a checkpoint refcnn can load (missing, truncated, not safetensors)."""


def _tensor(value: np.ndarray, where: str) -> np.ndarray:
    """``value`` as safetensors stores it: C-contiguous little-endian, of a dtype it has."""
    dtype = value.dtype.newbyteorder("=")
    if dtype not in _DTYPES:
        raise TypeError(f"refcnn.io.save: the value of {where} has dtype {value.dtype}, which safetensors cannot store")
    # np.asarray(order="C"), not np.ascontiguousarray, which turns a 0-d array into shape (1,)
    return np.asarray(value, dtype=dtype.newbyteorder("<"), order="C")


def _is_flat(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


class _Encoder:
    """Turns a nested object into JSON-able nodes and a table of tensors.

    Nodes: a str, int, bool or None stands for itself; a finite float too; every other
    value is an object with one key: ``{"tensor": name}`` (an array), ``{"scalar": name}`` (a
    NumPy scalar, stored as a 0-d tensor), ``{"float": "nan"|"inf"|"-inf"}``, ``{"list": [...]}``,
    ``{"tuple": [...]}``, ``{"dict": [[key, node], ...]}`` (keys: str, int, float, bool, None)."""

    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def _name(self, path: str) -> str:
        name, k = path or "<root>", 1
        while name in self.tensors or name == "__metadata__":
            k += 1
            name = f"{path}#{k}"
        return name

    def encode(self, value: Any, path: str) -> Any:
        where = repr(path) if path else "the object"
        if isinstance(value, np.ndarray):
            name = self._name(path)
            self.tensors[name] = _tensor(value, where)
            return {"tensor": name}
        if isinstance(value, np.generic):
            name = self._name(path)
            self.tensors[name] = _tensor(np.asarray(value), where)
            return {"scalar": name}
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, (list, tuple)):
            kind = "list" if isinstance(value, list) else "tuple"
            return {kind: [self.encode(v, f"{path}/{i}" if path else str(i)) for i, v in enumerate(value)]}
        if isinstance(value, Mapping):
            items = []
            for key, v in value.items():
                if isinstance(key, np.integer):
                    key = int(key)
                if not (key is None or isinstance(key, (str, int, float, bool))):
                    raise TypeError(
                        f"refcnn.io.save: dict keys must be str, int, float, bool or None, got {key!r} "
                        f"({type(key).__name__}) in {where}"
                    )
                if isinstance(key, float) and not math.isfinite(key):
                    raise TypeError(f"refcnn.io.save: dict key {key!r} in {where} is not a finite number")
                items.append([key, self.encode(v, f"{path}/{key}" if path else str(key))])
            return {"dict": items}
        raise TypeError(
            f"refcnn.io.save: cannot store {where}, a {type(value).__name__}: a checkpoint holds dicts, lists and "
            "tuples of numpy arrays, numbers, strings, bools and None"
        )


def save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` to ``path`` as a safetensors file, never as a pickle.

    ``obj`` is a model's ``state_dict()`` (str -> numpy.ndarray: plain tensors under its keys,
    which ``safetensors.torch.load_file`` reads as is) or a checkpoint of nested dicts,
    lists and tuples of arrays, numbers, strings, bools and None (see the module docstring).
    Arrays are stored C-contiguous, little-endian, with their dtype and shape (0-d arrays
    such as BatchNorm's ``num_batches_tracked`` included). Keys keep their order. The file is
    written to a temporary name and moved into place, so an interrupted save never leaves
    a half-written checkpoint. Raises TypeError for a value or key it cannot store (naming
    where it is), ValueError for a flat dict's reserved key ``'__metadata__'``.
    """
    if _is_flat(obj):
        if "__metadata__" in obj:
            raise ValueError("refcnn.io.save: '__metadata__' is reserved by the safetensors format")
        tensors = {key: _tensor(value, repr(key)) for key, value in obj.items()}
        metadata = {_ORDER_KEY: json.dumps(list(tensors))}
    else:
        encoder = _Encoder()
        tree = encoder.encode(obj, "")
        tensors = encoder.tensors
        metadata = {_TREE_KEY: json.dumps(tree, allow_nan=False)}
    blob = safetensors.numpy.save(tensors, metadata=metadata)
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


def _decode(node: Any, tensors: dict[str, np.ndarray], used: set[str]) -> Any:
    """The value a node of :class:`_Encoder` stands for; ValueError for anything else."""
    if node is None or isinstance(node, (str, bool, int, float)):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((kind, body),) = node.items()
        if kind in ("tensor", "scalar") and isinstance(body, str) and body in tensors:
            used.add(body)
            return tensors[body] if kind == "tensor" else tensors[body][()]
        if kind == "float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if kind in ("list", "tuple") and isinstance(body, list):
            items = [_decode(v, tensors, used) for v in body]
            return items if kind == "list" else tuple(items)
        if kind == "dict" and isinstance(body, list) and all(isinstance(kv, list) and len(kv) == 2 for kv in body):
            out = {}
            for key, value in body:
                if not (key is None or isinstance(key, (str, int, float, bool))):
                    raise ValueError(f"a dict key {key!r} is not a JSON scalar")
                out[key] = _decode(value, tensors, used)
            return out
    raise ValueError(f"unknown node {json.dumps(node)[:80]}")


def load(path: str | os.PathLike[str]) -> Any:
    """Read a checkpoint written by :func:`save` (or any safetensors file).

    A flat file gives ``{key: ndarray}`` (fresh writeable arrays, in the order they were
    saved when refcnn saved them); a nested checkpoint gives back the object saved, rebuilt
    from the header's structure. Everything is read and checked before anything is returned.

    Raises CheckpointError (a ValueError) naming the file for a missing file, a
    directory, a truncated file, a pickle or zip file (never unpickled), any other
    non-safetensors content, a damaged structure, or a dtype NumPy has no type for (bfloat16).
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
    tensors = {k: v if v.flags.writeable else v.copy() for k, v in tensors.items()}
    n = int.from_bytes(blob[:8], "little")
    metadata = json.loads(blob[8 : 8 + n]).get("__metadata__") or {}
    tree: Any = metadata.get(_TREE_KEY)
    if tree is not None:
        used: set[str] = set()
        try:
            obj = _decode(json.loads(tree), tensors, used)
        except (ValueError, TypeError, RecursionError) as err:
            raise CheckpointError(f"checkpoint {name} has a damaged structure in its header: {err}") from err
        if used != set(tensors):
            raise CheckpointError(
                f"checkpoint {name} has a damaged structure in its header: tensors "
                f"{sorted(set(tensors) - used)[:5]} are not part of it"
            )
        return obj
    order: Any = metadata.get(_ORDER_KEY)
    try:
        keys = json.loads(order) if isinstance(order, str) else None
    except ValueError:
        keys = None
    if not (isinstance(keys, list) and sorted(keys) == sorted(tensors)):
        keys = sorted(tensors)
    return {k: tensors[k] for k in keys}
