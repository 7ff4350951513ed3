"""refcnn.nn.functional (no PyTorch): torch's signatures and defaults, equality with the
matching module's output (the same kernel on the same arguments), the registry choice,
torch's argument forms and legacy arguments, in-place and unbatched behaviour, every
validation error, and the README's custom module whose backward uses a kernel.

The comparison with torch.nn.functional itself is conformance/test_functional.py.
"""

import inspect
import warnings

import numpy as np
import pytest

import refcnn
from refcnn import kernels, nn, testing
from refcnn.kernels import registry
from refcnn.nn import functional as F

E = inspect.Parameter.empty

# torch.nn.functional's parameters (torch 2.13), name -> [(parameter, default)]
SIGNATURES = {
    "conv2d": [
        ("input", E),
        ("weight", E),
        ("bias", None),
        ("stride", 1),
        ("padding", 0),
        ("dilation", 1),
        ("groups", 1),
    ],
    "conv_transpose2d": [
        ("input", E),
        ("weight", E),
        ("bias", None),
        ("stride", 1),
        ("padding", 0),
        ("output_padding", 0),
        ("groups", 1),
        ("dilation", 1),
    ],
    "max_pool2d": [
        ("input", E),
        ("kernel_size", E),
        ("stride", None),
        ("padding", 0),
        ("dilation", 1),
        ("ceil_mode", False),
        ("return_indices", False),
    ],
    "avg_pool2d": [
        ("input", E),
        ("kernel_size", E),
        ("stride", None),
        ("padding", 0),
        ("ceil_mode", False),
        ("count_include_pad", True),
        ("divisor_override", None),
    ],
    "adaptive_avg_pool2d": [("input", E), ("output_size", E)],
    "adaptive_max_pool2d": [("input", E), ("output_size", E), ("return_indices", False)],
    "linear": [("input", E), ("weight", E), ("bias", None)],
    "batch_norm": [
        ("input", E),
        ("running_mean", E),
        ("running_var", E),
        ("weight", None),
        ("bias", None),
        ("training", False),
        ("momentum", 0.1),
        ("eps", 1e-05),
    ],
    "group_norm": [("input", E), ("num_groups", E), ("weight", None), ("bias", None), ("eps", 1e-05)],
    "layer_norm": [("input", E), ("normalized_shape", E), ("weight", None), ("bias", None), ("eps", 1e-05)],
    "dropout": [("input", E), ("p", 0.5), ("training", True), ("inplace", False)],
    "dropout2d": [("input", E), ("p", 0.5), ("training", True), ("inplace", False)],
    "relu": [("input", E), ("inplace", False)],
    "leaky_relu": [("input", E), ("negative_slope", 0.01), ("inplace", False)],
    "elu": [("input", E), ("alpha", 1.0), ("inplace", False)],
    "gelu": [("input", E), ("approximate", "none")],
    "silu": [("input", E), ("inplace", False)],
    "sigmoid": [("input", E)],
    "tanh": [("input", E)],
    "hardtanh": [("input", E), ("min_val", -1.0), ("max_val", 1.0), ("inplace", False)],
    "softmax": [("input", E), ("dim", None), ("_stacklevel", 3), ("dtype", None)],
    "log_softmax": [("input", E), ("dim", None), ("_stacklevel", 3), ("dtype", None)],
    "cross_entropy": [
        ("input", E),
        ("target", E),
        ("weight", None),
        ("size_average", None),
        ("ignore_index", -100),
        ("reduce", None),
        ("reduction", "mean"),
        ("label_smoothing", 0.0),
    ],
    "nll_loss": [
        ("input", E),
        ("target", E),
        ("weight", None),
        ("size_average", None),
        ("ignore_index", -100),
        ("reduce", None),
        ("reduction", "mean"),
    ],
    "mse_loss": [
        ("input", E),
        ("target", E),
        ("size_average", None),
        ("reduce", None),
        ("reduction", "mean"),
        ("weight", None),
    ],
    "l1_loss": [
        ("input", E),
        ("target", E),
        ("size_average", None),
        ("reduce", None),
        ("reduction", "mean"),
        ("weight", None),
    ],
    "smooth_l1_loss": [
        ("input", E),
        ("target", E),
        ("size_average", None),
        ("reduce", None),
        ("reduction", "mean"),
        ("beta", 1.0),
    ],
    "binary_cross_entropy": [
        ("input", E),
        ("target", E),
        ("weight", None),
        ("size_average", None),
        ("reduce", None),
        ("reduction", "mean"),
    ],
    "binary_cross_entropy_with_logits": [
        ("input", E),
        ("target", E),
        ("weight", None),
        ("size_average", None),
        ("reduce", None),
        ("reduction", "mean"),
        ("pos_weight", None),
    ],
}


def test_every_function_is_listed():
    assert sorted(F.__all__) == sorted(SIGNATURES)
    assert nn.functional is F


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature_and_defaults_are_torchs(name):
    ours = [(p.name, p.default) for p in inspect.signature(getattr(F, name)).parameters.values()]
    assert ours == SIGNATURES[name]


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_docstring_names_a_registered_kernel_op(name):
    # the backward recipe: F.<name>'s docstring says which kernels.get(op) it runs
    doc = " ".join(getattr(F, name).__doc__.split())
    op = doc.split("Kernel op: ``")[1].split("``")[0]
    assert op in kernels.ops()


# ---- equality with the modules ------------------------------------------------------------------
def rand(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(dtype)


def _same_weights(module, **arrays):
    for name, value in arrays.items():
        getattr(module, name).data[...] = value
    return module


CONV_CASES = {
    "k3x5-s2x1-p1x2-d1x2": (dict(kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2)), (2, 4, 9, 8)),
    "same-k2x4-d2x1-g2": (dict(kernel_size=(2, 4), padding="same", dilation=(2, 1), groups=2), (2, 4, 7, 6)),
    "valid-k3-unbatched": (dict(kernel_size=3, padding="valid"), (4, 6, 5)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("config, shape", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_equals_the_module(config, shape, dtype):
    conv = nn.Conv2d(4, 6, dtype=dtype, **config)
    x = rand(*shape, dtype=dtype)
    args = {k: v for k, v in config.items() if k != "kernel_size"}
    np.testing.assert_array_equal(F.conv2d(x, conv.weight, conv.bias, **args), conv(x))


def test_conv_transpose2d_equals_the_module():
    m = nn.ConvTranspose2d(
        4, 6, (3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2)
    )
    x = rand(2, 4, 5, 3, dtype=np.float32)
    y = F.conv_transpose2d(x, m.weight, m.bias, (2, 1), (1, 0), (1, 0), 2, (1, 2))
    np.testing.assert_array_equal(y, m(x))
    np.testing.assert_array_equal(
        F.conv_transpose2d(x[0], m.weight, m.bias, (2, 1), (1, 0), (1, 0), 2, (1, 2)), m(x[0])
    )


POOLS = {
    "max-k3x2-s2x1-p1x0-d1x2-ceil": (F.max_pool2d, nn.MaxPool2d, ((3, 2), (2, 1), (1, 0), (1, 2), True, True)),
    "max-unbatched-stride-none": (F.max_pool2d, nn.MaxPool2d, (2,)),
    "avg-k3x2-s2x1-p1-ceil-nopad": (F.avg_pool2d, nn.AvgPool2d, ((3, 2), (2, 1), 1, True, False)),
    "avg-divisor": (F.avg_pool2d, nn.AvgPool2d, (3, None, 0, False, True, 5)),
    "adaptive-avg-4xNone": (F.adaptive_avg_pool2d, nn.AdaptiveAvgPool2d, ((4, None),)),
    "adaptive-max-3-indices": (F.adaptive_max_pool2d, nn.AdaptiveMaxPool2d, (3, True)),
}


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("fn, cls, args", POOLS.values(), ids=POOLS.keys())
def test_pools_equal_the_modules(fn, cls, args, unbatched):
    x = rand(2, 3, 9, 7)
    x = x[0] if unbatched else x
    ours, theirs = fn(x, *args), cls(*args)(x)
    if isinstance(theirs, tuple):  # output and indices
        assert ours[1].dtype == np.int64
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_array_equal(ours, theirs)


def test_linear_equals_the_module_and_takes_parameters():
    m = nn.Linear(5, 4, dtype=np.float64)
    x = rand(2, 3, 5)
    np.testing.assert_array_equal(F.linear(x, m.weight, m.bias), m(x))
    np.testing.assert_array_equal(F.linear(x, m.weight.data), x @ m.weight.data.T)


def test_batch_norm_updates_the_running_statistics_as_the_module():
    bn = nn.BatchNorm2d(3, momentum=0.3, eps=1e-3, dtype=np.float64)
    _same_weights(bn, weight=rand(3, seed=1), bias=rand(3, seed=2))
    x = rand(4, 3, 5, 2)
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    y = F.batch_norm(x, rm, rv, bn.weight, bn.bias, True, 0.3, 1e-3)
    np.testing.assert_array_equal(y, bn(x))
    np.testing.assert_array_equal(rm, bn.running_mean)  # updated in place, as torch
    np.testing.assert_array_equal(rv, bn.running_var)
    assert not np.array_equal(rm, 0)
    bn.eval()
    np.testing.assert_array_equal(F.batch_norm(x, rm, rv, bn.weight, bn.bias, eps=1e-3), bn(x))


def test_group_and_layer_norm_equal_the_modules():
    gn = _same_weights(nn.GroupNorm(3, 6, eps=1e-4, dtype=np.float64), weight=rand(6, seed=1), bias=rand(6, seed=2))
    x = rand(2, 6, 5, 3)
    np.testing.assert_array_equal(F.group_norm(x, 3, gn.weight, gn.bias, 1e-4), gn(x))
    ln = _same_weights(nn.LayerNorm((5, 3), dtype=np.float64), weight=rand(5, 3, seed=1), bias=rand(5, 3, seed=2))
    np.testing.assert_array_equal(F.layer_norm(x, (5, 3), ln.weight, ln.bias), ln(x))
    np.testing.assert_array_equal(F.layer_norm(x, [3]), nn.LayerNorm(3, elementwise_affine=False, dtype=np.float64)(x))


ACTIVATIONS = {
    "relu": (F.relu, nn.ReLU(), {}),
    "leaky_relu-0.2": (F.leaky_relu, nn.LeakyReLU(0.2), dict(negative_slope=0.2)),
    "elu-0.7": (F.elu, nn.ELU(0.7), dict(alpha=0.7)),
    "gelu-tanh": (F.gelu, nn.GELU("tanh"), dict(approximate="tanh")),
    "silu": (F.silu, nn.SiLU(), {}),
    "sigmoid": (F.sigmoid, nn.Sigmoid(), {}),
    "tanh": (F.tanh, nn.Tanh(), {}),
    "hardtanh--0.5-1.5": (F.hardtanh, nn.Hardtanh(-0.5, 1.5), dict(min_val=-0.5, max_val=1.5)),
    "softmax-dim1": (F.softmax, nn.Softmax(1), dict(dim=1)),
    "log_softmax-dim-1": (F.log_softmax, nn.LogSoftmax(-1), dict(dim=-1)),
}


@pytest.mark.parametrize("fn, module, kwargs", ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
def test_activations_equal_the_modules(fn, module, kwargs):
    x = rand(3, 4, 5, dtype=np.float32)
    np.testing.assert_array_equal(fn(x, **kwargs), module(x))


LABELS = np.array([0, 2, 1, 4], np.int64)
LOSSES = {
    "cross_entropy-w-ls-ignore": (
        F.cross_entropy,
        nn.CrossEntropyLoss(rand(5, seed=3) ** 2, ignore_index=1, label_smoothing=0.2),
        "labels",
        dict(ignore_index=1, label_smoothing=0.2),
    ),
    "nll_loss-sum": (F.nll_loss, nn.NLLLoss(reduction="sum"), "labels", dict(reduction="sum")),
    "mse_loss-none": (F.mse_loss, nn.MSELoss(reduction="none"), "values", dict(reduction="none")),
    "l1_loss": (F.l1_loss, nn.L1Loss(), "values", {}),
    "smooth_l1_loss-beta0.5": (F.smooth_l1_loss, nn.SmoothL1Loss(beta=0.5), "values", dict(beta=0.5)),
    "binary_cross_entropy": (F.binary_cross_entropy, nn.BCELoss(), "probabilities", {}),
    "bce_with_logits-pos_weight": (
        F.binary_cross_entropy_with_logits,
        nn.BCEWithLogitsLoss(pos_weight=rand(5, seed=4) ** 2),
        "probabilities",
        {},
    ),
}


@pytest.mark.parametrize("fn, module, target, kwargs", LOSSES.values(), ids=LOSSES.keys())
def test_losses_equal_the_modules(fn, module, target, kwargs):
    x = rand(4, 5)
    if fn is F.binary_cross_entropy:
        x = 1 / (1 + np.exp(-x))
    t = {"labels": LABELS, "values": rand(4, 5, seed=1), "probabilities": np.abs(np.sin(rand(4, 5, seed=2)))}[target]
    weights = {k: getattr(module, k) for k in ("weight", "pos_weight") if getattr(module, k, None) is not None}
    ours = fn(x, t, **weights, **kwargs)
    theirs = module(x, t)
    assert isinstance(ours, np.ndarray) and ours.dtype == x.dtype  # an array (0-d when reduced), as torch's tensor
    np.testing.assert_array_equal(ours, theirs)


def test_dropout_draws_from_refcnns_generator_as_the_module():
    x = rand(4, 6, 3, 2)
    refcnn.manual_seed(3)
    ours = F.dropout(x, 0.3)
    refcnn.manual_seed(3)
    np.testing.assert_array_equal(ours, nn.Dropout(0.3)(x))
    refcnn.manual_seed(3)
    ours = F.dropout2d(x, p=0.6)
    refcnn.manual_seed(3)
    np.testing.assert_array_equal(ours, nn.Dropout2d(0.6)(x))
    kept = ours != 0
    scaled = x[kept] / 0.4  # kept channels scaled by 1/(1 - p): the scale and the product round
    testing.assert_close(ours[kept], scaled, 2, np.abs(scaled), np.float64, "dropout2d kept values")
    assert F.dropout(x, 0.3, training=False) is x  # the identity, as torch


# ---- the registry, torch's forms and behaviours ----------------------------------------------------
def test_the_implementation_in_force_runs():
    calls = []

    def spy_forward(x):
        calls.append(x.shape)
        return kernels.get("relu", "reference").forward_impl(x)

    registry.register("relu", "spy", spy_forward, kernels.get("relu", "reference").backward_impl)
    try:
        with kernels.use(relu="spy"):
            F.relu(np.ones((2, 3)))
        F.relu(np.ones((4,)))  # outside the block: the default again
    finally:
        registry.unregister("relu", "spy")
    assert calls == [(2, 3)]


def test_int_and_pair_forms_agree():
    x, w = rand(2, 3, 8, 7), rand(4, 3, 3, 3)
    np.testing.assert_array_equal(F.conv2d(x, w, None, 2, 1, 1), F.conv2d(x, w, stride=(2, 2), padding=[1, 1]))
    np.testing.assert_array_equal(F.max_pool2d(x, 2), F.max_pool2d(x, (2, 2), (2, 2)))
    np.testing.assert_array_equal(F.conv2d(x, w, padding="valid"), F.conv2d(x, w))


def test_same_padding_keeps_the_size_with_the_extra_row_at_the_bottom():
    # an even kernel (2, 4): total padding (1, 3), split (0, 1) and (1, 2), as torch
    x, w = rand(1, 1, 5, 6), rand(1, 1, 2, 4)
    y = F.conv2d(x, w, padding="same")
    assert y.shape == (1, 1, 5, 6)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (1, 2)))
    np.testing.assert_array_equal(y, F.conv2d(padded, w))


def test_inplace_writes_into_the_input():
    x = rand(3, 4)
    expected = np.maximum(x, 0)
    assert F.relu(x, inplace=True) is x
    np.testing.assert_array_equal(x, expected)
    y = rand(3, 4)
    out = F.hardtanh(y, -0.5, 0.5)
    assert out is not y and not np.array_equal(y, out)  # out of place by default


def test_softmax_dim_none_and_dtype_as_torch():
    x = rand(3, 4, dtype=np.float32)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax has been deprecated"):
        y = F.softmax(x)
    np.testing.assert_array_equal(y, F.softmax(x, 1))  # 2-D: dim 1, torch's legacy rule
    y64 = F.log_softmax(x, 0, dtype=np.float64)
    assert y64.dtype == np.float64
    np.testing.assert_array_equal(y64, F.log_softmax(x.astype(np.float64), 0))


@pytest.mark.parametrize(
    "size_average, reduce, reduction",
    [(None, False, "none"), (False, None, "sum"), (True, True, "mean"), (False, False, "none")],
    ids=["reduce-False", "size_average-False", "both-True", "both-False"],
)
def test_legacy_size_average_and_reduce_override_reduction(size_average, reduce, reduction):
    x, t = rand(4, 5), LABELS
    with pytest.warns(UserWarning, match=f"please use reduction='{reduction}' instead"):
        legacy = F.cross_entropy(x, t, None, size_average, -100, reduce, "mean")
    np.testing.assert_array_equal(legacy, F.cross_entropy(x, t, reduction=reduction))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(x, x, reduction="sum")  # no warning without them


def test_loss_gradient_through_the_kernel_named_in_the_docstring():
    # the backward recipe for an F loss: kernels.get(op).forward gives F's value and a ctx
    x, t = rand(4, 5), LABELS
    k = kernels.get("cross_entropy")
    y, ctx = k.forward(x, t, None, ignore_index=-100, reduction="mean", label_smoothing=0.1)
    np.testing.assert_array_equal(y, F.cross_entropy(x, t, label_smoothing=0.1))
    (gx,) = k.backward(np.ones((), x.dtype), ctx)
    testing.assert_gradient(lambda: F.cross_entropy(x, t, label_smoothing=0.1), x, gx, "cross_entropy")


# ---- the README's custom module ----------------------------------------------------------------------
class ResidualBlock(nn.Module):
    """y = relu(conv2(relu(conv1(x))) + x), as in the README."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, dtype=np.float64)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, dtype=np.float64)

    def forward(self, x):
        h = self.conv2(self.relu1(self.conv1(x)))
        self.out_relu = kernels.get("relu")
        y, self.out_ctx = self.out_relu.forward(h + x)
        return y

    def backward(self, grad_output):
        (g,) = self.out_relu.backward(grad_output, self.out_ctx)
        gx = self.conv1.backward(self.relu1.backward(self.conv2.backward(g)))
        return gx + g


def test_readme_custom_module_backward_matches_finite_differences():
    refcnn.manual_seed(0)
    block = ResidualBlock(2)
    x, gy = rand(2, 2, 5, 4), rand(2, 2, 5, 4, seed=1)

    @refcnn.no_grad()  # the finite differences' forwards have no backward
    def objective() -> float:
        return float((block(x) * gy).sum())

    y = block(x)
    with refcnn.no_grad():  # the layers called one by one, without replacing y's contexts
        np.testing.assert_array_equal(y, F.relu(block.conv2(F.relu(block.conv1(x))) + x))
    gx = block.backward(gy)
    testing.assert_gradient(objective, x, gx, "ResidualBlock dL/dx")
    block.zero_grad()
    block(x)
    block.backward(gy)
    testing.assert_gradient(objective, block.conv1.weight.data, block.conv1.weight.grad, "conv1 dL/dweight")


# ---- errors ------------------------------------------------------------------------------------------
X4, W4 = rand(2, 3, 8, 7), rand(4, 3, 3, 3)
ERRORS = {
    "conv2d-padding-string": (
        lambda: F.conv2d(X4, W4, padding="full"),
        ValueError,
        r"conv2d: invalid padding string 'full', should be one of 'valid', 'same'",
    ),
    "conv2d-same-strided": (
        lambda: F.conv2d(X4, W4, stride=(2, 1), padding="same"),
        ValueError,
        r"conv2d: padding='same' is not supported for strided convolutions, got stride=\(2, 1\)",
    ),
    "conv2d-stride-float": (
        lambda: F.conv2d(X4, W4, stride=1.5),
        TypeError,
        r"conv2d: stride must be an int or a pair of ints, got 1.5",
    ),
    "conv2d-groups-0": (lambda: F.conv2d(X4, W4, groups=0), ValueError, r"conv2d: groups must be >= 1, got 0"),
    "conv2d-channels": (
        lambda: F.conv2d(X4, rand(4, 2, 3, 3)),
        ValueError,
        r"conv2d: weight of shape \(4, 2, 3, 3\) with groups=1 expects an input with 2 channels, got input of shape \(2, 3, 8, 7\)",
    ),
    "conv2d-same-channels": (
        lambda: F.conv2d(X4, rand(4, 2, 2, 2), padding="same"),
        ValueError,
        r"expects an input with 2 channels, got input of shape \(2, 3, 8, 7\)",
    ),
    "conv2d-2d-input": (
        lambda: F.conv2d(X4[0, 0], W4),
        ValueError,
        r"conv2d expected input of shape \(N, C, H, W\) or \(C, H, W\), got \(8, 7\)",
    ),
    "conv2d-list-input": (lambda: F.conv2d([[1.0]], W4), TypeError, r"conv2d expected a numpy.ndarray input"),
    "conv2d-weight-3d": (
        lambda: F.conv2d(X4, W4[0]),
        ValueError,
        r"conv2d: weight must be 4-D, got shape \(3, 3, 3\)",
    ),
    "max_pool2d-padding": (
        lambda: F.max_pool2d(X4, 2, padding=2),
        ValueError,
        r"max_pool2d: padding must be at most half the kernel size",
    ),
    "max_pool2d-ceil-int": (
        lambda: F.max_pool2d(X4, 2, ceil_mode=1),
        TypeError,
        r"max_pool2d: ceil_mode must be a bool, got 1",
    ),
    "avg_pool2d-divisor-0": (
        lambda: F.avg_pool2d(X4, 2, divisor_override=0),
        ValueError,
        r"avg_pool2d: divisor_override must not be zero",
    ),
    "adaptive-output-size": (
        lambda: F.adaptive_avg_pool2d(X4, (1, 2, 3)),
        TypeError,
        r"adaptive_avg_pool2d: output_size must be an int or a pair of ints or None",
    ),
    "linear-features": (lambda: F.linear(rand(2, 5), rand(4, 6)), ValueError, r"linear: x has 5 features"),
    "batch_norm-eval-no-stats": (
        lambda: F.batch_norm(X4, None, None),
        ValueError,
        r"batch_norm: running_mean and running_var must be given in evaluation mode",
    ),
    "layer_norm-int": (
        lambda: F.layer_norm(rand(2, 5), 5),
        TypeError,
        r"layer_norm: normalized_shape must be a tuple of ints, got 5",
    ),
    "dropout-p": (
        lambda: F.dropout(X4, 1.5),
        ValueError,
        r"dropout: dropout probability has to be between 0 and 1, but got 1.5",
    ),
    "relu-inplace-readonly": (
        lambda: F.relu(np.broadcast_to(X4, X4.shape), inplace=True),
        ValueError,
        r"relu\(inplace=True\) needs a writeable input array",
    ),
    "softmax-dtype": (
        lambda: F.softmax(X4, 1, dtype=np.int32),
        TypeError,
        r"softmax: dtype must be float32, float64 or None",
    ),
    "gelu-approximate": (lambda: F.gelu(X4, approximate="fast"), ValueError, r"gelu"),
    "mse_loss-weight": (
        lambda: F.mse_loss(X4, X4, weight=np.ones(7)),
        NotImplementedError,
        r"mse_loss: refcnn's mse_loss kernel takes no weight; pass weight=None",
    ),
    "cross_entropy-reduction": (
        lambda: F.cross_entropy(rand(4, 5), LABELS, reduction="avg"),
        ValueError,
        r"cross_entropy: reduction must be 'none', 'mean' or 'sum', got 'avg'",
    ),
}


@pytest.mark.parametrize("call, error, message", ERRORS.values(), ids=ERRORS.keys())
def test_errors_are_refcnns_one_line(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert "\n" not in str(info.value)
