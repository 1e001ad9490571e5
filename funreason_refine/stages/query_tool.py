"""Stage 2: are the tools usable and does the answer call only offered functions?"""

from __future__ import annotations

from collections import Counter

from funreason_refine.record import Record, Verdict
from funreason_refine.stages.base import Stage
from funreason_refine.stages.schemas import NO_PARAMETERS, schema_error


class QueryTool(Stage):
    """Tools are valid JSON Schemas with unique names; every called function is offered."""

    name = "query_tool"
    description = "Can the query be solved with the offered tools, and are the called functions among them?"
    order = 20
    timeout = None  # bounded by [input] max_record_bytes

    def check(self, record: Record) -> Verdict:
        for problem in record.problems:
            if problem.code == "unconvertible_type":
                return Verdict.discard("unconvertible_type", f"{problem.field}: {problem.message}")
        names = []
        for i, tool in enumerate(record.tools):
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                return Verdict.discard("invalid_tool_schema", f"tools[{i}] has no name")
            error = schema_error(tool.get("parameters", NO_PARAMETERS))
            if error:
                return Verdict.discard(
                    "invalid_tool_schema", f"tool {name!r}: parameters are not a valid JSON Schema: {error}"
                )
            names.append(name)
        offered = set(names)
        if len(offered) != len(names):
            duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
            return Verdict.discard("duplicate_tool_name", f"tools offered more than once: {', '.join(duplicates)}")
        unknown = [c.name for c in record.calls if c.name not in offered]
        if unknown:
            return Verdict.discard(
                "unknown_function",
                f"the answer calls {', '.join(sorted(set(unknown)))}, "
                f"which is not among the tools ({', '.join(names) or 'none offered'})",
            )
        return Verdict.passed()
