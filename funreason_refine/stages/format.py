"""Stage 5: the answer renders as ``[func(param=value)]`` and parses back to the same calls."""

from __future__ import annotations

import json

from funreason_refine.calls import parse_calls, render_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.record import Record, Verdict
from funreason_refine.stages.base import Stage
from funreason_refine.target import render_target


def _canonical(calls) -> str:
    # JSON, not ==: in Python True == 1 and 1 == 1.0, but they are different arguments.
    return json.dumps([c.model_dump() for c in calls], sort_keys=True)


class Format(Stage):
    """Render the call syntax, parse it back safely, require identical calls; write the target."""

    name = "format"

    def check(self, record: Record) -> Verdict:
        if record.is_call_answer:
            try:
                text = render_calls(record.calls)
            except CallSyntaxError as exc:
                return Verdict.discard("unrenderable_call", str(exc))
            try:
                back = parse_calls(text)
            except CallSyntaxError as exc:
                return Verdict.discard("round_trip_mismatch", f"{text[:200]} does not parse back: {exc}")
            if _canonical(back) != _canonical(record.calls):
                return Verdict.discard("round_trip_mismatch", f"{text[:200]} parses back to different calls")
        target = render_target(record)
        return Verdict(action="pass", record=record.model_copy(update={"target": target}))
