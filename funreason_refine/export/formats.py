"""One kept record (a run-folder line) in a training format: funreason, hermes, sharegpt, openai.

A single-turn record is written as its one user message and one answer; a conversation as every
message, each assistant turn as its target and tool results as tool (or observation) messages.
Every format reads back through `refine run` to the same calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from funreason_refine.errors import RefineError
from funreason_refine.export.messages import (
    Line,
    assistant_content,
    calls,
    chat,
    content,
    in_call_order,
    named,
    target,
    think,
)
from funreason_refine.export.sharegpt import sharegpt
from funreason_refine.targets import HERMES_SYSTEM, funreason_messages, hermes_calls

__all__ = ["FORMATS", "WRITERS", "Line", "chat", "to_row"]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _system(record: Line, prompt: str) -> str:
    own = record.get("system")
    return f"{own}\n\n{prompt}" if own else prompt


def _plain(message: Line, assistant: Callable[[Line], str]) -> Line:
    if message["role"] == "assistant":
        return named({"role": "assistant", "content": assistant(message)}, message)
    return named({"role": message["role"], "content": content(message)}, message)


def funreason(record: Line, tools_json: str) -> Line:
    turns = [_plain(m, target) for m in in_call_order(chat(record))]
    return {"messages": funreason_messages(record.get("tools", []), turns, record.get("system"))}


def _hermes_turn(message: Line) -> str:
    found = calls(message)
    if found is None:
        return think(message) + message["answer"]
    beside = message.get("content")
    return think(message) + (f"{beside}\n" if beside else "") + hermes_calls(found)


def hermes(record: Line, tools_json: str) -> Line:
    system = {"role": "system", "content": _system(record, HERMES_SYSTEM.replace("{tools}", tools_json))}
    return {"tools": tools_json, "messages": [system, *(_plain(m, _hermes_turn) for m in in_call_order(chat(record)))]}


def openai(record: Line, tools_json: str) -> Line:
    system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    messages = [*system, *(_openai_message(m) for m in chat(record))]
    return {"messages": messages, "tools": [_openai_tool(t) for t in record.get("tools", [])]}


def _openai_tool(tool: Line) -> Line:
    """A function as OpenAI wraps it; a tool that is no function (it has no name: a provider's
    built-in such as ``{"type": "web_search_preview"}``, kept as given with a problem) as it was."""
    return {"type": "function", "function": tool} if isinstance(tool.get("name"), str) else tool


def _openai_message(message: Line) -> Line:
    if message["role"] == "tool":
        result = {"role": "tool", "tool_call_id": message.get("call_id"), "content": content(message)}
        return named(result, message)
    if message["role"] != "assistant":
        return named({"role": message["role"], "content": content(message)}, message)
    found = calls(message)
    if message.get("refusal") is not None and message["answer"] == message["refusal"]:
        row: Line = {"role": "assistant", "content": think(message).strip() or None, "refusal": message["refusal"]}
    elif found is None:
        row = {"role": "assistant", "content": assistant_content(message, message["answer"])}
    else:
        ids = message.get("call_ids") or [f"call_{i}" for i in range(len(found))]
        tool_calls = [
            {"id": i, "type": "function", "function": {"name": c.name, "arguments": _json(c.arguments)}}
            for i, c in zip(ids, found, strict=True)
        ]
        beside = assistant_content(message, message.get("content") or "")
        row = {"role": "assistant", "content": beside.strip() or None if isinstance(beside, str) else beside}
        row["tool_calls"] = tool_calls
    return named(row, message)


WRITERS: dict[str, Callable[[Line, str], Line]] = {
    "funreason": funreason,
    "hermes": hermes,
    "sharegpt": sharegpt,
    "openai": openai,
}
FORMATS = tuple(WRITERS)


def to_row(record: Line, fmt: str) -> Line:
    """One kept record in one training format (a JSON object); with ``meta`` when the record has one (as
    JSON text: records' metas differ in keys and types, which one column of objects could not hold for
    a trainer's loader, nor Parquet), and ``score`` when a scorer scored it."""
    writer = WRITERS.get(fmt)
    if writer is None:
        raise RefineError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    row = {"id": record.get("id"), **writer(record, json.dumps(record.get("tools", []), ensure_ascii=False))}
    if record.get("meta"):
        row["meta"] = json.dumps(record["meta"], ensure_ascii=False)
    score = last_score(record)
    return row if score is None else {**row, "score": score}


def last_score(record: Line) -> float | None:
    """The score of the last scorer verdict in a line's trail (a pipeline with one scorer: its score)."""
    scores = [s["score"] for s in record.get("trail") or () if isinstance(s.get("score"), int | float)]
    return float(scores[-1]) if scores else None
