"""Shared parsing of reference answers and tool lists into record fields."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from funreason_refine.frozen import FrozenList, freeze
from funreason_refine.jsonl import JSON, loads_unique, why_not_json, why_not_json_at
from funreason_refine.memo import Memo
from funreason_refine.readers.tool_schema import UnconvertibleType, normalize_tool
from funreason_refine.record import FunctionCall, Problem


class FieldError(ValueError):
    """A record field has the wrong shape: the record is quarantined naming ``field``."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def require_str(obj: dict[str, Any], field: str) -> str:
    if field not in obj:
        raise FieldError(field, f"missing field {field!r}")
    value = obj[field]
    if not isinstance(value, str):
        raise FieldError(field, f"field {field!r} must be a string, got {type(value).__name__}")
    return value


def record_id(obj: dict[str, Any], fallback: str) -> str:
    value = obj.get("id")
    if value is None:
        return fallback
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise FieldError("id", f"field 'id' must be a string or an integer, got {type(value).__name__}")


def read_meta(obj: dict[str, Any]) -> dict[str, Any]:
    """A record's ``meta``: an object, or the JSON text of one (as the exports write it), kept as it is
    ({} when absent or empty); anything else cannot be kept as meta, and dropping it would lose it
    without a word."""
    meta = obj.get("meta")
    if isinstance(meta, str) and meta.lstrip().startswith("{"):
        meta = maybe_json(meta, "meta")
    if isinstance(meta, dict):
        return meta
    if meta is None or (isinstance(meta, (str, list)) and not meta):
        return {}
    raise FieldError("meta", f"field 'meta' must be an object, got {type(meta).__name__}")


def is_empty(value: Any) -> bool:
    """A value that says nothing: null, or an empty text, list or object."""
    return value is None or (isinstance(value, (str, list, dict)) and not value)


MEDIA_FIELDS = ("images", "videos", "audios")
"""Record fields of LLaMA-Factory's multimodal datasets: media a record's text refers to."""


TRAINING_FIELDS = {
    "system": "a system prompt",
    "cot": "a CoT",
    "cots": "CoTs",
    "reasoning": "a CoT",
    "reasoning_content": "a CoT",
    "chosen": "a preferred answer (preference data)",
    "rejected": "a rejected answer (preference data)",
}
"""Record fields that say something about training in some format: a reader that does not read one
quarantines the record rather than drop it. Other record fields (ids, sources, request settings such
as ``tool_choice``) are not training data and are not read."""
UNDESIRABLE_MARKS = {"kto_tag": "LLaMA-Factory's KTO data", "label": "TRL's KTO data"}
"""Record fields whose ``false`` marks an example not to follow."""
_WATCHED = frozenset((*MEDIA_FIELDS, *UNDESIRABLE_MARKS, "weight", *TRAINING_FIELDS))


def record_fields(obj: dict[str, Any], reads: Collection[str], form: str) -> None:
    """FieldError for a record that carries media, is marked undesirable, is weighed, or gives a
    field of TRAINING_FIELDS that its reader (of ``form`` records) does not read in ``reads``."""
    found = _WATCHED.intersection(obj)  # most records have none: one look
    for key in sorted(found) if found else ():
        value = obj[key]
        if key in MEDIA_FIELDS and not is_empty(value):
            raise FieldError(key, f"{key}: records with media files are not read (the media would be lost)")
        if key in UNDESIRABLE_MARKS and value is False:
            raise FieldError(
                key,
                f"{key}: false marks an example not to follow ({UNDESIRABLE_MARKS[key]}); refined and exported it "
                "would be one to follow: leave such records out of the input",
            )
        if key == "weight" and value is not None and value != 1:
            raise FieldError(
                "weight",
                f"weight: {repr(value)[:40]} weighs the record in training (0: not trained on), which refining would "
                "lose: leave records weighted 0 out of the input, and keep the weights beside the output by id",
            )
        if key in TRAINING_FIELDS and key not in reads and not is_empty(value):
            raise FieldError(
                key,
                f"{key}: {TRAINING_FIELDS[key]} beside the record, which {form} records do not hold (it would be "
                "lost): remove it, or convert the record to a format that reads it (docs/reading.md)",
            )


def record_system(obj: dict[str, Any]) -> str | None:
    """The record's own ``system`` field: its system prompt (ShareGPT, and OpenAI messages beside it)."""
    system = obj.get("system")
    if system is not None and not isinstance(system, str):
        raise FieldError("system", f"system: must be a text, got {type(system).__name__}")
    return system or None


def maybe_json(value: Any, field: str) -> Any:
    """xLAM stores ``tools`` and ``answers`` as JSON strings; accept them parsed too."""
    if isinstance(value, str):
        try:
            return loads_unique(value)
        except (ValueError, RecursionError) as exc:
            raise FieldError(field, f"field {field!r} is a string but not JSON: {exc}") from None
    return value


def _normalize_or_why(tool: Any) -> dict[str, Any] | str:
    try:
        return freeze(normalize_tool(tool))
    except UnconvertibleType as exc:
        return str(exc)


def _normalize_text_or_why(text: str) -> dict[str, Any] | str:
    """A tool given as JSON text, normalised; its text read again, when first met, refusing a key given twice."""
    try:
        tool = loads_unique(text)
    except (ValueError, RecursionError) as exc:
        raise FieldError("tools", f"field 'tools' cannot be read: {why_not_json(exc)}") from None
    return _normalize_or_why(tool)


# Keyed by the tool's JSON text, or else its repr (exact for JSON values: True is not 1, 1 is not 1.0).
_tools = Memo(_normalize_or_why, max_size=32768)
_tool_texts = Memo(_normalize_text_or_why, max_size=32768)


def _normalized(tool: Any, text: str | None = None) -> dict[str, Any]:
    """normalize_tool, remembered by the tool's text.

    Datasets repeat the same few thousand tools across tens of thousands of records; records
    offering the same tool share one normalised tool, frozen (read-only) for that reason.
    """
    if not isinstance(tool, dict):
        return normalize_tool(tool)
    hit = _tools.keyed(repr(tool), tool) if text is None else _tool_texts(text)
    if isinstance(hit, str):
        raise UnconvertibleType(hit)
    return hit


_SPACE = re.compile(r"[ \t\n\r]*")
_decode = JSON.raw_decode  # finds each tool's text; a tool first met is read again (_tool_texts)


def _skip_space(text: str, pos: int) -> int:
    """The position after the JSON whitespace at ``pos`` (the pattern matches everywhere, if only "")."""
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _elements(text: str) -> list[tuple[Any, str | None]] | None:
    """The elements of the JSON array ``text``, each with its own text (the tool cache's key).

    None when ``text`` is not a JSON array; json.loads then says why. Written by hand because
    json has no element-wise decoder; each element is decoded by json's own raw_decode.
    """
    end = len(text)
    pos = _skip_space(text, 0)
    if pos == end or text[pos] != "[":
        return None
    pos = _skip_space(text, pos + 1)
    out: list[tuple[Any, str | None]] = []
    if pos < end and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                obj, stop = _decode(text, pos)
            except (ValueError, RecursionError):
                return None
            out.append((obj, text[pos:stop]))
            pos = _skip_space(text, stop)
            if pos < end and text[pos] == ",":
                pos = _skip_space(text, pos + 1)
            elif pos < end and text[pos] == "]":
                pos += 1
                break
            else:
                return None
    return out if _skip_space(text, pos) == end else None


def parse_tools(raw: Any, problems: list[Problem]) -> list[dict[str, Any]]:
    """Normalise every tool; one that cannot be converted is kept as given and noted in ``problems``.

    The list and its tools are read-only (frozen.py): records that offer a tool share it.
    """
    elements = _elements(raw) if isinstance(raw, str) else None
    if elements is None:
        tools = maybe_json(raw, "tools")
        if isinstance(tools, dict):
            tools = [tools]
        if not isinstance(tools, list):
            raise FieldError("tools", f"field 'tools' must be a list of tools, got {type(tools).__name__}")
        elements = [(tool, None) for tool in tools]
    out = []
    for i, (tool, text) in enumerate(elements):
        try:
            out.append(_normalized(tool, text))
        except UnconvertibleType as exc:
            problems.append(Problem(field=f"tools[{i}]", code="unconvertible_type", message=str(exc)))
            out.append(freeze(tool if isinstance(tool, dict) else {"invalid": tool}))
    return FrozenList(out)


_CALL_FIELDS = ("name", "arguments")


def parse_call(raw: Any, where: str) -> FunctionCall:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where} has no function name")
    if "arguments" not in raw:
        raise ValueError(f"{where} ({name}) has no 'arguments'")
    if len(raw) > 2:  # a field beside name and arguments would be lost
        unread = next((k for k, v in raw.items() if k not in _CALL_FIELDS and v not in (None, "", [], {})), None)
        if unread is not None:
            raise ValueError(f"{where}.{unread}: a field of a call that is not read (it would be lost)")
    arguments = raw["arguments"]
    if arguments is None:  # null says nothing: a call with no arguments, as empty text is
        arguments = {}
    elif isinstance(arguments, str):  # OpenAI style: arguments as a JSON string
        try:
            arguments = loads_unique(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{where} ({name}) arguments are not JSON: {why_not_json(exc)}") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"{where} ({name}) arguments must be an object, got {type(arguments).__name__}")
    return FunctionCall(name=name, arguments=arguments)  # checked above; validating is faster than model_construct


def parse_answer(raw: Any, problems: list[Problem]) -> list[FunctionCall] | str | None:
    """A list of calls, a plain-text response, or None (malformed, with the problem noted).

    A string that starts with ``[`` or ``{`` must be JSON calls; any other string is a text answer.
    """
    value = raw
    if isinstance(raw, str):
        stripped = raw.strip()
        if not stripped.startswith(("[", "{")):
            return raw
        try:
            value = loads_unique(stripped)
        except (ValueError, RecursionError) as exc:
            shown = stripped if len(stripped) <= 200 else stripped[:200] + "..."
            message = f"answers look like JSON but do not parse: {why_not_json_at(exc)}; they were {shown!r}"
            problems.append(Problem(field="answers", code="malformed_answer", message=message))
            return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        problems.append(
            Problem(
                field="answers",
                code="malformed_answer",
                message=f"answers must be a list of calls or a text, got {type(value).__name__}",
            )
        )
        return None
    calls = []
    for i, item in enumerate(value):
        try:
            calls.append(parse_call(item, f"answers[{i}]"))
        except ValueError as exc:
            problems.append(Problem(field=f"answers[{i}]", code="malformed_answer", message=str(exc)))
            return None
    return calls
