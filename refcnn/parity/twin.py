"""The torch side of a parity run: a torch.nn copy of the refcnn model, its optimizer, and
dropout layers that replay refcnn's masks."""

from __future__ import annotations

import functools
import platform
import time
from typing import Any

import numpy as np

from .. import __version__, nn
from .config import EVAL_BATCH, RunConfig


class _GeneratorBox:
    """The numpy Generator the torch-side dropouts draw from (reset before each step)."""

    def __init__(self) -> None:
        self.generator = np.random.default_rng()


@functools.cache
def _replay_dropout() -> type:
    import torch

    class ReplayDropout(torch.nn.Module):
        """torch.nn.Dropout / Dropout2d with refcnn's mask: ``generator.random(shape) >= p``
        (elementwise, or per (n, c) channel), times ``1 / (1 - p)`` in the input's dtype;
        the identity in eval mode. Autograd multiplies the gradient by the same noise."""

        def __init__(self, p: float, channelwise: bool, box: _GeneratorBox) -> None:
            super().__init__()
            self.p, self.channelwise, self.box = float(p), channelwise, box

        def forward(self, x: Any) -> Any:
            if not self.training:
                return x
            shape = tuple(x.shape[:2]) + (1,) * (x.dim() - 2) if self.channelwise else tuple(x.shape)
            dt = np.dtype(str(x.dtype).removeprefix("torch."))
            if self.p == 1:
                noise = np.zeros(shape, dtype=dt)
            else:
                keep = self.box.generator.random(shape) >= self.p
                noise = keep.astype(dt) / dt.type(1.0 - self.p)
            return x * torch.from_numpy(noise)

        def extra_repr(self) -> str:
            return f"p={self.p}, channelwise={self.channelwise}"

    return ReplayDropout


def _replace_dropouts(tmodel: Any, box: _GeneratorBox) -> int:
    import torch

    replay = _replay_dropout()
    count = 0
    for name, mod in list(tmodel.named_modules()):
        if isinstance(mod, (torch.nn.Dropout, torch.nn.Dropout2d)):
            parent_name, _, child = name.rpartition(".")
            parent = tmodel.get_submodule(parent_name)
            new = replay(mod.p, isinstance(mod, torch.nn.Dropout2d), box)
            new.train(mod.training)
            setattr(parent, child, new)
            count += 1
    return count


def _torch_predictions(tmodel: Any, x: np.ndarray, batch_size: int, dtype: Any) -> np.ndarray:
    import torch

    was = tmodel.training
    tmodel.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            preds.append(tmodel(torch.from_numpy(x[i : i + batch_size]).to(dtype)).argmax(dim=1).numpy())
    tmodel.train(was)
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def versions() -> dict[str, str]:
    import torch

    return {
        "refcnn": __version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": str(torch.get_num_threads()),
    }


class _TorchRun:
    """A torch.nn copy of the refcnn model in ``dtype``, its optimizer and its dropout replay."""

    def __init__(self, cfg: RunConfig, model: nn.Module, dtype: Any, steps: int) -> None:
        import torch

        from ..interop import to_torch

        self.model = to_torch(model).to(dtype)  # exact: float32 -> float64 upcasts losslessly
        self.dtype = dtype
        self.box = _GeneratorBox()
        self.dropouts = _replace_dropouts(self.model, self.box)
        args: dict[str, Any] = {"lr": cfg.learning_rate}
        self.opt: Any
        if cfg.optimizer == "sgd":
            args["momentum"] = cfg.momentum
            self.opt = torch.optim.SGD(self.model.parameters(), **args, foreach=False)
        else:
            self.opt = torch.optim.Adam(self.model.parameters(), **args, foreach=False)
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=steps) if cfg.scheduler == "cosine" else None
        )
        self.args = args
        self.losses: list[float] = []
        self.seconds = 0.0

    def step(self, xb: np.ndarray, yb: np.ndarray, generator_state: Any, bits: type) -> None:
        import torch
        import torch.nn.functional as F

        start = time.perf_counter()
        replay_bits = bits()
        replay_bits.state = generator_state
        self.box.generator = np.random.Generator(replay_bits)
        loss = F.cross_entropy(self.model(torch.from_numpy(xb).to(self.dtype)), torch.from_numpy(yb))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.seconds += time.perf_counter() - start
        self.losses.append(float(loss.item()))

    def predictions(self, x: np.ndarray) -> np.ndarray:
        return _torch_predictions(self.model, x, EVAL_BATCH, self.dtype)
