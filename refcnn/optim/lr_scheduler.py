"""Learning-rate schedulers, as torch.optim.lr_scheduler: same names, arguments, defaults,
and the same arithmetic (PyTorch's recursive "chainable" forms where it uses them), so the
learning-rate sequences equal PyTorch's to the last bit.

A scheduler rewrites ``group['lr']`` of its optimizer's param groups; call ``step()`` once
after each ``optimizer.step()``. Constructing one (with ``last_epoch=-1``) records each
group's current lr as ``group['initial_lr']`` and runs a first step to epoch 0, as PyTorch
does. ``state_dict()`` holds every attribute but the optimizer, under PyTorch's names, so a
refcnn scheduler state and a torch one are interchangeable.

PyTorch: https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .optimizer import Optimizer

__all__ = [
    "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR",
    "ReduceLROnPlateau",
]  # fmt: skip

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value: Any, name: str, owner: str) -> None:
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")


def _int_at_least(value: Any, name: str, owner: str, minimum: int) -> None:
    if not _is_int(value):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")


def _check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")


def _format_param(name: str, optimizer: Optimizer, param: Any) -> list[Any]:
    """One value per param group: a scalar is repeated, a list must have one per group."""
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(param)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return list(param)
    return [param] * len(optimizer.param_groups)


class LRScheduler:
    """Base class of the epoch-driven schedulers (torch.optim.lr_scheduler.LRScheduler).

    Subclasses implement ``get_lr()`` (the next lrs, computed from the current
    ``group['lr']`` and ``last_epoch``) and may implement ``_get_closed_form_lr()`` (the lrs at
    ``last_epoch`` from ``base_lrs``, used by the deprecated ``step(epoch)``).

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        last_epoch (int): index of the last epoch; -1 (the default) starts afresh, a larger
            value resumes and needs ``'initial_lr'`` in every group. Default: -1.

    Attributes:
        base_lrs (list): each group's ``initial_lr``; last_epoch (int).
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        _int_at_least(last_epoch, "last_epoch", type(self).__name__, -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming scheduler "
                        "with last_epoch >= 0.\nThis typically happens when:\n1. You're trying to resume "
                        "training from a checkpoint but haven't properly loaded the optimizer state\n2. You're "
                        "using last_epoch >= 0 for a fresh training run (not recommended)"
                    )
        self.base_lrs: list[Any] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch: int = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (copies), under PyTorch's names."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the attributes from :meth:`state_dict` (a refcnn or a torch scheduler's)."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict expects a dict, got {type(state_dict).__name__}")
        own = self.state_dict()
        unexpected = [k for k in state_dict if k not in own or k == "optimizer"]
        if unexpected:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: unexpected keys {unexpected} "
                f"(a {type(self).__name__} state has {sorted(own)})"
            )
        self.__dict__.update(copy.deepcopy(dict(state_dict)))

    def get_last_lr(self) -> list[Any]:
        """The learning rates the last step set, one per param group."""
        return list(self._last_lr)

    def get_lr(self) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__} does not define get_lr")

    # ---- stepping ---------------------------------------------------------------------------
    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch and write the new lrs into the optimizer's groups. Call it after
        ``optimizer.step()``. ``epoch`` (deprecated, as in PyTorch) jumps to that epoch and
        uses the closed form where there is one."""
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
                "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
                "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
                "will result in PyTorch skipping the first value of the learning rate schedule. "
                "See more details at "
                "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
                UserWarning,
                stacklevel=2,
            )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        groups = self.optimizer.param_groups
        if len(values) != len(groups):
            raise ValueError(
                f"{type(self).__name__} computed {len(values)} learning rates for {len(groups)} param groups"
            )
        for group, lr in zip(groups, values, strict=True):
            group["lr"] = lr
        self._last_lr: list[Any] = [group["lr"] for group in groups]

    def _warn_get_lr_called_within_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                UserWarning,
                stacklevel=3,
            )

    def _current_lrs(self) -> list[Any]:
        return [group["lr"] for group in self.optimizer.param_groups]


class StepLR(LRScheduler):
    """Multiply each group's lr by ``gamma`` every ``step_size`` epochs (torch's StepLR).

        lr_epoch = lr_{epoch-1} * gamma   if epoch > 0 and epoch % step_size == 0
                   lr_{epoch-1}           otherwise
        (closed form: base_lr * gamma ** (epoch // step_size))

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        step_size (int): period of the decay, >= 1.
        gamma (float): multiplicative factor. Default: 0.1.
        last_epoch (int): Default: -1.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.StepLR.html
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        _int_at_least(step_size, "step_size", "StepLR", 1)
        _real(gamma, "gamma", "StepLR")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_get_lr_called_within_step()
        if (self.last_epoch == 0) or (self.last_epoch % self.step_size != 0):
            return self._current_lrs()
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply each group's lr by ``gamma`` when the epoch reaches a milestone (torch's
    MultiStepLR); a milestone listed n times multiplies by ``gamma ** n``.

        lr_epoch = lr_{epoch-1} * gamma ** count(epoch in milestones)
        (closed form: base_lr * gamma ** (number of milestones <= epoch))

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        milestones (iterable of int): epoch indices (PyTorch asks for increasing ones).
        gamma (float): multiplicative factor. Default: 0.1.
        last_epoch (int): Default: -1.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.MultiStepLR.html
    """

    def __init__(
        self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if not isinstance(milestones, Iterable) or isinstance(milestones, (str, bytes)):
            raise TypeError(f"MultiStepLR: milestones must be an iterable of ints, got {milestones!r}")
        milestones = list(milestones)
        if not all(_is_int(m) for m in milestones):
            raise TypeError(f"MultiStepLR: milestones must be ints, got {milestones!r}")
        _real(gamma, "gamma", "MultiStepLR")
        self.milestones: Counter[int] = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_get_lr_called_within_step()
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch] for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch) for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply each group's lr by ``gamma`` every epoch (torch's ExponentialLR).

        lr_epoch = lr_{epoch-1} * gamma   (closed form: base_lr * gamma ** epoch)

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        gamma (float): multiplicative factor.
        last_epoch (int): Default: -1.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ExponentialLR.html
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        _real(gamma, "gamma", "ExponentialLR")
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_get_lr_called_within_step()
        # the constructor's step must not move a resumed schedule one step ahead
        if self._is_initial:
            return self._current_lrs()
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base_lr * self.gamma**self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from each group's initial lr to ``eta_min`` over ``T_max`` epochs,
    then back up (the cosine continues; no restarts), as torch's CosineAnnealingLR.

    PyTorch's recursive form, which this reproduces operation for operation (t = last_epoch)::

        lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T_max)) / (1 + cos(pi (t-1) / T_max))
        lr_t = lr_{t-1} + (base_lr - eta_min) * (1 - cos(pi / T_max)) / 2
                                           when (t - 1 - T_max) % (2 T_max) == 0
        lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi t / T_max)) / 2
                                           on the first step of a resumed schedule,
                                           and as the closed form of step(epoch)

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        T_max (int): half-period in epochs, >= 1.
        eta_min (float): minimum learning rate. Default: 0.0.
        last_epoch (int): Default: -1.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingLR.html
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        _int_at_least(T_max, "T_max", "CosineAnnealingLR", 1)
        _real(eta_min, "eta_min", "CosineAnnealingLR")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_get_lr_called_within_step()
        groups = self.optimizer.param_groups
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and self.last_epoch > 0:
            return [
                self.eta_min + (base_lr - self.eta_min) * (1 + math.cos((self.last_epoch) * math.pi / self.T_max)) / 2
                for base_lr in self.base_lrs
            ]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [
                group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                for base_lr, group in zip(self.base_lrs, groups, strict=True)
            ]
        return [
            (1 + math.cos(math.pi * self.last_epoch / self.T_max))
            / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
            * (group["lr"] - self.eta_min)
            + self.eta_min
            for group in groups
        ]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
            for base_lr in self.base_lrs
        ]


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (torch's OneCycleLR), stepped once per batch for ``total_steps``.

    The lr rises from ``initial_lr = max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start * total_steps - 1`` steps, then falls to ``min_lr = initial_lr /
    final_div_factor`` at step ``total_steps - 1`` (with ``three_phase``: up, back down to
    initial_lr by step ``2 * pct_start * total_steps - 2``, then down to min_lr). Within a
    phase from step s0 to s1, with pct = (t - s0) / (s1 - s0)::

        cos:     lr = end + (start - end) / 2 * (cos(pi * pct) + 1)
        linear:  lr = (end - start) * pct + start

    With ``cycle_momentum`` the momentum (``group['momentum']``, or ``group['betas'][0]``
    for Adam-like optimizers) moves inversely between ``max_momentum`` and
    ``base_momentum`` with the same annealing. Groups get ``initial_lr``, ``max_lr``,
    ``min_lr`` (and ``max_momentum``, ``base_momentum``) entries, as in PyTorch. Stepping
    past ``total_steps`` raises ValueError.

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        max_lr (float or list): peak lr (per group with a list).
        total_steps (int): number of steps; or give ``epochs`` and ``steps_per_epoch``.
        epochs (int), steps_per_epoch (int): total_steps = epochs * steps_per_epoch.
        pct_start (float): fraction of the cycle spent rising. Default: 0.3.
        anneal_strategy (str): 'cos' or 'linear'. Default: 'cos'.
        cycle_momentum (bool): Default: True.
        base_momentum (float or list): Default: 0.85.
        max_momentum (float or list): Default: 0.95.
        div_factor (float): Default: 25.0.
        final_div_factor (float): Default: 1e4.
        three_phase (bool): Default: False.
        last_epoch (int): Default: -1.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if total_steps is not None:
            if not _is_int(total_steps) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            if not _is_int(epochs) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not _is_int(steps_per_epoch) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")

        if three_phase:
            self._schedule_phases: list[dict[str, Any]] = [
                {
                    "end_step": float(pct_start * self.total_steps) - 1,
                    "start_lr": "initial_lr",
                    "end_lr": "max_lr",
                    "start_momentum": "max_momentum",
                    "end_momentum": "base_momentum",
                },
                {
                    "end_step": float(2 * pct_start * self.total_steps) - 2,
                    "start_lr": "max_lr",
                    "end_lr": "initial_lr",
                    "start_momentum": "base_momentum",
                    "end_momentum": "max_momentum",
                },
                {
                    "end_step": self.total_steps - 1,
                    "start_lr": "initial_lr",
                    "end_lr": "min_lr",
                    "start_momentum": "max_momentum",
                    "end_momentum": "max_momentum",
                },
            ]
        else:
            self._schedule_phases = [
                {
                    "end_step": float(pct_start * self.total_steps) - 1,
                    "start_lr": "initial_lr",
                    "end_lr": "max_lr",
                    "start_momentum": "max_momentum",
                    "end_momentum": "base_momentum",
                },
                {
                    "end_step": self.total_steps - 1,
                    "start_lr": "max_lr",
                    "end_lr": "min_lr",
                    "start_momentum": "base_momentum",
                    "end_momentum": "max_momentum",
                },
            ]

        # PyTorch takes a float only: pct_start=0 (an int) is rejected there too
        if not isinstance(pct_start, float) or pct_start < 0 or pct_start > 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._anneal_func_type = anneal_strategy
        _real(div_factor, "div_factor", "OneCycleLR")
        _real(final_div_factor, "final_div_factor", "OneCycleLR")

        max_lrs = _format_param("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for idx, group in enumerate(optimizer.param_groups):
                group["initial_lr"] = max_lrs[idx] / div_factor
                group["max_lr"] = max_lrs[idx]
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for m_momentum, b_momentum, group in zip(
                    max_momentums, base_momentums, optimizer.param_groups, strict=True
                ):
                    if self.use_beta1:
                        group["betas"] = (m_momentum, *group["betas"][1:])
                    else:
                        group["momentum"] = m_momentum
                    group["max_momentum"] = m_momentum
                    group["base_momentum"] = b_momentum
        super().__init__(optimizer, last_epoch)

    def _anneal_func(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return self._annealing_cos(start, end, pct)
        return self._annealing_linear(start, end, pct)

    @staticmethod
    def _annealing_cos(start: float, end: float, pct: float) -> float:
        cos_out = math.cos(math.pi * pct) + 1
        return end + (start - end) / 2.0 * cos_out

    @staticmethod
    def _annealing_linear(start: float, end: float, pct: float) -> float:
        return (end - start) * pct + start

    def get_lr(self) -> list[Any]:
        self._warn_get_lr_called_within_step()
        lrs = []
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(
                f"Tried to step {step_num} times. The specified number of total steps is {self.total_steps}"
            )
        last = len(self._schedule_phases) - 1
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step_num <= end_step or i == last:
                    pct = (step_num - start_step) / (end_step - start_step)
                    computed_lr = self._anneal_func(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        computed_momentum = self._anneal_func(
                            group[phase["start_momentum"]], group[phase["end_momentum"]], pct
                        )
                    break
                start_step = phase["end_step"]
            lrs.append(computed_lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (computed_momentum, *group["betas"][1:])
                else:
                    group["momentum"] = computed_momentum
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Multiply each group's lr by ``factor`` when a metric has stopped improving for more
    than ``patience`` epochs (torch's ReduceLROnPlateau). ``step(metric)`` once per epoch.

    A metric is better than the best so far when (rel/abs ``threshold_mode``)::

        min, rel: metric < best * (1 - threshold)     min, abs: metric < best - threshold
        max, rel: metric > best * (1 + threshold)     max, abs: metric > best + threshold

    Otherwise the epoch is bad. After each reduction, ``cooldown`` epochs pass in which bad
    epochs are not counted. A reduction sets ``lr = max(lr * factor, min_lr)`` only where it
    lowers lr by more than ``eps``. Unlike the other schedulers it does not set
    ``initial_lr`` (as in PyTorch).

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        mode (str): 'min' or 'max'. Default: 'min'.
        factor (float): reduction factor, < 1. Default: 0.1.
        patience (int): bad epochs tolerated before a reduction. Default: 10.
        threshold (float): Default: 1e-4.
        threshold_mode (str): 'rel' or 'abs'. Default: 'rel'.
        cooldown (int): Default: 0.
        min_lr (float or list): lower bound, per group with a list. Default: 0.
        eps (float): smallest reduction applied. Default: 1e-8.

    PyTorch: https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ReduceLROnPlateau.html
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: list[float] | float = 0,
        eps: float = 1e-8,
    ) -> None:
        _real(factor, "factor", "ReduceLROnPlateau")
        if factor >= 1.0:
            raise ValueError(f"Factor should be < 1.0, got {factor}")
        self.factor = factor
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            self.default_min_lr: float | None = None
            self.min_lrs = list(min_lr)
        else:
            _real(min_lr, "min_lr", "ReduceLROnPlateau")
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        _int_at_least(patience, "patience", "ReduceLROnPlateau", 0)
        _int_at_least(cooldown, "cooldown", "ReduceLROnPlateau", 0)
        _real(threshold, "threshold", "ReduceLROnPlateau")
        _real(eps, "eps", "ReduceLROnPlateau")
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = self._current_lrs()
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record this epoch's metric (anything ``float()`` takes) and reduce the lrs if it
        is the (patience+1)-th bad epoch in a row outside a cooldown."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in a cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self, epoch: int) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the `optimizer` ({len(groups)}) differs from when "
                    f"`ReduceLROnPlateau` was initialized ({len(self.min_lrs)}), usually due to a new "
                    "param group being added to the optimizer. Please modify the `min_lrs` field to match "
                    "the length of the `optimizer` param groups."
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for i, group in enumerate(groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in {"min", "max"}:
            raise ValueError(f"mode {mode!r} is unknown! (expected 'min' or 'max')")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError(f"threshold mode {threshold_mode!r} is unknown! (expected 'rel' or 'abs')")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)
