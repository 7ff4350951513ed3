"""The suite as pytest items (pytest_plugin.py): one item per (op, implementation, dtype,
check) with readable ids, -k / -x / -n work, a failing item shows the command's message and
repro, and every check a spec records has its item (needs torch).

    pytest conformance/test_pytest_form.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from refcnn.conformance import specs
from refcnn.conformance.engine import run_task

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = """
    from refcnn import kernels
    _ref = kernels.get("linear", "reference")

    def forward(x, weight, bias):
        y, ctx = _ref.forward_impl(x, weight, bias)
        {bug}
        return y, ctx

    kernels.register("linear", "mine", forward, _ref.backward_impl)
"""


# An installed refcnn registers the plugin through its pytest11 entry point; a clone run
# without installing it names the plugin with -p (naming it twice is an error in pytest).
INSTALLED = any(ep.name == "refcnn_conformance" for ep in entry_points(group="pytest11"))
LOAD_PLUGIN = [] if INSTALLED else ["-p", "refcnn.conformance.pytest_plugin"]


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *LOAD_PLUGIN,
           "--pyargs", "refcnn.conformance", "--refcnn-examples", "12", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def test_items_ids_and_xdist(tmp_path):
    (tmp_path / "mine.py").write_text(textwrap.dedent(PLUGIN.format(bug="")))
    r = _pytest(tmp_path, "--refcnn-plugin", "mine.py", "--collect-only", "-q")
    ids = sorted(re.findall(r"::([^:\s]+)$", r.stdout, re.M))
    expected = [f"linear-mine-{dt}-{c}" for dt in ("float32", "float64")
                for c in ("rejects", "forward", "caller_arrays", "grad_input", "grad_weight", "grad_bias", "adjoint", "batch_items", "homogeneity")]  # fmt: skip
    assert ids == sorted([*expected, "linear-mine-float64-finite_difference", "linear-mine-float64-vjp_direction"]), (
        r.stdout + r.stderr
    )
    r = _pytest(tmp_path, "--refcnn-plugin", "mine.py", "-n", "2", "-v")
    assert r.returncode == 0 and "20 passed" in r.stdout, r.stdout + r.stderr
    workers: dict[str, set[str]] = {}
    for gw, group in re.findall(r"\[(gw\d)\].*::(linear-mine-float\d\d)::", r.stdout):
        workers.setdefault(group, set()).add(gw)
    assert set(workers) == {"linear-mine-float32", "linear-mine-float64"}
    assert all(len(w) == 1 for w in workers.values()), workers  # each group's cases are checked on one worker


def test_a_failing_check_fails_its_item_with_the_commands_message(tmp_path):
    (tmp_path / "mine.py").write_text(textwrap.dedent(PLUGIN.format(bug="y = y * 1.5 if x.ndim == 1 else y")))
    r = _pytest(tmp_path, "--refcnn-plugin", "mine.py", "--refcnn-impl", "mine", "-x", "-q", "-k", "forward")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed" in r.stdout and "passed" not in r.stdout  # -x: stopped at the first failure
    assert "FAILED linear mine float32 forward:" in r.stdout and "repro('op', 'linear', 'mine', 'float32'" in r.stdout
    assert "Traceback" not in r.stdout


def test_a_bad_plugin_is_a_usage_error(tmp_path):
    (tmp_path / "empty.py").write_text("x = 1\n")
    r = _pytest(tmp_path, "--refcnn-plugin", "empty.py", "-q")
    assert r.returncode == 4 and "registered no implementation" in r.stderr, r.stdout + r.stderr


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyTorch's deprecation notes on drawn inputs
@pytest.mark.parametrize("name", sorted(specs.op_specs()))
def test_every_check_a_spec_records_has_an_item(name):
    spec = specs.get(name)
    impl = spec.impls()[0]
    res = run_task(name, "float64", [impl], "ci", 0, max_examples=4, extend=False)
    declared = {"rejects", *spec.checks("float64")}
    assert {t.check for t in res.tallies} <= declared
    assert set(spec.checks("float32")) == set(spec.checks("float64")) - {"finite_difference", "vjp_direction"}
