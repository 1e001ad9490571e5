"""Judge and generator settings: which LiteLLM model, where it is served, how to call it (keys: environment only)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from funreason_refine.judge.structured import JsonForm, VerdictFormat, default_form, request_params
from funreason_refine.stages.base import Vote


class Prices(BaseModel):
    """Prices for a model missing from LiteLLM's price list, in USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(0.0, ge=0, description="USD per million prompt tokens.")
    output_per_million: float = Field(0.0, ge=0, description="USD per million answer tokens.")


SERVER_KEYS = ("api_base", "endpoints")
TWICE = "list each server once (to send it more of the calls, give it a [[judge.endpoints]] table with weight = 2)"


def server_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; ValueError saying what to write otherwise."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a server URL; write it as http://HOST:PORT/v1 (or https://...)")
    return url


def _listed_twice(urls: list[str]) -> None:
    seen: set[str] = set()
    for url in urls:
        same = url.rstrip("/").lower()
        if same in seen:
            raise ValueError(f"{url} is listed twice; {TWICE}")
        seen.add(same)


class Endpoint(BaseModel):
    """One server of a model (a `[[judge.endpoints]]` table): where calls go and how many at once."""

    model_config = ConfigDict(extra="forbid")

    api_base: str = Field(description="Server URL, e.g. http://gpu-1:8000/v1.")
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Calls in flight on this server at once (default: no bound of its own).",
    )
    weight: float = Field(
        default=1.0, gt=0, description="Preference when several servers have free slots (free slots x weight)."
    )
    max_requests_per_minute: int | None = Field(default=None, ge=1, description="This server's request rate limit.")
    max_tokens_per_minute: int | None = Field(
        default=None, ge=1, description="This server's token rate limit (in + out)."
    )

    @model_validator(mode="before")
    @classmethod
    def _url_alone(cls, value: Any) -> Any:
        return {"api_base": value} if isinstance(value, str) else value

    @field_validator("api_base")
    @classmethod
    def _a_url(cls, value: str) -> str:
        return server_url(value)


class ModelSettings(BaseModel):
    """One LiteLLM model and its call parameters (a `[judge]` table, a stage's `judge`, a `[generate]` table).

    Where the model is served (``api_base``, ``endpoints``), rate limits, timeouts and retries are
    not part of :meth:`sampling`: moving a judge to other servers keeps its cached answers.
    """

    model_config = ConfigDict(extra="forbid")
    # With first_token_timeout the answer is streamed (a scorer's is not: its logprobs come whole).
    streamable: ClassVar[bool] = True
    # The LiteLLM parameters each call sets (Caller._completion, _streamed) that are no key of the table, with
    # what sets them: refused in extra, like the table's own keys (model, temperature, max_tokens, timeout, ...).
    client_keys: ClassVar[dict[str, str]] = {
        "messages": "the prompt",
        "stream": "answers are streamed when first_token_timeout is set",
        "stream_options": "answers are streamed when first_token_timeout is set",
    }

    model: str = Field(description="Any LiteLLM model string: openai/..., anthropic/..., ollama/..., hosted_vllm/...")
    api_base: str | list[str] | None = Field(
        None, description="Server URL, e.g. http://localhost:8000/v1 for vLLM, or a list of servers of the same model."
    )
    endpoints: list[Endpoint] | None = Field(
        None, description="Servers of the same model with their own max_concurrency, weight and rate limits."
    )
    max_requests_per_minute: int | None = Field(None, ge=1, description="Request rate limit of the model.")
    max_tokens_per_minute: int | None = Field(
        None, ge=1, description="Token rate limit of the model (prompt + max_tokens before a call, settled after)."
    )
    outage_timeout: float = Field(
        600.0, gt=0, description="Seconds every server may fail before the run stops (resumable); calls wait meanwhile."
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature (part of the answer cache key).")
    max_tokens: int | None = Field(None, ge=1, description="Answer length limit.")
    timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds per request; with first_token_timeout, seconds from the answer's first token to its end.",
    )
    first_token_timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds a call may wait for the first token of its answer (the server's queue and its reading "
        "of the prompt). Set, answers are streamed, timeout counts from the first token, and the wait is counted "
        "as queue_seconds, not as call time (a server that takes one request at a time: docs/judges.md).",
    )
    max_prompt_tokens: int | None = Field(
        None,
        ge=1,
        description="Prompt tokens a call to this model may have (counted here with LiteLLM's counter); a record "
        "whose prompt is longer is discarded at the stage with reason prompt_too_long, before any call ([source]: "
        "the query is not sampled, said in sampling_errors.jsonl).",
    )
    context_window: int | None = Field(
        None,
        ge=1,
        description="The model's context window in tokens (prompt + max_tokens), for a model LiteLLM's model list "
        "does not know (a local server): refine estimate and refine validate --prompts count the records over it.",
    )
    max_retries: int = Field(5, ge=0, le=20, description="Retries on 429, 5xx, timeouts and dropped connections.")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="More LiteLLM parameters (top_p, seed, ...); not the table's own keys (temperature, max_tokens, "
        "timeout, ...) nor what the call sets itself (messages, stream).",
    )
    prices: Prices | None = Field(
        None, description="Prices when LiteLLM does not know the model (with batch = true: the batch prices)."
    )
    batch: bool = Field(
        False,
        description="Send the calls as provider batch jobs (LiteLLM's files and batches API): about half the "
        "price, answers within 24 h.",
    )
    batch_poll_interval: float = Field(60.0, gt=0, le=3600, description="Seconds between looks at batches in flight.")
    batch_max_requests: int = Field(
        10_000, ge=1, le=50_000, description="Calls per batch job at most (OpenAI takes up to 50,000)."
    )

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
            cls._not_set_twice(key)
        return value

    @classmethod
    def _not_set_twice(cls, key: str) -> None:
        """Refuse an ``extra`` key that the call sets already: given twice, LiteLLM's call fails on every record
        (a keyword given twice), or one of the two is dropped in silence."""
        own = {name for name, f in cls.model_fields.items() if name != "extra"}
        own |= {f.alias for f in cls.model_fields.values() if f.alias}
        if key in own:
            raise ValueError(f"{key!r} is a key of this table: write {key} = ... beside extra, not in it")
        if key in cls.client_keys:
            raise ValueError(f"{key!r} is set by the client itself ({cls.client_keys[key]}); remove it from extra")

    @field_validator("api_base", mode="before")
    @classmethod
    def _one_or_more_urls(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("an empty list of servers; give at least one URL")
        if value is not None and not isinstance(value, str | list):
            raise ValueError('give a URL ("http://host:8000/v1") or a list of URLs')
        urls = [value] if isinstance(value, str) else value or []
        if not all(isinstance(url, str) for url in urls):
            raise ValueError('give each server as a URL in quotes ("http://host:8000/v1")')
        for url in urls:
            server_url(url)
        _listed_twice(urls)
        return value

    @field_validator("endpoints")
    @classmethod
    def _each_server_once(cls, value: list[Endpoint] | None) -> list[Endpoint] | None:
        _listed_twice([e.api_base for e in value or []])
        return value

    @model_validator(mode="after")
    def _api_base_or_endpoints(self) -> Self:
        if self.endpoints is not None and self.api_base is not None:
            raise ValueError(
                "api_base and endpoints are both set; list every server under endpoints "
                "([[judge.endpoints]] api_base = ..., max_concurrency = ...) and remove api_base"
            )
        if self.endpoints is not None and not self.endpoints:
            raise ValueError("endpoints is empty; give at least one server, or remove the key")
        return self

    @classmethod
    def over(cls, defaults: dict[str, Any], table: dict[str, Any]) -> ModelSettings:
        """A stage's judge table over the [judge] table's keys: a table that names its servers
        (``api_base`` or ``endpoints``, either spelling) replaces [judge]'s servers, never adds to them."""
        if any(key in table for key in SERVER_KEYS):
            defaults = {k: v for k, v in defaults.items() if k not in SERVER_KEYS}
        return cls.model_validate({**defaults, **table})

    def endpoint_list(self) -> list[Endpoint | None]:
        """The servers of this model in order; ``None`` stands for the provider's default URL."""
        if self.endpoints is not None:
            return list(self.endpoints)
        if isinstance(self.api_base, list):
            return [Endpoint(api_base=url) for url in self.api_base]
        return [Endpoint(api_base=self.api_base)] if self.api_base else [None]

    def endpoint_capacity(self) -> int | None:
        """The summed max_concurrency of the servers, when every one of them has one."""
        caps = [e.max_concurrency if e is not None else None for e in self.endpoint_list()]
        return sum(c for c in caps if c is not None) if all(c is not None for c in caps) else None

    def sampling(self) -> dict[str, Any]:
        """What decides the answer besides the prompt: part of the cache key and of the run's identity.

        Never where the model is served, nor rate limits, timeouts or retries: a judge moved to
        another server (or spread over several) answers the same prompt the same way.
        """
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "extra": self.extra,
        }

    def call_params(self) -> dict[str, Any]:
        """The LiteLLM parameters of a call besides the model, messages and the keys above: ``extra``."""
        return dict(self.extra)

    def cache_key(self, messages: list[dict[str, str]], variant: str = "") -> str:
        """``variant`` tells apart answers asked for again on purpose (the k-th sample of a prompt)."""
        return _digest({**self.sampling(), "messages": messages, "variant": variant})

    def legacy_cache_key(self, messages: list[dict[str, str]], variant: str = "") -> str | None:
        """The key the cache used before endpoints left it (it held ``api_base``), for a single server.

        Looked up after a miss, so that answers cached by earlier versions are not paid for again.
        """
        if isinstance(self.api_base, list) or self.endpoints is not None:
            return None  # lists of servers came with the new key: nothing was cached under the old one
        return _digest({**self.sampling(), "api_base": self.api_base, "messages": messages, "variant": variant})


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _default_concurrency(settings: JudgeSettings | SourceSettings) -> None:
    """Without its own max_concurrency, a model served by servers that all have one fills them all."""
    if "max_concurrency" not in settings.model_fields_set:
        capacity = settings.endpoint_capacity()
        if capacity is not None:
            settings.max_concurrency = min(capacity, 4096)


class JudgeModel(ModelSettings):
    """A judge: a model and its call parameters, and how its verdicts are asked for (a stage's `judge`, each
    table of its `judges`, and the `[judge]` table they default to)."""

    verdict_format: VerdictFormat = Field(
        "tags",
        description='How the verdict is asked for: "tags" (the paper\'s `<judge>True</judge>`, `<reason>`, `<NewFC>`) '
        'or "json" (the same verdict as a JSON object, which a JSON Schema makes the server write, in the form '
        "json_form names).",
    )
    json_form: JsonForm | None = Field(
        None,
        description='With verdict_format = "json", the form of the schema the server takes: "json_schema" (OpenAI, '
        'vLLM), "json_object" (llama-cpp-python\'s server) or "ollama" (Ollama\'s format). Default: "ollama" for '
        'ollama/ and ollama_chat/ models, else "json_schema".',
    )

    client_keys: ClassVar[dict[str, str]] = {
        **ModelSettings.client_keys,
        "response_format": 'a JSON verdict is asked for with verdict_format = "json"',
        "format": 'a JSON verdict is asked for with verdict_format = "json"',
    }

    # The LiteLLM parameters that ask for a JSON verdict (set by asking()): sent with every call, but no part of
    # sampling(), so that a server moved to another json_form keeps its cached answers and its run folder.
    _request: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def form(self) -> JsonForm:
        """The JSON form its calls use: json_form, or the one its model string suggests."""
        return self.json_form or default_form(self.model)

    @property
    def structured(self) -> bool:
        """Whether its calls ask the server for a JSON verdict in a form (response_format or format)."""
        return bool(self._request)

    def asking(self, allow_newfc: bool) -> JudgeModel:
        """These settings as a stage calls with them: with verdict_format = "json", each request carries the
        verdict's JSON Schema in the server's form."""
        if self.verdict_format != "json":
            return self
        asked = self.model_copy()
        asked._request = request_params(self.form, allow_newfc)
        return asked

    def call_params(self) -> dict[str, Any]:
        return {**self.extra, **self._request}

    def sampling(self) -> dict[str, Any]:
        """A JSON verdict is asked for in other words: part of the answer's identity (tags are the default)."""
        sampling = super().sampling()
        return {**sampling, "verdict_format": "json"} if self.verdict_format == "json" else sampling


class JudgeSettings(JudgeModel):
    """The `[judge]` table: the default judge of every judged stage, and the run's limits."""

    max_concurrency: int = Field(
        16,
        ge=1,
        le=4096,
        description="Judge calls in flight at once (default: the servers' summed max_concurrency, else 16).",
    )
    protocol_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Times an answer that is not a verdict is asked again (told what was wrong with it); then the "
        "record goes to errors.jsonl.",
    )

    @model_validator(mode="after")
    def _fill_the_servers(self) -> Self:
        _default_concurrency(self)
        return self


class GenerateSettings(ModelSettings):
    """The `[generate]` table: the model that writes CoTs for records without one."""

    temperature: float = Field(0.1, ge=0, le=2, description="Sampling temperature of the generator.")
    prompt: str | None = Field(
        None,
        description="The generator's prompt, instead of the stage spec's rewrite_prompt; placeholders {query} "
        "{tools} {answer} {cot} {conversation}.",
    )


class SourceSettings(ModelSettings):
    """The `[source]` table of self-refinement: the model that writes candidate answers."""

    model: str = Field(alias="sample_from", description="The model to sample from (any LiteLLM model string).")
    samples: int = Field(4, ge=1, le=64, description="Candidates (CoT and answer) per query per round.")
    max_candidates: int | None = Field(
        None,
        ge=1,
        description="Candidates drawn at most over all rounds (the cap of `refine selfrefine --target-kept`); "
        "default: no cap.",
    )
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature: varied samples of a query.")
    max_concurrency: int = Field(
        16,
        ge=1,
        le=4096,
        description="Sampling calls in flight at once (default: the servers' summed max_concurrency, else 16).",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _fill_the_servers(self) -> Self:
        _default_concurrency(self)
        return self


@dataclass
class JudgePanel:
    """How one stage asks its judges: the prompt template (and the system message before it), the answer
    protocol, the models, the vote; ``calls_may_change``: whether a corrected call (NewFC) may change the calls'
    names and arguments (False for a stage that corrects the format only)."""

    template: str
    allow_newfc: bool
    judges: list[JudgeModel]
    calls_may_change: bool  # no default: a panel built anywhere says it (the stage's judge_may_change_calls)
    vote: Vote = "unanimous"
    system: str | None = None

    @property
    def label(self) -> str:
        """Who decided, as the trail names it: the models, joined by "+"."""
        return "+".join(j.model for j in self.judges)
