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


def filled_in(
    litellm: Any,
    model: str,
    messages: list[dict[str, str]],
    text: str,
    reasoning: str | None,
    usage: tuple[int, int],
) -> tuple[int, int, bool]:
    """(prompt, completion, whether any was counted here) of an answer whose server reported ``usage``
    (prompt, completion; (0, 0) when it reported none), so that cost, max_cost and token rate limits hold. A
    side it left out or gave as 0 is counted here: no prompt has no tokens, and an answer with text has output
    tokens (``{"prompt_tokens": 400}`` alone priced the output at nothing). Counts that cannot be true
    (negative) are no usage. The reasoning was written too, in its think block (LiteLLM takes the block out
    of the text)."""
    prompt, completion = usage
    if prompt < 0 or completion < 0:
        prompt = completion = 0
    if prompt > 0 and (completion > 0 or not (text or reasoning)):
        return prompt, completion, False
    if prompt <= 0:
        prompt = prompt_tokens(litellm, model, messages)
    if completion <= 0:
        completion = text_tokens(litellm, model, f"<think>{reasoning}</think>{text}" if reasoning else text)
    return prompt, completion, True
