"""vjp_direction proves itself: on cases too large for element-wise finite differences it
catches the chunk mutants (a gradient that drops the last partial chunk past 16 items)."""

from __future__ import annotations

import pytest

from refcnn import kernels

from . import core, mutants, specs

CASES = {
    "linear_chunk_drops_tail": {"lead": [300], "in": 6, "out": 5, "bias": True, "x_in": 6, "bias_len": 5, "seed": 5},
    "conv_chunk_drops_tail": {"N": 17, "groups": 1, "depthwise": False, "C_in": 2, "C_out": 3, "H": 6, "W": 5,
                              "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 0], "dilation": [1, 1],
                              "bias": True, "seed": 5},
}  # fmt: skip


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_vjp_direction_catches_a_chunk_mutant_where_fd_does_not_run(name: str) -> None:
    m = mutants.by_name(name)
    spec = specs.get(m.op)
    case = CASES[name]
    mutants.register(m)
    try:
        rec = core.Recorder(m.op, "float64", fd_budget=8)
        rec.begin(case, spec.size(case))
        spec.check(case, "float64", [m.impl], rec)
        rec.finish()
    finally:
        kernels.unregister(m.op, m.impl)
    tallies = {t.check: t for t in rec.tallies.values()}
    assert "finite_difference" not in tallies, "the case is meant to be too large for element-wise differences"
    assert tallies["vjp_direction"].failed == 1, {c: (t.failed, t.failure) for c, t in tallies.items()}
    failure = tallies["vjp_direction"].failure
    assert failure is not None and "directional derivative" in failure["detail"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_vjp_direction_passes_the_real_kernels(name: str) -> None:
    m = mutants.by_name(name)
    spec = specs.get(m.op)
    rec = core.Recorder(m.op, "float64", fd_budget=8)
    rec.begin(CASES[name], 0)
    spec.check(CASES[name], "float64", spec.impls(), rec)
    rec.finish()
    rows = [t for t in rec.tallies.values() if t.check == "vjp_direction"]
    assert rows and all(t.failed == 0 and t.configs == 1 for t in rows), [(t.impl, t.failure) for t in rows]
