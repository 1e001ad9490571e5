"""The tools a system prompt carries, read for a chat record that has no ``tools`` (or an empty list):
the list after the FunReason instructions (our ``funreason`` export) or in the ``<tools>`` block of
the Hermes instructions (our ``hermes`` export, and Hermes data, which may write each tool as a JSON
object of its own or the list as a Python literal). The record's own system prompt is what comes
before the instructions (targets.own_system): read without its list, a record would lose its tools."""

from __future__ import annotations

import json
import re
from typing import Any

from funreason_refine.call_text import python_literal
from funreason_refine.jsonl import JSON, loads
from funreason_refine.readers.answers import FieldError, maybe_json, parse_tools
from funreason_refine.readers.content import is_empty
from funreason_refine.record import Problem
from funreason_refine.targets import TOOLS_MARKER, instructions_in

_SPACE = re.compile(r"\s*")
_GIVE_THEM = "give the tools in the record's tools field"


def record_tools(field: Any, system: str | None, where: str, problems: list[Problem]) -> list[dict[str, Any]]:
    """A chat record's tools: its ``tools`` field, or when that says nothing, the list its system prompt
    holds (``where``). FieldError when the prompt's instructions list other tools than the field: they
    would be lost with the instructions."""
    tools = maybe_json(field, "tools")
    listed = system_tools(system, where)
    if is_empty(tools):
        return parse_tools(listed, problems)
    read = parse_tools(tools, problems)
    if listed and parse_tools(listed, []) != read:
        raise FieldError(
            where, f"{where}: its instructions list other tools than the record's tools field (they would be lost)"
        )
    return read


def system_tools(system: str | None, where: str) -> list[Any]:
    """The tools of a record's system prompt (``where``, for a quarantine's message): [] when it lists
    none; FieldError when it holds instructions whose list cannot be read."""
    try:
        return tools_in_system(system or "") or []
    except ValueError as exc:
        raise FieldError(where, f"{where}: {exc}") from None


def tools_in_system(system: str) -> list[Any] | None:
    """The tools ``system`` lists with FunReason's or Hermes' instructions; None when it holds neither.

    ValueError saying why when it holds them but their list cannot be read, or text after them
    would be lost with them."""
    found = instructions_in(system)
    if found is None:
        return None
    at, whose = found
    if whose == "hermes":
        return _hermes_tools(system, at)
    marker = system.find(TOOLS_MARKER, at)
    if marker == -1:
        raise ValueError(f"the FunReason instructions hold no tool list after {TOOLS_MARKER.strip()!r}: {_GIVE_THEM}")
    return _tool_list(system[marker + len(TOOLS_MARKER) :], "the tool list after the FunReason instructions")


def _hermes_tools(system: str, at: int) -> list[Any]:
    """The tools of the one <tools> block after ``at`` that lists any (the instructions' own text may
    mention an empty ``<tools></tools>``)."""
    listed: list[tuple[str, int]] = []
    start = system.find("<tools>", at)
    while start != -1:
        end = system.find("</tools>", start)
        if end == -1:
            break
        if system[start + len("<tools>") : end].strip():
            listed.append((system[start + len("<tools>") : end], end + len("</tools>")))
        start = system.find("<tools>", end)
    if len(listed) != 1:
        raise ValueError(
            f"the Hermes instructions hold {len(listed)} <tools> blocks with a tool list, not one: {_GIVE_THEM}"
        )
    text, after = listed[0]
    rest = system[after:].strip()
    if rest and not rest.endswith("</tool_call>"):  # Hermes prompts end with how a call is written
        raise ValueError(
            f"text after the Hermes instructions would be lost with them ({rest[:80]!r}): put it before them"
        )
    return _tool_list(text, "the tool list in the Hermes <tools> block")


def _tool_list(text: str, what: str) -> list[Any]:
    text = text.strip()
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        value = _objects(text)
        if value is None:
            value = python_literal(text)
        if value is None:
            raise ValueError(f"{what} is not JSON ({exc.msg}) nor a list written by Python") from None
    except (ValueError, RecursionError) as exc:
        why = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise ValueError(f"{what} cannot be read: {why}") from None
    if isinstance(value, dict):  # one tool
        return [value]
    if not isinstance(value, list):
        raise ValueError(f"{what} is a {type(value).__name__}, not a list of tools")
    return value


def _objects(text: str) -> list[Any] | None:
    """JSON objects one after another, as a Hermes template writes one tool after another; None if not."""
    found: list[Any] = []
    pos = 0
    while pos < len(text):
        try:
            value, pos = JSON.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return None
        if not isinstance(value, dict):
            return None
        found.append(value)
        end = _SPACE.match(text, pos)
        pos = end.end() if end else pos
    return found if len(found) > 1 else None
