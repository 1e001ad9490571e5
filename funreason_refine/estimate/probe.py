"""Probes: a few real calls per stage (paid, kept in the run's answer cache) that measure what the answers are
like, how many calls the server answers at once, and how the answers keep to the protocol (findings.py keeps
what they found); and the cache's answer to a call (sums.py measures the answers it holds)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path

from funreason_refine.estimate.dry import Call
from funreason_refine.estimate.figures import Key, key_of
from funreason_refine.estimate.findings import Findings, KindTiming, ServerFindings, StageProtocol, Wave
from funreason_refine.judge.cache import FILE, AnswerCache, Cached
from funreason_refine.judge.client import JudgeCallError, LLMClient, cache_keys
from funreason_refine.judge.library import load_litellm
from funreason_refine.judge.protocol import JudgeAnswer
from funreason_refine.judge.runner import CORRECTED, PASSED, JudgeRunner, decide
from funreason_refine.judge.scorer_settings import ScorerSettings
from funreason_refine.judge.settings import JudgeModel
from funreason_refine.judge.structured import answer_note


def open_cache(run_dir: Path) -> AnswerCache | None:
    """The run folder's answer cache, when there is one (an estimate never makes a run folder by itself)."""
    return AnswerCache(run_dir) if (run_dir / FILE).exists() else None


def cached_answer(cache: AnswerCache | None, call: Call) -> Cached | None:
    """The cache's answer to ``call``, looked up as a run looks it up (also under its key of old)."""
    if cache is None:
        return None
    hit, _ = cache.find(*cache_keys(call.settings, call.messages, call.variant))
    return hit


class FirstCalls:
    """The first ``per_key`` distinct calls of each stage, model and kind (judge or generator), gathered record
    by record."""

    def __init__(self, per_key: int):
        self.per_key = per_key
        self._chosen: dict[Key, dict[str, Call]] = defaultdict(dict)

    def add(self, calls: list[Call]) -> None:
        for call in calls:
            if isinstance(call.settings, ScorerSettings):  # a score is read by the scorer's own code: not probed
                continue
            distinct = self._chosen[key_of(call)]
            if len(distinct) < self.per_key:
                distinct.setdefault(cache_keys(call.settings, call.messages, call.variant)[0], call)

    def calls(self) -> list[Call]:
        return [call for distinct in self._chosen.values() for call in distinct.values()]


KEPT_UP = 0.8
"""A server that gets through a wave of N calls at once at least this share of N times as fast as through one call
alone keeps up with N: how many more it would take, the probe cannot tell."""


async def probe(calls: list[Call], run_dir: Path, concurrency: int, protocol_retries: int) -> Findings:
    """Make ``calls`` for real, as a run would (a judge's answer read for its verdict, asked again while it does
    not follow the protocol), into the run folder's answer cache (those cached already cost nothing). Per model,
    the first call of each kind goes alone (its seconds are a call's own, no queue), the rest in waves of 2, 4, 8
    ... up to ``concurrency`` at once: how their answers' pace stacks up says how many calls the server answers
    at once."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cache = AnswerCache(run_dir)
    runner = JudgeRunner(LLMClient(max_concurrency=concurrency, cache=cache), protocol_retries)
    findings = Findings()
    votes = Votes()
    try:
        paid = [c for c in calls if cached_answer(cache, c) is None]
        await asyncio.gather(*(_ask(runner, c, findings, votes) for c in calls if cached_answer(cache, c) is not None))
        for model in dict.fromkeys(c.settings.model for c in paid):
            await _measure(runner, [c for c in paid if c.settings.model == model], findings, concurrency, votes)
    finally:
        await runner.client.aclose()
    votes.count(findings)
    for stage, answers in runner.answers.items():
        usage = runner.client.used.stage(stage)
        failures, reasks = usage.protocol_failures, usage.protocol_reasks
        # A failure is asked again or its verdict given up on.
        findings.protocol[stage] = StageProtocol(answers, failures, reasks, failures - reasks)
    return findings


class Votes:
    """The probe's judges' answers, by the ask of the dry run they belong to: a panel's verdict is its judges'
    vote (judge.runner.decide), counted once per ask whose every judge answered."""

    def __init__(self) -> None:
        self._asks: dict[int, list[tuple[Call, JudgeAnswer]]] = defaultdict(list)

    def add(self, call: Call, answer: JudgeAnswer) -> None:
        if call.asked is not None and not call.asked.stand_in:  # a verdict on the dry run's stand-in says nothing
            self._asks[call.asked.number].append((call, answer))

    def count(self, findings: Findings) -> None:
        for answered in self._asks.values():
            call, panel = answered[0][0], answered[0][0].panel
            assert panel is not None and call.asked is not None
            if len(answered) != len(panel.judges):  # a judge gave no verdict: the record goes to errors.jsonl
                continue
            place = {id(judge): n for n, judge in enumerate(panel.judges)}  # the dry run asked with these objects
            in_order = sorted(answered, key=lambda pair: place.get(id(pair[0].settings), 0))
            decided, _ = decide(panel, [answer for _, answer in in_order], list(call.asked.calls))
            findings.note_verdict(call.stage, decided == PASSED, decided == CORRECTED)


async def _ask(runner: JudgeRunner, call: Call, findings: Findings, votes: Votes) -> None:
    """One probe call as the run makes it; a failure is noted, not raised (a setup error or an outage is)."""
    try:
        if call.panel is not None and isinstance(call.settings, JudgeModel):
            # The prompt as rendered: answer() adds the JSON answer note itself.
            prompt = call.messages[-1]["content"].removesuffix(answer_note(call.panel.allow_newfc))
            votes.add(call, await runner.answer(call.settings, call.panel, prompt, call.stage))
        else:
            await runner.client.complete(call.settings, call.messages, call.stage, variant=call.variant)
    except JudgeCallError as exc:
        findings.note_error(f"{call.stage}: {exc}")


async def _measure(runner: JudgeRunner, calls: list[Call], findings: Findings, concurrency: int, votes: Votes) -> None:
    """One model's calls: the first of each kind alone, the rest in growing waves."""
    first: dict[Key, Call] = {}
    for call in calls:
        first.setdefault(key_of(call), call)
    await _warm_up(calls[0])
    solo_tokens, solo_seconds = 0, 0.0
    for key, call in first.items():
        made, tokens, seconds = await _timed(runner, [call], findings, votes)
        if made:
            findings.kinds.append(KindTiming(*key, calls=made, seconds=seconds))
            solo_tokens, solo_seconds = solo_tokens + tokens, solo_seconds + seconds
    server = findings.servers[calls[0].settings.model] = ServerFindings()
    if solo_seconds:
        server.solo_tokens_per_second = round(solo_tokens / solo_seconds, 2)
    chosen = {id(call) for call in first.values()}
    rest = [call for call in calls if id(call) not in chosen]
    size = 2
    while rest and concurrency > 1:
        wave, rest = rest[:size], rest[size:]
        made, tokens, seconds = await _timed(runner, wave, findings, votes)
        if made:
            server.waves.append(Wave(len(wave), round(seconds, 3), tokens))
        size = min(size * 2, concurrency)
    server.concurrency = _concurrency(server)
    largest = max((w.calls for w in server.waves), default=0)
    server.kept_up = server.concurrency is not None and server.concurrency >= KEPT_UP * largest


async def _warm_up(call: Call) -> None:
    """LiteLLM's first call of a provider loads its code (most of a second, here): a mock call (no request) does
    that first, so that the first call timed alone takes the server's time only."""
    try:
        await load_litellm().acompletion(model=call.settings.model, messages=call.messages, mock_response="ok")
    except Exception:  # a warm-up that fails changes nothing but the first timing
        pass


async def _timed(runner: JudgeRunner, calls: list[Call], findings: Findings, votes: Votes) -> tuple[int, int, float]:
    """``calls`` at once: the calls they made (re-asks too), the output tokens written, the seconds it took."""
    before = runner.client.total
    calls_before, tokens_before = before.calls, before.completion_tokens
    started = time.monotonic()
    await asyncio.gather(*(_ask(runner, call, findings, votes) for call in calls))
    seconds = time.monotonic() - started
    after = runner.client.total
    return after.calls - calls_before, after.completion_tokens - tokens_before, seconds


def _concurrency(server: ServerFindings) -> float | None:
    """The calls the server answers at once: the most any wave got through at once, its output tokens a second
    over the pace of one call alone (a server that takes one call at a time gets through a wave of 4 no faster
    than one call after another: 1)."""
    solo = server.solo_tokens_per_second
    together = [w for w in server.waves if w.calls >= 2 and w.seconds > 0]
    if not solo or not together:
        return None
    return round(max(min(w.calls, w.output_tokens / w.seconds / solo) for w in together), 1)
