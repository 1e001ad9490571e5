"""What the chat readers share: a message's content (a text, or a list of parts), fields no reader
reads, and an assistant's text read as its CoT and answer. What is normalised, and why: docs/reading.md."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from funreason_refine.call_text import GLAIVE_CALL, GLAIVE_END, UnreadKey, calls_in_text
from funreason_refine.readers.answers import FieldError, is_empty
from funreason_refine.record import FunctionCall, Problem
from funreason_refine.targets import PART_SEPARATOR, split_think


@dataclass
class Content:
    """A message's content: its text, the parts it was given as (if a list), and a refusal part's text."""

    text: str | None
    parts: list[Any] | None = None
    refusal: str | None = None


def unread_fields(obj: dict[str, Any], known: Collection[str], where: str) -> None:
    """FieldError for the first field that says something and that no reader reads: dropping it
    would change the data without a word."""
    for key, value in obj.items():
        if key not in known and not is_empty(value):
            raise FieldError(
                f"{where}.{key}",
                f"{where}.{key}: a field this reader does not read (it would be lost); remove it or convert the record",
            )


def read_content(value: Any, where: str, result: bool = False) -> Content:
    """A message's content: null, a text, a JSON object (only a tool ``result``: its JSON text), or a
    list of parts (texts, OpenAI text/refusal parts, images and other media, kept as given)."""
    if value is None or isinstance(value, str):
        return Content(value)
    if isinstance(value, dict) and result:
        return Content(json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict):  # a part, maybe, but read as one it would be written back as a list
        why = "only a tool result may be one; a content part goes in a list"
        raise FieldError(where, f"{where}: content must be a text or a list of parts, got an object ({why})")
    if not isinstance(value, list):
        raise FieldError(where, f"{where}: content must be a text or a list of parts, got {type(value).__name__}")
    texts: list[str] = []
    refusal = None
    for n, part in enumerate(value):
        text, refused = _part(part, f"{where}[{n}]")
        if text is not None:
            texts.append(text)
        refusal = refused if refused is not None else refusal
    return Content(PART_SEPARATOR.join(texts), list(value), refusal)


def _part(part: Any, where: str) -> tuple[str | None, str | None]:
    """(text, refusal) of one content part; neither for an image or other media part."""
    if isinstance(part, str):
        return part, None
    if not isinstance(part, dict):
        raise FieldError(where, f"{where}: a content part must be a text or an object, got {type(part).__name__}")
    kind = part.get("type", "text" if "text" in part else None)
    if kind in ("text", "refusal"):
        key = str(kind)
        text = part.get(key)
        if not isinstance(text, str):
            got = "null" if text is None else type(text).__name__
            raise FieldError(f"{where}.{key}", f"{where}.{key}: a {key} part must hold a text, got {got}")
        return text, text if kind == "refusal" else None
    if not isinstance(kind, str):
        raise FieldError(f"{where}.type", f"{where}.type: a content part without a type")
    return None, None


def text_of(content: Content, where: str, role: str) -> str | None:
    """The text of a user, system or tool message; its parts may hold no refusal."""
    if content.refusal is not None:
        raise FieldError(where, f"{where}: a refusal part in a {role} message")
    return content.text


Answer = list[FunctionCall] | str | None


@dataclass
class AssistantText:
    """An assistant's text read: its CoT (a leading <think> block), its answer, the text beside calls
    written in it (Hermes <tool_call> blocks), and how many calls it wrote (read or not)."""

    cot: str | None
    answer: Answer
    beside: str | None = None
    calls: int = 0
    ids: list[Any] | None = None  # the ids <tool_call> blocks give their calls (None where one gives none)

    def call_ids(self) -> list[Any]:
        """An id (or None: the reader gives one) for each call written in the text."""
        return list(self.ids) if self.ids is not None else [None] * self.calls


def answer_from_text(text: str, where: str, problems: list[Problem], calls_allowed: bool = True) -> AssistantText:
    """A leading think block is the CoT; calls written as <tool_call> blocks, as Glaive's <functioncall>
    or as [func(...)] are the answer (``calls_allowed``: the message has no calls of its own), the text
    beside them kept; ``where`` names the field the text is in; else the text is the answer. No text
    after the CoT: the "no function applies" answer []. An end marker the text ends with (``<|endoftext|>``,
    as Glaive ends every assistant turn) ends the turn and is no text of it."""
    cot, rest = split_think(text)
    rest = _without_end_marker(rest)
    if not rest.strip():
        return AssistantText(cot, [])
    if not calls_allowed:
        return AssistantText(cot, rest.strip())
    try:
        calls, beside, ids = calls_in_text(rest)
    except UnreadKey as exc:  # as a key of a call in tool_calls or a function_call turn
        raise FieldError(where, f"{where}: {exc}") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        written_as, count = _written_as(rest)
        message = f"{where}: {written_as} do not parse: {exc}"
        problems.append(Problem(field=where, code="malformed_answer", message=message))
        return AssistantText(cot, None, calls=count)
    if calls is None:
        return AssistantText(cot, rest.strip())
    return AssistantText(cot, calls, beside.strip() or None, len(calls), ids)


def _without_end_marker(text: str) -> str:
    stripped = text.rstrip()
    return stripped[: -len(GLAIVE_END)] if stripped.endswith(GLAIVE_END) else text


def _written_as(text: str) -> tuple[str, int]:
    """How a text that does not parse wrote its calls, and how many it wrote (their results tie to them)."""
    if "<tool_call>" in text:
        return "tool call blocks", text.count("<tool_call>")
    if GLAIVE_CALL in text:
        return "Glaive <functioncall> calls", text.count(GLAIVE_CALL)
    return "calls", 0


GLAIVE_RESULT = "FUNCTION RESPONSE:"
"""How Glaive begins a tool's reply (``FUNCTION RESPONSE: {...}``), in its chat text and in conversions of it."""


def glaive_result(text: str | None) -> str | None:
    """The result a message's text gives when it begins as Glaive writes a tool's reply, trimmed; None
    for any other text."""
    start = (text or "").lstrip()
    return start[len(GLAIVE_RESULT) :].strip() if start.startswith(GLAIVE_RESULT) else None
