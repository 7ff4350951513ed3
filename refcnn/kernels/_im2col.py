"""The layout behind the fast convolution kernels: im2col in cache-sized chunks of the batch.

A convolution becomes a matrix product once every window is a column: cols[(c, p, q), (n, i, j)]
= x_pad[n, c, i*sH + p*dH, j*sW + q*dW] (im2col), and its input gradient is the adjoint, every
column entry added back where it was read (col2im). This module builds those columns without
a Python loop over pixels or images:

- **Stride phases.** The padded image is copied into a (C, n, sH, sW, Hq, Wq) buffer, split
  into its sH*sW stride phases; phase (a, b) holds padded rows a, a + sH, ... and columns
  b, b + sW, .... Kernel offset (p, q), with p*dH = u*sH + a and q*dW = v*sW + b, then reads
  phase (a, b) from (u, v) on with unit strides: the windows of a strided convolution are
  plain shifted views of that buffer.
- **Wide rows.** In the *wide* layout each output row is computed over the whole phase row
  (Wc = Wq columns, the last Wq - W_out discarded), so an offset's view is one contiguous
  run of H_out*Wq floats per (channel, image) instead of H_out short ones; a spare zero row
  at the bottom of each phase takes the last run's overhang. The extra columns meet zeros
  in every product whose result is kept, so the layout is used only when the arrays they
  multiply are finite (inf * 0 = nan would leak); otherwise Wc = W_out.
- **Chunks.** The batch is processed ``Geometry.chunk`` images at a time, chosen so that a
  chunk's columns, rows and phase buffers fill about ``CHUNK_BYTES`` (the products then run from cache and the
  copies stay in it); the loop is over chunks, never over images. All of a call's buffers
  are chunk-sized, so the extra memory stays below one full im2col matrix.
- **Scratch.** The buffers are reused across calls (:func:`scratch`): allocating them afresh
  costs a page fault per 4 KiB on every call, a large share of a small convolution's time.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["CHUNK_BYTES", "Geometry", "Phases", "geometry", "scratch", "release_workspace"]

Pair = tuple[int, int]

# A chunk's buffers fill about this much (L2 is 1 MiB per core on the machine this was
# measured on; on the bench's conv shapes 1-2 MiB is where products and copies ran fastest).
CHUNK_BYTES = 3 << 19

_local = threading.local()


def scratch(role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A scratch array for one role in this thread, reused across calls (contents undefined).

    Roles: "image" (the phase buffer im2col reads), "grad_image" (the one col2im adds into),
    "cols" (the columns or their gradient), "rows" (a product's (C_out, L) side: its output,
    or gy). Within one call each role holds one live array at a time. Nothing in scratch
    ever escapes a kernel call: outputs are always fresh arrays."""
    buffers: dict[tuple[str, np.dtype], np.ndarray] = _local.__dict__.setdefault("buffers", {})
    size = math.prod(shape)
    buf = buffers.get((role, dtype))
    if buf is None or buf.size < size:
        buf = buffers[(role, dtype)] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def release_workspace() -> None:
    """Free the scratch buffers the fast conv kernels keep for the calling thread."""
    _local.__dict__.pop("buffers", None)


@dataclass(frozen=True)
class Geometry:
    """One call's image (N, C, H, W), padding, kernel and output grid, and its layout."""

    N: int
    C: int
    H: int
    W: int
    C_out: int
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int
    H_out: int
    W_out: int
    wide_ok: bool
    itemsize: int

    @cached_property
    def Wq(self) -> int:
        return -(-(self.W + 2 * self.padding[1]) // self.stride[1])

    @cached_property
    def Hq(self) -> int:
        return -(-(self.H + 2 * self.padding[0]) // self.stride[0]) + 1

    @cached_property
    def wide(self) -> bool:
        # Whole phase rows cost Wq - W_out extra columns in every product: worth it (long
        # contiguous copies) while they are at most as many as the real ones.
        return self.wide_ok and self.Wq <= 2 * self.W_out

    @cached_property
    def Wc(self) -> int:
        return self.Wq if self.wide else self.W_out

    @cached_property
    def K(self) -> int:
        """Reduction length of one group's product: channels per group x kernel offsets."""
        return self.C // self.groups * self.kernel[0] * self.kernel[1]

    @cached_property
    def image_bytes(self) -> int:
        """One image's share of a chunk's buffers: columns, rows and two phase buffers."""
        grid = self.H_out * self.Wc
        phases = self.C * self.stride[0] * self.stride[1] * self.Hq * self.Wq
        return (self.C * self.kernel[0] * self.kernel[1] * grid + self.C_out * grid + 2 * phases) * self.itemsize

    @cached_property
    def chunk(self) -> int:
        """Images per chunk: as many as keep a chunk's buffers within CHUNK_BYTES, at least one."""
        return max(1, min(self.N, CHUNK_BYTES // self.image_bytes))

    def chunks(self) -> Iterator[tuple[int, int]]:
        """(start, stop) of each chunk of the batch."""
        for start in range(0, self.N, self.chunk):
            yield start, min(start + self.chunk, self.N)

    def L(self, n: int) -> int:
        """Columns of the products for n images: every (n, i, j) of the (wide) output grid."""
        return n * self.H_out * self.Wc

    def phase_slices(self, a: int, b: int) -> tuple[slice, slice, slice, slice]:
        """Image rows/columns that land in phase (a, b), and where they land in it."""
        pH, pW = self.padding
        sH, sW = self.stride
        top, left = -(-(pH - a) // sH), -(-(pW - b) // sW)  # first phase row/col inside the image
        rows = range(top * sH + a - pH, self.H, sH)
        cols = range(left * sW + b - pW, self.W, sW)
        return (
            slice(rows.start, self.H, sH), slice(cols.start, self.W, sW),
            slice(top, top + len(rows)), slice(left, left + len(cols)),
        )  # fmt: skip

    def to_rows(self, grad: np.ndarray) -> np.ndarray:
        """A chunk (n, C_out, H_out, W_out) -> scratch (groups, C_out/groups, L) in the
        output grid's column order, the wide layout's extra columns zero (so they add
        nothing to any product)."""
        n = grad.shape[0]
        rows = scratch("rows", (self.C_out, n, self.H_out, self.Wc), grad.dtype)
        rows[..., self.W_out :] = 0
        rows[..., : self.W_out] = grad.transpose(1, 0, 2, 3)
        return rows.reshape(self.groups, self.C_out // self.groups, self.L(n))

    def from_rows(self, rows: np.ndarray, out: np.ndarray, bias: np.ndarray | None) -> None:
        """(groups, C_out/groups, L) -> ``out`` (n, C_out, H_out, W_out) (+ bias): the
        transpose back to batch-first, the crop of the extra columns and the bias add in
        one pass."""
        grid = rows.reshape(self.C_out, out.shape[0], self.H_out, self.Wc)[..., : self.W_out].transpose(1, 0, 2, 3)
        if bias is None:
            np.copyto(out, grid)
        else:
            np.add(grid, bias[:, None, None], out=out)


def geometry(image: tuple[int, ...], weight: np.ndarray, out_hw: tuple[int, ...], stride: Pair, padding: Pair,
             dilation: Pair, groups: int, *zero_times: np.ndarray) -> Geometry:  # fmt: skip
    """The geometry of one call. ``zero_times``: the arrays whose entries meet the zeros of the
    wide layout's extra columns in a product that is kept (gw, gx); the wide layout is used
    only if they are all finite. (Their sum is finite if they are; a false alarm from
    overflow only costs the narrow layout.)"""
    N, C, H, W = image
    wide_ok = all(math.isfinite(float(np.sum(a))) for a in zero_times)
    return Geometry(N, C, H, W, weight.shape[0], (weight.shape[2], weight.shape[3]), stride, padding, dilation,
                    groups, out_hw[0], out_hw[1], wide_ok, weight.dtype.itemsize)  # fmt: skip


class Phases:
    """A chunk-sized stride-phase buffer of the image and the view each kernel offset meets.

    ``load`` copies a chunk of the image in (the padding stays zero), ``im2col`` copies the
    offsets' views into the columns (one copy for the whole chunk when the stride is 1: the
    offsets are then one more pair of strides of a single view), ``col2im_add`` adds columns
    back (one add per offset: their views overlap), ``store`` copies the image part out."""

    def __init__(self, role: str, geo: Geometry, dtype: np.dtype) -> None:
        self.geo = geo
        sH, sW = geo.stride
        self.buf = scratch(role, (geo.C, geo.chunk, sH, sW, geo.Hq, geo.Wq), dtype)
        self.buf[...] = 0
        kH, kW = geo.kernel
        block = math.prod(self.buf.shape[2:])
        item = self.buf.itemsize
        flat = self.buf.reshape(geo.C, geo.chunk, block)
        c_stride, n_stride = self.buf.strides[:2]
        grid = (geo.H_out, geo.Wc)
        grid_strides = (geo.Wq * item, item)
        starts = {}
        for p in range(kH):
            for q in range(kW):
                (u, a), (v, b) = divmod(p * geo.dilation[0], sH), divmod(q * geo.dilation[1], sW)
                starts[p, q] = ((a * sW + b) * geo.Hq + u) * geo.Wq + v
                # The last element read lies inside the (c, n) block (the spare row takes the
                # overhang): as_strided does not check bounds, so this is checked here.
                assert starts[p, q] + (geo.H_out - 1) * geo.Wq + geo.Wc <= block, (geo, p, q)
        self.whole: np.ndarray | None = None
        if sH == 1 and sW == 1:  # start = p*dH*Wq + q*dW: the offsets are two more strides
            strides = (c_stride, geo.dilation[0] * geo.Wq * item, geo.dilation[1] * item, n_stride, *grid_strides)
            self.whole = as_strided(flat, (geo.C, kH, kW, geo.chunk, *grid), strides)
            self.views = {pq: self.whole[:, pq[0], pq[1]] for pq in starts}
        else:
            self.views = {
                pq: as_strided(flat[:, :, s:], (geo.C, geo.chunk, *grid), (c_stride, n_stride, *grid_strides))
                for pq, s in starts.items()
            }

    def load(self, image: np.ndarray) -> None:
        """Copy a chunk (n, C, H, W) of the image into the buffer's first n images."""
        n = image.shape[0]
        for a in range(self.geo.stride[0]):
            for b in range(self.geo.stride[1]):
                rows, cols, phase_rows, phase_cols = self.geo.phase_slices(a, b)
                self.buf[:, :n, a, b, phase_rows, phase_cols] = image[:, :, rows, cols].transpose(1, 0, 2, 3)

    def store(self, out: np.ndarray) -> None:
        """The adjoint of load: the image part of the buffer's first n images into ``out``."""
        n = out.shape[0]
        for a in range(self.geo.stride[0]):
            for b in range(self.geo.stride[1]):
                rows, cols, phase_rows, phase_cols = self.geo.phase_slices(a, b)
                out[:, :, rows, cols] = self.buf[:, :n, a, b, phase_rows, phase_cols].transpose(1, 0, 2, 3)

    def im2col(self, n: int) -> np.ndarray:
        """Scratch cols (groups, K, L) of the first n images: cols[g, (c, p, q), (m, i, j)]
        = x_pad[m, g*Cg + c, i*sH + p*dH, j*sW + q*dW] (c within group g)."""
        geo = self.geo
        kH, kW = geo.kernel
        cols = scratch("cols", (geo.C, kH, kW, n, geo.H_out, geo.Wc), self.buf.dtype)
        if self.whole is not None:
            np.copyto(cols, self.whole[:, :, :, :n])
        else:
            for (p, q), view in self.views.items():
                cols[:, p, q] = view[:, :n]
        return cols.reshape(geo.groups, geo.K, geo.L(n))

    def col2im_add(self, dcols: np.ndarray, n: int) -> None:
        """The adjoint of im2col, into a zeroed buffer: every entry of dcols (groups, K, L)
        added where im2col read it."""
        geo = self.geo
        self.buf[:, :n] = 0
        parts = dcols.reshape(geo.C, *geo.kernel, n, geo.H_out, geo.Wc)
        for (p, q), view in self.views.items():
            view[:, :n] += parts[:, p, q]
