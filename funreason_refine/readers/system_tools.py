"""The tools a system prompt carries, read for a chat record: the list after the FunReason
instructions (our ``funreason`` export) or in the ``<tools>`` block of the Hermes instructions (our
``hermes`` export, and Hermes data, which may write each tool as a JSON object of its own or the list
as Python writes it). The record's own system prompt is what comes before the instructions
(targets.own_system): the list goes with them, so it must be read, or be the record's ``tools``."""

from __future__ import annotations

import json
import re
from typing import Any

from funreason_refine.call_text import python_literal
from funreason_refine.jsonl import JSON, loads, why_not_json
from funreason_refine.readers.answers import FieldError, maybe_json, parse_tools
from funreason_refine.readers.content import is_empty
from funreason_refine.record import Problem
from funreason_refine.targets import TOOLS_MARKER, instructions_in

_SPACE = re.compile(r"\s*")
_GIVE_THEM = "give the tools in the record's tools field"
_OPEN, _CLOSE = "<tools>", "</tools>"
_HERMES_LIST = "the tool list in the Hermes <tools> block"


def record_tools(field: Any, system: str | None, where: str, problems: list[Problem]) -> list[dict[str, Any]]:
    """A chat record's tools: its ``tools`` field, or when that says nothing, the list its system prompt
    holds (``where``). FieldError when the prompt's instructions list other tools than the field: they
    would be lost with the instructions."""
    tools = None if isinstance(field, str) and not field.strip() else maybe_json(field, "tools")  # "" says nothing
    if is_empty(tools):
        return parse_tools(system_tools(system, where, required=True), problems)
    read = parse_tools(tools, problems)
    listed = system_tools(system, where, required=False)
    if listed and _canonical_set(parse_tools(listed, [])) != _canonical_set(read):
        raise FieldError(
            where,
            f"{where}: its instructions list other tools than the record's tools field (they would be lost): "
            f"{_differ(parse_tools(listed, []), read)}",
        )
    return read


def _canonical(tool: Any) -> str:
    """A tool as one text, the same for the same tool however given (an OpenAI wrapper, key order)."""
    if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        tool = tool["function"]
    return json.dumps(tool, sort_keys=True, ensure_ascii=False, default=str)


def _canonical_set(tools: list[Any]) -> set[str]:
    return {_canonical(tool) for tool in tools}


def _differ(listed: list[Any], field: list[Any]) -> str:
    def names(tools: list[Any], other: list[Any]) -> list[str]:
        others = _canonical_set(other)
        found = [t.get("name", "?") if isinstance(t, dict) else "?" for t in tools if _canonical(t) not in others]
        return [str(name)[:60] for name in found[:5]]

    return f"the prompt's own: {names(listed, field)}; the field's own: {names(field, listed)}"


def system_tools(system: str | None, where: str, required: bool = True) -> list[Any]:
    """The tools of a record's system prompt (``where``, for a quarantine's message): [] when it lists
    none; FieldError when it holds instructions whose list cannot be read (or, ``required``, has none)."""
    try:
        return tools_in_system(system or "", required) or []
    except ValueError as exc:
        raise FieldError(where, f"{where}: {exc}") from None


def tools_in_system(system: str, required: bool = True) -> list[Any] | None:
    """The tools ``system`` lists with FunReason's or Hermes' instructions; None when it holds neither
    (or, not ``required``, holds instructions without a list).

    ValueError saying why when it holds them but their list cannot be read, or text after them
    would be lost with them."""
    found = instructions_in(system)
    if found is None:
        return None
    at, whose = found
    if whose == "hermes":
        return _hermes_tools(system, at, required)
    marker = system.find(TOOLS_MARKER, at)
    if marker == -1:
        if not required:
            return None
        raise ValueError(f"the FunReason instructions hold no tool list after {TOOLS_MARKER.strip()!r}: {_GIVE_THEM}")
    return _tool_list(system[marker + len(TOOLS_MARKER) :], "the tool list after the FunReason instructions")


def _hermes_tools(system: str, at: int, required: bool) -> list[Any] | None:
    """The tools of the one <tools> block after ``at`` that lists any (the instructions' own text may
    mention an empty ``<tools></tools>``)."""
    listed: list[tuple[list[Any], int]] = []
    start = system.find(_OPEN, at)
    while start != -1:
        tools, end = _block(system, start + len(_OPEN))
        if end == -1:
            break
        if tools is not None:
            listed.append((tools, end))
        start = system.find(_OPEN, end)
    if not listed and not required:
        return None
    if len(listed) != 1:
        raise ValueError(
            f"the Hermes instructions hold {len(listed)} <tools> blocks with a tool list, not one: {_GIVE_THEM}"
        )
    tools, after = listed[0]
    rest = system[after:].strip()
    if rest and not rest.endswith("</tool_call>"):  # Hermes prompts end with how a call is written
        raise ValueError(
            f"text after the Hermes instructions would be lost with them ({rest[:80]!r}): put it before them"
        )
    return tools


def _block(system: str, body: int) -> tuple[list[Any] | None, int]:
    """(the tools of the <tools> block whose text starts at ``body``, or None if it lists none; where the
    block ends). Read as JSON values, so that a ``</tools>`` inside a tool's text is text; else as text
    up to the first ``</tools>``. End -1: no ``</tools>`` closes it."""
    values: list[Any] = []
    pos = _skip(system, body)
    while not system.startswith(_CLOSE, pos):
        try:
            value, pos = JSON.raw_decode(system, pos)
        except json.JSONDecodeError:
            return _text_block(system, body)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{_HERMES_LIST} cannot be read: {why_not_json(exc)}") from None
        values.append(value)
        pos = _skip(system, pos)
    end = pos + len(_CLOSE)
    if not values:
        return None, end
    if len(values) == 1:
        return _as_list(values[0], _HERMES_LIST), end
    if all(isinstance(v, dict) for v in values):  # one tool after another
        return values, end
    raise ValueError(f"{_HERMES_LIST} holds JSON values one after another that are not all tools")


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
        value = loads(text)
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
