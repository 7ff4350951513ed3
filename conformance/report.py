"""The reports: DIR/conformance.json (the contract's keys, exactly), DIR/conformance.md (the
same for people: the verdict and the failures first, each with a repro and its arrays saved as
.npz, then the tolerance policy, the rows, mutants and coverage), and
DIR/conformance-detail.json (everything a run produced, which ``merge`` joins across shards)."""

from __future__ import annotations

import itertools
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .core import Tally, num, repro_text


def versions() -> dict[str, str]:
    import torch

    import refcnn

    return {
        "refcnn": refcnn.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


@dataclass
class Coverage:
    """Per spec: the values drawn for each feature, and the pairs of features drawn together."""

    values: dict[str, dict[str, set[Any]]] = field(default_factory=dict)
    pairs: dict[str, dict[tuple[str, str], set[tuple[Any, Any]]]] = field(default_factory=dict)

    def add(self, spec: str, features: dict[str, Any], pairs: list[tuple[str, str]]) -> None:
        vals = self.values.setdefault(spec, {})
        for k, v in features.items():
            vals.setdefault(k, set()).add(_hashable(v))
        prs = self.pairs.setdefault(spec, {})
        for a, b in pairs:
            if a in features and b in features:
                prs.setdefault((a, b), set()).add((_hashable(features[a]), _hashable(features[b])))

    def merge(self, other: Coverage) -> None:
        for spec, vals in other.values.items():
            mine = self.values.setdefault(spec, {})
            for k, v in vals.items():
                mine.setdefault(k, set()).update(v)
        for spec, prs in other.pairs.items():
            mine2 = self.pairs.setdefault(spec, {})
            for k2, v2 in prs.items():
                mine2.setdefault(k2, set()).update(v2)

    def to_json(self) -> dict[str, Any]:
        return {
            "values": {s: {k: sorted(map(_listed, v), key=repr) for k, v in d.items()} for s, d in self.values.items()},
            "pairs": {s: [[a, b, sorted(map(_listed, v), key=repr)] for (a, b), v in d.items()]
                      for s, d in self.pairs.items()},
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Coverage:
        cov = cls()
        for s, d in doc["values"].items():
            cov.values[s] = {k: {_hashable(u) for u in v} for k, v in d.items()}
        for s, rows in doc["pairs"].items():
            cov.pairs[s] = {(a, b): {_hashable(u) for u in v} for a, b, v in rows}
        return cov


def _listed(v: Any) -> Any:
    return [_listed(u) for u in v] if isinstance(v, tuple) else v


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(u) for u in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(u)) for k, u in v.items()))
    return v


@dataclass
class Outcome:
    """Everything one run (or a merge of shards) produced."""

    profile: str
    seed: int
    policy: str
    tallies: list[Tally]
    coverage: Coverage
    domains: dict[str, dict[str, list[Any]]]
    mutants: list[dict[str, Any]]
    meta_problems: list[str]
    notes: list[str]
    elapsed: float
    shards: list[str] = field(default_factory=lambda: ["1/1"])
    plugins: list[str] = field(default_factory=list)
    cases: dict[str, dict[str, int]] = field(default_factory=dict)  # impl -> checked / unsupported / failed

    @property
    def passed(self) -> bool:
        mutants_ok = all(m["caught"] for m in self.mutants)
        return (
            all(t.passed or t.skipped == t.configs or t.only_skipped for t in self.tallies)
            and mutants_ok
            and not self.meta_problems
        )

    def partial(self) -> list[str]:
        """Implementations that declined most configurations: a pass they get is not a full one."""
        out = []
        for impl, c in sorted(self.cases.items()):
            total = sum(c.values())
            if total and c["unsupported"] > total / 2:
                out.append(f"{impl} declined {c['unsupported']} of {total} configurations")
        return out

    def verdict(self) -> str:
        if not self.passed:
            return "FAILED"
        return "PASSED WITH MOST CONFIGURATIONS UNSUPPORTED" if self.partial() else "PASSED"

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "seed": self.seed, "policy": self.policy,
            "tallies": [t.__dict__ for t in self.tallies], "coverage": self.coverage.to_json(),
            "domains": self.domains, "mutants": self.mutants, "meta_problems": self.meta_problems,
            "notes": self.notes, "elapsed": self.elapsed, "shards": self.shards, "plugins": self.plugins,
            "cases": self.cases,
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Outcome:
        fields = dict(doc)
        fields["tallies"] = [Tally(**t) for t in doc["tallies"]]
        fields["coverage"] = Coverage.from_json(doc["coverage"])
        return cls(**fields)


def add_cases(into: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> None:
    for impl, c in more.items():
        mine = into.setdefault(impl, {"checked": 0, "unsupported": 0, "failed": 0})
        for k, v in c.items():
            mine[k] += v


def write(outcome: Outcome, report_dir: str) -> tuple[str, str]:
    try:
        os.makedirs(report_dir, exist_ok=True)
    except OSError as exc:
        from .engine import UserError

        raise UserError(f"cannot create the report folder {report_dir}: {exc.strerror}") from None
    results = []
    for t in outcome.tallies:
        row = t.row()
        if t.only_skipped:
            row["passed"] = False  # a skipped check is never counted as passed
        results.append(row)
    for problem in outcome.meta_problems:
        results.append({
            "op": problem.split(":", 1)[0], "impl": "-", "dtype": "-", "check": "spec_exists", "configs": 0,
            "failed": 1, "unsupported": 0, "worst_abs_err": 0.0, "worst_ratio_to_tolerance": 0.0,
            "worst_config": None, "passed": False,
        })  # fmt: skip
    doc = {
        "passed": outcome.passed,
        "profile": outcome.profile,
        "seed": outcome.seed,
        "versions": versions(),
        "tolerance_policy": outcome.policy,
        "results": results,
    }
    jpath = os.path.join(report_dir, "conformance.json")
    with open(jpath, "w") as f:
        json.dump(doc, f, indent=1, default=_json_default)
        f.write("\n")
    with open(os.path.join(report_dir, "conformance-detail.json"), "w") as f:
        json.dump(outcome.to_json(), f, default=_json_default)
    saved = _save_failure_arrays(outcome, report_dir)
    mpath = os.path.join(report_dir, "conformance.md")
    with open(mpath, "w") as f:
        f.write(markdown(outcome, doc, saved))
    return jpath, mpath


def _save_failure_arrays(outcome: Outcome, report_dir: str) -> dict[int, str]:
    """Each failing op case's arrays (in the checked dtype) as an .npz next to the report."""
    from .runner import case_arrays

    saved: dict[int, str] = {}
    for i, t in enumerate(outcome.tallies):
        if t.failure is None:
            continue
        try:
            from . import specs

            arrays = case_arrays(specs.get(t.op), t.failure["case"], t.dtype)
        except Exception:  # a spec that cannot rebuild its case has nothing to save
            continue
        if arrays:
            name = f"{t.op}-{t.impl}-{t.dtype}-{t.check}.npz".replace("/", "_")
            np.savez(os.path.join(report_dir, name), **arrays)
            saved[i] = name
    return saved


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _cfg(c: dict[str, Any] | None) -> str:
    if not c:
        return ""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in c.items()).replace("|", "/")


def _counts_line(impl: str, c: dict[str, int]) -> str:
    if impl == "default":  # what has no implementations to choose from
        impl = "modules, optimizers, schedulers, data"
    total = sum(c.values())
    pct = f" ({100 * c['unsupported'] / total:.0f}%)" if total and c["unsupported"] else ""
    return f"{impl}: {c['checked']} configurations checked, {c['unsupported']} unsupported{pct}, {c['failed']} failed"


def markdown(outcome: Outcome, doc: dict[str, Any], saved: dict[int, str] | None = None) -> str:
    saved = saved or {}
    out: list[str] = []
    out.append(f"# Conformance against PyTorch: {outcome.verdict()}\n")
    for impl, c in sorted(outcome.cases.items()):
        out.append(f"- {_counts_line(impl, c)}")
    for p in outcome.partial():
        out.append(f"- **not a full pass**: {p} (NotImplementedError); only the rest were checked")
    bad = [t for t in outcome.tallies if t.failed]
    out.append(f"- {len(outcome.tallies)} checks (op, implementation, dtype, check): {len(bad)} with failures")
    if outcome.mutants:
        caught = sum(m["caught"] for m in outcome.mutants)
        out.append(f"- {caught} of {len(outcome.mutants)} deliberately broken kernels caught")
    v = doc["versions"]
    out.append(
        f"\nprofile `{outcome.profile}`, seed {outcome.seed}, shards {', '.join(outcome.shards)}, "
        f"{outcome.elapsed:.0f} s; refcnn {v['refcnn']}, numpy {v['numpy']}, torch {v['torch']}, python {v['python']}\n"
    )
    for note in outcome.notes:
        out.append(f"- {note}")
    out.append("")

    if outcome.meta_problems:
        out.append("## Things with no conformance check, and crashes of the suite (FAILED)\n")
        out.extend(f"- {p}" for p in outcome.meta_problems)
        out.append("")

    failures = [(i, t) for i, t in enumerate(outcome.tallies) if t.failure is not None]
    if failures:
        out.append("## Failures, each with a repro that runs from any folder\n")
        for i, t in failures:
            assert t.failure is not None
            out.append(f"### {t.op} / {t.impl} / {t.dtype} / {t.check}: {t.failed} of {t.configs} failed\n")
            out.append("```\n" + t.failure["detail"] + "\n```\n")
            if i in saved:
                out.append(f"The case's arrays: `{saved[i]}` in this folder (`numpy.load`).\n")
            out.append(
                "```\n"
                + repro_text("op", t.op, t.impl, t.dtype, t.check, t.failure["case"], t.failure["detail"])
                + "\n```\n"
            )

    short = [t for t in outcome.tallies if t.note]
    if short:
        out.append("## Checks with fewer supported configurations than the profile asks\n")
        out.extend(f"- {t.op} / {t.impl} / {t.dtype} / {t.check}: {t.note}" for t in short)
        out.append("")

    out.append("## Tolerance policy\n\n```\n" + outcome.policy + "\n```\n")

    skipped = [t for t in outcome.tallies if t.skipped]
    if skipped:
        out.append("## Skipped or not applicable (never counted as passed)\n")
        out.extend(f"- {t.op} / {t.impl} / {t.check}: {t.skip_reason}" for t in skipped)
        out.append("")

    out.append("## Results\n")
    out.append(
        "| op | impl | dtype | check | configs | failed | unsupported | worst abs err | worst ratio | worst config | passed |"
    )
    out.append("|---|---|---|---|---:|---:|---:|---:|---:|---|---|")
    for row in doc["results"]:
        out.append(
            f"| {row['op']} | {row['impl']} | {row['dtype']} | {row['check']} | {row['configs']} | {row['failed']} | "
            f"{row['unsupported']} | {_fmt(row['worst_abs_err'])} | {_fmt(row['worst_ratio_to_tolerance'])} | "
            f"{_cfg(row['worst_config'])} | {'yes' if row['passed'] else '**NO**'} |"
        )
    out.append("")

    if outcome.mutants:
        out.append("## Mutants: deliberately broken kernels the suite must catch\n")
        out.append("| mutant | op | what is wrong | caught | checks that caught it |")
        out.append("|---|---|---|---|---|")
        for m in outcome.mutants:
            out.append(
                f"| {m['name']} | {m['op']} | {m['description']} | {'yes' if m['caught'] else '**NO**'} | "
                f"{', '.join(m['checks']) or '-'} |"
            )
        out.append("")

    out.append("## Coverage: values drawn per argument, pairs never drawn\n")
    for spec in sorted(outcome.coverage.values):
        vals = outcome.coverage.values[spec]
        out.append(f"### {spec}\n")
        out.append("| argument | distinct values | values |")
        out.append("|---|---:|---|")
        for k in sorted(vals):
            shown = sorted(vals[k], key=repr)
            text = ", ".join(str(s) for s in shown[:14]) + (" ..." if len(shown) > 14 else "")
            out.append(f"| {k} | {len(shown)} | {text.replace('|', '/')} |")
        prs = outcome.coverage.pairs.get(spec, {})
        domains = outcome.domains.get(spec, {})
        if ("hazard", "path") in prs:
            out.extend(_hazard_table(prs[("hazard", "path")], domains, vals))
        for (a, b), seen in sorted(prs.items()):
            dom_a = domains.get(a) or sorted(vals.get(a, set()), key=repr)
            dom_b = domains.get(b) or sorted(vals.get(b, set()), key=repr)
            never = [(x, y) for x, y in itertools.product(dom_a, dom_b) if (_hashable(x), _hashable(y)) not in seen]
            shown_n = ", ".join(f"({x}, {y})" for x, y in never[:12]) + (" ..." if len(never) > 12 else "")
            out.append(
                f"\n{a} x {b}: {len(seen)} combinations drawn, {len(never)} never drawn"
                + (f": {shown_n}" if never else "")
            )
        out.append("")
    return "\n".join(out) + "\n"


def _hazard_table(seen: set[tuple[Any, Any]], domains: dict[str, list[Any]], vals: dict[str, set[Any]]) -> list[str]:
    """Which hazard value (conformance/hazards.py) met which code path: a path per row, a
    hazard per column, "yes" where a drawn case had both, "**never**" where none did."""
    hazards = domains.get("hazard") or sorted(vals.get("hazard", set()), key=repr)
    paths = list(domains.get("path") or [])  # an invalid configuration's "path" (rejected first) not shown
    if len(hazards) < 2:
        return []
    rows = ["", "hazard met path (cases drawn with both):", "", "| path | " + " | ".join(map(str, hazards)) + " |",
            "|---|" + "---|" * len(hazards)]  # fmt: skip
    for p in paths:
        cells = ["yes" if (h, p) in seen else "**never**" for h in hazards]
        rows.append(f"| {p} | " + " | ".join(cells) + " |")
    return rows


def print_summary(outcome: Outcome, jpath: str, mpath: str) -> None:
    """The console's account: each failure with its repro, then per implementation how many
    configurations were checked, unsupported and failed, then the verdict."""
    bad = [t for t in outcome.tallies if not t.passed and not t.only_skipped]
    unchecked = [t for t in bad if not t.failed]
    shown: set[str] = set()  # one repro per case: several checks often fail on the same one
    for t in bad:
        if not t.failed:
            continue
        print(
            f"FAILED {t.op} {t.impl} {t.dtype} {t.check}: {t.failed} failed, {t.unsupported} unsupported "
            f"of {t.configs} configurations"
        )
        if t.failure is None:
            continue
        text = repro_text("op", t.op, t.impl, t.dtype, t.check, t.failure["case"], t.failure["detail"])
        key = text.split("\n", 1)[1]
        if key in shown:
            print(text.split("\n", 1)[0] + "\n# (the same case as the repro above)")
        else:
            shown.add(key)
            print(text)
        if "\n" in t.failure["detail"]:
            print(t.failure["detail"].split("\n", 1)[1])
    for m in outcome.mutants:
        if not m["caught"]:
            print(f"MUTANT NOT CAUGHT: {m['name']} ({m['op']}): {m['description']}")
    for p in outcome.meta_problems:
        print(f"PROBLEM: {p}")
    for key, rows in itertools.groupby(unchecked, key=lambda t: (t.op, t.impl, t.dtype)):
        print(f"NOT CHECKED {' '.join(key)}: {', '.join(t.check for t in rows)} (no configuration got that far)")
    short = [t for t in outcome.tallies if t.note]
    for key, rows in itertools.groupby(short, key=lambda t: (t.op, t.impl, t.dtype)):
        group = list(rows)
        print(f"few configurations: {' '.join(key)}: {group[0].note} ({', '.join(t.check for t in group)})")
    for impl, c in sorted(outcome.cases.items()):
        print(f"  {_counts_line(impl, c)}")
    worst = max((t.worst_ratio for t in outcome.tallies if t.passed), default=0.0)
    mutants = (
        f", {sum(m['caught'] for m in outcome.mutants)}/{len(outcome.mutants)} mutants caught"
        if outcome.mutants
        else ""
    )
    print(
        f"conformance {outcome.verdict()}: {len(outcome.tallies)} checks, {len(bad)} not passed{mutants}, "
        f"worst passing error {num(round(worst, 3))} x tolerance, {outcome.elapsed:.0f} s; reports: {jpath}, {mpath}"
    )
    for p in outcome.partial():
        print(f"  not a full pass: {p}")


def merge(outcomes: list[Outcome]) -> Outcome:
    """One report from the reports of the shards of one run: counts summed, worst cases kept."""
    from .engine import UserError

    first = outcomes[0]
    for o in outcomes[1:]:
        if (o.profile, o.seed) != (first.profile, first.seed):
            raise UserError(
                f"cannot merge a {o.profile} run with seed {o.seed} into a {first.profile} run with seed {first.seed}"
            )
    rows: dict[tuple[str, str, str, str], Tally] = {}
    for o in outcomes:
        for t in o.tallies:
            key = (t.op, t.impl, t.dtype, t.check)
            if key in rows:
                rows[key].merge(t)
            else:
                rows[key] = Tally(**t.__dict__)
    cov = Coverage()
    cases: dict[str, dict[str, int]] = {}
    for o in outcomes:
        cov.merge(o.coverage)
        add_cases(cases, o.cases)
    shards = sorted({s for o in outcomes for s in o.shards}, key=lambda s: [int(v) for v in s.split("/")])
    problems = [p for o in outcomes for p in o.meta_problems]
    counts = {s.split("/")[1] for s in shards}
    if len(counts) > 1:
        raise UserError(f"the reports come from different shardings: {', '.join(shards)}")
    n = int(counts.pop())
    missing = [f"{k}/{n}" for k in range(1, n + 1) if f"{k}/{n}" not in shards]
    if missing:
        problems.append(f"shards: {', '.join(missing)} missing from the merge, so part of the cases was never checked")
    tallies = sorted(rows.values(), key=lambda t: (t.op, t.impl, t.dtype, t.check))
    return Outcome(
        profile=first.profile, seed=first.seed, policy=first.policy, tallies=tallies, coverage=cov,
        domains=first.domains, mutants=[m for o in outcomes for m in o.mutants], meta_problems=problems,
        notes=sorted({note for o in outcomes for note in o.notes}), elapsed=max(o.elapsed for o in outcomes),
        shards=shards, plugins=first.plugins, cases=cases,
    )  # fmt: skip


def merge_main(argv: list[str]) -> int:
    from .engine import OneLineParser, UserError, needs_torch

    p = OneLineParser(
        prog="python -m refcnn conformance merge",
        description="Join the reports of the shards of one run (--shard K/N) into one report.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="the report folders of the shards")
    p.add_argument("--report-dir", default="conformance-report", metavar="DIR",
                   help="where the merged report is written (default: conformance-report)")  # fmt: skip
    args = p.parse_args(argv)
    needs_torch()
    outcomes = []
    for d in args.dirs:
        path = os.path.join(d, "conformance-detail.json")
        try:
            with open(path) as f:
                outcomes.append(Outcome.from_json(json.load(f)))
        except FileNotFoundError:
            raise UserError(f"{d} holds no shard report ({path} does not exist)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is not a conformance report of this refcnn version: {exc}") from None
    merged = merge(outcomes)
    jpath, mpath = write(merged, args.report_dir)
    print(f"merged {len(outcomes)} reports (shards {', '.join(merged.shards)})", file=sys.stderr)
    print_summary(merged, jpath, mpath)
    return 0 if merged.passed else 1
