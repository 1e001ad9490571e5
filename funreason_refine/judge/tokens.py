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


def counted_here(
    litellm: Any, model: str, messages: list[dict[str, str]], text: str, reasoning: str | None
) -> tuple[int, int]:
    """(prompt, completion) tokens of an answer whose server reported no usage (or only zeros, which no real
    answer has), counted here so that cost, max_cost and token rate limits still hold. The reasoning was written
    too, in its think block (LiteLLM takes the block out of the text)."""
    written = f"<think>{reasoning}</think>{text}" if reasoning else text
    return prompt_tokens(litellm, model, messages), text_tokens(litellm, model, written)
