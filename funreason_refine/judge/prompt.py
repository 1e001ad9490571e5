"""Render a judge prompt: record text goes inside fences as data, never as instructions."""

from __future__ import annotations

import json
import re
import string
from typing import Any

from funreason_refine.memo import Memo
from funreason_refine.record import Record
from funreason_refine.targets import answer_text

# A record must not be able to close a fence or speak the protocol: fence markers are broken up,
# protocol tags are written with entities, so only the judge's own answer carries them.
_FENCE = re.compile(r"={5,}")
_TAGS = re.compile(r"<(/?)(judge|reason|newfc|think)\s*>", re.IGNORECASE)


def neutralize(text: str) -> str:
    text = _FENCE.sub(lambda m: " ".join("=" * len(m.group(0))), text)
    return _TAGS.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}&gt;", text)


# Copies of a record share its (read-only) tools list: a record's judged stages render its tools once.
_tools_text: Memo[list[dict[str, Any]], str] = Memo(
    lambda tools: neutralize(json.dumps(tools, ensure_ascii=False, indent=1)), max_size=4096, by_identity=True
)


def fields(record: Record) -> dict[str, str]:
    return {
        "query": neutralize(record.query),
        "tools": _tools_text(record.tools),
        "answer": neutralize(answer_text(record)),
        "cot": neutralize(record.cot or ""),
    }


def placeholders(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def render(template: str, record: Record) -> str:
    values: dict[str, Any] = fields(record)
    return template.format_map({name: values[name] for name in placeholders(template)})
