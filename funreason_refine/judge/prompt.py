"""Render a judge prompt: record text goes inside fences as data, never as instructions."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from typing import Any

from funreason_refine.conversation import id_text
from funreason_refine.memo import Memo
from funreason_refine.record import Message, Record
from funreason_refine.targets import answer_as_text, answer_text

# A record must not be able to close a fence or speak the protocol: fence markers are broken up,
# protocol tags are written with entities, so only the judge's own answer carries them.
_FENCE = re.compile(r"={5,}")
_TAGS = re.compile(r"<(/?)(judge|reason|newfc|think)\s*>", re.IGNORECASE)


def neutralize(text: str) -> str:
    text = _FENCE.sub(lambda m: " ".join("=" * len(m.group(0))), text)
    return _TAGS.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}&gt;", text)


# Copies of a record share its (read-only) tools list: a record's judged stages render its tools once.
_tools_text: Memo[list[dict[str, Any]], str] = Memo(
    lambda tools: neutralize(json.dumps(tools, ensure_ascii=False, indent=1)), max_size=4096, by_identity=True
)


def conversation_text(record: Record) -> str:
    """The conversation before the turn in focus (but the request it answers, which is ``{query}``), one
    line per message, as its own fenced section with its trailing newline; empty for a single-turn
    record and a conversation's first turn, so that ``{conversation}===== QUERY =====`` reads as before."""
    history = record.history
    if history and history[-1].role == "user":
        history = history[:-1]  # the request this turn answers: the QUERY section shows it
    if not history:
        return ""
    lines = [_line(m) for m in history]
    return "===== CONVERSATION SO FAR =====\n" + neutralize("\n".join(lines)) + "\n"


def _line(message: Message) -> str:
    if message.role == "user":
        return f"user: {message.content or ''}"
    if message.role == "system":  # a system message in the middle of a conversation, where it was
        return f"system: {message.content or ''}"
    if message.role == "tool":
        return f"tool result for {message.call_id or '?'}: {message.content or ''}"
    if isinstance(message.answer, list):  # the ids the results below name, in the order of the calls
        ids = f" (call ids: {', '.join(id_text(i) for i in message.call_ids)})" if message.call_ids else ""
        return f"assistant calls: {answer_as_text(message.answer)}{ids}"
    return f"assistant: {message.answer or ''}"


_FIELDS: dict[str, Callable[[Record], str]] = {
    "query": lambda r: neutralize(r.query),
    "tools": lambda r: _tools_text(r.tools),
    "answer": lambda r: neutralize(answer_text(r)),
    "cot": lambda r: neutralize(r.cot or ""),
    "conversation": conversation_text,
}


def placeholders(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def render(template: str, record: Record) -> str:
    """The prompt for one record: each placeholder the template uses filled in, as data."""
    return template.format_map({name: _FIELDS[name](record) for name in placeholders(template)})


def chat(system: str | None, prompt: str) -> list[dict[str, str]]:
    """The messages of one call: the stage's system message (when it has one), then the rendered prompt."""
    user = {"role": "user", "content": prompt}
    return [{"role": "system", "content": system}, user] if system is not None else [user]
