"""Memory layouts and the caller's arrays for conv2d, conv_transpose2d, the pools and flatten:
the checks of tests/test_layouts.py (see there) on the ops of refcnn/kernels/{conv,pool,
shape}.py, kept apart because those files are being rewritten for speed; a case that fails
here names a defect in them, not in the test.
"""

from __future__ import annotations

import pytest
from test_layouts import CASES as OTHER_CASES
from test_layouts import DTYPES, LAYOUT_PARAMS, WHICH, _x, check_layout, check_output_writes

from refcnn import kernels

CONV = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
WINDOW = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1))


def _cases():
    def fixed(**config):
        return lambda: dict(config)

    image = lambda r: (_x(r, 2, 4, 7, 6),)  # noqa: E731
    return [
        ("conv2d", "conv2d", lambda r: (_x(r, 2, 4, 7, 6), _x(r, 6, 2, 3, 5), _x(r, 6)), fixed(**CONV)),
        ("conv2d-nobias", "conv2d", lambda r: (_x(r, 2, 4, 7, 6), _x(r, 6, 2, 3, 5), None), fixed(**CONV)),
        ("conv_transpose2d", "conv_transpose2d", lambda r: (_x(r, 2, 4, 5, 6), _x(r, 4, 3, 3, 5), _x(r, 6)),
         fixed(**CONV, output_padding=(1, 0))),
        ("max_pool2d", "max_pool2d", image, fixed(**WINDOW, dilation=(1, 1), ceil_mode=True)),
        ("avg_pool2d", "avg_pool2d", image,
         fixed(**WINDOW, ceil_mode=False, count_include_pad=False, divisor_override=None)),
        ("adaptive_avg_pool2d", "adaptive_avg_pool2d", image, fixed(output_size=(3, 4))),
        ("adaptive_max_pool2d", "adaptive_max_pool2d", image, fixed(output_size=(3, 4))),
        ("flatten", "flatten", image, fixed(start_dim=1, end_dim=-1)),
    ]  # fmt: skip


CASES = [
    pytest.param(name, op, impl, build, config, id=f"{name}-{impl}")
    for name, op, build, config in _cases()
    for impl in kernels.available(op)
]


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize(("layout", "readonly"), LAYOUT_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "op", "impl", "build", "config"), CASES)
def test_layout_gives_the_c_order_result_and_leaves_the_callers_arrays_alone(
    name, op, impl, build, config, dtype, layout, readonly, which
):
    # the reference convs once summed in memory order (Fortran x: other last bits); they
    # now sum in C order whatever the layout
    check_layout(op, impl, build, config, (), dtype, layout, readonly, which)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "op", "impl", "build", "config"), CASES)
def test_writing_into_the_output_leaves_the_gradients_alone(name, op, impl, build, config, dtype):
    check_output_writes(op, impl, build, config, dtype)


def test_every_built_in_implementation_has_a_layout_case():
    # A kernel added to refcnn/kernels/ without a case here would escape these checks.
    built_in = {
        (op, impl)
        for op in kernels.ops()
        for impl in kernels.available(op)
        if kernels.get(op, impl).forward_impl.__module__.startswith("refcnn.kernels.")
    }
    covered = {(c.values[0], c.values[1]) for c in OTHER_CASES} | {(c.values[1], c.values[2]) for c in CASES}
    assert built_in <= covered, f"no layout case for {sorted(built_in - covered)}"
