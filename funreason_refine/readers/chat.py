"""Chat-shaped records: OpenAI messages with ``tool_calls`` (also our funreason and hermes exports)
and LLaMA-Factory ShareGPT with ``function_call`` turns."""

from __future__ import annotations

import json
from typing import Any

from funreason_refine.readers.answers import FieldError, maybe_json, parse_call, parse_tools, record_id
from funreason_refine.record import FunctionCall, Problem, Record, Source, read_record
from funreason_refine.targets import calls_from_text, split_think, tools_from_system


def looks_like_openai(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("messages"), list)


def looks_like_sharegpt(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("conversations"), list)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise FieldError("messages", f"message content must be text, got {type(content).__name__}")
    return content


def _answer_from_text(text: str, problems: list[Problem]) -> tuple[str | None, list[FunctionCall] | str | None]:
    cot, rest = split_think(text)
    if not rest.strip():
        return cot, []  # reasoning and no call: the "no function applies" answer
    try:
        calls = calls_from_text(rest)
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(
            Problem(field="messages", code="malformed_answer", message=f"tool call blocks do not parse: {exc}")
        )
        return cot, None
    return cot, (calls if calls is not None else rest.strip())


def openai_record(obj: dict[str, Any], source: Source, index: int) -> Record:
    # Our Parquet export stores each message as a JSON string.
    messages = [json.loads(m) if isinstance(m, str) else m for m in obj["messages"]]
    if not all(isinstance(m, dict) for m in messages):
        raise FieldError("messages", "every message must be an object with a role")
    user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if user is None:
        raise FieldError("messages", "no user message")
    query = _text(messages[user].get("content"))
    assistant = next((m for m in messages[user + 1 :] if m.get("role") == "assistant"), None)
    if assistant is None:
        raise FieldError("messages", "no assistant message after the user message")
    problems: list[Problem] = []
    raw_tools = maybe_json(obj.get("tools"), "tools")
    if raw_tools is None:
        system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
        raw_tools = tools_from_system(system) or []
    tools = parse_tools(raw_tools, problems)
    cot = assistant.get("reasoning_content") or None
    answer: list[FunctionCall] | str | None
    if isinstance(assistant.get("tool_calls"), list):  # an empty list is a no-call answer
        text_cot, _ = split_think(_text(assistant.get("content")))
        cot = cot or text_cot
        try:
            answer = [
                parse_call(tc.get("function", tc) if isinstance(tc, dict) else tc, f"tool_calls[{i}]")
                for i, tc in enumerate(assistant["tool_calls"])
            ]
        except ValueError as exc:
            problems.append(Problem(field="messages", code="malformed_answer", message=str(exc)))
            answer = None
    else:
        text_cot, answer = _answer_from_text(_text(assistant.get("content")), problems)
        cot = cot or text_cot
    return read_record(index, record_id(obj, f"{index}"), source, query, tools, answer, cot, problems, {})


def sharegpt_record(obj: dict[str, Any], source: Source, index: int) -> Record:
    turns = obj["conversations"]
    if not all(isinstance(t, dict) for t in turns):
        raise FieldError("conversations", "every turn must be an object with 'from' and 'value'")
    human = next((i for i, t in enumerate(turns) if t.get("from") in ("human", "user")), None)
    if human is None:
        raise FieldError("conversations", "no human turn")
    query = _text(turns[human].get("value"))
    problems: list[Problem] = []
    tools = parse_tools(maybe_json(obj.get("tools", []), "tools"), problems)
    after = turns[human + 1 :]
    cot = obj.get("cot") if isinstance(obj.get("cot"), str) and obj.get("cot") else None
    answer: list[FunctionCall] | str | None
    if after and after[0].get("from") == "function_call":
        try:
            value = maybe_json(after[0].get("value"), "conversations")
            items = value if isinstance(value, list) else [value]
            answer = [parse_call(v, f"function_call[{i}]") for i, v in enumerate(items)]
        except (ValueError, FieldError) as exc:
            problems.append(Problem(field="conversations", code="malformed_answer", message=str(exc)))
            answer = None
    elif after and after[0].get("from") in ("gpt", "assistant"):
        text_cot, answer = _answer_from_text(_text(after[0].get("value")), problems)
        cot = cot or text_cot
    else:
        raise FieldError("conversations", "the human turn is not followed by a function_call or gpt turn")
    return read_record(index, record_id(obj, f"{index}"), source, query, tools, answer, cot, problems, {})
