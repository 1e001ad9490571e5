"""BFCL possible answers made into reference calls, read as BFCL's own AST checker reads them.

In ``possible_answer/`` every argument, and every key of an object at any depth (an object
argument, objects in a list argument), lists its acceptable values; ``""`` among them means the
argument may be left out. The reference call takes, per argument, the first acceptable value
that satisfies the tool's schema, as it is or after an unambiguous repair (kept unrepaired:
``function_params`` makes the repair and says so); ``""`` is chosen only where the schema lets
the argument be left out. When no acceptable value can satisfy the schema, the argument keeps
its first one and the record gets a ``label_contradicts_schema`` problem, which
``function_params`` turns into a discard with that reason.

Written by hand: BFCL's checker (``bfcl_eval/eval_checker/ast_eval/ast_checker.py``) grades a
model's call against the possible answers but builds no reference call, and its package
depends on dozens of model SDKs.
"""

from __future__ import annotations

from typing import Any

from funreason_refine.labels import LABEL_CONTRADICTS_SCHEMA, label_field
from funreason_refine.readers.answers import FieldError
from funreason_refine.record import FunctionCall, Problem

# The coercions function_params makes: a value they repair is acceptable (the stage repairs it).
from funreason_refine.stages.coerce import coerce, repair_enum
from funreason_refine.stages.schemas import validator_for

_OMIT = object()  # the chosen "value" of an argument left out
_UNKNOWN = object()  # the "schema" of an argument a closed tool schema does not have


def reference_calls(
    truth: Any, record_id: str, tools: list[dict[str, Any]], problems: list[Problem]
) -> list[FunctionCall]:
    """The reference calls of one ``ground_truth`` list; label contradictions noted in ``problems``."""
    if not isinstance(truth, list):
        raise FieldError("ground_truth", f"ground truth of {record_id} must be a list of calls")
    schemas: dict[str, Any] = {}
    for tool in tools:
        if isinstance(tool.get("name"), str):
            schemas.setdefault(tool["name"], tool.get("parameters"))
    calls = []
    for at, item in enumerate(truth):
        if not isinstance(item, dict) or len(item) != 1:
            raise FieldError(
                "ground_truth", f"ground truth of {record_id}: each call must be {{name: {{param: [values]}}}}"
            )
        ((name, params),) = item.items()
        if not isinstance(params, dict):
            raise FieldError("ground_truth", f"ground truth of {record_id}: parameters of {name} must be an object")
        schema = schemas.get(name)
        arguments = _arguments(at, name, params, schema if isinstance(schema, dict) else None, problems)
        calls.append(FunctionCall(name=name, arguments=arguments))
    return calls


def _arguments(
    at: int, name: str, params: dict[str, Any], schema: dict[str, Any] | None, problems: list[Problem]
) -> dict[str, Any]:
    """One call's arguments. Without a schema (no tool offers the function) each takes its first value."""
    required = _required(schema)
    arguments: dict[str, Any] = {}
    for param, values in params.items():
        where = label_field(at, name, param)
        value, why = _choose(values, _parameter(schema, param), param not in required, where)
        if why is not None:
            problems.append(Problem(field=where, code=LABEL_CONTRADICTS_SCHEMA, message=why))
        if value is not _OMIT:
            arguments[param] = value
    for param in required:
        if param not in params:
            problems.append(
                Problem(
                    field=label_field(at, name, param),
                    code=LABEL_CONTRADICTS_SCHEMA,
                    message="required by the schema, but missing from the label",
                )
            )
    return arguments


def _choose(values: Any, schema: Any, may_omit: bool, where: str) -> tuple[Any, str | None]:
    """(the first acceptable value ``schema`` allows, or _OMIT; why none can, or None)."""
    if not isinstance(values, list):
        raise FieldError(where, f"{where}: ground truth must be a list of acceptable values, got {values!r:.100}")
    candidates = []
    for value in values:
        if value == "":
            if may_omit:
                return _OMIT, None
            continue
        candidate = _resolve(value, schema, where)
        if _fits(candidate, schema):
            return candidate, None
        candidates.append(candidate)
    if not values and may_omit:
        return _OMIT, None
    return (candidates[0] if candidates else _OMIT), _why_not(values, candidates, schema)


def _why_not(values: list[Any], candidates: list[Any], schema: Any) -> str:
    shown = f"{values!r:.200}"
    if schema is _UNKNOWN:
        return f"not a parameter of the schema, and the label {shown} does not allow leaving it out"
    if not values:
        return "required by the schema, but the label lists no acceptable value"
    if not candidates:
        return f"required by the schema, but the label {shown} only allows leaving it out"
    return f"no acceptable value in {shown} fits the schema: {_first_error(candidates[0], schema)}"


def _resolve(value: Any, schema: Any, where: str) -> Any:
    """An acceptable value with the acceptable-value lists inside its objects resolved, at every depth.

    An object with a value that is not a list is taken as it is: BFCL compares objects below the
    first level literally, and writes them so (``live_multiple_121-46-0``: ``"position":
    [{"lateral": 10.5, "longitudinal": 50}]``).
    """
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        out = {}
        required = _required(schema)
        for key, values in value.items():
            # A nested object is open unless its schema says otherwise, as the validator reads it.
            inner, _ = _choose(values, _property(schema, key), key not in required, f"{where}.{key}")
            if inner is not _OMIT:
                out[key] = inner
        return out
    if isinstance(value, list):
        return [_resolve(item, _item(schema, i), f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _required(schema: Any) -> list[str]:
    required = schema.get("required") if isinstance(schema, dict) else None
    return [r for r in required if isinstance(r, str)] if isinstance(required, list) else []


def _parameter(schema: dict[str, Any] | None, name: str) -> Any:
    """A top-level parameter's schema: tools are closed unless they say otherwise (as function_params reads them)."""
    if schema is None:
        return None
    props = schema.get("properties")
    if isinstance(props, dict) and name in props:
        return props[name]
    extra = schema.get("additionalProperties", False)
    if extra is False or extra is None:
        return _UNKNOWN
    return extra if isinstance(extra, dict) else None


def _property(schema: Any, name: str) -> Any:
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties")
    if isinstance(props, dict) and name in props:
        return props[name]
    extra = schema.get("additionalProperties")
    return _UNKNOWN if extra is False else extra if isinstance(extra, dict) else None


def _item(schema: Any, index: int) -> Any:
    if not isinstance(schema, dict):
        return None
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list) and index < len(prefix):
        return prefix[index]
    items = schema.get("items")
    return items if isinstance(items, dict) else None


def _fits(value: Any, schema: Any) -> bool:
    """``schema`` allows ``value`` as it is or once repaired; no schema allows anything."""
    if schema is None:
        return True
    if schema is _UNKNOWN:
        return False
    validator = _validator(schema)
    if validator is None:  # an invalid schema: query_tool discards the record, saying why
        return True
    return bool(validator.is_valid(value) or validator.is_valid(repair_enum(coerce(value, schema), schema)))


def _first_error(value: Any, schema: Any) -> str:
    validator = _validator(schema)
    error = next(iter(validator.iter_errors(value)), None) if validator is not None else None
    if error is None:
        return f"{value!r:.100}"
    where = "".join(f"[{p!r}]" for p in error.instance_path)
    return f"{where}: {error.message:.200}" if where else f"{error.message:.200}"


def _validator(schema: dict[str, Any]) -> Any:
    """A compiled validator for ``schema``, or None when it cannot have one."""
    return validator_for(schema)
