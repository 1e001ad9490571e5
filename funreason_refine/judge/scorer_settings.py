"""A stage's scorer (``[[stages]] scorer = {...}``): a model that returns a number, and the cut that makes it a verdict.

Three kinds: ``yes_no`` asks a chat model (a guard model such as Granite Guardian) and reads the
probability of its "yes" from the answer's logprobs; ``classify`` reads the positive label's
probability from vLLM's ``/classify``; ``reward`` reads the raw value from vLLM's ``/pooling``
(a reward model's score). The servers, rate limits, retries, outage stop and prices are those of
every model table (:class:`~funreason_refine.judge.settings.ModelSettings`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from funreason_refine.judge.settings import ModelSettings
from funreason_refine.specs import check_template

LOW_SCORE = "low_score"  # the reason code of a score below the threshold
BELOW_BEST = "below_best"  # the reason code of a score too far below the best of its alternatives

ScorerKind = Literal["yes_no", "classify", "reward"]
Layout = Literal["guardian", "conversation", "prompt"]

GUARDIAN_KWARGS: dict[str, Any] = {"guardian_config": {"risk_name": "function_call"}}
"""Granite Guardian's chat template: check the assistant's calls for function-calling hallucination."""
YES_NO_MAX_TOKENS = 20  # enough for "<score> yes </score>" (Granite Guardian 3.3) and a one-word answer
DEFAULT_LAYOUT: dict[str, Layout] = {"yes_no": "guardian", "classify": "conversation", "reward": "conversation"}
LAYOUTS_OF: dict[str, tuple[Layout, ...]] = {
    "yes_no": ("guardian", "prompt"),
    "classify": ("conversation", "prompt"),
    "reward": ("conversation", "prompt"),
}


class RelativeCut(BaseModel):
    """Keep a record only when its score is near the best of its alternatives (self-refinement's samples of
    one query): consecutive records with the same ``meta`` value under ``by``."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field("query_id", description="The meta key naming a record's group (self-refinement writes query_id).")
    margin: float = Field(
        0.0, ge=0, description="How far below the group's best score a record may be and still pass (0: the best)."
    )


class ScorerSettings(ModelSettings):
    """The `scorer` table of a stage: the model, its kind, how a record is shown to it, and the cut."""

    streamable: ClassVar[bool] = False  # a few tokens, read with their logprobs from the whole response
    client_keys: ClassVar[dict[str, str]] = {
        **ModelSettings.client_keys,
        "logprobs": "a yes_no scorer asks for its answer's logprobs; set top_logprobs",
    }

    kind: ScorerKind = Field(
        description="yes_no: a chat model's probability of 'yes' (logprobs); classify: vLLM /classify, the "
        "positive label's probability; reward: vLLM /pooling, the raw value."
    )
    threshold: float | None = Field(
        None,
        description="Keep a record scoring at or above it, discard one below (reason low_score); none: the "
        "scores are recorded and nothing is discarded (fit one with refine calibrate).",
    )
    relative: RelativeCut | None = Field(
        None, description="Also keep only records near the best of their alternatives (reason below_best)."
    )
    template: Layout | None = Field(
        None,
        description="How the record is shown: guardian (Granite Guardian's tools/user/assistant messages, "
        "default for yes_no), conversation (the chat with its tools through the model's chat template, default "
        "for classify and reward), prompt (the text of `prompt`).",
    )
    prompt: str | None = Field(
        None,
        description="A text template ({query} {tools} {answer} {cot} {conversation}): the question of a yes_no "
        "scorer, the input of a classify or reward scorer. Implies template = prompt.",
    )
    good: Literal["yes", "no"] | None = Field(
        None,
        description="yes_no: which answer means the record is good; the score is its probability (default: no "
        "for template guardian, whose 'Yes' says a risk was found; else yes).",
    )
    yes_token: str = Field("yes", min_length=1, description="yes_no: the 'yes' token (case and spaces ignored).")
    no_token: str = Field("no", min_length=1, description="yes_no: the 'no' token (case and spaces ignored).")
    top_logprobs: int = Field(5, ge=1, le=20, description="yes_no: alternatives asked per answer token.")
    positive_label: int = Field(
        1,
        ge=0,
        description="classify and reward: the index of the output that scores (a one-output model: its only one).",
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        None,
        description="Sent to the server's chat template (vLLM); default for template guardian: "
        'guardian_config = {risk_name = "function_call"}.',
    )
    max_concurrency: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Calls in flight at once when the pipeline has no [judge] table (default: the servers' "
        "summed max_concurrency, else 16).",
    )

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.batch:
            raise ValueError("batch = true: a scorer's calls cannot go as batch jobs; remove batch")
        if self.kind != "yes_no" and self.endpoint_list() == [None]:
            raise ValueError(
                f"a {self.kind} scorer calls vLLM's /{'classify' if self.kind == 'classify' else 'pooling'} on a "
                'server of yours: give api_base = "http://HOST:8000/v1" (or endpoints)'
            )
        if self.prompt is not None:
            check_template(self.prompt)
            if self.template is None:
                self.template = "prompt"
        self.template = self.template or DEFAULT_LAYOUT[self.kind]
        if self.template not in LAYOUTS_OF[self.kind]:
            allowed = " or ".join(LAYOUTS_OF[self.kind])
            raise ValueError(f"template = {self.template!r} does not go with kind = {self.kind!r}; use {allowed}")
        if self.kind == "yes_no" and self.max_tokens is None:
            self.max_tokens = YES_NO_MAX_TOKENS
        if self.kind == "yes_no" and self.yes_token.strip().lower() == self.no_token.strip().lower():
            raise ValueError("yes_token and no_token are the same token; give two different answers")
        return self

    @property
    def good_answer(self) -> str:
        """yes_no: the answer whose probability is the score."""
        return self.good or ("no" if self.template == "guardian" else "yes")

    def template_kwargs(self) -> dict[str, Any] | None:
        """What the server's chat template is given besides the messages (the tools are added per record)."""
        if self.chat_template_kwargs is not None:
            return self.chat_template_kwargs
        return GUARDIAN_KWARGS if self.template == "guardian" else None

    def sampling(self) -> dict[str, Any]:
        """What decides a score besides the record: part of the cache key and of the run's identity."""
        reading: dict[str, Any] = {
            "kind": self.kind,
            "template": self.template,
            "chat_template_kwargs": self.template_kwargs(),
        }
        if self.kind == "yes_no":
            reading.update(good=self.good_answer, yes=self.yes_token, no=self.no_token, top_logprobs=self.top_logprobs)
        else:
            reading["positive_label"] = self.positive_label
        return {**super().sampling(), **reading}

    def legacy_cache_key(self, messages: list[dict[str, str]], variant: str = "") -> str | None:
        return None  # scorers came after the cache key changed

    def call_params(self) -> dict[str, Any]:
        """yes_no: LiteLLM's parameters of the call besides the messages (logprobs, the template's kwargs)."""
        params: dict[str, Any] = {"logprobs": True, "top_logprobs": self.top_logprobs}
        kwargs = self.template_kwargs()
        if kwargs is not None:
            extra_body = dict(self.extra.get("extra_body") or {})
            extra_body.setdefault("chat_template_kwargs", kwargs)
            params["extra_body"] = extra_body
        return {**self.extra, **params}

    def cut(self) -> dict[str, Any]:
        """The cut, as the run's identity records it."""
        return {
            "threshold": self.threshold,
            "relative": self.relative.model_dump() if self.relative is not None else None,
            "prompt": self.prompt,
        }

    @property
    def label(self) -> str:
        """Who decided, as the trail names it."""
        return f"{self.model} ({self.kind})"
