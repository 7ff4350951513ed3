"""MNIST loading: refcnn.data.load_mnist against PyTorch's pipeline.

- ``torchvision``: where torchvision imports, torchvision.datasets.MNIST + ToTensor +
  Normalize((0.1307,), (0.3081,)) must give refcnn's arrays. torchvision's compiled ops
  need libraries this machine may lack, so the import is tried and, when it fails, the
  check is reported as skipped with the reason (never counted as passed).
- ``transforms``: the same pipeline as torchvision's transforms compute it, in torch
  (uint8 -> float32 / 255, then (x - mean) / std in float32), from the raw IDX bytes;
  labels exactly. Bound (mixed form): three roundings (divide, subtract, divide),
  n = 3, S = (|x/255| + mean)/std + |y|.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from .. import core
from .base import Spec

MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
MEAN, STD = 0.1307, 0.3081
FILES = {
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    "train": ("train-head6309-images-idx3-ubyte.gz", "train-head6309-labels-idx1-ubyte.gz"),
}


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class LoadMnistSpec(Spec):
    kind = "data"
    name = "data.load_mnist"
    weight = 0.05
    examples = [{"split": "test", "seed": 0}, {"split": "train", "seed": 0}]  # noqa: RUF012

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"split": st.sampled_from(["test", "train"]), "seed": st.just(0)})

    def dtypes(self) -> list[str]:
        return ["float32"]

    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        import refcnn.data

        impl = impls[0]
        if not MNIST_DIR.is_dir():
            rec.skipped(impl, "transforms", f"no MNIST files at {MNIST_DIR}")
            rec.skipped(impl, "torchvision", f"no MNIST files at {MNIST_DIR}")
            return
        images, labels = refcnn.data.load_mnist(str(MNIST_DIR), train=case["split"] == "train")
        img_file, lbl_file = FILES[case["split"]]
        raw = _idx(MNIST_DIR / img_file)
        raw_labels = _idx(MNIST_DIR / lbl_file).astype(np.int64)
        x = torch.from_numpy(raw.copy()).float().div(255).unsqueeze(1)
        y = x.sub(torch.tensor(MEAN)).div(torch.tensor(STD))
        S = (x.double().abs() + MEAN) / STD + y.double().abs()
        if np.shape(labels) != raw_labels.shape or not np.array_equal(np.asarray(labels), raw_labels):
            rec.fail(impl, "transforms", f"labels differ from the IDX file ({np.shape(labels)} vs {raw_labels.shape})")
        else:
            rec.compare(impl, "transforms", images, y.double().numpy(), 3, S.numpy(), f"{case['split']} images")
        try:
            import torchvision  # noqa: F401
            from torchvision import datasets, transforms
        except Exception as exc:  # compiled ops need CUDA libraries here
            rec.skipped(impl, "torchvision", f"torchvision does not import: {type(exc).__name__}: {str(exc)[:120]}")
            return
        try:
            ds = datasets.MNIST(os.fspath(MNIST_DIR), train=case["split"] == "train", download=False,
                                transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]))  # fmt: skip
            tv = torch.stack([ds[i][0] for i in range(len(ds))]).numpy()
            tl = np.array([ds[i][1] for i in range(len(ds))])
        except Exception as exc:  # torchvision expects its own folder layout (MNIST/raw/...)
            rec.skipped(impl, "torchvision", f"torchvision.datasets.MNIST could not read {MNIST_DIR}: {exc}")
            return
        if not np.array_equal(tl, np.asarray(labels)):
            rec.fail(impl, "torchvision", "labels differ from torchvision's")
        else:
            rec.compare(impl, "torchvision", images, tv.astype(np.float64), 3, S.numpy(), "images vs torchvision")


SPECS = [LoadMnistSpec()]
