"""OpenAI-style conversations written by hand, and a real run over them (report, audit and review tests)."""

import json
from pathlib import Path

from funreason_refine.config import load_pipeline
from funreason_refine.engine import run_pipeline
from tests.conftest import read_jsonl, write_jsonl


def tool(name, **properties):
    """An OpenAI function whose every parameter is required."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": name,
            "parameters": {"type": "object", "properties": properties, "required": list(properties)},
        },
    }


WEATHER = tool("get_weather", city={"type": "string"})
TIME = tool("get_time", tz={"type": "string"})
FORECAST = tool("get_forecast", city={"type": "string"}, days={"type": "integer"})


def user(text):
    return {"role": "user", "content": text}


def calls(*made):
    """An assistant turn calling ``(id, name, arguments)`` for each of ``made``."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, n, a in made
        ],
    }


def result(call_id, content):
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def say(text):
    return {"role": "assistant", "content": text}


def chat(rid, *messages, tools=(WEATHER, TIME, FORECAST)):
    return {"id": rid, "tools": list(tools), "messages": list(messages)}


def run_chats(rows, folder: Path, stages: str = "") -> dict:
    """Refine ``rows`` (read as OpenAI messages) with the real engine into ``folder``/run; the outcome lines."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "chats.jsonl", rows)
    pipeline = folder / "pipeline.toml"
    pipeline.write_text(f'[input]\npath = "chats.jsonl"\nformat = "openai"\n[output]\ndir = "run"\n{stages}')
    run_pipeline(load_pipeline(pipeline), workers=1)
    return {k: read_jsonl(folder / "run" / f"{k}.jsonl") for k in ("kept", "discarded", "quarantined", "errors")}
