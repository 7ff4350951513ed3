"""The conformance command as a user meets it: bad input gets one line and exit status 2,
an implementation's crash is reported as its own, NotImplementedError is unsupported
everywhere, coverage follows an implementation that declines most cases, shards merge into
the report of one run, and the report reads verdict first (needs torch).

    pytest conformance/test_runner.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from refcnn import kernels
from refcnn.conformance import core, engine, hazards, runner
from refcnn.conformance.engine import run_task

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_KEYS = {"passed", "profile", "seed", "versions", "tolerance_policy", "results"}
ROW_KEYS = {"op", "impl", "dtype", "check", "configs", "failed", "unsupported", "worst_abs_err",
            "worst_ratio_to_tolerance", "worst_config", "passed"}  # fmt: skip
_linear = kernels.get("linear", "reference")


@pytest.fixture
def impl(request):
    """Register a linear implementation for one test (its forward/backward from the test's
    parametrisation), and remove it after."""
    name, forward, backward = request.param
    kernels.register("linear", name, forward, backward)
    yield name
    kernels.unregister("linear", name)


def _plugin(tmp_path: Path, body: str, name: str = "plugin.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


# ---- bad input: one line, exit status 2 ------------------------------------------------------
BAD = {
    "missing-file": (None, ["--plugin", "nowhere/mine.py"], "plugin file .*nowhere/mine.py does not exist"),
    "does-not-import": ("import numpy as np\n1 / 0\n", [], r"failed to import: ZeroDivisionError: division by zero \(at"),
    "registers-nothing": ("x = 1\n", [], "registered no implementation"),
    "unknown-op": (
        "from refcnn import kernels\nkernels.register('conv3d', 'mine', lambda x: (x, None), lambda g, c: (g,))\n",
        [], "registers conv3d, which refcnn has no such op",
    ),
    "taken-name": (
        "from refcnn import kernels\nkernels.register('linear', 'fast', lambda x, w, b: (x, None), lambda g, c: (g,))\n",
        [], "linear already has an implementation named 'fast'.*replace=True",
    ),
    "impl-not-registered": (None, ["--op", "linear", "--impl", "mine"], "no implementation named mine is registered"),
    "unknown-op-option": (None, ["--op", "conv3d"], "no op or spec named conv3d"),
    "shard-3-of-2": (None, ["--shard", "3/2"], "--shard 3/2: K must be between 1 and N"),
    "shard-not-k-n": (None, ["--shard", "half"], "--shard takes K/N"),
    "report-dir-is-a-file": (None, ["--report-dir", __file__], "cannot create the report folder"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    body, extra, message = BAD[case]
    argv = ["--report-dir", str(tmp_path / "r"), "--jobs", "1", *extra]  # a later --report-dir wins
    if body is not None:
        argv += ["--plugin", _plugin(tmp_path, body, f"{case}.py")]
    before = kernels.ops()
    try:
        code = runner.main(argv)
    except SystemExit as exc:  # argparse's own exit (our one-line parser)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "DESIGN" not in err and "§" not in err
    assert re.search(message, err), err
    assert kernels.ops() == before  # a rejected plugin leaves no op behind


def test_the_cli_says_bad_input_in_one_line_from_any_folder(tmp_path):
    """Through ``python -m refcnn`` (the command's own dispatch), from a folder that is not the clone."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "refcnn", "conformance", "--shard", "3/2"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


# ---- whose failure is it ---------------------------------------------------------------------
def _returns_none_for_one_row(x, w, b):
    if x.ndim == 1:
        return None  # the implementation forgot the unbatched case
    return _linear.forward_impl(x, w, b)


def _reshape_error(x, w, b):
    return x.reshape(3, -1) @ w.T, None  # a reshape that only fits some shapes


@pytest.mark.parametrize(
    "impl",
    [("t_returns_none", _returns_none_for_one_row, _linear.backward_impl),
     ("t_reshape", _reshape_error, _linear.backward_impl)],
    indirect=True, ids=["returns-None", "reshape-error"],
)  # fmt: skip
def test_an_exception_inside_the_implementation_is_its_crash(impl):
    res = run_task("linear", "float64", [impl], "ci", 0, max_examples=30, extend=False)
    rows = {t.check: t for t in res.tallies}
    fwd = rows["forward"]
    assert fwd.failed and fwd.failure is not None
    detail = fwd.failure["detail"]
    assert detail.startswith(f"{impl}'s forward"), detail
    assert "rejected a configuration PyTorch accepts" not in detail
    if impl == "t_reshape":
        assert "crashed: ValueError" in detail and "test_runner.py" in detail and "_reshape_error" in detail
    else:
        assert "must return (y, ctx)" in detail
    assert not rows["rejects"].failed  # refcnn's validator did not reject anything PyTorch accepts


def _forward_off_by_one(x, w, b):
    y, ctx = _linear.forward_impl(x, w, b)
    return y + 1, ctx


@pytest.mark.parametrize("impl", [("t_off_by_one", _forward_off_by_one, _linear.backward_impl)], indirect=True)
def test_a_failed_forward_adds_no_gradient_noise(impl, monkeypatch):
    monkeypatch.setattr(hazards, "CYCLE", ("none",))  # y + 1 is y where y is inf or nan: no hazards here
    res = run_task("linear", "float32", [impl], "ci", 0, max_examples=20, extend=False)
    rows = {t.check: t for t in res.tallies}
    assert rows["forward"].failed == rows["forward"].configs > 0
    assert all(not t.failed for c, t in rows.items() if c != "forward")
    assert "t_off_by_one " in rows["forward"].failure["detail"] and "np.float" not in rows["forward"].failure["detail"]


def _backward_declines(g, ctx):
    raise NotImplementedError("no backward yet")


@pytest.mark.parametrize("impl", [("t_no_backward", _linear.forward_impl, _backward_declines)], indirect=True)
def test_not_implemented_is_unsupported_never_a_failure(impl):
    res = run_task("linear", "float64", [impl], "ci", 0, max_examples=20, extend=False)
    rows = {t.check: t for t in res.tallies}
    assert not any(t.failed for t in rows.values())
    assert rows["forward"].supported > 0
    for check in ("grad_input", "grad_weight", "grad_bias"):
        assert rows[check].supported == 0 and not rows[check].passed  # unsupported is never passed


def _only_batched_with_bias(x, w, b):
    if x.ndim != 2 or b is None:
        raise NotImplementedError("2-D x with a bias only")
    return _linear.forward_impl(x, w, b)


@pytest.mark.parametrize("impl", [("t_narrow", _only_batched_with_bias, _linear.backward_impl)], indirect=True)
def test_coverage_follows_an_implementation_that_declines_most_cases(impl):
    res = run_task("linear", "float32", [impl], "ci", 0)
    rows = {t.check: t for t in res.tallies}
    assert rows["forward"].unsupported > rows["forward"].supported  # it declines most of what is drawn
    for t in rows.values():
        assert t.supported >= 100 or t.note, (t.check, t.supported)
    counts = res.cases[impl]
    assert counts["unsupported"] > counts["checked"] > 0 and counts["failed"] == 0


# ---- the max-pool indices check does not apply to a ctx without indices --------------------
class _NoIndices:
    def __init__(self, inner):
        self.inner = inner


def test_max_pool_without_ctx_indices_is_not_applicable():
    ref = kernels.get("max_pool2d", "reference")

    def forward(x, **cfg):
        y, ctx = ref.forward_impl(x, **cfg)
        return y, _NoIndices(ctx)

    def backward(g, ctx):
        return ref.backward_impl(g, ctx.inner)

    kernels.register("max_pool2d", "t_no_indices", forward, backward)
    try:
        res = run_task("max_pool2d", "float64", ["t_no_indices"], "ci", 0, max_examples=25, extend=False)
    finally:
        kernels.unregister("max_pool2d", "t_no_indices")
    rows = {t.check: t for t in res.tallies}
    assert rows["indices"].skipped == rows["indices"].configs > 0 and not rows["indices"].failed
    assert rows["indices"].skip_reason.startswith("not applicable")
    assert all(not t.failed for t in rows.values())


# ---- shards, the report ------------------------------------------------------------------------
def _run(tmp_path, name, *extra):
    d = tmp_path / name
    code = runner.main(["--op", "linear", "--examples", "12", "--jobs", "1", "--report-dir", str(d), *extra])
    return code, json.loads((d / "conformance.json").read_text()), d


def test_shards_merge_into_the_report_of_one_run(tmp_path, capsys):
    code, whole, _ = _run(tmp_path, "whole")
    assert code == 0
    dirs = [str(_run(tmp_path, f"s{k}", "--shard", f"{k}/3")[2]) for k in (1, 2, 3)]
    shard_rows = [json.loads((Path(d) / "conformance.json").read_text())["results"] for d in dirs]
    assert all(sum(r["configs"] for r in rows) < sum(r["configs"] for r in whole["results"]) for rows in shard_rows)
    assert runner.main(["merge", *dirs, "--report-dir", str(tmp_path / "merged")]) == 0
    merged = json.loads((tmp_path / "merged" / "conformance.json").read_text())
    assert set(merged) == CONTRACT_KEYS and all(set(r) == ROW_KEYS for r in merged["results"])

    def table(doc):
        return {(r["op"], r["impl"], r["dtype"], r["check"]): (r["configs"], r["unsupported"], r["failed"])
                for r in doc["results"] if r["check"] != "finite_difference"}  # fmt: skip

    # the shards together checked exactly the cases of one run (finite differences: a budget per shard)
    assert table(merged) == table(whole)
    capsys.readouterr()
    assert runner.main(["merge", *dirs[:2], "--report-dir", str(tmp_path / "partial")]) == 1
    assert "shards: 3/3 missing" in capsys.readouterr().out


def test_the_report_starts_with_the_verdict_and_the_failures(tmp_path, capsys):
    body = """
        from refcnn import kernels
        _ref = kernels.get("linear", "reference")

        def forward(x, weight, bias):
            y, ctx = _ref.forward_impl(x, weight, bias)
            if x.ndim == 1:
                y = y * 1.5  # wrong for an unbatched x only
            return y, ctx

        kernels.register("linear", "t_report", forward, _ref.backward_impl)
    """
    plugin = _plugin(tmp_path, body)
    try:
        code = runner.main(["--plugin", plugin, "--impl", "t_report", "--examples", "15", "--jobs", "1",
                            "--report-dir", str(tmp_path / "r")])  # fmt: skip
    finally:
        kernels.unregister("linear", "t_report")
    out = capsys.readouterr().out
    assert code == 1
    md = (tmp_path / "r" / "conformance.md").read_text()
    assert md.startswith("# Conformance against PyTorch: FAILED")
    assert md.index("## Failures") < md.index("## Tolerance policy")
    assert "t_report:" in md and "configurations checked" in md
    for text in (md, out):
        assert "np.float64(" not in text and "DESIGN" not in text and "§" not in text
        assert "refcnn gave" not in text  # the checked implementation is named as such
    assert re.search(r"at \(\d+,?\): t_report -?\d[\d.e+-]*, PyTorch -?\d", out), out  # values as numbers
    npz = sorted((tmp_path / "r").glob("linear-t_report-*-forward.npz"))
    assert npz and set(np.load(npz[0]).files) >= {"x", "weight", "grad_y"}
    # the repro snippet runs from any folder and saves the case's arrays there
    snippet = out[out.index("python - <<'EOF'\n") + len("python - <<'EOF'\n") :]
    snippet = snippet[: snippet.index("EOF")]
    r = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "forward: FAILED" in r.stdout and "saved the arrays to" in r.stdout
    assert list(tmp_path.glob("repro-linear-t_report-*.npz"))


def test_plugins_are_remembered_as_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert engine.plugin_ref("mine.py") == str(tmp_path / "mine.py")
    assert engine.plugin_ref("mypackage.kernels") == "mypackage.kernels"


@pytest.mark.parametrize(
    "make", ["lambda config: None", "lambda config: 42"], ids=["make-returns-None", "make-returns-wrong-type"]
)
def test_a_layer_whose_make_breaks_the_protocol_is_one_line_and_exit_2(make, tmp_path, capsys):
    pytest.importorskip("refcnn.conformance.layers", reason="register_layer (conformance/layers.py) is not here")
    body = f"""
        from refcnn.conformance import register_layer
        register_layer("linear", "t_layer", {make}, params={{"weight": "W", "bias": "b"}},
                       grads={{"weight": "dW", "bias": "db"}})
    """
    try:
        code = runner.main(["--plugin", _plugin(tmp_path, body), "--jobs", "1", "--report-dir", str(tmp_path / "r")])
    finally:
        if "t_layer" in kernels.available("linear"):
            kernels.unregister("linear", "t_layer")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "t_layer (linear):" in err and "(config)" in err and "returned" in err


def test_a_check_skipped_on_every_supported_case_neither_passes_nor_fails_the_run():
    # a max-pooling layer class keeps no ctx.indices: its indices check is not applicable on
    # every case it supports, which once failed the run of a fully correct layer set
    not_applicable = core.Tally("max_pool2d", "mine", "float64", "indices", configs=10, unsupported=7, skipped=3)
    assert not not_applicable.passed and not_applicable.only_skipped
    declined = core.Tally("max_pool2d", "mine", "float64", "forward", configs=10, unsupported=10)
    assert not declined.passed and not declined.only_skipped  # declining everything is never a pass
    checked = core.Tally("max_pool2d", "mine", "float64", "forward", configs=10, unsupported=7, skipped=1)
    assert checked.passed and not checked.only_skipped
