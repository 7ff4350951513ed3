"""Class-indexed loss kernels, cross_entropy and nll_loss, and what every loss shares: the
reductions and the checks of their arguments (pointwise_loss.py holds the losses of one
value per element: mse_loss, l1_loss, smooth_l1_loss, binary_cross_entropy and
binary_cross_entropy_with_logits).

Every op is a pair of pure functions, as every kernel in refcnn.kernels::

    loss, ctx = forward(input, target, [weight, ...], *, reduction, ...)
    (grad_input,) = backward(grad_loss, ctx)

``reduction`` is ``'none'`` (the per-element loss array), ``'sum'`` or ``'mean'`` (a 0-d
array of the input's dtype); ``grad_loss`` has the loss's shape and dtype. The formulas are
PyTorch's, down to its edge cases (each stated where it is implemented): the weighted mean
of the class losses divides by the summed weights of the counted targets, an all-ignored
batch gives nan, BCE clamps its logs at -100, and the gradients at kinks are autograd's
(``sign(0) = 0``).

Class layout. Class-indexed ops take ``input`` of shape (N, C), (N, C, d1, d2, ...) or (C,)
(one unbatched sample) and see it as M = N*d1*d2*... rows of C classes: ``_rows`` moves
the class axis last and flattens the rest, ``_unrows`` undoes it for the gradient. The
targets of those M rows are class indices (an int64 array of shape (N,), (N, d1, d2, ...),
or () for unbatched input; uint8 too for (N,) and (): PyTorch's Long and Byte) or, for
cross_entropy, class probabilities (a float array of the input's shape).

One validator per op (installed with ``registry.set_validator``) rejects what PyTorch
rejects, and the few degenerate inputs PyTorch lets through silently (stated in each
validator), with refcnn's own error naming the op, the argument and the value.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from . import registry
from ._checks import FLOAT_DTYPES, check_float, check_same_dtype

REDUCTIONS = ("none", "mean", "sum")
CLASS_TARGET_DTYPES = (np.dtype(np.int64), np.dtype(np.uint8))  # PyTorch's Long and Byte


# ---- shared shape helpers ------------------------------------------------------------------
def _rows(a: np.ndarray) -> np.ndarray:
    """(C,) -> (1, C); (N, C, d1, ...) -> (N*d1*..., C): the class axis last, one row per sample."""
    if a.ndim <= 2:
        return a.reshape(-1, a.shape[-1])
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _unrows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``_rows`` for an array of ``shape``: (M, C) -> shape, contiguous."""
    if len(shape) == 1:
        return rows.reshape(shape)
    if len(shape) == 2:
        return np.ascontiguousarray(rows.reshape(shape))
    moved = rows.reshape((shape[0], *shape[2:], shape[1]))
    return np.ascontiguousarray(np.moveaxis(moved, -1, 1))


def _loss_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the 'none' loss of class-indexed input: the class axis removed."""
    return () if len(shape) == 1 else (shape[0], *shape[2:])


def _reduce(per: np.ndarray, reduction: str, count: Any) -> np.ndarray:
    """'none' -> ``per``; 'sum' -> sum(per); 'mean' -> sum(per) / count (0/0 = nan, as PyTorch).
    The sum is accumulated in float64 and rounded once to per's dtype: a float32 loss over
    thousands of rows then stays a rounding or two from exact (a float32 sum drifts)."""
    if reduction == "none":
        return per
    total = np.ascontiguousarray(per).sum(dtype=np.float64)  # C order: the same bits in any layout
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # past float32's range: inf
        return np.asarray(total if reduction == "sum" else total / count, dtype=per.dtype)


def _scale(grad_loss: np.ndarray, reduction: str, count: Any) -> np.ndarray:
    """d loss / d per-element loss, times grad_loss: grad_loss itself ('none', 'sum') or
    grad_loss / count ('mean'; count = 0 gives inf, which PyTorch lets through too)."""
    if reduction != "mean":
        return grad_loss
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(grad_loss / count, dtype=grad_loss.dtype)


# ---- validation ------------------------------------------------------------------------------
def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def check_reduction(op: str, reduction: Any) -> None:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def check_label_smoothing(op: str, label_smoothing: Any) -> None:
    # PyTorch rejects label_smoothing > 1 but silently ignores a negative one (its code
    # takes the smoothing branch only for > 0): refcnn rejects both.
    if not _is_real(label_smoothing):
        raise TypeError(f"{op}: label_smoothing must be a float in [0, 1], got {label_smoothing!r}")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing!r}")


def check_ignore_index(op: str, ignore_index: Any) -> None:
    if not isinstance(ignore_index, (int, np.integer)) or isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")


def _check_input_classes(op: str, name: str, x: Any) -> int:
    """``x`` is a float (C,) or (N, C, ...) array with C >= 1; returns C."""
    check_float(op, name, x)
    if x.ndim == 0:
        raise ValueError(f"{op}: {name} must have a class axis: shape (C,), (N, C) or (N, C, d1, ...), got shape ()")
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    # PyTorch accepts C = 0 with probability targets and returns nan; refcnn rejects it.
    if C == 0:
        raise ValueError(f"{op}: {name} needs at least one class (C >= 1), got shape {x.shape}")
    return int(C)


def _check_class_target(
    op: str, name: str, x: np.ndarray, target: Any, ignore_index: int, probabilities: bool = False
) -> None:
    """Class indices for input ``x``: int64/uint8, shape (N, d1, ...) (or () for a 1-D
    ``x``), every label in [0, C) unless it equals ``ignore_index``. ``probabilities``: the op
    also takes class probabilities (so a float target of another shape gets that hint)."""
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    if target.dtype.kind == "f" and probabilities:
        raise TypeError(
            f"{op}: a float target must hold class probabilities of the {name}' shape {x.shape}, got shape "
            f"{target.shape}; class indices must be an int64 or uint8 array of shape {_loss_shape(x.shape)}"
        )
    if target.dtype.kind == "f":
        raise TypeError(
            f"{op}: target must hold class indices, an int64 or uint8 array of shape {_loss_shape(x.shape)}, "
            f"got dtype {target.dtype}"
        )
    if target.dtype not in CLASS_TARGET_DTYPES:
        raise TypeError(
            f"{op}: class-index target must be an int64 or uint8 array (PyTorch's Long or Byte), got dtype {target.dtype}"
        )
    # PyTorch takes Byte targets for (C,) and (N, C) input only; its spatial path needs Long.
    if x.ndim > 2 and target.dtype != np.int64:
        raise TypeError(
            f"{op}: class-index target for {name} of shape {x.shape} (N, C, d1, ...) must be int64 "
            f"(PyTorch's Long), got dtype {target.dtype}"
        )
    if x.ndim == 1:
        # PyTorch's forward also takes a (1,) target here, but its backward then fails
        # ("size mismatch"), and with label_smoothing its forward too: refcnn asks for ().
        if target.shape != ():
            raise ValueError(
                f"{op}: an unbatched {name} of shape {x.shape} takes one class index (a target of shape ()), "
                f"got target of shape {target.shape}"
            )
    elif target.shape != _loss_shape(x.shape):
        want = "(N,)" if x.ndim == 2 else "(N, d1, ...)"
        raise ValueError(
            f"{op}: target must have shape {want} = {_loss_shape(x.shape)} for {name} of shape {x.shape}, "
            f"got {target.shape}"
        )
    if target.size and 0 <= target.min() and target.max() < C:
        return  # every label is a class (the usual case: two reductions, not five passes)
    t = target.astype(np.int64)
    bad = (t != ignore_index) & ((t < 0) | (t >= C))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        # IndexError, as PyTorch's "Target 5 is out of bounds."
        raise IndexError(
            f"{op}: target label {int(t[where])} at index {where} is out of range for C={C} classes "
            f"(labels must be in [0, {C - 1}] or equal ignore_index={int(ignore_index)}); "
            f"{int(bad.sum())} of {t.size} labels are out of range"
        )


def _check_class_weight(op: str, x: np.ndarray, weight: Any) -> None:
    if weight is None:
        return
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    check_float(op, "weight", weight)
    if weight.shape != (C,):
        raise ValueError(f"{op}: weight must have shape (C,) = ({C},), one entry per class, got {weight.shape}")


def validate_cross_entropy(
    logits: Any, target: Any, weight: Any, *, ignore_index: Any, reduction: Any, label_smoothing: Any
) -> None:
    op = "cross_entropy"
    _check_input_classes(op, "logits", logits)
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{op}: target must be a numpy.ndarray, got {type(target).__name__}")
    check_ignore_index(op, ignore_index)
    check_reduction(op, reduction)
    check_label_smoothing(op, label_smoothing)
    if target.shape == logits.shape:
        # As PyTorch: a target of the logits' shape holds class probabilities.
        if target.dtype.kind != "f":
            raise TypeError(
                f"{op}: a target of the logits' shape {logits.shape} holds class probabilities and must be "
                f"float32 or float64, got dtype {target.dtype}"
            )
        check_float(op, "target", target)
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported for class-probability targets, got {ignore_index}")
    else:
        _check_class_target(op, "logits", logits, target, ignore_index, probabilities=True)
    _check_class_weight(op, logits, weight)
    prob = target if target.shape == logits.shape else None
    check_same_dtype(op, logits=logits, target=prob, weight=weight)


def validate_nll_loss(input: Any, target: Any, weight: Any, *, ignore_index: Any, reduction: Any) -> None:
    op = "nll_loss"
    _check_input_classes(op, "input", input)
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{op}: target must be a numpy.ndarray, got {type(target).__name__}")
    check_ignore_index(op, ignore_index)
    check_reduction(op, reduction)
    _check_class_target(op, "input", input, target, ignore_index)
    _check_class_weight(op, input, weight)
    check_same_dtype(op, input=input, weight=weight)


# ---- cross_entropy -----------------------------------------------------------------------------
class CrossEntropyCtx(NamedTuple):
    shape: tuple[int, ...]  # the logits' shape
    lsm: np.ndarray  # (M, C) log-softmax of the logits
    wq: np.ndarray | None  # (M, C) probability targets (smoothed) times the weights, or None
    t: np.ndarray | None  # (M,) class indices (ignored rows set to 0), or None
    valid: np.ndarray | None  # (M,) row is not ignored
    w: np.ndarray  # (C,) class weights (ones when none were given)
    label_smoothing: float
    reduction: str
    divisor: Any  # the mean's divisor


def _smoothed_loss(
    nll: np.ndarray, smooth: np.ndarray | None, ls: float, C: int, reduction: str, count: Any
) -> np.ndarray:
    """The class-index loss from its two per-row parts, reduced each on its own and then
    combined, as PyTorch does: ``(1 - ls) * reduce(nll) + (ls / C) * reduce(smooth)``
    (``reduce(nll)`` alone without smoothing). Reducing the parts separately matters when the
    mean's divisor (the counted weights) is 0: the nll part is then 0/0 = nan, which the
    combined sum (finite / 0 = inf) would hide."""
    loss = _reduce(nll, reduction, count)
    if smooth is None:
        return loss
    with np.errstate(invalid="ignore"):  # nan + inf, or inf - inf, is nan, as in PyTorch
        return np.asarray((1 - ls) * loss + (ls / C) * _reduce(smooth, reduction, count), dtype=nll.dtype)


def _smoothed(q: np.ndarray, label_smoothing: float) -> np.ndarray:
    # PyTorch smooths probability targets only for label_smoothing > 0.
    if label_smoothing > 0:
        return q * (1 - label_smoothing) + label_smoothing / q.shape[-1]
    return q


def cross_entropy_fast_forward(
    logits: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None,
    *,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> tuple[np.ndarray, CrossEntropyCtx]:
    """Vectorised cross_entropy (see ``cross_entropy_reference_forward`` for the math).

    All M rows at once: the log-softmax is one max, one exp, one sum and one log over the
    (M, C) array; class-index targets pick their entries with one fancy index.
    """
    ls = float(label_smoothing)
    x = _rows(logits)
    M, C = x.shape
    w = np.ones(C, dtype=x.dtype) if weight is None else weight
    with np.errstate(invalid="ignore"):  # a row of only -inf, or holding +inf: nan, silently as PyTorch
        z = x - x.max(axis=1, keepdims=True)
        lsm = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    if target.shape == logits.shape:
        wq = w * _smoothed(_rows(target), ls)
        per = -(wq * lsm).sum(axis=1)
        loss = _reduce(per.reshape(_loss_shape(logits.shape)), reduction, M)
        return loss, CrossEntropyCtx(logits.shape, lsm, wq, None, None, w, ls, reduction, M)
    t = target.reshape(-1).astype(np.int64)
    valid = t != ignore_index
    if valid.all():  # nothing ignored (the usual batch): no row to zero
        wt = w[t]
        nll = -wt * lsm[np.arange(M), t]
        smooth = -(lsm * w).sum(axis=1) if ls > 0 else None
    else:
        t = np.where(valid, t, 0)
        wt = np.where(valid, w[t], 0)
        nll = np.where(valid, -wt * lsm[np.arange(M), t], 0)
        smooth = np.where(valid, -(lsm * w).sum(axis=1), 0) if ls > 0 else None
    count = wt.sum(dtype=np.float64)  # the mean's divisor, in float64 as the sum it divides
    shape = _loss_shape(logits.shape)
    smooth = None if smooth is None else smooth.reshape(shape)
    loss = _smoothed_loss(nll.reshape(shape), smooth, ls, C, reduction, count)
    return loss, CrossEntropyCtx(logits.shape, lsm, None, t, valid, w, ls, reduction, count)


def cross_entropy_fast_backward(
    grad_loss: np.ndarray, ctx: CrossEntropyCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray]:
    """dL/dlsm is G below (one row per sample); the log-softmax backward is one product."""
    lsm = ctx.lsm
    M, C = lsm.shape
    g = _scale(grad_loss, ctx.reduction, ctx.divisor).reshape(-1)  # (M,), or (1,) broadcasting to it
    with np.errstate(invalid="ignore"):
        if ctx.wq is not None:
            G = -g[:, None] * ctx.wq
        else:
            assert ctx.t is not None and ctx.valid is not None
            G = np.zeros_like(lsm)
            if ctx.valid.all():  # every row counts
                rows, gv, tv = np.arange(M), g, ctx.t
            else:
                rows = np.flatnonzero(ctx.valid)
                gv, tv = (g[rows] if g.size > 1 else g), ctx.t[rows]
            # Only the counted rows get a gradient (ignored rows stay 0 even when the mean's
            # divisor is 0 and gv is inf); a zero weight times that inf is nan, as in PyTorch.
            G[rows, tv] = -(1 - ctx.label_smoothing) * (ctx.w[tv] * gv)
            if ctx.label_smoothing > 0:
                G[rows] -= (ctx.label_smoothing / C) * gv[:, None] * ctx.w
        grad = G - np.exp(lsm) * G.sum(axis=1, keepdims=True)
    return (_unrows(grad, ctx.shape),)


def cross_entropy_reference_forward(
    logits: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None,
    *,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> tuple[np.ndarray, CrossEntropyCtx]:
    """Cross entropy of logits, PyTorch's ``F.cross_entropy``.

    Shapes: logits (N, C), (N, C, d1, ...) or (C,); target class indices (N,), (N, d1, ...)
    or (), or class probabilities of the logits' shape; weight (C,) or None (all 1);
    loss (N, d1, ...) for 'none' ((), unbatched), else a 0-d array. Per row i (a sample, or
    a pixel of one), with eps = label_smoothing and w_c the class weights:

        lsm[i, c] = (x[i, c] - m_i) - log(sum_k exp(x[i, k] - m_i)),   m_i = max_k x[i, k]

    class index t_i (rows with t_i == ignore_index get loss 0 and count for nothing):
        nll_i = -w[t_i] * lsm[i, t_i],   smooth_i = -sum_c w_c * lsm[i, c]
        loss_i = (1 - eps) * nll_i + (eps / C) * smooth_i
        mean   = (1 - eps) * sum_i nll_i / W + (eps / C) * sum_i smooth_i / W,
                 W = sum_{counted i} w[t_i]
    The mean reduces the two parts separately, as PyTorch: when W = 0 (nothing counted, or
    every counted class weighs 0) the nll part is 0/0 = nan, so the mean is nan (not the
    inf that (finite smooth sum) / 0 would give).
    class probabilities q[i, :], smoothed to q*(1 - eps) + eps/C when eps > 0:
        loss_i = -sum_c w_c * q[i, c] * lsm[i, c]
        mean   = sum_i loss_i / M                         (M rows, whatever the weights)

    Backward: with g_i = grad_loss_i ('none'), grad_loss ('sum') or grad_loss / divisor
    ('mean'), and a[i, c] = w_c * q[i, c] (class index: (1 - eps) * w[t_i] * [c == t_i] +
    eps/C * w_c, and 0 on ignored rows), G[i, c] = dL/dlsm[i, c] = -g_i * a[i, c] and
        dL/dx[i, c] = G[i, c] - softmax(x_i)[c] * sum_k G[i, k]
                    = g_i * (softmax(x_i)[c] * sum_k a[i, k] - a[i, c]).
    With W = 0 the mean's g_i is inf, a zero weight makes G nan, and every counted row's
    gradient is nan (ignored rows stay 0), as PyTorch's autograd gives.

    The reference loops over the rows; within a row, over the C classes with NumPy.
    """
    ls = float(label_smoothing)
    x = _rows(logits)
    M, C = x.shape
    w = np.ones(C, dtype=x.dtype) if weight is None else weight
    lsm = np.empty_like(x)
    for i in range(M):
        with np.errstate(invalid="ignore"):  # a row of only -inf, or holding +inf: nan, as PyTorch
            z = x[i] - x[i].max()
        lsm[i] = z - np.log(np.sum(np.exp(z)))
    shape = _loss_shape(logits.shape)
    if target.shape == logits.shape:
        q = _rows(target)
        wq = np.empty_like(q)
        per = np.zeros(M, dtype=x.dtype)
        for i in range(M):
            wq[i] = w * _smoothed(q[i], ls)
            per[i] = -np.sum(wq[i] * lsm[i])
        loss = _reduce(per.reshape(shape), reduction, M)
        return loss, CrossEntropyCtx(logits.shape, lsm, wq, None, None, w, ls, reduction, M)
    labels = target.reshape(-1).astype(np.int64)
    t = np.zeros(M, dtype=np.int64)
    valid = np.zeros(M, dtype=bool)
    nll = np.zeros(M, dtype=x.dtype)
    smooth = np.zeros(M, dtype=x.dtype)
    total_weight = np.float64(0)  # in float64: a float32 running sum drifts (1e-4 over 6,480 rows)
    for i in range(M):
        if labels[i] == ignore_index:
            continue
        t[i], valid[i] = labels[i], True
        total_weight += w[t[i]]
        nll[i] = -w[t[i]] * lsm[i, t[i]]
        if ls > 0:
            smooth[i] = -np.sum(w * lsm[i])
    loss = _smoothed_loss(nll.reshape(shape), smooth.reshape(shape) if ls > 0 else None, ls, C, reduction, total_weight)
    return loss, CrossEntropyCtx(logits.shape, lsm, None, t, valid, w, ls, reduction, total_weight)


def cross_entropy_reference_backward(
    grad_loss: np.ndarray, ctx: CrossEntropyCtx, *, needs_input_grad: bool = True
) -> tuple[np.ndarray]:
    """dL/dx[i, :] = g_i * (softmax_i * sum(a_i) - a_i), row by row (see the forward)."""
    lsm = ctx.lsm
    M, C = lsm.shape
    g = np.broadcast_to(_scale(grad_loss, ctx.reduction, ctx.divisor).reshape(-1), (M,))
    ls = ctx.label_smoothing
    grad = np.zeros_like(lsm)
    for i in range(M):
        # G = dL/dlsm[i, :] = -g_i * a[i, :], each product formed before any sum, as autograd
        # forms it: a zero weight times an infinite g_i (a mean over zero counted weight) is
        # nan, and the nan reaches the whole row through the log-softmax backward, as in PyTorch.
        with np.errstate(invalid="ignore"):
            if ctx.wq is not None:
                G = -g[i] * ctx.wq[i]
            else:
                assert ctx.t is not None and ctx.valid is not None
                G = np.zeros_like(lsm[i])
                # An ignored row keeps G = 0: its gradient is 0, or nan where its log-softmax
                # is nan (a row of only -inf, or holding +inf), as PyTorch's autograd gives.
                if ctx.valid[i]:
                    if ls > 0:
                        G = G - (ls / C) * g[i] * ctx.w
                    G[ctx.t[i]] -= (1 - ls) * (ctx.w[ctx.t[i]] * g[i])
            grad[i] = G - np.exp(lsm[i]) * np.sum(G)
    return (_unrows(grad, ctx.shape),)


# ---- nll_loss ----------------------------------------------------------------------------------
class NllCtx(NamedTuple):
    shape: tuple[int, ...]
    t: np.ndarray  # (M,) class indices, ignored rows set to 0
    valid: np.ndarray  # (M,)
    wt: np.ndarray  # (M,) weight of each row's class, 0 on ignored rows
    reduction: str
    divisor: Any


def nll_loss_forward(
    input: np.ndarray, target: np.ndarray, weight: np.ndarray | None, *, ignore_index: int, reduction: str
) -> tuple[np.ndarray, NllCtx]:
    """Negative log-likelihood of log-probabilities, PyTorch's ``F.nll_loss``.

    Shapes as cross_entropy with class-index targets: input (N, C), (N, C, d1, ...) or (C,);
    target (N,), (N, d1, ...) or (); weight (C,) or None.

        loss_i = -w[t_i] * input[i, t_i]   (0 where t_i == ignore_index)
        mean   = sum_i loss_i / sum_{counted i} w[t_i]   (nan when nothing is counted)

    Backward: dL/dinput[i, t_i] = -w[t_i] * g_i on counted rows, 0 elsewhere (g_i as in
    cross_entropy).
    """
    x = _rows(input)
    M, C = x.shape
    t = target.reshape(-1).astype(np.int64)
    valid = t != ignore_index
    t = np.where(valid, t, 0)
    wt = np.where(valid, (np.ones(C, dtype=x.dtype) if weight is None else weight)[t], 0).astype(x.dtype)
    per = np.where(valid, -wt * x[np.arange(M), t], 0).astype(x.dtype)
    count = wt.sum(dtype=np.float64)  # the mean's divisor, in float64 as the sum it divides
    loss = _reduce(per.reshape(_loss_shape(input.shape)), reduction, count)
    return loss, NllCtx(input.shape, t, valid, wt, reduction, count)


def nll_loss_backward(grad_loss: np.ndarray, ctx: NllCtx, *, needs_input_grad: bool = True) -> tuple[np.ndarray]:
    M = ctx.t.size
    C = ctx.shape[0] if len(ctx.shape) == 1 else ctx.shape[1]
    g = np.broadcast_to(_scale(grad_loss, ctx.reduction, ctx.divisor).reshape(-1), (M,))
    grad = np.zeros((M, C), dtype=ctx.wt.dtype)
    rows = np.flatnonzero(ctx.valid)
    with np.errstate(invalid="ignore"):  # a zero weight times an inf g (divisor 0) is nan, as in PyTorch
        grad[rows, ctx.t[rows]] = -(ctx.wt[rows] * g[rows])
    return (_unrows(grad, ctx.shape),)


# ---- registration ------------------------------------------------------------------------------
registry.set_validator("cross_entropy", validate_cross_entropy)
registry.register("cross_entropy", "reference", cross_entropy_reference_forward, cross_entropy_reference_backward)
registry.register("cross_entropy", "fast", cross_entropy_fast_forward, cross_entropy_fast_backward)

registry.set_validator("nll_loss", validate_nll_loss)
registry.register("nll_loss", "reference", nll_loss_forward, nll_loss_backward)

__all__ = ["FLOAT_DTYPES", "REDUCTIONS", "check_label_smoothing", "check_reduction"]
