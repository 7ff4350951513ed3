"""The metamorphic relations themselves (conformance/relations.py): a correct kernel passes each
on pinned cases, a planted bug fails it with a message naming the relation, its setting, the
op's configuration and the bound, and a case outside a relation's preconditions is skipped
with the reason.

Run with ``pytest conformance/test_relations.py`` (needs torch).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from refcnn import kernels
from refcnn.conformance import core, mutants, relations, specs
from refcnn.conformance.specs.activation import ElementwiseSpec

SOFTMAX = {"shape": [3, 4], "dim": 1, "scale": 10.0, "seed": 2}  # offsets up to ~1e6: past float16's 65504
RELU = {"shape": [4, 5], "scale": 1.0, "kinks": False, "seed": 3}
CE = {"layout": "NCd", "N": 3, "C": 4, "d": 2, "weight": True, "ignore_index": -100, "reduction": "mean",
      "scale": 10.0, "bad_target": False, "seed": 6, "label_smoothing": 0.1, "probs": False}  # fmt: skip
CONV = {"N": 2, "groups": 1, "depthwise": False, "C_in": 2, "C_out": 3, "H": 5, "W": 6, "kernel_size": [3, 2],
        "stride": [1, 2], "padding": [1, 0], "dilation": [1, 1], "bias": True, "seed": 7}  # fmt: skip
CONV_T = {"N": 1, "groups": 1, "depthwise": False, "C_in": 2, "C_out": 2, "H": 5, "W": 4, "kernel_size": [3, 2],
          "stride": [2, 1], "padding": [1, 0], "output_padding": [1, 0], "dilation": [1, 2], "bias": False, "seed": 8}  # fmt: skip
MAXPOOL = {"N": 1, "C": 2, "H": 6, "W": 7, "kernel_size": [3, 2], "stride": [1, 2], "padding": [1, 1],
           "dilation": [1, 2], "ceil_mode": True, "ties": False, "shift": 0.0, "seed": 9}  # fmt: skip
AVGPOOL = {"N": 2, "C": 1, "H": 5, "W": 6, "kernel_size": [2, 3], "stride": [1, 1], "padding": [1, 1],
           "ceil_mode": False, "count_include_pad": False, "divisor_override": None, "seed": 10}  # fmt: skip
LINEAR = {"lead": [3], "in": 5, "out": 4, "bias": True, "x_in": 5, "bias_len": 4, "seed": 11}

# (op, relation, case, the mutant that breaks the relation on that case or None)
CASES = [
    ("softmax", "shift_invariance", SOFTMAX, "softmax_half_max"),
    ("log_softmax", "shift_invariance", {**SOFTMAX, "dim": 0}, None),
    ("cross_entropy", "shift_invariance", CE, "ce_half_max"),
    ("relu", "homogeneity", RELU, "relu_flush_small"),
    ("conv2d", "homogeneity", CONV, None),
    ("conv_transpose2d", "homogeneity", CONV_T, None),
    ("linear", "homogeneity", LINEAR, None),
    ("max_pool2d", "homogeneity", MAXPOOL, None),
    ("avg_pool2d", "homogeneity", AVGPOOL, None),
    ("conv2d", "translation", CONV, "conv_row_tiles"),
    ("conv_transpose2d", "translation", CONV_T, None),
    ("max_pool2d", "translation", MAXPOOL, None),
    ("avg_pool2d", "translation", AVGPOOL, None),
]


def _run(spec: Any, case: dict[str, Any], dtype: str, impl: str) -> core.Recorder:
    rec = core.Recorder(spec.name, dtype)
    rec.begin(case, spec.size(case))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.check(case, dtype, [impl], rec)
    rec.finish()
    return rec


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("op", "relation", "case", "mutant"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_correct_kernel_passes(op: str, relation: str, case: dict[str, Any], mutant: str | None, dtype: str) -> None:
    spec = specs.get(op)
    assert relation in spec.checks(dtype)
    for impl in kernels.available(op):
        t = _run(spec, case, dtype, impl).tallies[(impl, relation)]
        detail = t.failure["detail"] if t.failure else ""
        assert t.failed == 0 and t.skipped == 0 and t.configs == 1, f"{op} {impl} {dtype} {relation}: {detail}"


BROKEN = [c for c in CASES if c[3]]


@pytest.mark.parametrize(("op", "relation", "case", "mutant"), BROKEN, ids=[c[3] or "" for c in BROKEN])
def test_a_planted_bug_fails_with_relation_setting_config_and_bound(
    op: str, relation: str, case: dict[str, Any], mutant: str
) -> None:
    m = mutants.by_name(mutant)
    mutants.register(m)
    try:
        rec = _run(specs.get(op), case, "float32", m.impl)
    finally:
        kernels.unregister(m.op, m.impl)
    others = [t.check for t in rec.tallies.values() if t.failed and t.check != relation]
    assert not others, f"{mutant}: the reference comparison caught it on this case already ({others})"
    t = rec.tallies[(m.impl, relation)]
    assert t.failed == 1 and t.failure is not None, f"{mutant} passed {relation}"
    detail = t.failure["detail"]
    assert detail.startswith(f"{relation} ("), detail
    assert "; bound " in detail and "K*" in detail and ("x bound" in detail or "non-finite" in detail), detail
    assert all(f"{k}=" in detail for k in specs.get(op).build(case).config), detail  # the op's configuration
    assert t.failure["case"]["seed"] == case["seed"]  # the case, for the repro


class _SubnormalRelu(ElementwiseSpec):
    """relu on an input holding a subnormal: a x does not scale exactly."""

    def build(self, case: dict[str, Any]) -> Any:
        built = super().build(case)
        built.arrays["x"].reshape(-1)[0] = 1e-40
        return built


def test_homogeneity_is_skipped_with_the_reason_where_a_subnormal_does_not_scale() -> None:
    t = _run(_SubnormalRelu("relu"), RELU, "float32", "reference").tallies[("reference", "homogeneity")]
    assert t.skipped == 1 and t.failed == 0 and "subnormal" in t.skip_reason


def test_translation_is_skipped_where_no_output_is_away_from_the_borders() -> None:
    case = {**CONV, "H": 2, "kernel_size": [3, 2], "padding": [1, 0]}  # every output row touches the padding
    t = _run(specs.get("conv2d"), case, "float64", "reference").tallies[("reference", "translation")]
    assert t.skipped == 1 and "borders" in t.skip_reason


@pytest.mark.parametrize("transposed", [False, True], ids=["window", "transposed"])
def test_interior_matches_its_definition(transposed: bool) -> None:
    """The outputs relations._interior keeps are exactly those whose every input index lies in
    [0, size): checked by enumerating each output's inputs."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        k, s, d, size = (int(v) for v in rng.integers(1, [5, 4, 3, 9]))
        p = int(rng.integers(0, d * (k - 1) + 1))
        if transposed:
            out = (size - 1) * s - 2 * p + d * (k - 1) + 1
            inputs = [[(o + p - a * d) // s for a in range(k) if (o + p - a * d) % s == 0] for o in range(max(out, 0))]
        else:
            out = (size + 2 * p - d * (k - 1) - 1) // s + 1
            inputs = [[o * s - p + a * d for a in range(k)] for o in range(max(out, 0))]
        want = [o for o, ins in enumerate(inputs) if all(0 <= i < size for i in ins)]
        got = relations._interior(size, max(out, 0), k, s, p, d, transposed).tolist()
        assert got == want, (k, s, p, d, size, transposed)


def test_every_relation_op_is_a_spec_and_the_policy_states_the_bounds() -> None:
    from refcnn.conformance import tolerance

    text = tolerance.policy_text()
    for name, ops in relations.APPLIES.items():
        assert name in text
        for op in ops:
            assert name in specs.get(op).checks("float32"), (name, op)
