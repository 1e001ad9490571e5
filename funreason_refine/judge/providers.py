"""Whether LiteLLM can tell a model's provider from its name, checked offline before any call.

LiteLLM picks the API it calls from the model string's prefix (``openai/``, ``anthropic/``, ...), from
its list of known model names, or from a known host in ``api_base``. A name it cannot place raises
"LLM Provider NOT provided" before anything is sent: no record can be judged with it, so a run stops
at its start, and ``refine validate`` says so before a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from funreason_refine.judge.settings import ModelSettings

NOT_PROVIDED = "LLM Provider NOT provided"
"""What LiteLLM's BadRequestError says when it cannot tell a model's provider."""

HOW = (
    "write the model as provider/name: openai/NAME for any OpenAI-compatible server at api_base (vLLM, "
    "llama.cpp, a proxy), hosted_vllm/NAME, anthropic/NAME, ollama_chat/NAME, ... (LiteLLM's providers: "
    "https://docs.litellm.ai/docs/providers)"
)


def unknown_provider(exc: BaseException) -> bool:
    """``exc`` is LiteLLM's refusal of a model name whose provider it cannot tell (nothing was sent)."""
    return NOT_PROVIDED in str(exc) and getattr(exc, "litellm_response_headers", None) is None


def provider_problem(litellm: Any, settings: ModelSettings) -> str | None:
    """Why LiteLLM cannot call ``settings.model`` (it cannot tell its provider), or None. Offline."""
    named = settings.extra.get("custom_llm_provider")  # extra = {custom_llm_provider = "openai"} names it
    for endpoint in settings.endpoint_list():  # a known host in api_base names a provider too
        try:
            api_base = endpoint.api_base if endpoint else None
            litellm.get_llm_provider(settings.model, custom_llm_provider=named, api_base=api_base)
        except Exception as exc:  # any other trouble is for the call to report, in its words
            if unknown_provider(exc):
                continue
        return None
    return f"LiteLLM cannot tell the provider of the model {settings.model!r}: {HOW}"


def provider_problems(litellm: Any, models: Iterable[ModelSettings]) -> list[str]:
    """Each problem of :func:`provider_problem` once, in the order the models come."""
    found = (provider_problem(litellm, settings) for settings in models)
    return list(dict.fromkeys(problem for problem in found if problem is not None))


WELL_KNOWN = frozenset(
    {
        "openai",
        "azure",
        "anthropic",
        "hosted_vllm",
        "ollama",
        "ollama_chat",
        "vertex_ai",
        "gemini",
        "bedrock",
        "groq",
        "mistral",
        "deepseek",
        "together_ai",
        "fireworks_ai",
        "openrouter",
        "litellm_proxy",
        "huggingface",
        "cohere",
        "xai",
    }
)
"""Providers LiteLLM has long had: a model named under one of them is known without importing LiteLLM (an
import of seconds), so that `refine validate` stays quick; any other name is asked of LiteLLM itself."""


def check_without_calls(models: Iterable[ModelSettings]) -> list[str]:
    """:func:`provider_problems` of ``models``, LiteLLM loaded only for a name outside :data:`WELL_KNOWN`."""
    unsure = [m for m in models if m.model.partition("/")[0] not in WELL_KNOWN or "/" not in m.model]
    if not unsure:
        return []
    from funreason_refine.judge.library import load_litellm

    return provider_problems(load_litellm(), unsure)
