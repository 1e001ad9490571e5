"""--judge-model: swapping the judge of a pipeline means that model, at its own provider's endpoint.

``MODEL`` alone is served where LiteLLM sends that provider's calls (OpenAI's API for ``openai/...``,
Anthropic's for ``anthropic/...``); ``MODEL@URL`` serves it at URL. The pipeline's servers, rate
limits and prices belong to the model it named, so they do not carry over to another model. The
[generate] table (the model that rewrites CoTs) is swapped the same way; a stage's own ``judge`` or
``generate`` table keeps the model it names.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funreason_refine.config import Pipeline
    from funreason_refine.judge.settings import ModelSettings

# What belongs to the model a table names, not to whichever model replaces it (json_form: the
# structured output its server takes; context_window: its own window).
MODEL_KEYS = (
    "api_base",
    "endpoints",
    "prices",
    "max_requests_per_minute",
    "max_tokens_per_minute",
    "batch",
    "json_form",
    "context_window",
)


def split_model(given: str) -> tuple[str, str | None]:
    """``MODEL`` or ``MODEL@http(s)://URL`` as (model, api_base). A model string may hold '@' itself
    (Vertex AI versions: ``vertex_ai/claude-3-5-sonnet@20240620``): only an '@' before a URL splits."""
    for scheme in ("@http://", "@https://"):
        if scheme in given:
            model, url = given.rsplit(scheme, 1)
            return model, scheme[1:] + url
    return given, None


def swap_judge(data: dict[str, Any], given: str) -> dict[str, Any]:
    """The pipeline's data with [judge] (added when missing) and [generate] (when present) set to ``given``."""
    model, api_base = split_model(given)
    out = copy.deepcopy(data)
    for key in ("judge", "generate"):
        table = out.get(key)
        if key == "generate" and not isinstance(table, dict):
            continue
        swapped = {k: v for k, v in (table if isinstance(table, dict) else {}).items() if k not in MODEL_KEYS}
        swapped["model"] = model
        if api_base is not None:
            swapped["api_base"] = api_base
        out[key] = swapped
    return out


def model_lines(pipeline: Pipeline) -> list[str]:
    """Each model a judged pipeline asks, where its calls go and what its tokens cost, one line each."""
    from funreason_refine.judge.library import load_litellm
    from funreason_refine.judge.prices import price_of

    litellm = load_litellm()  # offline: never fetches the price list

    seen: dict[str, ModelSettings] = {}
    for stage in pipeline.stages:
        models: list[ModelSettings | None] = [*(stage.judge.judges if stage.judge is not None else []), stage.generator]
        for settings in models:
            if settings is not None:
                seen.setdefault(
                    settings.model_dump_json(include={"model", "api_base", "endpoints", "prices"}), settings
                )
    lines = []
    for settings in seen.values():
        servers = [e.api_base for e in settings.endpoint_list() if e is not None]
        where = ", ".join(servers) if servers else "its provider's own endpoint (LiteLLM's default for it)"
        price = price_of(litellm, settings)
        cost = (
            f"${price.input * 1e6:g} / ${price.output * 1e6:g} per million tokens in / out ({price.source})"
            if price is not None
            else "no known price: its cost counts as 0 (set [judge] prices)"
        )
        lines.append(f"{settings.model} at {where}; {cost}")
    return lines
