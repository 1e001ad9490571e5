"""Stage 4: function names, parameter names and values valid for the tools' schemas."""

from __future__ import annotations

from typing import Any

from funreason_refine.record import FunctionCall, Record, Verdict
from funreason_refine.stages.base import Stage
from funreason_refine.stages.coerce import coerce
from funreason_refine.stages.schemas import NO_PARAMETERS, params_info

_REASONS = {"type": "wrong_type", "enum": "not_in_enum", "const": "not_in_enum"}


def _keyword(error: Any) -> str:
    return str(error.schema_path[-1]) if error.schema_path else ""


def _path(call: str, error: Any) -> str:
    return call + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.instance_path)


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
        changes: list[str] = []
        for call in record.calls:
            tool = tools.get(call.name)
            if tool is None:
                return Verdict.discard("unknown_function", f"{call.name} is not among the tools")
            info = params_info(tool.get("parameters") or NO_PARAMETERS)
            props = info.properties
            args = call.arguments
            missing = [p for p in info.required if p not in args]
            if missing:
                return Verdict.discard(
                    "missing_required", f"{call.name}: required parameter(s) {', '.join(missing)} missing"
                )
            if info.closed:
                unknown = [a for a in args if a not in props]
                if unknown:
                    return Verdict.discard(
                        "unknown_parameter",
                        f"{call.name}: parameter(s) {', '.join(unknown)} "
                        f"not in the schema (known: {', '.join(props) or 'none'})",
                    )
            fixed = args
            for key, value in args.items():
                if type(value) in info.settled.get(key, ()):
                    continue
                new = coerce(value, props.get(key))
                if new != value or type(new) is not type(value):
                    if fixed is args:
                        fixed = dict(args)
                    fixed[key] = new
                    changes.append(f"{call.name}.{key}: {value!r} -> {new!r}")
            repaired.append(call if fixed is args else FunctionCall(name=call.name, arguments=fixed))
            try:
                check_args = info.validator()
            except ValueError as exc:
                return Verdict.discard("invalid_tool_schema", f"tool {call.name!r}: {exc}")
            if check_args.is_valid(fixed):
                continue
            # Report the first error by position; at one position a type error before an enum error.
            errors = sorted(
                check_args.iter_errors(fixed), key=lambda e: (list(map(str, e.instance_path)), _keyword(e) != "type")
            )
            if errors:
                error = errors[0]
                reason = _REASONS.get(_keyword(error), "invalid_value")
                return Verdict.discard(reason, f"{_path(call.name, error)}: {error.message[:300]}")
        if changes:
            return Verdict.regenerate(
                record.model_copy(update={"answer": repaired}), "coerced_type", "; ".join(changes)
            )
        return Verdict.passed()
