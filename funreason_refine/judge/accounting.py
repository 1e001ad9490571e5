"""What the judge calls of a run used (calls, tokens, cost, retries, prefixes) per stage: typed values that add up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from funreason_refine.judge.cache import Cached
from funreason_refine.judge.prefix import PrefixCaches
from funreason_refine.judge.prices import Pricing
from funreason_refine.judge.reply import Reply
from funreason_refine.judge.settings import ModelSettings
from funreason_refine.summary import JudgeUsage as Usage  # the summary's own type, counted into as calls end
from funreason_refine.summary import ProtocolCounts


@dataclass
class RunUsage:
    """What a run (or a shard of it) used: :class:`Usage` per stage, and per model the calls whose
    tokens were counted here because the server reported none, and its answers that were not verdicts
    (summary.py adds two runs' up)."""

    per_stage: dict[str, Usage] = field(default_factory=dict)
    tokens_counted_locally: Counter[str] = field(default_factory=Counter)
    protocol: dict[str, ProtocolCounts] = field(default_factory=dict)

    @property
    def total(self) -> Usage:
        total = Usage()
        for usage in self.per_stage.values():
            total += usage
        return total

    @property
    def cost_usd(self) -> float:
        """The total's cost alone (max_cost asks for it before every call)."""
        return sum(usage.cost_usd for usage in self.per_stage.values())

    def stage(self, name: str) -> Usage:
        usage = self.per_stage.get(name)
        if usage is None:
            usage = self.per_stage[name] = Usage()
        return usage

    def as_dict(self) -> dict[str, Any]:
        """The judge section's usage keys of summary.json: the total's, ``per_stage``, and
        ``tokens_counted_locally`` (calls per model) only when a server left usage out, ``protocol`` (per model)
        only when an answer was not a verdict."""
        out = {**self.total.model_dump(), "per_stage": {name: u.model_dump() for name, u in self.per_stage.items()}}
        if self.tokens_counted_locally:
            out["tokens_counted_locally"] = dict(sorted(self.tokens_counted_locally.items()))
        if self.protocol:
            out["protocol"] = {model: self.protocol[model].model_dump() for model in sorted(self.protocol)}
        return out

    def not_a_verdict(self, stage: str, model: str, problem: str, reasked: bool) -> None:
        """An answer of ``model`` in ``stage`` that did not follow the answer protocol; ``reasked``: the model
        was asked again (counted apart from the retries of failed calls)."""
        usage = self.stage(stage)
        usage.protocol_failures += 1
        usage.protocol_reasks += reasked
        self.protocol.setdefault(model, ProtocolCounts()).add(problem, reasked)


class Ledger:
    """Counts each call into a :class:`RunUsage` as it ends: priced, with its reusable prefix."""

    def __init__(self, pricing: Pricing, notes: set[str]):
        self.used = RunUsage()
        self._pricing = pricing
        self._notes = notes
        self._prefixes = PrefixCaches()

    def answered(self, usage: Usage, settings: ModelSettings, messages: list[dict[str, str]], reply: Reply) -> float:
        """Count an answer a call got; its cost."""
        cost = self._pricing.cost(settings, reply)
        usage.calls += 1
        usage.prompt_tokens += reply.prompt_tokens
        usage.completion_tokens += reply.completion_tokens
        usage.cost_usd += cost
        usage.seconds += reply.call_seconds
        usage.queue_seconds += reply.waited
        usage.reusable_prefix_tokens += self._prefixes.reusable_tokens(
            settings.model, reply.server, messages, reply.prompt_tokens
        )
        if reply.counted_locally:
            self._counted_locally(settings.model)
        return cost

    def batched(
        self, usage: Usage, settings: ModelSettings, messages: list[dict[str, str]], got: Cached, paid: bool
    ) -> None:
        """Count an answer a batch job gave (priced when it was collected). A batch line is paid for once: of the
        calls that waited on it (the same prompt), the one not ``paid`` counts it as answered from the cache."""
        if not paid:
            self.cached(usage, got)
            return
        usage.calls += 1
        usage.prompt_tokens += got.prompt_tokens
        usage.completion_tokens += got.completion_tokens
        usage.cost_usd += got.cost
        usage.reusable_prefix_tokens += self._prefixes.reusable_tokens(
            settings.model, "batch", messages, got.prompt_tokens
        )
        if got.counted_locally:
            self._counted_locally(settings.model)

    @staticmethod
    def cached(usage: Usage, hit: Cached) -> None:
        """Count an answer taken from the cache: what it cost when it was first asked."""
        usage.cached += 1
        usage.cached_prompt_tokens += hit.prompt_tokens or 0
        usage.cached_completion_tokens += hit.completion_tokens or 0
        usage.cached_cost_usd += hit.cost or 0.0
        usage.cached_seconds += hit.seconds

    def _counted_locally(self, model: str) -> None:
        self.used.tokens_counted_locally[model] += 1
        self._notes.add(
            f"{model}: some answers came without token usage (or without their output or prompt tokens); their "
            "tokens were counted here with LiteLLM's token_counter (tokens_counted_locally), and their cost and "
            "max_cost rest on that count"
        )
