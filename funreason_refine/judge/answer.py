"""A model's answer taken apart: the answer itself, and the reasoning that came with it.

Reasoning arrives in three shapes: in a field of the response (``reasoning_content``, which LiteLLM fills
from a server's ``reasoning`` or ``reasoning_content``, from Anthropic's thinking blocks and from a leading
``<think>`` block it parsed out), as a ``<think>...</think>`` block in the text, or as text before a lone
``</think>`` (QwQ and DeepSeek-R1 style models whose chat template opened the block, served without a
reasoning parser). Only the answer is ever read for a verdict, a reason, a corrected call or a rewritten
field; reasoning is kept apart and never put into training data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CLOSE = re.compile(r"</think\s*>", re.IGNORECASE)
_OPEN = re.compile(r"^\s*<think\s*>", re.IGNORECASE)

CUT_OFF = "length"
"""The finish_reason of an answer the token limit ended (LiteLLM maps Anthropic's "max_tokens" and Ollama's
done_reason to it)."""


@dataclass(frozen=True)
class Answer:
    """What a model answered: ``text`` is the answer alone; ``reasoning`` what it thought before it (never read
    for a verdict); ``cut_off``: the token limit ended it (finish_reason "length"); ``cached``: taken from the
    run's answer cache."""

    text: str
    cached: bool = False
    reasoning: str | None = None
    cut_off: bool = False

    @classmethod
    def of(cls, content: str, reasoning: str | None, finish_reason: str | None, cached: bool = False) -> Answer:
        """The answer in a response's ``content``, with the response's own reasoning field (when it has one)."""
        thought, text = separate(content, reasoning)
        return cls(text, cached, thought, finish_reason == CUT_OFF)


def separate(content: str, reasoning: str | None = None) -> tuple[str | None, str]:
    """(reasoning or None, the answer) of a response's text and its reasoning field.

    The answer is what follows the last ``</think>``: reasoning that restates the answer format (``then
    <judge>True</judge> ... </think>``) stays reasoning. A ``<think>`` block that never closed is all
    reasoning, with no answer after it.
    """
    parts = [reasoning or ""]
    closes = list(_CLOSE.finditer(content))
    if closes:
        parts.append(_OPEN.sub("", content[: closes[-1].start()], count=1))
        answer = content[closes[-1].end() :]
    elif _OPEN.match(content):
        parts.append(_OPEN.sub("", content, count=1))
        answer = ""
    else:
        answer = content
    thought = "\n\n".join(part.strip() for part in parts if part.strip())
    return thought or None, answer.strip()
