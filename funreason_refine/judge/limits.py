"""Prompts too long for a model: over its ``max_prompt_tokens`` (the user's limit: the record is discarded before
any call) or over its context window (no answer can come: the record goes to errors.jsonl, and no retry helps)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from funreason_refine.errors import RefineError
from funreason_refine.judge.settings import ModelSettings
from funreason_refine.judge.tokens import prompt_tokens

PROMPT_TOO_LONG = "prompt_too_long"
"""The reason code of a record discarded because a prompt of it is over its model's max_prompt_tokens."""
CONTEXT_WINDOW = "context_window_exceeded"
"""The reason code of a record in errors.jsonl whose prompt is over its model's context window."""

_MENTIONS_CONTEXT = re.compile(
    r"context (?:length|window|size|limit)|prompt is too long|too many (?:input )?tokens", re.IGNORECASE
)
CONTEXT_ADVICE = (
    "serve the model with a larger context (llama.cpp: --n_ctx / -c; vLLM: --max-model-len), choose a model with a "
    "longer one, or set max_prompt_tokens in the model's table ([judge]) to discard such records; then "
    "`refine retry RUN_DIR` (alone it cannot help)"
)


class PromptTooLong(RefineError):
    """A prompt of the record is over its model's ``max_prompt_tokens``: the record is discarded at the stage."""

    reason = PROMPT_TOO_LONG

    def __init__(self, stage: str, model: str, tokens: int, limit: int):
        self.stage, self.model, self.tokens, self.limit = stage, model, tokens, limit
        super().__init__(
            f"stage {stage}: the prompt for {model} has {tokens:,} tokens (counted here), over its max_prompt_tokens "
            f"= {limit:,}: discarded before any call (raise max_prompt_tokens to judge such records)"
        )


def check_prompt(stage: str, settings: ModelSettings, tokens: int) -> None:
    """Raise :class:`PromptTooLong` when ``tokens`` is over the model's ``max_prompt_tokens``."""
    if settings.max_prompt_tokens is not None and tokens > settings.max_prompt_tokens:
        raise PromptTooLong(stage, settings.model, tokens, settings.max_prompt_tokens)


def mentions_context(text: str) -> bool:
    """True when a server's error text speaks of the context length (a 400 LiteLLM did not map as such)."""
    return bool(_MENTIONS_CONTEXT.search(text))


@dataclass(frozen=True)
class Window:
    """A model's context window: ``tokens``, whether ``max_tokens`` counts against it (``total``: a server's
    context holds the prompt and the answer; LiteLLM's ``max_input_tokens`` holds the prompt alone), and where
    it was found."""

    tokens: int
    total: bool
    source: str

    def needed(self, prompt_tokens: int, settings: ModelSettings) -> int:
        """The tokens a call takes of the window."""
        return prompt_tokens + ((settings.max_tokens or 0) if self.total else 0)

    def describe(self, settings: ModelSettings) -> str:
        with_answer = " (prompt + max_tokens)" if self.total and settings.max_tokens else ""
        return f"{self.tokens:,} tokens{with_answer}, {self.source}"


def context_window(litellm: Any, settings: ModelSettings) -> Window | None:
    """The model's context window: its ``context_window`` setting, else LiteLLM's model list; None when unknown."""
    if settings.context_window is not None:
        return Window(settings.context_window, True, "its context_window setting")
    try:
        info = litellm.get_model_info(settings.model)
    except Exception:  # a model LiteLLM does not list (a local server's name): unknown, not an error
        return None
    value = info.get("max_input_tokens")  # its "max_tokens" means the output limit for some models: not used
    if isinstance(value, int) and value > 0:
        return Window(value, False, f"LiteLLM's max_input_tokens of {settings.model}")
    return None


def overflow_message(litellm: Any, settings: ModelSettings, messages: list[dict[str, str]], said: str) -> str:
    """What a refusal of a prompt over the context window says: the prompt's tokens, the model's window (when
    known), what the server said, and what to do (never a retry alone)."""
    tokens = prompt_tokens(litellm, settings.model, messages)
    window = context_window(litellm, settings)
    limit = f"its context window ({window.describe(settings)})" if window else "its context window"
    answer = f" + max_tokens {settings.max_tokens:,}" if settings.max_tokens else ""
    return (
        f"the prompt ({tokens:,} tokens counted here{answer}) is over {limit} ({said}): no retry can help; "
        + CONTEXT_ADVICE
    )
