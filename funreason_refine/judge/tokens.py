"""Tokens counted on this machine, with LiteLLM's counter (the tiktoken files it ships, never a download)."""

from __future__ import annotations

from typing import Any


def prompt_tokens(litellm: Any, model: str, messages: list[dict[str, str]]) -> int:
    """The prompt's tokens by LiteLLM's counter, or a quarter of its characters when the counter fails."""
    try:
        return int(litellm.token_counter(model=model, messages=messages))
    except Exception:  # a count must never fail a call
        return sum(len(m.get("content") or "") for m in messages) // 4 + 4


def text_tokens(litellm: Any, model: str, text: str) -> int:
    """The tokens of an answer's text, counted as :func:`prompt_tokens` counts."""
    try:
        return int(litellm.token_counter(model=model, text=text))
    except Exception:
        return len(text) // 4 + 1
