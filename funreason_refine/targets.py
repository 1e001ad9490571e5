"""The text forms a training target takes, shared by the exports and the readers that read them back."""

from __future__ import annotations

import json
import re
from typing import Any

from funreason_refine.calls import render_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.record import FunctionCall, Record

# The paper's BFCL-style system prompt: the tools as JSON after this line.
TOOLS_MARKER = "Here is a list of functions in JSON format that you can invoke.\n"
FUNREASON_SYSTEM = (
    "You are an expert in composing functions. You are given a question and a set of possible functions. "
    "Based on the question, you will need to make one or more function/tool calls to achieve the purpose. "
    "If none of the functions can be used, point it out. Think step by step inside <think></think>, then write "
    "the calls as [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)].\n"
    + TOOLS_MARKER
)
HERMES_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
    "XML tags. Think step by step inside <think></think>, then call one or more functions, each as a JSON "
    "object with its name and arguments within <tool_call></tool_call> XML tags.\n<tools>\n{tools}\n</tools>"
)


GLAIVE_SYSTEM = "You are a helpful assistant with access to the following functions. Use them if required -"
"""How Glaive's data (glaive-function-calling-v2 and its conversions) begins the system prompt of a record
with tools: the tools follow as JSON objects, one after another. No export writes it."""
_GLAIVE_LABEL = "SYSTEM:"  # Glaive's own chat text labels the prompt; conversions may keep the label

_INSTRUCTIONS = (("funreason", FUNREASON_SYSTEM), ("hermes", HERMES_SYSTEM), ("glaive", GLAIVE_SYSTEM))


def instructions_in(system: str) -> tuple[int, str] | None:
    """Where the last tool-calling instructions in ``system`` begin, and whose they are ("funreason",
    "hermes" or "glaive", with a ``SYSTEM:`` label before it); None without them. Their first 60
    characters are matched: other Hermes prompts, NousResearch's among them, begin as ours does. The
    last, because an export adds its own after a prompt kept whole, which may begin as they do."""
    found = [(at, name) for name, text in _INSTRUCTIONS if (at := system.rfind(text[:60])) != -1]
    if not found:
        return None
    at, name = max(found)
    if name == "glaive":
        label = system.rfind(_GLAIVE_LABEL, 0, at)
        if label != -1 and not system[label + len(_GLAIVE_LABEL) : at].strip():
            at = label
    return at, name


PART_SEPARATOR = "\n"
"""Between the texts of a message's content parts in the text the stages read (the parts themselves
are kept and written back as they were given)."""


def parts_text(parts: list[Any]) -> str:
    """The text of content parts: their texts (plain strings, text and refusal parts) joined by PART_SEPARATOR."""
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            kind = part.get("type", "text")
            text = part.get(kind) if kind in ("text", "refusal") else None
            if isinstance(text, str):
                texts.append(text)
    return PART_SEPARATOR.join(texts)


_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL | re.IGNORECASE)
THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)
"""A <think> or </think> tag anywhere in a text."""


def split_think(text: str) -> tuple[str | None, str]:
    """(CoT or None, the rest) of an assistant text that may start with <think>...</think>.

    The one place a leading think block is read: readers, judge answers and generated CoTs.
    """
    match = _THINK.match(text)
    if match is None:
        return None, text
    return match.group(1).strip() or None, text[match.end() :]


def funreason_messages(
    tools: list[dict[str, Any]], messages: list[dict[str, str]], system: str | None = None
) -> list[dict[str, str]]:
    """The paper's chat: its system prompt with the tools (after a record's own system prompt, if it
    has one), then ``messages`` (role and content; an assistant's content is its target).

    What exports write, what self-refinement asks the sampling model, what the MSL plugin trains on.
    """
    prompt = FUNREASON_SYSTEM + json.dumps(tools, ensure_ascii=False)
    return [{"role": "system", "content": f"{system}\n\n{prompt}" if system else prompt}, *messages]


def render_target(record: Record, calls_text: str | None = None) -> str:
    """The paper's assistant target ``<think>{cot}</think>\n\n[func(param=value)]`` (just the answer
    without a CoT). Raises CallSyntaxError when a call cannot be written in the paper's syntax.

    ``calls_text`` is the already rendered call list, when the caller has it.
    """
    if isinstance(record.answer, str):
        body = record.answer
    else:
        body = calls_text if calls_text is not None else render_calls(record.calls)
    if record.cot is None or not record.cot.strip():
        return body
    return f"<think>{record.cot.strip()}</think>\n\n{body}"


def answer_text(record: Record) -> str:
    """A record's answer as text: the paper's call syntax, or JSON for calls it cannot write."""
    return answer_as_text(record.answer)


def answer_as_text(answer: list[FunctionCall] | str | None) -> str:
    """An answer (of a record, or of a conversation's turn) as text: a text as it is, calls in the
    paper's syntax, or as JSON when that syntax cannot write them; "" for no answer."""
    if isinstance(answer, str):
        return answer
    calls = answer or []
    try:
        return render_calls(calls)
    except CallSyntaxError:
        return json.dumps([c.model_dump() for c in calls], ensure_ascii=False)


def hermes_calls(calls: list[FunctionCall]) -> str:
    return "\n".join(
        f"<tool_call>\n{json.dumps({'name': c.name, 'arguments': c.arguments}, ensure_ascii=False)}\n</tool_call>"
        for c in calls
    )
