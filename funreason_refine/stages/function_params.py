"""Stage 4: function names, parameter names and values valid for the tools' schemas."""

from __future__ import annotations

from typing import Any

from funreason_refine.record import FunctionCall, Record, Verdict
from funreason_refine.stages.base import Stage
from funreason_refine.stages.coerce import coerce
from funreason_refine.stages.schemas import params_key, validator

_REASONS = {"type": "wrong_type", "enum": "not_in_enum", "const": "not_in_enum"}


def _keyword(error: Any) -> str:
    return str(error.schema_path[-1]) if error.schema_path else ""


def _path(call: str, error: Any) -> str:
    return call + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.instance_path)


class FunctionParams(Stage):
    """Required parameters present, no unknown ones, values valid (types, enums, nested items)."""

    name = "function_params"
    timeout = None  # bounded by [input] max_record_bytes

    def check(self, record: Record) -> Verdict:
        tools = {t.get("name"): t for t in record.tools}
        repaired: list[FunctionCall] = []
        changes: list[str] = []
        for call in record.calls:
            tool = tools.get(call.name)
            if tool is None:
                return Verdict.discard("unknown_function", f"{call.name} is not among the tools")
            schema = tool.get("parameters") or {}
            props = schema.get("properties") or {}
            missing = [p for p in schema.get("required", []) if p not in call.arguments]
            if missing:
                return Verdict.discard("missing_required", f"{call.name}: required parameter(s) {', '.join(missing)} missing")
            if not schema.get("additionalProperties", False):
                unknown = [a for a in call.arguments if a not in props]
                if unknown:
                    return Verdict.discard("unknown_parameter", f"{call.name}: parameter(s) {', '.join(unknown)} "
                                           f"not in the schema (known: {', '.join(props) or 'none'})")
            fixed = {k: coerce(v, props.get(k)) for k, v in call.arguments.items()}
            before = len(changes)
            for key, value in fixed.items():
                if value != call.arguments[key] or type(value) is not type(call.arguments[key]):
                    changes.append(f"{call.name}.{key}: {call.arguments[key]!r} -> {value!r}")
            repaired.append(FunctionCall(name=call.name, arguments=fixed) if len(changes) > before else call)
            try:
                check_args = validator(params_key(schema))
            except ValueError as exc:
                return Verdict.discard("invalid_tool_schema", f"tool {call.name!r}: {exc}")
            if check_args.is_valid(fixed):
                continue
            # Report the first error by position; at one position a type error before an enum error.
            errors = sorted(check_args.iter_errors(fixed),
                            key=lambda e: (list(map(str, e.instance_path)), _keyword(e) != "type"))
            if errors:
                error = errors[0]
                reason = _REASONS.get(_keyword(error), "invalid_value")
                return Verdict.discard(reason, f"{_path(call.name, error)}: {error.message[:300]}")
        if changes:
            return Verdict.regenerate(record.model_copy(update={"answer": repaired}), "coerced_type",
                                      "; ".join(changes))
        return Verdict.passed()
