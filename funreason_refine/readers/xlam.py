"""xLAM records: ``{id, query, tools, answers[, cot]}`` with ``tools``/``answers`` as JSON strings."""

from __future__ import annotations

from typing import Any

from funreason_refine.readers.answers import (
    FieldError,
    parse_answer,
    parse_tools,
    read_meta,
    record_fields,
    record_id,
    require_str,
)
from funreason_refine.record import Problem, Record, Source, read_record


def to_record(obj: dict[str, Any], source: Source, index: int) -> Record:
    """Raises FieldError naming the field when the object is not an xLAM record."""
    query = require_str(obj, "query")
    record_fields(obj, ("cot",), "xLAM")
    if "tools" not in obj:
        raise FieldError("tools", "missing field 'tools'")
    if obj["tools"] is None or (isinstance(obj["tools"], str) and not obj["tools"].strip()):
        raise FieldError(
            "tools", "field 'tools' is empty: an xLAM record lists its tools as JSON ('[]' when it offers none)"
        )
    if "answers" not in obj:
        raise FieldError("answers", "missing field 'answers'")
    cot = obj.get("cot")
    if cot is not None and not isinstance(cot, str):
        raise FieldError("cot", f"field 'cot' must be a string, got {type(cot).__name__}")
    problems: list[Problem] = []
    tools = parse_tools(obj["tools"], problems)
    answer = parse_answer(obj["answers"], problems)
    meta = read_meta(obj)
    # Every field was checked above; pydantic's validation would walk every tool dict again.
    return read_record(
        index,
        record_id(obj, f"{index}"),
        source,
        query,
        tools,
        answer,
        cot,
        problems,
        meta,
    )
