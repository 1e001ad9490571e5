"""One answer as the client keeps it, read from a LiteLLM response whatever shape its body had."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from funreason_refine.judge.failures import empty_answer
from funreason_refine.judge.tokens import prompt_tokens, text_tokens


@dataclass(frozen=True)
class Reply:
    """An answer: its text, its tokens (as the server reported them, or counted here when it reported
    none: ``counted_locally``), the server that gave it and the seconds it took. ``response`` is LiteLLM's."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    server: str
    seconds: float
    counted_locally: bool
    response: Any
    waited: float = 0.0  # of ``seconds``, the wait for a streamed answer's first token (queue time, not call time)

    @property
    def call_seconds(self) -> float:
        """The call's own time: ``seconds`` without the wait for the first token."""
        return self.seconds - self.waited


def read_reply(
    litellm: Any,
    response: Any,
    model: str,
    messages: list[dict[str, str]],
    server: str,
    seconds: float,
    waited: float = 0.0,
    usage_reported: bool = True,
) -> Reply:
    """The answer in ``response``; :class:`~funreason_refine.judge.failures.Failure` when it holds none.
    ``usage_reported``: False when the usage in ``response`` was counted by LiteLLM (a stream without it)."""
    text = answer_text(response, server)
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    if (prompt or completion) and usage_reported:
        return Reply(text, prompt, completion, server, seconds, False, response, waited)
    # No usage (or all zeros, which no real answer has): counted here, so that cost, max_cost and the
    # token rate limits still hold.
    counted = prompt_tokens(litellm, model, messages), text_tokens(litellm, model, text)
    return Reply(text, *counted, server, seconds, True, response, waited)


def answer_text(response: Any, server: str) -> str:
    """The answer's text, with a reasoning block LiteLLM parsed out put back in front as <think>."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise empty_answer(server, "but no choices in the body", None)
    choice = choices[0]
    message = getattr(choice, "message", None)
    if message is None:
        raise empty_answer(server, "but its choice has no message", getattr(choice, "finish_reason", None))
    text = message.content or ""
    reasoning = getattr(message, "reasoning_content", None)
    if reasoning and "<think>" not in text:
        # LiteLLM moves a leading <think> block (and reasoning models' parsed reasoning) out of the content;
        # put it back, so that a sampled CoT is kept and the protocol sees the whole answer.
        text = f"<think>{reasoning}</think>{text}"
    if not text:
        raise empty_answer(server, "but its message has no content", getattr(choice, "finish_reason", None))
    return text
