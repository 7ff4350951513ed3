"""The suite as pytest items: one per (op, implementation, dtype, check).

    python -m pytest --pyargs refcnn.conformance --refcnn-plugin FILE --refcnn-impl NAME
                     [--refcnn-op OP] [--refcnn-profile ci|thorough]

Item ids read like ``conv2d-mine-float32-grad_input``, so ``-k grad_input`` or ``-k "conv2d and
float64"`` select checks and ``-x`` stops at the first failure. The cases of one (op,
implementation, dtype) are drawn and checked once per process, the first time one of its items
runs; every item then reports its own check, with the message and repro the command line gives.
The items of one (op, implementation, dtype) hang from one collector, and under pytest-xdist
(``-n auto``) go to one worker (``--dist loadscope``), so no case is checked twice.

With ``--refcnn-plugin`` and no ``--refcnn-impl`` the plugin's implementations are checked;
without a plugin, refcnn's own kernels. conftest.py (next to this file) hands pytest these hooks.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .engine import REGISTERED, TaskResult, UserError, check_layers, load_plugin, run_task

ITEMS_FILE = "check_kernels.py"  # the (empty) file the items hang from
_results: dict[tuple[Any, ...], TaskResult] = {}


class ConformanceCoverageWarning(UserWarning):
    """A check passed on fewer supported configurations than the profile asks for."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refcnn", "refcnn conformance (checks kernels against PyTorch)")
    group.addoption("--refcnn-plugin", action="append", default=[], metavar="FILE",
                    help="a .py file or module that registers your implementations (repeatable)")  # fmt: skip
    group.addoption("--refcnn-impl", action="append", default=[], metavar="NAME",
                    help="only this implementation (repeatable; default: the plugin's, else refcnn's own)")  # fmt: skip
    group.addoption("--refcnn-op", action="append", default=[], metavar="OP", help="only this op (repeatable)")
    group.addoption("--refcnn-profile", choices=["ci", "thorough"], default="ci",
                    help="ci: the same cases every run; thorough: 20x as many, from --refcnn-seed")  # fmt: skip
    group.addoption("--refcnn-seed", type=int, default=0, help="hypothesis seed of the thorough profile")
    group.addoption("--refcnn-examples", type=int, default=None, metavar="N",
                    help="cases per (op, dtype) instead of the profile's number")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    try:
        for ref in config.getoption("refcnn_plugin"):
            added = load_plugin(ref)
            if not os.environ.get("PYTEST_XDIST_WORKER"):
                check_layers(added)
    except UserError as exc:
        raise pytest.UsageError(f"refcnn conformance: {exc}") from None
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadscope"  # one (op, impl, dtype) per worker: its cases are checked once


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name == ITEMS_FILE and file_path.parent == Path(__file__).parent:
        return KernelChecks.from_parent(parent, path=file_path)
    return None


class KernelChecks(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from . import specs
        from .runner import plan

        opt = self.config.getoption
        impls = list(opt("refcnn_impl")) or sorted({i for _, i in REGISTERED})
        try:
            ops = list(opt("refcnn_op")) or sorted(specs.op_specs())
            tasks = plan(ops, impls)
        except UserError as exc:
            raise pytest.UsageError(f"refcnn conformance: {exc}") from None
        for name, dtype, names in tasks:
            spec = specs.get(name)
            if spec.kind != "op":
                continue
            for impl in names:
                checks = ["rejects", *spec.checks(dtype)]
                yield CheckGroup.from_parent(
                    self, name=f"{name}-{impl}-{dtype}", op=name, impl=impl, dtype=dtype, checks=checks
                )


class CheckGroup(pytest.Collector):
    """The checks of one (op, implementation, dtype): one xdist scope, so its cases are drawn
    and checked once."""

    def __init__(self, *, op: str, impl: str, dtype: str, checks: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.op, self.impl, self.dtype, self.checks = op, impl, dtype, checks

    def collect(self) -> Iterator[pytest.Item]:
        for check in self.checks:
            yield CheckItem.from_parent(
                self, name=f"{self.name}-{check}", op=self.op, impl=self.impl, dtype=self.dtype, check=check
            )


class CheckFailed(Exception):
    """A check that failed: its message and repro, shown without a traceback."""


class CheckItem(pytest.Item):
    def __init__(self, *, op: str, impl: str, dtype: str, check: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.op, self.impl, self.dtype, self.check = op, impl, dtype, check

    def runtest(self) -> None:
        from .core import repro_text

        result = _run(self.config, self.op, self.dtype, self.impl)
        if result.error:
            raise CheckFailed(f"the conformance check itself crashed: {result.error}")
        t = next((t for t in result.tallies if t.impl == self.impl and t.check == self.check), None)
        if t is None:
            forward = next((t for t in result.tallies if t.impl == self.impl and t.check == "forward"), None)
            why = (
                "the forward failed on every case, so this check never ran"
                if forward and forward.failed
                else ("no drawn case reached this check")
            )
            pytest.skip(f"not checked: {why}")
        if t.failed:
            text = (
                f"FAILED {t.op} {t.impl} {t.dtype} {t.check}: {t.failed} failed, {t.unsupported} unsupported "
                f"of {t.configs} configurations"
            )
            if t.failure is not None:
                text += "\n" + repro_text("op", t.op, t.impl, t.dtype, t.check, t.failure["case"], t.failure["detail"])
                if "\n" in t.failure["detail"]:
                    text += "\n" + t.failure["detail"].split("\n", 1)[1]
            raise CheckFailed(text)
        if t.skipped == t.configs or t.only_skipped:
            pytest.skip(t.skip_reason)
        if t.supported <= 0:
            pytest.skip(f"unsupported: {t.impl} declined all {t.configs} configurations (NotImplementedError)")
        if t.note:
            warnings.warn(ConformanceCoverageWarning(f"{self.name}: {t.note}"), stacklevel=1)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


def _run(config: pytest.Config, op: str, dtype: str, impl: str) -> TaskResult:
    profile = config.getoption("refcnn_profile")
    seed = config.getoption("refcnn_seed")
    examples = config.getoption("refcnn_examples")
    key = (op, dtype, impl, profile, seed, examples)
    if key not in _results:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            import torch

            torch.set_num_threads(1)  # one core per worker
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch's deprecation notes on drawn inputs
            _results[key] = run_task(op, dtype, [impl], profile, seed, max_examples=examples)
    return _results[key]
