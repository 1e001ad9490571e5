"""Stage 0 for conversations: call ids unique, each call answered by exactly one result, no result
without a call, and the conversation ends with an assistant turn."""

from __future__ import annotations

from collections import Counter
from typing import Any

from funreason_refine.conversation import assistant_positions, id_key, id_text, turn_ids, used_before
from funreason_refine.record import Message, Record, Verdict
from funreason_refine.stages.base import Stage


class ConversationStructure(Stage):
    """Each call answered by exactly one result with its id before the next assistant turn."""

    name = "conversation"
    description = "Are calls and tool results tied up (unique ids, one result per call), ending with an assistant turn?"
    order = 5
    conversations_only = True
    timeout = None  # bounded by [input] max_record_bytes

    def check(self, record: Record) -> Verdict:
        """Check the turn in focus: its own ids and results, what comes before it (turn 0), and, at the
        last turn, that nothing but an assistant turn ends the conversation."""
        positions = assistant_positions(record.messages)
        turn = record.turn or 0
        at = positions[turn]
        last = turn + 1 == len(positions)
        following = len(record.messages) if last else positions[turn + 1]
        ids = turn_ids(record)  # as the turn's answer now stands: a repair may have changed its calls
        segment = record.messages[at + 1 : following]
        verdict = (
            _ids(ids, used_before(record.messages, turn, ids), turn)
            or (_orphans(record.messages[:at], [], "before the first assistant turn") if turn == 0 else None)
            or _results(segment, ids, turn, last)
        )
        if verdict is None and last and segment:
            return _end_with_the_last_turn(record, at, segment, turn)
        return verdict or Verdict.passed()


def _ids(ids: list[Any], earlier: list[Any], turn: int) -> Verdict | None:
    counts = Counter(map(id_key, ids))
    repeated = sorted({id_text(i) for i in ids if counts[id_key(i)] > 1}) + sorted({id_text(i) for i in earlier})
    if repeated:
        return Verdict.discard(
            "duplicate_call_id", f"turn {turn}: call id(s) {', '.join(repeated)} used more than once"
        )
    return None


def _orphans(segment: list[Message], ids: list[Any], where: str) -> Verdict | None:
    keys = set(map(id_key, ids))
    orphans = [
        "(none)" if m.call_id is None else id_text(m.call_id)
        for m in segment
        if m.role == "tool" and (m.call_id is None or id_key(m.call_id) not in keys)
    ]
    if orphans:
        return Verdict.discard("result_without_call", f"tool result(s) for call id(s) {', '.join(orphans)} {where}")
    return None


def _results(segment: list[Message], ids: list[Any], turn: int, last: bool) -> Verdict | None:
    """The messages between a turn and the next one: one result per call of the turn, nothing else.
    The last turn may end the conversation with its calls unanswered."""
    orphan = _orphans(segment, ids, f"after turn {turn}, which made no such call")
    if orphan is not None:
        return orphan
    answered = Counter(id_key(m.call_id) for m in segment if m.role == "tool")
    twice = sorted(id_text(i) for i in ids if answered[id_key(i)] > 1)
    if twice:
        return Verdict.discard("duplicate_result", f"turn {turn}: call(s) {', '.join(twice)} answered more than once")
    missing = [id_text(i) for i in ids if not answered[id_key(i)]]
    if missing and not last:
        return Verdict.discard(
            "missing_result", f"turn {turn}: call(s) {', '.join(missing)} have no result before the next assistant turn"
        )
    return None


def _end_with_the_last_turn(record: Record, at: int, segment: list[Message], turn: int) -> Verdict:
    """Messages after the last assistant turn are no training target: the conversation is cut after it
    (a repair: with on_fail "discard" the conversation is discarded instead)."""
    kinds = ", ".join(sorted({m.role for m in segment}))
    return Verdict.regenerate(
        record.model_copy(update={"messages": record.messages[: at + 1]}),
        "ends_without_assistant",
        f"{len(segment)} {kinds} message(s) after the last assistant turn ({turn}) answered by no assistant turn",
    )
