"""Unambiguous repairs of argument values against their JSON Schema ("5" -> 5, "true" -> true)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return [t]
    return [x for x in t if isinstance(x, str)] if isinstance(t, list) else []


def coerce(value: Any, schema: Any) -> Any:
    """Return ``value`` repaired toward ``schema`` where only one reading is possible, else unchanged."""
    if not isinstance(schema, dict):
        return value
    types = _types(schema)
    if len(types) != 1:  # no type, or a union: more than one reading
        return value
    target = types[0]
    if isinstance(value, str):
        text = value.strip()
        if target == "integer" and _INT.fullmatch(text):
            return int(text)
        if target == "number" and _FLOAT.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return int(number) if _INT.fullmatch(text) else number
        if target == "boolean" and text.lower() in {"true", "false"}:
            return text.lower() == "true"
        if target in {"array", "object"} and text[:1] in "[{":
            try:
                parsed = json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                return value
            if (target == "array") == isinstance(parsed, list) and isinstance(parsed, (list, dict)):
                return coerce(parsed, schema)
        return value
    if target == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if target == "array" and isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [coerce(v, schema["items"]) for v in value]
    if target == "object" and isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: coerce(v, props.get(k)) for k, v in value.items()}
    return value
