"""Judge and generator settings: which LiteLLM model, how to call it. Keys come only from the environment."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Prices(BaseModel):
    """Prices for a model missing from LiteLLM's price list, in USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(0.0, ge=0)
    output_per_million: float = Field(0.0, ge=0)


class ModelSettings(BaseModel):
    """One LiteLLM model and its call parameters (a `[judge]` table, a stage's `judge`, a `[generate]` table)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Any LiteLLM model string: openai/..., anthropic/..., ollama/..., hosted_vllm/...")
    api_base: str | None = Field(None, description="Server URL, e.g. http://localhost:8000/v1 for vLLM.")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, description="Answer length limit.")
    timeout: float = Field(120.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(5, ge=0, le=20, description="Retries on 429, 5xx, timeouts and dropped connections.")
    extra: dict[str, Any] = Field(default_factory=dict, description="More LiteLLM parameters (top_p, seed, ...).")
    prices: Prices | None = Field(None, description="Prices when LiteLLM does not know the model.")

    @field_validator("extra")
    @classmethod
    def _no_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            name = key.lower()
            if name in {"key", "token", "headers", "extra_headers"} or name.endswith(("_key", "_token", "secret")):
                raise ValueError(
                    f"{key!r} looks like a credential; keys come from the environment "
                    "(OPENAI_API_KEY, ANTHROPIC_API_KEY, ...), never from the pipeline file"
                )
        return value

    def sampling(self) -> dict[str, Any]:
        """What decides the answer besides the prompt: part of the cache key."""
        return {
            "model": self.model,
            "api_base": self.api_base,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "extra": self.extra,
        }

    def cache_key(self, messages: list[dict[str, str]], variant: str = "") -> str:
        """``variant`` tells apart answers asked for again on purpose (the k-th sample of a prompt)."""
        payload = json.dumps(
            {**self.sampling(), "messages": messages, "variant": variant}, sort_keys=True, ensure_ascii=False
        )
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class JudgeSettings(ModelSettings):
    """The `[judge]` table: the default judge of every judged stage, and the run's limits."""

    max_concurrency: int = Field(16, ge=1, le=4096, description="Judge calls in flight at once.")
    protocol_retries: int = Field(2, ge=0, le=10, description="Times a malformed answer is asked again.")


class GenerateSettings(ModelSettings):
    """The `[generate]` table: the model that writes CoTs for records without one."""

    temperature: float = Field(0.1, ge=0, le=2)
    prompt: str | None = Field(None, description="CoT generation prompt; placeholders {query} {tools} {answer}.")


class SourceSettings(ModelSettings):
    """The `[source]` table of self-refinement: the model that writes candidate answers."""

    model: str = Field(alias="sample_from", description="The model to sample from (any LiteLLM model string).")
    samples: int = Field(4, ge=1, le=64, description="Candidates (CoT and answer) per query per round.")
    temperature: float = Field(0.7, ge=0, le=2)
    max_concurrency: int = Field(16, ge=1, le=4096, description="Sampling calls in flight at once.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Vote = Literal["unanimous", "majority"]


@dataclass
class JudgePanel:
    """How one stage asks its judges: the prompt template, the answer protocol, the models, the vote."""

    template: str
    allow_newfc: bool
    judges: list[ModelSettings]
    vote: Vote = "unanimous"

    @property
    def label(self) -> str:
        """Who decided, as the trail names it: the models, joined by "+"."""
        return "+".join(j.model for j in self.judges)
