"""The suite can fail: every deliberately broken kernel must be caught by the ci profile.

Run with ``pytest conformance`` (needs torch). The runner runs the same mutants in a full
``python -m refcnn conformance`` run and lists them in the report.
"""

from __future__ import annotations

import warnings

import pytest

from refcnn.conformance import mutants


@pytest.mark.parametrize("name", [m.name for m in mutants.MUTANTS])
def test_mutant_is_caught(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = mutants.run_one(name, "ci")
    assert row["caught"], f"mutant {name} ({row['op']}: {row['description']}) escaped the ci profile"


def test_at_least_twelve_mutants_over_many_ops() -> None:
    assert len(mutants.MUTANTS) >= 12
    assert len({m.op for m in mutants.MUTANTS}) >= 8
