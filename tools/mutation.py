"""The mutation score of refcnn/kernels/ from mutmut's results, and the gate on its survivors.

    python tools/mutation.py --restore               # the recorded results into mutants/
    mutmut run --max-children 1 [MUTANT_GLOB ...]     # fills mutants/ (see [tool.mutmut])
    python tools/mutation.py --record [FILE ...]     # the table, per kernel file; results kept

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

The whole run is many hours on 2 cores, more than one sitting, and ``mutants/`` is not in the
repository, so the results are kept in tools/mutation-results.json: for each function, the
hash mutmut gives its source and the exit code of each of its mutants. ``--restore`` writes
them into ``mutants/`` as mutmut's own results, and mutmut keeps a function's results exactly
when that hash is unchanged, as it does for its own; so a later run, on any machine, runs only
the mutants of functions that changed or that no run has reached yet. ``--record`` adds what
``mutants/`` holds to that file. Record only what is run from a clean main, with its tests.
After a kernel file is added, moved or renamed, start from an empty ``mutants/`` (``rm -rf
mutants``, then ``--restore``): mutmut's saved test map does not learn the new file's
functions and would report their mutants as reached by no test, or as surviving.

Run it from the repository root after ``mutmut run`` (``tox -e mutation`` does all three).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

KERNELS = Path("refcnn/kernels")
EQUIVALENT = Path("tools/mutation-equivalent.toml")
RESULTS = Path("tools/mutation-results.json")
MUTMUT = "3.8.1"  # its mutant numbering and function hashes are what the recorded results key on


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


def _match(entries: list[Entry], kind: str, path: Path, name: str, diff: str) -> Entry | None:
    """The entry of ``kind`` listing mutant ``name`` of ``path``, matched on the file, the
    function and the lines its diff changes."""
    lines, func = changed_lines(diff), function_of(name)
    return next(
        (e for e in entries if e.kind == kind and e.file == str(path) and e.function == func and e.lines == lines),
        None,
    )


def score(path: Path, entries: list[Entry]) -> FileScore:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    fs = FileScore(str(path))
    meta = _meta(path)
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
        kind = "hang" if s == "timeout" else "equivalent"
        match = _match(entries, kind, path, name, diff)
        if match is not None and s != "other":
            match.used += 1
            fs.counts["hang"] += kind == "hang"
            fs.equivalent += kind == "equivalent"
        else:
            fs.counts[s] += 1
            fs.open.append((name, s, diff))
    return fs


def _meta(path: Path) -> Path:
    return Path("mutants") / (str(path) + ".meta")


def _load_results(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text("utf-8"))
    if data.get("mutmut") != MUTMUT:
        raise SystemExit(f"{path} holds mutmut {data.get('mutmut')}'s results; this is for mutmut {MUTMUT}")
    return dict(data["files"])


def _module(path: Path) -> str:
    return ".".join(path.with_suffix("").parts)


def record(
    files: list[Path], path: Path = RESULTS, retry: Callable[[Path, str, int], bool] = lambda f, name, code: False
) -> int:
    """Adds the results in mutants/ to ``path``: a function's entry is replaced when its hash
    changed, and merged (this run's codes winning) when it did not. A result ``retry`` names
    is left out, and its recorded code dropped, so that the next run tries the mutant again.
    Returns the mutants added."""
    results, added = _load_results(path), 0
    for f in files:
        if not _meta(f).is_file():
            continue
        meta = json.loads(_meta(f).read_text("utf-8"))
        functions = results.setdefault(str(f), {})
        for func, h in meta["hash_by_function_name"].items():
            prefix = f"{_module(f)}.{func}__mutmut_"
            codes = {
                k.removeprefix(prefix): c
                for k, c in meta["exit_code_by_key"].items()
                if k.startswith(prefix) and c is not None
            }
            again = {n for n, c in codes.items() if retry(f, prefix + n, c)}
            codes = {n: c for n, c in codes.items() if n not in again}
            entry = functions.get(func)
            if entry is not None and entry["hash"] == h:
                for n in again:
                    entry["exit_codes"].pop(n, None)
            if not codes:
                continue
            if entry is None or entry["hash"] != h:
                entry = functions[func] = {"hash": h, "exit_codes": {}}
            added += sum(n not in entry["exit_codes"] for n in codes)
            entry["exit_codes"].update(codes)
            entry["exit_codes"] = dict(sorted(entry["exit_codes"].items(), key=lambda kv: int(kv[0])))
        if functions:
            results[str(f)] = dict(sorted(functions.items()))
        else:
            results.pop(str(f), None)
    path.write_text(json.dumps({"mutmut": MUTMUT, "files": dict(sorted(results.items()))}, indent=1) + "\n", "utf-8")
    return added


def restore(files: list[Path], path: Path = RESULTS) -> int:
    """Writes the recorded results into mutants/ for mutmut to keep where the function's hash
    is unchanged. A mutant mutants/ already has a result for keeps it. Returns the mutants
    restored."""
    results, restored = _load_results(path), 0
    for f in files:
        recorded = results.get(str(f))
        if not recorded:
            continue
        meta_path = _meta(f)
        meta: dict[str, Any] = {
            "exit_code_by_key": {},
            "hash_by_function_name": {},
            "type_check_error_by_key": {},
            "durations_by_key": {},
            "estimated_durations_by_key": {},
        }
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text("utf-8"))
        hashes, codes = meta["hash_by_function_name"], meta["exit_code_by_key"]
        for func, entry in recorded.items():
            if hashes.setdefault(func, entry["hash"]) != entry["hash"]:
                continue  # the function changed since: mutmut makes and runs its mutants anew
            for n, c in entry["exit_codes"].items():
                key = f"{_module(f)}.{func}__mutmut_{n}"
                if codes.get(key) is None:
                    codes[key] = c
                    restored += 1
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta, indent=4), "utf-8")
    return restored


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="kernel files to score (default: every file in refcnn/kernels/)")
    p.add_argument("--equivalent", default=str(EQUIVALENT), help="the list of equivalent mutants")
    p.add_argument("--quiet", action="store_true", help="do not show the diffs of open mutants")
    p.add_argument("--results", default=str(RESULTS), help="the recorded results")
    p.add_argument("--restore", action="store_true", help="write the recorded results into mutants/, and stop")
    p.add_argument("--record", action="store_true", help="add the results in mutants/ to the recorded ones")
    args = p.parse_args(argv)
    files = [Path(f) for f in args.files] or sorted(KERNELS.glob("*.py"))
    if args.restore:
        print(f"{restore(files, Path(args.results))} mutants' results restored from {args.results}")
        return 0
    if not Path("mutants").is_dir():
        print("no mutants/ folder here: run `mutmut run` from the repository root first", file=sys.stderr)
        return 2
    entries = load_equivalent(Path(args.equivalent))
    if args.record:
        from mutmut.mutation.diff_apply import get_diff_for_mutant

        def retry(f: Path, name: str, code: int) -> bool:
            """A timeout is recorded only when listed as a hang: a slow survivor, or a machine
            too busy, also times out, and the next run should try it again."""
            return status(code) == "timeout" and not _match(entries, "hang", f, name, get_diff_for_mutant(name, path=f))

        print(f"{record(files, Path(args.results), retry)} mutants' results added to {args.results}")
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
