"""dropout and dropout2d: PyTorch's random mask cannot be replayed, so the checks are

- ``rejects``: p outside [0, 1], wrong ndim for dropout2d, as PyTorch;
- ``forward``: out of training y == x exactly; in training every element is 0 or PyTorch's
  own x * (mask / (1 - p)) for the mask refcnn drew, and dropout2d's zeros come in whole
  (n, c) planes. The mask is read off the zeros of a twin run on the case's ordinary values
  (no zeros among them) with the same generator seed, so a case's hazard (nan, inf, zeros in
  x) meets the kernel too: a dropped nan or inf is nan (0 * inf), as PyTorch's product gives;
- ``distribution``: the fraction of zeroed elements (planes) is within 5 standard deviations
  of p (a binomial count, fixed seed);
- ``grad_input``: g * mask / (1 - p) with the same mask, against PyTorch autograd.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from refcnn import kernels

from .. import core
from ..core import rng_for
from ..strategies import make_tie_free, seeds
from .base import Built, OpSpec


@st.composite
def _cases(draw: Any, op: str) -> dict[str, Any]:
    # dropout2d: PyTorch still accepts a 1-D input out of training (deprecated, with a
    # warning; an error in training); refcnn rejects it always, so 1-D is not drawn.
    lo = 2 if op == "dropout2d" else 0
    return {
        "shape": draw(st.lists(st.integers(1, 5), min_size=lo, max_size=4)),
        "p": draw(st.sampled_from([0.5, 0.1, 0.9, 0.0, 1.0, 1.5])),  # 1.5: rejected
        "training": draw(st.sampled_from([True, True, False])),
        "seed": draw(seeds),
    }


class DropoutSpec(OpSpec):
    method = "mixed"
    pairs = [("p", "training")]  # noqa: RUF012

    def __init__(self, op: str) -> None:
        self.op = op
        self.examples = [
            {"shape": [64, 50], "p": 0.3, "training": True, "seed": 1},  # big enough for the rate
            {"shape": [2, 3, 4], "p": 1.0, "training": True, "seed": 2},  # everything dropped
            {"shape": [2, 3], "p": 0.5, "training": False, "seed": 3},  # identity out of training
        ]
        if op == "dropout2d":
            self.examples.append({"shape": [40, 30, 2, 1], "p": 0.5, "training": True, "seed": 4})

    def strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        return _cases(self.op)

    def checks(self, dtype: str) -> list[str]:
        return ["forward", "distribution", "grad_input"]

    def build(self, case: dict[str, Any]) -> Built:
        x = make_tie_free(rng_for(case), case["shape"])
        x = np.where(x == 0, 0.5, x)  # no exact zeros: a zero in y then means dropped
        cfg = {"p": case["p"], "training": case["training"], "generator": np.random.default_rng(case["seed"])}
        torch_op = F.dropout2d if self.op == "dropout2d" else F.dropout

        def fn(x: torch.Tensor) -> torch.Tensor:
            return torch_op(x, p=case["p"], training=case["training"])

        return Built({"x": x}, cfg, fn)

    def check(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        with np.errstate(invalid="ignore", over="ignore"):  # the suite's own sums on a hazard case's inf and nan
            self.check_case(case, dtype, impls, rec)

    def check_case(self, case: dict[str, Any], dtype: str, impls: list[str], rec: core.Recorder) -> None:
        built = self.build(case)
        dt = np.dtype(dtype)
        x = np.asarray(built.arrays["x"], dtype=dt)
        # the twin: the case without its hazard, whose zeros in y are exactly the dropped elements
        twin = x if "hazard" not in built.extra else np.asarray(self.build({**case, "hazard": "none"}).arrays["x"], dt)
        p, training = case["p"], case["training"]
        try:
            torch_op = F.dropout2d if self.op == "dropout2d" else F.dropout
            torch_op(torch.from_numpy(np.asarray(x, np.float64)), p=p, training=training)
            torch_ok = True
        except Exception as exc:
            self._expect_rejection(case, built, {"x": x}, impls, rec, f"{type(exc).__name__}: {exc}")
            return
        assert torch_ok
        g = np.asarray(np.random.default_rng([case["seed"], 99]).standard_normal(x.shape) + 0.25, dtype=dt)
        for impl in impls:
            kernel = kernels.get(self.op, impl)
            try:
                y, ctx = kernel.forward(x.copy(), p=p, training=training, generator=np.random.default_rng(case["seed"]))
                y_twin = y
                if twin is not x:
                    y_twin, _ = kernel.forward(
                        twin.copy(), p=p, training=training, generator=np.random.default_rng(case["seed"])
                    )
            except NotImplementedError as exc:
                rec.unsupported(impl, ["rejects", *self.checks(dtype)], str(exc))
                continue
            except Exception as exc:
                if core.rejected_by_validator(exc, self.op):
                    rec.fail(impl, "rejects", f"refcnn's {self.op} rejected a configuration PyTorch accepts: {exc}")
                else:
                    rec.crash(impl, "forward", "forward", exc)
                continue
            rec.ok(impl, "rejects")
            y, y_twin = np.asarray(y), np.asarray(y_twin)
            if y.dtype != dt or y.shape != x.shape:
                rec.fail(impl, "forward", f"{impl} gave dtype {y.dtype} and shape {y.shape}, expected {dt} {x.shape}")
                continue
            if not training or p == 0:
                mask = np.ones(x.shape)
            else:
                mask = np.asarray(y_twin != 0, dtype=np.float64)
            mask_shape = x.shape[:2] + (1,) * (x.ndim - 2) if self.op == "dropout2d" else x.shape
            if self.op == "dropout2d" and training and x.size:
                per_plane = mask.reshape(*x.shape[:2], -1)
                if not np.all(per_plane == per_plane[..., :1]):
                    rec.fail(impl, "forward", "dropout2d zeroed part of an (n, c) plane, not whole planes")
                    continue
                mask_t = per_plane[..., 0].reshape(mask_shape)
            else:
                mask_t = mask
            # PyTorch's own arithmetic on that mask: x * (mask / (1 - p)) (noise formed in x's dtype)
            xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
            if training and p == 1:
                noise = torch.zeros(mask_shape, dtype=torch.float64)  # PyTorch: everything dropped, no 0/0
            elif training and p > 0:
                keep = torch.tensor(1.0 - p, dtype=torch.float64).to(
                    torch.float32 if dt == np.float32 else torch.float64
                )
                noise = torch.from_numpy(np.asarray(mask_t, np.float64)) / keep.double()
            else:
                noise = torch.ones(mask_shape, dtype=torch.float64)
            yt = xt * noise
            yt.backward(torch.from_numpy(np.asarray(g, np.float64)))
            n = 2  # the noise's division and the product
            where = "forward" + (f" ({built.extra['hazard']} in x)" if "hazard" in built.extra else "")
            if not rec.compare(impl, "forward", y, yt.detach().numpy(), n, np.abs(yt.detach().numpy()), where):
                continue
            kept = float(mask_t.sum())
            m = mask_t.size
            if training and m:
                drop = m - kept
                sd = math.sqrt(m * p * (1 - p))
                dev = abs(drop - m * p)
                if dev <= 5 * sd + 1e-9:
                    rec.ok(impl, "distribution", dev, dev / (5 * sd) if sd else 0.0)
                else:
                    rec.fail(
                        impl,
                        "distribution",
                        f"{drop:g} of {m} dropped, expected {m * p:g} +- {5 * sd:.3g} (5 sd)",
                        dev,
                        dev / (5 * sd) if sd else math.inf,
                    )
            try:
                (gx,) = kernel.backward(g, ctx)
            except NotImplementedError as exc:
                rec.unsupported(impl, ["grad_input"], str(exc))
                continue
            except Exception as exc:
                rec.crash(impl, "grad_input", "backward", exc)
                continue
            assert xt.grad is not None
            rec.compare(impl, "grad_input", gx, xt.grad.numpy(), n, np.abs(xt.grad.numpy()), "grad of x")


SPECS = [DropoutSpec("dropout"), DropoutSpec("dropout2d")]
