"""The calls of a dry run, summed record by record as they come: what an estimate keeps is the same size
for ten records or ten million (running sums per kind of call, not the calls and their prompts).

Everything an estimate says is a sum over calls of a figure that depends on the call's kind only (its
answers' output tokens, seconds and prompt-token ratio, known once every call was seen), so sums per
kind are enough; the slowest record needs each record's calls per kind, of which only the shapes no
other record outdoes are kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from funreason_refine.estimate.dry import Call, RecordCalls
from funreason_refine.estimate.figures import DEFAULT_OUTPUT_TOKENS, Answers, Figures, Key, Span, Tally, assumed, key_of
from funreason_refine.judge.prices import Price
from funreason_refine.judge.settings import ModelSettings

SCENARIOS = ("low", "high")  # the rules' way (every judge passing); every record at every stage
Shape = tuple[tuple[Key, int], ...]  # a record's calls the cache does not answer, per kind


@dataclass
class KindSums:
    """One kind of call in one scenario: calls the cache answers, calls it does not, their counted prompt tokens."""

    cached: int = 0
    calls: int = 0
    batch: int = 0  # of ``calls``, those sent as batch jobs (they take no wall time of the run's own)
    prompt: int = 0
    cached_prompt: int = 0  # of the calls the cache answers (their protocol re-asks are not answered by it)


@dataclass
class Measured:
    """The cached answers to one kind of the rules' calls: how many, and their sums."""

    hits: int = 0
    output: float = 0.0
    seconds: float = 0.0
    reported: int = 0  # prompt tokens the model reported
    counted: int = 0  # prompt tokens counted for the same calls

    def answers(self) -> Answers:
        ratio = self.reported / self.counted if self.reported and self.counted else 1.0
        return Answers(self.output / self.hits, self.seconds / self.hits, ratio)


class Frontier:
    """The record shapes no other record's shape outdoes kind by kind: the slowest record is one of them, for
    any seconds per kind. Records of a pipeline take few shapes, so few are kept."""

    def __init__(self) -> None:
        self.shapes: list[dict[Key, int]] = []

    def add(self, shape: dict[Key, int]) -> None:
        if any(_covers(kept, shape) for kept in self.shapes):
            return
        self.shapes = [kept for kept in self.shapes if not _covers(shape, kept)]
        self.shapes.append(shape)

    def longest(self, seconds: Callable[[Key], float]) -> float:
        return max([0.0, *(sum(n * seconds(key) for key, n in shape.items()) for shape in self.shapes)])


def _covers(a: dict[Key, int], b: dict[Key, int]) -> bool:
    return all(a.get(key, 0) >= n for key, n in b.items())


@dataclass
class CallSums:
    """The dry run's calls, summed: ``count(model, messages)`` counts a prompt, ``lookup(call)`` is the answer
    cache's answer to a call (or None)."""

    count: Callable[[str, list[dict[str, str]]], int]
    lookup: Callable[[Call], Any]
    kinds: dict[Key, None] = field(default_factory=dict)  # the rules' kinds of call, in order
    measured: dict[Key, Measured] = field(default_factory=dict)
    sums: dict[tuple[str, Key], KindSums] = field(default_factory=dict)
    settings: dict[str, ModelSettings] = field(default_factory=dict)  # per model, of its first call not cached
    priced: dict[str, ModelSettings] = field(default_factory=dict)  # per model, of its first call
    frontiers: dict[str, Frontier] = field(default_factory=lambda: {s: Frontier() for s in SCENARIOS})
    deepest: int = 0  # calls one after another in one record, at most

    def add(self, calls: RecordCalls) -> None:
        """Count one record's calls."""
        seen: dict[int, tuple[int, Any]] = {}  # the two scenarios share most calls: each counted and looked up once

        def look(call: Call) -> tuple[int, Any]:
            if id(call) not in seen:
                counted = call.tokens if call.tokens is not None else self.count(call.settings.model, call.messages)
                seen[id(call)] = (counted, self.lookup(call))
            return seen[id(call)]

        self.deepest = max(self.deepest, len(calls.rules))
        for call in calls.rules:
            self.kinds.setdefault(key_of(call))
            counted, hit = look(call)
            if hit is not None and hit.completion_tokens is not None:
                m = self.measured.setdefault(key_of(call), Measured())
                m.hits, m.output, m.seconds = m.hits + 1, m.output + hit.completion_tokens, m.seconds + hit.seconds
                m.reported, m.counted = m.reported + (hit.prompt_tokens or 0), m.counted + counted
        for scenario, chosen in zip(SCENARIOS, (calls.rules, calls.every), strict=True):
            shape: Counter[Key] = Counter()
            for call in chosen:
                counted, hit = look(call)
                self._add(scenario, call, counted, hit is not None, shape)
            self.frontiers[scenario].add(dict(shape))

    def _add(self, scenario: str, call: Call, counted: int, cached: bool, shape: Counter[Key]) -> None:
        self.priced.setdefault(call.settings.model, call.settings)
        sums = self.sums.setdefault((scenario, key_of(call)), KindSums())
        if cached:
            sums.cached += 1
            sums.cached_prompt += counted
            return
        sums.calls += 1
        sums.batch += call.settings.batch
        sums.prompt += counted
        self.settings.setdefault(call.settings.model, call.settings)
        shape[key_of(call)] += 1

    def found(self) -> dict[Key, Answers]:
        """Per kind of the rules' calls, what the cached answers are like (kinds without any left out)."""
        return {key: m.answers() for key, m in self.measured.items()}

    def tally(
        self, answers: dict[Key, Answers], prices: dict[str, Price | None], reasks: dict[str, float] | None = None
    ) -> Tally:
        """The figures of the sampled records, with ``answers`` per kind of call, ``prices`` per model, and per
        stage the calls a judge's verdict takes with its protocol re-asks (``reasks``, as a probe measured)."""
        tally = Tally(settings=dict(self.settings), deepest_record=self.deepest)

        def answer(key: Key) -> Answers:
            return answers.get(key) or assumed(DEFAULT_OUTPUT_TOKENS)

        for (scenario, key), sums in self.sums.items():
            factor = 1.0 if key[2] else (reasks or {}).get(key[0], 1.0)
            _count_in(tally, scenario, key, sums, answer(key), prices.get(key[1]), factor)
        for model in tally.per_model:  # a model whose answers are all cached still makes their protocol re-asks
            tally.settings.setdefault(model, self.priced[model])
        for scenario in SCENARIOS:
            longest = self.frontiers[scenario].longest(lambda key: answer(key).seconds)
            setattr(tally.longest_record, scenario, longest)
        return tally


def _count_in(
    tally: Tally, scenario: str, key: Key, sums: KindSums, answers: Answers, price: Price | None, factor: float
) -> None:
    """One kind's sums into the tally; ``factor``: the calls each of its calls takes (protocol re-asks, which the
    cache never answers: a cached answer's re-asks are paid for too)."""
    figures: Figures = tally.stages[key[0]]
    figures.cached.add(scenario, sums.cached)
    reasked = sums.cached * (factor - 1)
    calls = sums.calls * factor + reasked
    if not calls:
        return
    timed = (sums.calls - sums.batch) * factor + (0 if sums.batch else reasked)
    prompt = (sums.prompt * factor + sums.cached_prompt * (factor - 1)) * answers.prompt_ratio
    output = calls * answers.output_tokens
    for span, value in (
        (figures.calls, calls),
        (figures.input_tokens, prompt),
        (figures.output_tokens, output),
        (figures.cost_usd, price.cost(prompt, output) if price is not None else 0.0),
        (figures.work, timed * answers.seconds),
    ):
        span.add(scenario, value)
    model = tally.per_model.setdefault(key[1], {"calls": Span(), "tokens": Span(), "work": Span(), "timed": Span()})
    model["calls"].add(scenario, calls)
    model["tokens"].add(scenario, prompt + output)
    model["work"].add(scenario, timed * answers.seconds)
    model["timed"].add(scenario, timed)
