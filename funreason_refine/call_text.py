"""Calls written inside an assistant's text, read back: Hermes <tool_call> blocks (JSON, or a dict as
Python writes it, as Hermes data does), Glaive's <functioncall> calls and the paper's [func(...)] list.
What the chat readers and self-refinement read; targets.py writes the Hermes and paper forms."""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable
from json import JSONDecodeError
from typing import Any

from funreason_refine.calls import parse_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.jsonl import JSON, loads_unique, why_not_json
from funreason_refine.record import FunctionCall

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
GLAIVE_CALL, GLAIVE_END = "<functioncall>", "<|endoftext|>"
_FUNCTIONCALL = re.compile(r"<functioncall>(.*?)(?:<\|endoftext\|>|(?=<functioncall>)|\Z)", re.DOTALL)
"""A Glaive call: from its tag to Glaive's end marker (which goes with it), the next call, or the end."""
_GLAIVE_ARGUMENTS, _GLAIVE_CLOSE = re.compile(r"\"arguments\"\s*:\s*(')\s*"), re.compile(r"\s*'")
_CALL_LIST_START = re.compile(r"\[\s*([A-Za-z_][\w. ]*?)\s*\((\s*\)|\s*[A-Za-z_]\w*\s*=)")
"""``[name()`` or ``[name(param=``: a text that starts so and ends with ``]`` (or has none: cut off) is a
call list, read or refused, never a text answer (``[Note (see below)]``, ``[x.strip() for x in lines]
strips them`` are text). The name may hold spaces, as ToolACE's API names do (``[Market Trends
API(trend_type="x")]``): Python's syntax, and so the paper's, cannot write it."""


def calls_from_text(text: str) -> list[FunctionCall] | None:
    """Calls written as Hermes <tool_call> blocks or as the paper's [func(...)] list; None if neither."""
    return calls_in_text(text)[0]


def calls_in_text(text: str) -> tuple[list[FunctionCall] | None, str, list[Any]]:
    """(calls, the text beside them, their ids: a block's ``id``, else None) of a text that writes calls
    as Hermes <tool_call> blocks, as Glaive's <functioncall> calls (each read as a block is; Glaive's end
    marker ``<|endoftext|>`` after one ends it and is no text beside it) or as the paper's [func(...)]
    list (the whole text, so nothing beside it); (None, text, []) if none of those.

    ValueError when a block does not hold a call (UnreadKey when it holds a key that would be lost, or an
    id that is no text or number), when a text writes calls both as blocks and as Glaive's, or when a
    text that starts as a call list does not parse (CallSyntaxError)."""
    blocks = _TOOL_CALL.findall(text)
    if blocks and GLAIVE_CALL in text:
        raise ValueError("calls written both as <tool_call> blocks and as Glaive's <functioncall>: write them one way")
    if blocks:
        return _read(blocks, block_call, _TOOL_CALL.sub("", text))
    if GLAIVE_CALL in text:
        return _read(_FUNCTIONCALL.findall(text), glaive_call, _FUNCTIONCALL.sub("", text))
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            calls = parse_calls(stripped)
            return calls, "", [None] * len(calls)
        except CallSyntaxError as exc:
            start = _CALL_LIST_START.match(stripped)
            if start and (stripped.endswith("]") or "]" not in stripped):
                raise CallSyntaxError(
                    f"starts as a [func(...)] call list but does not parse: {_why(start, exc)}"
                ) from None
            return None, text, []
    return None, text, []


def _read(
    found: list[str], read_call: Callable[[str, int], tuple[FunctionCall, Any]], beside: str
) -> tuple[list[FunctionCall], str, list[Any]]:
    read = [read_call(text, n) for n, text in enumerate(found)]
    return [call for call, _ in read], beside, [call_id for _, call_id in read]


class UnreadKey(ValueError):
    """A <tool_call> block (or Glaive call) with a key beside its call that is not read (it would be
    lost), or with both ``arguments`` and ``parameters``: the chat readers quarantine the record,
    naming ``key``."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


BLOCK_KEYS = ("name", "arguments", "parameters", "id")
"""The keys of a Hermes <tool_call> block: ``parameters`` is Llama 3's name for the arguments; ``id``
the call's id, as some Hermes templates write one."""


def _why(start: re.Match[str], exc: CallSyntaxError) -> str:
    name = start.group(1).strip()
    if " " in name:
        return f"the function name {name!r} holds spaces, which the [func(...)] syntax cannot write"
    return str(exc)


def block_call(block: str, n: int) -> tuple[FunctionCall, Any]:
    """The call of the ``n``-th <tool_call> block and its id (None without one): ``{"name", "arguments"}``
    (or ``"parameters"``, as Llama 3 writes them), arguments as an object or its JSON text. ValueError
    saying why not."""
    at = f"<tool_call> block {n}"
    return call_of(_json(block, at, literal=True), at)


def glaive_call(text: str, n: int) -> tuple[FunctionCall, Any]:
    """The ``n``-th call written after Glaive's <functioncall> tag, read as a <tool_call> block is, its
    arguments also as Glaive writes them: JSON text in single quotes (see glaive_json)."""
    at = f"<functioncall> call {n}"
    try:
        quoted = glaive_json(text)
    except ValueError as exc:
        raise ValueError(f"{at}: {exc}") from None
    body = quoted or text
    try:
        obj = _json(body, at, literal=True)
    except ValueError:
        _no_text_after(body, at)
        raise
    return call_of(obj, at)


def _no_text_after(text: str, at: str) -> None:
    """ValueError when ``text`` is a JSON value with text after it: a Glaive call ends at its end marker."""
    text = text.strip()
    try:
        _, end = JSON.raw_decode(text)
    except (ValueError, RecursionError):
        return
    if end < len(text):
        after = text[end:].strip()[:60]
        raise ValueError(f"{at}: text after the call ({after!r}); Glaive ends a call with {GLAIVE_END}") from None


def glaive_json(text: str) -> str | None:
    """The JSON text of a call as Glaive writes it, ``{"name": "f", "arguments": '{"a": 1}'}``, its
    arguments JSON text in single quotes, which JSON has not: the same, the arguments a JSON string.
    The quoted text ends where its JSON value ends (Glaive leaves quotes in it unescaped). None when
    ``text`` has no arguments in single quotes (JSON never has); ValueError when they are not JSON."""
    key = _GLAIVE_ARGUMENTS.search(text)
    if key is None:
        return None
    try:
        _, end = JSON.raw_decode(text, key.end())
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"its arguments in single quotes are not JSON ({why_not_json(exc)})") from None
    close = _GLAIVE_CLOSE.match(text, end)
    if close is None:
        raise ValueError("its arguments in single quotes hold text after their JSON value")
    arguments = json.dumps(text[key.start(1) + 1 : close.end() - 1], ensure_ascii=False)
    return f'{text[: key.start()]}"arguments": {arguments}{text[close.end() :]}'


def call_of(obj: Any, at: str) -> tuple[FunctionCall, Any]:
    """The call a block's object (``at`` names the block) holds, and its id. ValueError saying why not
    (UnreadKey for a key that would be lost)."""
    if not isinstance(obj, dict):
        raise ValueError(f"{at}: must hold a JSON object with a name and arguments, got {type(obj).__name__}")
    for key, value in obj.items():
        if key not in BLOCK_KEYS and not _says_nothing(value):
            raise UnreadKey(key, f"{at}: key {key!r} is not read (it would be lost); only name and arguments are")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{at}: no function name")
    parameters = obj.get("parameters")
    if "arguments" in obj and not _says_nothing(parameters):
        raise UnreadKey("parameters", f"{at} ({name}): both 'arguments' and 'parameters'; give one of them")
    arguments = obj["arguments"] if "arguments" in obj else parameters or {}
    if isinstance(arguments, str):
        arguments = _json(arguments, f"{at} ({name}) arguments")
    if not isinstance(arguments, dict):
        raise ValueError(f"{at} ({name}): arguments must be an object, got {type(arguments).__name__}")
    return FunctionCall(name=name, arguments=arguments), _block_id(obj.get("id"), at)


def is_call_id(value: Any) -> bool:
    """Whether ``value`` can be a call's id: a text or a number (null: none given). Results tie to ids by
    JSON value; a boolean, object or array matched by a rule would be a guess."""
    return value is None or isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _block_id(value: Any, at: str) -> Any:
    """A block's id, kept as given ("" says nothing, as any key of a block)."""
    if is_call_id(value):
        return None if value == "" else value
    raise UnreadKey("id", f"{at}: a call id must be a text or a number, got {type(value).__name__}")


def _json(text: str, what: str, literal: bool = False) -> Any:
    """JSON text's value (``literal``: or a Python literal's, as Hermes data writes a block)."""
    try:
        return loads_unique(text)
    except JSONDecodeError as exc:
        value = python_literal(text) if literal else None
        if value is None:
            nor = " nor a dict as Python writes it" if literal else ""
            raise ValueError(f"{what}: not JSON ({exc.msg}){nor}") from None
        return value
    except (ValueError, RecursionError) as exc:  # a value JSON has not, or nested too deeply
        raise ValueError(f"{what}: not JSON ({why_not_json(exc)})") from None


LITERAL_LIMIT = 256 << 10
"""The longest text read as a Python literal (parsing one takes about 500 times the memory of its text)."""


def python_literal(text: str) -> Any:
    """The value of a dict or list written as Python writes it (``repr``, ``str``), of JSON's types
    only: NousResearch's Hermes data writes its calls and tools so (``{'name': 'f', 'arguments':
    {...}}``). None when ``text`` is not exactly that: Python's other spellings (``'a' 'b'``, ``0x10``,
    ``'\\x41'``, a trailing comma, other spacing) could read as something the text did not mean, and
    tuples, sets, bytes, non-string keys and infinities are not JSON."""
    text = text.strip()
    if len(text) > LITERAL_LIMIT or text[:1] not in "[{":
        return None
    try:
        value = ast.literal_eval(text)
        return value if _json_like(value) and repr(value) == text else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # repr: an int over 4,300 digits
        return None


def _json_like(value: Any) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _json_like(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_like(v) for v in value)
    if type(value) is float:
        return math.isfinite(value)
    return value is None or type(value) in (str, int, bool)


def _says_nothing(value: Any) -> bool:
    """null, or an empty text, list or object (as readers.content.is_empty)."""
    return value is None or (isinstance(value, (str, list, dict)) and not value)
