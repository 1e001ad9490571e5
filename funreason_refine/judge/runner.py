"""Ask a stage's judges about a record (render, call, vote, verdict), or its generator for a new field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from funreason_refine.calls import same_calls
from funreason_refine.judge.client import JudgeCallError, LLMClient
from funreason_refine.judge.prompt import chat, placeholders, render
from funreason_refine.judge.protocol import JudgeAnswer, ProtocolError, parse_answer
from funreason_refine.judge.settings import GenerateSettings, JudgePanel, ModelSettings
from funreason_refine.record import Record, Verdict
from funreason_refine.targets import THINK_TAG, split_think

if TYPE_CHECKING:
    from funreason_refine.judge.scorer import Alternatives
    from funreason_refine.judge.scorer_settings import ScorerSettings

REMINDER = (
    "\n\nAnswer only in the required format: optionally <think>...</think>, then <judge>True</judge> "
    "or <judge>False</judge>, then <reason>...</reason>."
)


@dataclass
class JudgeRunner:
    """What a judged run asks models: one client (concurrency bound, cache, usage) for every stage."""

    client: LLMClient
    protocol_retries: int = 2
    alternatives: Alternatives | None = None  # the groups of records a relative scorer cut compares

    def priority(self, record: Record) -> int:
        """Call slots go to the oldest block of max_concurrency records first (first come within a
        block): records finish close to input order and a cost cap cuts off the newest work, while
        the records of a block progress together, so the run does not end on a long tail of
        records that still need all their calls one after another."""
        return record.index // self.client.max_concurrency

    async def ask(self, panel: JudgePanel, stage: str, record: Record) -> Verdict | None:
        """The judges' verdict on a record the stage's rules passed; None when the prompt does not apply
        (it asks about the CoT and the record has none)."""
        if "cot" in placeholders(panel.template) and not (record.cot or "").strip():
            return None
        prompt = render(panel.template, record)
        answers = [
            await self._answer(settings, panel, prompt, stage, self.priority(record)) for settings in panel.judges
        ]
        return _vote(panel, answers, record)

    async def _answer(
        self, settings: ModelSettings, panel: JudgePanel, prompt: str, stage: str, priority: int
    ) -> JudgeAnswer:
        text = prompt
        for attempt in range(self.protocol_retries + 1):
            messages = chat(panel.system, text)
            answer = await self.client.complete(settings, messages, stage, use_cache=attempt == 0, priority=priority)
            try:
                return parse_answer(answer.text, panel.allow_newfc)
            except ProtocolError as exc:
                problem = exc
                text = prompt + REMINDER
        raise JudgeCallError(
            f"{settings.model} did not follow the answer protocol after {self.protocol_retries + 1} attempt(s): "
            f"{problem}"
        )

    async def score(self, scorer: ScorerSettings, stage: str, record: Record) -> Verdict:
        """The stage's scorer's verdict on a record its rules passed (docs/scorers.md)."""
        from funreason_refine.judge.scorer import scored_verdict

        return await scored_verdict(self.client, scorer, stage, record, self.priority(record), self.alternatives)

    async def rewrite(
        self, generator: GenerateSettings, field: str, stage: str, record: Record, attempt: int
    ) -> Record:
        """The record with ``field`` written anew by a stage's generator (JudgeCallError on failure).
        Each attempt is its own cached answer, so a resumed run pays for none again and a second
        attempt is not the first one's answer."""
        assert generator.prompt is not None
        prompt = render(generator.prompt, record)
        answer = await self.client.complete(
            generator,
            [{"role": "user", "content": prompt}],
            stage,
            priority=self.priority(record),
            variant=f"rewrite {field}, attempt {attempt}",
        )
        # The generator's own <think> block is its scratchpad; the text asked for comes after it.
        scratch, rest = split_think(answer.text)
        text = THINK_TAG.sub("", rest).strip() or (scratch or "")
        if not text:
            raise JudgeCallError(f"{generator.model} wrote an empty {field}")
        return record.model_copy(update={field: text})


def _vote(panel: JudgePanel, answers: list[JudgeAnswer], record: Record) -> Verdict:
    yes = sum(a.ok for a in answers)
    ok = yes == len(answers) if panel.vote == "unanimous" else yes * 2 > len(answers)
    reasons = "; ".join(a.reason for a in answers if a.reason and a.ok == ok) or ""
    if ok:
        return Verdict.passed(message=reasons)
    proposal = next((a.new_calls for a in answers if not a.ok and a.new_calls is not None), None)
    if proposal is not None and not same_calls(proposal, record.calls):
        return Verdict.regenerate(
            record.model_copy(update={"answer": proposal}),
            "judge_corrected",
            reasons or "the judge proposed corrected calls",
        )
    return Verdict.discard("judge_rejected", reasons or "the judge answered False without a reason")
