"""Training data from a run's kept records: funreason, hermes, sharegpt, openai; JSONL or Parquet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from funreason_refine.calls import render_calls
from funreason_refine.errors import RefineError
from funreason_refine.jsonl import read_jsonl, write_jsonl
from funreason_refine.record import FunctionCall
from funreason_refine.targets import funreason_messages, hermes_calls

FORMATS = ("funreason", "hermes", "sharegpt", "openai")
HERMES_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
    "XML tags. Think step by step inside <think></think>, then call one or more functions, each as a JSON "
    "object with its name and arguments within <tool_call></tool_call> XML tags.\n<tools>\n{tools}\n</tools>"
)


def _calls(record: dict[str, Any]) -> list[FunctionCall] | None:
    answer = record.get("answer")
    return [FunctionCall(**c) for c in answer] if isinstance(answer, list) else None


def _think(record: dict[str, Any]) -> str:
    cot = (record.get("cot") or "").strip()
    return f"<think>{cot}</think>\n\n" if cot else ""


def _openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": t} for t in tools]


def to_row(record: dict[str, Any], fmt: str) -> dict[str, Any]:
    """One kept record in one training format (a JSON object)."""
    calls, tools, query = _calls(record), record.get("tools", []), record["query"]
    tools_json = json.dumps(tools, ensure_ascii=False)
    base = {"id": record.get("id")}
    if fmt == "funreason":
        target = record.get("target") or _think(record) + (
            render_calls(calls) if calls is not None else record["answer"]
        )
        return {**base, "messages": funreason_messages(tools, query, target)}
    if fmt == "hermes":
        body = hermes_calls(calls) if calls is not None else record["answer"]
        return {
            **base,
            "tools": tools_json,
            "messages": [
                {"role": "system", "content": HERMES_SYSTEM.replace("{tools}", tools_json)},
                {"role": "user", "content": query},
                {"role": "assistant", "content": _think(record) + body},
            ],
        }
    if fmt == "sharegpt":
        if calls is not None:
            answer_turn = {
                "from": "function_call",
                "value": json.dumps(
                    [{"name": c.name, "arguments": c.arguments} for c in calls]
                    if len(calls) != 1
                    else {"name": calls[0].name, "arguments": calls[0].arguments},
                    ensure_ascii=False,
                ),
            }
        else:
            answer_turn = {"from": "gpt", "value": _think(record) + record["answer"]}
        return {
            **base,
            "conversations": [{"from": "human", "value": query}, answer_turn],
            "tools": tools_json,
            "cot": record.get("cot") or "",
        }
    if fmt == "openai":
        assistant: dict[str, Any] = {"role": "assistant", "content": _think(record).strip() or None}
        if calls is not None:
            assistant["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
                }
                for i, c in enumerate(calls)
            ]
        else:
            assistant["content"] = _think(record) + record["answer"]
        return {**base, "messages": [{"role": "user", "content": query}, assistant], "tools": _openai_tools(tools)}
    raise RefineError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _kept(run_dir: Path) -> Iterator[dict[str, Any]]:
    file = run_dir / "kept.jsonl"
    if not file.exists():
        raise RefineError(f"{run_dir} has no kept.jsonl: give a run folder of `refine run`")
    yield from read_jsonl(file)


def export_run(run_dir: Path, fmt: str, out: Path) -> int:
    """Write the kept records of ``run_dir`` to ``out`` (Parquet when it ends in .parquet); returns the count."""
    rows = (to_row(r, fmt) for r in _kept(Path(run_dir)))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        import polars as pl

        collected = list(rows)
        if fmt == "openai":
            # In a table, rows with different message and tool schemas would gain each other's keys as
            # nulls: messages and tools are stored as JSON strings (the readers take both forms).
            collected = [
                {
                    **r,
                    "messages": [json.dumps(m, ensure_ascii=False) for m in r["messages"]],
                    "tools": json.dumps(r["tools"], ensure_ascii=False),
                }
                for r in collected
            ]
        pl.DataFrame(collected).write_parquet(out)
        count = len(collected)
    else:
        count = write_jsonl(out, rows)
    if fmt == "sharegpt":
        info = {
            out.stem: {
                "file_name": out.name,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "tools": "tools"},
                "tags": {
                    "role_tag": "from",
                    "content_tag": "value",
                    "user_tag": "human",
                    "assistant_tag": "gpt",
                    "function_tag": "function_call",
                },
            }
        }
        (out.parent / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return count
