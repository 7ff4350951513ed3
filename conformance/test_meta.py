"""Every op in the registry and every public Module, optimizer and scheduler of refcnn has a
conformance spec (the runner also fails a full run on any gap)."""

from __future__ import annotations

from refcnn.conformance import runner, specs


def test_every_spec_family_loads() -> None:
    specs.all_specs()
    assert not specs.load_errors, specs.load_errors


def test_nothing_in_refcnn_lacks_a_spec() -> None:
    problems = runner.meta_problems()
    assert not problems, "\n".join(problems)


def test_the_meta_check_sees_a_new_op() -> None:
    from refcnn import kernels

    kernels.register("conformance_meta_probe", "reference", lambda x: (x, None), lambda g, ctx: (g,))
    try:
        assert any(p.startswith("conformance_meta_probe:") for p in runner.meta_problems())
    finally:
        kernels.unregister("conformance_meta_probe", "reference")
