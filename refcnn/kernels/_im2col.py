"""The layout behind the fast convolution kernels: im2col in cache-sized chunks of the batch.

A convolution becomes a matrix product once every window is a column: cols[(c, p, q), (n, i, j)]
= x_pad[n, c, i*sH + p*dH, j*sW + q*dW] (im2col), and its input gradient is the adjoint, every
column entry added back where it was read (col2im). This module builds those columns without
a Python loop over pixels or images:

- **Stride phases, images side by side.** A chunk of images is copied into a (C, sH, sW,
  Hq, Rq) buffer: the padded images lie side by side along each row, each followed by the
  pW zero columns it shares with the next (pitch Pq phase columns), split into their sH*sW
  stride phases; phase (a, b) holds padded rows a, a + sH, ... and columns b, b + sW, ....
  Kernel offset (p, q), with p*dH = u*sH + a and q*dW = v*sW + b, then reads phase (a, b)
  from (u, v) on with unit strides: the windows of a strided convolution, of every image
  of the chunk, are plain shifted views of that buffer.
- **Wide rows.** In the *wide* layout the products run over whole phase rows (Rq columns
  per output row, of which each image's W_out are kept), so an offset's view is ONE
  contiguous run of H_out*Rq values per channel, for the whole chunk; a spare zero row at
  the bottom of each phase takes the last run's overhang. The extra columns meet zeros
  in every product whose result is kept, so the layout is used only when the arrays they
  multiply are finite (inf * 0 = nan would leak); otherwise the *narrow* layout computes
  exactly the (image, row, column) grid, in short runs.
- **Chunks.** The batch is processed ``Geometry.chunk`` images at a time, chosen so that a
  chunk's columns, rows and phase buffers fill about ``CHUNK_BYTES`` (the products then run from cache and the
  copies stay in it); the loop is over chunks, never over images. All of a call's buffers
  are chunk-sized, so the extra memory stays below one full im2col matrix.
- **Scratch.** The buffers are reused across calls (:func:`scratch`): allocating them afresh
  costs a page fault per 4 KiB on every call, a large share of a small convolution's time.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CHUNK_BYTES", "Geometry", "Phases", "geometry", "scratch", "release_workspace"]

Pair = tuple[int, int]

# A chunk's buffers fill at most this much. Measured on the bench's conv shapes (one thread,
# L2 1 MiB per core): 3-4 MiB ran fastest, as smaller chunks pay more Python per chunk.
CHUNK_BYTES = 3 << 20

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


def strided(base: np.ndarray, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """A view of the C-contiguous array ``base`` from element ``offset`` on with the given
    shape and byte strides (``as_strided`` at a tenth of its cost, and bounds-checked)."""
    return np.ndarray(shape, base.dtype, base, offset * base.itemsize, strides)


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

    # Derived in __post_init__ (plain statements, not cached properties: mutmut does not
    # mutate decorated functions, and tox -e mutation must reach this arithmetic).
    Pq: int = field(init=False)  # phase columns per image
    Hq: int = field(init=False)  # rows of a phase
    wide: bool = field(init=False)  # the wide layout (whole phase rows) or the narrow one
    Wc: int = field(init=False)  # product columns per image and output row
    K: int = field(init=False)  # reduction length of one group's product
    image_bytes: int = field(init=False)  # one image's share of a chunk's buffers
    chunk: int = field(init=False)  # images per chunk
    Rq: int = field(init=False)  # length of a phase row

    def __post_init__(self) -> None:
        def put(name: str, value: int | bool) -> None:
            object.__setattr__(self, name, value)

        (kH, kW), (sH, sW), (pH, pW) = self.kernel, self.stride, self.padding
        # The images of a chunk lie side by side along each padded row, each followed by the pW
        # zero columns it shares with the next (its pitch, W + pW rounded up to a multiple of
        # sW, so that every image meets the same phases).
        put("Pq", -(-(self.W + pW) // sW))
        # A phase's rows are the padded image's, plus a spare zero row for the wide runs' overhang.
        put("Hq", -(-(self.H + 2 * pH) // sH) + 1)
        # Whole phase rows cost Pq - W_out extra columns per image in every product: worth it
        # (one contiguous run per channel) while they are at most as many as the real ones.
        put("wide", self.wide_ok and self.Pq <= 2 * self.W_out)
        put("Wc", self.Pq if self.wide else self.W_out)
        put("K", self.C // self.groups * kH * kW)  # channels per group x kernel offsets
        # One image's columns, rows and two phase buffers.
        grid = self.H_out * self.Wc
        phases = self.C * sH * sW * self.Hq * self.Pq
        put("image_bytes", (self.C * kH * kW * grid + self.C_out * grid + 2 * phases) * self.itemsize)
        im2col = self.C * kH * kW * self.N * self.H_out * self.W_out * self.itemsize
        put("chunk", images_per_chunk(self.N, self.image_bytes, im2col))
        # A chunk's images side by side, then the last one's right padding.
        put("Rq", self.chunk * self.Pq + -(-pW // sW))

    def chunks(self) -> Iterator[tuple[int, int]]:
        """(start, stop) of each chunk of the batch."""
        for start in range(0, self.N, self.chunk):
            yield start, min(start + self.chunk, self.N)

    def L(self, n: int) -> int:
        """Columns of the products for a chunk of n images: in the wide layout every (i, J)
        of whole phase rows (a full chunk's, whatever n), else every (m, i, j)."""
        return self.H_out * self.Rq if self.wide else n * self.H_out * self.W_out

    def phase_slices(self, a: int, b: int) -> tuple[slice, slice, slice, slice]:
        """Image rows/columns that land in phase (a, b), and where they land in it (columns
        within the image's own Pq)."""
        pH, pW = self.padding
        sH, sW = self.stride
        top, left = -(-(pH - a) // sH), -(-(pW - b) // sW)  # first phase row/col inside the image
        rows = range(top * sH + a - pH, self.H, sH)
        cols = range(left * sW + b - pW, self.W, sW)
        return (
            slice(rows.start, self.H, sH), slice(cols.start, self.W, sW),
            slice(top, top + len(rows)), slice(left, left + len(cols)),
        )  # fmt: skip

    def grid(self, rows: np.ndarray, n: int) -> np.ndarray:
        """The (n, C_out, H_out, W_out) view of the output grid in product rows (C_out, L):
        y[m, o, i, j] is rows[o, i, m*Pq + j] (wide) or rows[o, (m, i, j)]."""
        if not self.wide:
            return rows.reshape(self.C_out, n, self.H_out, self.W_out).transpose(1, 0, 2, 3)
        item = rows.itemsize
        strides = (self.H_out * self.Rq * item, self.Rq * item, self.Pq * item, item)
        return strided(rows, 0, (self.C_out, self.H_out, n, self.W_out), strides).transpose(2, 0, 1, 3)

    def to_rows(self, grad: np.ndarray) -> np.ndarray:
        """A chunk (n, C_out, H_out, W_out) -> scratch rows (groups, C_out/groups, L), the
        columns outside the output grid zero (so they add nothing to any product)."""
        n = grad.shape[0]
        rows = scratch("rows", (self.C_out, self.L(n)), grad.dtype)
        if self.wide:
            rows[...] = 0
        self.grid(rows, n)[...] = grad
        return rows.reshape(self.groups, self.C_out // self.groups, -1)

    def from_rows(self, rows: np.ndarray, out: np.ndarray, bias: np.ndarray | None) -> None:
        """Product rows (groups, C_out/groups, L) -> ``out`` (n, C_out, H_out, W_out) (+ bias):
        back to batch-first, the extra columns left behind and the bias added in one pass."""
        grid = self.grid(rows.reshape(self.C_out, -1), out.shape[0])
        if bias is None:
            np.copyto(out, grid)
        else:
            np.add(grid, bias[:, None, None], out=out)


def images_per_chunk(N: int, image_bytes: int, im2col_bytes: int) -> int:
    """The batch of N split evenly into as few chunks as keep each chunk's buffers (image_bytes
    per image) within CHUNK_BYTES and within 3/4 of the batch's full im2col matrix (so that a
    call's extra memory, temporaries included, stays below that matrix), at least one image each."""
    most = max(1, min(CHUNK_BYTES, 3 * im2col_bytes // 4) // image_bytes)
    count = max(1, -(-N // most))
    return max(1, -(-N // count))


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


def _offsets(geo: Geometry) -> tuple[dict[tuple[int, int], int], tuple[int, ...], tuple[int, ...]]:
    """Where each kernel offset's view starts in a channel's block of the phase buffer, and
    the views' grid shape and element strides."""
    sH, sW = geo.stride
    R, block = geo.Rq, sH * sW * geo.Hq * geo.Rq
    starts = {}
    for p in range(geo.kernel[0]):
        for q in range(geo.kernel[1]):
            (u, a), (v, b) = divmod(p * geo.dilation[0], sH), divmod(q * geo.dilation[1], sW)
            starts[p, q] = ((a * sW + b) * geo.Hq + u) * R + v
    # The last element each view reads lies inside the channel's block (the spare row takes
    # the wide runs' overhang).
    if geo.wide:  # an offset's view: one contiguous run of H_out * Rq per channel
        assert max(starts.values()) + geo.H_out * R <= block, geo
        return starts, (geo.H_out * R,), (1,)
    # narrow: (chunk, H_out, W_out), image m's row i starting at m*Pq of phase row i
    assert max(starts.values()) + (geo.H_out - 1) * R + (geo.chunk - 1) * geo.Pq + geo.W_out <= block, geo
    return starts, (geo.chunk, geo.H_out, geo.W_out), (geo.Pq, R, 1)


# Computed once per geometry, its chunk size included. (Wrapped here rather than decorated:
# mutmut does not mutate decorated functions.)
_offsets_once = functools.lru_cache(maxsize=256)(_offsets)


class Phases:
    """A chunk's stride-phase buffer (C, sH, sW, Hq, Rq) and the view each kernel offset meets.

    ``load`` copies a chunk of images in (the padding stays zero), ``im2col`` copies the
    offsets' views into the columns (one copy for the whole chunk when the stride is 1: the
    offsets are then one more pair of strides of a single view), ``col2im_add`` adds columns
    back (one add per offset: their views overlap), ``store`` copies the images out. A chunk
    smaller than ``geo.chunk`` (the last) leaves the slots after its images stale: in the
    wide layout their columns are computed and discarded (their rows are zero)."""

    def __init__(self, role: str, geo: Geometry, dtype: np.dtype) -> None:
        self.geo = geo
        self.buf = scratch(role, (geo.C, *geo.stride, geo.Hq, geo.Rq), dtype)
        self.buf[...] = 0
        self.starts, self.grid_shape, grid_steps = _offsets_once(geo)
        item = self.buf.itemsize
        self.grid_strides = tuple(step * item for step in grid_steps)
        self.whole: np.ndarray | None = None
        if geo.stride == (1, 1):  # start = p*dH*Rq + q*dW: the offsets are two more strides
            offsets = (geo.dilation[0] * geo.Rq * item, geo.dilation[1] * item)
            shape = (geo.C, *geo.kernel, *self.grid_shape)
            self.whole = strided(self.buf, 0, shape, (self.buf.strides[0], *offsets, *self.grid_strides))
        # Kernel offset (p, q) -> its (C, *grid) view of the buffer.
        self.views: dict[tuple[int, int], np.ndarray]
        if self.whole is not None:
            self.views = {pq: self.whole[:, pq[0], pq[1]] for pq in self.starts}
        else:
            shape, strides = (geo.C, *self.grid_shape), (self.buf.strides[0], *self.grid_strides)
            self.views = {pq: strided(self.buf, start, shape, strides) for pq, start in self.starts.items()}

    def _images(self, a: int, b: int, phase_rows: slice) -> np.ndarray:
        """Phase (a, b)'s rows as (C, rows, chunk, Pq): image m's columns apart."""
        geo, item = self.geo, self.buf.itemsize
        rows = len(range(geo.Hq)[phase_rows])
        offset = ((a * geo.stride[1] + b) * geo.Hq + (phase_rows.start or 0)) * geo.Rq
        strides = (self.buf.strides[0], geo.Rq * item, geo.Pq * item, item)
        return strided(self.buf, offset, (geo.C, rows, geo.chunk, geo.Pq), strides)

    def load(self, image: np.ndarray) -> None:
        """Copy a chunk (n, C, H, W) of images into the buffer's first n slots."""
        n = image.shape[0]
        for a in range(self.geo.stride[0]):
            for b in range(self.geo.stride[1]):
                rows, cols, phase_rows, phase_cols = self.geo.phase_slices(a, b)
                self._images(a, b, phase_rows)[:, :, :n, phase_cols] = image[:, :, rows, cols].transpose(1, 2, 0, 3)

    def store(self, out: np.ndarray) -> None:
        """The adjoint of load: the buffer's first n images into ``out`` (n, C, H, W)."""
        n = out.shape[0]
        for a in range(self.geo.stride[0]):
            for b in range(self.geo.stride[1]):
                rows, cols, phase_rows, phase_cols = self.geo.phase_slices(a, b)
                out[:, :, rows, cols] = self._images(a, b, phase_rows)[:, :, :n, phase_cols].transpose(2, 0, 1, 3)

    def im2col(self, n: int) -> np.ndarray:
        """Scratch cols (groups, K, L) of the chunk's first n images: cols[g, (c, p, q), col]
        = x_pad[m, g*Cg + c, i*sH + p*dH, j*sW + q*dW] for the column of (m, i, j)."""
        geo = self.geo
        kH, kW = geo.kernel
        wide = geo.wide
        shape = (geo.C, kH, kW, geo.H_out * geo.Rq) if wide else (geo.C, kH, kW, n, geo.H_out, geo.W_out)
        cols = scratch("cols", shape, self.buf.dtype)
        if self.whole is not None:
            np.copyto(cols, self.whole if wide else self.whole[:, :, :, :n])
        else:
            for (p, q), view in self.views.items():
                cols[:, p, q] = view if wide else view[:, :n]
        return cols.reshape(geo.groups, geo.K, geo.L(n))

    def col2im_add(self, dcols: np.ndarray, n: int) -> None:
        """The adjoint of im2col, into a zeroed buffer: every entry of dcols (groups, K, L)
        added where im2col read it."""
        geo = self.geo
        self.buf[...] = 0
        parts = dcols.reshape(geo.C, *geo.kernel, -1)
        for (p, q), view in self.views.items():
            if geo.wide:
                view += parts[:, p, q]
            else:
                view[:, :n] += parts[:, p, q].reshape(geo.C, n, geo.H_out, geo.W_out)
