"""Prompt tokens of a call, counted as LiteLLM's ``token_counter`` counts them, offline."""

from __future__ import annotations

from typing import Any

APPROXIMATION = "a quarter of the characters, plus 4 a message"


class TokenCounter:
    """``token_counter(model, messages)``, computed as its per-message overhead (worked out once per model
    and roles) plus each content's tokens (a system message's once): the same number, at a fraction of the
    cost over thousands of prompts. LiteLLM counts offline with the tiktoken files it ships (it never
    downloads a tokenizer here); a model it cannot count for falls back to :data:`APPROXIMATION`."""

    def __init__(self, litellm: Any):
        self._litellm = litellm
        self._overhead: dict[tuple[str, tuple[str, ...]], int] = {}
        self._system: dict[tuple[str, str], int] = {}
        self.approximated: set[str] = set()

    def count(self, model: str, messages: list[dict[str, str]]) -> int:
        if model not in self.approximated:
            try:
                return self._exact(model, messages)
            except Exception:  # a model LiteLLM has no tokenizer for: an estimate must not fail
                self.approximated.add(model)
        return sum(len(m.get("content") or "") for m in messages) // 4 + 4 * len(messages)

    def _exact(self, model: str, messages: list[dict[str, str]]) -> int:
        roles = tuple(m["role"] for m in messages)
        overhead = self._overhead.get((model, roles))
        if overhead is None:
            empty = [{"role": role, "content": ""} for role in roles]
            overhead = self._overhead[(model, roles)] = int(self._litellm.token_counter(model=model, messages=empty))
        return overhead + sum(self._content(model, m) for m in messages)

    def _content(self, model: str, message: dict[str, str]) -> int:
        text = message.get("content") or ""
        if message["role"] != "system":
            return int(self._litellm.token_counter(model=model, text=text))
        known = self._system.get((model, text))
        if known is None:
            known = self._system[(model, text)] = int(self._litellm.token_counter(model=model, text=text))
        return known

    def tokenizer(self, model: str) -> str:
        """What counted the model's prompts, in words."""
        return f"counted as {APPROXIMATION}" if model in self.approximated else "LiteLLM's token_counter"
