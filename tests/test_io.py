"""refcnn.io: safetensors checkpoints; round trips, the file format PyTorch reads, and a clear
CheckpointError for every file that is not a checkpoint (pickles never unpickled)."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy

from refcnn import io
from refcnn.io import CheckpointError

RNG = np.random.default_rng(0)


def state() -> dict[str, Any]:
    """Keys in a non-sorted order, as a state_dict has them, with every kind of value."""
    return {
        "0.weight": RNG.standard_normal((4, 1, 3, 5)).astype(np.float32),
        "0.bias": RNG.standard_normal(4).astype(np.float32),
        "1.running_mean": RNG.standard_normal(4),
        "1.num_batches_tracked": np.array(7, dtype=np.int64),  # 0-d, as PyTorch's
        "10.mask": np.array([True, False, True]),
        "2.codes": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "2.half": np.array([0.5, -2.0], dtype=np.float16),
        "2.empty": np.zeros((0, 3), dtype=np.float32),
    }


def test_round_trip_keeps_values_dtypes_shapes_and_order(tmp_path):
    sd = state()
    path = io.save(sd, tmp_path / "m.safetensors")
    assert path == tmp_path / "m.safetensors"
    back = io.load(path)
    assert list(back) == list(sd)  # the saved order, not safetensors' own
    for k, v in sd.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)
        assert back[k].flags.writeable
    assert back["1.num_batches_tracked"].ndim == 0  # regression: np.ascontiguousarray made it shape (1,)


def test_save_makes_arrays_contiguous_little_endian(tmp_path):
    sd: dict[str, Any] = {
        "strided": np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2],
        "fortran": np.asfortranarray(RNG.standard_normal((3, 5))),
        "bigendian": np.arange(5, dtype=">i4"),
        "transposed": np.arange(6.0).reshape(2, 3).T,
    }
    back = io.load(io.save(sd, tmp_path / "c.safetensors"))
    for k, v in sd.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype.isnative and back[k].flags.c_contiguous
    assert back["bigendian"].dtype == np.int32


def test_file_is_plain_safetensors(tmp_path):
    # what safetensors.torch.load_file reads: 8-byte little-endian header length, a JSON
    # header with torch's dtype names and byte ranges, the raw data; verified with PyTorch
    # once (torch 2.13, safetensors 0.8): load_file gives the same tensors, 0-d included
    sd = state()
    blob = io.save(sd, tmp_path / "m.safetensors").read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    assert header["0.weight"] == {
        "dtype": "F32",
        "shape": [4, 1, 3, 5],
        "data_offsets": header["0.weight"]["data_offsets"],
    }
    assert header["1.num_batches_tracked"]["dtype"] == "I64" and header["1.num_batches_tracked"]["shape"] == []
    assert json.loads(header["__metadata__"]["refcnn.keys"]) == list(sd)
    plain = safetensors.numpy.load_file(tmp_path / "m.safetensors")
    assert sorted(plain) == sorted(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(plain[k], v)


def test_load_file_written_by_safetensors_itself(tmp_path):
    sd: dict[str, Any] = {"b": np.ones(2, np.float32), "a": np.zeros((1, 2))}
    safetensors.numpy.save_file(sd, tmp_path / "x.safetensors")
    back = io.load(tmp_path / "x.safetensors")
    assert list(back) == ["a", "b"]  # no refcnn order recorded: sorted
    np.testing.assert_array_equal(back["a"], sd["a"])


def test_save_replaces_atomically(tmp_path):
    io.save({"a": np.zeros(3)}, tmp_path / "m.safetensors")
    io.save({"b": np.ones(2)}, str(tmp_path / "m.safetensors"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary file left
    assert list(io.load(tmp_path / "m.safetensors")) == ["b"]


SAVE_ERRORS = [
    ("int-key", {0: np.zeros(2), 1: object()}, TypeError, r"cannot store '1', a object"),
    (
        "tuple-key",
        {("a", 1): np.zeros(2), "b": [1]},
        TypeError,
        r"dict keys must be str, int, float, bool or None, got \('a', 1\) \(tuple\)",
    ),
    ("set-value", {"w": {1.0, 2.0}}, TypeError, r"cannot store 'w', a set: a checkpoint holds dicts, lists and tuples"),
    (
        "object-dtype",
        {"w": np.array([None, 1])},
        TypeError,
        r"the value of 'w' has dtype object, which safetensors cannot store",
    ),
    (
        "complex128",
        {"w": np.zeros(2, complex)},
        TypeError,
        r"the value of 'w' has dtype complex128, which safetensors cannot store",
    ),
    ("str-dtype", {"w": np.array(["a"])}, TypeError, r"the value of 'w' has dtype <U1, which safetensors cannot store"),
    (
        "nested-complex128",
        {"optimizer": {"state": {0: {"buf": np.zeros(2, complex)}}}},
        TypeError,
        r"the value of 'optimizer/state/0/buf' has dtype complex128",
    ),
    ("nan-key", {float("nan"): 1}, TypeError, r"dict key nan in the object is not a finite number"),
    (
        "metadata-key",
        {"__metadata__": np.zeros(2)},
        ValueError,
        r"'__metadata__' is reserved by the safetensors format",
    ),
]


@pytest.mark.parametrize("sd,err,match", [e[1:] for e in SAVE_ERRORS], ids=[e[0] for e in SAVE_ERRORS])
def test_save_rejects(tmp_path, sd, err, match):
    with pytest.raises(err, match="refcnn.io.save: " + match):
        io.save(sd, tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_save_rejects_what_is_no_checkpoint(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store the object, a Payload"):
        io.save(Payload(tmp_path / "m"), tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []


# ---- nested checkpoints: what torch.save holds, without pickle ---------------------------------------
def checkpoint() -> dict[str, Any]:
    """A training checkpoint: model, optimizer and scheduler state dicts, epoch, generator state."""
    return {
        "model": state(),
        "optimizer": {
            "state": {0: {"step": 3.0, "exp_avg": RNG.standard_normal((4, 1, 3, 5)).astype(np.float32)}, 1: {}},
            "param_groups": [
                {"lr": 0.1 + 0.2, "betas": (0.9, 0.999), "foreach": None, "amsgrad": False, "params": [0, 1]}
            ],
        },
        "scheduler": {"base_lrs": [0.02], "last_epoch": 7, "eta_min": 0.0, "_last_lr": [1e-300]},
        "epoch": 7,
        "name": 'lenet5 \u00e9"/',
        "generator": np.random.default_rng(5).bit_generator.state,  # 128-bit ints
        "odd": {None: float("nan"), True: float("-inf"), 2.5: np.float32(1.5), -3: np.int64(-(2**62)), "": ()},
        "empty": {},
        "shared": [np.arange(3), np.arange(3)],
    }


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal values of equal types all the way down (nan equals nan)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and (a == b or (a != a and b != b)), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, where


def test_nested_checkpoint_round_trips_exactly(tmp_path):
    ck = checkpoint()
    back = io.load(io.save(ck, tmp_path / "ck.safetensors"))
    assert_same(back, ck)
    assert back["optimizer"]["param_groups"][0]["lr"] == 0.30000000000000004  # floats exactly
    np.random.default_rng().bit_generator.state = back["generator"]  # a valid generator state again


def test_nested_checkpoint_is_safetensors_with_named_tensors(tmp_path):
    io.save(checkpoint(), tmp_path / "ck.safetensors")
    plain = safetensors.numpy.load_file(tmp_path / "ck.safetensors")  # any safetensors reader sees the arrays
    assert "model/0.weight" in plain and "optimizer/state/0/exp_avg" in plain
    assert "shared/0" in plain and "shared/1" in plain and "odd/2.5" in plain
    blob = (tmp_path / "ck.safetensors").read_bytes()
    assert b"pickle" not in blob and b"\x80\x04" not in blob[:16]


def test_flat_state_dict_keeps_the_plain_layout(tmp_path):
    """A model's state_dict stays what safetensors.torch.load_file reads as is: its own keys."""
    io.save(state(), tmp_path / "m.safetensors")
    header = json.loads((tmp_path / "m.safetensors").read_bytes()[8 : 8 + int.from_bytes(
        (tmp_path / "m.safetensors").read_bytes()[:8], "little")])  # fmt: skip
    assert set(header) - {"__metadata__"} == set(state())
    assert set(header["__metadata__"]) == {"refcnn.keys"}


def test_nested_checkpoint_with_a_damaged_structure_is_rejected(tmp_path):
    good = io.save({"a": [np.zeros(2)], "b": 1}, tmp_path / "good.safetensors").read_bytes()
    n = int.from_bytes(good[:8], "little")
    header = json.loads(good[8 : 8 + n])
    for case, tree in [("unknown-node", '{"set": [1]}'), ("missing-tensor", '{"tensor": "nope"}'),
                       ("not-json", "{"), ("unused-tensor", "1")]:  # fmt: skip
        header["__metadata__"]["refcnn.tree"] = tree
        text = json.dumps(header).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        path = tmp_path / case
        path.write_bytes(len(text).to_bytes(8, "little") + text + good[8 + n :])
        with pytest.raises(CheckpointError, match=f"checkpoint {path} has a damaged structure"):
            io.load(path)


@pytest.mark.parametrize("cut", [8, 100, -1], ids=["length-only", "mid-header", "last-byte"])
def test_truncated_nested_checkpoint_is_rejected(tmp_path, cut):
    good = io.save(checkpoint(), tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut").write_bytes(good[:cut])
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / 'cut'} is truncated"):
        io.load(tmp_path / "cut")


# ---- load: every bad file gets a CheckpointError naming it ------------------------------------------
class Payload:
    """Unpickling this creates the file ``marker``: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickle_is_rejected_and_never_unpickled(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(proof))).close()  # the payload works when unpickled ...
    assert proof.exists()
    marker = tmp_path / "marker"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"0.weight": Payload(marker)}, protocol=4))
    with pytest.raises(CheckpointError, match=r"is a pickle file \(protocol 4.*it was not unpickled") as info:
        io.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()  # ... but refcnn.io.load never ran it


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = io.save(state(), tmp_path / "good.safetensors").read_bytes()
    n = int.from_bytes(good[:8], "little")
    files = {
        "empty": (b"", r"is not a safetensors file: 0 bytes, shorter than the 8-byte header length"),
        "short": (good[:5], r"5 bytes, shorter than the 8-byte header length"),
        "cut-in-header": (
            good[:40],
            rf"is truncated: its header length says {n} bytes, the file holds 32 after the length",
        ),
        "cut-in-data": (good[:-7], r"is truncated: its header describes \d+ bytes of data, the file holds \d+"),
        "text": (b"this is not a checkpoint at all", r"is not a safetensors file \(it starts with b'this is '\)"),
        "bad-json": (
            len(b"{nope}").to_bytes(8, "little") + b"{nope}",
            r"is not a valid safetensors file: its header is not valid",
        ),
        "json-list": (len(b"{}").to_bytes(8, "little") + b"{}" + b"x", r"could not be read as safetensors"),
        "protocol-2-pickle": (pickle.dumps([1, 2], protocol=2), r"is a pickle file \(protocol 2"),
        "protocol-0-pickle": (pickle.dumps([1, 2], protocol=0), r"is not a safetensors file \(it starts with"),
    }
    out = {}
    for name, (blob, match) in files.items():
        (tmp_path / name).write_bytes(blob)
        out[name] = (tmp_path / name, match)
    with zipfile.ZipFile(tmp_path / "torch-zip.pt", "w") as z:  # torch.save's default layout
        z.writestr("archive/data.pkl", pickle.dumps({"a": 1}))
    out["torch-zip"] = (tmp_path / "torch-zip.pt", r"is a zip archive \(torch.save's format, or numpy.savez\)")
    np.savez(tmp_path / "arrays.npz", a=np.zeros(2))
    out["npz"] = (tmp_path / "arrays.npz", r"is a zip archive")
    out["missing"] = (tmp_path / "nope.safetensors", r"does not exist")
    out["directory"] = (tmp_path, r"is a directory, not a safetensors file")
    return out


BAD = ["empty", "short", "cut-in-header", "cut-in-data", "text", "bad-json", "json-list", "protocol-2-pickle",
       "protocol-0-pickle", "torch-zip", "npz", "missing", "directory"]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_load_rejects(tmp_path, case):
    path, match = _bad_files(tmp_path)[case]
    with pytest.raises(CheckpointError, match=match) as info:
        io.load(path)
    assert f"checkpoint {path} " in str(info.value)  # names the file
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("cut", [8, 9, 100, -1], ids=["length-only", "one-header-byte", "mid-header", "last-byte"])
def test_load_rejects_every_truncation(tmp_path, cut):
    good = io.save(state(), tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut").write_bytes(good[:cut])
    with pytest.raises(CheckpointError, match="is truncated"):
        io.load(tmp_path / "cut")
