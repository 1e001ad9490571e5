"""Stage 5: the answer renders as ``[func(param=value)]`` and parses back to the same calls."""

from __future__ import annotations

from funreason_refine.calls import parses_back, parses_back_as_rendered, render_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.record import FunctionCall, Record, Verdict, changed
from funreason_refine.stages.base import Stage
from funreason_refine.targets import render_target


class Format(Stage):
    """Render the call syntax, parse it back safely, require identical calls; write the target."""

    name = "format"
    description = "Does the answer render exactly as [func(param=value, ...)] and parse back to the same calls?"
    order = 50
    on_fail = "regenerate"
    timeout = None  # bounded by [input] max_record_bytes
    judge_may_change_calls = False  # "regenerate the format only": its judge's NewFC may not change the calls

    def check(self, record: Record) -> Verdict:
        text = None
        if record.is_call_answer:
            try:
                text = render_calls(record.calls)
            except CallSyntaxError as exc:
                return Verdict.discard("unrenderable_call", str(exc))
            problem = _round_trip_problem(text, record.calls)
            if problem:
                return Verdict.discard("round_trip_mismatch", f"{text[:200]} {problem}")
        target = render_target(record, text)
        return Verdict.passed(record=changed(record, {"target": target}))


def _round_trip_problem(text: str, calls: list[FunctionCall]) -> str | None:
    if parses_back_as_rendered(text):
        return None
    try:
        same = parses_back(text, calls)
    except CallSyntaxError as exc:
        return f"does not parse back: {exc}"
    return None if same else "parses back to different calls"
