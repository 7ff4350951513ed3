"""register_layer: from-scratch layer classes checked against PyTorch as kernels.

First the adapter's protocol, case by case (each protocol break gets its plain-words
message). Then the proof on the notebook's own layer set (refcnn.notebook): through
``register_layer`` the ci profile finds each of its real defects (the conv's missing
return, the pool's float64 output, the cross-entropy's 1e-10), and the same classes with
those defects fixed pass every applicable check.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from refcnn import kernels
from refcnn import notebook as nb
from refcnn.conformance import engine, hazards
from refcnn.conformance.layers import LayerProtocolError, is_layer, not_applicable, register_layer

AFFINE: dict[str, Any] = {"params": {"weight": "W", "bias": "b"}, "grads": {"weight": "dW", "bias": "db"}}
CONV_CFG = {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 1), "groups": 1}


# ---- make(config) for the notebook's classes: NotImplementedError where they do not reach ----
def _square(cfg: dict[str, Any], *names: str) -> list[int]:
    for n in names:
        if cfg[n][0] != cfg[n][1]:
            raise NotImplementedError(f"{n}={cfg[n]}: the class takes one int")
    return [cfg[n][0] for n in names]


def make_conv(cfg: dict[str, Any], cls: Any = nb.Conv2D) -> Any:
    if cfg["groups"] != 1 or cfg["dilation"] != (1, 1):
        raise NotImplementedError("no groups, no dilation")
    k, s, p = _square(cfg, "kernel_size", "stride", "padding")
    return cls(cfg["in_channels"], cfg["out_channels"], k, stride=s, padding=p)


def make_pool(cfg: dict[str, Any], cls: Any = nb.MaxPool2D) -> Any:
    if cfg["padding"] != (0, 0) or cfg["dilation"] != (1, 1) or cfg["ceil_mode"]:
        raise NotImplementedError("no padding, dilation or ceil_mode")
    k, s = _square(cfg, "kernel_size", "stride")
    return cls(k, s)


def make_linear(cfg: dict[str, Any]) -> Any:
    if len(cfg["input_shape"]) != 2:
        raise NotImplementedError("X must be (N, input_dim)")
    return nb.Linear(cfg["in_features"], cfg["out_features"])


def make_loss(cfg: dict[str, Any], cls: Any = nb.SoftMaxCrossEntropy) -> Any:
    if len(cfg["input_shape"]) != 2 or cfg["target_shape"] == cfg["input_shape"]:
        raise NotImplementedError("logits (N, C) and class indices only")
    if cfg["weight"] or cfg["ignore_index"] >= 0 or cfg["label_smoothing"] or cfg["reduction"] != "mean":
        raise NotImplementedError("the plain mean loss only")
    return cls()


# ---- the same classes with their defects fixed --------------------------------------------
class FixedConv2D(nb.Conv2D):
    def backward(self, dout: np.ndarray) -> np.ndarray:
        X, k, s, p = self.X, self.k, self.stride, self.padding
        N, F, H_out, W_out = dout.shape
        self.dW, self.db, dX = np.zeros_like(self.W), np.zeros_like(self.b), np.zeros_like(X)
        for n in range(N):
            for f in range(F):
                for i in range(H_out):
                    for j in range(W_out):
                        region = X[n, :, i * s : i * s + k, j * s : j * s + k]
                        self.dW[f] += dout[n, f, i, j] * region
                        self.db[f] += dout[n, f, i, j]
                        dX[n, :, i * s : i * s + k, j * s : j * s + k] += dout[n, f, i, j] * self.W[f]
        return dX[:, :, p : dX.shape[2] - p, p : dX.shape[3] - p]  # the fix: return it


class FixedMaxPool2D(nb.MaxPool2D):
    def forward(self, X: np.ndarray) -> np.ndarray:
        return super().forward(X).astype(X.dtype)  # the fix: a max is one of the inputs, exact in X's dtype


class FixedSoftMaxCrossEntropy(nb.SoftMaxCrossEntropy):
    def forward(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
        shifted = X - X.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # the fix: no 1e-10
        self.probs, self.y = np.exp(log_probs), y
        return -log_probs[np.arange(X.shape[0]), y].mean(), self.probs


class FixedRelu(nb.Relu):
    def forward(self, X: np.ndarray) -> np.ndarray:
        self.mask = ~(X <= 0)  # PyTorch passes the gradient through at nan
        return np.where(X < 0, 0, X)  # the fix: X * (X > 0) makes -inf * 0 = nan; nan and -0.0 kept


def _register(impl: str, fixed: bool) -> list[tuple[str, str]]:
    register_layer("conv2d", impl, lambda c: make_conv(c, FixedConv2D if fixed else nb.Conv2D), **AFFINE)
    register_layer("max_pool2d", impl, lambda c: make_pool(c, FixedMaxPool2D if fixed else nb.MaxPool2D))
    register_layer("linear", impl, make_linear, weight_layout="in_out", **AFFINE)
    register_layer("relu", impl, lambda c: FixedRelu() if fixed else nb.Relu())
    loss = FixedSoftMaxCrossEntropy if fixed else nb.SoftMaxCrossEntropy
    register_layer("cross_entropy", impl, lambda c: make_loss(c, loss))
    return [(op, impl) for op in ("conv2d", "max_pool2d", "linear", "relu", "cross_entropy")]


@pytest.fixture(scope="module")
def notebook_layers() -> Iterator[None]:
    names = _register("notebook", fixed=False) + _register("notebook_fixed", fixed=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the runner's workers: PyTorch's threads on tiny tensors only contend
    yield
    torch.set_num_threads(threads)
    for op, impl in names:
        kernels.unregister(op, impl)


@pytest.fixture
def scratch() -> Iterator[list[tuple[str, str]]]:
    """(op, impl) pairs a test registers, unregistered afterwards."""
    names: list[tuple[str, str]] = []
    yield names
    for op, impl in names:
        if impl in kernels.available(op):
            kernels.unregister(op, impl)


def _reg(scratch: list[tuple[str, str]], op: str, impl: str, make: Any, **kw: Any) -> kernels.Kernel:
    register_layer(op, impl, make, **kw)
    scratch.append((op, impl))
    return kernels.get(op, impl)


# ---- the adapter, case by case ----------------------------------------------------------------
def test_linear_in_out_layout_round_trips_to_torch_layout(scratch: list[tuple[str, str]]) -> None:
    k = _reg(scratch, "linear", "t_inout", make_linear, weight_layout="in_out", **AFFINE)
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)  # torch: (out, in)
    y, ctx = k.forward(x, w, b)
    np.testing.assert_allclose(y, x @ w.T + b)
    g = rng.standard_normal((4, 3))
    gx, gw, gb = k.backward(g, ctx)
    np.testing.assert_allclose(gx, g @ w)
    assert gw.shape == (3, 5)  # back in torch's layout
    np.testing.assert_allclose(gw, g.T @ x)
    np.testing.assert_allclose(gb, g.sum(axis=0))


def test_make_gets_torch_nn_names_and_pairs(scratch: list[tuple[str, str]]) -> None:
    seen: list[dict[str, Any]] = []

    def make(cfg: dict[str, Any]) -> Any:
        seen.append(cfg)
        raise NotImplementedError

    k = _reg(scratch, "conv2d", "t_config", make, **AFFINE)
    x, w = np.zeros((2, 4, 7, 9)), np.zeros((6, 2, 3, 5))
    with pytest.raises(NotImplementedError):
        k.forward(x, w, None, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    assert seen == [{"in_channels": 4, "out_channels": 6, "kernel_size": (3, 5), "stride": (2, 1), "padding": (1, 0),
                     "dilation": (1, 2), "groups": 2, "bias": False, "input_shape": (2, 4, 7, 9)}]  # fmt: skip


def test_a_case_without_bias_gets_a_zero_bias_and_no_bias_gradient(scratch: list[tuple[str, str]]) -> None:
    k = _reg(scratch, "conv2d", "t_nobias", lambda c: make_conv(c, FixedConv2D), **AFFINE)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 5, 6)), rng.standard_normal((3, 2, 3, 3))
    y, ctx = k.forward(x, w, None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)
    ref, _ = kernels.get("conv2d", "reference").forward(x, w, None, stride=(1, 1), padding=(0, 0),
                                                           dilation=(1, 1), groups=1)  # fmt: skip
    np.testing.assert_allclose(y, ref)
    assert k.backward(np.ones_like(y), ctx)[2] is None


def test_backward_returning_none_is_a_protocol_error_in_plain_words(scratch: list[tuple[str, str]]) -> None:
    k = _reg(scratch, "conv2d", "t_none", make_conv, **AFFINE)
    x, w, b = np.ones((2, 3, 7, 9), np.float32), np.ones((4, 3, 3, 3), np.float32), np.ones(4, np.float32)
    y, ctx = k.forward(x, w, b, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1)
    assert y.dtype == np.float32
    with pytest.raises(LayerProtocolError) as err:
        k.backward(np.ones_like(y), ctx)
    assert str(err.value) == (
        "Conv2D.backward returned None; it must return the gradient with respect to its input, shape (2, 3, 7, 9)"
    )


def test_float64_output_for_float32_input_is_reported_not_cast(scratch: list[tuple[str, str]]) -> None:
    k = _reg(scratch, "max_pool2d", "t_f64", make_pool)
    x = np.arange(20, dtype=np.float32).reshape(1, 1, 4, 5)
    with pytest.raises(LayerProtocolError, match=r"^MaxPool2D.forward returned its output in float64 for a float32"):
        k.forward(x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False)
    _, ctx = k.forward(x.astype(np.float64), kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1),
                       ceil_mode=False)  # fmt: skip
    assert getattr(ctx, "indices", None) is None  # a layer keeps its own bookkeeping
    assert not_applicable("max_pool2d", "t_f64") == ("indices",) and is_layer("max_pool2d", "t_f64")
    assert not_applicable("max_pool2d", "fast") == () and not is_layer("max_pool2d", "fast")


class _Broken:
    """A linear layer whose failures the tests choose."""

    def __init__(self, cfg: dict[str, Any], how: str) -> None:
        self.how = how
        self.W, self.b = np.zeros((cfg["out_features"], cfg["in_features"])), np.zeros(cfg["out_features"])

    def forward(self, X: np.ndarray) -> Any:
        self.X = X
        return X @ self.W.T + self.b

    def backward(self, dout: np.ndarray) -> Any:
        if self.how != "no dW":
            self.dW = dout.T @ self.X
        self.db = dout.sum(axis=0)
        if self.how == "dW float64":
            self.dW = self.dW.astype(np.float64)
        if self.how == "dW transposed":
            self.dW = self.dW.T
        if self.how == "tuple":
            return dout @ self.W, self.dW, self.db
        return dout @ self.W


@pytest.mark.parametrize(
    "how, message",
    [
        ("no dW", "_Broken has no attribute 'dW' after backward, where register_layer's grads says it keeps the "
                  "gradient of its weight"),
        ("dW float64", "_Broken.dW after backward is a float64 array for a float32 input; it must be the gradient "
                       "with respect to its weight W, shape (3, 5), in float32"),
        ("dW transposed", "_Broken.dW after backward is an array of shape (5, 3); it must be the gradient with "
                          "respect to its weight W, shape (3, 5)"),
        ("tuple", "_Broken.backward returned a tuple of 3; it must return the gradient with respect to its input, "
                  "shape (4, 5)"),
    ],
    ids=["missing-dW", "dW-float64", "dW-wrong-shape", "returns-tuple"],
)  # fmt: skip
def test_gradient_protocol_breaks_name_the_class_and_the_expectation(
    scratch: list[tuple[str, str]], how: str, message: str
) -> None:
    k = _reg(scratch, "linear", "t_broken", lambda c: _Broken(c, how), **AFFINE)
    x, w, b = np.ones((4, 5), np.float32), np.ones((3, 5), np.float32), np.ones(3, np.float32)
    y, ctx = k.forward(x, w, b)
    with pytest.raises(LayerProtocolError) as err:
        k.backward(np.ones_like(y), ctx)
    assert str(err.value) == message


def test_make_returning_none_or_a_non_layer_is_a_protocol_error(scratch: list[tuple[str, str]]) -> None:
    def make_nothing(cfg: dict[str, Any]) -> None:
        return None

    k = _reg(scratch, "relu", "t_none_make", make_nothing)
    with pytest.raises(LayerProtocolError, match=r"^.*make_nothing\(config\) returned None for relu 't_none_make'"):
        k.forward(np.ones(3))
    k = _reg(scratch, "relu", "t_int_make", lambda c: 3)
    with pytest.raises(LayerProtocolError, match="returned a int, which has no forward"):
        k.forward(np.ones(3))


def test_a_missing_parameter_attribute_is_a_protocol_error(scratch: list[tuple[str, str]]) -> None:
    k = _reg(scratch, "linear", "t_noattr", lambda c: nb.Relu(), **AFFINE)
    with pytest.raises(LayerProtocolError, match=r"^Relu has no attribute 'W', where register_layer's params says"):
        k.forward(np.ones((2, 3)), np.ones((4, 3)), None)


def test_not_implemented_from_make_or_forward_propagates(scratch: list[tuple[str, str]]) -> None:
    class Declines:
        def forward(self, X: np.ndarray) -> np.ndarray:
            raise NotImplementedError("0-D input")

        def backward(self, dout: np.ndarray) -> np.ndarray:
            return dout

    k = _reg(scratch, "relu", "t_declines", lambda c: Declines())
    with pytest.raises(NotImplementedError, match="0-D input"):
        k.forward(np.ones(()))
    k = _reg(scratch, "linear", "t_nobias_attr", make_linear, weight_layout="in_out", params={"weight": "W"},
             grads={"weight": "dW"})  # fmt: skip
    with pytest.raises(NotImplementedError, match="no bias"):  # a bias the layer cannot take: unsupported
        k.forward(np.ones((2, 3)), np.ones((4, 3)), np.ones(4))


class _NoneLoss:
    """Cross-entropy with reduction='none' (logits (N, C, d) too), a Python-float-free protocol check."""

    def forward(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Z = np.moveaxis(X, 1, -1)
        logp = Z - Z.max(axis=-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=-1, keepdims=True))
        self.p, self.y = np.exp(logp), y
        return -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0], self.p

    def backward(self) -> np.ndarray:
        g = self.p.copy()
        np.put_along_axis(g, self.y[..., None], np.take_along_axis(g, self.y[..., None], -1) - 1, -1)
        return np.moveaxis(g, -1, 1)


def test_a_loss_gradient_is_scaled_by_the_upstream_gradient(scratch: list[tuple[str, str]]) -> None:
    cfg = {"ignore_index": -100, "label_smoothing": 0.0}
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((2, 4, 3)), rng.integers(0, 4, (2, 3))
    k = _reg(scratch, "cross_entropy", "t_none_loss", lambda c: _NoneLoss())
    ref = kernels.get("cross_entropy", "fast")
    y, ctx = k.forward(x, t, None, reduction="none", **cfg)
    y_ref, rctx = ref.forward(x, t, None, reduction="none", **cfg)
    np.testing.assert_allclose(y, y_ref)
    g = rng.standard_normal(y.shape)  # one upstream gradient per row
    np.testing.assert_allclose(k.backward(g, ctx)[0], ref.backward(g, rctx)[0])
    k = _reg(scratch, "cross_entropy", "t_mean_loss", lambda c: FixedSoftMaxCrossEntropy())
    x2, t2 = x[:, :, 0], t[:, 0]
    y, ctx = k.forward(x2, t2, None, reduction="mean", **cfg)
    y_ref, rctx = ref.forward(x2, t2, None, reduction="mean", **cfg)
    g0 = np.array(0.37)
    np.testing.assert_allclose(k.backward(g0, ctx)[0], ref.backward(g0, rctx)[0])


def test_a_python_float_loss_takes_the_input_dtype_and_a_misshapen_loss_is_named(
    scratch: list[tuple[str, str]],
) -> None:
    class FloatLoss(FixedSoftMaxCrossEntropy):
        def forward(self, X: np.ndarray, y: np.ndarray) -> Any:
            return float(super().forward(X, y)[0])

    cfg = {"ignore_index": -100, "label_smoothing": 0.0, "reduction": "mean"}
    x, t = np.ones((2, 3), np.float32), np.array([0, 2])
    y, _ = _reg(scratch, "cross_entropy", "t_float", lambda c: FloatLoss()).forward(x, t, None, **cfg)
    assert y.dtype == np.float32 and y.shape == ()
    k = _reg(scratch, "cross_entropy", "t_shape", lambda c: _NoneLoss())
    with pytest.raises(LayerProtocolError, match=r"loss of shape \(2,\); with reduction='mean' it must have shape"):
        k.forward(x, t, None, **cfg)


def test_registration_errors(scratch: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match="cannot check layers for op 'conv3d'"):
        register_layer("conv3d", "x", make_conv)
    with pytest.raises(ValueError, match="already has an implementation named 'fast' that is not a layer"):
        register_layer("conv2d", "fast", make_conv, **AFFINE)
    with pytest.raises(ValueError, match=r"grads must say where .* missing \['bias'\]"):
        register_layer("conv2d", "t_reg", make_conv, params={"weight": "W", "bias": "b"}, grads={"weight": "dW"})
    with pytest.raises(ValueError, match="weight_layout must be 'torch', got 'in_out'"):
        register_layer("conv2d", "t_reg", make_conv, weight_layout="in_out", **AFFINE)
    with pytest.raises(ValueError, match=r"params names \['weight'\], but relu has none"):
        register_layer("relu", "t_reg", lambda c: nb.Relu(), params={"weight": "W"})
    assert "t_reg" not in kernels.available("conv2d")
    _reg(scratch, "relu", "t_again", lambda c: nb.Relu())
    _reg(scratch, "relu", "t_again", lambda c: nb.Relu())  # re-running a notebook cell replaces the layer


# ---- the proof: the notebook's layer set, checked by the ci profile ------------------------------
def _run(op: str, dtype: str, impl: str, hazard_free: bool = False) -> dict[str, Any]:
    """The ci profile's tallies for one (op, dtype, impl), by check (``hazard_free``: every case
    without its hazard value)."""
    cycle = hazards.CYCLE
    if hazard_free:
        hazards.CYCLE = ("none",)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = engine.run_task(op, dtype, [impl], "ci", 0)
    finally:
        hazards.CYCLE = cycle
    return {t.check: t for t in result.tallies}


def _supported(t: Any) -> int:
    return int(t.configs - t.unsupported - t.skipped)


def _applicable(op: str, impl: str, rows: dict[str, Any]) -> dict[str, Any]:
    """Every row but the checks a layer cannot have (max_pool2d's ctx.indices)."""
    return {c: t for c, t in rows.items() if c not in not_applicable(op, impl)}


OPS_DTYPES = [(op, dt) for op in ("conv2d", "max_pool2d", "linear", "relu", "cross_entropy")
              for dt in ("float32", "float64")]  # fmt: skip


@pytest.mark.usefixtures("notebook_layers")
@pytest.mark.parametrize("op, dtype", OPS_DTYPES, ids=[f"{o}-{d}" for o, d in OPS_DTYPES])
def test_the_notebooks_layers_fail_for_their_real_defects_only(op: str, dtype: str) -> None:
    rows = _applicable(op, "notebook", _run(op, dtype, "notebook"))
    failed = {c: t for c, t in rows.items() if t.failed}
    if op == "conv2d":  # bug 1: dX computed, never returned
        assert "grad_input" in failed and set(failed) <= {"grad_input", "grad_weight", "grad_bias"}, failed
        assert failed["grad_input"].failed == _supported(failed["grad_input"]) > 0
        assert (
            "Conv2D.backward returned None; it must return the gradient with respect to its input, shape ("
            in (failed["grad_input"].failure["detail"])
        )
    elif op == "max_pool2d" and dtype == "float32":  # bug 2: np.zeros(shape) is float64
        details = [t.failure["detail"] for t in failed.values()]
        assert details and all(
            "MaxPool2D.forward returned its output in float64 for a float32 input; a layer must compute in its "
            "input's dtype" in d
            for d in details
        ), details
    elif op == "cross_entropy":  # bug 3: -log(p[y] + 1e-10)
        assert set(failed) <= {"forward", "finite_difference"} and "forward" in failed, failed
        fwd = failed["forward"]
        if dtype == "float64":  # visible in every case without a hazard: 1e-10 is a million times the bound
            assert fwd.worst_abs_err >= 1e-10 and fwd.failure["detail"].startswith("forward")
            plain = _run(op, dtype, "notebook", hazard_free=True)["forward"]  # a nan or inf loss hides it
            assert plain.failed == _supported(plain) > 0, (plain.failed, _supported(plain))
        else:  # in float32 only where p[y] < ~1e-5: the drawn logits of scale 1e4
            assert fwd.failed >= 1
    elif op == "relu":  # bug 4: X * (X > 0) turns -inf into nan; found by the hazard values only
        assert "forward" in failed, failed
        assert "gives nan where PyTorch gives 0" in failed["forward"].failure["detail"], failed["forward"].failure
        plain = _run(op, dtype, "notebook", hazard_free=True)
        assert all(t.passed for c, t in _applicable(op, "notebook", plain).items()), plain
    else:
        assert not failed, {c: t.failure["detail"] for c, t in failed.items()}
        assert all(t.passed for t in rows.values())


@pytest.mark.usefixtures("notebook_layers")
@pytest.mark.parametrize("op, dtype", OPS_DTYPES, ids=[f"{o}-{d}" for o, d in OPS_DTYPES])
def test_the_fixed_layers_pass(op: str, dtype: str) -> None:
    rows = _applicable(op, "notebook_fixed", _run(op, dtype, "notebook_fixed"))
    bad = {c: (t.failed, t.failure and t.failure["detail"]) for c, t in rows.items() if not t.passed}
    assert not bad, bad
    assert min(_supported(t) for c, t in rows.items() if c not in ("finite_difference", "vjp_direction")) >= 10
