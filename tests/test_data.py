"""refcnn.data: the IDX reader/writer, MNIST loading (files, head files, the bundled sample),
the MNIST dataset and the batch iterators."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import refcnn
from refcnn.data import (
    MNIST,
    DataLoader,
    IDXError,
    MNISTNotFoundError,
    batches,
    load_mnist,
    read_idx,
    sample_dir,
    write_idx,
)
from refcnn.data import transforms as T
from refcnn.testing import assert_close

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"real MNIST not found at {SHARED} (../shared/data/mnist)"
)


def idx_bytes(code: int, shape: tuple[int, ...], body: bytes) -> bytes:
    """An IDX file built by hand: magic 00 00 code ndim, big-endian uint32 dims, body."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


# ---- read_idx: every dtype, raw and gzip, detected by content --------------------------------
DTYPES = [
    (0x08, ">u1", [0, 1, 127, 128, 254, 255]),
    (0x09, ">i1", [-128, -1, 0, 1, 5, 127]),
    (0x0B, ">i2", [-32768, -2, 0, 3, 300, 32767]),
    (0x0C, ">i4", [-(2**31), -7, 0, 1, 65536, 2**31 - 1]),
    (0x0D, ">f4", [-1.5, 0.0, 0.25, 3.0e38, -1e-30, 7.0]),
    (0x0E, ">f8", [-1.5, 0.0, 0.1, 1e300, -2.5e-300, 7.0]),
]


@pytest.mark.parametrize("code,be,values", DTYPES, ids=[np.dtype(d[1]).name for d in DTYPES])
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_every_dtype(tmp_path, code, be, values, gz):
    body = np.asarray(values, dtype=be).tobytes()  # written by hand as big-endian
    blob = idx_bytes(code, (2, 3), body)
    path = tmp_path / "f.idx"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    got = read_idx(path)
    assert got.shape == (2, 3)
    assert got.dtype == np.dtype(be).newbyteorder("=")  # native byte order
    assert got.dtype.isnative
    np.testing.assert_array_equal(got.ravel(), np.asarray(values, dtype=be))
    assert got.flags.writeable and got.flags.c_contiguous


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    blob = idx_bytes(0x08, (3, 2), bytes(range(6)))
    (tmp_path / "raw-named.gz").write_bytes(blob)  # raw bytes under a .gz name
    (tmp_path / "gz-named-raw").write_bytes(gzip.compress(blob))  # gzip under a raw name
    expected = np.arange(6, dtype=np.uint8).reshape(3, 2)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw-named.gz"), expected)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "gz-named-raw")), expected)


def test_read_idx_one_and_four_dimensions(tmp_path):
    (tmp_path / "a").write_bytes(idx_bytes(0x08, (4,), bytes([9, 8, 7, 6])))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), [9, 8, 7, 6])
    shape = (2, 1, 3, 5)
    (tmp_path / "b").write_bytes(idx_bytes(0x0B, shape, np.arange(30, dtype=">i2").tobytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), np.arange(30).reshape(shape))
    (tmp_path / "c").write_bytes(idx_bytes(0x0D, (0, 28), b""))  # an empty array is valid
    assert read_idx(tmp_path / "c").shape == (0, 28)


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8", ">f4"])
@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"], ids=["raw", "gz"])
def test_write_idx_round_trip(tmp_path, dtype, name):
    a = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = write_idx(tmp_path / name, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    got = read_idx(path)
    assert got.dtype == a.dtype.newbyteorder("=") and got.shape == a.shape
    np.testing.assert_array_equal(got, a)


def test_write_idx_bytes_are_the_format_and_reproducible(tmp_path):
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16)
    raw = write_idx(tmp_path / "a", a).read_bytes()
    assert raw == b"\x00\x00\x0b\x02" + b"\x00\x00\x00\x02\x00\x00\x00\x03" + np.asarray(a, ">i2").tobytes()
    one = write_idx(tmp_path / "1.gz", a).read_bytes()
    two = write_idx(tmp_path / "2.gz", a, compress=True).read_bytes()
    assert one == two  # gzip mtime 0, no file name in the header
    assert one[4:8] == b"\x00\x00\x00\x00"  # the gzip header's mtime field
    assert gzip.decompress(one) == raw
    assert write_idx(tmp_path / "3.gz", a, compress=False).read_bytes() == raw


@pytest.mark.parametrize(
    "array,err,match",
    [
        (np.zeros(3, np.int64), TypeError, "got dtype int64"),
        (np.zeros(3, np.uint16), TypeError, "got dtype uint16"),
        (np.array(5, np.uint8), ValueError, r"1 to 255 dimensions, got shape \(\)"),
    ],
    ids=["int64", "uint16", "0-d"],
)
def test_write_idx_rejects(tmp_path, array, err, match):
    with pytest.raises(err, match=match):
        write_idx(tmp_path / "x", array)


# ---- read_idx: every malformed file gets an IDXError naming the file and the numbers ----------
GOOD = idx_bytes(0x08, (2, 3, 4), bytes(range(24)))


def _corrupt_gzip_crc() -> bytes:
    gz = bytearray(gzip.compress(GOOD))
    gz[-8] ^= 0xFF  # the CRC32 in the trailer
    return bytes(gz)


def _corrupt_gzip_deflate() -> bytes:
    gz = bytearray(gzip.compress(GOOD))
    gz[10:14] = b"\xff\xff\xff\xff"  # the first bytes of the deflate stream
    return bytes(gz)


BAD_FILES = [
    ("empty", b"", r"0 bytes is too short for an IDX header"),
    ("short", b"\x00\x00\x08", r"3 bytes is too short"),
    ("bad-magic", b"\x12\x34" + GOOD[2:], r"bad magic number 0x12340803"),
    ("bad-magic-text", b"P5\n28 28\n255\n" + bytes(10), r"bad magic number 0x50350a32"),
    ("unknown-type", b"\x00\x00\x0a\x03" + GOOD[4:], r"unknown IDX type code 0x0A in magic number 0x00000a03"),
    ("zero-dims", b"\x00\x00\x08\x00", r"declares 0 dimensions"),
    ("truncated-header", GOOD[:9], r"truncated header: 3 dimensions need 16 header bytes, the file holds 9"),
    (
        "truncated-body",
        GOOD[:-5],
        r"truncated body: shape \(2, 3, 4\) of uint8 needs 24 bytes after the 16-byte header, the file holds 19",
    ),
    (
        "truncated-f8-body",
        idx_bytes(0x0E, (3, 5), bytes(8 * 15 - 1)),
        r"shape \(3, 5\) of float64 needs 120 bytes .* holds 119",
    ),
    (
        "trailing-bytes",
        GOOD + b"\x00\x00",
        r"size mismatch: 2 trailing bytes after the body \(shape \(2, 3, 4\) of uint8 needs 24 bytes",
    ),
    ("gzip-cut", gzip.compress(GOOD)[:-12], r"corrupt gzip stream \(\d+ compressed bytes\)"),
    ("gzip-bad-crc", _corrupt_gzip_crc(), r"corrupt gzip stream.*CRC"),
    ("gzip-bad-deflate", _corrupt_gzip_deflate(), r"corrupt gzip stream"),
    ("gzip-magic-only", b"\x1f\x8b", r"corrupt gzip stream \(2 compressed bytes\)"),
    ("gzip-of-truncated", gzip.compress(GOOD[:-1]), r"truncated body: .* the file holds 23"),
]


@pytest.mark.parametrize("blob,match", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_read_idx_rejects_malformed(tmp_path, blob, match):
    path = tmp_path / "bad-file-idx3-ubyte"
    path.write_bytes(blob)
    with pytest.raises(IDXError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)  # names the file
    assert isinstance(info.value, ValueError)


def test_read_idx_truncated_real_mnist(tmp_path):
    # a download cut short: the sample's images, decompressed, missing their last 100 bytes
    raw = gzip.decompress((sample_dir() / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(IDXError, match=r"shape \(1000, 28, 28\) of uint8 needs 784000 bytes .* holds 783900"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "cut-stream.gz").write_bytes((sample_dir() / "t10k-images-idx3-ubyte.gz").read_bytes()[:50_000])
    with pytest.raises(IDXError, match="corrupt gzip stream"):
        read_idx(tmp_path / "cut-stream.gz")


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


def test_read_idx_never_unpickles(tmp_path):
    # a pickle is not IDX: rejected by its magic number, never loaded
    import pickle

    (tmp_path / "p").write_bytes(pickle.dumps(np.zeros(3)))
    with pytest.raises(IDXError, match="bad magic number 0x8004"):
        read_idx(tmp_path / "p")


# ---- the bundled sample ------------------------------------------------------------------------
SAMPLE_COUNTS = {
    True: [191, 220, 198, 191, 214, 180, 200, 224, 172, 210],
    False: [85, 126, 116, 107, 110, 87, 87, 99, 89, 94],
}
LO = (np.float32(0) / np.float32(255) - np.float32(0.1307)) / np.float32(0.3081)
HI = (np.float32(255) / np.float32(255) - np.float32(0.1307)) / np.float32(0.3081)


@pytest.mark.parametrize("train,n", [(True, 2000), (False, 1000)], ids=["train", "test"])
def test_sample_loads(train, n):
    x, y = load_mnist(sample_dir(), train=train)
    assert x.shape == (n, 1, 28, 28) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.min() == LO and x.max() == HI  # background pixels 0 and some saturated 255
    assert np.bincount(y, minlength=10).tolist() == SAMPLE_COUNTS[train]
    # the values are the 256 normalised grey levels, nothing else
    levels = (np.arange(256, dtype=np.float32) / np.float32(255) - np.float32(0.1307)) / np.float32(0.3081)
    assert np.isin(x, levels).all()


def test_sample_files_are_official_names_and_documented():
    names = sorted(p.name for p in sample_dir().glob("*.gz"))
    assert names == sorted(
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ]
    )
    import hashlib

    readme = (sample_dir() / "README.md").read_text()
    assert "CC BY-SA 3.0" in readme and "LeCun" in readme
    for name in names:  # the README's md5s are the files'
        assert hashlib.md5((sample_dir() / name).read_bytes()).hexdigest() in readme
        assert hashlib.md5(gzip.decompress((sample_dir() / name).read_bytes())).hexdigest() in readme


@needs_shared
@pytest.mark.parametrize(
    "sample,shared,n",
    [
        ("train-images-idx3-ubyte.gz", "train-head6309-images-idx3-ubyte.gz", 2000),
        ("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", 2000),
        ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", 1000),
        ("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 1000),
    ],
    ids=["train-images", "train-labels", "test-images", "test-labels"],
)
def test_sample_is_the_head_of_real_mnist(sample, shared, n):
    mine, real = read_idx(sample_dir() / sample), read_idx(SHARED / shared)
    assert mine.shape == (n, *real.shape[1:]) and mine.dtype == real.dtype == np.uint8
    np.testing.assert_array_equal(mine, real[:n])


@needs_shared
def test_shared_mnist_loads_with_head_files():
    x, y = load_mnist(SHARED, train=True)
    assert x.shape == (6309, 1, 28, 28) and y.shape == (6309,)
    np.testing.assert_array_equal(y, read_idx(SHARED / "train-labels-idx1-ubyte.gz")[:6309])
    xt, yt = load_mnist(SHARED, train=False)
    assert xt.shape == (10000, 1, 28, 28) and np.bincount(yt).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


# ---- load_mnist: normalisation and which files it reads ---------------------------------------
def fake_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def make_dir(root: Path, files: dict[str, np.ndarray]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, a in files.items():
        write_idx(root / name, a)
    return root


def test_load_mnist_normalises_like_totensor_normalize(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    images[0, 0, :3] = [0, 128, 255]
    images[1, 27, 5] = 1
    make_dir(tmp_path, {"t10k-images-idx3-ubyte": images, "t10k-labels-idx1-ubyte": np.array([7, 0, 9], np.uint8)})
    x, y = load_mnist(tmp_path, train=False)
    # ToTensor: float32 x / 255; Normalize: (t - mean) / std, each step rounded to float32
    f = np.float32
    for v, got in [(0, x[0, 0, 0, 0]), (128, x[0, 0, 0, 1]), (255, x[0, 0, 0, 2]), (1, x[1, 0, 27, 5])]:
        assert got == (f(v) / f(255) - f(0.1307)) / f(0.3081)
    # and within the policy's bound of the float64 formula: 3 rounded steps, S = (v/255 + mean) / std
    g = np.array([0, 128, 255], dtype=np.float64)
    assert_close(x[0, 0, 0, :3], (g / 255 - 0.1307) / 0.3081, n=3, S=(g / 255 + 0.1307) / 0.3081, dtype=np.float32)
    assert y.tolist() == [7, 0, 9] and y.dtype == np.int64


def test_load_mnist_prefers_raw_then_gz(tmp_path):
    a, b = fake_images(4, 1), fake_images(4, 2)
    labels = np.array([1, 2, 3, 4], np.uint8)
    make_dir(
        tmp_path, {"t10k-images-idx3-ubyte": a, "t10k-images-idx3-ubyte.gz": b, "t10k-labels-idx1-ubyte.gz": labels}
    )
    np.testing.assert_array_equal(MNIST(tmp_path, train=False).data, a)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    np.testing.assert_array_equal(MNIST(tmp_path, train=False).data, b)


def test_head_file_with_its_own_labels(tmp_path):
    imgs = fake_images(5)
    make_dir(
        tmp_path,
        {"train-head5-images-idx3-ubyte.gz": imgs, "train-head5-labels-idx1-ubyte.gz": np.arange(5, dtype=np.uint8)},
    )
    ds = MNIST(tmp_path)
    np.testing.assert_array_equal(ds.data, imgs)
    assert ds.targets.tolist() == [0, 1, 2, 3, 4]


def test_head_file_truncates_the_official_labels(tmp_path):
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6], np.uint8)
    make_dir(tmp_path, {"train-head5-images-idx3-ubyte": fake_images(5), "train-labels-idx1-ubyte.gz": labels})
    x, y = load_mnist(tmp_path)
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [3, 1, 4, 1, 5]


def test_largest_head_wins_and_official_beats_heads(tmp_path):
    labels = np.arange(10, dtype=np.uint8) % 10
    make_dir(tmp_path, {"train-head3-images-idx3-ubyte.gz": fake_images(3), "train-head6-images-idx3-ubyte.gz": fake_images(6),
                        "train-labels-idx1-ubyte.gz": labels})  # fmt: skip
    assert len(MNIST(tmp_path)) == 6
    make_dir(tmp_path, {"train-images-idx3-ubyte.gz": fake_images(10)})
    assert len(MNIST(tmp_path)) == 10


LOAD_ERRORS = [
    ("nothing", {}, MNISTNotFoundError, r"MNIST training images not found in .*train-images-idx3-ubyte.*download=True"),
    ("images-only", {"train-images-idx3-ubyte.gz": fake_images(4)}, MNISTNotFoundError, r"found train-images-idx3-ubyte.gz but none of"),
    ("head-no-labels", {"train-head4-images-idx3-ubyte.gz": fake_images(4)}, MNISTNotFoundError, r"neither its labels"),
    ("count-mismatch", {"train-images-idx3-ubyte.gz": fake_images(4), "train-labels-idx1-ubyte.gz": np.zeros(5, np.uint8)},
     ValueError, r"holds 4 images but train-labels-idx1-ubyte.gz holds 5 labels"),
    ("head-count-lies", {"train-head5-images-idx3-ubyte.gz": fake_images(4), "train-labels-idx1-ubyte.gz": np.zeros(9, np.uint8)},
     ValueError, r"a head file named for 5 images holds 4"),
    ("head-too-few-labels", {"train-head5-images-idx3-ubyte.gz": fake_images(5), "train-labels-idx1-ubyte.gz": np.zeros(3, np.uint8)},
     ValueError, r"3 labels for the 5 images of train-head5-images-idx3-ubyte.gz"),
    ("head-own-labels-mismatch", {"train-head5-images-idx3-ubyte.gz": fake_images(5), "train-head5-labels-idx1-ubyte.gz": np.zeros(3, np.uint8)},
     ValueError, r"3 labels for the 5 images"),
    ("label-range", {"train-images-idx3-ubyte.gz": fake_images(2), "train-labels-idx1-ubyte.gz": np.array([3, 10], np.uint8)},
     ValueError, r"labels must be 0..9, found 10"),
    ("image-shape", {"train-images-idx3-ubyte.gz": np.zeros((2, 28, 27), np.uint8), "train-labels-idx1-ubyte.gz": np.zeros(2, np.uint8)},
     ValueError, r"uint8 of shape \(N, 28, 28\), got uint8 \(2, 28, 27\)"),
    ("image-dtype", {"train-images-idx3-ubyte.gz": np.zeros((2, 28, 28), np.float32), "train-labels-idx1-ubyte.gz": np.zeros(2, np.uint8)},
     ValueError, r"got float32 \(2, 28, 28\)"),
    ("label-shape", {"train-images-idx3-ubyte.gz": fake_images(2), "train-labels-idx1-ubyte.gz": np.zeros((2, 1), np.uint8)},
     ValueError, r"labels must be uint8 of shape \(N,\), got uint8 \(2, 1\)"),
]  # fmt: skip


@pytest.mark.parametrize("files,err,match", [e[1:] for e in LOAD_ERRORS], ids=[e[0] for e in LOAD_ERRORS])
def test_load_mnist_errors(tmp_path, files, err, match):
    make_dir(tmp_path, files)
    with pytest.raises(err, match=match):
        load_mnist(tmp_path)
    with pytest.raises(err, match=match):
        MNIST(tmp_path)


def test_load_mnist_test_split_never_uses_heads(tmp_path):
    make_dir(
        tmp_path,
        {"train-head5-images-idx3-ubyte.gz": fake_images(5), "train-head5-labels-idx1-ubyte.gz": np.zeros(5, np.uint8)},
    )
    with pytest.raises(MNISTNotFoundError, match=r"MNIST test images not found .*t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, train=False)


def test_load_mnist_corrupt_file_names_it(tmp_path):
    make_dir(tmp_path, {"t10k-labels-idx1-ubyte": np.zeros(2, np.uint8)})
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(GOOD)[:-3])
    with pytest.raises(IDXError, match=r"t10k-images-idx3-ubyte.gz: corrupt gzip stream"):
        load_mnist(tmp_path, train=False)


# ---- the MNIST dataset -------------------------------------------------------------------------
def test_mnist_dataset_like_torchvision():
    ds = MNIST(sample_dir(), train=False)
    assert len(ds) == 1000
    assert ds.data.shape == (1000, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets.shape == (1000,) and ds.targets.dtype == np.int64
    img, label = ds[3]
    assert img.dtype == np.uint8 and img.shape == (28, 28) and type(label) is int
    np.testing.assert_array_equal(img, ds.data[3])
    assert (
        repr(ds) == f"Dataset MNIST\n    Number of datapoints: 1000\n    Root location: {sample_dir()}\n    Split: Test"
    )
    assert len(ds.classes) == 10 and ds.classes[7] == "7 - seven"


def test_mnist_transforms_give_load_mnist():
    pipe = T.Compose([T.ToFloat(), T.Normalize((0.1307,), (0.3081,))])
    ds = MNIST(sample_dir(), train=True, transform=pipe, target_transform=lambda t: t + 100)
    x, y = load_mnist(sample_dir(), train=True)
    img, label = ds[1999]
    assert img.shape == (1, 28, 28) and img.dtype == np.float32
    np.testing.assert_array_equal(img, x[1999])
    assert label == y[1999] + 100


@pytest.mark.parametrize(
    "transform,target_transform",
    [
        (None, None),
        (T.Compose([T.ToFloat(), T.Normalize(0.5, 0.25)]), None),
        (T.Compose([T.ToFloat(), lambda im: im * 2]), None),  # not batchable: item by item
        (T.ToFloat(), lambda t: -t),
    ],
    ids=["raw", "refcnn-compose", "lambda-step", "target-transform"],
)
def test_mnist_get_batch_equals_stacking_items(transform, target_transform):
    ds = MNIST(sample_dir(), train=False, transform=transform, target_transform=target_transform)
    idx = np.array([5, 0, 999, 5, 17])
    images, labels = ds.get_batch(idx)
    items = [ds[int(i)] for i in idx]
    np.testing.assert_array_equal(images, np.stack([im for im, _ in items]))
    assert images.dtype == np.stack([im for im, _ in items]).dtype
    np.testing.assert_array_equal(labels, [t for _, t in items])


# ---- batches and DataLoader --------------------------------------------------------------------
X = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
Y = np.arange(7, dtype=np.int64) * 10


@pytest.mark.parametrize(
    "batch_size,drop_last,sizes",
    [(3, False, [3, 3, 1]), (3, True, [3, 3]), (7, False, [7]), (8, False, [7]), (8, True, []), (1, False, [1] * 7)],
    ids=["b3", "b3-drop", "b7", "b8", "b8-drop", "b1"],
)
def test_batches_in_order(batch_size, drop_last, sizes):
    got = list(batches(X, Y, batch_size, drop_last=drop_last))
    assert [len(yb) for _, yb in got] == sizes
    if sizes:
        np.testing.assert_array_equal(np.concatenate([xb for xb, _ in got]), X[: sum(sizes)])
        np.testing.assert_array_equal(np.concatenate([yb for _, yb in got]), Y[: sum(sizes)])
    loader = DataLoader((X, Y), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [len(b[1]) for b in loader] == sizes


def test_batches_shuffle_is_seeded_permutation():
    got = list(batches(X, Y, 3, shuffle=True, generator=np.random.default_rng(42)))
    perm = np.random.default_rng(42).permutation(7)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in got]), Y[perm])
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in got]), X[perm])
    assert sorted(np.concatenate([yb for _, yb in got]).tolist()) == Y.tolist()


def test_shuffle_uses_refcnn_generator_at_iteration_time():
    loader = DataLoader((X, Y), batch_size=4, shuffle=True)
    gen = batches(X, Y, 4, shuffle=True)  # nothing drawn until iteration starts
    refcnn.manual_seed(7)
    first = np.concatenate([b[1] for b in loader])
    second = np.concatenate([b[1] for b in loader])  # a fresh permutation each pass
    expected = np.random.default_rng(7)
    np.testing.assert_array_equal(first, Y[expected.permutation(7)])
    np.testing.assert_array_equal(second, Y[expected.permutation(7)])
    assert not np.array_equal(first, second)
    refcnn.manual_seed(7)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in gen]), first)


def test_batches_are_copies():
    xb, _ = next(iter(batches(X, Y, 2)))
    xb[...] = -1
    assert X.min() == 0


def test_dataloader_single_array_and_dataset_forms():
    single = list(DataLoader(Y, batch_size=3))
    assert [b.tolist() for b in single] == [[0, 10, 20], [30, 40, 50], [60]]
    pairs = [(X[i], int(Y[i])) for i in range(7)]  # a list of (x, y) is a dataset, as in torch
    got = list(DataLoader(pairs, batch_size=4))
    assert len(got) == 2
    np.testing.assert_array_equal(got[0][0], X[:4])
    np.testing.assert_array_equal(got[1][1], Y[4:])
    assert got[1][1].dtype == np.int64


def test_dataloader_mnist_uses_get_batch():
    pipe = T.Compose([T.ToFloat(), T.Normalize((0.1307,), (0.3081,))])
    ds = MNIST(sample_dir(), train=False, transform=pipe)
    loader = DataLoader(ds, batch_size=64, shuffle=True, generator=np.random.default_rng(3))
    assert len(loader) == 16
    xs, ys = zip(*loader, strict=True)
    assert xs[0].shape == (64, 1, 28, 28) and xs[0].dtype == np.float32 and xs[-1].shape == (1000 - 15 * 64, 1, 28, 28)
    perm = np.random.default_rng(3).permutation(1000)
    x, y = load_mnist(sample_dir(), train=False)
    np.testing.assert_array_equal(np.concatenate(xs), x[perm])
    np.testing.assert_array_equal(np.concatenate(ys), y[perm])


BATCH_ERRORS = [
    ("bs0", dict(batch_size=0), ValueError, r"batch_size should be a positive integer value, but got batch_size=0"),
    ("bs-neg", dict(batch_size=-2), ValueError, r"batch_size=-2"),
    ("bs-float", dict(batch_size=2.0), ValueError, r"batch_size=2.0"),
    ("bs-bool", dict(batch_size=True), ValueError, r"batch_size=True"),
    (
        "gen-seed",
        dict(batch_size=2, generator=0),
        TypeError,
        r"generator must be a numpy.random.Generator or None, got int",
    ),
]


@pytest.mark.parametrize("kwargs,err,match", [e[1:] for e in BATCH_ERRORS], ids=[e[0] for e in BATCH_ERRORS])
def test_batch_argument_errors(kwargs, err, match):
    with pytest.raises(err, match="batches: .*" + match):
        batches(X, Y, **kwargs)
    with pytest.raises(err, match="DataLoader: .*" + match):
        DataLoader((X, Y), **kwargs)


def test_batch_shape_errors():
    with pytest.raises(ValueError, match=r"batches: x and y must have the same length, got shapes \(7, 3\) and \(6,\)"):
        batches(X, Y[:6], 2)
    with pytest.raises(ValueError, match=r"share one length, got shapes \[\(7, 3\), \(6,\)\]"):
        DataLoader((X, Y[:6]))
    with pytest.raises(TypeError, match=r"expected an array, a tuple of arrays or a dataset .* got int"):
        DataLoader(5)
