"""Ask a stage's judges about a record (render, call, vote, verdict), or its generator for a new field."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from funreason_refine.calls import render_calls, same_calls
from funreason_refine.errors import CallSyntaxError
from funreason_refine.judge.answer import Answer
from funreason_refine.judge.client import JudgeCallError, LLMClient
from funreason_refine.judge.limits import check_prompt
from funreason_refine.judge.prompt import chat, placeholders, render
from funreason_refine.judge.protocol import JudgeAnswer, ProtocolError, read_verdict
from funreason_refine.judge.settings import GenerateSettings, JudgeModel, JudgePanel, ModelSettings
from funreason_refine.judge.structured import answer_note
from funreason_refine.record import FunctionCall, Record, Verdict
from funreason_refine.targets import THINK_TAG

if TYPE_CHECKING:
    from funreason_refine.judge.scorer import Alternatives
    from funreason_refine.judge.scorer_settings import ScorerSettings

# A bad answer quoted back to the model when it is asked again: its start and end (a long answer cut off
# by the token limit would crowd a small model's context otherwise).
QUOTED_CHARS = 2000
# A chat template's special token (ChatML's <|im_end|>, Llama 3's <|eot_id|>, gpt-oss's <|channel|>): in an
# answer's text only when a server sent the model's raw output.
_SPECIAL_TOKEN = re.compile(r"<\|[a-z_]{2,30}\|>")
_MAGISTRAL_THINK = re.compile(r"\[/?THINK\]")  # Magistral's think block, raw


@dataclass
class JudgeRunner:
    """What a judged run asks models: one client (concurrency bound, cache, usage) for every stage, and the
    answers it read for a verdict per stage (``answers``, each re-ask's too; the client's usage counts those
    outside the protocol)."""

    client: LLMClient
    protocol_retries: int = 2
    answers: Counter[str] = field(default_factory=Counter)
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
        for settings in panel.judges:  # every judge's limit before any call: none is paid for in vain
            self._check_prompt(settings, chat(panel.system, prompt), stage)
        answers = [
            await self.answer(settings, panel, prompt, stage, self.priority(record)) for settings in panel.judges
        ]
        return _vote(panel, answers, record)

    async def answer(
        self, settings: JudgeModel, panel: JudgePanel, prompt: str, stage: str, priority: int = 0
    ) -> JudgeAnswer:
        """One judge's verdict. An answer that is not one is asked again, ``protocol_retries`` times, with the
        answer and what was wrong with it appended (so that no re-ask repeats the messages of the one before);
        JudgeCallError after that."""
        as_json = settings.verdict_format == "json"
        messages = chat(panel.system, prompt + answer_note(panel.allow_newfc) if as_json else prompt)
        asked = []  # each re-ask's messages hold the answers before it: all of them are cached, as one chain
        for attempt in range(self.protocol_retries + 1):
            answer = await self.client.complete(settings, messages, stage, priority=priority)
            self.answers[stage] += 1
            try:
                return read_verdict(answer, panel.allow_newfc, settings.verdict_format)
            except ProtocolError as exc:
                problem = exc
                asked.append(messages)
                again = attempt < self.protocol_retries
                self.client.used.not_a_verdict(stage, settings.model, exc.problem, again)
                messages = reask(messages, answer, exc)
        for given in asked:  # no verdict at all: `refine retry` asks afresh (a chain that found one is kept)
            self.client.forget(settings, given)
        raise JudgeCallError(
            f"{settings.model} did not follow the answer protocol after {self.protocol_retries + 1} attempt(s): "
            f"{problem}"
        )

    def _check_prompt(self, settings: ModelSettings, messages: list[dict[str, str]], stage: str) -> None:
        """PromptTooLong when the prompt is over the model's max_prompt_tokens (counted only when it has one)."""
        if settings.max_prompt_tokens is not None:
            check_prompt(stage, settings, self.client.count_prompt(settings.model, messages))

    async def score(self, scorer: ScorerSettings, stage: str, record: Record) -> Verdict:
        """The stage's scorer's verdict on a record its rules passed (docs/scorers.md)."""
        from funreason_refine.judge.score_input import score_input
        from funreason_refine.judge.scorer import scored_verdict

        if scorer.max_prompt_tokens is not None:
            self._check_prompt(scorer, score_input(scorer, record).as_messages(), stage)
        return await scored_verdict(self.client, scorer, stage, record, self.priority(record), self.alternatives)

    async def rewrite(
        self, generator: GenerateSettings, field: str, stage: str, record: Record, attempt: int
    ) -> Record:
        """The record with ``field`` written anew by a stage's generator (JudgeCallError on failure).
        Each attempt is its own cached answer, so a resumed run pays for none again and a second
        attempt is not the first one's answer."""
        assert generator.prompt is not None
        messages = [{"role": "user", "content": render(generator.prompt, record)}]
        self._check_prompt(generator, messages, stage)
        variant = f"rewrite {field}, attempt {attempt}"
        answer = await self.client.complete(generator, messages, stage, priority=self.priority(record), variant=variant)
        try:
            text = written(generator.model, field, answer, messages[-1]["content"])
        except JudgeCallError:
            self.client.forget(generator, messages, variant)  # cut off or empty: a retry asks again
            raise
        return record.model_copy(update={field: text})


def written(model: str, field: str, answer: Answer, prompt: str = "") -> str:
    """The text a generator wrote: its answer alone (its reasoning is its scratchpad, never training data),
    whole (an answer the token limit cut off is not), and nothing but its answer: one that still holds a think
    tag, a chat template's special token that the prompt does not hold (a record's text may) or a line of the
    prompt's ===== fences is not kept (``prompt``: the prompt it answered)."""
    if answer.cut_off:
        raise JudgeCallError(
            f"{model} was cut off by the token limit (finish_reason length) while it wrote the {field}: raise the "
            "generator's max_tokens"
        )
    text = answer.text.strip()
    if not text:
        said = "only reasoning, and no" if answer.reasoning else "an empty"
        raise JudgeCallError(f"{model} wrote {said} {field}: ask it again with `refine retry`, or use another model")
    mixed = _not_the_answer_alone(text, prompt)
    if mixed:
        raise JudgeCallError(
            f"{model} wrote a {field} that holds {mixed}: not kept as the {field}; `refine retry` asks again, or use "
            "another model (a server that sends a model's raw output needs its reasoning parser and chat template: "
            "docs/judges.md#reasoning-models)"
        )
    return text


def _not_the_answer_alone(text: str, prompt: str) -> str | None:
    """What in a generator's answer is not its answer (reasoning, a chat template's markup, the prompt echoed
    back), in words; None when nothing is. A record's own text cannot hold a fence line or a think tag (the
    prompt escapes them), so such a line in the answer came from the prompt."""
    tag = THINK_TAG.search(text) or _MAGISTRAL_THINK.search(text)
    if tag:
        return f"a {tag.group(0)} tag outside a think block at its start (reasoning, not an answer)"
    # A token the prompt holds is the record's own text (a call's argument), quoted: no template put it there.
    token = next((t for t in _SPECIAL_TOKEN.finditer(text) if t.group(0) not in prompt), None)
    if token:
        return f"the chat template's special token {token.group(0)} (the server sent its raw output)"
    fences = {line.strip() for line in prompt.splitlines() if line.startswith("=====")}
    echoed = next((line.strip() for line in text.splitlines() if line.strip() in fences), None)
    return f"the prompt's line {echoed!r} (it echoed the prompt)" if echoed else None


def reask(messages: list[dict[str, str]], answer: Answer, problem: ProtocolError) -> list[dict[str, str]]:
    """The messages that ask again: the answer as the model's turn, then what was wrong with it. An empty
    answer (reasoning alone) has no turn to show: what was wrong is added to the last message."""
    text = answer.text
    if len(text) > QUOTED_CHARS:
        half = QUOTED_CHARS // 2
        text = f"{text[:half]}\n[...]\n{text[-half:]}"
    if not text:
        last = messages[-1]
        return [*messages[:-1], {**last, "content": f"{last['content']}\n\n{problem.correction}"}]
    return [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": problem.correction}]


PASSED, CORRECTED, CHANGED_CALLS, REJECTED = "passed", "corrected", "changed_calls", "rejected"


def decide(
    panel: JudgePanel, answers: list[JudgeAnswer], calls: list[FunctionCall]
) -> tuple[str, list[FunctionCall] | None]:
    """What the panel's answers come to for an answer making ``calls``: PASSED; CORRECTED, with the first failing
    judge's corrected calls (a regenerate); CHANGED_CALLS, with corrected calls this stage may not take (a
    discard); REJECTED (a discard). The corrected calls are None for the other two. The probe of `refine
    estimate` counts verdicts by it too."""
    yes = sum(a.ok for a in answers)
    if (yes == len(answers)) if panel.vote == "unanimous" else (yes * 2 > len(answers)):
        return PASSED, None
    proposal = next((a.new_calls for a in answers if not a.ok and a.new_calls is not None), None)
    if proposal is None or same_calls(proposal, calls):
        return REJECTED, None
    return (CORRECTED if panel.calls_may_change else CHANGED_CALLS), proposal


def _vote(panel: JudgePanel, answers: list[JudgeAnswer], record: Record) -> Verdict:
    decided, proposal = decide(panel, answers, record.calls)
    ok = decided == PASSED
    reasons = "; ".join(a.reason for a in answers if a.reason and a.ok == ok) or ""
    if ok:
        return Verdict.passed(message=reasons)
    if proposal is None:  # REJECTED
        return Verdict.discard("judge_rejected", reasons or "the judge answered False without a reason")
    if decided == CHANGED_CALLS:
        return Verdict.discard(
            "judge_changed_calls",
            f"the judge's corrected calls {_shown(proposal)} change the answer's functions or "
            "arguments, and this stage may correct the format only: not taken, the record is discarded "
            f"(the judge's reason: {reasons or 'none given'})",
        )
    corrected = record.model_copy(update={"answer": proposal})
    return Verdict.regenerate(corrected, "judge_corrected", reasons or "the judge proposed corrected calls")


def _shown(calls: list[FunctionCall]) -> str:
    """Calls as a message quotes them: rendered, at most 200 characters."""
    try:
        text = render_calls(calls)
    except CallSyntaxError:
        text = ", ".join(c.name for c in calls)
    return text if len(text) <= 200 else text[:200] + "..."
