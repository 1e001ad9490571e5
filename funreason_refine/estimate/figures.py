"""The figures of an estimate: calls, tokens, cost and time per stage, from a dry run's calls (summed: sums.py)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from funreason_refine.estimate.dry import Call
from funreason_refine.judge.settings import ModelSettings

Key = tuple[str, str, bool]
"""(stage, model, generator): calls whose answers are alike."""

DEFAULT_OUTPUT_TOKENS = 200
SECONDS_FIRST_TOKEN = 0.5
OUTPUT_TOKENS_PER_SECOND = 50.0
"""Without measurements, a call takes 0.5 s plus 50 output tokens a second (stated with the estimate)."""


def key_of(call: Call) -> Key:
    return (call.stage, call.settings.model, call.generator)


@dataclass
class Answers:
    """What the answers of a kind of call are like: output tokens, seconds, and the model's prompt tokens
    over the counted ones (1.0 unless probes measured it)."""

    output_tokens: float
    seconds: float
    prompt_ratio: float = 1.0


def assumed(output_tokens: float) -> Answers:
    return Answers(output_tokens, SECONDS_FIRST_TOKEN + output_tokens / OUTPUT_TOKENS_PER_SECOND)


@dataclass
class Span:
    """A figure as a range: ``low`` with the rules' pass rates, ``high`` with every record at every stage."""

    low: float = 0.0
    high: float = 0.0

    def add(self, scenario: str, value: float) -> None:
        setattr(self, scenario, getattr(self, scenario) + value)

    def scaled(self, factor: float) -> Span:
        return Span(self.low * factor, self.high * factor)

    def as_dict(self, digits: int = 0) -> dict[str, float]:
        return {"low": round(self.low, digits or None), "high": round(self.high, digits or None)}


@dataclass
class Figures:
    """One stage's figures, or the total."""

    calls: Span = field(default_factory=Span)
    cached: Span = field(default_factory=Span)
    input_tokens: Span = field(default_factory=Span)
    output_tokens: Span = field(default_factory=Span)
    cost_usd: Span = field(default_factory=Span)
    seconds: Span = field(default_factory=Span)
    work: Span = field(default_factory=Span)  # call-seconds, before concurrency

    def scaled(self, factor: float) -> Figures:
        return Figures(**{name: getattr(self, name).scaled(factor) for name in self.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls.as_dict(),
            "cached_calls": self.cached.as_dict(),
            "input_tokens": self.input_tokens.as_dict(),
            "output_tokens": self.output_tokens.as_dict(),
            "cost_usd": self.cost_usd.as_dict(6),
            "seconds": self.seconds.as_dict(1),
        }


@dataclass
class Tally:
    """Figures summed over the sampled records, before scaling up to the whole input (built by sums.CallSums)."""

    stages: dict[str, Figures] = field(default_factory=lambda: defaultdict(Figures))
    per_model: dict[str, dict[str, Span]] = field(default_factory=dict)
    settings: dict[str, ModelSettings] = field(default_factory=dict)
    longest_record: Span = field(default_factory=Span)  # call-seconds of the slowest record
    deepest_record: int = 0  # calls one after another in one record, at most


def wall_seconds(tally: Tally, scale: float, concurrency: int, servers: dict[str, float] | None = None) -> Span:
    """The run's wall time: the call-seconds over the concurrency, each model's over the calls its servers answer
    at once (``servers``, per model, when known), or what the rate limits allow, or the slowest record's calls one
    after another, whichever is longest (batch calls apart)."""
    out = Span()
    for scenario in ("low", "high"):
        work = sum(getattr(f.work, scenario) for f in tally.stages.values()) * scale
        bounds = [work / concurrency, getattr(tally.longest_record, scenario)]
        for model, spans in tally.per_model.items():
            bounds += _rate_bounds(tally.settings[model], getattr(spans["calls"], scenario) * scale,
                                   getattr(spans["tokens"], scenario) * scale)  # fmt: skip
            at_once = (servers or {}).get(model)
            if at_once:
                bounds.append(getattr(spans["work"], scenario) * scale / min(at_once, concurrency))
        setattr(out, scenario, max(bounds))
    return out


def _rate_bounds(settings: ModelSettings, calls: float, tokens: float) -> list[float]:
    if settings.batch:
        return []
    requests = _limit(settings, "max_requests_per_minute")
    per_minute = _limit(settings, "max_tokens_per_minute")
    return [amount / limit * 60 for amount, limit in ((calls, requests), (tokens, per_minute)) if limit]


def _limit(settings: ModelSettings, name: str) -> float | None:
    """The model's limit, or the sum of its servers' when each has one."""
    own = getattr(settings, name)
    if own:
        return float(own)
    limits = [getattr(e, name) if e is not None else None for e in settings.endpoint_list()]
    return float(sum(limits)) if limits and all(limits) else None  # type: ignore[arg-type]


def batch_waves(tally: Tally, records: int, window: int) -> int:
    """Rounds of batch jobs a run waits for: its records in windows of ``window``, each window as many
    rounds as a record makes calls one after another."""
    return tally.deepest_record * math.ceil(records / max(window, 1))
