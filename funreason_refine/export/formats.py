"""One kept record (a run-folder line) in a training format: funreason, hermes, sharegpt, openai.

A single-turn record is written as its one user message and one answer; a conversation as every
message, each assistant turn as its target and tool results as tool (or observation) messages.
Every format reads back through `refine run` to the same calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from funreason_refine.calls import render_calls
from funreason_refine.errors import RefineError
from funreason_refine.record import FunctionCall
from funreason_refine.targets import HERMES_SYSTEM, funreason_messages, hermes_calls

Line = dict[str, Any]


def chat(record: Line) -> list[Line]:
    """A kept line's messages: a conversation's own, or a single-turn record's query and answer."""
    if record.get("messages"):
        return list(record["messages"])
    answer = {"role": "assistant", "answer": record.get("answer"), "cot": record.get("cot")}
    return [{"role": "user", "content": record["query"]}, {**answer, "target": record.get("target")}]


def calls(message: Line) -> list[FunctionCall] | None:
    """An assistant turn's calls; None when it answers with text."""
    answer = message.get("answer")
    return (
        [FunctionCall(name=c["name"], arguments=c.get("arguments", {})) for c in answer]
        if isinstance(answer, list)
        else None
    )


def think(message: Line) -> str:
    cot = (message.get("cot") or "").strip()
    return f"<think>{cot}</think>\n\n" if cot else ""


def target(message: Line) -> str:
    """The paper's target of an assistant turn: ``<think>{cot}</think>\\n\\n[calls]``, or its text."""
    found = calls(message)
    return message.get("target") or think(message) + (render_calls(found) if found is not None else message["answer"])


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _system(record: Line, prompt: str) -> str:
    own = record.get("system")
    return f"{own}\n\n{prompt}" if own else prompt


def _plain(message: Line, assistant: Callable[[Line], str]) -> Line:
    if message["role"] == "assistant":
        return {"role": "assistant", "content": assistant(message)}
    return {"role": message["role"], "content": message.get("content") or ""}


def funreason(record: Line, tools_json: str) -> Line:
    turns = [_plain(m, target) for m in chat(record)]
    return {"messages": funreason_messages(record.get("tools", []), turns, record.get("system"))}


def _hermes_turn(message: Line) -> str:
    found = calls(message)
    return think(message) + (hermes_calls(found) if found is not None else message["answer"])


def hermes(record: Line, tools_json: str) -> Line:
    system = {"role": "system", "content": _system(record, HERMES_SYSTEM.replace("{tools}", tools_json))}
    return {"tools": tools_json, "messages": [system, *(_plain(m, _hermes_turn) for m in chat(record))]}


def sharegpt(record: Line, tools_json: str) -> Line:
    """LLaMA-Factory's ShareGPT: turns alternate, so one observation answers a function_call turn (a
    JSON list of results when it made several calls). CoTs of call turns have no place in a turn:
    ``cot`` (one turn) or ``cots`` (one per assistant turn) holds them."""
    messages = chat(record)
    turns: list[Line] = []
    for at, message in enumerate(messages):
        if message["role"] == "user":
            turns.append({"from": "human", "value": message.get("content") or ""})
        elif message["role"] == "assistant":
            turns.append(_sharegpt_answer(message))
        elif at == 0 or messages[at - 1]["role"] != "tool":  # the first result after a call turn
            turns.append({"from": "observation", "value": _observation(messages, at)})
    row: Line = {
        "conversations": turns,
        "tools": tools_json,
        **({"system": record["system"]} if record.get("system") else {}),
    }
    if not record.get("messages"):
        return {**row, "cot": record.get("cot") or ""}
    return {**row, "cots": [m.get("cot") or "" for m in messages if m["role"] == "assistant"]}


def _sharegpt_answer(message: Line) -> Line:
    found = calls(message)
    if found is None:
        return {"from": "gpt", "value": think(message) + message["answer"]}
    items = [{"name": c.name, "arguments": c.arguments} for c in found]
    return {"from": "function_call", "value": json.dumps(items if len(items) != 1 else items[0], ensure_ascii=False)}


def _observation(messages: list[Line], at: int) -> str:
    results = []
    for message in messages[at:]:
        if message["role"] != "tool":
            break
        results.append(message.get("content") or "")
    return results[0] if len(results) == 1 else json.dumps(results, ensure_ascii=False)


def openai(record: Line, tools_json: str) -> Line:
    system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    messages = [*system, *(_openai_message(m) for m in chat(record))]
    return {"messages": messages, "tools": [{"type": "function", "function": t} for t in record.get("tools", [])]}


def _openai_message(message: Line) -> Line:
    if message["role"] == "tool":
        return {"role": "tool", "tool_call_id": message.get("call_id"), "content": message.get("content") or ""}
    if message["role"] == "user":
        return {"role": "user", "content": message.get("content") or ""}
    found = calls(message)
    if found is None:
        return {"role": "assistant", "content": think(message) + message["answer"]}
    ids = message.get("call_ids") or [f"call_{i}" for i in range(len(found))]
    tool_calls = [
        {
            "id": i,
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
        }
        for i, c in zip(ids, found, strict=True)
    ]
    return {"role": "assistant", "content": think(message).strip() or None, "tool_calls": tool_calls}


WRITERS: dict[str, Callable[[Line, str], Line]] = {
    "funreason": funreason,
    "hermes": hermes,
    "sharegpt": sharegpt,
    "openai": openai,
}
FORMATS = tuple(WRITERS)


def to_row(record: Line, fmt: str) -> Line:
    """One kept record in one training format (a JSON object)."""
    writer = WRITERS.get(fmt)
    if writer is None:
        raise RefineError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return {"id": record.get("id"), **writer(record, json.dumps(record.get("tools", []), ensure_ascii=False))}
