"""The sentences of tool-calling instructions, as system prompts of function-calling data write them.

A reader removes the instructions and their tool list from a system prompt (the exports write their
own). It may remove only what is instructions: any other text there (a date, a rule, a persona
written between two of their sentences) would be lost with them. ``foreign_text`` finds such text
by taking out, one after another, the sentences these instructions are known to hold: FunReason's
and BFCL's (also ToolACE's and Llama's zero-shot prompt), Hermes' (NousResearch's data, Hermes 2
Pro's and 3's templates, ours) and Glaive's. Spacing and case may differ; wording may not.
"""

from __future__ import annotations

import re

_CALLS = r"\[func(?:_name)?1\(.{0,80}?\), func(?:_name)?2\(params\)\]"  # [func_name1(...), func_name2(params)]
# The pydantic schema of a call (three deep at most; possessive, so hostile text cannot make it backtrack), and
# Hermes 2 Pro's template closes it with one brace too many. What it holds is checked: _SCHEMA_WORDS.
_SCHEMA = r"(?P<schema>\{[^{}]*+(?:\{[^{}]*+(?:\{[^{}]*+\}[^{}]*+)*+\}[^{}]*+)*+\}\}?)"
_SCHEMA_WORDS = {"title", "functioncall", "type", "object", "properties", "arguments", "name", "string", "required"}
# How a call is written, as the instructions show it: placeholders, never a call ({'arguments': <args-dict>, ...}).
_PLACEHOLDER_CALL = (
    r"<tool_call> (?:\{tool_call\}|"
    r"\{\s*(?:['\"]?(?:name|arguments)['\"]?\s*:\s*<[\w\s-]{1,20}+>\s*,?\s*){2}\}) </tool_call>"
)


def _sentence(words: str) -> str:
    """A sentence's pattern: its words in order, any spacing between them (none, too: "tags.You"), its
    closing full stop optional."""
    pattern = r"\s*".join(words.split())
    return pattern + "?" if pattern.endswith(r"\.") else pattern


_SENTENCES = [
    # FunReason's (targets.FUNREASON_SYSTEM) and BFCL's, as ToolACE and Llama's zero-shot prompt write it.
    r"You are an expert in composing functions\.",
    r"You are given a (?:question|query) and a set of possible functions\.",
    r"Based on the (?:question|query), you will need to make one or more function(?:/tool)? calls to achieve the "
    r"purpose\.",
    r"If none of the functions? can be used, point it out(?: and refuse to answer)?\.",
    r"If the given question lacks the parameters required by the function, also point it out\.",
    r"You should only return the function calls? in (?:tools call sections|your response)\.",
    r"If you decide to invoke any of the function\(s\), you MUST put it in the format of " + _CALLS + r"\.?",
    r"You SHOULD NOT include any other text in the response\.",
    r"At each turn, you should try your best to complete the tasks requested by the user within the current turn\.",
    r"Continue to output functions to call until you have fulfilled the user's request to the best of your ability\.",
    r"Once you have no more functions to call, the system will consider the current turn complete and proceed to "
    r"the next turn or task\.",
    r"Here is a list of functions in JSON format that you can invoke[.:]",
    r"Should you decide to return the function call\(s\), Put it in the format of " + _CALLS + r"\.?",
    r"NO other text MUST be included\.",
    r"Think step by step inside <think></think>, then write the calls as " + _CALLS + r"\.",
    # Hermes' (targets.HERMES_SYSTEM, NousResearch's hermes-function-calling data, Hermes 2 Pro and 3).
    r"You are a function calling AI model\.",
    r"You are provided with function signatures within <tools> </tools> XML tags\.",
    r"You may call one or more functions to assist with the user query\.",
    r"If available tools are not relevant in assisting (?:with )?(?:the )?user query, just respond in natural "
    r"conversational language\.",
    r"Don't make assumptions about what values to plug into functions\.",
    r"After calling (?:&|and) executing the functions, you will be provided with function results within "
    r"<(?:tool_response> </tool_response|tool_results)> XML tags\.",
    r"Here are the available tools:",
    r"Use the following pydantic model json schema for each tool call you will make: " + _SCHEMA,
    r"For each function call,? return a json object,? with function name and arguments within "
    r"<tool_call> </tool_call> (?:XML )?tags (?:with the following schema|as follows):",
    r"For each function call return a JSON object, with the following pydantic model json schema for each: " + _SCHEMA,
    r"Each function call should be enclosed within <tool_call> </tool_call> XML tags\.",
    r"Example:",
    r"Think step by step inside <think></think>, then call one or more functions, each as a JSON object with "
    r"its name and arguments within <tool_call></tool_call> XML tags\.",
    # Glaive's (glaive-function-calling-v2), its tools after the dash.
    r"SYSTEM:\s*(?=You are a helpful assistant with access)",
    r"You are a helpful assistant with access to the following functions\.",
    r"Use them if required\s*-",
    _PLACEHOLDER_CALL,  # last: sentences name the tag
]
_KNOWN = [re.compile(_sentence(s), re.IGNORECASE) for s in _SENTENCES]
_NOTHING = re.compile(r"[\s.,:;]*")
_SPACES = re.compile(r"\s+")


def _taken_out(found: re.Match[str]) -> str:
    """A known sentence's place, or the sentence itself when its schema holds words no call schema has."""
    schema = found.groupdict().get("schema")
    if schema is not None and not set(re.findall(r"[a-z_]+", schema.lower())) <= _SCHEMA_WORDS:
        return found.group(0)
    return "\0"


def foreign_text(text: str) -> str | None:
    """The first text in ``text`` (instructions, their tool list taken out) that is none of their
    known sentences, spaces made single and cut at 80 characters; None when it is all theirs."""
    for sentence in _KNOWN:
        text = sentence.sub(_taken_out, text)
    for piece in text.split("\0"):
        if not _NOTHING.fullmatch(piece):
            found = _SPACES.sub(" ", piece).strip(" .,:;")
            return found if len(found) <= 80 else found[:77] + "..."
    return None
