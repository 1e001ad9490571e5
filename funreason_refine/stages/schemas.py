"""JSON Schema work shared by stages, cached: 60k records share few tools and fewer schema shapes."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import orjson

from funreason_refine.frozen import FrozenDict
from funreason_refine.memo import Memo

# Keywords whose value cannot make a schema invalid when it is a string (title, description)
# or at all (default, examples): removed from the meta-validation key.
_STRING_ANNOTATIONS = {"title", "description", "$comment"}
_ANY_ANNOTATIONS = {"default", "examples"}


# Python types of a value that already is the one JSON type a parameter schema names: coercing
# such a value cannot change it (see coerce.py), so the stage skips it unless the schema has an enum.
_SETTLED: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_NOT_COMPILED = object()


class ParamsInfo:
    """What the stages ask of one tool's parameters schema, worked out once per shared schema."""

    __slots__ = (
        "schema",
        "error",
        "properties",
        "required",
        "required_names",
        "closed",
        "settled",
        "with_enum",
        "_compiled",
    )

    def __init__(self, schema: Any):
        self.schema = schema
        self.error = _schema_error(schema)  # why it is not a valid parameters schema (query_tool discards)
        self._compiled: Any = _NOT_COMPILED
        props = schema.get("properties") if isinstance(schema, dict) else None
        self.properties: dict[str, Any] = props if isinstance(props, dict) else {}
        required = schema.get("required") if isinstance(schema, dict) else None
        self.required: tuple[Any, ...] = tuple(required) if isinstance(required, list) else ()
        self.required_names = frozenset(r for r in self.required if isinstance(r, str))
        # Tools are closed unless they say otherwise: additionalProperties true or a schema opens them.
        extra = schema.get("additionalProperties", False) if isinstance(schema, dict) else False
        self.closed = extra is False or extra is None
        # parameter -> value types that need no coercion (an enum's values may still need repair)
        self.settled: dict[str, tuple[type, ...]] = {
            name: _SETTLED.get(sub["type"], ())
            for name, sub in self.properties.items()
            if isinstance(sub, dict) and isinstance(sub.get("type"), str) and "enum" not in sub
        }
        # parameters with an enum anywhere in their schema: the only ones an enum repair can change
        self.with_enum = frozenset(name for name, sub in self.properties.items() if _has_enum(sub))

    def validator(self) -> Any:
        """The argument validator (jsonschema-rs), compiled on first use; ValueError when it cannot be."""
        if self._compiled is _NOT_COMPILED:
            self._compiled = self.error or _compile(self.schema)
        if isinstance(self._compiled, str):
            raise ValueError(self._compiled)
        return self._compiled


def _has_enum(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "enum" in schema or any(_has_enum(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_enum(v) for v in schema)
    return False


# One ParamsInfo per shared parameters object: readers share one frozen (read-only) dict per tool.
params_info = Memo(ParamsInfo, max_size=65536, by_identity=True)

NO_PARAMETERS: dict[str, Any] = FrozenDict()
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


def _schema_error(schema: Any) -> str | None:
    """Why ``schema`` is not a valid parameters schema, or None.

    The metaschema checks each ``properties`` value as a schema of its own, so each property
    is checked (and cached by shape) alone and the root with its properties emptied: same
    verdict, but a few hundred distinct checks for 60k records instead of one per tool.
    """
    if not isinstance(schema, dict):
        return f"parameters must be an object schema, got {type(schema).__name__}"
    if schema.get("type", "object") != "object":
        return f"parameters must be an object schema, got type {schema.get('type')!r}"
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            error = _shape_error(_shape(sub))
            if error:
                return f"{error} in properties/{name}"
        schema = {**schema, "properties": {}}
    required = schema.get("required")
    if isinstance(required, list):
        repeated = [name for name, times in Counter(r for r in required if isinstance(r, str)).items() if times > 1]
        if repeated:
            return _short(f"required names {', '.join(map(repr, repeated))} more than once (non-unique elements)")
        # Names do not matter to the metaschema: checked with placeholders, the verdict is remembered
        # for every list of as many names.
        placeholders: dict[str, str] = {}
        schema = {
            **schema,
            "required": [
                placeholders.setdefault(r, f"r{len(placeholders)}") if isinstance(r, str) else r for r in required
            ],
        }
    return _shape_error(_shape(schema))


def _shape_error(shape: Any) -> str | None:
    """The metaschema's verdict on a shape, remembered by its repr (exact for JSON values)."""
    return _shape_errors.keyed(repr(shape), shape)


def _metaschema_error(shape: Any) -> str | None:
    from jsonschema import Draft202012Validator  # lazily: `refine --help` loads the stages too
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(shape)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        return f"{_short(exc.message)} at {where}"
    except RecursionError:
        return "nested too deeply"
    return None


_shape_errors = Memo(_metaschema_error, max_size=16384)


MESSAGE_CHARS = 300
"""The most of a schema error that a discard message quotes: jsonschema's messages repeat the
value they fault, which may be a megabyte of enum."""


def _short(message: str) -> str:
    if len(message) <= MESSAGE_CHARS:
        return message
    return f"{message[:MESSAGE_CHARS]}... ({len(message):,} characters)"


def _thawed(schema: Any) -> Any:
    """A plain copy: jsonschema-rs takes dict subclasses but not list subclasses (frozen.py). Through
    orjson, ten times faster than copy.deepcopy, which takes what orjson refuses (ints over 64 bits)."""
    try:
        return orjson.loads(orjson.dumps(schema))
    except TypeError:
        return copy.deepcopy(schema)


def _compile(schema: Any) -> Any:
    """A compiled validator for argument values (jsonschema-rs: the per-record hot path), or why not."""
    import jsonschema_rs

    try:
        return jsonschema_rs.Draft202012Validator(_thawed(schema))
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        return f"the parameters schema cannot be compiled: {exc}"
    except RecursionError:
        return "the parameters schema cannot be compiled: nested too deeply"


_validators = Memo(_compile, max_size=4096)


def validator_for(schema: Any) -> Any:
    """The compiled validator of any schema (a parameter's own, say), remembered by its repr; None when
    it cannot be compiled."""
    compiled = _validators.keyed(repr(schema), schema)
    return None if isinstance(compiled, str) else compiled
