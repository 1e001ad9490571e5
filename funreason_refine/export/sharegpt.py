"""LLaMA-Factory's ShareGPT: ``conversations`` of human, gpt, function_call and observation turns."""

from __future__ import annotations

import json

from funreason_refine.export.messages import Line, assistant_content, calls, chat, content, in_call_order, think
from funreason_refine.targets import hermes_calls


def sharegpt(record: Line, tools_json: str) -> Line:
    """Turns alternate, so one observation answers a function_call turn (a JSON list of results when it
    made several calls). CoTs of call turns have no place in a turn: ``cot`` (one turn) or ``cots``
    (one per assistant turn) holds them."""
    messages = in_call_order(chat(record))
    turns: list[Line] = []
    for at, message in enumerate(messages):
        if message["role"] in ("user", "system"):
            value = content(message)
            turns.append({"from": "human" if message["role"] == "user" else "system", "value": value or ""})
        elif message["role"] == "assistant":
            turns.append(_answer(message))
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


def _answer(message: Line) -> Line:
    """A gpt turn for a text answer; a function_call turn for calls, but calls with text beside them
    are a gpt turn that writes them as <tool_call> blocks after the text (a function_call turn holds
    no text)."""
    found = calls(message)
    if found is None:
        return {"from": "gpt", "value": assistant_content(message, message["answer"])}
    if message.get("content"):
        return {"from": "gpt", "value": think(message) + f"{message['content']}\n" + hermes_calls(found)}
    items = [{"name": c.name, "arguments": c.arguments} for c in found]
    return {"from": "function_call", "value": json.dumps(items if len(items) != 1 else items[0], ensure_ascii=False)}


def _observation(messages: list[Line], at: int) -> str:
    """The results after a call turn: the observation they were read from when they were one, else
    the one result, or a JSON list of them."""
    results = []
    for message in messages[at:]:
        if message["role"] != "tool":
            break
        results.append(message.get("content") or "")
    if messages[at].get("observation") is not None and len(results) > 1:
        return str(messages[at]["observation"])
    return results[0] if len(results) == 1 else json.dumps(results, ensure_ascii=False)
