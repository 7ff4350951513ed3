"""pytest hooks for ``tox -e mutation``: a mutant's cheap tests run before its conformance runs.

mutmut hands pytest the tests that reach a mutant as a set, in no set order, and stops at the
first failure (``-x``). Most mutants fall to a unit test in milliseconds; the ci conformance run
of an op takes seconds. Running the unit tests first means a mutant costs its conformance run
only when every unit test lets it through.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.startswith("tools/mutation_conformance.py"))
