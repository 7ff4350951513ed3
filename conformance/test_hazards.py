"""The hazard axis (conformance/hazards.py): ci meets every hazard on every code path of
every op and module, a hazard changes only a few elements, non-finite results and signed zeros are
compared exactly, and a gradient failure mentions the caller's write into the output only
when that write is what broke it (needs torch).

    pytest conformance/test_hazards.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import refcnn.nn as rnn
from refcnn import kernels
from refcnn.conformance import core, hazards, specs
from refcnn.conformance.engine import run_task
from refcnn.conformance.specs.modules import ModuleSpec

ROOT = Path(__file__).resolve().parents[1]
OPS = [n for n in specs.op_specs() if n not in hazards.NO_HAZARDS]


_NEVER_MET = """
import json, sys
from refcnn.conformance import engine, hazards, specs

gaps = {}
for name, spec in specs.all_specs().items():
    if name not in sys.argv[1:]:
        continue
    met = set()
    engine._draw(spec, lambda case, impls: met.add((case.get("hazard"), spec.features(case)["path"])),
                 ["-"], engine.budget(spec, "ci"), "ci", 0, examples=True)
    dom = spec.domains
    gaps[name] = [[h, p] for p in dom["path"] for h in dom["hazard"] if (h, p) not in met]
print(json.dumps(gaps))
"""
MODULES = [n for n, s in specs.all_specs().items() if getattr(s, "draws_hazards", False)]


@pytest.mark.parametrize("names", [OPS, MODULES], ids=["ops", "modules"])
def test_ci_meets_every_hazard_on_every_path(names):
    # in a fresh process, as a ci task draws its cases (under pytest, hypothesis's draws depend
    # on the tests run before)
    out = subprocess.run(
        [sys.executable, "-c", _NEVER_MET, *names], capture_output=True, text=True, cwd=ROOT, check=True
    )
    gaps = {op: never for op, never in json.loads(out.stdout).items() if never}
    assert sorted(json.loads(out.stdout)) == sorted(names)
    assert not gaps, f"ci never draws these (hazard, path) pairs (raise the spec's weight): {gaps}"


def test_every_module_but_sequential_draws_hazards():
    modules = [n for n, s in specs.all_specs().items() if isinstance(s, ModuleSpec)]
    assert sorted(modules) == sorted([*MODULES, "nn.Sequential"])
    assert len(MODULES) >= 30


# a module that hides a non-finite value its kernel gives: ordinary inputs cannot tell it
_relu_forward = rnn.ReLU.forward


def _finite_relu(self, x):
    return np.nan_to_num(_relu_forward(self, x), nan=0.0, posinf=7.0)


@pytest.mark.parametrize("plant", [None, _finite_relu], ids=["as-shipped", "nan_to_num-in-forward"])
def test_a_module_that_hides_a_hazard_fails(monkeypatch, plant):
    if plant is not None:
        monkeypatch.setattr(rnn.ReLU, "forward", plant)
    res = run_task("nn.ReLU", "float64", ["default"], "ci", 0, max_examples=16, extend=False)
    forward = {t.check: t for t in res.tallies}["forward"]
    assert bool(forward.failed) == (plant is not None), forward.failure
    if plant is not None:
        assert "[hazard: a few elements" in forward.failure["detail"], forward.failure["detail"]


@pytest.mark.parametrize("hazard", hazards.KINDS[1:])
def test_a_hazard_changes_a_few_elements_of_the_declared_inputs(hazard):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((2, 3, 4, 5)), "target": rng.standard_normal((2, 3, 4, 5)), "weight": None}
    case = {"seed": 11, "hazard": hazard}
    out = hazards.apply("mse_loss", case, arrays)
    again = hazards.apply("mse_loss", case, arrays)
    for k in ("x", "target"):
        changed = arrays[k].tobytes() != out[k].tobytes()
        assert changed or (hazard == "ties" and k == "x"), k
        assert out[k].tobytes() == again[k].tobytes()  # a function of the case: a repro rebuilds it
        diff = ~((out[k] == arrays[k]) | (np.isnan(out[k]) & np.isnan(arrays[k])))
        assert diff.sum() <= 9, (k, int(diff.sum()))  # most of the case stays ordinary
    assert arrays["x"].tobytes() != out["x"].tobytes() or hazard == "ties"
    if hazard == "zeros":
        assert np.any((out["x"] == 0) & np.signbit(out["x"]))
    if hazard == "subnormal":  # one subnormal in each dtype
        for dt in (np.float32, np.float64):
            v = out["x"].astype(dt)
            assert np.any((v != 0) & (np.abs(v) < np.finfo(dt).tiny)), dt
    if hazard == "ties":  # tied with the target where the loss has its kink
        assert np.any(out["x"] == out["target"])


def test_nonfinite_values_must_match_exactly():
    rec = core.Recorder("relu", "float64")
    rec.begin({"seed": 0}, 1)
    e = np.array([np.nan, np.inf, -np.inf, 1.0])
    assert rec.compare("a", "forward", e.copy(), e, 1, np.abs(np.nan_to_num(e)))
    for bad in ([np.inf, np.inf, -np.inf, 1.0], [np.nan, -np.inf, -np.inf, 1.0], [np.nan, np.inf, np.nan, 1.0]):
        assert not rec.compare("b", "forward", np.array(bad), e, 1, np.abs(np.nan_to_num(e)))
    detail = rec.tallies[("b", "forward")].failure["detail"]
    assert "b gives inf where PyTorch gives nan at (0,)" in detail, detail


def test_signed_zeros_compared_only_where_asked():
    rec = core.Recorder("relu", "float32")
    rec.begin({"seed": 0}, 1)
    got, exp = np.array([0.0, 1.0], np.float32), np.array([-0.0, 1.0])
    assert rec.compare("sum", "forward", got, exp, 1, np.abs(exp))  # a sum's zero: either sign
    assert not rec.compare("select", "forward", got, exp, 0, 0, "forward", True)
    detail = rec.tallies[("select", "forward")].failure["detail"]
    assert "select gives 0 where PyTorch gives -0.0 at (0,)" in detail, detail


# ---- "computed after the caller wrote into the forward's output": only when it matters ------------
_sigmoid = kernels.get("sigmoid", "reference")


def _keeps_its_output(x):
    y = (1 / (1 + np.exp(-x))).astype(x.dtype)
    return y, y  # backward reads y itself, which the caller may overwrite


def _from_output(g, y):
    return ((g * y * (1 - y)).astype(g.dtype),)


def _doubled(g, ctx):
    return tuple(2 * gx for gx in _sigmoid.backward_impl(g, ctx))


@pytest.mark.parametrize(
    ("name", "forward", "backward", "said"),
    [("t_aliased", _keeps_its_output, _from_output, True), ("t_doubled", _sigmoid.forward_impl, _doubled, False)],
    ids=["aliased-output", "wrong-everywhere"],
)
def test_the_write_is_mentioned_only_when_it_broke_the_gradient(name, forward, backward, said):
    kernels.register("sigmoid", name, forward, backward)
    try:
        res = run_task("sigmoid", "float64", [name], "ci", 0, max_examples=12, extend=False)
    finally:
        kernels.unregister("sigmoid", name)
    grad = {t.check: t for t in res.tallies}["grad_input"]
    assert grad.failed and grad.failure is not None
    assert ("caller wrote into the forward's output" in grad.failure["detail"]) == said, grad.failure["detail"]


def test_torch_undefined_gradients_are_not_applicable_never_passed():
    res = run_task("hardtanh", "float64", ["reference"], "ci", 0, extend=False)
    grad = {t.check: t for t in res.tallies}["grad_input"]
    assert grad.skipped > 0 and not grad.failed
    assert grad.skip_reason.startswith("not applicable: PyTorch's hardtanh backward at a nan input")


def test_a_failure_names_its_hazard_and_its_layout():
    rec = core.Recorder("relu", "float64")
    rec.begin({"seed": 3, "hazard": "-inf", "memory": "step"}, 1)
    rec.fail("reference", "forward", "forward: differs")
    detail = rec.tallies[("reference", "forward")].failure["detail"]
    assert (
        detail
        == "forward: differs [hazard: a few elements -inf] [arrays handed in as step-2 slices of a larger array (its gaps hold nan)]"
    )


# A -inf logit in a class no target picks, in a reduced loss: its magnitude term is 0 * inf = nan,
# and zeroing the nan after the reduction zeroed every row's terms, leaving a bound of 3e-13 on
# a float32 loss of 2.3e-9 whose log-sum-exp rounds by 6e-8 (ci drew it under mutmut's pytest).
CE_MINUS_INF = {"C": 2, "N": 3, "bad_target": False, "d": 2, "hazard": "-inf", "ignore_index": 1,
                "label_smoothing": 0.0, "layout": "NCd", "memory": "fortran", "probs": False,
                "reduction": "mean", "scale": 10.0, "seed": 2, "weight": False}  # fmt: skip


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_bound_keeps_the_rows_beside_a_minus_inf_logit(reduction):
    spec = specs.get("cross_entropy")
    case = {**CE_MINUS_INF, "reduction": reduction}
    rec = core.Recorder(spec.name, "float32", fd_budget=0)
    rec.begin(case, spec.size(case))
    spec.check(case, "float32", ["fast", "reference"], rec)
    rec.finish()
    failed = {(t.impl, t.check): t.failure["detail"] for t in rec.tallies.values() if t.failed}
    assert not failed, f"cross_entropy, {reduction}, -inf hazard: {failed}"
