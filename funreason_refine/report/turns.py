"""A conversation's outcome line read back: its messages by turn, tool results that are errors, where it failed."""

from __future__ import annotations

import json
import re
from typing import Any

from funreason_refine.calls import render_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.record import Action, FunctionCall, Outcome
from funreason_refine.report.data import clean

# A text result is an error message when its first word is Error or Exception (any case), when it
# starts a Python traceback, or with an exception's name ("ValueError: ...", "requests.HTTPError 500").
# Hand-written: no library classifies tool output; the rule is documented in docs/trust.md.
_ERROR_TEXT = re.compile(
    r"\s*(?:(?i:error|exception)\b|(?i:traceback \(most recent call last\))|[A-Za-z_][\w.]*(?:Error|Exception)\b)"
)
_ERROR_KEYS = ("error", "errors", "exception")


def is_error_result(content: str | None) -> bool:
    """Whether a tool result is an error message: a JSON object with a non-empty top-level ``error``,
    ``errors`` or ``exception`` key (any case) or ``"status": "error"``, or a text (also a JSON
    string) that starts as an error message does (see ``_ERROR_TEXT``)."""
    if not content or not content.strip():
        return False
    if content.lstrip()[:1] not in ("{", '"'):
        return bool(_ERROR_TEXT.match(content))
    try:
        value = json.loads(content)
    except ValueError:
        return bool(_ERROR_TEXT.match(content))
    if isinstance(value, str):
        return bool(_ERROR_TEXT.match(value))
    if not isinstance(value, dict):
        return False
    keys = {str(k).lower(): v for k, v in value.items()}
    # an empty or false value (``"error": null``, ``"errors": []``) says there was none
    return any(keys.get(k) not in (None, False, "", [], {}) for k in _ERROR_KEYS) or (
        str(keys.get("status", "")).lower() == "error"
    )


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


def is_conversation(line: dict[str, Any]) -> bool:
    return bool(line.get("messages"))


def failure(line: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """Where a conversation failed: the turn, stage, reason and message of the discard that ended it
    (``truncated``: it was kept up to the turn before); None for a conversation kept whole."""
    if kind == Outcome.KEPT:
        cuts = [s for s in line.get("trail") or [] if s.get("verdict") == Action.DISCARD and s.get("turn") is not None]
        if not cuts:
            return None
        step = cuts[-1]
        return {
            "turn": step["turn"],
            "stage": step.get("stage"),
            "reason": step.get("reason"),
            "message": step.get("message") or "",
            "truncated": True,
        }
    reason = line.get("reason") if kind != Outcome.ERRORS else None
    message = line.get("message") if kind != Outcome.ERRORS else line.get("error")
    return {"turn": line.get("turn"), "stage": line.get("stage"), "reason": reason, "message": message or ""}


def tool_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Call id -> the function it called, over every assistant turn."""
    names: dict[str, str] = {}
    for m in messages:
        answer = m.get("answer")
        calls = answer if m.get("role") == "assistant" and isinstance(answer, list) else []
        for call_id, call in zip(m.get("call_ids") or [], calls, strict=False):
            if isinstance(call, dict):
                names[call_id] = str(call.get("name", ""))
    return names


def tool_of(message: dict[str, Any], names: dict[str, str]) -> str:
    """The tool a result comes from: its own name, else the call it answers, else "(unknown tool)"."""
    return str(message.get("name") or names.get(message.get("call_id") or "") or "(unknown tool)")


def message_rows(line: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Each message of a conversation line as plain values: ``role``, ``turn`` (assistant turns),
    ``text`` (a user's text, an assistant's calls or text, a tool's result), ``cot``, ``tool`` and
    ``call_id`` (results), ``error`` (a result that is an error message), ``failed`` (the turn the
    conversation failed at). A truncated conversation ends with a row for the turn it lost (role
    ``cut``), which the line no longer holds."""
    messages = line.get("messages") or []
    names = tool_names(messages)
    failed = failure(line, kind)
    rows: list[dict[str, Any]] = []
    turn = -1
    for m in messages:
        role = m.get("role")
        row: dict[str, Any] = {"role": role, "turn": None, "text": clean(m.get("content") or ""), "failed": False}
        if role == "assistant":
            turn += 1
            missing = m.get("answer") is None
            text = "(the answer could not be read)" if missing else answer_text(m.get("answer"))
            row.update(turn=turn, text=clean(text), cot=clean(m.get("cot")), call_ids=m.get("call_ids") or [])
            row["failed"] = failed is not None and not failed.get("truncated") and failed["turn"] == turn
        elif role == "tool":
            row.update(tool=clean(tool_of(m, names)), call_id=m.get("call_id"), error=is_error_result(m.get("content")))
        rows.append(row)
    if failed is not None and failed.get("truncated"):
        rows.append({"role": "cut", "turn": failed["turn"], "text": "", "failed": True})
    return rows
