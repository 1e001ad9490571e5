"""Conversations read from chat formats: tool results tied to call ids, and a record made of the turns.

Format readers (openai_chat.py, sharegpt.py) turn each message into a :class:`Message`; what they
cannot say (call ids, in formats that have none) is filled in here: calls get ids by position,
and a result without an id answers the next unanswered call of the assistant turn before it. A
chat of one user message and one assistant turn that says nothing a single-turn record cannot
hold is a single-turn record, read as it always was.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from funreason_refine.conversation import focus, id_key
from funreason_refine.readers.answers import FieldError, read_meta, record_id
from funreason_refine.record import Message, Problem, Record, Source, read_record


def tie_ids(messages: list[Message]) -> list[Message]:
    """Calls without ids get ``call_<turn>_<n>``; results without a call id answer, in order, the calls
    of the assistant turn before them that no result has answered yet."""
    out: list[Message] = []
    pending: list[Any] = []
    turn = -1
    for message in messages:
        if message.role == "assistant":
            turn += 1
            message = _with_ids(message, turn)
            pending = list(message.call_ids)
        elif message.role == "tool":
            if message.call_id is None and pending:
                message = message.model_copy(update={"call_id": pending[0]})
            _answered(pending, message.call_id)
        out.append(message)
    return out


def _answered(pending: list[Any], call_id: Any) -> None:
    key = id_key(call_id)
    for n, value in enumerate(pending):
        if id_key(value) == key:
            del pending[n]
            return


def _with_ids(message: Message, turn: int) -> Message:
    calls = len(message.answer) if isinstance(message.answer, list) else len(message.call_ids)
    given = list(message.call_ids) + [None] * (calls - len(message.call_ids))
    if None not in given:
        return message
    ids = [f"call_{turn}_{n}" if i is None else i for n, i in enumerate(given)]
    return message.model_copy(update={"call_ids": ids})


def single_turn(messages: list[Message]) -> bool:
    """One user message answered by one assistant turn, saying nothing a single-turn record cannot
    hold (content parts, names, a refusal, text beside calls); the call ids it drops answer nothing."""
    if [m.role for m in messages] != ["user", "assistant"]:
        return False
    user, assistant = messages
    return (
        user.content is not None
        and user.parts is None
        and user.name is None
        and assistant.parts is None
        and assistant.name is None
        and assistant.content is None
        and assistant.refusal is None
    )


@dataclass
class Chat:
    """A chat as a format reader read it: its messages, each with its place in the input (``field``
    and index), its tools, its own system prompt, and what was found wrong."""

    field: str
    messages: list[Message] = dataclass_field(default_factory=list)
    origin: list[int] = dataclass_field(default_factory=list)
    tools: list[dict[str, Any]] = dataclass_field(default_factory=list)
    system: str | None = None
    problems: list[Problem] = dataclass_field(default_factory=list)

    def add(self, message: Message, at: int) -> None:
        self.messages.append(message)
        self.origin.append(at)


def chat_record(obj: dict[str, Any], source: Source, index: int, chat: Chat) -> Record:
    """The record of a chat: single-turn for one user message answered by one assistant turn, else a
    conversation with its last assistant turn in focus. FieldError (quarantine) when it has no turn
    to learn from."""
    messages, problems, system, tools = chat.messages, chat.problems, chat.system, chat.tools
    if not any(m.role == "assistant" for m in messages):
        raise FieldError(chat.field, f"{chat.field}: no assistant message: nothing to learn from")
    first = next(i for i, m in enumerate(messages) if m.role == "assistant")
    if not any(m.role == "user" for m in messages[:first]):
        at = f"{chat.field}[{chat.origin[first]}]"
        raise FieldError(at, f"{at}: an assistant turn before any user message")
    rid = record_id(obj, f"{index}")
    meta = read_meta(obj)
    if single_turn(messages):
        user, assistant = messages
        record = read_record(
            index, rid, source, user.content or "", tools, assistant.answer, assistant.cot, problems, meta
        )
        return record.model_copy(update={"system": system}) if system else record
    record = read_record(
        index, rid, source, "", tools, None, None, problems, meta, messages=tie_ids(messages), system=system
    )
    return focus(record, record.turn or 0)
