"""The tools a system prompt carries, read for a chat record that has no ``tools`` field: the list
after the FunReason instructions (our ``funreason`` export) or in the ``<tools>`` block of the Hermes
instructions (our ``hermes`` export, and Hermes data, which may write each tool as a JSON object of
its own or as a Python literal). The record's own system prompt is what comes before the
instructions (targets.own_system): read without its list, a record would lose its tools."""

from __future__ import annotations

import json
import re
from typing import Any

from funreason_refine.jsonl import JSON, loads
from funreason_refine.readers.answers import FieldError
from funreason_refine.targets import HERMES_SYSTEM, TOOLS_MARKER, python_literal

_TOOLS_BLOCK = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_SPACE = re.compile(r"\s*")


def system_tools(system: str | None, where: str) -> list[Any]:
    """The tools of a record's system prompt (``where``, for a quarantine's message): [] when it lists
    none; FieldError when it holds instructions whose list cannot be read."""
    try:
        return tools_in_system(system or "") or []
    except ValueError as exc:
        raise FieldError(where, f"{where}: {exc}") from None


def tools_in_system(system: str) -> list[Any] | None:
    """The tools ``system`` lists after FunReason's or Hermes' instructions; None when it holds neither.

    ValueError saying why when it holds them but their list cannot be read."""
    at = system.find(TOOLS_MARKER)
    if at != -1:
        return _tool_list(system[at + len(TOOLS_MARKER) :], "the tool list after the FunReason instructions")
    at = system.find(HERMES_SYSTEM[:60])
    if at == -1:
        return None
    blocks = [block for block in _TOOLS_BLOCK.findall(system, at) if block.strip()]
    if len(blocks) != 1:
        raise ValueError(f"the Hermes instructions hold {len(blocks)} <tools> blocks with a tool list, not one")
    return _tool_list(blocks[0], "the tool list in the Hermes <tools> block")


def _tool_list(text: str, what: str) -> list[Any]:
    text = text.strip()
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        value = _objects(text)
        if value is None:
            value = python_literal(text)
        if value is None:
            raise ValueError(f"{what} is not JSON ({exc.msg}) nor a Python literal of JSON values") from None
    except (ValueError, RecursionError) as exc:
        why = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise ValueError(f"{what} cannot be read: {why}") from None
    if isinstance(value, dict):  # one tool
        return [value]
    if not isinstance(value, list):
        raise ValueError(f"{what} is a {type(value).__name__}, not a list of tools")
    return value


def _objects(text: str) -> list[Any] | None:
    """JSON values one after another, as a Hermes template writes one tool after another; None if not."""
    found: list[Any] = []
    pos = 0
    while pos < len(text):
        try:
            value, pos = JSON.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return None
        found.append(value)
        end = _SPACE.match(text, pos)
        pos = end.end() if end else pos
    return found if len(found) > 1 else None
