"""Chat-shaped records: OpenAI messages with ``tool_calls`` and ``tool`` results (also our funreason and
hermes exports), and ShareGPT (LLaMA-Factory, APIGen-MT/xLAM-2) with ``function_call`` and
``observation`` turns; one user message and one answer is a single-turn record, more is a
conversation."""

from __future__ import annotations

import json
from typing import Any

from funreason_refine.readers.answers import FieldError, maybe_json, parse_call, parse_tools, record_id
from funreason_refine.readers.conversations import chat_record
from funreason_refine.record import FunctionCall, Message, Problem, Record, Source
from funreason_refine.targets import calls_from_text, own_system, split_think, tools_from_system

Answer = list[FunctionCall] | str | None


def looks_like_openai(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("messages"), list)


def looks_like_sharegpt(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("conversations"), list)


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if isinstance(content, dict):  # a tool result given as an object
        return json.dumps(content, ensure_ascii=False)
    if not isinstance(content, str):
        raise FieldError(where, f"{where}: content must be text, got {type(content).__name__}")
    return content


def _answer_from_text(text: str, where: str, problems: list[Problem]) -> tuple[str | None, Answer]:
    """(CoT, answer) of an assistant text: calls written as <tool_call> blocks or [func(...)], else text."""
    cot, rest = split_think(text)
    if not rest.strip():
        return cot, []  # reasoning and no call: the "no function applies" answer
    try:
        calls = calls_from_text(rest)
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(Problem(field=where, code="malformed_answer", message=f"tool call blocks do not parse: {exc}"))
        return cot, None
    return cot, (calls if calls is not None else rest.strip())


# --- OpenAI messages ---------------------------------------------------------------------------


def openai_record(obj: dict[str, Any], source: Source, index: int) -> Record:
    raw = [_parsed(m, f"messages[{i}]") for i, m in enumerate(obj["messages"])]
    problems: list[Problem] = []
    system: str | None = None
    messages: list[Message] = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, f"{where} must be an object with a role, got {type(item).__name__}")
        role = item.get("role")
        if role == "system":
            text = _text(item.get("content"), where)
            system = text if system is None else f"{system}\n\n{text}"
        elif role in ("user", "assistant", "tool"):
            messages.append(_openai_message(item, role, where, problems))
        else:
            raise FieldError(where, f"{where}: unknown role {role!r}; expected system, user, assistant or tool")
    if not any(m.role == "user" for m in messages):
        raise FieldError("messages", "no user message")
    raw_tools = maybe_json(obj.get("tools"), "tools")
    if raw_tools is None:
        raw_tools = tools_from_system(system or "") or []
    tools = parse_tools(raw_tools, problems)
    rid = record_id(obj, f"{index}")
    return chat_record(obj, source, index, rid, messages, tools, own_system(system), problems)


def _parsed(message: Any, where: str) -> Any:
    """A message; our Parquet export stores each one as a JSON string."""
    if not isinstance(message, str):
        return message
    try:
        return json.loads(message)
    except ValueError:
        raise FieldError(where, f"{where} must be an object with a role, got a string that is not JSON") from None


def _openai_message(item: dict[str, Any], role: str, where: str, problems: list[Problem]) -> Message:
    if role == "user":
        return Message(role="user", content=_text(item.get("content"), where))
    if role == "tool":
        call_id = item.get("tool_call_id")
        name = item.get("name")
        return Message(
            role="tool",
            content=_text(item.get("content"), where),
            call_id=call_id if isinstance(call_id, str) else None,
            name=name if isinstance(name, str) else None,
        )
    return _openai_assistant(item, where, problems)


def _openai_assistant(item: dict[str, Any], where: str, problems: list[Problem]) -> Message:
    cot = item.get("reasoning_content") or None
    text = _text(item.get("content"), where)
    tool_calls = item.get("tool_calls")
    if not isinstance(tool_calls, list):  # the answer is in the text: calls, or a response
        text_cot, in_text = _answer_from_text(text, where, problems)
        return Message(role="assistant", answer=in_text, cot=cot or text_cot)
    text_cot, _ = split_think(text)
    answer: Answer
    ids: list[str] = []
    try:
        answer = [
            parse_call(tc.get("function", tc) if isinstance(tc, dict) else tc, f"{where}.tool_calls[{n}]")
            for n, tc in enumerate(tool_calls)
        ]
        ids = [tc["id"] for tc in tool_calls if isinstance(tc.get("id"), str)]
    except ValueError as exc:
        problems.append(Problem(field=where, code="malformed_answer", message=str(exc)))
        answer = None
    if len(ids) != len(tool_calls):
        ids = []  # some calls have no id: all are numbered by position
    return Message(role="assistant", answer=answer, call_ids=ids, cot=cot or text_cot)


# --- ShareGPT ----------------------------------------------------------------------------------

_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "function_call",
    "observation": "tool",
    "tool": "tool",
    "system": "system",
}


def sharegpt_record(obj: dict[str, Any], source: Source, index: int) -> Record:
    turns = obj["conversations"]
    problems: list[Problem] = []
    system = obj.get("system") if isinstance(obj.get("system"), str) and obj.get("system") else None
    cots = _cots(obj)
    messages: list[Message] = []
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise FieldError(where, f"{where} must be an object with 'from' and 'value'")
        role = _ROLES.get(turn.get("from"))  # type: ignore[arg-type]
        if role is None:
            raise FieldError(
                where, f"{where}: unknown 'from' {turn.get('from')!r}; expected one of {', '.join(_ROLES)}"
            )
        if role == "system":
            system = _text(turn.get("value"), where)
            continue
        cot = cots.pop(0) if role in ("assistant", "function_call") and cots else None
        message = _sharegpt_message(turn.get("value"), role, cot, where, problems)
        messages.extend(_observations(message, messages[-1] if messages else None))
    if not any(m.role == "user" for m in messages):
        raise FieldError("conversations", "no human turn")
    tools = parse_tools(maybe_json(obj.get("tools", []), "tools"), problems)
    rid = record_id(obj, f"{index}")
    return chat_record(obj, source, index, rid, messages, tools, own_system(system), problems)


def _cots(obj: dict[str, Any]) -> list[str | None]:
    """The CoTs of the assistant turns, in order: ``cots`` (our multi-turn export) or ``cot`` (one turn)."""
    cots = obj.get("cots")
    if isinstance(cots, list):
        return [c if isinstance(c, str) and c else None for c in cots]
    cot = obj.get("cot")
    return [cot] if isinstance(cot, str) and cot else []


def _sharegpt_message(value: Any, role: str, cot: str | None, where: str, problems: list[Problem]) -> Message:
    if role == "user":
        return Message(role="user", content=_text(value, where))
    if role == "tool":
        return Message(role="tool", content=_text(value, where))
    if role == "function_call":
        return Message(role="assistant", answer=_function_call(value, where, problems), cot=cot)
    text_cot, answer = _answer_from_text(_text(value, where), where, problems)
    return Message(role="assistant", answer=answer, cot=text_cot or cot)


def _observations(message: Message, before: Message | None) -> list[Message]:
    """ShareGPT alternates turns, so one observation answers every call of a parallel function_call:
    a JSON list with one item per call is split into one result per call."""
    calls = before.answer if before is not None and isinstance(before.answer, list) else []
    if message.role != "tool" or len(calls) < 2:
        return [message]
    try:
        items = json.loads(message.content or "")
    except ValueError:
        return [message]
    if not isinstance(items, list) or len(items) != len(calls):
        return [message]
    return [Message(role="tool", content=i if isinstance(i, str) else json.dumps(i, ensure_ascii=False)) for i in items]


def _function_call(value: Any, where: str, problems: list[Problem]) -> Answer:
    try:
        parsed = maybe_json(value, where)
        items = parsed if isinstance(parsed, list) else [parsed]
        return [parse_call(v, f"{where}[{n}]") for n, v in enumerate(items)]
    except (ValueError, FieldError) as exc:
        problems.append(Problem(field=where, code="malformed_answer", message=str(exc)))
        return None
