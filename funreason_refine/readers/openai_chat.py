"""OpenAI messages (also our funreason and hermes exports): ``tool_calls`` (or a legacy
``function_call``) and ``tool`` (or legacy ``function``) results. Every field is read as what it
means, or the record is quarantined naming the message and field; docs/reading.md says what is
normalised and why."""

from __future__ import annotations

from typing import Any

from funreason_refine.call_text import is_call_id
from funreason_refine.jsonl import loads_unique, why_not_json
from funreason_refine.readers.answers import FieldError, maybe_json, parse_tools, record_fields, record_system
from funreason_refine.readers.content import (
    AssistantText,
    answer_from_text,
    glaive_result,
    read_content,
    text_of,
    unread_fields,
)
from funreason_refine.readers.conversations import Chat, chat_record
from funreason_refine.readers.system_tools import given_tools, record_tools, same_tools
from funreason_refine.record import FunctionCall, Message, Problem, Record, Source
from funreason_refine.targets import split_think

_SAID = ("role", "content", "name")
FIELDS = {
    "system": _SAID,
    "user": _SAID,
    "function": _SAID,
    "tool": (*_SAID, "tool_call_id"),
    "assistant": (*_SAID, "tool_calls", "function_call", "refusal", "reasoning_content", "reasoning"),
}
"""The fields each role's message may have (others must be empty; see content.unread_fields)."""
CALL_FIELDS = ("id", "type", "function", "index", "name", "arguments")
FUNCTION_FIELDS = ("name", "arguments")
Given = tuple[str, list[Any]]
"""Where a message gives its calls (its ``tool_calls`` or ``function_call`` field) and the calls given."""


def to_record(obj: dict[str, Any], source: Source, index: int) -> Record:
    record_fields(obj, ("system",), "OpenAI message")
    chat = Chat("messages")
    system = record_system(obj)
    system_at = "system"
    for i, item in enumerate(obj["messages"]):
        message = read_message(_parsed(item, f"messages[{i}]"), f"messages[{i}]", chat.problems)
        if message.role == "system" and not chat.messages and system is None and _plain(message):
            system, system_at = message.content or "", f"messages[{i}].content"  # the leading system prompt
        else:
            chat.add(message, i)
    if not any(m.role == "user" for m in chat.messages):
        raise FieldError("messages", "no user message")
    tools = _with_functions(obj.get("tools"), obj.get("functions"))
    chat.tools, chat.system = record_tools(tools, system, system_at, chat.problems)
    return chat_record(obj, source, index, chat)


def _with_functions(tools: Any, functions: Any) -> Any:
    """The record's tools, or its legacy ``functions`` (OpenAI's fine-tuning format before tools)
    when it gives those instead; both, only when they list the same tools."""
    functions = given_tools(functions, "functions")
    if functions is None:
        return tools
    tools = given_tools(tools, "tools")
    if tools is None:
        return functions
    if same_tools(parse_tools(tools, []), parse_tools(functions, [])):
        return tools
    raise FieldError(
        "functions",
        "functions: the record gives both tools and the legacy functions, and they list other tools: give one",
    )


def _plain(message: Message) -> bool:
    return message.parts is None and message.name is None and message.content is not None


def _parsed(message: Any, where: str) -> dict[str, Any]:
    """A message; our Parquet export stores each one as a JSON string."""
    if isinstance(message, str):
        try:
            message = loads_unique(message)
        except (ValueError, RecursionError) as exc:
            why = why_not_json(exc)
            raise FieldError(
                where, f"{where} must be an object with a role, got a string that is not JSON ({why})"
            ) from None
    if not isinstance(message, dict):
        raise FieldError(where, f"{where} must be an object with a role, got {type(message).__name__}")
    return message


def read_message(item: dict[str, Any], where: str, problems: list[Problem]) -> Message:
    """One message as what it says; FieldError (quarantine) naming the field that cannot be read. A user
    or tool text that begins as Glaive writes a tool's reply (``FUNCTION RESPONSE: ...``) is that result."""
    role = item.get("role")
    if not isinstance(role, str) or role not in FIELDS:
        raise FieldError(
            f"{where}.role", f"{where}: unknown role {role!r}; expected system, user, assistant, tool or function"
        )
    unread_fields(item, FIELDS[role], where)
    name = _name(item, where)
    if role == "assistant":
        return _assistant(item, where, problems).model_copy(update={"name": name})
    content = read_content(item.get("content"), f"{where}.content", result=role in ("tool", "function"))
    text = text_of(content, where, role)
    call_id = call_id_of(item.get("tool_call_id"), f"{where}.tool_call_id") if role == "tool" else None
    result = glaive_result(text) if role in ("user", "tool", "function") and content.parts is None else None
    return Message(
        role="tool" if role == "function" or result is not None else role,
        content=text if result is None else result,
        parts=content.parts,
        name=name,
        call_id=call_id,
    )


def _name(item: dict[str, Any], where: str) -> str | None:
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise FieldError(f"{where}.name", f"{where}.name: must be a text, got {type(name).__name__}")
    return name


def call_id_of(value: Any, where: str) -> Any:
    """A call id as given: a text or a number (null: none given)."""
    if is_call_id(value):
        return value
    raise FieldError(where, f"{where}: a call id must be a text or a number, got {type(value).__name__}")


# --- assistant messages ----------------------------------------------------------------------


def _assistant(item: dict[str, Any], where: str, problems: list[Problem]) -> Message:
    content = read_content(item.get("content"), f"{where}.content")
    given = _given_calls(item, where)
    text = content.text or ""
    refusal = _refusal(item, where)
    if refusal is not None:
        return _refused(item, where, refusal, text, given, content.parts)
    if given is None:  # the answer is in the text: calls written out, a response, or nothing
        read = answer_from_text(text, f"{where}.content", problems)
        ids: list[Any] = read.call_ids()
    elif not given[1]:  # "tool_calls": [] says the text is the answer, whatever it looks like
        read = answer_from_text(text, f"{where}.content", problems, calls_allowed=False)
        ids = []
    else:
        cot, rest = split_think(text)
        answer, ids = _calls(*given, problems)
        read = AssistantText(cot, answer, rest.strip() or None)
    return Message(
        role="assistant",
        answer=read.answer,
        call_ids=ids,
        cot=_cot(item, read.cot, where),
        content=read.beside,
        parts=content.parts,
    )


def _reasoning(item: dict[str, Any], where: str) -> str | None:
    """The CoT given in ``reasoning_content`` (DeepSeek, vLLM) or ``reasoning`` (vLLM, OpenRouter)."""
    found = None
    for key in ("reasoning_content", "reasoning"):
        value = item.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise FieldError(f"{where}.{key}", f"{where}.{key}: must be a text, got {type(value).__name__}")
        if found is not None and value != found:
            raise FieldError(f"{where}.{key}", f"{where}.{key}: differs from {where}.reasoning_content")
        found = value
    return found


def _cot(item: dict[str, Any], text_cot: str | None, where: str) -> str | None:
    given = _reasoning(item, where)
    if given is not None and text_cot is not None and given.strip() != text_cot:
        raise FieldError(
            f"{where}.reasoning_content", f"{where}: one CoT in reasoning_content, another in a <think> block"
        )
    return given if given is not None else text_cot


def _refusal(item: dict[str, Any], where: str) -> str | None:
    value = item.get("refusal")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError(f"{where}.refusal", f"{where}.refusal: must be a text, got {type(value).__name__}")
    return value


def _refused(
    item: dict[str, Any], where: str, refusal: str, text: str, given: Given | None, parts: list[Any] | None
) -> Message:
    """A refusal is the turn's answer, as a text: nothing else may answer beside it."""
    cot, rest = split_think(text)
    if (given and given[1]) or rest.strip() or parts is not None:
        raise FieldError(f"{where}.refusal", f"{where}.refusal: a refusal beside another answer (content or calls)")
    return Message(role="assistant", answer=refusal, refusal=refusal, cot=_cot(item, cot, where))


def _given_calls(item: dict[str, Any], where: str) -> Given | None:
    """Where the calls are (``tool_calls`` or a legacy ``function_call``) and the calls given there
    (a list, one object, or either as JSON text); None when the message has neither."""
    calls, legacy = item.get("tool_calls"), item.get("function_call")
    if legacy is not None and calls is not None:
        raise FieldError(f"{where}.function_call", f"{where}: both tool_calls and a legacy function_call")
    if legacy is not None:
        legacy = maybe_json(legacy, f"{where}.function_call")
        if not isinstance(legacy, dict):
            raise FieldError(f"{where}.function_call", f"{where}.function_call: must be an object")
        return f"{where}.function_call", [legacy]
    if calls is None:
        return None
    calls = maybe_json(calls, f"{where}.tool_calls")
    if isinstance(calls, dict):
        return f"{where}.tool_calls", [calls]
    if not isinstance(calls, list):
        raise FieldError(f"{where}.tool_calls", f"{where}.tool_calls: must be a list of calls")
    return f"{where}.tool_calls", calls


def _calls(field: str, given: list[Any], problems: list[Problem]) -> tuple[list[FunctionCall] | None, list[Any]]:
    """The calls given in ``field`` and their ids; a call that cannot be read makes the answer
    malformed (None), its ids kept so that the results still tie to their calls. A legacy
    ``function_call`` is one call's name and arguments, named as itself."""
    calls: list[FunctionCall] = []
    ids: list[Any] = []
    malformed = None
    legacy = field.endswith(".function_call")
    for n, raw in enumerate(given):
        at = field if legacy else f"{field}[{n}]"
        if not isinstance(raw, dict):
            raise FieldError(at, f"{at}: a call must be an object, got {type(raw).__name__}")
        _function_type(raw, at)  # before its fields: a custom call's own field is no typo
        unread_fields(raw, FUNCTION_FIELDS if legacy else CALL_FIELDS, at)
        ids.append(call_id_of(raw.get("id"), f"{at}.id"))
        try:
            calls.append(read_call(raw, at))
        except FieldError:
            raise
        except ValueError as exc:
            malformed = malformed or str(exc)
    if malformed is not None:
        problems.append(Problem(field=malformed.split(":", 1)[0], code="malformed_answer", message=malformed))
        return None, ids
    return calls, ids


def _function_type(raw: dict[str, Any], at: str) -> None:
    if raw.get("type", "function") != "function":
        raise FieldError(f"{at}.type", f"{at}.type: {raw['type']!r} calls are not read, only function calls")


def read_call(raw: Any, at: str) -> FunctionCall:
    """One call: ``{type, function: {name, arguments}}`` or a bare ``{name, arguments}``; ValueError
    saying which field cannot be read (FieldError: the record cannot be read)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{at}: a call must be an object, got {type(raw).__name__}")
    _function_type(raw, at)
    function, where = (raw["function"], f"{at}.function") if "function" in raw else (raw, at)
    if not isinstance(function, dict):
        raise ValueError(f"{where}: must be an object with a name and arguments")
    if function is not raw:
        unread_fields(function, FUNCTION_FIELDS, where)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}.name: no function name")
    if "arguments" not in function:
        raise ValueError(f"{where}.arguments: missing")
    return FunctionCall(name=name, arguments=arguments_of(function["arguments"], f"{where}.arguments"))


def arguments_of(value: Any, where: str) -> dict[str, Any]:
    """Arguments as an object or as its JSON text (OpenAI's form; an empty text, or null, is no arguments)."""
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = loads_unique(value)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{where}: not JSON ({why_not_json(exc)})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where}: not a JSON object (got {type(value).__name__})")
    return value
