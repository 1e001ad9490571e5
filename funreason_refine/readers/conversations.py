"""Conversations read from chat formats: tool results tied to call ids, and a record made of the turns.

Format readers (chat.py) turn each message into a :class:`Message`; what they cannot say (call
ids, in formats that have none) is filled in here: calls get ids by position, and a result
without an id answers the next unanswered call of the assistant turn before it. A chat of one
user message and one assistant turn is a single-turn record, read as it always was.
"""

from __future__ import annotations

from typing import Any

from funreason_refine.conversation import focus
from funreason_refine.readers.answers import FieldError
from funreason_refine.record import Message, Problem, Record, Source, read_record


def tie_ids(messages: list[Message]) -> list[Message]:
    """Calls without ids get ``call_<turn>_<n>``; results without a call id answer, in order, the calls
    of the assistant turn before them that no result has answered yet."""
    out: list[Message] = []
    pending: list[str] = []
    turn = -1
    for message in messages:
        if message.role == "assistant":
            turn += 1
            message = _with_ids(message, turn)
            pending = list(message.call_ids)
        elif message.role == "tool":
            if message.call_id is None and pending:
                message = message.model_copy(update={"call_id": pending[0]})
            if message.call_id in pending:
                pending.remove(message.call_id)
        out.append(message)
    return out


def _with_ids(message: Message, turn: int) -> Message:
    calls = message.answer if isinstance(message.answer, list) else []
    if len(message.call_ids) == len(calls):
        return message
    ids = list(message.call_ids) + [f"call_{turn}_{n}" for n in range(len(message.call_ids), len(calls))]
    return message.model_copy(update={"call_ids": ids})


def chat_record(
    obj: dict[str, Any],
    source: Source,
    index: int,
    record_id: str,
    messages: list[Message],
    tools: list[dict[str, Any]],
    system: str | None,
    problems: list[Problem],
) -> Record:
    """The record of a chat: single-turn for one user message answered by one assistant turn, else a
    conversation with its last assistant turn in focus. FieldError (quarantine) when it has no turn
    to learn from."""
    if not any(m.role == "assistant" for m in messages):
        raise FieldError("messages", "no assistant message: nothing to learn from")
    first = next(i for i, m in enumerate(messages) if m.role == "assistant")
    if not any(m.role == "user" for m in messages[:first]):
        raise FieldError("messages", f"no user message before the first assistant turn (message {first})")
    meta = obj.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    if [m.role for m in messages] == ["user", "assistant"]:
        user, assistant = messages
        record = read_record(
            index, record_id, source, user.content or "", tools, assistant.answer, assistant.cot, problems, meta
        )
        return record.model_copy(update={"system": system}) if system else record
    record = read_record(
        index, record_id, source, "", tools, None, None, problems, meta, messages=tie_ids(messages), system=system
    )
    return focus(record, record.turn or 0)
