"""A dry run: the real policy and prompts, with every judge passing and nothing sent.

Each record goes through ``refine_judged`` as in a run, with a client that writes down every call
(model, messages, cache variant) and answers ``<judge>True</judge>`` (or its JSON); a generator's rewrite is a
stand-in text of the expected length that names the called functions, so the stage's rules pass it
as they would pass a good rewrite. What a record would ask if no rule stopped it is asked too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from funreason_refine.conversation import focus, owned, turn_count
from funreason_refine.judge.calls import Send
from funreason_refine.judge.client import Answer, JudgeCallError, LLMClient
from funreason_refine.judge.limits import CONTEXT_WINDOW, PromptTooLong, Window, context_window
from funreason_refine.judge.prompt import placeholders
from funreason_refine.judge.reply import Reply
from funreason_refine.judge.runner import JudgeRunner
from funreason_refine.judge.settings import GenerateSettings, JudgeModel, JudgePanel, ModelSettings
from funreason_refine.record import Action, FunctionCall, Record, Verdict
from funreason_refine.refine import Finished, refine_judged
from funreason_refine.stages.base import PipelineStage

PASS = "<judge>True</judge>"
PASS_JSON = '{"reason": "", "judge": true}'
PASSING_SCORE = '{"score": 1e300}'  # a scorer's answer in the dry run: above any threshold

Count = Callable[[str, list[dict[str, str]]], int]
"""Counts a prompt's tokens: (model, messages) -> tokens."""


@dataclass(frozen=True)
class Asked:
    """One ask of a stage's judges about a record: its number in the dry run (the panel's calls share it), the
    calls of the answer asked about, and whether the prompt shows a field the dry run rewrote (its stand-in
    text, not a generator's: no judge's verdict on it says anything)."""

    number: int
    calls: tuple[FunctionCall, ...]
    stand_in: bool


@dataclass(frozen=True)
class Call:
    """One call a run would make: to whom, with what, under which cache variant; a judge's call keeps the
    panel that asks it (a probe reads its answer as the run would); ``tokens``: its prompt's, when counted."""

    stage: str
    settings: ModelSettings
    messages: list[dict[str, Any]]
    variant: str = ""
    panel: JudgePanel | None = None
    tokens: int | None = None
    asked: Asked | None = None  # a judge's call: which ask of its panel, about what

    @property
    def generator(self) -> bool:
        return self.variant.startswith("rewrite ")


@dataclass
class RecordCalls:
    """The calls of one record: with the rules deciding as they do (``rules``), and with every record
    reaching every judged stage of every turn (``every``: the same where no rule stopped it); where the
    record ended on the rules' way (``finished``: a prompt too long for its model ends it early)."""

    rules: list[Call]
    every: list[Call]
    finished: Finished | None = None


class DryClient(LLMClient):
    """Answers every call at once, as a passing judge would, and keeps the call. With ``count``, a prompt over
    its model's context window (when known) fails as the server would refuse it."""

    def __init__(self, count: Count | None = None) -> None:
        super().__init__(max_concurrency=1)
        self.log: list[Call] = []
        self.panel: JudgePanel | None = None  # the panel asking, while a judge is asked
        self.asked: Asked | None = None  # and about what
        self.rewritten: set[str] = set()  # the record's fields the dry run's stand-in rewrites hold
        self._count = count
        self._windows: dict[str, Window | None] = {}
        self._counted: tuple[list[dict[str, str]] | None, int] = (None, 0)

    def count_prompt(self, model: str, messages: list[dict[str, str]]) -> int:
        if self._count is None:
            return super().count_prompt(model, messages)
        if self._counted[0] is not messages:  # max_prompt_tokens counts the prompt just before complete() does
            self._counted = (messages, self._count(model, messages))
        return self._counted[1]

    async def complete(
        self,
        settings: ModelSettings,
        messages: list[dict[str, Any]],
        stage: str,
        priority: int = 0,
        variant: str = "",
        send: Send | None = None,
        read: Callable[[Reply], str] | None = None,
    ) -> Answer:
        tokens = self.count_prompt(settings.model, messages) if self._count is not None else None
        self.log.append(Call(stage, settings, messages, variant, self.panel, tokens, self.asked))
        window = self._window(settings)
        if tokens is not None and window is not None and window.needed(tokens, settings) > window.tokens:
            raise JudgeCallError(
                f"{settings.model}: the prompt ({tokens:,} tokens counted here) is over its context window "
                f"({window.describe(settings)})",
                CONTEXT_WINDOW,
            )
        if send is not None or read is not None:  # a scorer's call: a score that passes any threshold
            return Answer(PASSING_SCORE, cached=False)
        as_json = isinstance(settings, JudgeModel) and settings.verdict_format == "json"
        return Answer(PASS_JSON if as_json else PASS, cached=False)

    def _window(self, settings: ModelSettings) -> Window | None:
        key = settings.model_dump_json(include={"model", "context_window"})
        if key not in self._windows:
            self._windows[key] = context_window(self.litellm, settings)
        return self._windows[key]


class DryRunner(JudgeRunner):
    """The run's judge runner over a :class:`DryClient`; a rewrite writes about ``written_tokens`` tokens."""

    def __init__(
        self, protocol_retries: int = 2, written_tokens: int = 200, count: Count | None = None, asks: bool = False
    ):
        self.dry = DryClient(count)
        super().__init__(self.dry, protocol_retries)
        self.written_tokens = written_tokens
        self.asks: int | None = 0 if asks else None  # asks numbered for a probe's votes (none kept otherwise)

    async def ask(self, panel: JudgePanel, stage: str, record: Record) -> Verdict | None:
        self.dry.panel = panel
        if self.asks is not None:
            self.asks += 1
            stand_in = bool(self.dry.rewritten & placeholders(panel.template))
            self.dry.asked = Asked(self.asks, tuple(record.calls), stand_in)
        try:
            return await super().ask(panel, stage, record)
        finally:
            self.dry.panel, self.dry.asked = None, None

    async def rewrite(
        self, generator: GenerateSettings, field: str, stage: str, record: Record, attempt: int
    ) -> Record:
        await super().rewrite(generator, field, stage, record, attempt)  # the same prompt, written down
        self.dry.rewritten.add(field)
        names = ", ".join(call.name for call in record.calls) or "the answer"
        words = max(self.written_tokens - 3 - len(record.calls) * 4, 0)
        return record.model_copy(update={field: f"I call {names}." + " step" * words})


async def record_calls(record: Record, stages: list[PipelineStage], runner: DryRunner) -> RecordCalls:
    """The calls one record would make."""
    runner.dry.log = []
    runner.dry.rewritten.clear()
    finished = await refine_judged(record, stages, runner)
    rules = runner.dry.log
    if not any(step.verdict is Action.DISCARD for step in finished.record.trail) and finished.reason != CONTEXT_WINDOW:
        return RecordCalls(rules, rules, finished)
    runner.dry.log = []
    runner.dry.rewritten.clear()
    judged = [s for s in stages if s.judge is not None and (record.is_conversation or not s.stage.conversations_only)]
    own = owned(record)  # its layout worked out once, not once per turn
    try:
        for turn in range(turn_count(own)):
            shown = focus(own, turn) if record.is_conversation else record
            for stage in judged:
                assert stage.judge is not None
                await runner.ask(stage.judge, stage.name, shown)
    except (PromptTooLong, JudgeCallError):  # a prompt too long for its model: the record would end there
        pass
    return RecordCalls(rules, _per_stage_max(rules, runner.dry.log), finished)


def _per_stage_max(rules: list[Call], every: list[Call]) -> list[Call]:
    """Per stage, the longer of the two lists of judge calls (a repair may make a stage ask twice), and
    the generator calls of the rules' way."""
    out: list[Call] = []
    for key in dict.fromkeys((c.stage, c.generator) for c in [*rules, *every]):
        mine = [c for c in rules if (c.stage, c.generator) == key]
        theirs = [c for c in every if (c.stage, c.generator) == key]
        out += mine if len(mine) >= len(theirs) else theirs
    return out
