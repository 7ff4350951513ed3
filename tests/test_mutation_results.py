"""tools/mutation.py's recorded results: what one mutmut run measured survives into the next
run, on another machine, exactly for the functions whose source mutmut hashes the same."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILE = Path("refcnn/kernels/toy.py")


@pytest.fixture
def tool(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutation_tool", module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    monkeypatch.chdir(tmp_path)
    return module


def _write_meta(hashes, codes):
    meta = Path("mutants") / (str(FILE) + ".meta")
    meta.parent.mkdir(parents=True, exist_ok=True)
    empty = {"type_check_error_by_key": {}, "durations_by_key": {}, "estimated_durations_by_key": {}}
    meta.write_text(json.dumps({"exit_code_by_key": codes, "hash_by_function_name": hashes, **empty}))
    return meta


def _key(func, n):
    return f"refcnn.kernels.toy.{func}__mutmut_{n}"


def test_record_then_restore_into_an_empty_mutants_folder(tool):
    meta = _write_meta(
        {"x_f": "aaa", "x_g": "bbb", "x_h": "ccc"},
        {_key("x_f", 1): 1, _key("x_f", 2): 0, _key("x_f", 10): None, _key("x_g", 1): 36, _key("x_h", 1): None},
    )
    assert tool.record([FILE], Path("results.json")) == 3  # x_f 1, 2 and x_g 1; not-run mutants are not recorded
    recorded = json.loads(Path("results.json").read_text())
    assert recorded["mutmut"] == tool.MUTMUT
    assert recorded["files"][str(FILE)] == {
        "x_f": {"hash": "aaa", "exit_codes": {"1": 1, "2": 0}},
        "x_g": {"hash": "bbb", "exit_codes": {"1": 36}},
    }
    meta.unlink()
    assert tool.restore([FILE], Path("results.json")) == 3
    restored = json.loads(meta.read_text())
    assert restored["exit_code_by_key"] == {_key("x_f", 1): 1, _key("x_f", 2): 0, _key("x_g", 1): 36}
    assert restored["hash_by_function_name"] == {"x_f": "aaa", "x_g": "bbb"}


def test_restore_skips_changed_functions_and_keeps_this_runs_results(tool):
    _write_meta({"x_f": "aaa", "x_g": "bbb"}, {_key("x_f", 1): 1, _key("x_f", 2): 1, _key("x_g", 1): 1})
    tool.record([FILE], Path("results.json"))
    # a later generation: x_f changed (new hash, not run yet), x_g unchanged with one result of its own
    meta = _write_meta({"x_f": "new", "x_g": "bbb"}, {_key("x_f", 1): None, _key("x_g", 1): 0, _key("x_g", 2): None})
    tool.record([FILE], Path("results.json"))  # x_g's 0 wins over the recorded 1
    _write_meta({"x_f": "new", "x_g": "bbb"}, {_key("x_f", 1): None, _key("x_g", 1): None, _key("x_g", 2): None})
    assert tool.restore([FILE], Path("results.json")) == 1
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    assert codes == {_key("x_f", 1): None, _key("x_g", 1): 0, _key("x_g", 2): None}


def test_a_changed_function_replaces_its_recorded_results(tool):
    _write_meta({"x_f": "aaa"}, {_key("x_f", 1): 1, _key("x_f", 2): 1})
    tool.record([FILE], Path("results.json"))
    _write_meta({"x_f": "new"}, {_key("x_f", 1): 0})
    tool.record([FILE], Path("results.json"))
    entry = json.loads(Path("results.json").read_text())["files"][str(FILE)]["x_f"]
    assert entry == {"hash": "new", "exit_codes": {"1": 0}}


def test_a_result_to_retry_is_left_out_and_its_recorded_code_dropped(tool):
    # a timeout not listed as a hang: a slow survivor or a busy machine; the next run tries again
    _write_meta({"x_f": "aaa"}, {_key("x_f", 1): 1, _key("x_f", 2): 36, _key("x_f", 3): 36})
    tool.record([FILE], Path("results.json"))
    hang = _key("x_f", 3)  # listed as a hang: its timeout is its detection, and stays recorded
    added = tool.record([FILE], Path("results.json"), lambda f, name, code: code == 36 and name != hang)
    assert added == 0
    entry = json.loads(Path("results.json").read_text())["files"][str(FILE)]["x_f"]
    assert entry["exit_codes"] == {"1": 1, "3": 36}


def test_a_file_whose_mutants_have_not_run_is_not_recorded(tool):
    _write_meta({"x_f": "aaa"}, {_key("x_f", 1): None})
    assert tool.record([FILE], Path("results.json")) == 0
    assert json.loads(Path("results.json").read_text())["files"] == {}


def test_results_of_another_mutmut_version_are_refused(tool):
    Path("results.json").write_text(json.dumps({"mutmut": "2.0.0", "files": {}}))
    with pytest.raises(SystemExit, match=r"results.json holds mutmut 2.0.0's results; this is for mutmut 3\.8\.1"):
        tool.restore([FILE], Path("results.json"))
