"""Helpers for testing stages on literal records (used by this project's tests and by plugin authors)."""

from __future__ import annotations

import json
from typing import Any

from funreason_refine.readers import xlam
from funreason_refine.record import Record, Source, Verdict
from funreason_refine.stages.base import Stage


def make_record(query: str = "What's the weather in Paris?", tools: list[dict[str, Any]] | None = None,
                answers: Any = None, cot: str | None = None, index: int = 0, id: str | None = None) -> Record:
    """Build a record exactly as the xLAM reader would from these fields.

    ``tools`` may be xLAM tools (Python-style types), OpenAI functions or JSON Schema;
    ``answers`` a list of ``{"name", "arguments"}`` calls, a JSON string, or a text answer.
    """
    if tools is None:
        tools = [{"name": "get_weather", "description": "Weather for a city.",
                  "parameters": {"city": {"type": "str", "description": "City"}}}]
    if answers is None:
        answers = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    obj: dict[str, Any] = {"id": id or f"test-{index}", "query": query, "tools": json.dumps(tools),
                           "answers": answers if isinstance(answers, str) else json.dumps(answers)}
    if cot is not None:
        obj["cot"] = cot
    return xlam.to_record(obj, Source(file="<test>", line=index + 1), index)


def check(stage: Stage | type[Stage], record: Record, **config: Any) -> Verdict:
    """Run one stage (a class is instantiated with ``config``) on one record."""
    instance = stage(stage.Config(**config)) if isinstance(stage, type) else stage
    return instance.check(record)
