"""A dry run: the real policy and prompts, with every judge passing and nothing sent.

Each record goes through ``refine_judged`` as in a run, with a client that writes down every call
(model, messages, cache variant) and answers ``<judge>True</judge>``; a generator's rewrite is a
stand-in text of the expected length that names the called functions, so the stage's rules pass it
as they would pass a good rewrite. What a record would ask if no rule stopped it is asked too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from funreason_refine.conversation import focus, owned, turn_count
from funreason_refine.judge.calls import Send
from funreason_refine.judge.client import Answer, LLMClient
from funreason_refine.judge.reply import Reply
from funreason_refine.judge.runner import JudgeRunner
from funreason_refine.judge.settings import GenerateSettings, ModelSettings
from funreason_refine.record import Action, Record
from funreason_refine.refine import refine_judged
from funreason_refine.stages.base import PipelineStage

PASS = "<judge>True</judge>"
PASSING_SCORE = '{"score": 1e300}'  # a scorer's answer in the dry run: above any threshold


@dataclass(frozen=True)
class Call:
    """One call a run would make: to whom, with what, under which cache variant."""

    stage: str
    settings: ModelSettings
    messages: list[dict[str, Any]]
    variant: str = ""

    @property
    def generator(self) -> bool:
        return self.variant.startswith("rewrite ")


@dataclass
class RecordCalls:
    """The calls of one record: with the rules deciding as they do (``rules``), and with every record
    reaching every judged stage of every turn (``every``: the same where no rule stopped it)."""

    rules: list[Call]
    every: list[Call]


class DryClient(LLMClient):
    """Answers every call at once, as a passing judge would, and keeps the call."""

    def __init__(self) -> None:
        super().__init__(max_concurrency=1)
        self.log: list[Call] = []

    async def complete(
        self,
        settings: ModelSettings,
        messages: list[dict[str, Any]],
        stage: str,
        use_cache: bool = True,
        priority: int = 0,
        variant: str = "",
        send: Send | None = None,
        read: Callable[[Reply], str] | None = None,
    ) -> Answer:
        self.log.append(Call(stage, settings, messages, variant))
        scorer = send is not None or read is not None  # a scorer's call: a score that passes any threshold
        return Answer(PASSING_SCORE if scorer else PASS, cached=False)


class DryRunner(JudgeRunner):
    """The run's judge runner over a :class:`DryClient`; a rewrite writes about ``written_tokens`` tokens."""

    def __init__(self, protocol_retries: int = 2, written_tokens: int = 200):
        self.dry = DryClient()
        super().__init__(self.dry, protocol_retries)
        self.written_tokens = written_tokens

    async def rewrite(
        self, generator: GenerateSettings, field: str, stage: str, record: Record, attempt: int
    ) -> Record:
        await super().rewrite(generator, field, stage, record, attempt)  # the same prompt, written down
        names = ", ".join(call.name for call in record.calls) or "the answer"
        words = max(self.written_tokens - 3 - len(record.calls) * 4, 0)
        return record.model_copy(update={field: f"I call {names}." + " step" * words})


async def record_calls(record: Record, stages: list[PipelineStage], runner: DryRunner) -> RecordCalls:
    """The calls one record would make."""
    runner.dry.log = []
    finished = await refine_judged(record, stages, runner)
    rules = runner.dry.log
    if not any(step.verdict is Action.DISCARD for step in finished.record.trail):
        return RecordCalls(rules, rules)
    runner.dry.log = []
    judged = [s for s in stages if s.judge is not None and (record.is_conversation or not s.stage.conversations_only)]
    own = owned(record)  # its layout worked out once, not once per turn
    for turn in range(turn_count(own)):
        shown = focus(own, turn) if record.is_conversation else record
        for stage in judged:
            assert stage.judge is not None
            await runner.ask(stage.judge, stage.name, shown)
    return RecordCalls(rules, _per_stage_max(rules, runner.dry.log))


def _per_stage_max(rules: list[Call], every: list[Call]) -> list[Call]:
    """Per stage, the longer of the two lists of judge calls (a repair may make a stage ask twice), and
    the generator calls of the rules' way."""
    out: list[Call] = []
    for key in dict.fromkeys((c.stage, c.generator) for c in [*rules, *every]):
        mine = [c for c in rules if (c.stage, c.generator) == key]
        theirs = [c for c in every if (c.stage, c.generator) == key]
        out += mine if len(mine) >= len(theirs) else theirs
    return out
