"""The ci conformance run of each op, as one pytest test per (op, implementation, dtype), for mutmut.

``tox -e mutation`` runs mutmut with this file next to the unit tests. mutmut records which
tests call each function of refcnn/kernels/ and runs, for a mutant, only those tests: the unit
tests that reach the mutated function and the conformance run of every op whose kernels do.

The suite's own pytest form (``--pyargs refcnn.conformance``) checks all the cases of an
(op, implementation, dtype) in its first item and lets the other items report from that result,
so mutmut would credit the whole run to that first item and later run it alone; one test per
(op, implementation, dtype) keeps the credit where the work is, and a mutant of the fast kernel
costs only the fast kernel's run. The run is the one ``python -m refcnn
conformance --profile ci --op OP`` makes, stopping at the first failure; a test fails when that
run would: a failed check, a crash of the check, or a check that no case could reach.
"""

from __future__ import annotations

import pytest

from refcnn.conformance import specs
from refcnn.conformance.engine import run_task

TASKS = [
    (name, impl, dtype)
    for name, spec in sorted(specs.op_specs().items())
    for impl in spec.impls()
    for dtype in spec.dtypes()
]


@pytest.mark.parametrize(("op", "impl", "dtype"), TASKS, ids=["-".join(task) for task in TASKS])
def test_ci_conformance(op: str, impl: str, dtype: str) -> None:
    result = run_task(op, dtype, [impl], "ci", 0, stop_on_failure=True)
    assert not result.error, result.error
    bad = [
        f"{t.impl} {t.check}: {t.failed} failed, {t.unsupported} unsupported of {t.configs}"
        + (f"\n  {t.failure['detail'].splitlines()[0]}" if t.failure else "")
        for t in result.tallies
        if not (t.passed or t.skipped == t.configs or t.only_skipped)
    ]
    assert not bad, f"ci conformance of {op} {impl} {dtype} fails:\n" + "\n".join(bad)
