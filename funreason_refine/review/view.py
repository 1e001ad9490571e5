"""What the review page shows of one record: the one place that turns a run-folder line into it.

A multi-turn record will grow here; the page renders whatever this returns as text.
"""

from __future__ import annotations

import json
from typing import Any

from funreason_refine.calls import render_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.record import FunctionCall
from funreason_refine.report.data import clean

COT_REWRITTEN = "(CoT rewritten)"  # how refine marks a regenerate step that replaced the CoT, not the answer


def answer_text(answer: Any) -> str:
    """Calls in the paper's syntax (JSON when they cannot be written so), a text answer as it is."""
    if isinstance(answer, str):
        return answer
    if answer is None:
        return ""
    try:
        return render_calls([FunctionCall(**c) for c in answer])
    except (CallSyntaxError, TypeError, ValueError):
        return json.dumps(answer, ensure_ascii=False)


def _regenerations(line: dict[str, Any]) -> list[dict[str, Any]]:
    """Each regeneration: what it rejected beside what replaced it (the next rejected one, or the final)."""
    steps = [s for s in line.get("trail") or [] if s.get("verdict") == "regenerate" and s.get("before") is not None]
    finals = {"cot": line.get("cot") or "", "answer": answer_text(line.get("answer"))}
    out: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        field = "cot" if str(step.get("message", "")).endswith(COT_REWRITTEN) else "answer"
        later = [s for s in steps[i + 1 :] if str(s.get("message", "")).endswith(COT_REWRITTEN) == (field == "cot")]
        out.append(
            {
                "stage": step.get("stage"),
                "reason": step.get("reason"),
                "message": step.get("message", ""),
                "field": field,
                "rejected": step["before"],
                "regenerated": later[0]["before"] if later else finals[field],
            }
        )
    return out


def record_view(line: dict[str, Any], kind: str) -> dict[str, Any]:
    """One outcome line (kept.jsonl or discarded.jsonl) as the page shows it: plain strings only."""
    source = line.get("source") or {}
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
            {k: s.get(k) for k in ("stage", "verdict", "reason", "message", "judge", "attempt")}
            for s in line.get("trail") or []
        ],
        "regenerations": _regenerations(line),
    }
    return clean_deep(view)


def clean_deep(value: Any) -> Any:
    """Lone surrogates (legal JSON escapes, not Unicode) shown as their escape, so the page's JSON encodes."""
    if isinstance(value, dict):
        return {k: clean_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_deep(v) for v in value]
    return clean(value)
