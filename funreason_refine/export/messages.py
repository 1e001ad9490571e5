"""A kept line's messages as the export formats write them: each message's content as it was read
(its parts, when it was given as parts), an assistant turn's CoT, calls and training target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from funreason_refine.calls import render_calls
from funreason_refine.conversation import id_key, id_text
from funreason_refine.record import FunctionCall
from funreason_refine.targets import parts_text, split_think

Line = dict[str, Any]


def chat(record: Line) -> list[Line]:
    """A kept line's messages: a conversation's own, or a single-turn record's query and answer."""
    if record.get("messages"):
        return list(record["messages"])
    answer = {"role": "assistant", "answer": record.get("answer"), "cot": record.get("cot")}
    return [{"role": "user", "content": record["query"]}, {**answer, "target": record.get("target")}]


def without_cot(record: Line) -> Line:
    """A kept line as if no assistant turn had a CoT (``refine export --without-cot``): for templates that
    have no place for one. An assistant turn read from parts that hold its CoT is written from its text."""
    kept = {k: v for k, v in record.items() if k not in ("cot", "target")}
    if record.get("messages"):
        kept["messages"] = [_without_cot(m) if m.get("role") == "assistant" else m for m in record["messages"]]
    return kept


def _without_cot(message: Line) -> Line:
    parts = message.get("parts")
    thinks = parts is not None and split_think(parts_text(parts))[0] is not None
    return {k: v for k, v in message.items() if k not in ("cot", "target") and not (k == "parts" and thinks)}


class UnplacedResults(ValueError):
    """Results a format without call ids cannot place: the conversation stage discards such conversations."""


def in_call_order(messages: list[Line]) -> list[Line]:
    """``messages`` with the results after each call turn in the order of its calls, for the formats
    that have no call ids and so tie a result to a call by its place. Results that cannot be placed
    so (a result of no call of the turn, two for one call, a call left unanswered before one that
    is answered, or a result after a turn that made no calls, such as one that came back after a
    later assistant turn) are a ValueError naming the turn: written without ids they would answer
    other calls, or none."""
    ordered: list[Line] = []
    at = 0
    while at < len(messages):
        ordered.append(messages[at])
        end = at + 1
        while end < len(messages) and messages[end]["role"] == "tool":
            end += 1
        results = messages[at + 1 : end]
        if messages[at]["role"] == "tool" or (results and not messages[at].get("call_ids")):
            raise UnplacedResults(_no_call_before(messages, at))
        if results and messages[at]["role"] == "assistant":
            results = _results_in_order(messages[at], results, at)
        ordered.extend(results)
        at = end
    return ordered


def _no_call_before(messages: list[Line], at: int) -> str:
    """Why the results after messages[at] (or at it, when the conversation opens with one) cannot be placed."""
    first = at if messages[at]["role"] == "tool" else at + 1
    where = (
        "with no turn before it"
        if first == 0
        else f"after messages[{at}] ({messages[at]['role']}), which made no calls"
    )
    return (
        f"messages[{first}], the result of call {id_text(messages[first].get('call_id'))}, comes {where}: this format "
        "has no call ids and ties each result to the calls of the turn before it, so it would answer none (the "
        "conversation stage discards such conversations; the openai format keeps the ids)"
    )


def _results_in_order(turn: Line, results: list[Line], at: int) -> list[Line]:
    places = {id_key(call_id): n for n, call_id in enumerate(turn["call_ids"])}
    found = sorted(results, key=lambda r: places.get(id_key(r.get("call_id")), len(places)))
    answered = [places.get(id_key(r.get("call_id"))) for r in found]
    if answered != list(range(len(found))):
        given = ", ".join(id_text(r.get("call_id")) for r in results)
        calls_ids = ", ".join(id_text(i) for i in turn["call_ids"])
        raise UnplacedResults(
            f"the results after messages[{at}] answer the calls {given} of its calls {calls_ids}: this format has no "
            "call ids and ties each result to the call in its place, so they would answer other calls (the "
            "conversation stage discards such conversations; the openai format keeps the ids)"
        )
    return found


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


def assistant_content(message: Line, text: str, block: Callable[[Line], str] = think) -> Any:
    """An assistant's content: its CoT as a leading think block (``block`` writes it), then ``text`` (its
    answer, or what it wrote beside its calls). When it was read from content parts (they still say it: a
    stage that changed the turn dropped them), those parts, after a think part when they do not hold the CoT."""
    parts = message.get("parts")
    if parts is None:
        return block(message) + text
    if not block(message) or split_think(parts_text(parts))[0] is not None:
        return parts
    return [{"type": "text", "text": block(message)}, *parts]
