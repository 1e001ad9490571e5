"""What the review page shows of one record: the one place that turns a run-folder line into it.

A conversation also comes message by message (``conversation``), its failing turn marked; the page
renders whatever this returns as text.
"""

from __future__ import annotations

import json
from typing import Any

from funreason_refine.record import Action
from funreason_refine.report.data import clean
from funreason_refine.report.turns import answer_text, failure, is_conversation, message_rows

COT_REWRITTEN = "(CoT rewritten)"  # how refine marks a regenerate step that replaced the CoT, not the answer
NOT_KEPT = "(not kept: the conversation was cut before this turn)"


def _finals(line: dict[str, Any]) -> dict[int | None, dict[str, str]]:
    """The CoT and answer each turn ended with (``None``: a single-turn record's own)."""
    finals: dict[int | None, dict[str, str]] = {
        None: {"cot": line.get("cot") or "", "answer": answer_text(line.get("answer"))}
    }
    turns = [m for m in line.get("messages") or [] if m.get("role") == "assistant"]
    for turn, m in enumerate(turns):
        finals[turn] = {"cot": m.get("cot") or "", "answer": answer_text(m.get("answer"))}
    return finals


def _regenerations(line: dict[str, Any]) -> list[dict[str, Any]]:
    """Each regeneration: what it rejected beside what replaced it (the next rejected one of the same
    turn, or what the turn ended with)."""
    steps = [
        s for s in line.get("trail") or [] if s.get("verdict") == Action.REGENERATE and s.get("before") is not None
    ]
    finals = _finals(line)
    out: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        field = "cot" if str(step.get("message", "")).endswith(COT_REWRITTEN) else "answer"
        later = [
            s
            for s in steps[i + 1 :]
            if str(s.get("message", "")).endswith(COT_REWRITTEN) == (field == "cot")
            and s.get("turn") == step.get("turn")
        ]
        final = finals.get(step.get("turn"), {}).get(field, NOT_KEPT)
        out.append(
            {
                "stage": step.get("stage"),
                "reason": step.get("reason"),
                "message": step.get("message", ""),
                "turn": step.get("turn"),
                "field": field,
                "rejected": step["before"],
                "regenerated": later[0]["before"] if later else final,
            }
        )
    return out


def record_view(line: dict[str, Any], kind: str) -> dict[str, Any]:
    """One outcome line (kept.jsonl or discarded.jsonl) as the page shows it: plain strings only.
    ``conversation`` (None for a single-turn record) and ``failed`` (where a conversation failed:
    the turn, stage, reason, message, and ``truncated`` when it was kept up to the turn before)."""
    source = line.get("source") or {}
    conversation = is_conversation(line)
    view = {
        "index": line.get("index"),
        "id": str(line.get("id", "")),
        "kind": kind,
        "stage": line.get("stage"),
        "reason": line.get("reason"),
        "message": line.get("message") or "",
        "source": f"{source.get('file', '?')}:{source.get('line', '?')}",
        "query": line.get("query", ""),
        "tools": json.dumps(line.get("tools") or [], indent=2, ensure_ascii=False),
        "answer": answer_text(line.get("answer")),
        "answer_missing": line.get("answer") is None,
        "cot": line.get("cot"),
        "trail": [
            {k: s.get(k) for k in ("stage", "verdict", "reason", "message", "judge", "attempt", "turn")}
            for s in line.get("trail") or []
        ],
        "regenerations": _regenerations(line),
        "conversation": message_rows(line, kind) if conversation else None,
        "failed": failure(line, kind) if conversation else None,
    }
    return clean_deep(view)


def clean_deep(value: Any) -> Any:
    """Lone surrogates (legal JSON escapes, not Unicode) shown as their escape, so the page's JSON encodes."""
    if isinstance(value, dict):
        return {k: clean_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_deep(v) for v in value]
    return clean(value)
