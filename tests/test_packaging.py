"""The wheel carries every package, and the conformance suite as refcnn.conformance: the
repository's conformance/ folder is mapped into the package, and a clone finds it under the
same name. (tomllib: Python 3.11+.)"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip(
    "tomllib", reason="tomllib is in the standard library from Python 3.11; pyproject.toml cannot be read here"
)


def _packages_on_disk() -> set[str]:
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "refcnn").rglob("__init__.py")}
    suite = {
        ".".join(("refcnn", *p.parent.relative_to(ROOT).parts)) for p in (ROOT / "conformance").rglob("__init__.py")
    }
    return found | suite


def test_every_package_is_in_the_wheel():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(setup["packages"]) == _packages_on_disk(), "pyproject.toml [tool.setuptools] packages is out of date"
    assert setup["package-dir"] == {"refcnn.conformance": "conformance"}


def test_a_clone_imports_the_suite_as_refcnn_conformance_without_torch():
    code = "import sys, refcnn.conformance as c; print(c.__file__); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    path, torch_loaded = r.stdout.split()
    assert Path(path) == ROOT / "conformance" / "__init__.py"
    assert torch_loaded == "False"
