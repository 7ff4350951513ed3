"""refcnn.nn.functional against torch.nn.functional (needs torch).

    pytest conformance/test_functional.py

Every F function has the parameters of torch's (names, order, defaults), and on a few
asymmetric configurations per function (positional and keyword forms, int and pair forms,
padding='same', unbatched inputs), in float32 and float64, returns what torch's returns on
the same (upcast) inputs in float64, BatchNorm's in-place running statistics included.

Tolerances are refcnn.testing's policy, allowed = K * (gamma(n, eps) * S + n * eta), with n
and S obtained by the suite's three methods (stated in the report of
``python -m refcnn conformance``):
  exact   selections (max pools, relu, hardtanh, identity dropout): n = 0, bit-equal;
  higham  sums of products (conv2d, conv_transpose2d, linear): n = the op on ones,
          S = the op on the absolute values (torch, float64);
  mixed   everything else: S_i = |y_i| + sum_j |dy_i/da_j| |a_j| over every float input a
          (a Jacobian by torch in float64), n_i = 2 R_i + 3 L + 10 with R_i the number of
          inputs y_i depends on (the Jacobian's non-zeros) and L = 8 (one NumPy
          transcendental): the largest forward count of the suite's table for any op.
The forward is what F returns; the gradients are the kernels' and the conformance suite
checks them. The cross-entropy corner (class weights, label smoothing, counted weights
summing to 0) is compared here with gradients too, for both implementations.
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from refcnn import kernels, testing
from refcnn.nn import functional as F

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
L = 8  # one NumPy transcendental, in units of eps (<= 4 ulp)

# ---- signatures --------------------------------------------------------------------------------
# torch's builtins have no inspectable signature; their docstring's first line gives it.
_TORCH_SIGNATURE_SOURCE = {
    "max_pool2d": "max_pool2d_with_indices",
    "adaptive_max_pool2d": "adaptive_max_pool2d_with_indices",
}


def _torch_parameters(name):
    """[(name, default or inspect.Parameter.empty)] of torch.nn.functional.<name>."""
    fn = getattr(TF, _TORCH_SIGNATURE_SOURCE.get(name, name))
    try:
        params = inspect.signature(fn).parameters.values()
        if [p.kind for p in params] != [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]:
            return [(p.name, p.default) for p in params]
    except (TypeError, ValueError):
        pass
    first = fn.__doc__.strip().splitlines()[0]  # e.g. "conv2d(input, weight, bias=None, ...) -> Tensor"
    tree = ast.parse(f"def f{first[first.index('(') : first.rindex(')') + 1]}: pass")
    args = tree.body[0].args
    defaults = [inspect.Parameter.empty] * (len(args.args) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults
    ]
    return [(a.arg, d) for a, d in zip(args.args, defaults, strict=True)]


@pytest.mark.parametrize("name", F.__all__)
def test_signature_is_torchs(name):
    ours = [(p.name, p.default) for p in inspect.signature(getattr(F, name)).parameters.values()]
    assert ours == _torch_parameters(name), f"F.{name}: refcnn {ours} vs torch {_torch_parameters(name)}"


# ---- cases -------------------------------------------------------------------------------------
def _rng(seed=0):
    return np.random.default_rng(seed)


def _x(*shape, seed=0, low=None, high=None):
    rng = _rng(seed + sum(shape))
    if low is not None:
        return rng.uniform(low, high, shape)
    return rng.standard_normal(shape)


def _labels(shape, C, seed=0):
    return _rng(seed).integers(0, C, shape).astype(np.int64)


def _cases():
    """(id, F name, positional args, keyword args, method). Float arrays are float64 here and
    cast to the dtype under test; int arrays are labels."""
    x4, x3 = _x(2, 3, 9, 8), _x(3, 7, 6)
    act = _x(3, 4, 5)
    logits, spatial = _x(4, 5, seed=1), _x(2, 5, 3, 4, seed=2)
    probs = np.exp(_x(4, 5, seed=3))
    probs /= probs.sum(axis=1, keepdims=True)
    bn_x = _x(4, 3, 5, 2, seed=4)
    rm, rv = _x(3, seed=5), _x(3, seed=6, low=0.5, high=2.0)
    w3, b3 = _x(3, seed=7, low=0.5, high=1.5), _x(3, seed=8)
    yield "conv2d-k3x5-s2x1-p1x2-d1x2", "conv2d", (x4, _x(4, 3, 3, 5), _x(4)), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)), "higham"  # fmt: skip
    yield "conv2d-same-k2x4-d2x1-g2-positional", "conv2d", (_x(2, 4, 7, 6), _x(6, 2, 2, 4), None, 1, "same", (2, 1), 2), {}, "higham"  # fmt: skip
    yield "conv2d-valid-unbatched", "conv2d", (x3, _x(2, 3, 3, 2), _x(2)), dict(padding="valid"), "higham"
    yield "conv2d-int-forms", "conv2d", (x4, _x(5, 3, 2, 3)), dict(stride=2, padding=1, dilation=2), "higham"
    yield "conv_transpose2d-s2x1-p1x2-op1x0", "conv_transpose2d", (_x(2, 4, 5, 6), _x(4, 3, 3, 5), _x(3)), dict(stride=(2, 1), padding=(1, 2), output_padding=(1, 0)), "higham"  # fmt: skip
    yield "conv_transpose2d-g2-d1x2-unbatched", "conv_transpose2d", (_x(4, 5, 6), _x(4, 1, 2, 3)), dict(groups=2, dilation=(1, 2)), "higham"  # fmt: skip
    yield "max_pool2d-k3x2-s2x1-p1x0-d1x2-ceil-indices", "max_pool2d", (x4, (3, 2), (2, 1), (1, 0), (1, 2), True, True), {}, "exact"  # fmt: skip
    yield "max_pool2d-unbatched-stride-none", "max_pool2d", (x3, 2), {}, "exact"
    yield "avg_pool2d-k3x2-s2x1-p1-ceil-nopad", "avg_pool2d", (x4, (3, 2), (2, 1), 1), dict(ceil_mode=True, count_include_pad=False), "mixed"  # fmt: skip
    yield "avg_pool2d-unbatched-divisor", "avg_pool2d", (x3, 3), dict(divisor_override=5), "mixed"
    yield "adaptive_avg_pool2d-4x3", "adaptive_avg_pool2d", (_x(2, 3, 9, 7), (4, 3)), {}, "mixed"
    yield "adaptive_avg_pool2d-unbatched-None", "adaptive_avg_pool2d", (_x(3, 9, 7), (None, 2)), {}, "mixed"
    yield "adaptive_max_pool2d-4x3-indices", "adaptive_max_pool2d", (_x(2, 3, 9, 7), (4, 3), True), {}, "exact"
    yield "adaptive_max_pool2d-unbatched-int", "adaptive_max_pool2d", (_x(3, 9, 7), 3), {}, "exact"
    yield "linear-3d", "linear", (_x(2, 3, 5), _x(4, 5), _x(4)), {}, "higham"
    yield "linear-1d-nobias", "linear", (_x(5), _x(4, 5)), {}, "higham"
    yield "batch_norm-train-running", "batch_norm", (bn_x, rm, rv, w3, b3, True, 0.3, 1e-3), {}, "mixed"
    yield "batch_norm-eval", "batch_norm", (bn_x, rm, rv), dict(weight=w3, bias=b3), "mixed"
    yield "batch_norm-train-no-running", "batch_norm", (_x(5, 3, 4, seed=9), None, None), dict(training=True), "mixed"
    yield "group_norm-g3", "group_norm", (_x(2, 6, 5, 3), 3, _x(6), _x(6)), dict(eps=1e-4), "mixed"
    yield "layer_norm-5x4", "layer_norm", (_x(2, 3, 5, 4), (5, 4), _x(5, 4), _x(5, 4)), {}, "mixed"
    yield "layer_norm-list", "layer_norm", (_x(2, 3, 5), [5]), {}, "mixed"
    yield "dropout-eval", "dropout", (act, 0.3, False), {}, "exact"
    yield "dropout2d-eval", "dropout2d", (x4,), dict(p=0.6, training=False), "exact"
    yield "relu", "relu", (act,), {}, "exact"
    yield "leaky_relu-0.2", "leaky_relu", (act, 0.2), {}, "mixed"
    yield "elu-0.7", "elu", (act,), dict(alpha=0.7), "mixed"
    yield "gelu", "gelu", (act,), {}, "mixed"
    yield "gelu-tanh", "gelu", (act,), dict(approximate="tanh"), "mixed"
    yield "silu", "silu", (act,), {}, "mixed"
    yield "sigmoid", "sigmoid", (act,), {}, "mixed"
    yield "tanh", "tanh", (act,), {}, "mixed"
    yield "hardtanh--0.5-1.5", "hardtanh", (act, -0.5, 1.5), {}, "exact"
    yield "softmax-dim1", "softmax", (act,), dict(dim=1), "mixed"
    yield "softmax-dim-1", "softmax", (act, -1), {}, "mixed"
    yield "log_softmax-dim0", "log_softmax", (act,), dict(dim=0), "mixed"
    for reduction in ("mean", "sum", "none"):
        yield f"cross_entropy-w-ignore1-ls0.2-{reduction}", "cross_entropy", (logits, _labels(4, 5), _x(5, low=0.5, high=2)), dict(ignore_index=1, reduction=reduction, label_smoothing=0.2), "mixed"  # fmt: skip
    yield "cross_entropy-spatial", "cross_entropy", (spatial, _labels((2, 3, 4), 5)), {}, "mixed"
    yield "cross_entropy-probabilities-ls0.1", "cross_entropy", (logits, probs), dict(label_smoothing=0.1), "mixed"
    yield "nll_loss-w-sum", "nll_loss", (logits, _labels(4, 5, seed=1), _x(5, low=0.5, high=2)), dict(reduction="sum"), "mixed"  # fmt: skip
    yield "mse_loss", "mse_loss", (act, _x(3, 4, 5, seed=1)), {}, "mixed"
    yield "l1_loss-sum", "l1_loss", (act, _x(3, 4, 5, seed=1)), dict(reduction="sum"), "mixed"
    yield "smooth_l1_loss-beta0.5-none", "smooth_l1_loss", (act, _x(3, 4, 5, seed=1)), dict(reduction="none", beta=0.5), "mixed"  # fmt: skip
    yield "binary_cross_entropy-w", "binary_cross_entropy", (_x(3, 4, low=0.05, high=0.95), _x(3, 4, seed=1, low=0, high=1), _x(4, low=0.5, high=2)), {}, "mixed"  # fmt: skip
    yield "binary_cross_entropy_with_logits-w-pos", "binary_cross_entropy_with_logits", (_x(3, 4), _x(3, 4, seed=1, low=0, high=1)), dict(weight=_x(3, 1, low=0.5, high=2), pos_weight=_x(4, low=0.5, high=3)), "mixed"  # fmt: skip


CASES = list(_cases())


def _is_float(a):
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _cast(value, dtype):
    return value.astype(dtype) if _is_float(value) else value


def _torch(value):
    """float arrays (already rounded to the dtype under test) upcast to float64 tensors."""
    if _is_float(value):
        return torch.from_numpy(value.astype(np.float64))
    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


def _outputs(out):
    return list(out) if isinstance(out, tuple) else [out]


def _batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """F.batch_norm in evaluation as a torch expression, differentiable in the running
    statistics (which torch's kernel is not): for the Jacobian of the bound only."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = (x - running_mean.view(shape)) / torch.sqrt(running_var.view(shape) + eps)
    y = y if weight is None else y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)


# Class weights: torch has no derivative for them (its nll kernel refuses one). They are
# positive in every case here and weigh terms -log p >= 0, so the sums they enter do not
# cancel and |y| bounds what rounding them costs.
_NO_DERIVATIVE = {("nll_loss", 2), ("cross_entropy", 2)}


def _reduced(per, reduction):
    return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per


def _bce_form(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """F.binary_cross_entropy as a torch expression, differentiable in the weight (torch's
    kernel is not): for the Jacobian of the bound only."""
    per = (target - 1) * torch.clamp(torch.log1p(-input), min=-100) - target * torch.clamp(torch.log(input), min=-100)
    return _reduced(per if weight is None else per * weight, reduction)


def _bce_logits_form(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
):  # fmt: skip
    """F.binary_cross_entropy_with_logits as a torch expression, differentiable in weight and
    pos_weight (torch's kernel is not): for the Jacobian of the bound only."""
    log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
    per = (1 - target) * input + log_weight * (torch.log1p(torch.exp(-input.abs())) + torch.clamp(-input, min=0))
    return _reduced(per if weight is None else per * weight, reduction)


_FORMS = {"binary_cross_entropy": _bce_form, "binary_cross_entropy_with_logits": _bce_logits_form}


def _mixed_bound(name, args, kwargs, index):
    """n, S of output ``index`` by the mixed method: a torch Jacobian in float64 over every
    float input the output depends on (for batch_norm in training not the running
    statistics, which it only updates)."""
    function = _FORMS.get(name, getattr(TF, name))
    slots = [i for i, a in enumerate(args) if _is_float(a) and (name, i) not in _NO_DERIVATIVE]
    if name == "batch_norm":
        training = args[5] if len(args) > 5 else kwargs.get("training", False)
        if training:
            slots = [i for i in slots if i not in (1, 2)]
        else:
            function = _batch_norm_eval
    keys = [k for k, v in kwargs.items() if _is_float(v) and (name, k) not in _NO_DERIVATIVE]
    values = [_torch(args[i]) for i in slots] + [_torch(kwargs[k]) for k in keys]

    def fn(*floats):
        call = [_torch(a) for a in args]
        for i, v in zip(slots, floats, strict=False):
            call[i] = v.clone()
        kw = {k: _torch(v) for k, v in kwargs.items()}
        kw.update({k: v.clone() for k, v in zip(keys, floats[len(slots) :], strict=True)})
        return _outputs(function(*call, **kw))[index]

    y = fn(*values).detach().numpy()
    jac = torch.autograd.functional.jacobian(fn, tuple(values))
    S = np.abs(y).astype(np.float64)
    R = np.zeros(y.shape)
    for J, a in zip(jac, values, strict=True):
        J = J.numpy().reshape(*y.shape, -1)
        S = S + (np.abs(J) * np.abs(a.numpy()).reshape(-1)).sum(axis=-1)
        R = R + np.count_nonzero(J, axis=-1)
    return 2 * R + 3 * L + 10, S


def _bound(method, name, args, kwargs, index):
    if method == "exact":
        return 0, 0
    if method == "higham":

        def on(f):
            call = [_torch(f(a)) if _is_float(a) else _torch(a) for a in args]
            return _outputs(getattr(TF, name)(*call, **kwargs))[index].numpy()

        return on(np.ones_like), on(np.abs)
    return _mixed_bound(name, args, kwargs, index)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's, about its copy
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id, name, args, kwargs, method", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_torch(case_id, name, args, kwargs, method, dtype):
    ours_args = [_cast(a, dtype) for a in args]
    ours_kwargs = {k: _cast(v, dtype) for k, v in kwargs.items()}
    rounded = [a.copy() if isinstance(a, np.ndarray) else a for a in ours_args]  # before any in-place update
    torch_args = [_torch(a) for a in rounded]
    out = _outputs(getattr(F, name)(*ours_args, **ours_kwargs))
    expected = _outputs(getattr(TF, name)(*torch_args, **{k: _torch(v) for k, v in ours_kwargs.items()}))
    assert len(out) == len(expected), f"{case_id}: {len(out)} outputs, torch returns {len(expected)}"
    for index, (a, e) in enumerate(zip(out, expected, strict=True)):
        e = e.numpy()
        what = f"F.{name} [{case_id}] output {index}"
        assert isinstance(a, np.ndarray) and a.shape == e.shape, (
            f"{what}: {type(a).__name__} {np.shape(a)} vs {e.shape}"
        )
        if e.dtype.kind == "i":  # max pooling's indices
            assert a.dtype == np.int64 and np.array_equal(a, e), f"{what}: indices differ"
            continue
        assert a.dtype == dtype, f"{what}: dtype {a.dtype}, expected {np.dtype(dtype)}"
        n, S = _bound(method, name, rounded, ours_kwargs, index)
        testing.assert_close(a, e, n, S, dtype, what)
    if name == "batch_norm":  # the running statistics, updated in place in training, as torch
        for slot in (1, 2):
            if ours_args[slot] is not None:
                n, S = _state_bound(rounded, ours_kwargs, slot)
                testing.assert_close(ours_args[slot], torch_args[slot].numpy(), n, S, dtype, f"{case_id} arg {slot}")


def _state_bound(args, kwargs, slot):
    """n, S of batch_norm's updated running statistic ``slot`` (1: mean, 2: var) by the mixed
    method, on PyTorch's update written as a torch expression (torch's kernel has no
    derivative for the statistics): (1 - m) * running + m * batch statistic, the variance
    unbiased."""
    x, old = _torch(args[0]), _torch(args[slot])
    momentum = args[6] if len(args) > 6 else kwargs.get("momentum", 0.1)
    dims = [0, *range(2, x.dim())]

    def fn(x_, stat):
        batch = x_.mean(dims) if slot == 1 else x_.var(dims, unbiased=True)
        return (1 - momentum) * stat + momentum * batch

    y = fn(x, old).detach().numpy()
    jx, js = torch.autograd.functional.jacobian(fn, (x, old))
    jx, js = jx.numpy().reshape(y.size, -1), js.numpy()
    S = np.abs(y) + np.abs(jx) @ np.abs(x.numpy()).reshape(-1) + np.abs(js) @ np.abs(old.numpy())
    R = np.count_nonzero(jx, axis=-1) + np.count_nonzero(js, axis=-1)
    return 2 * R + 3 * L + 10, S


# ---- the cross-entropy corner: class weights, label smoothing, counted weights summing to 0 -----
CORNER = [
    ("zero-weights", [0.0, 1.0, 2.0, 0.5], [0, -100, 0]),  # every counted target's class weighs 0
    ("zero-weights-all-counted", [0.0, 1.0, 2.0, 0.5], [0, 0, 0]),
    ("cancelling-weights", [1.0, -1.0, 0.0, 2.0], [0, 1, -100]),  # counted weights 1 and -1
    ("all-ignored", [0.0, 1.0, 2.0, 0.5], [-100, -100, -100]),
]


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("ls", [0.2, 1.0], ids=["ls0.2", "ls1"])
@pytest.mark.parametrize("case_id, weight, target", CORNER, ids=[c[0] for c in CORNER])
def test_cross_entropy_zero_counted_weight_matches_torch(case_id, weight, target, ls, dtype, impl):
    # Broke: refcnn's mean was inf where torch's is nan (it divided (1 - ls) * nll + ls/C *
    # smooth, summed, by the counted weight 0; torch divides each part, and 0/0 is nan), and
    # the reference kernel's gradient was +-inf where torch's is nan.
    x = _x(3, 4).astype(dtype)
    w, t = np.array(weight, dtype), np.array(target, np.int64)
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    expected = TF.cross_entropy(tx, torch.from_numpy(t), torch.from_numpy(w.astype(np.float64)), label_smoothing=ls)
    expected.backward()
    with kernels.use(cross_entropy=impl):
        loss = F.cross_entropy(x, t, w, label_smoothing=ls)
    kernel = kernels.get("cross_entropy", impl)
    y, ctx = kernel.forward(x, t, w, ignore_index=-100, reduction="mean", label_smoothing=ls)
    (grad,) = kernel.backward(np.ones((), dtype), ctx)
    e, eg = expected.detach().numpy(), tx.grad.numpy()
    assert not np.isfinite(e), "the corner gives a non-finite loss in torch"
    # non-finite values must be the same (nan for nan, inf for inf of the sign); the finite
    # gradient entries (ignored rows) are exactly 0 in both
    for what, a, b in (("F.cross_entropy", loss, e), ("kernel forward", y, e), ("gradient", grad, eg)):
        testing.assert_close(a, b, 0, 0, dtype, f"{case_id} ls={ls} {impl} {what}")
