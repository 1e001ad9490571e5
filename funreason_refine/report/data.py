"""Read a run folder into polars frames: one row per record, one row per verdict of its trail."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funreason_refine.jsonl import escaped_surrogates
from funreason_refine.record import Outcome
from funreason_refine.run_folder import FILES
from funreason_refine.run_state import FolderState, outcome_lines, readable_state
from funreason_refine.summary import Summary

QUERY_CHARS = 300  # of each record's query, kept for the report's examples
# Characters a screen acts on instead of showing: control characters but tab and line feed (by them a terminal
# clears, recolours, hides, links or writes over a line) and Unicode's bidirectional embeddings, overrides and
# isolates (they reorder the text around them: an argument "ab" would read "ba"). The plain direction marks
# (U+200E, U+200F, U+061C) reorder nothing but neutral characters and are common in Hebrew and Arabic text: shown
# as they are.
_UNSEEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass
class RunData:
    """A run folder read back. The frames are built on first use (audit needs none of them)."""

    path: Path
    _summary: Summary | None = None  # None for a run that is not finished (allow_partial)
    _frames: tuple[Any, Any, Any] | None = None
    state: FolderState | None = None  # the folder's state when it is not a finished run (allow_partial)

    @property
    def summary(self) -> Summary:
        """summary.json; only a finished run has one (PartialRun otherwise)."""
        if self._summary is None:
            assert self.state is not None
            raise self.state.refusal("summarise")
        return self._summary

    @property
    def records(self) -> Any:
        """polars.DataFrame, one row per record: index, id, kind, stage, reason, message, sizes, functions, query."""
        return self._load()[0]

    @property
    def steps(self) -> Any:
        """polars.DataFrame, one row per verdict of every trail."""
        return self._load()[1]

    @property
    def answers(self) -> Any:
        """polars.DataFrame, one row per answer of a kept record (a single-turn record's, each assistant turn
        of a conversation): index, n_calls, text_answer, cot_chars, answer_chars, functions."""
        return self._load()[2]

    def _load(self) -> tuple[Any, Any, Any]:
        if self._frames is None:
            self._frames = _frames(self.path)
        return self._frames

    def lines(self, kind: str) -> Iterator[dict[str, Any]]:
        """The records of one outcome file, parsed, in input order."""
        file = self.path / FILES[Outcome(kind)]
        if file.exists() or self.state is None:
            yield from outcome_lines(file, partial=self.state is not None)


def clean(text: Any) -> Any:
    """Text as polars and terminals can hold it: lone surrogates (legal JSON escapes, not valid
    Unicode) are shown as their escape, \\ud800, instead of failing."""
    return escaped_surrogates(text) if isinstance(text, str) else text


def shown(value: Any) -> Any:
    """Record text (strings, also in lists and dicts) as a person should see it on a terminal or a page: each
    character a screen acts on instead of showing written as its escape (\\x1b, \\u202e). A dict's keys too: a
    parameter's or an argument's name is record text."""
    if isinstance(value, str):
        return _UNSEEN.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), value)
    if isinstance(value, dict):
        return {shown(k): shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


def line_answer_text(record: dict[str, Any]) -> str:
    """The answer part of an outcome line: the calls of its target, else its answer, as text."""
    target = record.get("target")
    if isinstance(target, str):
        return target.split("</think>\n\n", 1)[-1]
    answer = record.get("answer")
    return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)


def load_run(path: Path, doing: str = "read", allow_partial: bool = False, offer_partial: bool = False) -> RunData:
    """The run folder ``path``, read to ``doing`` it (report, audit...): RefineError when it is not a finished
    run's folder (run_state.readable_state says why), unless ``allow_partial`` (then without summary.json)."""
    path = Path(path)
    state = readable_state(path, doing, allow_partial, offer_partial)
    if not state.complete:
        return RunData(path=path, state=state)
    return RunData(path=path, _summary=Summary.read(path))


_ANSWER_COLUMNS = ("index", "n_calls", "text_answer", "cot_chars", "answer_chars", "functions")


def _add_answer(columns: dict[str, list[Any]], index: int, answer_of: dict[str, Any]) -> None:
    """One answer's row: a single-turn record's own (its line), or a conversation's assistant turn (its message)."""
    answer = answer_of.get("answer")
    calls = answer if isinstance(answer, list) else []
    columns["index"].append(index)
    columns["n_calls"].append(len(calls))
    columns["text_answer"].append(isinstance(answer, str))
    columns["cot_chars"].append(len(answer_of.get("cot") or ""))
    columns["answer_chars"].append(len(line_answer_text(answer_of)))
    columns["functions"].append([clean(c.get("name", "")) for c in calls if isinstance(c, dict)])


def _frames(path: Path) -> tuple[Any, Any, Any]:
    import polars as pl

    rec: dict[str, list[Any]] = {
        k: []
        for k in (
            "index",
            "id",
            "kind",
            "stage",
            "reason",
            "message",
            "n_calls",
            "n_tools",
            "text_answer",
            "cot_chars",
            "answer_chars",
            "functions",
            "query",
        )
    }
    steps: dict[str, list[Any]] = {k: [] for k in ("index", "kind", "stage", "verdict", "reason", "judge", "attempt")}
    answers: dict[str, list[Any]] = {k: [] for k in _ANSWER_COLUMNS}
    for kind, name in FILES.items():
        file = path / name
        if not file.exists():
            continue
        for r in outcome_lines(file):
            answer = r.get("answer")
            calls = answer if isinstance(answer, list) else []
            rec["index"].append(r["index"])
            rec["id"].append(clean(str(r.get("id", ""))))
            rec["kind"].append(kind)
            rec["stage"].append(clean(r.get("stage")))
            rec["reason"].append(clean(r.get("reason")))
            rec["message"].append(clean(r.get("message") or r.get("error")))
            rec["n_calls"].append(len(calls))
            rec["n_tools"].append(len(r.get("tools") or []))
            rec["text_answer"].append(isinstance(answer, str))
            rec["cot_chars"].append(len(r.get("cot") or ""))
            rec["answer_chars"].append(len(line_answer_text(r)) if kind != Outcome.QUARANTINED else 0)
            rec["functions"].append([clean(c.get("name", "")) for c in calls if isinstance(c, dict)])
            query = r.get("query")
            rec["query"].append(clean(query[:QUERY_CHARS]) if isinstance(query, str) else "")
            if kind == Outcome.KEPT:
                turns = [m for m in r.get("messages") or [] if m.get("role") == "assistant"]
                for answer_of in turns or [r]:
                    _add_answer(answers, r["index"], answer_of)
            for s in r.get("trail") or []:
                steps["index"].append(r["index"])
                steps["kind"].append(kind)
                steps["stage"].append(clean(s.get("stage")))
                steps["verdict"].append(s.get("verdict"))
                steps["reason"].append(clean(s.get("reason")))
                steps["judge"].append(clean(s.get("judge", "rules")))
                steps["attempt"].append(s.get("attempt", 1))
    # Every column typed: a run that finished no record (max_cost at its first calls) has empty ones.
    strings = {name: pl.String for name in ("id", "kind", "stage", "reason", "message", "query")}
    counts = {name: pl.Int64 for name in ("index", "n_calls", "n_tools", "cot_chars", "answer_chars")}
    records = pl.DataFrame(
        rec,
        schema_overrides={**strings, **counts, "text_answer": pl.Boolean, "functions": pl.List(pl.String)},
    )
    step_frame = pl.DataFrame(
        steps,
        schema_overrides={
            **{n: pl.String for n in ("kind", "stage", "verdict", "reason", "judge")},
            "index": pl.Int64,
            "attempt": pl.Int64,
        },
    )
    answer_frame = pl.DataFrame(
        answers,
        schema_overrides={
            **{n: pl.Int64 for n in ("index", "n_calls", "cot_chars", "answer_chars")},
            "text_answer": pl.Boolean,
            "functions": pl.List(pl.String),
        },
    )
    return records.sort("index"), step_frame, answer_frame.sort("index", maintain_order=True)
