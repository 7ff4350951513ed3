"""The fast conv kernels' scratch memory: what ``release_workspace`` promises (the memory the
buffers held is given back; a thread with nothing to release is fine), and how many images a
chunk holds. Mutation testing (tox -e mutation) found that no test checked the release frees
anything (a release that popped the wrong key passed every test), nor that a chunk holds a
single image when one image's buffers fill the budget (at least two passed: chunking changes
memory, never values), nor the stride-phase buffer's height (a spare row too many), the single
view at stride 1, when the wide layout applies, or what one image's buffers take: each changes
memory or speed, never values."""

from __future__ import annotations

import threading
import tracemalloc
import weakref

import numpy as np
import pytest

from refcnn import kernels
from refcnn.kernels._im2col import CHUNK_BYTES, Phases, geometry, images_per_chunk, scratch
from refcnn.kernels.conv import conv_output_size, release_workspace


def test_release_workspace_drops_the_buffers_scratch_handed_out():
    release_workspace()
    view = scratch("cols", (3, 5), np.dtype(np.float64))
    owner = weakref.ref(view.base)  # the buffer the workspace keeps for the role "cols"
    del view
    assert owner() is not None, "scratch no longer keeps its buffer between calls"
    release_workspace()
    assert owner() is None, "release_workspace left the scratch buffer alive"


def test_release_workspace_gives_back_the_fast_conv_scratch_memory():
    # After a fast conv2d forward and backward, the scratch buffers are the memory still held;
    # releasing them returns at least the column matrix of one image (C*kh*kw*Ho*Wo values).
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 21, 17)), rng.standard_normal((4, 3, 3, 5))
    k = kernels.get("conv2d", "fast")
    config = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 1), "groups": 1}
    release_workspace()
    tracemalloc.start()
    try:
        y, ctx = k.forward(x, w, None, **config)
        grads = k.backward(np.ones_like(y), ctx)
        del y, ctx, grads
        held = tracemalloc.get_traced_memory()[0]
        release_workspace()
        freed = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    Ho, Wo = (21 + 2 - 3) // 2 + 1, 17 + 4 - 5 + 1
    one_image_cols = 3 * 3 * 5 * Ho * Wo * 8
    assert freed >= one_image_cols, f"release_workspace freed {freed} bytes, expected >= {one_image_cols}"


def test_release_workspace_with_nothing_to_release_is_a_no_op():
    release_workspace()
    release_workspace()  # twice in a row: nothing left, no error
    errors = []

    def fresh_thread():  # a thread that never ran a conv has no workspace
        try:
            release_workspace()
        except Exception as e:  # reported by the assert below
            errors.append(e)

    t = threading.Thread(target=fresh_thread)
    t.start()
    t.join()
    assert errors == []


def test_release_workspace_is_per_thread():
    # releasing in one thread leaves another thread's buffers alone (the workspace is thread-local)
    view = scratch("rows", (4, 2), np.dtype(np.float32))
    owner = weakref.ref(view.base)
    del view
    t = threading.Thread(target=release_workspace)
    t.start()
    t.join()
    assert owner() is not None, "a release in another thread freed this thread's buffer"
    release_workspace()
    assert owner() is None


@pytest.mark.parametrize(
    ("N", "image_bytes", "im2col_bytes", "want"),
    [
        (4, CHUNK_BYTES + 1, 10**12, 1),  # one image past the budget: one per chunk, never more
        (4, 100, 120, 1),  # one image past 3/4 of the whole im2col matrix
        (10, CHUNK_BYTES // 4, 10**12, 4),  # 4 fit: 3 chunks, split evenly as 4, 3, 3
        (10, 1, 10**12, 10),  # everything fits: one chunk
        (20, 10, 160, 10),  # 3/4 of the im2col matrix holds 12 images: 2 chunks of 10
        (0, 1, 0, 1),  # an empty batch: one (empty) chunk
    ],
    ids=[
        "image-past-budget",
        "image-past-im2col",
        "even-split-10-by-4",
        "all-fit",
        "im2col-three-quarters",
        "empty-batch",
    ],
)
def test_images_per_chunk(N, image_bytes, im2col_bytes, want):
    got = images_per_chunk(N, image_bytes, im2col_bytes)
    assert got == want, f"images_per_chunk({N}, {image_bytes}, {im2col_bytes}) = {got}, want {want}"


# ---- the stride-phase buffer: as large as its derivation says, one view at stride 1 -----------
# (image, weight shape, stride, padding, dilation, groups); pH >= sH somewhere, where a buffer
# one phase row too tall would otherwise go unseen: it changes memory, never values
GEOMETRIES = {
    "stride-2x1-pad-2x1": ((2, 3, 9, 7), (4, 3, 3, 5), (2, 1), (2, 1), (1, 1), 1),
    "stride-1-pad-1x2": ((1, 2, 8, 11), (2, 2, 3, 3), (1, 1), (1, 2), (1, 1), 1),
    "stride-3x2-pad-4x0-dilated-grouped": ((3, 2, 10, 6), (2, 1, 2, 3), (3, 2), (4, 0), (1, 2), 2),
    "stride-1-dilated-grouped": ((2, 4, 7, 12), (6, 2, 2, 3), (1, 1), (3, 1), (2, 1), 2),
}


def _geometry(image, wshape, stride, padding=(0, 0), dilation=(1, 1), groups=1, *zero_times):
    sizes = zip(image[2:], wshape[2:], stride, padding, dilation, strict=True)
    out_hw = tuple(conv_output_size(*axis) for axis in sizes)
    return geometry(image, np.zeros(wshape), out_hw, stride, padding, dilation, groups, *zero_times)


@pytest.fixture(autouse=True)
def _no_scratch_left():
    yield
    release_workspace()  # the buffers Phases took for these tests


@pytest.mark.parametrize("case", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_a_phase_holds_the_padded_rows_and_one_spare_row(case):
    (_, C, H, _), _, (sH, sW), (pH, _), _, _ = case
    geo = _geometry(*case)
    padded = H + 2 * pH
    assert sH * (geo.Hq - 1) >= padded, f"Hq = {geo.Hq} phase rows of stride {sH} miss padded rows ({padded})"
    assert sH * (geo.Hq - 2) < padded, f"Hq = {geo.Hq}: more than one spare phase row past {padded} padded rows"
    buf = Phases("test-phases", geo, np.dtype(np.float64)).buf
    assert buf.shape == (C, sH, sW, geo.Hq, geo.Rq)


@pytest.mark.parametrize("case", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_stride_1_reads_every_kernel_offset_through_one_view(case):
    # im2col is one copy for the whole chunk at stride 1: each offset's view is a slice of it
    phases = Phases("test-phases", _geometry(*case), np.dtype(np.float64))
    if case[2] == (1, 1):
        assert phases.whole is not None, "stride 1 without the single view: one copy per kernel offset"
        assert all(v.base is phases.whole or np.shares_memory(v, phases.whole) for v in phases.views.values())
    else:
        assert phases.whole is None


@pytest.mark.parametrize(
    ("W", "kW", "finite", "wide"),
    [(4, 3, True, True), (3, 3, True, False), (9, 3, True, True), (9, 3, False, False)],
    ids=["extra-equal-to-real-columns", "extra-past-real-columns", "few-extra-columns", "inf-meets-extra-columns"],
)
def test_the_wide_layout_is_used_while_its_extra_columns_are_at_most_the_real_ones(W, kW, finite, wide):
    # stride 1, no padding: a phase row is the image row (Pq = W), the output row W - kW + 1 long;
    # the wide layout's extra zero columns meet the arrays given last, so an inf among them rules it out
    times = np.array([1.0, np.inf if not finite else 2.0])
    geo = _geometry((2, 3, 5, W), (4, 3, 2, kW), (1, 1), (0, 0), (1, 1), 1, times)
    assert (geo.Pq, geo.W_out) == (W, W - kW + 1)
    assert geo.wide == wide, f"Pq = {geo.Pq}, W_out = {geo.W_out}, finite = {finite}: wide is {geo.wide}"


@pytest.mark.parametrize(
    ("W", "kW", "stride", "wide"),
    [(4, 3, (1, 1), True), (9, 3, (2, 1), True), (3, 3, (1, 1), False), (7, 6, (1, 3), False)],
    ids=["wide-stride-1", "wide-stride-2x1", "narrow-stride-1", "narrow-stride-1x3"],
)
def test_image_bytes_is_what_one_images_buffers_take(W, kW, stride, wide):
    # the chunk size rests on image_bytes: one image's columns, product rows and two phase
    # buffers (no right padding, so a chunk of one image has no columns past its own)
    geo = _geometry((1, 3, 7, W), (4, 3, 2, kW), stride)
    assert (geo.chunk, geo.wide) == (1, wide)
    phases = Phases("test-phases", geo, np.dtype(np.float64))
    cols = phases.im2col(1)
    rows = geo.to_rows(np.zeros((1, 4, geo.H_out, geo.W_out)))
    taken = cols.nbytes + rows.nbytes + 2 * phases.buf.nbytes
    assert geo.image_bytes == taken, f"wide={geo.wide}: image_bytes {geo.image_bytes}, the buffers take {taken}"
