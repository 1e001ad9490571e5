"""Ask a stage's judges about a record (render, call, vote, verdict), or its generator for a new field."""

from __future__ import annotations

from dataclasses import dataclass, field

from funreason_refine.calls import same_calls
from funreason_refine.judge.client import JudgeCallError, LLMClient
from funreason_refine.judge.limits import check_prompt
from funreason_refine.judge.prompt import chat, placeholders, render
from funreason_refine.judge.protocol import JudgeAnswer, ProtocolError, parse_answer
from funreason_refine.judge.settings import GenerateSettings, JudgePanel, ModelSettings
from funreason_refine.record import Record, Verdict
from funreason_refine.targets import THINK_TAG, split_think

REMINDER = (
    "\n\nAnswer only in the required format: optionally <think>...</think>, then <judge>True</judge> "
    "or <judge>False</judge>, then <reason>...</reason>."
)


@dataclass
class ProtocolCounts:
    """How one stage's answers of one model kept to the answer protocol."""

    answers: int = 0  # answers read for a verdict (each re-ask's answer too)
    failures: int = 0  # of them, answers outside the protocol
    reasks: int = 0  # calls made again because of them
    given_up: int = 0  # verdicts given up on after protocol_retries re-asks (the record goes to errors.jsonl)


@dataclass
class JudgeRunner:
    """What a judged run asks models: one client (concurrency bound, cache, usage) for every stage, and how the
    answers kept to the protocol (``protocol``, per stage and model)."""

    client: LLMClient
    protocol_retries: int = 2
    protocol: dict[tuple[str, str], ProtocolCounts] = field(default_factory=dict)

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
        for settings in panel.judges:  # every judge's limit before any call: none is paid for in vain
            self._check_prompt(settings, chat(panel.system, prompt), stage)
        answers = [
            await self.answer(settings, panel, prompt, stage, self.priority(record)) for settings in panel.judges
        ]
        return _vote(panel, answers, record)

    async def answer(
        self, settings: ModelSettings, panel: JudgePanel, prompt: str, stage: str, priority: int = 0
    ) -> JudgeAnswer:
        """One judge's answer to a rendered prompt, asked again while it does not follow the protocol
        (JudgeCallError after ``protocol_retries`` re-asks)."""
        counts = self.protocol.setdefault((stage, settings.model), ProtocolCounts())
        text = prompt
        for attempt in range(self.protocol_retries + 1):
            messages = chat(panel.system, text)
            counts.reasks += attempt > 0
            answer = await self.client.complete(settings, messages, stage, use_cache=attempt == 0, priority=priority)
            counts.answers += 1
            try:
                return parse_answer(answer.text, panel.allow_newfc)
            except ProtocolError as exc:
                counts.failures += 1
                problem = exc
                text = prompt + REMINDER
        counts.given_up += 1
        raise JudgeCallError(
            f"{settings.model} did not follow the answer protocol after {self.protocol_retries + 1} attempt(s): "
            f"{problem}"
        )

    def _check_prompt(self, settings: ModelSettings, messages: list[dict[str, str]], stage: str) -> None:
        """PromptTooLong when the prompt is over the model's max_prompt_tokens (counted only when it has one)."""
        if settings.max_prompt_tokens is not None:
            check_prompt(stage, settings, self.client.count_prompt(settings.model, messages))

    async def rewrite(
        self, generator: GenerateSettings, field: str, stage: str, record: Record, attempt: int
    ) -> Record:
        """The record with ``field`` written anew by a stage's generator (JudgeCallError on failure).
        Each attempt is its own cached answer, so a resumed run pays for none again and a second
        attempt is not the first one's answer."""
        assert generator.prompt is not None
        messages = [{"role": "user", "content": render(generator.prompt, record)}]
        self._check_prompt(generator, messages, stage)
        answer = await self.client.complete(
            generator,
            messages,
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
