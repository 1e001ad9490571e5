"""One answer as the client keeps it, read from a LiteLLM response whatever shape its body had."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from funreason_refine.judge.failures import Failure, empty_answer
from funreason_refine.judge.tokens import filled_in


@dataclass(frozen=True)
class Reply:
    """An answer: its text as the server sent it, its reasoning field (None when it had none), its
    finish_reason, its tokens (as the server reported them, or counted here when it reported none, or left
    out the prompt's or the output's: ``counted_locally``), the server that gave it and the seconds it took.
    ``response`` is LiteLLM's."""

    text: str
    reasoning: str | None
    finish_reason: str | None
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
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0) if usage_reported else 0
    completion = int(getattr(usage, "completion_tokens", 0) or 0) if usage_reported else 0
    try:
        text, reasoning, finish = answer_parts(response, server)
    except Failure as failed:  # an answer without content is paid for all the same, when its usage says so
        if (prompt or completion) and prompt >= 0 and completion >= 0:
            failed.paid = Reply("", None, None, prompt, completion, server, seconds, False, response, waited)
        raise
    # What the server left out of its usage (all of it, or the output tokens alone) is counted here.
    counted = filled_in(litellm, model, messages, text, reasoning, (prompt, completion))
    return Reply(text, reasoning, finish, *counted[:2], server, seconds, counted[2], response, waited)


def answer_parts(response: Any, server: str) -> tuple[str, str | None, str | None]:
    """The answer's text, its reasoning field (LiteLLM's ``reasoning_content``, else the text of Anthropic's
    thinking blocks) and its finish_reason; a Failure when the response holds neither text nor reasoning."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise empty_answer(server, "but no choices in the body", None)
    choice = choices[0]
    finish = getattr(choice, "finish_reason", None)
    message = getattr(choice, "message", None)
    if message is None:
        raise empty_answer(server, "but its choice has no message", finish)
    text = message.content if isinstance(message.content, str) else ""
    reasoning = getattr(message, "reasoning_content", None) or _thinking(getattr(message, "thinking_blocks", None))
    if not text and not reasoning:
        raise empty_answer(server, f"but its message has no content{_called(message)}", finish)
    return text, reasoning if isinstance(reasoning, str) else None, finish if isinstance(finish, str) else None


def _called(message: Any) -> str:
    """What a message without content did instead: called tools (the model answered with a tool call, not
    in text), in words; empty when it did not."""
    calls = getattr(message, "tool_calls", None) or []
    names = [getattr(getattr(call, "function", None), "name", None) for call in calls]
    if not names:
        return ""
    return f", only a tool call ({', '.join(str(n) for n in names)}): the model must answer in text"


def _thinking(blocks: Any) -> str | None:
    """The text of Anthropic's thinking blocks (redacted ones hold none)."""
    if not isinstance(blocks, list):
        return None
    texts = [b.get("thinking") for b in blocks if isinstance(b, dict)]
    return "\n\n".join(t for t in texts if isinstance(t, str) and t) or None
