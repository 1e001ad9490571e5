"""ShareGPT (LLaMA-Factory, APIGen-MT/xLAM-2): ``conversations`` of ``{from, value}`` turns with
``function_call`` and ``observation`` turns, CoTs in ``cot`` (one turn) or ``cots`` (one per
assistant turn). Every field is read as what it means, or the record is quarantined naming the
turn and field; docs/reading.md says what is normalised and why."""

from __future__ import annotations

import json
from typing import Any

from funreason_refine.jsonl import loads_unique
from funreason_refine.readers.answers import FieldError, maybe_json, record_fields, record_system
from funreason_refine.readers.content import (
    answer_from_text,
    glaive_result,
    read_content,
    text_of,
    unread_fields,
)
from funreason_refine.readers.conversations import Chat, chat_record
from funreason_refine.readers.openai_chat import FUNCTION_FIELDS, read_call
from funreason_refine.readers.system_tools import record_tools
from funreason_refine.record import FunctionCall, Message, Problem, Record, Source
from funreason_refine.targets import split_think

ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "function_call",
    "observation": "tool",
    "function_response": "tool",
    "tool": "tool",
    "system": "system",
}
ANSWERS = ("assistant", "function_call")
READS = ("system", "cot", "cots")
"""The record fields of answers.TRAINING_FIELDS that ShareGPT records hold."""


def to_record(obj: dict[str, Any], source: Source, index: int) -> Record:
    record_fields(obj, READS, "ShareGPT")
    turns = obj["conversations"]
    roles = [_role(turn, f"conversations[{i}]") for i, turn in enumerate(turns)]
    chat = Chat("conversations")
    system = record_system(obj)
    system_at = "system"
    cots = _cots(obj, sum(r in ANSWERS for r in roles))
    for i, (turn, role) in enumerate(zip(turns, roles, strict=True)):
        value = turn.get("value")
        if role == "system" and not chat.messages and system is None and isinstance(value, str):
            system, system_at = value, f"conversations[{i}].value"  # the leading system turn: the record's own
            continue
        cot = cots.pop(0) if role in ANSWERS and cots else None
        message = _message(value, role, cot, f"conversations[{i}].value", chat.problems)
        for part in _observations(message, chat.messages[-1] if chat.messages else None):
            chat.add(part, i)
    if not any(m.role == "user" for m in chat.messages):
        raise FieldError("conversations", "no human turn")
    chat.tools, chat.system = record_tools(obj.get("tools"), system, system_at, chat.problems)
    return chat_record(obj, source, index, chat)


def _role(turn: Any, where: str) -> str:
    if not isinstance(turn, dict):
        raise FieldError(where, f"{where} must be an object with 'from' and 'value'")
    if "from" not in turn and "role" in turn:
        raise FieldError(
            where,
            f"{where}: a ShareGPT turn says 'from' and 'value', not 'role' and 'content' as an OpenAI message does: "
            "give these turns as the record's 'messages' (they are then read as OpenAI messages), or rename the keys",
        )
    unread_fields(turn, ("from", "value"), where)
    given = turn.get("from")
    if given is not None and not isinstance(given, str):
        raise FieldError(f"{where}.from", f"{where}.from: must be a text, got {type(given).__name__}")
    role = ROLES.get(given or "")
    if role is None:
        expected = ", ".join(ROLES)
        raise FieldError(f"{where}.from", f"{where}: unknown 'from' {turn.get('from')!r}; expected one of {expected}")
    return role


def _cots(obj: dict[str, Any], turns: int) -> list[str | None]:
    """The CoTs of the assistant turns, in order: ``cots`` (our multi-turn export) or ``cot`` (one turn)."""
    cots, cot = obj.get("cots"), obj.get("cot")
    if cots is not None:
        if not isinstance(cots, list) or not all(c is None or isinstance(c, str) for c in cots):
            raise FieldError("cots", "cots: must be a list of texts, one per assistant turn")
        if len(cots) != turns or cot:
            also = " and a cot" if cot else ""
            raise FieldError("cots", f"cots: {len(cots)} CoT(s){also} for {turns} assistant turn(s)")
        return [c or None for c in cots]
    if cot is None or cot == "":
        return []
    if not isinstance(cot, str):
        raise FieldError("cot", f"cot: must be a text, got {type(cot).__name__}")
    if turns != 1:
        raise FieldError("cot", f"cot: one CoT for {turns} assistant turns; give one per turn in cots")
    return [cot]


def _message(value: Any, role: str, cot: str | None, where: str, problems: list[Problem]) -> Message:
    if role == "function_call":
        thought, value = split_think(value) if isinstance(value, str) else (None, value)
        if cot is not None and thought is not None and cot.strip() != thought:
            raise FieldError(where, f"{where}: one CoT in cots, another in a <think> block")
        answer, ids = _function_call(value, where, problems)
        return Message(role="assistant", answer=answer, call_ids=ids, cot=cot if cot is not None else thought)
    if role == "tool":
        text = value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        result = glaive_result(text)
        return Message(role="tool", content=text if result is None else result)
    if isinstance(value, dict):
        raise FieldError(where, f"{where}: must be a text, got an object")
    content = read_content(value, where)
    text = text_of(content, where, role)
    if role != "assistant":
        return _said(role, text, content.parts)
    read = answer_from_text(text or "", where, problems)
    if cot is not None and read.cot is not None and cot.strip() != read.cot:
        raise FieldError(where, f"{where}: one CoT in cots, another in a <think> block")
    return Message(
        role="assistant",
        answer=read.answer,
        call_ids=read.call_ids(),
        cot=cot if cot is not None else read.cot,
        content=read.beside,
        parts=content.parts,
    )


def _said(role: str, text: str | None, parts: list[Any] | None) -> Message:
    """A user or system turn; a human turn that begins as Glaive writes a tool's reply
    (``FUNCTION RESPONSE: ...``, as some conversions of Glaive's chat text keep it) is that result."""
    result = glaive_result(text) if role == "user" and parts is None else None
    if result is not None:
        return Message(role="tool", content=result)
    return Message(role=role, content=text, parts=parts)


def _function_call(value: Any, where: str, problems: list[Problem]) -> tuple[list[FunctionCall] | None, list[Any]]:
    """The calls of a function_call turn (a call or a list of calls, as JSON text or not) and an id
    for each to be given (none is written); a call that cannot be read makes the answer malformed."""
    parsed = maybe_json(value, where)
    items = parsed if isinstance(parsed, list) else [parsed]
    calls = []
    for n, item in enumerate(items):
        at = f"{where}[{n}]" if isinstance(parsed, list) else where
        if isinstance(item, dict):
            unread_fields(item, FUNCTION_FIELDS, at)
        try:
            calls.append(read_call(item, at))
        except FieldError:
            raise
        except ValueError as exc:
            problems.append(Problem(field=str(exc).split(":", 1)[0], code="malformed_answer", message=str(exc)))
            return None, [None] * len(items)
    return calls, [None] * len(calls)


def _observations(message: Message, before: Message | None) -> list[Message]:
    """ShareGPT alternates turns, so one observation answers every call of a parallel function_call:
    a JSON list with one item per call is split into one result per call, the first keeping the
    observation as it was (the sharegpt export writes it back)."""
    calls = before.answer if before is not None and isinstance(before.answer, list) else []
    if message.role != "tool" or len(calls) < 2:
        return [message]
    try:
        items = loads_unique(message.content or "")
    except (ValueError, RecursionError):
        return [message]
    if not isinstance(items, list) or len(items) != len(calls):
        return [message]
    results = [
        Message(role="tool", content=i if isinstance(i, str) else json.dumps(i, ensure_ascii=False)) for i in items
    ]
    results[0] = results[0].model_copy(update={"observation": message.content})
    return results
