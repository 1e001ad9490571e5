"""Records whose prompts are too long for their model, found by a dry run: over ``max_prompt_tokens`` (a run
discards them before any call, reason prompt_too_long) or over the model's context window (a run puts them in
errors.jsonl, reason context_window_exceeded). `refine estimate` counts them; so does `refine validate --prompts`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from funreason_refine.config import Pipeline
from funreason_refine.judge.limits import CONTEXT_WINDOW, PROMPT_TOO_LONG, context_window
from funreason_refine.judge.stage_models import stage_models
from funreason_refine.record import Outcome, Record
from funreason_refine.refine import Finished

EXAMPLES = 3


@dataclass
class LongPrompts:
    """Per stage, the records over a model's ``max_prompt_tokens`` and over its context window; the first few,
    named; the models whose context window is not known (their prompts could not be checked against it)."""

    over_limit: Counter[str] = field(default_factory=Counter)
    over_window: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    unknown_windows: list[str] = field(default_factory=list)
    checked: int = 0  # records looked at

    def add(self, record: Record, finished: Finished | None) -> None:
        """One record of the dry run, as it ended on the rules' way."""
        self.checked += 1
        if finished is None or finished.stage is None:
            return
        if finished.outcome is Outcome.DISCARDED and finished.reason == PROMPT_TOO_LONG:
            self.over_limit[finished.stage] += 1
        elif finished.outcome is Outcome.ERRORS and finished.reason == CONTEXT_WINDOW:
            self.over_window[finished.stage] += 1
        else:
            return
        if len(self.examples) < EXAMPLES:
            where = f"{record.source.file}:{record.source.line}"
            self.examples.append(f"record {record.id} ({where}): {finished.message}")

    @property
    def records(self) -> int:
        return sum(self.over_limit.values()) + sum(self.over_window.values())

    def lines(self, scale: float = 1.0) -> list[str]:
        """What a person reads: the counts (``scale``: a sample's counts scaled up to the input), examples, notes."""
        out = []
        for counts, what in (
            (self.over_limit, f"over max_prompt_tokens: discarded before any call ({PROMPT_TOO_LONG})"),
            (self.over_window, f"over the model's context window: errors.jsonl, no retry helps ({CONTEXT_WINDOW})"),
        ):
            if counts:
                per_stage = ", ".join(f"{stage} {n * scale:,.0f}" for stage, n in counts.items())
                out.append(f"{sum(counts.values()) * scale:,.0f} record(s) with a prompt {what}: {per_stage}")
        out += [f"  e.g. {example}" for example in self.examples]
        out += [
            f"the context window of {model} is not known: set context_window in its table to count the prompts over it"
            for model in self.unknown_windows
        ]
        return out

    def as_dict(self, scale: float = 1.0) -> dict[str, Any]:
        return {
            PROMPT_TOO_LONG: {stage: round(n * scale) for stage, n in self.over_limit.items()},
            CONTEXT_WINDOW: {stage: round(n * scale) for stage, n in self.over_window.items()},
            "examples": self.examples,
            "unknown_context_windows": self.unknown_windows,
        }


def long_prompts(pipeline: Pipeline, litellm: Any) -> LongPrompts:
    """An empty count, with the models of the pipeline whose context window is not known."""
    seen = {m.model_dump_json(include={"model", "context_window"}): m for m in stage_models(pipeline.stages)}
    unknown = sorted({m.model for m in seen.values() if context_window(litellm, m) is None})
    return LongPrompts(unknown_windows=unknown)


def count_long_prompts(pipeline: Pipeline, sample: int | None = None) -> LongPrompts:
    """Walk the input (or a seeded ``sample`` of it) as a dry run and count the records with prompts too long."""
    from funreason_refine.estimate.dry import DryRunner, record_calls
    from funreason_refine.estimate.records import EstimateInput
    from funreason_refine.estimate.tokens import TokenCounter
    from funreason_refine.judge.library import load_litellm

    assert pipeline.judging is not None
    litellm = load_litellm()
    found = long_prompts(pipeline, litellm)
    runner = DryRunner(pipeline.judging.protocol_retries, count=TokenCounter(litellm).count)

    async def walk() -> None:
        for record in EstimateInput(pipeline, sample):
            found.add(record, (await record_calls(record, pipeline.stages, runner)).finished)

    asyncio.run(walk())
    return found
