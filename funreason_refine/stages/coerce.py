"""Unambiguous repairs of argument values against their JSON Schema ("5" -> 5, true -> "True" for an enum)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from funreason_refine.jsonl import loads_unique

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _one_type(schema: Any) -> str | None:
    """The one JSON type ``schema`` names besides "null" (a non-null value can only be read as that); else None."""
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    if isinstance(t, str):
        return t if t != "null" else None
    types = [x for x in t if isinstance(x, str) and x != "null"] if isinstance(t, list) else []
    return types[0] if len(types) == 1 else None  # no type, or a union: more than one reading


def coerce(value: Any, schema: Any) -> Any:
    """Return ``value`` repaired toward ``schema``'s type where only one reading is possible, else unchanged."""
    target = _one_type(schema)
    if target is None:
        return value
    if isinstance(value, str):
        return _from_text(value, target, schema)
    if target == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if target == "array" and isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [coerce(v, schema["items"]) for v in value]
    if target == "object" and isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: coerce(v, props.get(k)) for k, v in value.items()}
    return value


def _from_text(value: str, target: str, schema: dict[str, Any]) -> Any:
    """A string read as the one JSON type ``target`` when it is written as one ("5", "true", "[1, 2]")."""
    text = value.strip()
    if target == "integer" and _INT.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # over Python's 4,300 digits: no repair, the schema's check says what is wrong
            return value
    if target == "number" and _FLOAT.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return int(number) if _INT.fullmatch(text) else number
    if target == "boolean" and text.lower() in {"true", "false"}:
        return text.lower() == "true"
    if target in {"array", "object"} and text[:1] in "[{":
        try:
            parsed = loads_unique(text)  # as the readers read: no NaN, Infinity, 1e400, nor a key given twice
        except (ValueError, RecursionError):  # not JSON, an integer over 4,300 digits, or nested too deeply
            return value
        if (target == "array") == isinstance(parsed, list) and isinstance(parsed, (list, dict)):
            return coerce(parsed, schema)
    return value


def repair_enum(value: Any, schema: Any) -> Any:
    """Return ``value`` as the one enum member its written form names (``true`` -> ``"True"``,
    ``2`` -> ``"2"``, ``"horror"`` -> ``"Horror"``), in items and properties too; else unchanged.

    Two or more members that differ from the value only in case (or none at all) leave it unchanged.
    """
    if not isinstance(schema, dict):
        return value
    enum = schema.get("enum")
    if isinstance(enum, list):
        return _enum_member(value, enum)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [repair_enum(v, schema["items"]) for v in value]
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        props = schema["properties"]
        return {k: repair_enum(v, props.get(k)) for k, v in value.items()}
    return value


def _enum_member(value: Any, enum: list[Any]) -> Any:
    if any(_same_json(value, member) for member in enum):
        return value
    written = _written(value)
    if written is None:
        return value
    matches = [member for member in enum if _written(member) == written]
    return matches[0] if len(matches) == 1 else value


def _written(value: Any) -> str | None:
    """How a scalar reads, case folded: true and "True" alike, 2 and "2" alike; None for what has no one reading."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return None  # null, lists and objects: no written form to match


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1 (Python's == says it is), 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)
