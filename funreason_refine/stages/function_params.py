"""Stage 4: function names, parameter names and values valid for the tools' schemas."""

from __future__ import annotations

from typing import Any

from funreason_refine.labels import LABEL_CONTRADICTS_SCHEMA, label_problem
from funreason_refine.record import FunctionCall, Record, Verdict
from funreason_refine.stages.base import Stage
from funreason_refine.stages.coerce import coerce, repair_enum
from funreason_refine.stages.schemas import NO_PARAMETERS, ParamsInfo, params_info

_REASONS = {"type": "wrong_type", "enum": "not_in_enum", "const": "not_in_enum"}


def _keyword(error: Any) -> str:
    return str(error.schema_path[-1]) if error.schema_path else ""


def _path(call: str, error: Any) -> str:
    return call + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.instance_path)


def _discard(record: Record, at: int, function: str, parameters: list[Any], reason: str, message: str) -> Verdict:
    """Discard with ``reason``, or as a label bug when the reader noted that one of ``parameters``
    of call ``at`` has no acceptable value its schema allows."""
    for parameter in parameters:
        problem = label_problem(record, at, function, parameter) if isinstance(parameter, str) else None
        if problem is not None:
            message = f"{problem.field}: {problem.message}; correct the label or the tool's schema"
            return Verdict.discard(LABEL_CONTRADICTS_SCHEMA, message)
    return Verdict.discard(reason, message)


def _check_names(record: Record, at: int, call: FunctionCall, info: ParamsInfo) -> Verdict | None:
    """Required parameters present and, for a closed schema, no unknown ones."""
    args = call.arguments
    if args.keys() >= info.required_names and (not info.closed or info.properties.keys() >= args.keys()):
        return None  # the common case, in set operations (the lists below cost twice as much)
    missing = [p for p in info.required if p not in args]
    if missing:
        message = f"{call.name}: required parameter(s) {', '.join(missing)} missing"
        return _discard(record, at, call.name, missing, "missing_required", message)
    if info.closed:
        unknown = [a for a in args if a not in info.properties]
        if unknown:
            message = (
                f"{call.name}: parameter(s) {', '.join(unknown)} "
                f"not in the schema (known: {', '.join(info.properties) or 'none'})"
            )
            return _discard(record, at, call.name, unknown, "unknown_parameter", message)
    return None


def _repair(call: FunctionCall, info: ParamsInfo, changes: list[tuple[str, str]]) -> dict[str, Any]:
    """The arguments with unambiguous repairs made; each change noted as (kind, text) in ``changes``."""
    args = call.arguments
    fixed = args
    for key, value in args.items():
        if type(value) in info.settled.get(key, ()):
            continue
        schema = info.properties.get(key)
        new = coerce(value, schema)
        if new != value or type(new) is not type(value):
            new = repair_enum(new, schema) if key in info.with_enum else new
            changes.append(("type", f"{call.name}.{key}: {value!r} -> {new!r}"))
        elif key in info.with_enum:
            new = repair_enum(value, schema)
            if new == value and type(new) is type(value):
                continue
            changes.append(("enum", f"{call.name}.{key}: {value!r} -> {new!r} (enum member)"))
        else:
            continue
        if fixed is args:
            fixed = dict(args)
        fixed[key] = new
    return fixed


def _check_values(record: Record, at: int, name: str, args: dict[str, Any], info: ParamsInfo) -> Verdict | None:
    """Values valid for the schema; the first error by position, at one position a type error first."""
    try:
        check_args = info.validator()
    except ValueError as exc:
        return Verdict.discard("invalid_tool_schema", f"tool {name!r}: {exc}")
    if check_args.is_valid(args):
        return None
    try:
        found = list(check_args.iter_errors(args))
    except ValueError as exc:  # the validator's "Recursion limit reached": a value nested deeper than it walks
        return Verdict.discard("invalid_value", f"{name}: a value is nested too deeply to be checked ({exc})")
    errors = sorted(found, key=lambda e: (list(map(str, e.instance_path)), _keyword(e) != "type"))
    if not errors:
        return None
    error = errors[0]
    reason = _REASONS.get(_keyword(error), "invalid_value")
    message = f"{_path(name, error)}: {error.message[:300]}"
    return _discard(record, at, name, list(error.instance_path[:1]), reason, message)


class FunctionParams(Stage):
    """Required parameters present, no unknown ones, values valid (types, enums, nested items)."""

    name = "function_params"
    description = "Are function names, parameter names and values right for the query and the schemas?"
    order = 40
    on_fail = "regenerate"
    timeout = None  # bounded by [input] max_record_bytes

    def check(self, record: Record) -> Verdict:
        tools = {t.get("name"): t for t in record.tools}
        repaired: list[FunctionCall] = []
        changes: list[tuple[str, str]] = []
        for at, call in enumerate(record.calls):
            tool = tools.get(call.name)
            if tool is None:
                return Verdict.discard("unknown_function", f"{call.name} is not among the tools")
            info = params_info(tool.get("parameters") or NO_PARAMETERS)
            failed = _check_names(record, at, call, info)
            if failed is not None:
                return failed
            fixed = _repair(call, info, changes)
            repaired.append(call if fixed is call.arguments else FunctionCall(name=call.name, arguments=fixed))
            failed = _check_values(record, at, call.name, fixed, info)
            if failed is not None:
                return failed
        if not changes:
            return Verdict.passed()
        # One repair verdict per record; coerced_enum only when every change made a value an enum member.
        reason = "coerced_enum" if all(kind == "enum" for kind, _ in changes) else "coerced_type"
        return Verdict.regenerate(
            record.model_copy(update={"answer": repaired}), reason, "; ".join(text for _, text in changes)
        )
