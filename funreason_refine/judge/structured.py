"""Asking for the verdict as a JSON object (``verdict_format = "json"``), constrained by a JSON Schema in the form
the server takes (``json_form``).

Each server spells structured output its own way, and LiteLLM passes ``response_format`` through unchanged
for ``openai/`` and ``hosted_vllm/`` models (it turns a ``json_schema`` one, or a ``format`` parameter, into
Ollama's ``format`` for ``ollama/`` and ``ollama_chat/``):

- ``json_schema``: OpenAI and vLLM, ``response_format = {"type": "json_schema", "json_schema": {...}}``;
- ``json_object``: llama-cpp-python's server, ``response_format = {"type": "json_object", "schema": {...}}``
  (it answers the ``json_schema`` form with HTTP 500);
- ``ollama``: Ollama's own ``format = {...}``.

The prompt still names the fields (a server that ignores the schema still gets the JSON it was asked for).
"""

from __future__ import annotations

import re
from typing import Any, Literal

VerdictFormat = Literal["tags", "json"]
JsonForm = Literal["json_schema", "json_object", "ollama"]
FORMS: tuple[JsonForm, ...] = ("json_schema", "json_object", "ollama")
OLLAMA_PREFIXES = ("ollama/", "ollama_chat/")


def default_form(model: str) -> JsonForm:
    """The form a model string's server most likely takes: Ollama's for Ollama models, else OpenAI's."""
    return "ollama" if model.lower().startswith(OLLAMA_PREFIXES) else "json_schema"


def verdict_schema(allow_newfc: bool) -> dict[str, Any]:
    """The JSON Schema of a verdict. Every key is required and no other is allowed (what OpenAI's strict mode
    needs); "reason" comes first, so that a model writes its reasons before it commits to the verdict."""
    properties: dict[str, Any] = {
        "reason": {"type": "string", "description": "why: which criterion fails, or that all hold"},
        "judge": {"type": "boolean", "description": "true when every criterion holds, else false"},
    }
    if allow_newfc:
        properties["new_fc"] = {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "with judge false: the corrected calls as [func_name(param=value, ...)]; else null",
        }
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def request_params(form: JsonForm, allow_newfc: bool) -> dict[str, Any]:
    """The LiteLLM parameters that ask a server for a verdict in its own form."""
    schema = verdict_schema(allow_newfc)
    if form == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if form == "ollama":
        return {"format": schema}
    return {
        "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": schema}}
    }


def answer_note(allow_newfc: bool) -> str:
    """What the prompt says last, after the stage's own question (written for the tags): the JSON to answer with."""
    new_fc = (
        ', "new_fc": the corrected calls as "[func_name(param=value, ...)]" where the question asks for '
        "<NewFC>, else null"
        if allow_newfc
        else ""
    )
    return (
        "\n\nWrite your answer as one JSON object instead of the tags named above, and nothing else: "
        '{"reason": what <reason> would hold, "judge": true for <judge>True</judge> or false for '
        f"<judge>False</judge>{new_fc}}}."
    )


_ABOUT_THE_FORM = re.compile(
    r"response_format|json[ _]schema|json_object|grammar|guided_(?:json|decoding)|structured output", re.IGNORECASE
)


def speaks_of_the_form(said: str) -> bool:
    """Whether a server's error speaks of the structured output asked for (else a 5xx is a passing failure)."""
    return _ABOUT_THE_FORM.search(said) is not None


def refusal(model: str, where: str, form: JsonForm, said: str) -> str:
    """One line for a server that refused the form its first JSON verdicts were asked in."""
    others = " or ".join(f'"{f}"' for f in FORMS if f != form)
    return (
        f"{model} at {where} refused the JSON verdict asked in json_form = {form!r} ({said}): this server takes "
        f"structured output in another form. Set [judge] json_form = {others} (json_object: llama-cpp-python's "
        'server; ollama: Ollama; json_schema: OpenAI, vLLM), or verdict_format = "tags"'
    )
