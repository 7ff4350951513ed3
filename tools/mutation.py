"""The mutation score of refcnn/kernels/ from mutmut's results, and the gate on its survivors.

    mutmut run --max-children 1 [MUTANT_GLOB ...]     # fills mutants/ (see [tool.mutmut])
    python tools/mutation.py [FILE ...]              # the table, per kernel file

Prints, per kernel file, the mutants mutmut made and what became of them: killed, listed as
equivalent, timed out, and the rest (survived, no test reached the function, not run yet).
A mutant counts as detected when a test failed with it (killed), or when the tests did not
finish within mutmut's CPU-time limit and the mutant is listed as a ``[[hang]]`` with its
reason: a mutant that loops forever, such as ``while ih0 < 0: ih0 -= dH``, can only be caught
by a time limit (PIT and Stryker count such timeouts as detected). A timeout not listed as a
hang is open: a slow survivor also times out. Exits 1 when a mutant that was not detected is
not listed in tools/mutation-equivalent.toml, showing its diff as mutmut does, ready to be
listed there with its reason or, better, killed by a new test. An entry matches on the file,
the function and the lines the mutant changes, not on mutmut's numbered name, so that
unrelated edits that renumber the mutants of a function leave the list valid.

Run it from the repository root after ``mutmut run`` (``tox -e mutation`` does both).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

KERNELS = Path("refcnn/kernels")
EQUIVALENT = Path("tools/mutation-equivalent.toml")


def status(exit_code: int | None) -> str:
    """mutmut's verdict on one mutant, in four honest classes besides killed."""
    from mutmut.stats import status_by_exit_code

    s = status_by_exit_code[exit_code]
    if s == "killed":
        return "killed"
    if s in ("survived", "no tests", "timeout"):
        return s
    return "other"  # not checked (not run yet), suspicious, segfault, interrupted


def changed_lines(diff: str) -> list[str]:
    """The lines a diff removes and adds, stripped of indentation: what identifies a mutant of a
    function whatever its number and wherever the function moved in the file."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("---", "+++")) or not line.startswith(("-", "+")):
            continue
        out.append(line[0] + " " + line[1:].strip())
    return out


@dataclass
class Entry:
    file: str
    function: str
    lines: list[str]
    reason: str
    kind: str = "equivalent"  # or "hang": a timeout that is an infinite loop
    used: int = 0


def load_equivalent(path: Path) -> list[Entry]:
    if not path.is_file():
        return []
    data = tomllib.loads(path.read_text("utf-8"))
    entries = []
    for kind in ("equivalent", "hang"):
        for i, e in enumerate(data.get(kind, [])):
            missing = [k for k in ("file", "function", "diff", "reason") if not str(e.get(k, "")).strip()]
            if missing:
                raise SystemExit(f"{path}: {kind} entry {i + 1} has no {', '.join(missing)}")
            entries.append(Entry(e["file"], e["function"], changed_lines(e["diff"]), e["reason"].strip(), kind))
    return entries


def function_of(name: str) -> str:
    """``refcnn.kernels.pool.xǁPool2dǁforward__mutmut_3`` -> ``Pool2d.forward``."""
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    func, cls = orig_function_and_class_names_from_key(name)
    return f"{cls}.{func}" if cls else func


@dataclass
class FileScore:
    file: str
    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    equivalent: int = 0
    open: list[tuple[str, str, str]] = field(default_factory=list)  # (mutant, status, diff)
    run: bool = True


def score(path: Path, entries: list[Entry]) -> FileScore:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    fs = FileScore(str(path))
    meta = Path("mutants") / (str(path) + ".meta")
    if not meta.is_file():
        fs.run = False
        return fs
    data = json.loads(meta.read_text("utf-8"))
    for name, code in sorted(data["exit_code_by_key"].items()):
        fs.total += 1
        s = status(code)
        if s == "killed":
            fs.counts["killed"] += 1
            continue
        diff = get_diff_for_mutant(name, path=path)
        lines, func = changed_lines(diff), function_of(name)
        kind = "hang" if s == "timeout" else "equivalent"
        match = next(
            (e for e in entries if e.kind == kind and e.file == str(path) and e.function == func and e.lines == lines),
            None,
        )
        if match is not None and s != "other":
            match.used += 1
            fs.counts["hang"] += kind == "hang"
            fs.equivalent += kind == "equivalent"
        else:
            fs.counts[s] += 1
            fs.open.append((name, s, diff))
    return fs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="kernel files to score (default: every file in refcnn/kernels/)")
    p.add_argument("--equivalent", default=str(EQUIVALENT), help="the list of equivalent mutants")
    p.add_argument("--quiet", action="store_true", help="do not show the diffs of open mutants")
    args = p.parse_args(argv)
    if not Path("mutants").is_dir():
        print("no mutants/ folder here: run `mutmut run` from the repository root first", file=sys.stderr)
        return 2
    files = [Path(f) for f in args.files] or sorted(KERNELS.glob("*.py"))
    entries = load_equivalent(Path(args.equivalent))
    rows = [score(f, entries) for f in files]

    head = f"{'file':<34} {'mutants':>7} {'killed':>6} {'equiv':>5} {'survived':>8} {'no tests':>8} {'timeout':>7} {'other':>5} {'score':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if not r.run:
            print(f"{r.file:<34} not run (no mutants/{r.file}.meta)")
            continue
        c = r.counts
        detected = c["killed"] + c["hang"]
        pct = f"{100 * detected / (r.total - r.equivalent):.1f}%" if r.total > r.equivalent else "-"
        print(
            f"{r.file:<34} {r.total:>7} {c['killed']:>6} {r.equivalent:>5} {c['survived']:>8} {c['no tests']:>8} "
            f"{c['hang'] + c['timeout']:>7} {c['other']:>5} {pct:>7}"
        )
    print(
        "score: (killed + hangs) / (mutants - equivalent); timeout: the tests did not finish, detected when"
        " listed as a hang (an infinite loop), open otherwise; survived, no tests and other are open"
    )

    opened = [(r.file, *o) for r in rows for o in r.open]
    if not args.quiet:
        for file, name, s, diff in opened:
            print(f"\n{s.upper()}: {name} ({file}, {function_of(name)})\n{diff}")
    stale = [e for e in entries if not e.used and (not args.files or e.file in args.files)]
    for e in stale:
        print(f"note: listed as {e.kind} but matched no open mutant: {e.file} {e.function}: {e.lines}")
    missing = [r.file for r in rows if not r.run]
    if opened or missing:
        print(
            f"\n{len(opened)} mutants neither killed nor listed as equivalent in {args.equivalent}"
            + (f"; not run: {', '.join(missing)}" if missing else ""),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
