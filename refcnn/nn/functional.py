"""torch.nn.functional's stateless forms: ``F.conv2d``, ``F.max_pool2d``, ``F.relu``,
``F.cross_entropy``, ... with PyTorch's names, argument order, defaults and accepted forms.

    from refcnn.nn import functional as F
    y = F.conv2d(x, w, b, stride=(2, 1), padding="same")     # an ndarray

Each function normalises its arguments as the matching module does (ints or pairs,
``padding='same'|'valid'``, ``stride=None`` meaning the kernel size, unbatched (C, H, W)
inputs), runs the forward of the kernel op named in its docstring through the registry
(``kernels.get(op)`` at call time, so ``kernels.use(...)`` applies) and returns the output
array. Losses return a 0-d array for ``reduction='mean'|'sum'``, as torch returns a 0-d
tensor. Parameters may be passed as they are (``F.linear(x, self.weight, self.bias)``).

Forward only. These functions keep nothing for a backward: PyTorch records them on its
autograd tape, refcnn has no tape. A hand-written ``backward`` gets gradients one of two ways:

- use the module (``nn.ReLU()``, ``nn.MaxPool2d(2)``) as a child and call its ``backward``
  (children in reverse order of the forward) -- the simple way, and the one to prefer;
- or call the op's kernel yourself, which is what ``F.<op>`` runs: keep the kernel and the
  context of the forward and hand both back to the same kernel::

      k = kernels.get("relu")            # the op named in F.relu's docstring
      y, ctx = k.forward(x)              # forward: what F.relu(x) returns, plus ctx
      (gx,) = k.backward(gy, ctx)        # backward: dL/dx from dL/dy

  Kernels take their configuration normalised (pairs of ints, a symmetric padding, a
  batched (N, C, H, W) input; see ``refcnn.kernels``); the F function's docstring says
  what it does to the arguments on the way (e.g. an extra zero row for ``padding='same'``).

PyTorch's deprecated ``size_average`` and ``reduce`` keep their positions in the losses'
signatures and, as in PyTorch, override ``reduction`` with a deprecation warning.
``inplace=True`` writes the result into the input array, as PyTorch (the activation
modules compute out of place; the values are the same).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import kernels
from .._random import default_generator
from ..kernels._checks import FLOAT_DTYPES, check_float
from ._utils import check_input, pair, positive_int
from .module import Parameter
from .pooling import _check_bool, _output_size_arg, _window_args
from .pooling import _pair as _pool_pair

__all__ = [
    "adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "conv2d", "conv_transpose2d", "cross_entropy", "dropout", "dropout2d",
    "elu", "gelu", "group_norm", "hardtanh", "l1_loss", "layer_norm", "leaky_relu", "linear", "log_softmax",
    "max_pool2d", "mse_loss", "nll_loss", "relu", "sigmoid", "silu", "smooth_l1_loss", "softmax", "tanh",
]  # fmt: skip

_ANY_NDIM = tuple(range(65))  # every ndim NumPy allows
_IMAGE = "(N, C, H, W) or (C, H, W)"


# ---- plumbing -------------------------------------------------------------------------------
def _array(a: Any) -> Any:
    """A Parameter stands for its array (so ``F.linear(x, self.weight)`` works); anything
    else goes to the kernel's validator as given."""
    return a.data if isinstance(a, Parameter) else a


def _forward(op: str, *args: Any, **config: Any) -> np.ndarray:
    """The output of ``op``'s implementation in force here; its backward context is dropped."""
    y: np.ndarray = kernels.get(op).forward(*(_array(a) for a in args), **config)[0]
    return y


def _inplace(owner: str, x: np.ndarray, y: np.ndarray, inplace: bool) -> np.ndarray:
    """PyTorch's ``inplace=True``: the input array receives the output and is returned."""
    if not inplace or y is x:
        return y
    if not x.flags.writeable:
        raise ValueError(f"{owner}(inplace=True) needs a writeable input array")
    x[...] = y
    return x


def _batched(owner: str, x: Any) -> tuple[np.ndarray, bool]:
    """An (N, C, H, W) view of ``x`` and whether ``x`` was unbatched (C, H, W)."""
    x = _array(x)
    check_input(owner, x, (3, 4), _IMAGE)
    return (x[None], True) if x.ndim == 3 else (x, False)


# ---- convolution ----------------------------------------------------------------------------
def _conv_pads(
    op: str, padding: Any, stride: tuple[int, int], dilation: tuple[int, int], kernel: tuple[int, ...]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)): an int or pair, or 'valid' (none), or 'same' (a total of
    dilation*(k - 1) per axis, the odd one extra at the bottom/right, as PyTorch; stride 1)."""
    if not isinstance(padding, str):
        pH, pW = pair(padding, "padding", op, 0)
        return ((pH, pH), (pW, pW))
    if padding not in ("same", "valid"):
        raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
    if padding == "valid":
        return ((0, 0), (0, 0))
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions, got stride={stride}")
    totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
    return ((totals[0] // 2, totals[0] - totals[0] // 2), (totals[1] // 2, totals[1] - totals[1] // 2))


def conv2d(
    input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
) -> np.ndarray:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``. Kernel op: ``conv2d``.

    input (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in/groups, kH, kW); bias (C_out,)
    or None. stride, dilation: int or pair; padding: int, pair, 'valid' or 'same'. The kernel
    takes the symmetric part of the padding; the extra bottom row / right column of
    ``'same'`` with an even dilated kernel extent is zero-padded onto the input first
    (backward: crop it off the kernel's grad_x), as PyTorch does.
    """
    op = "conv2d"
    x, unbatched = _batched(op, input)
    weight = _array(weight)
    check_float(op, "weight", weight, 4)
    s = pair(stride, "stride", op, 1)
    d = pair(dilation, "dilation", op, 1)
    g = positive_int(groups, "groups", op)
    (top, bottom), (left, right) = _conv_pads(op, padding, s, d, weight.shape[2:])
    if (bottom, right) != (top, left):
        if x.shape[1] != weight.shape[1] * g:  # checked here, so the error shows the input's own shape
            raise ValueError(
                f"{op}: weight of shape {weight.shape} with groups={g} expects an input with "
                f"{weight.shape[1] * g} channels, got input of shape {x.shape}"
            )
        x = np.pad(x, ((0, 0), (0, 0), (0, bottom - top), (0, right - left)))
    y = _forward(op, x, weight, bias, stride=s, padding=(top, left), dilation=d, groups=g)
    return y[0] if unbatched else y


def conv_transpose2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> np.ndarray:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``. Kernel op:
    ``conv_transpose2d``.

    input (N, C_in, H, W) or (C_in, H, W); weight (C_in, C_out/groups, kH, kW); bias (C_out,)
    or None; stride, padding, output_padding, dilation: int or pair.
    H_out = (H - 1)*stride[0] - 2*padding[0] + dilation[0]*(kH - 1) + output_padding[0] + 1.
    """
    op = "conv_transpose2d"
    x, unbatched = _batched(op, input)
    y = _forward(
        op, x, weight, bias,
        stride=pair(stride, "stride", op, 1), padding=pair(padding, "padding", op, 0),
        output_padding=pair(output_padding, "output_padding", op, 0), dilation=pair(dilation, "dilation", op, 1),
        groups=positive_int(groups, "groups", op),
    )  # fmt: skip
    return y[0] if unbatched else y


# ---- pooling ----------------------------------------------------------------------------------
def _pool(op: str, input: Any, channels_as_batch: bool, **config: Any) -> tuple[np.ndarray, Any]:
    """Run a pooling op on (N, C, H, W) or unbatched (C, H, W) input; the output and the
    kernel's ctx (for the indices), both back in the input's rank. Unbatched adaptive input
    goes in with its channels as the batch, as the modules do (PyTorch lets C be 0 there)."""
    x = _array(input)
    check_input(op, x, (3, 4), _IMAGE)
    unbatched = x.ndim == 3
    if unbatched and not channels_as_batch and 0 in x.shape:
        raise ValueError(f"{op} expected a (C, H, W) input with no zero dimension, got {x.shape}")
    if unbatched:
        x = x[:, None] if channels_as_batch else x[None]
    if "output_size" in config:  # None on an axis: the input's size there
        (oh, ow), (H, W) = config["output_size"], x.shape[2:]
        config["output_size"] = (H if oh is None else oh, W if ow is None else ow)
    y, ctx = kernels.get(op).forward(x, **config)
    indices = getattr(ctx, "indices", None)
    if unbatched:
        y = y[:, 0] if channels_as_batch else y[0]
        if indices is not None:
            indices = indices[:, 0] if channels_as_batch else indices[0]
    return y, None if indices is None else indices.copy()


def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``. Kernel op: ``max_pool2d``.

    input (N, C, H, W) or (C, H, W); kernel_size, stride (None: the kernel size), padding
    (at most half the kernel size), dilation: int or pair. With ``return_indices=True``,
    returns ``(output, indices)``, the flat index ih * W + iw of each maximum (int64).
    """
    op = "max_pool2d"
    k, s, p = _window_args(op, kernel_size, stride, padding)
    d = _pool_pair(dilation, "dilation", op, 1)
    ceil = _check_bool(ceil_mode, "ceil_mode", op)
    with_indices = _check_bool(return_indices, "return_indices", op)
    y, indices = _pool(op, input, False, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    return (y, indices) if with_indices else y


def avg_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``. Kernel op: ``avg_pool2d``.

    input (N, C, H, W) or (C, H, W); kernel_size, stride (None: the kernel size), padding (at
    most half the kernel size): int or pair; divisor_override: None or a non-zero int.
    """
    op = "avg_pool2d"
    k, s, p = _window_args(op, kernel_size, stride, padding)
    config = dict(
        kernel_size=k,
        stride=s,
        padding=p,
        ceil_mode=_check_bool(ceil_mode, "ceil_mode", op),
        count_include_pad=_check_bool(count_include_pad, "count_include_pad", op),
        divisor_override=divisor_override,
    )
    return _pool(op, input, False, **config)[0]


def adaptive_avg_pool2d(input: Any, output_size: Any) -> np.ndarray:
    """2-D average pooling to ``output_size`` over PyTorch's adaptive bins, as
    ``torch.nn.functional.adaptive_avg_pool2d``. Kernel op: ``adaptive_avg_pool2d``.

    input (N, C, H, W) or (C, H, W); output_size an int or a pair (None on an axis: the
    input's size there).
    """
    op = "adaptive_avg_pool2d"
    return _pool(op, input, True, output_size=_output_size_arg(output_size, op))[0]


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """2-D max pooling to ``output_size`` over PyTorch's adaptive bins, as
    ``torch.nn.functional.adaptive_max_pool2d``. Kernel op: ``adaptive_max_pool2d``.

    As adaptive_avg_pool2d; ``return_indices=True`` also returns the flat indices.
    """
    op = "adaptive_max_pool2d"
    with_indices = _check_bool(return_indices, "return_indices", op)
    y, indices = _pool(op, input, True, output_size=_output_size_arg(output_size, op))
    return (y, indices) if with_indices else y


# ---- linear, normalisation, dropout ---------------------------------------------------------
def linear(input: Any, weight: Any, bias: Any = None) -> np.ndarray:
    """y = input @ weight.T + bias over the last dimension, as ``torch.nn.functional.linear``.
    Kernel op: ``linear``. input (*, in_features); weight (out_features, in_features)."""
    return _forward("linear", input, weight, bias)


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-05,
) -> np.ndarray:
    """Batch normalisation over (N, C, *), as ``torch.nn.functional.batch_norm``. Kernel op:
    ``batch_norm``.

    training=True normalises with the batch's statistics and, when running_mean/running_var
    are given, updates them in place: running = (1 - momentum) * running + momentum * batch
    (running_var with the unbiased variance), as PyTorch. training=False uses the running
    statistics, which must then be given.
    """
    return _forward(
        "batch_norm", input, weight, bias, running_mean, running_var, training=training, momentum=momentum, eps=eps
    )


def group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-05) -> np.ndarray:
    """Group normalisation over (N, C, *), as ``torch.nn.functional.group_norm``. Kernel op:
    ``group_norm``. weight, bias: (C,) or None."""
    return _forward("group_norm", input, weight, bias, num_groups=num_groups, eps=eps)


def layer_norm(
    input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-05
) -> np.ndarray:
    """Layer normalisation over the trailing ``normalized_shape`` (a tuple or list of ints;
    an int is refused, as PyTorch refuses it here), as ``torch.nn.functional.layer_norm``.
    Kernel op: ``layer_norm``. weight, bias: of shape normalized_shape, or None."""
    shape = tuple(normalized_shape) if isinstance(normalized_shape, list) else normalized_shape
    return _forward("layer_norm", input, weight, bias, normalized_shape=shape, eps=eps)


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> np.ndarray:
    """In training, zero each element with probability p and scale the rest by 1/(1 - p);
    otherwise the identity (the input itself), as ``torch.nn.functional.dropout``. Kernel op:
    ``dropout``. The mask is drawn from ``refcnn.default_generator()`` (``refcnn.manual_seed``)."""
    x = _array(input)
    y = _forward("dropout", x, p=p, training=training, generator=default_generator())
    return _inplace("dropout", x, y, inplace)


def dropout2d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> np.ndarray:
    """In training, zero whole channels x[n, c] with probability p and scale the rest by
    1/(1 - p), as ``torch.nn.functional.dropout2d``. Kernel op: ``dropout2d``. A 3-D input is
    treated as (N, C, L), with PyTorch's warning (see ``nn.Dropout2d``)."""
    x = _array(input)
    check_input("dropout2d", x, (3, 4), _IMAGE)
    if x.ndim == 3:
        warnings.warn(
            f"dropout2d: received a 3-D input of shape {x.shape}; as PyTorch does, it is treated as (N, C, L) "
            "and each row x[i, j, :] is zeroed as a block, not each channel of an unbatched (C, H, W) input. "
            "For whole channels of one sample pass x[None] (shape (1, C, H, W)).",
            UserWarning,
            stacklevel=2,
        )
    y = _forward("dropout2d", x, p=p, training=training, generator=default_generator())
    return _inplace("dropout2d", x, y, inplace)


# ---- activations ----------------------------------------------------------------------------
def _activation(op: str, input: Any, inplace: bool = False, **config: Any) -> np.ndarray:
    x = _array(input)
    return _inplace(op, x, _forward(op, x, **config), inplace)


def relu(input: Any, inplace: bool = False) -> np.ndarray:
    """max(x, 0), as ``torch.nn.functional.relu``. Kernel op: ``relu``."""
    return _activation("relu", input, inplace)


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> np.ndarray:
    """x for x > 0, negative_slope * x otherwise, as ``torch.nn.functional.leaky_relu``.
    Kernel op: ``leaky_relu``."""
    return _activation("leaky_relu", input, inplace, negative_slope=negative_slope)


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> np.ndarray:
    """x for x > 0, alpha * (exp(x) - 1) otherwise, as ``torch.nn.functional.elu``. Kernel op: ``elu``."""
    return _activation("elu", input, inplace, alpha=alpha)


def gelu(input: Any, approximate: str = "none") -> np.ndarray:
    """x * Phi(x) (approximate='tanh': the tanh form), as ``torch.nn.functional.gelu``.
    Kernel op: ``gelu``."""
    return _activation("gelu", input, approximate=approximate)


def silu(input: Any, inplace: bool = False) -> np.ndarray:
    """x * sigmoid(x), as ``torch.nn.functional.silu``. Kernel op: ``silu``."""
    return _activation("silu", input, inplace)


def sigmoid(input: Any) -> np.ndarray:
    """1 / (1 + exp(-x)), as ``torch.nn.functional.sigmoid``. Kernel op: ``sigmoid``."""
    return _activation("sigmoid", input)


def tanh(input: Any) -> np.ndarray:
    """tanh(x), as ``torch.nn.functional.tanh``. Kernel op: ``tanh``."""
    return _activation("tanh", input)


def hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> np.ndarray:
    """min(max(x, min_val), max_val), as ``torch.nn.functional.hardtanh``. Kernel op: ``hardtanh``."""
    return _activation("hardtanh", input, inplace, min_val=min_val, max_val=max_val)


def _softmax(op: str, input: Any, dim: Any, stacklevel: int, dtype: Any) -> np.ndarray:
    x = _array(input)
    check_input(op, x, _ANY_NDIM, "(*)")
    if dtype is not None:  # as PyTorch: the input is cast to dtype before the operation
        if np.dtype(dtype) not in FLOAT_DTYPES:
            raise TypeError(f"{op}: dtype must be float32, float64 or None, got {dtype!r}")
        x = x.astype(dtype, copy=False)
    if dim is None:
        # PyTorch's legacy rule (_get_softmax_dim), with its deprecation warning
        warnings.warn(
            f"Implicit dimension choice for {op} has been deprecated. Change the call to include dim=X as an argument.",
            UserWarning,
            stacklevel=stacklevel,
        )
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return _forward(op, x, dim=dim)


def softmax(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> np.ndarray:
    """exp(x_i) / sum_j exp(x_j) along ``dim``, as ``torch.nn.functional.softmax`` (dim None:
    PyTorch's legacy choice, with its warning; dtype: cast the input first). Kernel op: ``softmax``."""
    return _softmax("softmax", input, dim, _stacklevel, dtype)


def log_softmax(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> np.ndarray:
    """log(softmax(x)) along ``dim``, computed stably, as ``torch.nn.functional.log_softmax``.
    Kernel op: ``log_softmax``."""
    return _softmax("log_softmax", input, dim, _stacklevel, dtype)


# ---- losses ---------------------------------------------------------------------------------
def _reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    """PyTorch's ``_Reduction.legacy_get_string``: the deprecated size_average/reduce, when
    either is given, decide the reduction (with PyTorch's warning); else ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    legacy = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{legacy}' instead.",
        UserWarning,
        stacklevel=3,
    )
    return legacy


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> np.ndarray:
    """Cross entropy of logits and class indices or probabilities, as
    ``torch.nn.functional.cross_entropy``. Kernel op: ``cross_entropy``.

    input (N, C), (N, C, d1, ...) or (C,); target int64 class indices of shape (N,),
    (N, d1, ...) or (), or class probabilities of the input's shape; weight (C,) or None.
    """
    return _forward(
        "cross_entropy", input, target, weight, ignore_index=ignore_index,
        reduction=_reduction(size_average, reduce, reduction), label_smoothing=label_smoothing,
    )  # fmt: skip


def nll_loss(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> np.ndarray:
    """Negative log-likelihood of log-probabilities and class indices, as
    ``torch.nn.functional.nll_loss``. Kernel op: ``nll_loss``. Shapes as cross_entropy's."""
    return _forward(
        "nll_loss",
        input,
        target,
        weight,
        ignore_index=ignore_index,
        reduction=_reduction(size_average, reduce, reduction),
    )


def _unweighted(op: str, weight: Any) -> None:
    if weight is not None:
        raise NotImplementedError(f"{op}: refcnn's {op} kernel takes no weight; pass weight=None")


def mse_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", weight: Any = None
) -> np.ndarray:
    """(input - target)**2, reduced, as ``torch.nn.functional.mse_loss`` (weight: not
    supported). Kernel op: ``mse_loss``."""
    _unweighted("mse_loss", weight)
    return _forward("mse_loss", input, target, reduction=_reduction(size_average, reduce, reduction))


def l1_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", weight: Any = None
) -> np.ndarray:
    """|input - target|, reduced, as ``torch.nn.functional.l1_loss`` (weight: not supported).
    Kernel op: ``l1_loss``."""
    _unweighted("l1_loss", weight)
    return _forward("l1_loss", input, target, reduction=_reduction(size_average, reduce, reduction))


def smooth_l1_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean", beta: float = 1.0
) -> np.ndarray:
    """0.5 d**2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target), as
    ``torch.nn.functional.smooth_l1_loss``. Kernel op: ``smooth_l1_loss``."""
    reduction = _reduction(size_average, reduce, reduction)
    return _forward("smooth_l1_loss", input, target, reduction=reduction, beta=beta)


def binary_cross_entropy(
    input: Any, target: Any, weight: Any = None, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
) -> np.ndarray:
    """Binary cross entropy of probabilities (logs clamped at -100), as
    ``torch.nn.functional.binary_cross_entropy``. Kernel op: ``binary_cross_entropy``."""
    reduction = _reduction(size_average, reduce, reduction)
    return _forward("binary_cross_entropy", input, target, weight, reduction=reduction)


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> np.ndarray:
    """Binary cross entropy of logits, in the stable log-sigmoid form, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``. Kernel op:
    ``binary_cross_entropy_with_logits``."""
    return _forward(
        "binary_cross_entropy_with_logits", input, target, weight, pos_weight,
        reduction=_reduction(size_average, reduce, reduction),
    )  # fmt: skip
