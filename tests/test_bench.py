"""The benchmark's pure parts (no PyTorch): flop counts, statistics, interleaved timing with
a fake clock, the summary's verdicts and the JSON document built from injected timings."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from refcnn import bench, models
from refcnn.bench import cases, command, machine

# ---- flop counts, by hand -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        # H_out = (5 + 2 - 3)//2 + 1 = 3, W_out = (7 + 4 - 5)//1 + 1 = 7: 2*2*4*3*7 * 3*(3*5)
        (dict(N=2, C_in=3, H=5, W=7, C_out=4, kernel=(3, 5), stride=(2, 1), padding=(1, 2)), 2 * 2 * 4 * 3 * 7 * 45),
        # groups=3: each output sees C_in/3 = 2 channels
        (dict(N=1, C_in=6, H=4, W=6, C_out=3, kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups=3),
         2 * 1 * 3 * 4 * 6 * 2),
        # dilation (2, 1): effective kernel height 5, H_out = (9 - 5)//1 + 1 = 5, W_out = 8 - 3 + 1 = 6
        (dict(N=1, C_in=1, H=9, W=8, C_out=1, kernel=(3, 3), stride=(1, 1), padding=(0, 0), dilation=(2, 1)),
         2 * 5 * 6 * 9),
    ],
    ids=["k3x5-s2x1-p1x2", "g3-k1", "d2x1"],
)  # fmt: skip
def test_conv2d_flops_by_hand(args, expected):
    assert bench.conv2d_flops(**args) == expected


def test_conv_case_counts_forward_and_twice_that_backward():
    case = bench.ConvCase(64, 1, 28, 28, 16, 3, 1, 1)
    forward = 2 * 64 * 16 * 28 * 28 * 1 * 9
    assert case.flops() == 3 * forward
    strided = bench.ConvCase(64, 32, 16, 16, 64, 3, 2, 1)  # H_out = (16 + 2 - 3)//2 + 1 = 8
    assert strided.flops() == 3 * 2 * 64 * 64 * 8 * 8 * 32 * 9


def test_linear_flops():
    assert bench.linear_flops(5, 3, 7) == 2 * 5 * 3 * 7


@pytest.mark.parametrize(
    "name, per_image",
    [
        # conv 1->8 k3 on 28x28: 2*8*26*26*9; linear 1352->10: 2*1352*10
        ("simplecnn", 2 * 8 * 26 * 26 * 9 + 2 * 1352 * 10),
        # conv 1->6 k5 p2: 2*6*28*28*25; conv 6->16 k5 on 14x14: 2*16*10*10*150; 400->120->84->10
        ("lenet5", 2 * 6 * 28 * 28 * 25 + 2 * 16 * 10 * 10 * 150 + 2 * (400 * 120 + 120 * 84 + 84 * 10)),
    ],
)
def test_model_forward_flops_by_hand(name, per_image):
    model = models.build(name)
    x = np.zeros((3, 1, 28, 28), dtype=np.float32)
    assert bench.model_forward_flops(model, x) == 3 * per_image
    # counting keeps no contexts: the training step the bench times next can run its backward
    model.backward(model(x) * 0)


def test_cases_are_the_issues_cases():
    convs = [(c.N, c.C_in, c.H, c.W, c.C_out, c.kernel, c.stride, c.padding) for c in bench.CONV_CASES]
    assert convs == [
        (64, 1, 28, 28, 16, 3, 1, 1), (64, 16, 14, 14, 32, 3, 1, 1), (64, 32, 7, 7, 64, 3, 1, 1),
        (32, 64, 32, 32, 128, 3, 1, 1), (64, 6, 14, 14, 16, 5, 1, 0), (64, 32, 16, 16, 64, 3, 2, 1),
    ]  # fmt: skip
    pools = [(c.N, c.C, c.H, c.W, c.kernel, c.stride, c.padding) for c in bench.POOL_CASES]
    assert pools == [(64, 16, 28, 28, 2, 2, 0), (64, 32, 16, 16, 3, 2, 1)]
    assert len({c.name for c in bench.CONV_CASES + bench.POOL_CASES}) == 8


# ---- statistics -----------------------------------------------------------------------------


def test_median_ms():
    assert bench.median_ms([0.003, 0.001, 0.002]) == pytest.approx(2.0)
    assert bench.median_ms([0.001, 0.004]) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="at least one timing"):
        bench.median_ms([])


def test_geomean():
    assert bench.geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert bench.geomean([0.5, 2.0]) == pytest.approx(1.0)  # 2x slower and 2x faster cancel
    with pytest.raises(ValueError, match=r"positive numbers, got \[1.0, 0.0\]"):
        bench.geomean([1.0, 0.0])
    with pytest.raises(ValueError, match="positive numbers"):
        bench.geomean([])


class FakeClock:
    """A clock that only moves when a contestant runs: each adds its own duration."""

    def __init__(self):
        self.now = 0.0
        self.calls = []

    def __call__(self):
        return self.now

    def contestant(self, name, seconds):
        def run():
            self.calls.append(name)
            self.now += seconds

        return run


def test_interleaved_takes_turns_after_warmup_and_restores_gc():
    import gc

    clock = FakeClock()
    fns = {"refcnn": clock.contestant("refcnn", 0.002), "torch": clock.contestant("torch", 0.001)}
    assert gc.isenabled()
    times = bench.interleaved(fns, repeats=3, warmup=2, clock=clock)
    assert gc.isenabled()
    assert clock.calls == ["refcnn", "torch"] * 5  # 2 warm-up rounds, then 3 timed, in turn
    assert times == {"refcnn": [pytest.approx(0.002)] * 3, "torch": [pytest.approx(0.001)] * 3}


def test_interleaved_rejects_bad_counts():
    with pytest.raises(ValueError, match="repeats >= 1 and warmup >= 0, got repeats=0, warmup=1"):
        bench.interleaved({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="got repeats=2, warmup=-1"):
        bench.interleaved({"a": lambda: None}, repeats=2, warmup=-1)


def test_count_subnormal():
    tiny32 = np.finfo(np.float32).tiny
    a = np.array([0.0, 1e-39, -1e-40, tiny32, -tiny32, 1.0, np.float32(1.4e-45)], dtype=np.float32)
    assert bench.count_subnormal(a) == 3  # 1e-39, -1e-40 and the smallest subnormal; tiny is normal
    assert bench.count_subnormal(a.astype(np.float64)) == 0  # the same values are normal in float64
    assert bench.count_subnormal(np.array([1, 0], dtype=np.int64)) == 0


def test_peak_memory_sees_numpy_buffers():
    assert bench.peak_memory(lambda: np.ones(1_000_000, dtype=np.float64)) >= 8_000_000
    assert bench.peak_memory(lambda: None) < 100_000


# ---- mygrad's padding/cropping helper: pure NumPy geometry -----------------------------------


def test_mygrad_window_pads_to_the_rows_torch_uses():
    # k3 s2 p1 on 16: padded 18, PyTorch's floor uses 17 rows/columns (8 windows)
    w = cases._MygradWindow((2, 3, 16, 12), 3, 2, 1, -np.inf)
    x = np.arange(2 * 3 * 16 * 12, dtype=np.float32).reshape(2, 3, 16, 12)
    xp = w.pad(x)
    assert xp.shape == (2, 3, 17, 13) and not w.native
    assert np.all(xp[:, :, 0] == -np.inf) and np.array_equal(xp[:, :, 1:, 1:], x)
    assert np.array_equal(w.crop(xp), x)


def test_mygrad_window_crop_zeroes_rows_no_window_reached():
    # k2 s3 p0 on 6x7: windows use rows 0..4 and columns 0..4; the rest gets no gradient
    w = cases._MygradWindow((1, 1, 6, 7), 2, 3, 0, 0.0)
    assert w.pad(np.zeros((1, 1, 6, 7), np.float32)).shape == (1, 1, 5, 5)
    grad = w.crop(np.ones((1, 1, 5, 5), np.float32))
    assert grad.shape == (1, 1, 6, 7) and grad[..., :5, :5].all() and not grad[..., 5, :].any()
    assert not grad[..., :, 5:].any()


def test_mygrad_window_native_when_windows_tile():
    assert cases._MygradWindow((1, 1, 28, 28), 3, 1, 1, 0.0).native
    assert not cases._MygradWindow((1, 1, 28, 28), 2, 2, 0, -np.inf).native  # pools always go by hand


# ---- the summary and the JSON document, from injected timings -------------------------------


def fake_results(op_ratios, train_ratios=(1.5, 2.0), mygrad_ms=None):
    results = []
    for i, ratio in enumerate(op_ratios):
        kind = "conv2d" if i < 6 else "max_pool2d"
        results.append(bench.Result(f"{kind} case {i}", kind, [64, 1, 28, 28], refcnn_ms=ratio * 10.0, torch_ms=10.0,
                                    flops=3_000_000_000 if kind == "conv2d" else None,
                                    mygrad_ms=None if mygrad_ms is None else mygrad_ms[i],
                                    peak_mem_bytes=1 << 20, input_bytes=200_704))  # fmt: skip
    for name, ratio in zip(("LeNet5", "SimpleCNN"), train_ratios, strict=True):
        results.append(bench.Result(f"train step {name} batch 64", "train_step", [64, 1, 28, 28], 4.0 * ratio, 4.0,
                                    config={"model": name.lower()}))  # fmt: skip
    return results


NOTEBOOK = {"batch": 20, "epoch_images": 1000, "epoch_speedup": 2500.0}


def verdicts(checks):
    return [c.met for c in checks]


def with_memory(results, workspace_ratios):
    """Give the 6 conv cases an im2col size and extra memory of the given ratio to it."""
    for r, ratio in zip(results[:6], workspace_ratios, strict=True):
        r.im2col_bytes, r.peak_mem_bytes = 1 << 20, int(ratio * (1 << 20))
    return results


def test_summary_all_targets_met():
    ratios = [0.5, 1.6, 1.0, 1.2, 0.8, 1.0, 0.5, 1.0]
    results = with_memory(fake_results(ratios, (1.3, 2.0), mygrad_ms=[100.0] * 8), [0.5, 1.0, 0.2, 0.2, 0.2, 0.2])
    checks = bench.summarize(results, NOTEBOOK, mygrad="2.5.0")
    assert [c.op for c in checks] == ["<=", "<=", "<=", "<=", "<", ">="]
    assert checks[0].value == pytest.approx(np.exp(np.mean(np.log(ratios))))
    assert checks[1].value == pytest.approx(1.6) and checks[1].note == "conv2d case 1"
    assert "LeNet5" in checks[2].name and checks[2].value == pytest.approx(1.3)  # SimpleCNN's 2.0 has no target
    assert checks[3].value == pytest.approx(1.0) and checks[3].note == "conv2d case 1"
    assert checks[5].value == 2500.0
    assert verdicts(checks) == [True] * 6
    assert all(c.line().startswith("  meets ") for c in checks)


def test_summary_reports_each_miss_and_by_how_much():
    ratios = [1.2, 1.2, 1.2, 2.0, 1.2, 1.2, 1.2, 1.2]  # geomean > 1, worst > 1.6
    mygrad_ms = [100.0] * 7 + [10.0]  # refcnn's 12 ms pool case is slower than mygrad's 10 ms
    results = with_memory(fake_results(ratios, (1.69, 1.0), mygrad_ms), [0.5, 1.5, 0.2, 0.2, 0.2, 0.2])
    checks = bench.summarize(results, {**NOTEBOOK, "epoch_speedup": 1000.0}, "2.5.0")
    assert verdicts(checks) == [False] * 6
    assert checks[1].by == pytest.approx(2.0 / 1.6) and checks[2].by == pytest.approx(1.69 / 1.3)
    assert checks[3].by == pytest.approx(1.5) and checks[5].by == pytest.approx(2.0)  # 1000 of at least 2000
    assert checks[4].value == pytest.approx(12.0 / 10.0) and "max_pool2d case 7" in checks[4].note
    line = checks[1].line()
    assert line.startswith("  misses") and "off by 1.25x" in line and "target <= 1.6" in line


def test_summary_without_mygrad_notebook_or_memory_says_not_measured():
    checks = bench.summarize(fake_results([1.0] * 8), None, mygrad=None)
    mygrad = [c for c in checks if "mygrad" in c.name]
    assert len(mygrad) == 1 and mygrad[0].met is None and "pip install mygrad" in mygrad[0].note
    assert "n/a" in mygrad[0].line() and "not measured" in mygrad[0].line()
    assert not any("notebook" in c.name or "memory" in c.name for c in checks)


def test_check_targets_are_inclusive_where_the_issue_says_so():
    assert bench.Check("a", 2.0, "<=", 2.0).met is True
    assert bench.Check("a", 1000.0, ">=", 1000.0).met is True
    assert bench.Check("a", 1.0, "<", 1.0).met is False
    assert "meets" in bench.Check("geo", 0.9, "<=", 1.0).line()
    assert "misses" in bench.Check("geo", 1.2, "<=", 1.0).line()
    assert bench.Check("geo", 0.9, "<=", 1.0).by is None and bench.Check("geo", None, "<=", 1.0).by is None


def test_report_json_shape():
    results = with_memory(fake_results([1.0, 2.0, 1.5, 3.0, 1.0, 2.0, 0.5, 1.0]), [0.5] * 6)
    results[0].ratio_spread = (0.9, 1.1)
    two = fake_results([0.8] * 8)
    checks = bench.summarize(results, NOTEBOOK, None)
    versions = {"refcnn": "0.1.0", "numpy": np.__version__, "torch": "fake", "python": "3", "mygrad": None}
    machine_info = {"threads": [1, 2], "matmul_peak_gflops": 30.0}
    doc = json.loads(json.dumps(bench.report(results, checks, versions, machine_info, NOTEBOOK, {"scenarios": {}},
                                             {2: two}, {"ratio": 1.2})))  # fmt: skip
    assert set(doc) == {
        "results", "versions", "machine", "summary", "results_by_threads", "notebook", "epoch", "denormals",
    }  # fmt: skip
    assert doc["versions"] == versions and doc["machine"] == machine_info and doc["epoch"] == {"ratio": 1.2}
    keys = ["name", "shape", "dtype", "refcnn_ms", "torch_ms", "ratio"]  # the keys the README promises, first
    for entry in doc["results"] + doc["results_by_threads"]["2"]:
        assert list(entry)[:6] == keys
        assert entry["dtype"] == "float32" and entry["ratio"] == pytest.approx(entry["refcnn_ms"] / entry["torch_ms"])
    assert [e["ratio"] for e in doc["results_by_threads"]["2"][:8]] == [pytest.approx(0.8)] * 8
    conv = doc["results"][0]  # 3 GFLOP in 10 ms: 300 GFLOP/s, 10x a 30 GFLOP/s peak
    assert conv["gflops"] == pytest.approx(300.0) and conv["peak_fraction"] == pytest.approx(10.0)
    assert conv["torch_gflops"] == pytest.approx(300.0)
    assert conv["ratio_q25"] == 0.9 and conv["ratio_q75"] == 1.1
    assert conv["im2col_bytes"] == 1 << 20 and conv["workspace_im2col_ratio"] == pytest.approx(0.5)
    assert conv["input_bytes"] == 200_704 and conv["mygrad_ms"] is None
    pool = doc["results"][6]
    assert pool["gflops"] is None and pool["peak_fraction"] is None and pool["workspace_im2col_ratio"] is None
    summary = doc["summary"]
    assert summary["geomean_ratio"] == pytest.approx(checks[0].value)
    assert summary["max_ratio"] == pytest.approx(3.0)
    assert summary["train_step_ratios"] == {"train step LeNet5 batch 64": 1.5, "train step SimpleCNN batch 64": 2.0}
    assert summary["notebook_speedup"] == 2500.0 and summary["targets"] == bench.TARGETS
    assert [c["met"] for c in summary["checks"]] == [c.met for c in checks]
    assert summary["all_met"] is False  # geomean 1.35 misses; the mygrad check was not measured


def test_format_table_lists_every_case_aligned():
    results = fake_results([1.0, 2.0, 1.5, 3.0, 1.0, 2.0, 0.5, 1.0])
    table = bench.format_table(results, 30.0).splitlines()
    assert table[0].split()[:3] == ["case", "refcnn", "ms"] and set(table[1]) <= {"-", " "}
    assert len(table) == 2 + len(results)
    assert len({len(line) for line in table}) == 1
    for r, line in zip(results, table[2:], strict=True):
        assert line.startswith(r.name) and f"{r.ratio:.2f}" in line
    assert "1.0 MiB" in table[2] and "196.0 KiB" in table[2]


# ---- the machine ---------------------------------------------------------------------------


def test_blas_threads_is_a_positive_count_with_its_source():
    n, source = bench.blas_threads()
    assert isinstance(n, int) and n >= 1 and source


def test_blas_threads_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    monkeypatch.setattr(machine, "_openblas_threads", lambda: None)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert bench.blas_threads() == (3, "$OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    n, source = bench.blas_threads()
    assert n >= 1 and source.startswith("os.cpu_count()")


def test_matmul_peak_is_positive():
    assert bench.matmul_peak_gflops(size=64, tries=2) > 0


# what threadpoolctl's threadpool_info() says on a machine with NumPy's OpenBLAS
OPENBLAS_INFO = [{
    "user_api": "blas", "internal_api": "openblas", "num_threads": 2, "prefix": "libscipy_openblas",
    "filepath": "/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so", "version": "0.3.31.188.0",
    "threading_layer": "pthreads", "architecture": "Haswell",
}]  # fmt: skip


def test_blas_facts_name_the_library_core_type_and_threads(monkeypatch):
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    facts = bench.blas_facts(OPENBLAS_INFO)
    assert facts["library"] == "openblas 0.3.31.188.0" and facts["file"] == "libscipy_openblas64_-32a4b2a6.so"
    assert facts["core_type"] == "Haswell" and facts["threads"] == 2 and facts["threading_layer"] == "pthreads"
    assert facts["source"] == "threadpoolctl" and facts["overrides"] == {}
    assert bench.override_warning(facts) is None


def test_an_overridden_core_type_is_warned_about(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "512")
    facts = bench.blas_facts(OPENBLAS_INFO)
    assert facts["overrides"] == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    warning = bench.override_warning(facts)
    assert warning is not None and "\n" not in warning and warning.startswith("warning: OPENBLAS_CORETYPE=Haswell")
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m refcnn bench" in warning
    assert bench.overrides({"OPENBLAS_CORETYPE": "", "OTHER": "1"}) == {}  # set but empty: not an override


def test_blas_facts_without_threadpoolctl_say_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    facts = bench.blas_facts()
    assert facts["source"] == "numpy build info (no threadpoolctl)" and facts["core_type"] is None


def test_spread_is_the_quartiles_of_side_by_side_ratios():
    assert bench.spread([1.0, 2.0, 3.0, 4.0, 5.0], [1.0] * 5) == (2.0, 4.0)
    assert bench.spread([2.0], [1.0]) == (2.0, 2.0)


# ---- the command: user errors are one line, exit 2, no traceback ----------------------------


def bench_cli(*args, env=None):
    """python -m refcnn bench ARGS in a subprocess, from the repository root."""
    return subprocess.run([sys.executable, "-m", "refcnn", "bench", *args], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--repeats", "0"], ["--repeats", "must be an integer >= 1, got '0'"]),
        (["--repeats", "many"], ["--repeats", "got 'many'"]),
        (["--threads", "1,0"], ["--threads", "got '1,0'"]),
        (["--threads", "2,2"], ["--threads", "distinct"]),
        (["--cpu-time"], ["--cpu-time", "--threads 1", "got --threads 1,2"]),
        (["--frobnicate"], ["unrecognized arguments: --frobnicate"]),
        (["--json", "."], ["--json .", "is a directory"]),
    ],
    ids=["repeats-0", "repeats-word", "threads-0", "threads-twice", "cpu-time-two-threads", "unknown", "json-dir"],
)
def test_user_errors_are_one_line_exit_2(args, needles):
    assert_one_line_error(bench_cli(*args), *needles)


def test_json_under_a_file_is_refused_before_measuring(tmp_path):
    # a folder that cannot exist: the path's parent is a regular file
    (tmp_path / "notes.txt").write_text("")
    target = tmp_path / "notes.txt" / "bench.json"
    assert_one_line_error(bench_cli("--json", str(target)), "cannot write into", "notes.txt")


def test_missing_data_is_one_line(tmp_path):
    proc = bench_cli("--quick", "--data", str(tmp_path / "nowhere"))
    if "needs torch" in proc.stderr:
        assert_one_line_error(proc, "pip install 'refcnn[bench]'")  # the py env has no torch: that line comes first
    else:
        assert_one_line_error(proc, "--data", "nowhere")


def test_without_torch_says_how_to_install_it(tmp_path):
    # a module named torch that fails to import shadows the real one
    (tmp_path / "torch.py").write_text("raise ImportError('no torch here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    assert_one_line_error(bench_cli("--quick", env=env), "needs torch", "pip install 'refcnn[bench]'")


def test_every_option_has_help_with_its_default_and_no_internal_references():
    proc = bench_cli("--help")
    assert proc.returncode == 0
    text = proc.stdout
    for option in ("--json", "--repeats", "--quick", "--threads", "--data", "--cpu-time"):
        assert option in text
    assert text.count("(default") == 6, text
    assert "DESIGN" not in text and "§" not in text


def test_user_facing_text_never_cites_the_design_file():
    import pathlib

    for path in pathlib.Path(bench.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "DESIGN" not in text and "§" not in text, path


def test_missed_targets_still_exit_0_and_write_the_json(monkeypatch, tmp_path):
    # a measurement, not a test: every target missed, the command still succeeds
    results = fake_results([3.0] * 8, (2.0, 2.0))
    checks = bench.summarize(results, {**NOTEBOOK, "epoch_speedup": 10.0}, None)
    assert not any(c.met for c in checks)
    doc = bench.report(results, checks, {}, {})
    monkeypatch.setattr(command, "run", lambda opts, data: doc)
    out = tmp_path / "reports" / "bench.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["summary"]["all_met"] is False


def test_importing_bench_does_not_import_torch():
    code = "import sys, refcnn.bench, refcnn.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_main_without_torch_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert bench.main(["--quick"]) == 2
    err = capsys.readouterr().err
    assert "needs torch" in err and "pip install 'refcnn[bench]'" in err


def test_forward_and_backward_ratios():
    r = bench.Result("c", "conv2d", [1], refcnn_ms=30.0, torch_ms=10.0, refcnn_fwd_ms=10.0, torch_fwd_ms=5.0)
    assert r.fwd_ratio == pytest.approx(2.0) and r.bwd_ratio == pytest.approx(20.0 / 5.0)
    d = r.to_json(None)
    assert d["fwd_ratio"] == pytest.approx(2.0) and d["bwd_ratio"] == pytest.approx(4.0) and d["peak_fraction"] is None
    assert "2.00|4.00" in bench.format_table([r], None)
    # a forward timed slower than the whole (noise) gives no backward ratio, not a negative one
    noisy = bench.Result("c", "conv2d", [1], refcnn_ms=1.0, torch_ms=1.0, refcnn_fwd_ms=1.2, torch_fwd_ms=0.5)
    assert noisy.bwd_ratio is None and bench.Result("t", "train_step", [1], 1.0, 1.0).fwd_ratio is None


def test_best_ratios_when_given():
    results = fake_results([1.0] * 8)
    assert bench.report(results, [], {}, {})["summary"]["geomean_best_ratio"] is None
    for r, best in zip(results, [0.5, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0], strict=True):
        r.refcnn_best_ms, r.torch_best_ms = best * 2.0, 2.0
    doc = bench.report(results, [], {}, {})
    assert doc["summary"]["geomean_best_ratio"] == pytest.approx(1.0)  # the 8 conv/pool cases only
    assert doc["results"][1]["best_ratio"] == pytest.approx(2.0) and doc["results"][1]["torch_best_ms"] == 2.0


def test_options_clock():
    assert bench.Options.make(None, True).clock is time.perf_counter
    assert bench.Options.make(None, False, cpu_time=True).clock is time.process_time
    assert bench.Options.make(None, False).repeats == 15 and bench.Options.make(7, True).repeats == 7
