"""Conversations: their assistant turns, one turn in focus at a time, and a conversation cut short.

A conversation record shows the stages one assistant turn at a time: ``focus`` makes that
turn's query, answer and CoT the record's own fields (what every stage reads), ``store`` puts
them back into the conversation once the turn is checked (repairs included).
"""

from __future__ import annotations

from funreason_refine.record import Message, Record


def assistant_positions(messages: list[Message]) -> list[int]:
    """Where each assistant turn is in ``messages``."""
    return [i for i, m in enumerate(messages) if m.role == "assistant"]


def turn_count(record: Record) -> int:
    """How many assistant turns the record has (a single-turn record has one)."""
    return len(assistant_positions(record.messages)) if record.messages else 1


def last_user_text(messages: list[Message], before: int) -> str:
    """The last user message before position ``before``: the request the turn there answers."""
    return next((m.content or "" for m in reversed(messages[:before]) if m.role == "user"), "")


def focus(record: Record, turn: int) -> Record:
    """The record with assistant turn ``turn`` in focus: its query, answer, CoT and target."""
    at = assistant_positions(record.messages)[turn]
    message = record.messages[at]
    update = {
        "turn": turn,
        "query": last_user_text(record.messages, at),
        "answer": message.answer,
        "cot": message.cot,
        "target": message.target,
    }
    return record.model_copy(update=update)


def store(record: Record) -> Record:
    """The record with its turn in focus written back into its conversation (a single-turn record
    as it is). Call ids stay with their calls by position; a call a stage added gets a new id."""
    if not record.messages or record.turn is None:
        return record
    at = assistant_positions(record.messages)[record.turn]
    message = record.messages[at]
    ids = list(message.call_ids[: len(record.calls)])
    ids += [f"call_{record.turn}_{i}" for i in range(len(ids), len(record.calls))]
    update = {"answer": record.answer, "cot": record.cot, "target": record.target, "call_ids": ids}
    if all(getattr(message, key) == value for key, value in update.items()):
        return record
    messages = [*record.messages[:at], message.model_copy(update=update), *record.messages[at + 1 :]]
    return record.model_copy(update={"messages": messages})


def cut_before(record: Record, turn: int) -> Record | None:
    """The conversation up to the assistant turn before ``turn`` (its tool results left out, so that it
    ends with an assistant turn), that turn in focus; None when no turn is left."""
    if turn == 0:
        return None
    at = assistant_positions(record.messages)[turn - 1]
    return focus(record.model_copy(update={"messages": record.messages[: at + 1]}), turn - 1)
