"""From an empty folder, with refcnn installed from its wheel into a fresh virtual environment:
an honest outside kernel passes and one with a one-corner bug fails, through the command and
through pytest (needs torch; builds the wheel, or takes tox's from TOX_PACKAGE).

    pytest conformance/test_wheel.py

The fresh environment sees this interpreter's packages (torch, hypothesis, pytest) through a
.pth file placed after its own site-packages, so refcnn comes from the wheel, never from the
clone or from an refcnn installed out there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = """
    import numpy as np
    from refcnn import kernels

    def forward(x, weight, bias):
        y = x @ weight.T
        if bias is not None:
            y = y + bias
        return y, (x, weight, bias is not None)

    def backward(grad_y, ctx):
        x, weight, has_bias = ctx
        g2, x2 = grad_y.reshape(-1, grad_y.shape[-1]), x.reshape(-1, x.shape[-1])
        grad_x = grad_y @ weight
        {bug}
        return grad_x, g2.T @ x2, g2.sum(axis=0) if has_bias else None

    kernels.register("linear", "mine", forward, backward)
"""
HONEST = KERNEL.format(bug="")
# one corner: with a single input feature the shortcut forgets the weight
BUGGY = KERNEL.format(bug="grad_x = grad_y.sum(axis=-1, keepdims=True) if x.shape[-1] == 1 else grad_x")


def _wheel(tmp: Path) -> Path:
    given = os.environ.get("TOX_PACKAGE", "")
    if given.endswith(".whl") and Path(given).is_file():
        return Path(given)
    src = tmp / "src"  # a clean copy: the build writes build/ and *.egg-info next to the sources
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "conformance-report*"))  # fmt: skip
    out = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    return next(out.glob("refcnn-*.whl"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("needs a clone of the repository (it builds the wheel)")
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = _wheel(tmp)
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site,
                    str(wheel)], check=True, capture_output=True, timeout=300)  # fmt: skip
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "zz_outer_packages.pth").write_text("\n".join(sorted(outer)) + "\n")
    return python


def _run(python: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([str(python), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "honest.py").write_text(textwrap.dedent(HONEST))
    (tmp_path / "buggy.py").write_text(textwrap.dedent(BUGGY))
    return tmp_path


def test_the_package_comes_from_the_wheel(venv, folder):
    r = _run(venv, folder, "-c", "import refcnn.conformance as c, refcnn; print(c.__file__); print(refcnn.__file__)")
    assert r.returncode == 0, r.stderr
    suite, package = r.stdout.split()
    assert str(venv.parents[1]) in suite and str(venv.parents[1]) in package
    assert os.path.join("refcnn", "conformance", "__init__.py") in suite
    assert str(ROOT) not in r.stdout


def test_the_command_passes_an_honest_kernel_and_fails_a_buggy_one(venv, folder):
    common = ["-m", "refcnn", "conformance", "--impl", "mine", "--examples", "30", "--jobs", "1"]
    ok = _run(venv, folder, *common, "--plugin", "honest.py", "--report-dir", "ok")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "conformance PASSED" in ok.stdout and (folder / "ok" / "conformance.json").is_file()
    bad = _run(venv, folder, *common, "--plugin", "buggy.py", "--report-dir", "bad")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAILED linear mine float32 grad_input" in bad.stdout and "Traceback" not in bad.stderr
    # the repro snippet it prints runs from this folder, with only the installed package
    snippet = bad.stdout[bad.stdout.index("python - <<'EOF'\n") + len("python - <<'EOF'\n") :]
    r = _run(venv, folder, "-c", snippet[: snippet.index("EOF")])
    assert r.returncode == 0 and "grad_input: FAILED" in r.stdout, r.stdout + r.stderr


def test_pytest_passes_an_honest_kernel_and_fails_a_buggy_one(venv, folder):
    common = ["-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "refcnn.conformance", "--refcnn-impl", "mine",
              "--refcnn-examples", "30", "-q"]  # fmt: skip
    ok = _run(venv, folder, *common, "--refcnn-plugin", "honest.py")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert " passed" in ok.stdout and "failed" not in ok.stdout
    assert "test_parity" not in ok.stdout and "test_mutants" not in ok.stdout  # the repository's tests stay home
    bad = _run(venv, folder, *common, "--refcnn-plugin", "buggy.py", "-k", "grad_input")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "linear-mine-float32-grad_input" in bad.stdout and "repro('op', 'linear', 'mine'" in bad.stdout
    summary = bad.stdout.split("short test summary")[1]
    assert "float32-forward" not in summary and "float64-forward" not in summary  # -k chose grad_input items only
