"""The fast conv kernels' scratch memory: what ``release_workspace`` promises (the memory the
buffers held is given back; a thread with nothing to release is fine), and how many images a
chunk holds. Mutation testing (tox -e mutation) found that no test checked the release frees
anything (a release that popped the wrong key passed every test), nor that a chunk holds a
single image when one image's buffers fill the budget (at least two passed: chunking changes
memory, never values)."""

from __future__ import annotations

import threading
import tracemalloc
import weakref

import numpy as np
import pytest

from refcnn import kernels
from refcnn.kernels._im2col import CHUNK_BYTES, images_per_chunk, scratch
from refcnn.kernels.conv import release_workspace


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
