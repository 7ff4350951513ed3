"""``python -m refcnn conformance`` where torch is not installed: one line saying what to
install, exit status 2; --help still works (no torch needed for either)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_TORCH = "import sys; sys.modules['torch'] = None; from refcnn.cli import main; sys.exit(main({argv}))"


def _run(argv, tmp_path):
    code = NO_TORCH.format(argv=argv)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_without_torch_one_line_names_the_extra(tmp_path):
    r = _run(["conformance", "--op", "linear"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "pip install 'refcnn[conformance]'" in r.stderr
    assert not (tmp_path / "conformance-report").exists()


def test_help_needs_no_torch(tmp_path):
    r = _run(["conformance", "--help"], tmp_path)
    assert r.returncode == 0 and "--plugin" in r.stdout and "--shard" in r.stdout, r.stderr
    assert "DESIGN" not in r.stdout and "§" not in r.stdout and "``" not in r.stdout
