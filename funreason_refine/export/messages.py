"""A kept line's messages as the export formats write them: each message's content as it was read
(its parts, when it was given as parts), an assistant turn's CoT, calls and training target."""

from __future__ import annotations

from typing import Any

from funreason_refine.calls import render_calls
from funreason_refine.record import FunctionCall
from funreason_refine.targets import parts_text, split_think

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


def content(message: Line) -> Any:
    """A system, user or tool message's content as it was read: its parts, else its text."""
    parts = message.get("parts")
    return parts if parts is not None else message.get("content")


def named(row: Line, message: Line) -> Line:
    """``row`` with the message's ``name``, when it has one."""
    return {**row, "name": message["name"]} if message.get("name") is not None else row


def assistant_content(message: Line, text: str) -> Any:
    """An assistant's content: its CoT as a leading think block, then ``text`` (its answer, or what it
    wrote beside its calls). When it was read from content parts (they still say it: a stage that
    changed the turn dropped them), those parts, after a think part when they do not hold the CoT."""
    parts = message.get("parts")
    if parts is None:
        return think(message) + text
    if not think(message) or split_think(parts_text(parts))[0] is not None:
        return parts
    return [{"type": "text", "text": think(message)}, *parts]
