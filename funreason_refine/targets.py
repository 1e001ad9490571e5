"""The text forms a training target takes, shared by the exports and the readers that read them back."""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from funreason_refine.calls import parse_calls, render_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.jsonl import loads
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


_INSTRUCTIONS = (("funreason", FUNREASON_SYSTEM), ("hermes", HERMES_SYSTEM))


def instructions_in(system: str) -> tuple[int, str] | None:
    """Where the tool-calling instructions of our exports begin in ``system``, and whose they are
    ("funreason" or "hermes"); None without them. Their first 60 characters are matched: other Hermes
    prompts, NousResearch's among them, begin as ours does."""
    found = [(at, name) for name, text in _INSTRUCTIONS if (at := system.find(text[:60])) != -1]
    return min(found) if found else None


def own_system(system: str | None) -> str | None:
    """A system prompt without the tool-calling instructions our exports add (FunReason's, Hermes'):
    the conversation's own (as it was, when it has none of them), or None."""
    if not system:
        return None
    found = instructions_in(system)
    return system[: found[0]].strip() or None if found else system


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
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_CALL_LIST_START = re.compile(r"\[\s*([A-Za-z_][\w. ]*?)\s*\((\s*\)|\s*[A-Za-z_]\w*\s*=)")
"""``[name()`` or ``[name(param=``: a text that starts so and ends with ``]`` (or has none: cut off) is a
call list, read or refused, never a text answer (``[Note (see below)]``, ``[x.strip() for x in lines]
strips them`` are text). The name may hold spaces, as ToolACE's API names do (``[Market Trends
API(trend_type="x")]``): Python's syntax, and so the paper's, cannot write it."""


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


def calls_from_text(text: str) -> list[FunctionCall] | None:
    """Calls written as Hermes <tool_call> blocks or as the paper's [func(...)] list; None if neither."""
    return calls_in_text(text)[0]


def calls_in_text(text: str) -> tuple[list[FunctionCall] | None, str]:
    """(calls, the text beside them) of a text that writes calls as Hermes <tool_call> blocks or as the
    paper's [func(...)] list (the whole text, so nothing beside it); (None, text) if neither.

    ValueError when a block does not hold a call (UnreadKey when it holds a key that would be lost), or
    when a text that starts as a call list does not parse (CallSyntaxError)."""
    blocks = _TOOL_CALL.findall(text)
    if blocks:
        return [block_call(block, n) for n, block in enumerate(blocks)], _TOOL_CALL.sub("", text)
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return parse_calls(stripped), ""
        except CallSyntaxError as exc:
            start = _CALL_LIST_START.match(stripped)
            if start and (stripped.endswith("]") or "]" not in stripped):
                raise CallSyntaxError(
                    f"starts as a [func(...)] call list but does not parse: {_why(start, exc)}"
                ) from None
            return None, text
    return None, text


class UnreadKey(ValueError):
    """A <tool_call> block with a key beside its call that is not read (it would be lost), or with
    both ``arguments`` and ``parameters``: the chat readers quarantine the record, naming ``key``."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


BLOCK_KEYS = ("name", "arguments", "parameters")
"""The keys of a Hermes <tool_call> block: ``parameters`` is Llama 3's name for the arguments."""


def _why(start: re.Match[str], exc: CallSyntaxError) -> str:
    name = start.group(1).strip()
    if " " in name:
        return f"the function name {name!r} holds spaces, which the [func(...)] syntax cannot write"
    return str(exc)


def block_call(block: str, n: int) -> FunctionCall:
    """The call of the ``n``-th <tool_call> block: ``{"name", "arguments"}`` (or ``"parameters"``, as
    Llama 3 writes them), arguments as an object or its JSON text. ValueError saying why not."""
    at = f"<tool_call> block {n}"
    obj = _json(block, at, literal=True)
    if not isinstance(obj, dict):
        raise ValueError(f"{at}: must hold a JSON object with a name and arguments, got {type(obj).__name__}")
    for key, value in obj.items():
        if key not in BLOCK_KEYS and not _says_nothing(value):
            raise UnreadKey(key, f"{at}: key {key!r} is not read (it would be lost); only name and arguments are")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{at}: no function name")
    parameters = obj.get("parameters")
    if "arguments" in obj and not _says_nothing(parameters):
        raise UnreadKey("parameters", f"{at} ({name}): both 'arguments' and 'parameters'; give one of them")
    arguments = obj["arguments"] if "arguments" in obj else parameters or {}
    if isinstance(arguments, str):
        arguments = _json(arguments, f"{at} ({name}) arguments")
    if not isinstance(arguments, dict):
        raise ValueError(f"{at} ({name}): arguments must be an object, got {type(arguments).__name__}")
    return FunctionCall(name=name, arguments=arguments)


def _json(text: str, what: str, literal: bool = False) -> Any:
    """JSON text's value (``literal``: or a Python literal's, as Hermes data writes a block)."""
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        value = python_literal(text) if literal else None
        if value is None:
            nor = " nor a dict as Python writes it" if literal else ""
            raise ValueError(f"{what}: not JSON ({exc.msg}){nor}") from None
        return value
    except ValueError as exc:  # NaN or Infinity, or an integer of over 4,300 digits
        raise ValueError(f"{what}: not JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"{what}: not JSON (nested too deeply)") from None


LITERAL_LIMIT = 256 << 10
"""The longest text read as a Python literal (parsing one takes about 500 times the memory of its text)."""


def python_literal(text: str) -> Any:
    """The value of a dict or list written as Python writes it (``repr``, ``str``), of JSON's types
    only: NousResearch's Hermes data writes its calls and tools so (``{'name': 'f', 'arguments':
    {...}}``). None when ``text`` is not exactly that: Python's other spellings (``'a' 'b'``, ``0x10``,
    ``'\\x41'``, a trailing comma, other spacing) could read as something the text did not mean, and
    tuples, sets, bytes, non-string keys and infinities are not JSON."""
    text = text.strip()
    if len(text) > LITERAL_LIMIT or text[:1] not in "[{":
        return None
    try:
        value = ast.literal_eval(text)
        return value if _json_like(value) and repr(value) == text else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # repr: an int over 4,300 digits
        return None


def _json_like(value: Any) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _json_like(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_like(v) for v in value)
    if type(value) is float:
        return math.isfinite(value)
    return value is None or type(value) in (str, int, bool)


def _says_nothing(value: Any) -> bool:
    """null, or an empty text, list or object (as readers.content.is_empty)."""
    return value is None or (isinstance(value, (str, list, dict)) and not value)


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
