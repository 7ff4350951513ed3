"""Optimizers: trajectories computed by hand or from the papers' textbook formulas, zero_grad,
skipped None gradients, param groups, state_dict round trips and every validation error.

SGD cases use dyadic numbers (lr 0.5, momentum 0.5, ...), so every operation is exact in
binary and the trajectories are compared for equality. Adam, RMSprop and Adagrad involve
square roots: their trajectories are compared under refcnn.testing's policy with
n = (correctly rounded operations per step) * steps and S = |theta_0| + sum of |updates|
(the magnitude of what was summed into theta).
"""

from __future__ import annotations

import copy
import math
import re
import warnings

import numpy as np
import pytest

from refcnn import optim
from refcnn.nn import Parameter
from refcnn.testing import assert_close

F64 = np.float64
THETA0 = np.array([[1.0, -2.0, 0.5], [3.0, -0.25, 4.0]])  # (2, 3): asymmetric
GRADS = [
    np.array([[1.0, 0.5, -2.0], [0.25, 4.0, -1.0]]),
    np.array([[2.0, -1.0, 0.5], [-0.5, 2.0, 3.0]]),
    np.array([[-1.0, 4.0, 1.0], [1.0, -0.125, 0.75]]),
]
OPS_PER_STEP = 16  # the most any update below rounds per element per step (Adam: 15)


def run(opt_cls, grads=GRADS, theta0=THETA0, **kwargs):
    """The parameter after each step of ``opt_cls(**kwargs)`` fed ``grads``."""
    p = Parameter(np.array(theta0, copy=True))
    opt = opt_cls([p], **kwargs)
    out = []
    for g in grads:
        p.grad = np.array(g, copy=True)
        opt.step()
        out.append(p.data.copy())
    return out


def assert_trajectory(actual, expected, theta0=THETA0, what=""):
    """Each step within the policy's bound: n = OPS_PER_STEP * t, S = |theta0| + sum |updates|."""
    S = np.abs(theta0)
    prev = theta0
    for t, (a, e) in enumerate(zip(actual, expected, strict=True), start=1):
        S = S + np.abs(e - prev)
        prev = e
        assert_close(a, e, n=OPS_PER_STEP * t, S=S, dtype=F64, what=f"{what} step {t}")


# ---- SGD: exact dyadic trajectories -------------------------------------------------------------
def sgd_expected(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    """torch's documented SGD, step by step (b_1 = g_1: no dampening on the first step)."""
    theta, buf, out = THETA0.copy(), None, []
    for g in GRADS:
        g = -g if maximize else g
        g = g + weight_decay * theta
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        theta = theta - lr * g
        out.append(theta)
    return out


SGD_CASES = {
    "plain": dict(lr=0.5),
    "momentum": dict(lr=0.5, momentum=0.5),
    "dampening": dict(lr=0.5, momentum=0.5, dampening=0.25),
    "nesterov": dict(lr=0.5, momentum=0.5, nesterov=True),
    "weight_decay": dict(lr=0.5, weight_decay=0.25),
    "wd-momentum": dict(lr=0.25, momentum=0.75, weight_decay=0.5),
    "maximize": dict(lr=0.5, maximize=True),
    "maximize-nesterov-wd": dict(lr=0.5, momentum=0.5, nesterov=True, weight_decay=0.25, maximize=True),
}


@pytest.mark.parametrize("kwargs", SGD_CASES.values(), ids=SGD_CASES.keys())
def test_sgd_trajectory_is_exact(kwargs):
    for a, e in zip(run(optim.SGD, **kwargs), sgd_expected(**kwargs), strict=True):
        np.testing.assert_array_equal(a, e)


def test_sgd_by_hand():
    # theta0 = 1, grads 1, 2, -1, lr 0.5, momentum 0.5:
    # b = 1, theta = 0.5; b = 0.5 + 2 = 2.5, theta = -0.75; b = 1.25 - 1 = 0.25, theta = -0.875
    out = run(optim.SGD, grads=[[1.0], [2.0], [-1.0]], theta0=[1.0], lr=0.5, momentum=0.5)
    assert [float(x[0]) for x in out] == [0.5, -0.75, -0.875]
    # dampening 0.5 leaves the first buffer undamped: b = 1; b = 0.5 + 0.5 * 2 = 1.5
    out = run(optim.SGD, grads=[[1.0], [2.0]], theta0=[1.0], lr=0.5, momentum=0.5, dampening=0.5)
    assert [float(x[0]) for x in out] == [0.5, -0.25]
    # nesterov: b = 1, step g + 0.5 b = 1.5 -> 0.25; b = 2.5, step 2 + 1.25 = 3.25 -> -1.375
    out = run(optim.SGD, grads=[[1.0], [2.0]], theta0=[1.0], lr=0.5, momentum=0.5, nesterov=True)
    assert [float(x[0]) for x in out] == [0.25, -1.375]


def test_sgd_default_lr_is_torch_2_default():
    p = Parameter(np.ones(2))
    opt = optim.SGD([p])
    assert opt.defaults["lr"] == 1e-3
    p.grad = np.array([1.0, -2.0])
    opt.step()
    np.testing.assert_array_equal(p.data, np.array([1.0 - 1e-3, 1.0 + 2e-3]))


# ---- Adam / AdamW: textbook (Kingma & Ba) formulas and closed forms -----------------------------
def adam_textbook(
    lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False, decoupled=False
):
    """Adam as the paper writes it: m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t),
    theta -= lr * m_hat / (sqrt(v_hat) + eps); AdamW decays theta by lr * wd first."""
    b1, b2 = betas
    theta, m, v, vmax, out = THETA0.copy(), 0.0, 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        g = -g if maximize else g
        if decoupled:
            theta = theta - lr * weight_decay * theta
        else:
            g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        vmax = np.maximum(vmax, v)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        theta = theta - lr * (m / (1 - b1**t)) / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return out


ADAM_CASES = {
    "default": dict(),
    "lr-eps": dict(lr=0.1, eps=0.5),
    "betas": dict(lr=0.1, betas=(0.5, 0.75)),
    # betas (0.5, 0.5): v falls from 8 after the |g| = 4 step, so the running max matters
    "amsgrad": dict(lr=0.1, betas=(0.5, 0.5), amsgrad=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.5),
    "maximize": dict(lr=0.1, maximize=True),
    "amsgrad-wd-maximize": dict(lr=0.1, betas=(0.5, 0.5), weight_decay=0.25, amsgrad=True, maximize=True),
}


@pytest.mark.parametrize("kwargs", ADAM_CASES.values(), ids=ADAM_CASES.keys())
def test_adam_matches_textbook(kwargs):
    assert_trajectory(run(optim.Adam, **kwargs), adam_textbook(**kwargs), what=f"Adam {kwargs}")


ADAMW_CASES = {
    "default": dict(),
    "weight_decay": dict(lr=0.1, weight_decay=0.5),
    "amsgrad-maximize": dict(lr=0.1, betas=(0.5, 0.5), weight_decay=0.25, amsgrad=True, maximize=True),
}


@pytest.mark.parametrize("kwargs", ADAMW_CASES.values(), ids=ADAMW_CASES.keys())
def test_adamw_matches_textbook(kwargs):
    expected = adam_textbook(decoupled=True, **{"weight_decay": 1e-2, **kwargs})
    assert_trajectory(run(optim.AdamW, **kwargs), expected, what=f"AdamW {kwargs}")
    # AdamW is Adam with decoupled_weight_decay=True (and weight_decay 1e-2 by default)
    adam = run(optim.Adam, decoupled_weight_decay=True, **{"weight_decay": 1e-2, **kwargs})
    for a, b in zip(run(optim.AdamW, **kwargs), adam, strict=True):
        np.testing.assert_array_equal(a, b)


def test_adam_constant_gradient_closed_form():
    # with g constant: m_hat = g, v_hat = g^2, so every step moves lr * g / (|g| + eps)
    g = np.array([[2.0, -0.5, 1.0], [-4.0, 0.25, 3.0]])
    lr, eps = 0.01, 1e-3
    out = run(optim.Adam, grads=[g] * 3, lr=lr, eps=eps)
    expected = [THETA0 - t * lr * g / (np.abs(g) + eps) for t in (1, 2, 3)]
    assert_trajectory(out, expected, what="Adam constant gradient")


def test_adam_first_step_by_hand():
    # step 1: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2: theta = 1 - 0.001 * 2 / (2 + 1e-8)
    out = run(optim.Adam, grads=[[2.0]], theta0=[1.0])
    assert_close(out[0], [1.0 - 0.001 * 2 / (2 + 1e-8)], n=OPS_PER_STEP, S=1.001, dtype=F64, what="Adam step 1")


def test_adamw_decays_before_the_step():
    # lr 0.5, wd 0.5: theta = 4 * (1 - 0.25) = 3, then the Adam step of g = 1 moves 0.5 / (1 + 1e-8)
    out = run(optim.AdamW, grads=[[1.0]], theta0=[4.0], lr=0.5, weight_decay=0.5)
    assert_close(out[0], [3.0 - 0.5 / (1 + 1e-8)], n=OPS_PER_STEP, S=3.5, dtype=F64, what="AdamW step 1")


# ---- RMSprop ---------------------------------------------------------------------------------------
def rmsprop_textbook(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
    """Hinton's RMSprop with torch's options: v = alpha v + (1 - alpha) g^2, centred by the
    running mean of g, eps outside the root, momentum on g / avg."""
    theta, v, a, b, out = THETA0.copy(), 0.0, 0.0, 0.0, []
    for g in GRADS:
        g = -g if maximize else g
        g = g + weight_decay * theta
        v = alpha * v + (1 - alpha) * g**2
        if centered:
            a = alpha * a + (1 - alpha) * g
            avg = np.sqrt(v - a**2) + eps
        else:
            avg = np.sqrt(v) + eps
        if momentum:
            b = momentum * b + g / avg
            theta = theta - lr * b
        else:
            theta = theta - lr * g / avg
        out.append(theta)
    return out


RMSPROP_CASES = {
    "default": dict(),
    "alpha-eps": dict(lr=0.1, alpha=0.5, eps=0.25),
    "centered": dict(lr=0.1, alpha=0.75, centered=True),
    "momentum": dict(lr=0.1, alpha=0.75, momentum=0.5),
    "weight_decay": dict(lr=0.1, weight_decay=0.5),
    "maximize": dict(lr=0.1, maximize=True),
    "all": dict(lr=0.1, alpha=0.75, momentum=0.5, centered=True, weight_decay=0.25, maximize=True),
}


@pytest.mark.parametrize("kwargs", RMSPROP_CASES.values(), ids=RMSPROP_CASES.keys())
def test_rmsprop_matches_textbook(kwargs):
    assert_trajectory(run(optim.RMSprop, **kwargs), rmsprop_textbook(**kwargs), what=f"RMSprop {kwargs}")


def test_rmsprop_first_step_by_hand():
    # alpha 0.75: v = 0.25 * 4 = 1, avg = 1 + eps, theta = 1 - 0.5 * 2 / (1 + 1e-8)
    out = run(optim.RMSprop, grads=[[2.0]], theta0=[1.0], lr=0.5, alpha=0.75)
    assert_close(out[0], [1.0 - 1.0 / (1 + 1e-8)], n=OPS_PER_STEP, S=2.0, dtype=F64, what="RMSprop step 1")
    # centered: a = 0.25 * 2 = 0.5, avg = sqrt(1 - 0.25) + eps
    out = run(optim.RMSprop, grads=[[2.0]], theta0=[1.0], lr=0.5, alpha=0.75, centered=True)
    expected = 1.0 - 1.0 / (math.sqrt(0.75) + 1e-8)
    assert_close(out[0], [expected], n=OPS_PER_STEP, S=3.0, dtype=F64, what="centered RMSprop step 1")


# ---- Adagrad ---------------------------------------------------------------------------------------
def adagrad_textbook(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False):
    """Duchi et al.'s Adagrad with torch's decayed step lr / (1 + (t - 1) lr_decay)."""
    theta, s, out = THETA0.copy(), initial_accumulator_value, []
    for t, g in enumerate(GRADS, start=1):
        g = -g if maximize else g
        g = g + weight_decay * theta
        s = s + g**2
        theta = theta - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        out.append(theta)
    return out


ADAGRAD_CASES = {
    "default": dict(),
    "lr_decay": dict(lr=0.1, lr_decay=0.5),
    "weight_decay": dict(lr=0.1, weight_decay=0.5),
    "initial_accumulator": dict(lr=0.1, initial_accumulator_value=2.0),
    "eps-maximize": dict(lr=0.1, eps=0.25, maximize=True),
}


@pytest.mark.parametrize("kwargs", ADAGRAD_CASES.values(), ids=ADAGRAD_CASES.keys())
def test_adagrad_matches_textbook(kwargs):
    assert_trajectory(run(optim.Adagrad, **kwargs), adagrad_textbook(**kwargs), what=f"Adagrad {kwargs}")


def test_adagrad_constant_gradient_closed_form():
    # s_t = t g^2, so step t moves lr / (1 + (t-1) d) * g / (sqrt(t) |g| + eps)
    g = np.array([[2.0, -0.5, 1.0], [-4.0, 0.25, 3.0]])
    lr, d, eps = 0.5, 0.25, 1e-3
    out = run(optim.Adagrad, grads=[g] * 3, lr=lr, lr_decay=d, eps=eps)
    expected, theta = [], THETA0
    for t in (1, 2, 3):
        theta = theta - lr / (1 + (t - 1) * d) * g / (math.sqrt(t) * np.abs(g) + eps)
        expected.append(theta)
    assert_trajectory(out, expected, what="Adagrad constant gradient")


def test_adagrad_creates_state_at_construction():
    p = Parameter(np.zeros((2, 3), dtype=np.float32))
    opt = optim.Adagrad([p], initial_accumulator_value=0.5)
    sd = opt.state_dict()["state"]
    assert sd[0]["step"] == 0.0
    assert sd[0]["sum"].dtype == np.float32
    np.testing.assert_array_equal(sd[0]["sum"], np.full((2, 3), 0.5, dtype=np.float32))
    # a parameter added later gets its state at its first step, from the constructor's value
    q = Parameter(np.zeros(2))
    opt.add_param_group({"params": [q], "initial_accumulator_value": 3.0})
    q.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(opt.state[q]["sum"], np.full(2, 1.5))


# ---- every optimizer: common behaviour ------------------------------------------------------------
ALL = {
    "SGD": (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "Adam": (optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    "AdamW": (optim.AdamW, dict(lr=0.01)),
    "RMSprop": (optim.RMSprop, dict(momentum=0.5, centered=True)),
    "Adagrad": (optim.Adagrad, dict(lr_decay=0.1, initial_accumulator_value=0.1)),
}


def make_params(dtype=F64, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in ((3, 5), (4,), (2, 1, 3))]


def random_grads(params, rng):
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(p.dtype)


@pytest.mark.parametrize(("cls", "kwargs"), ALL.values(), ids=ALL.keys())
def test_state_dict_round_trip_continues_identically(cls, kwargs):
    rng = np.random.default_rng(1)
    a = make_params()
    opt_a = cls(a, **kwargs)
    for _ in range(3):
        random_grads(a, rng)
        opt_a.step()
    saved = opt_a.state_dict()
    snapshot = copy.deepcopy(saved)
    b = [Parameter(p.data.copy()) for p in a]
    opt_b = cls(b, **kwargs)
    opt_b.load_state_dict(saved)
    for _ in range(3):
        random_grads(a, rng)
        for p, q in zip(a, b, strict=True):
            q.grad = p.grad.copy()
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b, strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    # the saved dict holds copies: training on did not change it
    for key, value in saved["state"][0].items():
        np.testing.assert_array_equal(value, snapshot["state"][0][key])


@pytest.mark.parametrize(("cls", "kwargs"), ALL.values(), ids=ALL.keys())
def test_updates_in_place_in_the_parameter_dtype(cls, kwargs):
    rng = np.random.default_rng(2)
    params = make_params(np.float32)
    arrays = [p.data for p in params]
    opt = cls(params, **kwargs)
    for _ in range(2):
        random_grads(params, rng)
        opt.step()
    for p, arr in zip(params, arrays, strict=True):
        assert p.data is arr  # modules keep seeing their parameters
        assert p.data.dtype == np.float32
    for state in opt.state.values():
        for v in state.values():
            assert not isinstance(v, np.ndarray) or v.dtype == np.float32


@pytest.mark.parametrize(("cls", "kwargs"), ALL.values(), ids=ALL.keys())
def test_float32_follows_float64_within_float32_roundoff(cls, kwargs):
    """The same run in float32 and float64: float32 arithmetic, with the float64 run as reference."""
    rng = np.random.default_rng(3)
    p64 = make_params(F64)
    p32 = [Parameter(p.data.astype(np.float32)) for p in p64]
    # gradients exactly representable in float32, so both runs see the same inputs
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in p64] for _ in range(3)]
    o64, o32 = cls(p64, **kwargs), cls(p32, **kwargs)
    S = [np.abs(p.data) for p in p64]
    for t, gs in enumerate(grads, start=1):
        before = [p.data.copy() for p in p64]
        for p, q, g in zip(p64, p32, gs, strict=True):
            p.grad, q.grad = g.astype(F64), g.copy()
        o64.step()
        o32.step()
        for i, (p, q) in enumerate(zip(p64, p32, strict=True)):
            S[i] = S[i] + np.abs(p.data - before[i])
            assert_close(q.data, p.data, n=OPS_PER_STEP * t, S=S[i], dtype=np.float32, what=f"param {i} step {t}")


@pytest.mark.parametrize(("cls", "kwargs"), ALL.values(), ids=ALL.keys())
def test_none_grads_are_skipped(cls, kwargs):
    params = make_params()
    before = [p.data.copy() for p in params]
    opt = cls(params, **kwargs)
    had_state = len(opt.state)  # Adagrad creates state at construction
    params[1].grad = np.ones(params[1].shape)
    opt.step()
    np.testing.assert_array_equal(params[0].data, before[0])
    np.testing.assert_array_equal(params[2].data, before[2])
    assert not np.array_equal(params[1].data, before[1])
    if not had_state:
        assert list(opt.state_dict()["state"]) == [1]


def test_sgd_without_momentum_keeps_no_state():
    p = Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.5)
    p.grad = np.ones(2)
    opt.step()
    assert opt.state_dict()["state"] == {}  # as torch: no momentum, no state


def test_zero_grad_none_then_zeros():
    p, q = Parameter(np.ones((2, 3))), Parameter(np.ones(4))
    opt = optim.SGD([p, q], lr=0.5, momentum=0.5)
    p.grad, q.grad = np.ones((2, 3)), np.ones(4)
    opt.step()  # theta = 0.5, b = 1
    opt.zero_grad()
    assert p.grad is None and q.grad is None
    opt.step()  # None grads: skipped, nothing moves
    np.testing.assert_array_equal(p.data, np.full((2, 3), 0.5))
    p.grad, q.grad = np.ones((2, 3)), np.ones(4)
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and not p.grad.any()  # zeroed in place
    opt.step()  # zero gradients are stepped: the momentum still moves theta by lr * 0.5 * b
    np.testing.assert_array_equal(p.data, np.full((2, 3), 0.25))


def test_param_groups_with_own_options():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(3))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.25, "momentum": 0.5}], lr=0.5)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0
    assert opt.param_groups[1]["lr"] == 0.25 and opt.param_groups[1]["nesterov"] is False
    for _ in range(2):
        a.grad, b.grad = np.ones(2), np.ones(3)
        opt.step()
    np.testing.assert_array_equal(a.data, np.zeros(2))  # 1 - 0.5 - 0.5
    np.testing.assert_array_equal(b.data, np.full(3, 0.375))  # 1 - 0.25 * 1 - 0.25 * 1.5
    assert opt.state_dict()["param_groups"][1]["params"] == [1]


def test_named_parameters_and_add_param_group():
    a, b, c = Parameter(np.ones(2)), Parameter(np.ones(3)), Parameter(np.ones(1))
    opt = optim.Adam([("w", a), ("b", b)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    with pytest.raises(ValueError, match="cannot add param group without names"):
        opt.add_param_group({"params": [c]})
    opt.add_param_group({"params": [("c", c)], "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["betas"] == (0.9, 0.999)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["param_names"] == ["c"]


def test_add_param_group_rejects():
    a = Parameter(np.ones(2))
    opt = optim.SGD([a])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="ordered collections"):
        opt.add_param_group({"params": {Parameter(np.ones(1))}})
    with pytest.raises(TypeError, match="param_group must be a dict, but got list"):
        opt.add_param_group([Parameter(np.ones(1))])
    with pytest.raises(ValueError, match="'params' entry"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(TypeError, match=r"can only optimize Parameters, but one of the params is numpy\.ndarray"):
        opt.add_param_group({"params": [np.ones(2)]})


def test_duplicate_parameter_in_a_group_warns():
    a = Parameter(np.ones(2))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([a, a])


@pytest.mark.parametrize(
    ("params", "err", "match"),
    [
        ([], ValueError, "empty parameter list"),
        (Parameter(np.ones(2)), TypeError, "iterable of Parameters or dicts, but got Parameter"),
        (np.ones(2), TypeError, "iterable of Parameters or dicts, but got ndarray"),
        ({"params": []}, TypeError, "pass a list of parameter groups"),
        (3, TypeError, "but got int"),
        ([np.ones(2)], TypeError, "can only optimize Parameters"),
    ],
    ids=["empty", "one-parameter", "ndarray", "dict", "int", "ndarray-in-list"],
)
def test_bad_params(params, err, match):
    with pytest.raises(err, match=match):
        optim.SGD(params)


VALIDATION = [
    (optim.SGD, dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (optim.SGD, dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    (optim.SGD, dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    (optim.SGD, dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (optim.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov momentum requires a momentum"),
    (optim.Adam, dict(lr=-1e-3), "Invalid learning rate: -0.001"),
    (optim.Adam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (optim.Adam, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (optim.Adam, dict(betas=(0, 0.999)), "betas must be either both floats or both Tensors, got (0, 0.999)"),
    (optim.Adam, dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (optim.AdamW, dict(lr=float("nan")), "Invalid learning rate: nan"),
    (optim.AdamW, dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (optim.RMSprop, dict(lr=-0.01), "Invalid learning rate: -0.01"),
    (optim.RMSprop, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (optim.RMSprop, dict(momentum=-0.9), "Invalid momentum value: -0.9"),
    (optim.RMSprop, dict(weight_decay=-0.5), "Invalid weight_decay value: -0.5"),
    (optim.RMSprop, dict(alpha=-0.99), "Invalid alpha value: -0.99"),
    (optim.Adagrad, dict(lr=-0.01), "Invalid learning rate: -0.01"),
    (optim.Adagrad, dict(lr_decay=-0.1), "Invalid lr_decay value: -0.1"),
    (optim.Adagrad, dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (optim.Adagrad, dict(initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
    (optim.Adagrad, dict(eps=-1e-10), "Invalid epsilon value: -1e-10"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"), VALIDATION, ids=[f"{c.__name__}-{'-'.join(k)}" for c, k, _ in VALIDATION]
)
def test_validation_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        cls([Parameter(np.ones(2))], **kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (optim.SGD, dict(lr="0.1"), "SGD: lr must be a real number, got '0.1'"),
        (optim.Adam, dict(betas=0.9), "Adam: betas must be a pair of floats, got 0.9"),
        (optim.Adam, dict(betas=(0.9, "x")), r"Adam: betas\[1\] must be a real number"),
        (optim.RMSprop, dict(alpha=None), "RMSprop: alpha must be a real number, got None"),
        (optim.Adagrad, dict(eps=[1e-10]), r"Adagrad: eps must be a real number, got \[1e-10\]"),
    ],
    ids=["sgd-lr-str", "adam-betas-scalar", "adam-beta-str", "rmsprop-alpha-none", "adagrad-eps-list"],
)
def test_type_errors(cls, kwargs, match):
    with pytest.raises(TypeError, match=match):
        cls([Parameter(np.ones(2))], **kwargs)


@pytest.mark.parametrize(
    ("grad", "err", "match"),
    [
        (np.ones(3), ValueError, r"grad of parameter 1 has shape \(3,\), the parameter \(2,\)"),
        (np.ones(2, dtype=np.float32), TypeError, "grad of parameter 1 has dtype float32, the parameter float64"),
        ([1.0, 1.0], TypeError, "grad of parameter 1 must be a numpy.ndarray, got list"),
    ],
    ids=["shape", "dtype", "list"],
)
def test_bad_grad_is_rejected_before_any_update(grad, err, match):
    a, b = Parameter(np.ones((2, 3))), Parameter(np.ones(2))
    opt = optim.Adam([a, b])
    a.grad, b.grad = np.ones((2, 3)), grad
    with pytest.raises(err, match=match):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones((2, 3)))  # nothing moved
    assert len(opt.state) == 0


def test_state_that_no_longer_fits_the_parameter_is_rejected():
    p = Parameter(np.ones(2, dtype=np.float32))
    opt = optim.Adam([p])
    p.grad = np.ones(2, dtype=np.float32)
    opt.step()
    p.data, p.grad = p.data.astype(np.float64), np.ones(2)  # what Module.to(np.float64) does
    with pytest.raises(TypeError, match="state 'exp_avg' of parameter 0 has shape"):
        opt.step()


def test_closure_is_called_and_its_loss_returned():
    p = Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.5)

    def closure():
        p.grad = np.ones(2)
        return 1.25

    assert opt.step(closure) == 1.25
    np.testing.assert_array_equal(p.data, np.full(2, 0.5))


# ---- state_dict layout and loading -------------------------------------------------------------------
def test_state_dict_layout_as_torch():
    a, b = Parameter(np.ones((2, 3))), Parameter(np.ones(4))
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], amsgrad=True)
    a.grad, b.grad = np.ones((2, 3)), np.ones(4)
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sd["param_groups"][0] == {
        "lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0, "amsgrad": True,
        "maximize": False, "decoupled_weight_decay": False, "params": [0],
    }  # fmt: skip
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][1]["params"] == [1]
    assert list(sd["state"]) == [0, 1]
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert isinstance(sd["state"][0]["step"], float) and sd["state"][0]["step"] == 1.0
    assert sd["state"][0]["exp_avg"] is not opt.state[a]["exp_avg"]  # a copy


def test_load_state_dict_takes_torch_layout_and_casts():
    # what torch.optim.SGD(...).state_dict() holds, with its implementation flags and a
    # float64 buffer for a float32 parameter: the buffer is cast as torch casts it
    p = Parameter(np.zeros((2, 3), dtype=np.float32))
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    saved = {
        "state": {0: {"momentum_buffer": np.full((2, 3), 2.0)}},
        "param_groups": [
            {"lr": 0.5, "momentum": 0.5, "dampening": 0, "weight_decay": 0, "nesterov": False, "maximize": False,
             "foreach": None, "differentiable": False, "fused": None, "params": [0]}
        ],
    }  # fmt: skip
    opt.load_state_dict(saved)
    assert opt.state[p]["momentum_buffer"].dtype == np.float32
    assert opt.param_groups[0]["params"][0] is p and opt.param_groups[0]["lr"] == 0.5
    p.grad = np.ones((2, 3), dtype=np.float32)
    opt.step()  # b = 0.5 * 2 + 1 = 2, theta = -0.5 * 2
    np.testing.assert_array_equal(p.data, np.full((2, 3), -1.0, dtype=np.float32))
    saved["state"][0]["momentum_buffer"][...] = 7  # the optimizer holds a copy
    assert opt.state[p]["momentum_buffer"][0, 0] == 2.0


def test_adamw_stays_decoupled_after_loading_adam_state():
    p = Parameter(np.ones(2))
    adam = optim.Adam([p])
    opt = optim.AdamW([Parameter(np.ones(2))])
    opt.load_state_dict(adam.state_dict())
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


def loaded(opt, sd):
    with pytest.raises((ValueError, TypeError)) as info:
        opt.load_state_dict(sd)
    return str(info.value)


def test_load_state_dict_errors_leave_the_optimizer_unchanged():
    a, b = Parameter(np.ones((2, 3))), Parameter(np.ones(4))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = np.ones((2, 3)), np.ones(4)
    opt.step()
    good = opt.state_dict()
    before = opt.state_dict()

    two_groups = {
        "state": {},
        "param_groups": [dict(good["param_groups"][0], params=[0]), dict(good["param_groups"][0], params=[1])],
    }
    assert "different number of parameter groups: 2 in the state dict, 1 in the optimizer" in loaded(opt, two_groups)
    short = {"state": {}, "param_groups": [dict(good["param_groups"][0], params=[0])]}
    assert "group 0 has 1 parameters in the state dict, 2 in the optimizer" in loaded(opt, short)
    misshaped = {"state": {0: dict(good["state"][0], exp_avg=np.ones(5))}, "param_groups": good["param_groups"]}
    assert "state 'exp_avg' of parameter 0 has shape (5,), the parameter (2, 3)" in loaded(opt, misshaped)
    unknown = {"state": {7: good["state"][0]}, "param_groups": good["param_groups"]}
    assert "state for parameter 7, which no param group lists" in loaded(opt, unknown)
    sgd_state = optim.SGD([Parameter(np.ones((2, 3))), Parameter(np.ones(4))]).state_dict()
    assert "lacks the Adam options ['betas', 'eps', 'amsgrad', 'decoupled_weight_decay']" in loaded(opt, sgd_state)
    assert "lacks ['state']" in loaded(opt, {"param_groups": good["param_groups"]})
    assert "expects a dict, got list" in loaded(opt, [good])

    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i in (0, 1):
        for k, v in before["state"][i].items():
            np.testing.assert_array_equal(after["state"][i][k], v)


def test_repr_lists_groups_as_torch():
    opt = optim.SGD([Parameter(np.ones(2))], lr=0.1)
    assert repr(opt) == (
        "SGD (\nParameter Group 0\n    dampening: 0\n    lr: 0.1\n    maximize: False\n"
        "    momentum: 0\n    nesterov: False\n    weight_decay: 0\n)"
    )


def test_no_warning_in_normal_use():
    p = Parameter(np.ones(2))
    opt = optim.RMSprop([p], centered=True, momentum=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            p.grad = np.ones(2)
            opt.step()
