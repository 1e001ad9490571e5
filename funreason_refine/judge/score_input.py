"""What a scorer is shown of a record: chat messages (and the tools for the server's chat template), or a text.

- ``guardian``: Granite Guardian's function-calling check: the tools as a ``tools`` message, the user's
  request of the turn in focus, the assistant's calls as JSON; the model's chat template asks its
  fixed question (``guardian_config``).
- ``conversation`` (ToolRM-style reward models and classifiers): the conversation up to and with the
  turn in focus, as OpenAI chat messages with ``tool_calls``, the tools given to the chat template;
  CoTs are left out (the answer is scored).
- ``prompt``: the stage's text template filled in (judge/prompt.py's placeholders).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from funreason_refine.judge.prompt import render
from funreason_refine.judge.scorer_settings import ScorerSettings
from funreason_refine.record import Record

Messages = list[dict[str, Any]]

DEFAULT_QUESTION = """You check function calls. Below are the tools, the conversation, the user's request and the
answer.

===== TOOLS =====
{tools}
{conversation}===== QUERY =====
{query}
===== ANSWER =====
{answer}

Is the answer a correct and complete use of the tools for the request (right functions, every required
argument present, values taken from the request)? Answer with one word: Yes or No."""
"""The question of a yes_no scorer with template = "prompt" and no prompt of its own."""


@dataclass(frozen=True)
class ScoreInput:
    """One record as a scorer sees it: chat ``messages`` (and ``tools`` for its chat template), or ``text``."""

    messages: Messages | None = None
    tools: list[dict[str, Any]] | None = None
    text: str | None = None

    def as_messages(self) -> Messages:
        """Chat messages (a text as one user message): what the cache key and token counts read."""
        if self.messages is not None:
            return self.messages
        return [{"role": "user", "content": self.text or ""}]


def score_input(settings: ScorerSettings, record: Record) -> ScoreInput:
    """The record as the scorer's template shows it."""
    if settings.template == "guardian":
        return ScoreInput(messages=_guardian(record))
    if settings.template == "conversation":
        return _conversation(record)
    text = render(settings.prompt or DEFAULT_QUESTION, record)
    if settings.kind == "yes_no":
        return ScoreInput(messages=[{"role": "user", "content": text}])
    return ScoreInput(text=text)


def _calls_json(record: Record) -> str:
    if isinstance(record.answer, list):
        return json.dumps([c.model_dump() for c in record.answer], ensure_ascii=False)
    return record.answer or ""


def _guardian(record: Record) -> Messages:
    return [
        {"role": "tools", "content": json.dumps(record.tools, ensure_ascii=False)},
        {"role": "user", "content": record.query},
        {"role": "assistant", "content": _calls_json(record)},
    ]


def _conversation(record: Record) -> ScoreInput:
    """The turn in focus and what came before it, written as the ``openai`` export writes a conversation."""
    from funreason_refine.export.formats import openai

    turn = {"role": "assistant", "answer": _plain(record.answer), "cot": None, "call_ids": []}
    if record.is_conversation:
        history = [{**m.model_dump(), "cot": None, "target": None} for m in record.history]
        if not history:  # the first turn of a conversation that starts with the assistant
            history.append({"role": "user", "content": record.query})
        line = {"messages": [*history, turn], "system": record.system, "tools": record.tools}
    else:
        line = {"messages": [{"role": "user", "content": record.query}, turn], "system": record.system}
    written = openai(line, "")
    return ScoreInput(messages=written["messages"], tools=[{"type": "function", "function": t} for t in record.tools])


def _plain(answer: Any) -> Any:
    return [c.model_dump() for c in answer] if isinstance(answer, list) else answer
