"""Helpers for testing stages on literal records (used by this project's tests and by plugin authors)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from funreason_refine.readers import xlam
from funreason_refine.record import Outcome, Record, Source, Verdict
from funreason_refine.stages.base import Stage


def make_record(
    query: str = "What's the weather in Paris?",
    tools: list[dict[str, Any]] | None = None,
    answers: Any = None,
    cot: str | None = None,
    index: int = 0,
    id: str | None = None,
) -> Record:
    """Build a record exactly as the xLAM reader would from these fields.

    ``tools`` may be xLAM tools (Python-style types), OpenAI functions or JSON Schema;
    ``answers`` a list of ``{"name", "arguments"}`` calls, a JSON string, or a text answer.
    """
    if tools is None:
        tools = [
            {
                "name": "get_weather",
                "description": "Weather for a city.",
                "parameters": {"city": {"type": "str", "description": "City"}},
            }
        ]
    if answers is None:
        answers = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    obj: dict[str, Any] = {
        "id": id or f"test-{index}",
        "query": query,
        "tools": json.dumps(tools),
        "answers": answers if isinstance(answers, str) else json.dumps(answers),
    }
    if cot is not None:
        obj["cot"] = cot
    return xlam.to_record(obj, Source(file="<test>", line=index + 1), index)


def check(stage: Stage | type[Stage], record: Record, **config: Any) -> Verdict:
    """Run one stage (a class is instantiated with ``config``) on one record."""
    instance = stage(stage.Config(**config)) if isinstance(stage, type) else stage
    return instance.check(record)


def run_rows(rows: list[dict[str, Any]], folder: Any, stages_toml: str = "", extra_toml: str = "") -> dict[str, list]:
    """Run a pipeline on xLAM-shaped ``rows`` in ``folder``; return the lines of each outcome file.

    ``stages_toml`` holds ``[[stages]]`` tables (default: the five built-in stages).
    """
    from pathlib import Path

    from funreason_refine.config import load_pipeline
    from funreason_refine.engine import run_pipeline

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "input.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    (folder / "pipeline.toml").write_text(
        f'{extra_toml}\n[input]\npath = "input.jsonl"\nformat = "xlam"\n[output]\ndir = "run"\n{stages_toml}',
        encoding="utf-8",
    )
    run_pipeline(load_pipeline(folder / "pipeline.toml"), workers=1)
    out: dict[str, list[Any]] = {}
    for kind in (Outcome.KEPT, Outcome.DISCARDED, Outcome.QUARANTINED, Outcome.ERRORS):
        text = (folder / "run" / f"{kind}.jsonl").read_text(encoding="utf-8")
        # "\n" only: str.splitlines() would also split on U+0085 and U+2028 inside JSON strings.
        out[kind] = [json.loads(line) for line in text.split("\n") if line]
    return out


@contextmanager
def registered(plugin: Any, name: str) -> Iterator[Any]:
    """Register a plugin object for the duration of a ``with`` block (tests of hooks and stages)."""
    from funreason_refine.plugin_manager import get_plugin_manager

    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    try:
        yield plugin
    finally:
        pm.unregister(name=name)
