"""Learning-rate schedulers: sequences computed by hand (dyadic factors compare exactly; cosine
ones against the closed form under the tolerance policy), OneCycleLR's momentum/betas,
ReduceLROnPlateau's patience/cooldown/threshold, state_dict, warnings, validation."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

from refcnn import optim
from refcnn.nn import Parameter
from refcnn.optim import lr_scheduler as L
from refcnn.testing import assert_close

F64 = np.float64
OPS_PER_EPOCH = 8  # rounded operations of one recursive cosine update (2 cos, 5 arithmetic, 1 add)


def sgd(*lrs, momentum=0.9):
    """An SGD with one group per lr."""
    return optim.SGD([{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs], momentum=momentum)


def adam(*lrs):
    return optim.Adam([{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs])


def lrs_over(sched, steps):
    """get_last_lr() after construction and after each of ``steps`` epochs."""
    out = [sched.get_last_lr()]
    for _ in range(steps):
        sched.optimizer.step()  # no gradients: nothing moves, but the order is the real one
        sched.step()
        out.append(sched.get_last_lr())
    return out


# ---- hand-computed sequences -------------------------------------------------------------------
def test_step_lr():
    seq = lrs_over(L.StepLR(sgd(1.0, 0.5), step_size=2, gamma=0.5), 6)
    assert seq == [[1.0, 0.5], [1.0, 0.5], [0.5, 0.25], [0.5, 0.25], [0.25, 0.125], [0.25, 0.125], [0.125, 0.0625]]


def test_step_lr_default_gamma():
    seq = lrs_over(L.StepLR(sgd(1.0), step_size=3), 3)
    assert seq == [[1.0], [1.0], [1.0], [1.0 * 0.1]]


def test_multistep_lr_repeated_milestone_counts_twice():
    # milestones 1, 3, 3 (gamma 0.5): x0.5 at epoch 1, x0.25 at epoch 3
    seq = lrs_over(L.MultiStepLR(sgd(1.0, 2.0), milestones=[3, 1, 3], gamma=0.5), 5)
    assert seq == [[1.0, 2.0], [0.5, 1.0], [0.5, 1.0], [0.125, 0.25], [0.125, 0.25], [0.125, 0.25]]


def test_exponential_lr():
    seq = lrs_over(L.ExponentialLR(sgd(1.0, 3.0), gamma=0.5), 3)
    assert seq == [[1.0, 3.0], [0.5, 1.5], [0.25, 0.75], [0.125, 0.375]]


@pytest.mark.parametrize(
    ("T_max", "eta_min", "base"),
    [(4, 0.0, 1.0), (3, 0.25, 1.25), (5, 1e-3, 0.1)],
    ids=["T4", "T3-eta0.25", "T5-eta1e-3"],
)
def test_cosine_annealing_follows_the_closed_form(T_max, eta_min, base):
    """PyTorch's recursion against eta_min + (base - eta_min)(1 + cos(pi t / T_max)) / 2 over
    two and a half periods (down, back up through the restart branch, down again)."""
    sched = L.CosineAnnealingLR(sgd(base), T_max=T_max, eta_min=eta_min)
    seq = [lrs[0] for lrs in lrs_over(sched, 5 * T_max // 2 + 1)]
    for t, lr in enumerate(seq):
        expected = eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2
        assert_close(lr, expected, n=OPS_PER_EPOCH * max(t, 1), S=base, dtype=F64, what=f"epoch {t}")
    assert seq[T_max] == eta_min  # 1 + cos(pi) is exactly 0


def test_cosine_annealing_by_hand():
    # T_max 2, base 1: 1, (1 + cos(pi/2))/2 = 0.5, 0, then the restart branch: 0 + 1 * (1 - cos(pi/2))/2
    seq = [lrs[0] for lrs in lrs_over(L.CosineAnnealingLR(sgd(1.0), T_max=2), 4)]
    assert seq[0] == 1.0 and seq[2] == 0.0
    assert_close(seq[1], 0.5, n=OPS_PER_EPOCH, S=1.0, dtype=F64, what="epoch 1")
    assert_close(seq[3], 0.5, n=3 * OPS_PER_EPOCH, S=1.0, dtype=F64, what="epoch 3")
    assert_close(seq[4], 1.0, n=4 * OPS_PER_EPOCH, S=1.0, dtype=F64, what="epoch 4")


# ---- OneCycleLR ---------------------------------------------------------------------------------
def one_cycle_expected(step, phases, group, strategy):
    """The 1cycle schedule written independently: phase (s0, s1], cos or linear interpolation."""
    s0 = 0.0
    for i, (end, start_key, end_key) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            pct = (step - s0) / (end - s0)
            a, b = group[start_key], group[end_key]
            if strategy == "linear":
                return a + (b - a) * pct
            return a + (b - a) * (1 - math.cos(math.pi * pct)) / 2
        s0 = end
    raise AssertionError


def test_one_cycle_by_hand():
    opt = sgd(1.0)
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="linear")
    g = opt.param_groups[0]
    assert (g["initial_lr"], g["max_lr"], g["min_lr"]) == (1.0 / 25, 1.0, 1.0 / 25 / 1e4)
    assert (g["max_momentum"], g["base_momentum"]) == (0.95, 0.85)
    seq, moms = [], []
    for step in range(11):
        if step:
            opt.step()
            sched.step()
        seq.append(sched.get_last_lr()[0])
        moms.append(g["momentum"])
    # warm-up ends at step 0.3 * 10 - 1 = 2 (lr 0.04 -> 1), annealing ends at step 9 (-> 4e-6)
    assert seq[0] == 0.04 and seq[2] == 1.0
    assert_close(seq[9], 4e-6, n=4, S=1.0, dtype=F64, what="step 9")  # (4e-6 - 1) * 1 + 1 rounds
    assert_close(seq[1], 0.52, n=4, S=1.0, dtype=F64, what="step 1")
    assert_close(seq[5], 1.0 + (4e-6 - 1.0) * 3 / 7, n=4, S=1.0, dtype=F64, what="step 5")
    # momentum moves the other way: 0.95 -> 0.85 -> 0.95
    assert moms[0] == 0.95 and moms[2] == 0.85 and moms[9] == 0.95
    assert_close(moms[1], 0.9, n=4, S=0.95, dtype=F64, what="momentum step 1")
    # step 10 extrapolates as PyTorch does; the 11th step is past total_steps
    opt.step()
    with pytest.raises(
        ValueError, match=re.escape("Tried to step 11 times. The specified number of total steps is 10")
    ):
        sched.step()


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True], ids=["two-phase", "three-phase"])
def test_one_cycle_follows_the_schedule(strategy, three_phase):
    opt = adam(0.5, 0.5)
    sched = L.OneCycleLR(
        opt, max_lr=[1.0, 0.25], epochs=3, steps_per_epoch=4, pct_start=0.25, anneal_strategy=strategy,
        three_phase=three_phase, base_momentum=0.8, max_momentum=0.9, div_factor=8.0, final_div_factor=100.0,
    )  # fmt: skip
    # total 12 steps; phases end at 0.25 * 12 - 1 = 2 (and 2 * 0.25 * 12 - 2 = 4), then 11
    if three_phase:
        lr_phases = [(2.0, "initial_lr", "max_lr"), (4.0, "max_lr", "initial_lr"), (11, "initial_lr", "min_lr")]
        mom_phases = [
            (2.0, "max_momentum", "base_momentum"),
            (4.0, "base_momentum", "max_momentum"),
            (11, "max_momentum", "max_momentum"),
        ]
    else:
        lr_phases = [(2.0, "initial_lr", "max_lr"), (11, "max_lr", "min_lr")]
        mom_phases = [(2.0, "max_momentum", "base_momentum"), (11, "base_momentum", "max_momentum")]
    for step in range(12):
        if step:
            opt.step()
            sched.step()
        for i, group in enumerate(opt.param_groups):
            lr = one_cycle_expected(step, lr_phases, group, strategy)
            mom = one_cycle_expected(step, mom_phases, group, strategy)
            assert_close(sched.get_last_lr()[i], lr, n=6, S=group["max_lr"], dtype=F64, what=f"lr step {step}")
            assert_close(group["betas"][0], mom, n=6, S=0.9, dtype=F64, what=f"beta1 step {step}")
            assert group["betas"][1] == 0.999  # only beta1 cycles
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0 / 8, 0.25 / 8]


def test_one_cycle_without_momentum_works_with_adagrad():
    opt = optim.Adagrad([Parameter(np.zeros(2))])
    sched = L.OneCycleLR(opt, max_lr=0.5, total_steps=4, cycle_momentum=False)
    assert "momentum" not in opt.param_groups[0]
    assert len(lrs_over(sched, 4)) == 5
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        L.OneCycleLR(optim.Adagrad([Parameter(np.zeros(2))]), max_lr=0.5, total_steps=4)


# ---- ReduceLROnPlateau --------------------------------------------------------------------------
def plateau(metrics, lrs=(1.0,), **kwargs):
    opt = sgd(*lrs)
    sched = L.ReduceLROnPlateau(opt, **kwargs)
    out = []
    for m in metrics:
        opt.step()
        sched.step(m)
        out.append(sched.get_last_lr())
    return out, sched


def test_plateau_patience():
    # best 1.0, 0.9; then three bad epochs > patience 2: halve; 0.8 is better; three bad: halve
    out, _ = plateau(
        [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85], patience=2, factor=0.5, threshold=0.0, threshold_mode="abs"
    )
    assert [x[0] for x in out] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_plateau_cooldown():
    # patience 0: every bad epoch outside a cooldown reduces; cooldown 2 skips two epochs after each
    out, _ = plateau([1.0] * 8, patience=0, cooldown=2, factor=0.5)
    assert [x[0] for x in out] == [1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


@pytest.mark.parametrize(
    ("mode", "threshold_mode", "metrics", "expected"),
    [
        # min/rel 0.1: better means < best * 0.9; 0.95 and 0.91 are not, 0.89 is
        ("min", "rel", [1.0, 0.95, 0.91, 0.89, 0.85], [1.0, 1.0, 0.5, 0.5, 0.5]),
        # min/abs 0.1: better means < best - 0.1
        ("min", "abs", [1.0, 0.95, 0.85, 0.8, 0.7], [1.0, 1.0, 1.0, 1.0, 1.0]),
        # max/rel 0.1: better means > best * 1.1
        ("max", "rel", [1.0, 1.05, 1.2, 1.25, 1.3], [1.0, 1.0, 1.0, 1.0, 0.5]),
        # max/abs 0.1: better means > best + 0.1
        ("max", "abs", [1.0, 1.05, 1.15, 1.2, 1.24], [1.0, 1.0, 1.0, 1.0, 0.5]),
    ],
    ids=["min-rel", "min-abs", "max-rel", "max-abs"],
)
def test_plateau_thresholds(mode, threshold_mode, metrics, expected):
    out, _ = plateau(metrics, mode=mode, threshold=0.1, threshold_mode=threshold_mode, patience=1, factor=0.5)
    assert [x[0] for x in out] == expected


def test_plateau_min_lr_per_group_and_eps():
    out, _ = plateau([1.0] * 4, lrs=(1.0, 1.0), patience=0, factor=0.5, min_lr=[0.3, 0.0])
    assert out == [[1.0, 1.0], [0.5, 0.5], [0.3, 0.25], [0.3, 0.125]]
    # a reduction smaller than eps is skipped: 1.5e-8 -> 1.5e-9 is applied, 1e-8 -> 1e-9 is not
    out, _ = plateau([1.0, 2.0], lrs=(1.5e-8, 1e-8), patience=0)
    assert out[-1][1] == 1e-8
    assert_close(out[-1][0], 1.5e-9, n=1, S=1.5e-9, dtype=F64, what="reduced lr")


def test_plateau_takes_numpy_metrics_and_sets_no_initial_lr():
    out, sched = plateau([np.float32(1.0), np.array(2.0)], patience=0, factor=0.5)
    assert out[-1] == [0.5]
    assert "initial_lr" not in sched.optimizer.param_groups[0]


def test_plateau_state_dict_round_trip():
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.96, 0.95]
    _, a = plateau(metrics[:4], patience=1, cooldown=1, factor=0.5)
    b = L.ReduceLROnPlateau(sgd(a.optimizer.param_groups[0]["lr"]), patience=1, cooldown=1, factor=0.5)
    b.load_state_dict(a.state_dict())
    for m in metrics[4:]:
        a.step(m)
        b.step(m)
        assert a.get_last_lr() == b.get_last_lr()
    assert (a.best, a.num_bad_epochs, a.cooldown_counter) == (b.best, b.num_bad_epochs, b.cooldown_counter)


# ---- common behaviour ---------------------------------------------------------------------------
SCHEDULERS = {
    "StepLR": lambda opt: L.StepLR(opt, step_size=2, gamma=0.5),
    "MultiStepLR": lambda opt: L.MultiStepLR(opt, milestones=[1, 4]),
    "ExponentialLR": lambda opt: L.ExponentialLR(opt, gamma=0.75),
    "CosineAnnealingLR": lambda opt: L.CosineAnnealingLR(opt, T_max=3, eta_min=0.01),
    "OneCycleLR": lambda opt: L.OneCycleLR(opt, max_lr=0.5, total_steps=12),
}


@pytest.mark.parametrize("make", SCHEDULERS.values(), ids=SCHEDULERS.keys())
def test_state_dict_round_trip(make):
    opt_a = sgd(0.1, 0.2)
    a = make(opt_a)
    lrs_over(a, 4)
    opt_b = sgd(0.1, 0.2)
    b = make(opt_b)
    b.load_state_dict(a.state_dict())
    opt_b.load_state_dict(opt_a.state_dict())  # the groups carry the lrs (and OneCycle's bounds)
    assert lrs_over(a, 5) == lrs_over(b, 5)


def test_state_dict_has_torch_keys():
    sched = L.StepLR(sgd(0.1), step_size=2)
    assert sched.state_dict() == {
        "step_size": 2, "gamma": 0.1, "base_lrs": [0.1], "last_epoch": 0, "_step_count": 1,
        "_is_initial": False, "_get_lr_called_within_step": False, "_last_lr": [0.1],
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"unexpected keys \['T_max'\]"):
        sched.load_state_dict({"T_max": 3})
    with pytest.raises(TypeError, match="expects a dict, got list"):
        sched.load_state_dict([])


def test_initial_lr_is_recorded_once():
    opt = sgd(0.5)
    L.ExponentialLR(opt, gamma=0.5)
    opt.param_groups[0]["lr"] = 0.25
    second = L.StepLR(opt, step_size=1)
    assert opt.param_groups[0]["initial_lr"] == 0.5 and second.base_lrs == [0.5]


def test_resuming_needs_initial_lr_and_does_not_step_ahead():
    with pytest.raises(KeyError, match=re.escape("param 'initial_lr' is not specified in param_groups[0]")):
        L.ExponentialLR(sgd(0.5), gamma=0.5, last_epoch=3)
    opt = sgd(0.25)
    opt.param_groups[0]["initial_lr"] = 1.0
    sched = L.ExponentialLR(opt, gamma=0.5, last_epoch=2)
    assert sched.last_epoch == 3 and sched.get_last_lr() == [0.25]
    assert lrs_over(sched, 1)[-1] == [0.125]


def test_step_before_optimizer_step_warns():
    sched = L.StepLR(sgd(0.1), step_size=2)
    with pytest.warns(UserWarning, match=re.escape("Detected call of `lr_scheduler.step()` before `optimizer.step()`")):
        sched.step()
    sched = L.StepLR(sgd(0.1), step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lrs_over(sched, 3)


def test_get_lr_outside_step_warns():
    sched = L.ExponentialLR(sgd(0.1), gamma=0.5)
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        sched.get_lr()


@pytest.mark.parametrize(
    ("make", "epoch", "expected"),
    [
        (lambda o: L.StepLR(o, step_size=2, gamma=0.5), 5, 0.25),
        (lambda o: L.MultiStepLR(o, milestones=[1, 3, 3], gamma=0.5), 4, 0.125),
        (lambda o: L.ExponentialLR(o, gamma=0.5), 3, 0.125),
        (lambda o: L.CosineAnnealingLR(o, T_max=4), 4, 0.0),
    ],
    ids=["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR"],
)
def test_step_with_epoch_uses_the_closed_form(make, epoch, expected):
    opt = sgd(1.0)
    sched = make(opt)
    opt.step()
    with pytest.warns(UserWarning, match="epoch parameter in `scheduler.step\\(\\)` was not necessary"):
        sched.step(epoch)
    assert sched.get_last_lr() == [expected] and sched.last_epoch == epoch


BAD = [
    (lambda: L.StepLR([], step_size=2), TypeError, "list is not an Optimizer"),
    (lambda: L.StepLR(sgd(0.1), step_size=0), ValueError, "StepLR: step_size must be >= 1, got 0"),
    (lambda: L.StepLR(sgd(0.1), step_size=2.0), TypeError, "StepLR: step_size must be an int, got 2.0"),
    (lambda: L.StepLR(sgd(0.1), step_size=2, gamma="0.1"), TypeError, "StepLR: gamma must be a real number"),
    (lambda: L.StepLR(sgd(0.1), step_size=2, last_epoch=-2), ValueError, "last_epoch must be >= -1, got -2"),
    (lambda: L.MultiStepLR(sgd(0.1), milestones=[1, "2"]), TypeError, "MultiStepLR: milestones must be ints"),
    (lambda: L.MultiStepLR(sgd(0.1), milestones=3), TypeError, "milestones must be an iterable of ints, got 3"),
    (lambda: L.ExponentialLR(sgd(0.1), gamma=None), TypeError, "ExponentialLR: gamma must be a real number, got None"),
    (lambda: L.CosineAnnealingLR(sgd(0.1), T_max=0), ValueError, "CosineAnnealingLR: T_max must be >= 1, got 0"),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0),
        ValueError,
        "You must define either total_steps OR (epochs AND steps_per_epoch)",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0, total_steps=0),
        ValueError,
        "Expected positive integer total_steps, but got 0",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0, total_steps=10.0),
        ValueError,
        "Expected positive integer total_steps, but got 10.0",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0, epochs=-1, steps_per_epoch=2),
        ValueError,
        "Expected positive integer epochs, but got -1",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0, epochs=2, steps_per_epoch=0),
        ValueError,
        "Expected positive integer steps_per_epoch, but got 0",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0, total_steps=5, pct_start=1.5),
        ValueError,
        "Expected float between 0 and 1 pct_start, but got 1.5",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0, total_steps=5, pct_start=0),
        ValueError,
        "Expected float between 0 and 1 pct_start, but got 0",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0, total_steps=5, anneal_strategy="exp"),
        ValueError,
        "anneal_strategy must be one of 'cos' or 'linear', instead got exp",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=[1.0, 2.0], total_steps=5),
        ValueError,
        "max_lr must have the same length as optimizer.param_groups. max_lr has 2 values, param_groups has 1.",
    ),
    (
        lambda: L.OneCycleLR(sgd(0.1), max_lr=1.0, total_steps=5, base_momentum=[0.8, 0.9]),
        ValueError,
        "base_momentum must have the same length",
    ),
    (lambda: L.ReduceLROnPlateau(sgd(0.1), factor=1.0), ValueError, "Factor should be < 1.0, got 1.0"),
    (lambda: L.ReduceLROnPlateau(sgd(0.1), mode="mean"), ValueError, "mode 'mean' is unknown!"),
    (lambda: L.ReduceLROnPlateau(sgd(0.1), threshold_mode="rel2"), ValueError, "threshold mode 'rel2' is unknown!"),
    (lambda: L.ReduceLROnPlateau(sgd(0.1), min_lr=[0.1, 0.2]), ValueError, "expected 1 min_lrs, got 2"),
    (
        lambda: L.ReduceLROnPlateau(sgd(0.1), patience=-1),
        ValueError,
        "ReduceLROnPlateau: patience must be >= 0, got -1",
    ),
    (
        lambda: L.ReduceLROnPlateau(sgd(0.1), cooldown=1.5),
        TypeError,
        "ReduceLROnPlateau: cooldown must be an int, got 1.5",
    ),
    (lambda: L.ReduceLROnPlateau("opt"), TypeError, "str is not an Optimizer"),
]


@pytest.mark.parametrize(("make", "err", "match"), BAD, ids=[f"{i}-{m[:30]}" for i, (_, _, m) in enumerate(BAD)])
def test_validation_errors(make, err, match):
    with pytest.raises(err, match=re.escape(match)):
        make()


def test_plateau_rejects_groups_added_with_per_group_min_lr():
    opt = sgd(1.0)
    sched = L.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0])
    opt.add_param_group({"params": [Parameter(np.zeros(1))]})
    sched.step(1.0)
    with pytest.raises(RuntimeError, match=re.escape("The number of param groups in the `optimizer` (2) differs")):
        sched.step(2.0)
