"""The float32 budget: how far two float32 trainings may differ step by step before their
difference is the training dynamics amplifying rounding, not rounding itself."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import models, nn
from .._grad_mode import no_grad

# the float32 budget's constants (see budget())
BUDGET_K = 2.0
BUDGET_LAMBDA = 6.0


def forward_reductions(model: nn.Module, x: np.ndarray, num_classes: int = 10) -> dict[str, int]:
    """The reduction length n of every op on the path from ``x`` to the loss: the number of
    terms each output element of that op sums. Conv2d: C_in/groups * kH * kW; Linear:
    in_features; BatchNorm in training: N * H * W (its batch mean and variance); GroupNorm /
    LayerNorm: the normalised group; average pools: the window; a residual sum: 2; the loss:
    C (log-sum-exp) and N (batch mean). Max pooling, ReLU, Dropout and Flatten round nothing.

    Shapes are taken from one forward of ``x`` (input shapes recorded per module); the
    model's mode is used as is, and its BatchNorm running statistics are restored after."""
    saved = {k: v.copy() for k, v in model.state_dict().items()}
    shapes: dict[str, tuple[int, ...]] = {}
    patched = []
    for name, m in model.named_modules():
        if not m._modules or isinstance(m, models.BasicBlock):

            def recorder(inp: Any, _m: nn.Module = m, _name: str = name) -> Any:
                shapes[_name] = np.shape(inp)
                return type(_m).forward(_m, inp)

            object.__setattr__(m, "forward", recorder)
            patched.append(m)
    try:
        with no_grad():  # a probe: nothing is kept for a backward
            model(x)
    finally:
        for m in patched:
            del m.__dict__["forward"]
        model.load_state_dict(saved)
    out: dict[str, int] = {}
    for name, m in model.named_modules():
        if name not in shapes:
            continue
        shape = shapes[name]
        n = 0
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            n = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            n = m.in_features
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.training:
            n = shape[0] * math.prod(shape[2:])
        elif isinstance(m, nn.GroupNorm):
            n = m.num_channels // m.num_groups * math.prod(shape[2:])
        elif isinstance(m, nn.LayerNorm):
            n = math.prod(m.normalized_shape)
        elif isinstance(m, nn.AvgPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
            n = k[0] * k[1]
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            H, W = shape[-2:]
            oh, ow = (H if o is None else o for o in m._out)
            n = _largest_bin(H, oh) * _largest_bin(W, ow)
        elif isinstance(m, models.BasicBlock):
            n = 2
        if n > 1:
            out[name] = n
    out["loss (log-sum-exp)"] = num_classes
    out["loss (batch mean)"] = int(x.shape[0])
    return out


def _largest_bin(size: int, out: int) -> int:
    """The longest of PyTorch's adaptive bins [floor(i*size/out), ceil((i+1)*size/out))."""
    return max(-(-(i + 1) * size // out) - i * size // out for i in range(out))


def budget(reductions: dict[str, int], dtype: Any, steps: int) -> tuple[list[float], str]:
    """The per-step budget for the relative difference of the two runs' losses.

    One forward pass: op i sums n_i terms; rounding errors behave as independent random
    variables of mean zero, so (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019, Thm 3.1)
    its relative error is at most lam * sqrt(n_i) * u except with probability about
    2 n_i exp(-lam**2 / 2) (lam = 6: below 1e-7 * n_i), u the unit roundoff. Relative errors
    of a chain of ops add to first order, and two runs that each obey the bound differ by at
    most twice it: e = K * lam * u * sum_i sqrt(n_i), K = 2.

    Steps: at step t the weights carry the rounding differences of the t - 1 updates before
    it. If training did not amplify them, each update would add at most one pass's relative
    error (the gradient of a loss is rounded like the loss; the update is a step along it),
    so the budget of step t (1-based) is t * e. Beyond it, the dynamics are amplifying the
    rounding differences: the two trainings are drifting apart, as any two float32
    trainings that round differently do.
    """
    u = float(np.finfo(dtype).eps) / 2
    per_pass = BUDGET_K * BUDGET_LAMBDA * u * sum(math.sqrt(n) for n in reductions.values())
    text = (
        f"relative loss difference at step t (1-based) <= t * e, e = K * lam * u * sum_i sqrt(n_i) = {per_pass:.3g}; "
        f"K = {BUDGET_K:g} (two runs), lam = {BUDGET_LAMBDA:g} (Higham-Mary probabilistic bound lam*sqrt(n)*u "
        f"per sum of n terms), u = {u:.3g} (unit roundoff of {np.dtype(dtype)}), n_i = the reduction lengths of "
        "the forward ops (budget_n); t * e assumes training does not amplify rounding differences"
    )
    return [per_pass * t for t in range(1, steps + 1)], text
