"""JSON Schema work shared by stages, cached per distinct schema (60k records share few tools)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def schema_key(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, ensure_ascii=False, default=str)


@lru_cache(maxsize=8192)
def schema_error(key: str) -> str | None:
    """Why the schema is not a valid JSON Schema (meta-validation), or None."""
    schema = json.loads(key)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        return f"{exc.message} at {where}"
    if schema.get("type", "object") != "object":
        return f"parameters must be an object schema, got type {schema.get('type')!r}"
    return None


@lru_cache(maxsize=8192)
def validator(key: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(key))
