"""The conversations of a run: turns per conversation, verdicts per turn, where they were cut or let go, tool errors.

Read from the outcome lines, so that it works on every run folder; None for a run without
conversations, whose report stays as it was.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
from rich.markup import escape
from rich.table import Table

from funreason_refine.jsonl import read_lines
from funreason_refine.record import Outcome
from funreason_refine.report.data import RunData, clean
from funreason_refine.report.turns import failure, is_error_result, tool_names, tool_of

TURN_COLUMNS = 10  # turn positions 0-8 have a column each, later turns share the last ("9+")
TURN_ROWS = 10  # conversations of 1-9 assistant turns have a row each, longer ones share "10+"
VERDICTS = ("passed", "regenerated", "discarded", "truncated")
_VERDICT = {"pass": "passed", "regenerate": "regenerated", "discard": "discarded", "truncate": "truncated"}
# Every conversation line holds its messages' "role" keys; a line without one is a single-turn record
# and is skipped unparsed: a 60,000-record single-turn run folder (266 MiB) is read in a third of the time.
_HAS_ROLE = re.compile(rb'"role"\s*:')


def _steps(trail: list[dict[str, Any]], kept: bool) -> Iterator[tuple[Any, Any, Any]]:
    """(stage, turn, verdict) of each step; a discard that the conversation went on after (kept, or a later step)
    is the cut of on_fail = "truncate", counted as such (as tally.py counts it)."""
    last = len(trail) - 1
    for i, step in enumerate(trail):
        verdict = step.get("verdict")
        if verdict == "discard" and (kept or i < last):
            verdict = "truncate"
        yield step.get("stage"), step.get("turn"), verdict


def _bucket(value: int, size: int, first: int = 0) -> str:
    return str(value) if value < first + size - 1 else f"{first + size - 1}+"


def _parse(raw: bytes) -> Any:
    """orjson, three times as fast; the standard library for a lone surrogate (a legal JSON escape
    the run folder keeps, which orjson refuses)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _conversation_lines(run: RunData) -> Iterator[tuple[str, dict[str, Any]]]:
    """(outcome, line) of every conversation in the kept, discarded, hard-pool and errors files."""
    for kind in (Outcome.KEPT, Outcome.DISCARDED, Outcome.HARD, Outcome.ERRORS):
        path = run.path / f"{kind}.jsonl"
        if not path.exists():
            continue
        for _, raw in read_lines(path):
            if _HAS_ROLE.search(raw) is None:
                continue
            line = _parse(raw)
            if line.get("messages"):
                yield kind, line


class _Counts:
    """What the section counts, one conversation line at a time."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.turns: dict[str, Counter[str]] = defaultdict(Counter)
        self.steps: Counter[tuple[Any, Any, Any]] = Counter()  # (stage, turn, verdict), folded by verdicts()
        self.left: Counter[tuple[str, str, str, int]] = Counter()
        self.results: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.with_errors = 0

    def add(self, kind: str, line: dict[str, Any]) -> None:
        outcome = Outcome.DISCARDED if kind == Outcome.HARD else kind  # the hard pool is let go as a discard is
        failed = failure(line, kind)
        self.outcomes[outcome] += 1
        turns = sum(m.get("role") == "assistant" for m in line["messages"])
        self.turns[_bucket(turns, TURN_ROWS, first=1)][outcome] += 1
        self.steps.update(_steps(line.get("trail") or [], outcome == Outcome.KEPT))
        if failed is not None:
            where = "truncated" if failed.get("truncated") else outcome
            self.outcomes["truncated"] += where == "truncated"
            reason = clean(str(failed["reason"] or "-"))
            self.left[where, clean(str(failed["stage"])), reason, failed["turn"]] += 1
        if kind == Outcome.KEPT:
            self._tool_results(line["messages"])

    def verdicts(self) -> dict[str, dict[str, Counter[str]]]:
        """stage -> turn column -> verdict -> count, of the steps on conversation turns."""
        out: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        for (stage, turn, verdict), n in self.steps.items():
            if isinstance(turn, int) and verdict in _VERDICT:
                out[clean(str(stage))][_bucket(turn, TURN_COLUMNS)][_VERDICT[verdict]] += n
        return out

    def _tool_results(self, messages: list[dict[str, Any]]) -> None:
        names = tool_names(messages)
        errors = 0
        for m in messages:
            if m.get("role") != "tool":
                continue
            tool = clean(tool_of(m, names))
            self.results[tool] += 1
            if is_error_result(m.get("content")):
                errors += 1
                self.errors[tool] += 1
                self.examples.setdefault(tool, clean(str(m.get("content")))[:200])
        self.with_errors += errors > 0


def conversation_report(run: RunData) -> dict[str, Any] | None:
    """The conversations section of the report; None when the run has no conversation."""
    counts = _Counts()
    for kind, line in _conversation_lines(run):
        counts.add(kind, line)
    if not counts.outcomes:
        return None
    verdicts = counts.verdicts()
    order = list(run.summary.stages)
    stages = sorted(verdicts, key=lambda s: (order.index(s) if s in order else len(order), s))
    highest = max((int(c.rstrip("+")) for s in verdicts.values() for c in s), default=0)
    columns = [_bucket(t, TURN_COLUMNS) for t in range(min(highest, TURN_COLUMNS - 1) + 1)]
    return {
        "conversations": sum(counts.outcomes[k] for k in ("kept", "discarded", "errors")),
        "outcomes": {k: counts.outcomes[k] for k in ("kept", "truncated", "discarded", "errors")},
        "turns": [
            {"turns": t, **{k: counts.turns[t][k] for k in ("kept", "discarded", "errors")}}
            for t in sorted(counts.turns, key=lambda t: int(t.rstrip("+")))
        ],
        "turn_columns": columns,
        "verdicts": [
            {"stage": s, "turns": {c: {v: verdicts[s][c][v] for v in VERDICTS} for c in columns}} for s in stages
        ],
        "left": [
            {"outcome": o, "stage": s, "reason": r, "turn": t, "conversations": n}
            for (o, s, r, t), n in sorted(counts.left.items(), key=_left_order)
        ],
        "tool_results": {
            "results": sum(counts.results.values()),
            "errors": sum(counts.errors.values()),
            "conversations_with_errors": counts.with_errors,
            "per_tool": [
                {"tool": t, "results": n, "errors": counts.errors[t], "example": counts.examples.get(t)}
                for t, n in sorted(
                    counts.results.items(), key=lambda item: (-counts.errors[item[0]], -item[1], item[0])
                )
            ],
        },
    }


def _left_order(item: tuple[tuple[str, str, str, int], int]) -> tuple[Any, ...]:
    """Truncated, then discarded, then errors; most frequent first."""
    (outcome, stage, reason, turn), n = item
    return (("truncated", "discarded", "errors").index(outcome), -n, stage, reason, turn if turn is not None else -1)


def conversation_tables(report: dict[str, Any]) -> list[Table]:
    """The terminal view of the conversations section of `refine report` (none without conversations)."""
    section = report.get("conversations")
    if not section:
        return []
    o = section["outcomes"]
    turns = Table(
        title=f"Conversations: {section['conversations']} ({o['kept']} kept, {o['truncated']} of them truncated, "
        f"{o['discarded']} discarded, {o['errors']} errors)",
        caption="assistant turns per conversation; a truncated one counts the turns it kept",
        show_edge=False,
    )
    for col in ("assistant turns", "kept", "discarded", "errors"):
        turns.add_column(col, justify="right")
    for row in section["turns"]:
        turns.add_row(row["turns"], str(row["kept"]), str(row["discarded"]), str(row["errors"]))
    per_turn = Table(
        title="Verdicts per turn (passed / regenerated / discarded / truncated)",
        caption="a turn re-checked after a repair counts again",
        show_edge=False,
    )
    per_turn.add_column("stage")
    for c in section["turn_columns"]:
        per_turn.add_column(f"turn {c}", justify="right")
    for row in section["verdicts"]:
        per_turn.add_row(escape(row["stage"]), *(verdict_cell(row["turns"][c]) for c in section["turn_columns"]))
    return [turns, per_turn, *_left_table(section), *_tool_table(section)]


def verdict_cell(counts: dict[str, int]) -> str:
    return " / ".join(str(counts[v]) for v in VERDICTS) if any(counts.values()) else "-"


def _left_table(section: dict[str, Any]) -> list[Table]:
    if not section["left"]:
        return []
    table = Table(title="Where conversations were truncated or let go", show_edge=False)
    for col in ("outcome", "stage", "reason", "turn", "conversations"):
        table.add_column(col, justify="right" if col in ("turn", "conversations") else "left")
    for row in section["left"]:
        table.add_row(
            escape(row["outcome"]),
            escape(row["stage"]),
            escape(row["reason"]),
            str(row["turn"]),
            str(row["conversations"]),
        )
    return [table]


def _tool_table(section: dict[str, Any]) -> list[Table]:
    results = section["tool_results"]
    if not results["results"]:
        return []
    table = Table(
        title=f"Tool results in kept conversations: {results['errors']} of {results['results']} are error messages "
        f"(in {results['conversations_with_errors']} conversation(s)), kept as they are",
        show_edge=False,
    )
    for col in ("tool", "results", "error results", "example error"):
        table.add_column(col, justify="right" if col in ("results", "error results") else "left", overflow="fold")
    for row in results["per_tool"]:
        table.add_row(escape(row["tool"]), str(row["results"]), str(row["errors"]), escape((row["example"] or "")[:80]))
    return [table]
