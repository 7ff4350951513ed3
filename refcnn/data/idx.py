"""The IDX file format (LeCun's MNIST files), read and written without pickle.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the
array's elements in C order, big-endian::

    magic = 0x00 0x00 <type code> <ndim>
    type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64

A file may be gzip-compressed; :func:`read_idx` tells by the gzip magic bytes (1f 8b),
never by the file name. Every problem (bad magic number, unknown type code, truncated
header or body, trailing bytes, corrupt gzip stream) raises :class:`IDXError`, a
ValueError that names the file, the problem and the numbers involved.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["IDXError", "read_idx", "write_idx", "IDX_DTYPES"]

# type code -> element dtype (big-endian, as stored)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file is not a valid IDX file (or its gzip stream is corrupt)."""


def _decompress(raw: bytes, path: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        # BadGzipFile (an OSError) for a bad header/CRC/length, EOFError for a cut stream,
        # zlib.error for corrupt deflate data
        raise IDXError(f"{path}: corrupt gzip stream ({len(raw)} compressed bytes): {err}") from err


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian ndarray.

    Returns an array of the stored shape and type (uint8, int8, int16, int32, float32 or
    float64), a fresh writeable copy. Raises :class:`IDXError` naming the file for a bad
    magic number, an unknown type code, zero dimensions, a truncated header, a body
    shorter (truncated) or longer (trailing bytes) than the header's shape implies, or a
    corrupt gzip stream; ``FileNotFoundError`` if there is no such file.
    """
    name = os.fspath(path)
    raw = Path(name).read_bytes()
    data = _decompress(raw, name) if raw[:2] == _GZIP_MAGIC else raw
    if len(data) < 4:
        raise IDXError(f"{name}: {len(data)} bytes is too short for an IDX header (4-byte magic number)")
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0:
        raise IDXError(
            f"{name}: bad magic number 0x{data[:4].hex()}: an IDX file starts with two zero bytes, "
            f"then the type code and the number of dimensions"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} {dt.name}" for c, dt in IDX_DTYPES.items())
        raise IDXError(
            f"{name}: unknown IDX type code 0x{code:02X} in magic number 0x{data[:4].hex()} (known: {known})"
        )
    if ndim == 0:
        raise IDXError(f"{name}: magic number 0x{data[:4].hex()} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(
            f"{name}: truncated header: {ndim} dimensions need {header} header bytes, the file holds {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(data) - header
    if body < expected:
        raise IDXError(
            f"{name}: truncated body: shape {shape} of {dtype.name} needs {expected} bytes after the "
            f"{header}-byte header, the file holds {body}"
        )
    if body > expected:
        raise IDXError(
            f"{name}: size mismatch: {body - expected} trailing bytes after the body (shape {shape} of "
            f"{dtype.name} needs {expected} bytes after the {header}-byte header, the file holds {body})"
        )
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: str | os.PathLike[str], array: Any, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed if ``compress`` (default: the name ends
    in ``.gz``), with gzip mtime 0 so the same array always gives the same bytes.

    The dtype must be one IDX stores (uint8, int8, int16, int32, float32, float64) and the
    array must have 1 to 255 dimensions, each < 2**32. Returns the path written.
    """
    arr = np.asarray(array)
    dt = arr.dtype.newbyteorder("=")
    if dt not in _CODES:
        raise TypeError(f"write_idx: IDX stores uint8, int8, int16, int32, float32 or float64, got dtype {arr.dtype}")
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"write_idx: IDX stores arrays of 1 to 255 dimensions, got shape {arr.shape}")
    if max(arr.shape) >= 2**32:
        raise ValueError(f"write_idx: IDX dimensions must be < 2**32, got shape {arr.shape}")
    code = _CODES[dt]
    blob = (
        bytes([0, 0, code, arr.ndim])
        + np.asarray(arr.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    )
    out = Path(path)
    if compress if compress is not None else out.name.endswith(".gz"):
        blob = gzip.compress(blob, compresslevel=9, mtime=0)
    out.write_bytes(blob)
    return out
