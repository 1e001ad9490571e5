"""The tools a system prompt carries, read for a chat record: the list after the FunReason (or BFCL)
instructions (our ``funreason`` export, ToolACE), in the ``<tools>`` block of the Hermes instructions
(our ``hermes`` export, and Hermes data, which may write each tool as a JSON object of its own or the
list as Python writes it), or the JSON objects after Glaive's (its conversions that keep no tools
field). The record's own system prompt is what comes before the instructions: the list goes with
them, so it must be read, or be the record's ``tools``, and the instructions must hold nothing but
their own sentences (instructions.py), which would be lost with them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from funreason_refine.call_text import python_literal
from funreason_refine.jsonl import UNIQUE_KEYS, loads_unique, why_not_json
from funreason_refine.readers.answers import FieldError, is_empty, maybe_json, parse_tools
from funreason_refine.readers.instructions import foreign_text
from funreason_refine.record import Problem
from funreason_refine.targets import TOOLS_MARKER, instructions_in

_SPACE = re.compile(r"\s*")
_MARKER = re.compile(r"Here is a list of functions in JSON format that you can invoke[.:]", re.IGNORECASE)
_GIVE_THEM = "give the tools in the record's tools field"
_OPEN, _CLOSE = "<tools>", "</tools>"
_HERMES_LIST = "the tool list in the Hermes <tools> block"
_FUNREASON_LIST = "the tool list after the FunReason instructions"
_GLAIVE_LIST = "the tools after the Glaive instructions"
_GLAIVE_MARKER = re.compile(r"Use them if required\s*-")
_NAMES = {"hermes": "Hermes", "funreason": "FunReason", "glaive": "Glaive"}


@dataclass(frozen=True)
class Listed:
    """The tools a system prompt's instructions list, and where in it the instructions begin."""

    tools: list[Any]
    at: int


def record_tools(
    field: Any, system: str | None, where: str, problems: list[Problem]
) -> tuple[list[dict[str, Any]], str | None]:
    """A chat record's tools and own system prompt. The tools: its ``tools`` field, or when that says
    nothing, the list its system prompt holds (``where``). The prompt: the text before instructions
    whose list was read, else all of it. FieldError when the instructions list other tools than the
    field: they would be lost with the instructions."""
    tools = given_tools(field, "tools")
    listed = system_tools(system, where, required=tools is None)
    if tools is None:
        return parse_tools(listed.tools if listed else [], problems), _own(system, listed)
    read = parse_tools(tools, problems)
    prompts = parse_tools(listed.tools, []) if listed else None
    if prompts is not None and not same_tools(prompts, read):
        raise FieldError(
            where,
            f"{where}: its instructions list other tools than the record's tools field (they would be lost): "
            f"{_differ(prompts, read)}",
        )
    return read, _own(system, listed)


def given_tools(value: Any, field: str) -> Any:
    """A tools field's list (or JSON text of one, read); None when it says nothing: null, "", [] or {}."""
    value = None if isinstance(value, str) and not value.strip() else maybe_json(value, field)
    return None if is_empty(value) else value


def _own(system: str | None, listed: Listed | None) -> str | None:
    if not system:
        return None
    return (system[: listed.at].strip() or None) if listed else system


def _canonical(tool: Any) -> str:
    """A tool as one text, the same for the same tool however given (an OpenAI wrapper, key order)."""
    if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        tool = tool["function"]
    return json.dumps(tool, sort_keys=True, ensure_ascii=False, default=str)


def _canonical_set(tools: list[Any]) -> set[str]:
    return {_canonical(tool) for tool in tools}


def same_tools(one: list[Any], other: list[Any]) -> bool:
    """Whether two tool lists hold the same tools, in any order or form (an OpenAI wrapper, key order)."""
    return _canonical_set(one) == _canonical_set(other)


def _differ(listed: list[Any], field: list[Any]) -> str:
    def names(tools: list[Any], other: list[Any]) -> list[str]:
        others = _canonical_set(other)
        found = [t.get("name", "?") if isinstance(t, dict) else "?" for t in tools if _canonical(t) not in others]
        return [str(name)[:60] for name in found[:5]]

    return f"the prompt's own: {names(listed, field)}; the field's own: {names(field, listed)}"


def system_tools(system: str | None, where: str, required: bool = True) -> Listed | None:
    """The tools of a record's system prompt (``where``, for a quarantine's message) and where their
    instructions begin; None when it holds no instructions with a list. FieldError when it holds
    instructions whose list cannot be read (or, ``required``, has none), or text among them."""
    try:
        return listed_tools(system or "", required)
    except ValueError as exc:
        raise FieldError(where, f"{where}: {exc}") from None


def tools_in_system(system: str, required: bool = True) -> list[Any] | None:
    """The tools ``system`` lists with FunReason's or Hermes' instructions; None when it holds neither
    (or, not ``required``, holds instructions without a list)."""
    listed = listed_tools(system, required)
    return listed.tools if listed else None


def listed_tools(system: str, required: bool = True) -> Listed | None:
    """As tools_in_system, with where the instructions begin. ValueError saying why when it holds them
    but their list cannot be read, or text among them would be lost with them."""
    found = instructions_in(system)
    if found is None:
        return None
    at, whose = found
    read = _READERS[whose](system, at)
    if read is None:
        if required:
            raise ValueError(_no_list(whose))
        return None
    tools, start, end = read
    foreign = foreign_text(system[at:start] + "\0" + system[end:])
    if foreign is not None:
        raise ValueError(
            f"text among the {_NAMES[whose]} instructions is none of their known sentences and would be lost with them "
            f"({foreign!r}): put text of your own before them; if it is their own wording, please report it"
        )
    return Listed(tools, at)


def _no_list(whose: str) -> str:
    if whose == "hermes":
        return f"the Hermes instructions hold 0 <tools> blocks with a tool list, not one: {_GIVE_THEM}"
    if whose == "glaive":
        return f"the Glaive instructions hold no tool after 'Use them if required -': {_GIVE_THEM}"
    return f"the FunReason instructions hold no tool list after {TOOLS_MARKER.strip()!r}: {_GIVE_THEM}"


def _funreason_tools(system: str, at: int) -> tuple[list[Any], int, int] | None:
    """(the tools after the FunReason instructions' last line, where the list starts and ends); None
    without that line. The list is JSON (text may follow it) or, as Python writes it, the rest."""
    marker = _MARKER.search(system, at)
    if marker is None:
        return None
    start = _skip(system, marker.end())
    try:
        value, end = UNIQUE_KEYS.raw_decode(system, start)
    except json.JSONDecodeError:
        return _tool_list(system[start:], _FUNREASON_LIST), start, len(system)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{_FUNREASON_LIST} cannot be read: {why_not_json(exc)}") from None
    return _as_list(value, _FUNREASON_LIST), start, end


def _glaive_tools(system: str, at: int) -> tuple[list[Any], int, int] | None:
    """(the tools after Glaive's instructions, JSON objects one after another, where they start and end);
    None without its "Use them if required -" or without a tool after it. Text after them is text."""
    marker = _GLAIVE_MARKER.search(system, at)
    if marker is None:
        return None
    start = _skip(system, marker.end())
    tools, end, not_json = _json_values(system, start, _GLAIVE_LIST)
    if not_json is not None and not tools:
        raise ValueError(f"{_GLAIVE_LIST} cannot be read: they are not JSON ({why_not_json(not_json)})")
    return (_tools_of(tools, _GLAIVE_LIST), start, end) if tools else None


def _json_values(
    system: str, pos: int, what: str, stop: str | None = None
) -> tuple[list[Any], int, json.JSONDecodeError | None]:
    """The JSON values one after another from ``pos`` (space between them), up to ``stop``, the end, or
    text that is not JSON: (the values, where they end, why that text is not JSON). ValueError naming
    ``what`` for JSON that is no value here (NaN, too deep)."""
    values: list[Any] = []
    pos = _skip(system, pos)
    while pos < len(system) and not (stop is not None and system.startswith(stop, pos)):
        try:
            value, end = UNIQUE_KEYS.raw_decode(system, pos)
        except json.JSONDecodeError as exc:
            return values, pos, exc
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{what} cannot be read: {why_not_json(exc)}") from None
        values.append(value)
        pos = _skip(system, end)
    return values, pos, None


def _hermes_tools(system: str, at: int) -> tuple[list[Any], int, int] | None:
    """(the tools of the one <tools> block after ``at`` that lists any, where the block starts and
    ends); None without one. The instructions' own text may mention an empty ``<tools></tools>``."""
    listed: list[tuple[list[Any], int, int]] = []
    start = system.find(_OPEN, at)
    while start != -1:
        tools, end = _block(system, start + len(_OPEN))
        if end == -1:
            break
        if tools is not None:
            listed.append((tools, start, end))
        start = system.find(_OPEN, end)
    if not listed:
        return None
    if len(listed) != 1:
        raise ValueError(
            f"the Hermes instructions hold {len(listed)} <tools> blocks with a tool list, not one: {_GIVE_THEM}"
        )
    return listed[0]


_READERS = {"hermes": _hermes_tools, "funreason": _funreason_tools, "glaive": _glaive_tools}


def _block(system: str, body: int) -> tuple[list[Any] | None, int]:
    """(the tools of the <tools> block whose text starts at ``body``, or None if it lists none; where the
    block ends). Read as JSON values, so that a ``</tools>`` inside a tool's text is text; else as text
    up to the first ``</tools>``. End -1: no ``</tools>`` closes it."""
    values, pos, not_json = _json_values(system, body, _HERMES_LIST, stop=_CLOSE)
    if not_json is not None or not system.startswith(_CLOSE, pos):
        return _text_block(system, body)
    end = pos + len(_CLOSE)
    return (_tools_of(values, _HERMES_LIST) if values else None), end


def _tools_of(values: list[Any], what: str) -> list[Any]:
    """The tools of JSON values one after another: one list of them, or one object a tool."""
    if len(values) == 1:
        return _as_list(values[0], what)
    if all(isinstance(v, dict) for v in values):  # one tool after another
        return values
    raise ValueError(f"{what} holds JSON values one after another that are not all tools")


def _text_block(system: str, body: int) -> tuple[list[Any] | None, int]:
    end = system.find(_CLOSE, body)
    if end == -1:
        return None, -1
    text = system[body:end]
    return (_tool_list(text, _HERMES_LIST) if text.strip() else None), end + len(_CLOSE)


def _skip(text: str, pos: int) -> int:
    space = _SPACE.match(text, pos)
    return space.end() if space else pos


def _tool_list(text: str, what: str) -> list[Any]:
    text = text.strip()
    try:
        value = loads_unique(text)
    except json.JSONDecodeError as exc:
        value = python_literal(text)
        if value is None:
            raise ValueError(f"{what} is not JSON ({exc.msg}) nor a list written by Python") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{what} cannot be read: {why_not_json(exc)}") from None
    return _as_list(value, what)


def _as_list(value: Any, what: str) -> list[Any]:
    if isinstance(value, dict):  # one tool
        return [value]
    if not isinstance(value, list):
        raise ValueError(f"{what} is a {type(value).__name__}, not a list of tools")
    return value
