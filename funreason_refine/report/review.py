"""What a person's review (overrides.jsonl) says about a run: reviewed counts and measured precision per stage."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from rich.markup import escape
from rich.table import Table

from funreason_refine.overrides import OVERRIDES, read_decisions
from funreason_refine.record import Action, Outcome
from funreason_refine.report.data import RunData


def _decider(line: dict[str, Any]) -> str:
    """Who let the record go: "rules" or the judge model(s), from the discard step of its trail."""
    steps = [
        s for s in line.get("trail") or [] if s.get("verdict") == Action.DISCARD and s.get("stage") == line.get("stage")
    ]
    return str(steps[-1].get("judge", "rules")) if steps else "rules"


def _scores(right: int, wrong: int) -> dict[str, Any]:
    reviewed = right + wrong
    return {
        "reviewed": reviewed,
        "right": right,
        "wrong": wrong,
        "precision": round(right / reviewed, 4) if reviewed else None,
    }


def review_summary(run: RunData) -> dict[str, Any] | None:
    """None when the run was not reviewed. A discard marked right is a true discard: precision =
    right / reviewed, per stage and per decider (rules or judge); a kept record marked wrong is a
    wrong keep."""
    read = read_decisions(run.path)
    if not read.latest and not read.bad:
        return None
    warnings = read.check()  # a line that is not a decision stops the report, as it stops export
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    let_go: Counter[tuple[str, str]] = Counter()  # discarded records per (stage, decider), reviewed or not
    kept = [0, 0]
    current = 0
    for kind in (Outcome.DISCARDED, Outcome.KEPT):
        if not (run.path / f"{kind}.jsonl").exists():
            continue
        for line in run.lines(kind):
            where = (line.get("stage") or "?", _decider(line)) if kind == Outcome.DISCARDED else None
            if where is not None:
                let_go[where] += 1
            d = read.on(line, kind)
            if d is None:
                continue
            current += 1
            tally = kept if where is None else counts[where]
            tally[d.decision == "wrong"] += 1
    discarded = run.summary.stages
    stages = []
    for stage in dict.fromkeys([*discarded, *(s for s, _ in counts)]):
        by = [
            {"decider": who, "records": let_go[s, who], **_scores(*counts[s, who])} for s, who in counts if s == stage
        ]
        if not by:
            continue
        total = [sum(counts[stage, b["decider"]][i] for b in by) for i in (0, 1)]
        records = sum(discarded[stage].records_discarded.values()) if stage in discarded else 0
        stages.append({"stage": stage, "discarded": records, **_scores(*total), "by": by})
    kept_total = run.summary.outcomes.get("kept", 0)
    return {
        "decisions": len(read.latest),
        "stale": len(read.latest) - current,
        "bad_lines": read.bad_lines,
        "warnings": warnings,
        "stages": stages,
        "kept": {"kept": kept_total, **_scores(*kept)},
    }


def review_tables(report: dict[str, Any]) -> list[Table]:
    """The terminal view of the review section of `refine report` (none when the run was not reviewed)."""
    review = report.get("review")
    if not review:
        return []
    table = Table(title=f"Reviewed by a person ({OVERRIDES})", show_edge=False)
    for col in ("verdict", "decided by", "records", "reviewed", "right", "wrong", "precision"):
        table.add_column(col, justify="left" if col in ("verdict", "decided by") else "right")
    for s in review["stages"]:
        for b in s["by"]:
            table.add_row(
                escape(f"discarded at {s['stage']}"),
                escape(b["decider"]),
                str(b["records"]),
                str(b["reviewed"]),
                str(b["right"]),
                str(b["wrong"]),
                f"{b['precision']:.1%}" if b["precision"] is not None else "-",
            )
    k = review["kept"]
    if k["reviewed"]:
        share = f"{k['precision']:.1%}" if k["precision"] is not None else "-"
        table.add_row("kept", "", str(k["kept"]), str(k["reviewed"]), str(k["right"]), str(k["wrong"]), share)
    if review["stale"]:
        table.caption = f"{review['stale']} decision(s) on verdicts the run no longer has are not counted"
    return [table]
