"""The chain specs (conformance/specs/chains.py) can fail, and say where: a module whose
backward reads the output it returned is caught once Dropout(inplace=True) writes into that
output, with the chain, the stage and the memory layout in the message; every module with a
module spec is followed by every module that takes inplace=True; where PyTorch raises on an
in-place chain, refcnn computes the inplace=False gradient. (The mutant that only a chain
catches, tanh_output_in_workspace, is in conformance/mutants.py: test_mutants.py runs it.)

    pytest conformance/test_chains.py
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from refcnn import kernels
from refcnn.conformance import core, mutants, specs
from refcnn.conformance.specs import chains
from refcnn.conformance.specs.modules import ENTRIES

DTYPES = ["float32", "float64"]
_sigmoid = kernels.get("sigmoid", "reference")


def _then() -> list[list[Any]]:
    return [[c, {**({"p": 0.5} if c in chains.DROPOUTS else {}), "inplace": True}] for c in chains.inplace_classes()]


def _run(name: str, case: dict[str, Any], dtype: str) -> core.Recorder:
    rec = core.Recorder(name, dtype)
    rec.begin(case, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        specs.get(name).check(case, dtype, ["default"], rec)
    rec.finish()
    return rec


def _sigmoid_keeps_its_output(x: np.ndarray) -> Any:
    """The planted bug: sigmoid's ctx holds the very array it returns (no copy)."""
    y, (x_kept, _) = _sigmoid.forward_impl(x)
    return y, (x_kept, y)


@pytest.fixture
def planted_sigmoid():
    kernels.register("sigmoid", "planted_alias", _sigmoid_keeps_its_output, _sigmoid.backward_impl)
    try:
        with kernels.use(sigmoid="planted_alias"):
            yield
    finally:
        kernels.unregister("sigmoid", "planted_alias")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_backward_reading_its_output_is_caught_after_an_inplace_dropout(planted_sigmoid, dtype):
    case = {"chain": [["Sigmoid", {}]], "then": _then(), "shape": [2, 3, 4], "training": True, "seed": 11,
            "memory": "fortran"}  # fmt: skip
    rec = _run("chain.Sigmoid+inplace", case, dtype)
    t = rec.tallies[("default", "grad_input")]
    assert t.failed, "the planted aliasing bug escaped the chain check"
    detail = t.failure["detail"]
    assert "Sigmoid() -> Dropout(p=0.5, inplace=True): stage 0 (Sigmoid())" in detail, detail
    assert "[arrays handed in as Fortran-ordered arrays]" in detail, detail
    assert not rec.tallies[("default", "forward")].failed  # every output right: only the gradient shows it


@pytest.mark.parametrize("dtype", DTYPES)
def test_without_the_planted_bug_the_same_case_passes(dtype):
    case = {"chain": [["Sigmoid", {}]], "then": _then(), "shape": [2, 3, 4], "training": True, "seed": 11,
            "memory": "fortran"}  # fmt: skip
    rec = _run("chain.Sigmoid+inplace", case, dtype)
    assert rec.failures() == 0, [t.failure for t in rec.tallies.values() if t.failed]
    details = rec.tallies[("default", "inplace")]
    assert details.configs == len(chains.inplace_classes())  # one chain per in-place module


def test_every_module_with_a_spec_is_followed_by_every_inplace_module():
    names = set(specs.all_specs())
    assert {f"chain.{e.cls}+inplace" for e in ENTRIES} <= names
    assert set(chains.inplace_classes()) >= {"Dropout", "Dropout2d", "ReLU", "LeakyReLU", "ELU", "SiLU", "Hardtanh"}
    spec = specs.get("chain.Linear+inplace")
    case = {"chain": [["Linear", {"in_features": 3, "out_features": 2}]], "then": _then(), "shape": [2, 3],
            "training": False, "seed": 1}  # fmt: skip
    chained = spec.chains(case)
    assert [c[1][0] for c in chained] == [c for c in chains.inplace_classes() if c != "Dropout2d"]  # 2-D output
    assert spec.modes(case, chained[0]) == [False, True]


@pytest.mark.parametrize("successor", ["ReLU", "Dropout"])
def test_where_torch_raises_refcnn_computes_the_inplace_false_gradient(successor):
    """Sigmoid keeps its output for backward: torch raises when ReLU(inplace=True) or
    Dropout(inplace=True) modifies it; refcnn's gradient is checked against inplace=False."""
    then = [s for s in _then() if s[0] == successor]
    case = {"chain": [["Sigmoid", {}]], "then": then, "shape": [2, 5], "training": True, "seed": 4}
    seen: list[str] = []
    rec = core.Recorder("chain.Sigmoid+inplace", "float64")
    ok = rec.ok

    def spy(impl: str, check: str, abs_err: float = 0.0, ratio: float = 0.0, detail: str = "") -> None:
        if check == "inplace":
            seen.append(detail)
        ok(impl, check, abs_err, ratio, detail)

    rec.ok = spy
    rec.begin(case, 1)
    specs.get("chain.Sigmoid+inplace").check(case, "float64", ["default"], rec)
    assert rec.failures() == 0
    assert len(seen) == 1 and "PyTorch raises (one of the variables needed for gradient computation" in seen[0], seen
    assert "refcnn computes the inplace=False gradient" in seen[0]


@pytest.mark.parametrize("name", sorted(chains.NETWORKS))
def test_each_network_passes_on_its_ci_cases(name):
    from refcnn.conformance.engine import run_task

    for dtype in DTYPES:
        result = run_task(name, dtype, ["default"], "ci", 0, max_examples=2, extend=False)
        failed = [t.failure for t in result.tallies if t.failed]
        assert not failed, failed


def test_the_chain_mutant_escapes_its_op_spec_and_is_caught_by_a_chain():
    m = mutants.by_name("tanh_output_in_workspace")
    assert isinstance(m, mutants.ChainMutant) and m.chains
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = mutants.run_one(m.name, "ci")
    assert row["caught"] and all(c.startswith("chain.") for c in row["checks"]), row


def _refuses(op: str) -> Any:
    base = kernels.get(op, "reference")

    def backward(grad_y: Any, ctx: Any, **kw: Any) -> Any:
        raise RuntimeError(f"{op}: my saved output was modified")  # raised outside refcnn: not its own error

    return base.forward_impl, backward


@pytest.mark.parametrize(
    ("cls", "op", "expected"),
    [
        pytest.param("Sigmoid", "sigmoid", "refcnn's error is not its own one-line one", id="torch-raises-too"),
        pytest.param("GELU", "gelu", "refcnn raised where PyTorch computes the gradient", id="torch-computes"),
    ],
)
def test_an_error_is_accepted_only_if_torch_raises_and_it_is_refcnns_own(cls, op, expected):
    forward, backward = _refuses(op)
    kernels.register(op, "planted_refuses", forward, backward)
    try:
        with kernels.use(**{op: "planted_refuses"}):
            case = {"chain": [[cls, {}]], "then": [["ReLU", {"inplace": True}]], "shape": [2, 3], "training": True,
                    "seed": 2}  # fmt: skip
            rec = _run(f"chain.{cls}+inplace", case, "float64")
    finally:
        kernels.unregister(op, "planted_refuses")
    t = rec.tallies[("default", "inplace")]
    assert t.failed and expected in t.failure["detail"], t.failure
