"""The two reports: DIR/conformance.json (the DESIGN §4 keys, exactly) and DIR/conformance.md
(the same for people, plus repros, coverage, mutants and the meta-check)."""

from __future__ import annotations

import itertools
import json
import os
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .core import Tally, repro_text


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


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(u) for u in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(u)) for k, u in v.items()))
    return v


@dataclass
class Outcome:
    """Everything one run produced."""

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

    @property
    def passed(self) -> bool:
        mutants_ok = all(m["caught"] for m in self.mutants)
        return all(t.passed or t.skipped == t.configs for t in self.tallies) and mutants_ok and not self.meta_problems


def _row_passed(t: Tally) -> bool:
    return t.passed


def write(outcome: Outcome, report_dir: str) -> tuple[str, str]:
    os.makedirs(report_dir, exist_ok=True)
    results = []
    for t in outcome.tallies:
        row = t.row()
        if t.skipped and t.skipped == t.configs:
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
    mpath = os.path.join(report_dir, "conformance.md")
    with open(mpath, "w") as f:
        f.write(markdown(outcome, doc))
    return jpath, mpath


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


def markdown(outcome: Outcome, doc: dict[str, Any]) -> str:
    out: list[str] = []
    status = "PASSED" if outcome.passed else "FAILED"
    out.append(f"# refcnn conformance report: {status}\n")
    v = doc["versions"]
    out.append(
        f"profile `{outcome.profile}`, seed {outcome.seed}, {outcome.elapsed:.0f} s; refcnn {v['refcnn']}, "
        f"numpy {v['numpy']}, torch {v['torch']}, python {v['python']}\n"
    )
    n_rows = len(outcome.tallies)
    n_fail = sum(1 for t in outcome.tallies if t.failed)
    n_uns = sum(1 for t in outcome.tallies if t.unsupported)
    n_skip = sum(1 for t in outcome.tallies if t.skipped)
    out.append(f"{n_rows} rows: {n_fail} with failures, {n_uns} with unsupported configs, {n_skip} skipped.\n")
    for note in outcome.notes:
        out.append(f"- {note}")
    out.append("\n## Tolerance policy\n\n```\n" + outcome.policy + "\n```\n")

    if outcome.meta_problems:
        out.append("## Meta-check: things with no conformance spec (FAILED)\n")
        out.extend(f"- {p}" for p in outcome.meta_problems)
        out.append("")

    failures = [t for t in outcome.tallies if t.failure is not None]
    if failures:
        out.append("## Failures, each with a standalone repro\n")
        for t in failures:
            assert t.failure is not None
            kind = "op"
            out.append(f"### {t.op} / {t.impl} / {t.dtype} / {t.check}: {t.failed} of {t.configs} failed\n")
            out.append(
                "```\n"
                + repro_text(kind, t.op, t.impl, t.dtype, t.check, t.failure["case"], t.failure["detail"])
                + "\n```\n"
            )

    skipped = [t for t in outcome.tallies if t.skipped]
    if skipped:
        out.append("## Skipped (never counted as passed)\n")
        out.extend(f"- {t.op} / {t.check}: {t.skip_reason}" for t in skipped)
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
