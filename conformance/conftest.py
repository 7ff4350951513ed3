"""pytest's view of the package: ``python -m pytest --pyargs refcnn.conformance`` runs the
conformance checks as items (pytest_plugin.py, which an installed refcnn registers as the
pytest plugin ``refcnn_conformance``; in a clone of the repository this file registers it).

The suite's own tests (test_*.py) are tests of the refcnn repository: an installed copy never
collects them, so a user's run holds only the conformance checks.
"""

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
IN_REPOSITORY = _HERE.name == "conformance" and (_HERE.parent / "pyproject.toml").is_file()
OPTIONS = ("refcnn_plugin", "refcnn_impl", "refcnn_op")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The repository's own tests are collected only in a clone, on a run that does not ask
    for conformance checks (--refcnn-plugin, --refcnn-impl, --refcnn-op)."""
    if collection_path.parent == _HERE and collection_path.name.startswith("test_"):
        if not IN_REPOSITORY or any(config.getoption(o, None) for o in OPTIONS):
            return True
    return None


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    from refcnn.conformance import pytest_plugin

    if not pluginmanager.has_plugin("refcnn_conformance") and not pluginmanager.is_registered(pytest_plugin):
        pluginmanager.register(pytest_plugin, "refcnn_conformance")
