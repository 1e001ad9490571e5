"""The assistant training target of the paper: ``<think>{cot}</think>\\n\\n[func(param=value)]``."""

from __future__ import annotations

from funreason_refine.calls import render_calls
from funreason_refine.record import Record


def render_target(record: Record, calls_text: str | None = None) -> str:
    """Raises CallSyntaxError when a call cannot be written in the paper's syntax.

    ``calls_text`` is the already rendered call list, when the caller has it.
    """
    if isinstance(record.answer, str):
        body = record.answer
    else:
        body = calls_text if calls_text is not None else render_calls(record.calls)
    if record.cot is None or not record.cot.strip():
        return body
    return f"<think>{record.cot.strip()}</think>\n\n{body}"
