"""JSON Schema work shared by stages, cached: 60k records share few tools and fewer schema shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from funreason_refine.identity_memo import IdentityMemo


# Keywords whose value cannot make a schema invalid when it is a string (title, description)
# or at all (default, examples): removed from the meta-validation key.
_STRING_ANNOTATIONS = {"title", "description", "$comment"}
_ANY_ANNOTATIONS = {"default", "examples"}


def schema_key(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, ensure_ascii=False, default=str)


# The cache key of a tool's parameters, once per shared tool object.
params_key = IdentityMemo(schema_key, max_size=65536)

# Python types of a value that already is the one JSON type a parameter schema names: coercing
# such a value cannot change it (see coerce.py), so the stage skips it.
_SETTLED: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                         "boolean": (bool,), "null": (type(None),)}


@dataclass(frozen=True, slots=True)
class ParamsInfo:
    """What the stages ask of one tool's parameters schema, worked out once per shared schema."""

    error: str | None  # why it is not a valid parameters schema (query_tool discards for it)
    properties: dict[str, Any]
    required: tuple[Any, ...]
    closed: bool  # no additionalProperties: unknown parameters are errors
    settled: dict[str, tuple[type, ...]]  # parameter -> value types that need no coercion
    compiled: Any  # the argument validator, or why the schema cannot be compiled (a str)

    def validator(self) -> Any:
        """The compiled argument validator; raises ValueError when the schema cannot be compiled."""
        if isinstance(self.compiled, str):
            raise ValueError(self.compiled)
        return self.compiled


def _compiled(key: str) -> Any:
    try:
        return validator(key)
    except ValueError as exc:
        return str(exc)


def _info(schema: Any) -> ParamsInfo:
    key = params_key(schema)
    if not isinstance(schema, dict):
        return ParamsInfo(_schema_error(key), {}, (), True, {}, "the parameters schema is not an object")
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    settled = {name: _SETTLED.get(sub.get("type"), ()) for name, sub in props.items()
               if isinstance(sub, dict) and isinstance(sub.get("type"), str)}
    # Tools are closed unless they say otherwise: additionalProperties true or a schema opens them.
    extra = schema.get("additionalProperties", False)
    error = _schema_error(key)
    return ParamsInfo(error, props, tuple(required) if isinstance(required, list) else (),
                      extra is False or extra is None, settled, error or _compiled(key))


# One ParamsInfo per shared parameters object (readers share one normalised dict per tool).
params_info = IdentityMemo(_info, max_size=65536)

NO_PARAMETERS: dict[str, Any] = {}
"""What a tool without ``parameters`` is checked as: one shared object, so it is memoised once."""


def _shape(schema: Any) -> Any:
    """The schema with what cannot affect its validity taken out: annotations, and property names.

    Meta-validation then runs once per shape instead of once per tool: real tool sets repeat
    the same few parameter shapes under thousands of names and descriptions.
    """
    if isinstance(schema, list):
        return [_shape(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    names: dict[str, str] = {}
    props = schema.get("properties")
    if isinstance(props, dict):
        names = {name: f"p{i}" for i, name in enumerate(props)}
        out["properties"] = {names[n]: _shape(s) for n, s in props.items()}
    for key, value in schema.items():
        if key == "properties" and isinstance(props, dict):
            continue
        if key in _ANY_ANNOTATIONS or (key in _STRING_ANNOTATIONS and isinstance(value, str)):
            continue
        if key == "required" and isinstance(value, list):
            out[key] = [names.get(v, v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, (dict, list)) and key not in {"enum", "const"}:
            out[key] = _shape(value)
        else:
            out[key] = value
    return out


def schema_error(schema: Any) -> str | None:
    """Why ``schema`` is not a valid JSON Schema for parameters (2020-12 metaschema), or None."""
    return params_info(schema).error


@lru_cache(maxsize=16384)
def _schema_error(key: str) -> str | None:
    """

    The metaschema checks each ``properties`` value as a schema of its own, so each property
    is checked (and cached) alone and the root with its properties emptied: same verdict, but
    a few hundred distinct checks for 60k records instead of one per tool.
    """
    schema = json.loads(key)
    if not isinstance(schema, dict):
        return f"parameters must be an object schema, got {type(schema).__name__}"
    if schema.get("type", "object") != "object":
        return f"parameters must be an object schema, got type {schema.get('type')!r}"
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            error = _shape_error(schema_key(_shape(sub)))
            if error:
                return f"{error} in properties/{name}"
        schema = {**schema, "properties": {}}
    required = schema.get("required")
    if isinstance(required, list):
        # Names do not matter to the metaschema; repeats do (uniqueItems), so keep them.
        placeholders: dict[str, str] = {}
        schema = {**schema, "required": [placeholders.setdefault(r, f"r{len(placeholders)}") if isinstance(r, str) else r
                                         for r in required]}
    return _shape_error(schema_key(_shape(schema)))


@lru_cache(maxsize=8192)
def _shape_error(key: str) -> str | None:
    from jsonschema import Draft202012Validator  # lazily: `refine --help` loads the stages too
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(json.loads(key))
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        return f"{exc.message} at {where}"
    return None


@lru_cache(maxsize=8192)
def validator(key: str) -> Any:
    """A compiled validator for argument values (jsonschema-rs: the per-record hot path).

    Raises ValueError when the schema cannot be compiled.
    """
    import jsonschema_rs

    try:
        return jsonschema_rs.Draft202012Validator(json.loads(key))
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        raise ValueError(f"the parameters schema cannot be compiled: {exc}") from None


def preload() -> None:
    """Import the validator libraries now (before forking workers, so that each need not)."""
    import jsonschema  # noqa: F401
    import jsonschema_rs  # noqa: F401
