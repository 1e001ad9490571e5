"""Conversations: their assistant turns, one turn in focus at a time, and a conversation cut short.

A conversation record shows the stages one assistant turn at a time: ``focus`` makes that
turn's query, answer and CoT the record's own fields (what every stage reads), ``store`` puts
them back into the conversation once the turn is checked (repairs included).

A refinement works on its own copy of the messages (``owned``), which ``store`` writes in place
and which remembers where its assistant turns are and which turns use each call id: each turn
then costs the same however long the conversation (a 10,000-message conversation was quadratic).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from funreason_refine.record import Message, Record, changed


def id_key(value: Any) -> Hashable:
    """What ties a result to its call: a string id itself, any other its JSON text, so that an id
    matches only an equal JSON value (1 is neither "1" nor 1.0)."""
    return value if isinstance(value, str) else ("json", json.dumps(value, sort_keys=True))


def id_text(value: Any) -> str:
    """A call id as messages show it: a string as it is, any other as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class Layout:
    """Where a conversation's assistant turns are, the request each answers, and which turns use each call id."""

    size: int
    positions: list[int] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    uses: dict[Hashable, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, messages: list[Message]) -> Layout:
        layout = cls(len(messages))
        query = ""
        for at, message in enumerate(messages):
            if message.role == "user":
                query = message.content or ""
            elif message.role == "assistant":
                layout.positions.append(at)
                layout.queries.append(query)
                layout.add_ids(at, message.call_ids)
        return layout

    def add_ids(self, at: int, ids: Iterable[Any]) -> None:
        for key in map(id_key, ids):
            uses = self.uses.setdefault(key, [])
            if at not in uses:
                uses.append(at)


class Messages(list[Message]):
    """A conversation's messages as one refinement owns them: written in place by ``store``, with
    their layout worked out once (any other list's is worked out at every call)."""

    layout: Layout | None = None


def layout(messages: list[Message]) -> Layout:
    """The layout of ``messages``; remembered by an owned list while its length stays the same."""
    known = getattr(messages, "layout", None)
    if known is not None and known.size == len(messages):
        return known
    made = Layout.of(messages)
    if isinstance(messages, Messages):
        messages.layout = made
    return made


def owned(record: Record) -> Record:
    """The record with its own copy of its messages, for one refinement to write in place."""
    return record.model_copy(update={"messages": Messages(record.messages)}) if record.messages else record


def assistant_positions(messages: list[Message]) -> list[int]:
    """Where each assistant turn is in ``messages``."""
    return layout(messages).positions


def turn_count(record: Record) -> int:
    """How many assistant turns the record has (a single-turn record has one)."""
    return len(assistant_positions(record.messages)) if record.messages else 1


def last_user_text(messages: list[Message], before: int) -> str:
    """The last user message before position ``before``: the request the turn there answers."""
    return next((m.content or "" for m in reversed(messages[:before]) if m.role == "user"), "")


def used_before(messages: list[Message], turn: int, ids: list[Any] | None = None) -> list[Any]:
    """The call ids of assistant turn ``turn`` (``ids``, else those its message holds) that an earlier turn
    used too."""
    known = layout(messages)
    at = known.positions[turn]
    repeated = []
    for value in messages[at].call_ids if ids is None else ids:
        key = id_key(value)
        earlier = (p for p in known.uses.get(key, ()) if p < at)
        # a use recorded before a repair changed that turn's ids is checked against the turn as it is
        if any(key in map(id_key, messages[p].call_ids) for p in earlier):
            repeated.append(value)
    return repeated


def focus(record: Record, turn: int) -> Record:
    """The record with assistant turn ``turn`` in focus: its query, answer, CoT and target."""
    known = layout(record.messages)
    message = record.messages[known.positions[turn]]
    update = {
        "turn": turn,
        "query": known.queries[turn],
        "answer": message.answer,
        "cot": message.cot,
        "target": message.target,
    }
    return changed(record, update)


def store(record: Record) -> Record:
    """The record with its turn in focus written back into its conversation (a single-turn record
    as it is): in place into messages the refinement owns, else into a copy. Call ids stay with
    their calls by position; a call a stage added gets a new id. A changed answer or CoT is no
    longer what the content parts it was read from say: they are dropped."""
    if not record.messages or record.turn is None:
        return record
    known = layout(record.messages)
    at = known.positions[record.turn]
    message = record.messages[at]
    ids = turn_ids(record)
    update = {"answer": record.answer, "cot": record.cot, "target": record.target, "call_ids": ids}
    if all(getattr(message, key) == value for key, value in update.items()):
        return record
    if message.parts is not None and (message.answer != record.answer or message.cot != record.cot):
        update["parts"] = None
    changed = message.model_copy(update=update)
    if isinstance(record.messages, Messages):
        record.messages[at] = changed
        known.add_ids(at, ids)
        return record
    messages = [*record.messages[:at], changed, *record.messages[at + 1 :]]
    return record.model_copy(update={"messages": messages})


def turn_ids(record: Record) -> list[Any]:
    """The call ids of the turn in focus as its answer now stands (a repair may have changed its calls): a
    call the turn made before keeps its id wherever it now stands, a changed call takes the id of the call
    in its place, a call added a new id. An answer that could not be read keeps its calls' ids, for their
    results."""
    message = record.messages[layout(record.messages).positions[record.turn or 0]]
    ids = list(message.call_ids)
    if record.answer is None or record.answer is message.answer:
        return ids
    before = message.answer if isinstance(message.answer, list) else []
    given: list[Any] = [None] * len(record.calls)
    free = list(range(len(ids)))
    for i, call in enumerate(record.calls):  # the same call as before: its own id
        same = next((j for j in free if j < len(before) and before[j] == call), None)
        if same is not None:
            given[i] = ids[same]
            free.remove(same)
    taken = {id_key(i) for i in given if i is not None}
    for i in range(len(given)):  # a changed call: the first id no call kept, else a new one
        if given[i] is None:
            given[i] = ids[free.pop(0)] if free else _new_id(record.turn or 0, i, taken)
            taken.add(id_key(given[i]))
    return given


def _new_id(turn: int, at: int, taken: set[Hashable]) -> str:
    new = f"call_{turn}_{at}"
    while new in taken:
        at += 1
        new = f"call_{turn}_{at}"
    return new


def cut_before(record: Record, turn: int) -> Record | None:
    """The conversation up to the assistant turn before ``turn`` (its tool results left out, so that it
    ends with an assistant turn), that turn in focus; None when no turn is left."""
    if turn == 0:
        return None
    at = assistant_positions(record.messages)[turn - 1]
    return focus(record.model_copy(update={"messages": record.messages[: at + 1]}), turn - 1)
