"""Pipelines that ask models: records refined concurrently on one event loop, written in input order.

The judge client bounds the calls in flight (``max_concurrency``); enough records are in flight
to keep every call slot busy through their stages, and a slow answer holds back only the
writing of what follows it, never the work.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funreason_refine.jsonl import read_jsonl
from funreason_refine.judge.client import BudgetStop, LLMClient
from funreason_refine.judge.runner import JudgeRunner
from funreason_refine.judge.scorer import Alternatives, earlier_scores
from funreason_refine.judge.stage_models import Judging
from funreason_refine.readers import InputStream, RawItem
from funreason_refine.record import Outcome, Quarantined, Record
from funreason_refine.refine import refine_judged
from funreason_refine.refiners.base import Emit, EnoughKept, Refiner
from funreason_refine.refiners.collector import fewer_collections
from funreason_refine.run_folder import UnwritableRecord, Written
from funreason_refine.stages.base import PipelineStage

REPORT_SECONDS = 0.1

if TYPE_CHECKING:
    from funreason_refine.audit.features import Features


class JudgedRefiner(Refiner):
    def __init__(
        self,
        stream: InputStream,
        stages: list[PipelineStage],
        judging: Judging,
        run_dir: Path,
        on_usage: Callable[[dict[str, Any]], None] | None = None,
        features: Callable[[Record], Features] | None = None,
    ):
        self.stream = stream
        self.features = features
        self.stages = stages
        self.judging = judging
        self.run_dir = run_dir
        self.on_usage = on_usage
        self.client: LLMClient | None = None
        self._reported = float("-inf")  # when calls were last reported to the progress display

    def run(self, items: Iterator[RawItem], emit: Emit) -> str | None:
        return asyncio.run(self._run(items, emit))

    def judge_usage(self) -> dict[str, Any] | None:
        if self.client is None:
            return None
        notes = set(self.client.notes)
        if self.client.spent_before:
            notes.add(
                f"the figures are this command's; max_cost counted what the run folder spent in all: "
                f"${self.client.spent_before:.4f} by earlier commands on it (its answer cache) and this command's"
            )
        return {
            **self.client.used.as_dict(),  # the total's keys, per_stage (and tokens_counted_locally)
            "endpoints": self.client.endpoint_stats(),
            **({"batches": batches} if (batches := self.client.batch_counts()) else {}),
            "notes": sorted(notes),
        }

    async def _run(self, items: Iterator[RawItem], emit: Emit) -> str | None:
        from funreason_refine.judge.cache import AnswerCache

        cache = AnswerCache(self.run_dir)
        # max_cost holds over the run folder: what earlier commands on it paid counts too (a rerun of a
        # stopped run must not spend max_cost again).
        before = cache.spent() if self.judging.max_cost is not None else 0.0
        self.client = client = LLMClient(
            max_concurrency=self.judging.max_concurrency,
            cache=cache,
            spent_before=before,
            max_cost=self.judging.max_cost,
            batch_dir=self.run_dir,
            on_batch=self._report_usage,  # batches move while no record finishes: progress shows them as they do
            on_call=self._call_changed,  # so do calls: a slow judge shows its calls from the first one on
        )
        judges = JudgeRunner(client, self.judging.protocol_retries, alternatives=self._alternatives())
        try:
            _check_providers(client, self.stages)
            with fewer_collections():  # entered after LiteLLM's import, so that its objects are frozen too
                return await self._refine_all(items, emit, client, judges)
        finally:
            await client.aclose()

    async def _refine_all(
        self, items: Iterator[RawItem], emit: Emit, client: LLMClient, judges: JudgeRunner
    ) -> str | None:
        """Records admitted one at a time into a window of ``judging.window``, written oldest first."""
        window = self.judging.window
        pending: deque[asyncio.Task[Written]] = deque()
        stopped: str | None = None
        try:
            for unit in self._units(items, judges.alternatives):
                pending.extend(asyncio.ensure_future(self._refine(item, judges)) for item in unit)
                await asyncio.sleep(0)  # let the new record start: its first call goes out while reading goes on
                while pending and (len(pending) >= window or pending[0].done()):
                    if not await self._emit_oldest(pending, emit):
                        return _budget_stop(client)
                stopped = client.budget_spent()
                if stopped:
                    break
            while pending:
                if not await self._emit_oldest(pending, emit):
                    return _budget_stop(client)
            return stopped
        except EnoughKept:
            _note_cancelled(client, "the target of kept records was reached")
            raise
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    def _units(
        self, items: Iterator[RawItem], alternatives: Alternatives | None
    ) -> Iterable[list[RawItem] | list[Record | Quarantined]]:
        """What is started together: each record alone, or with a relative scorer cut, each group of
        alternatives whole (its records wait for one another at that stage)."""
        if alternatives is None:
            return ([raw] for raw in items)
        return alternatives.groups(self.stream.convert(raw) for raw in items)

    def _alternatives(self) -> Alternatives | None:
        """The groups a relative scorer cut compares within, with the scores of records finished before."""
        relative = {s.name: s.scorer.relative for s in self.stages if s.scorer is not None and s.scorer.relative}
        if not relative:
            return None
        by = next(iter(relative.values())).by
        files = [self.run_dir / f"{kind}.jsonl" for kind in (Outcome.KEPT, Outcome.DISCARDED, Outcome.HARD)]
        lines = (line for file in files if file.exists() for line in read_jsonl(file))
        return Alternatives(by, earlier_scores(lines, by, set(relative)))

    async def _refine(self, raw: RawItem | Record | Quarantined, judges: JudgeRunner) -> Written:
        item = self.stream.convert(raw) if isinstance(raw, tuple) else raw
        if isinstance(item, Quarantined):
            return Written.quarantined(item)
        try:
            finished = await refine_judged(item, self.stages, judges)
        finally:
            if judges.alternatives is not None:
                judges.alternatives.leave(item.index)  # the others of its group wait for it no more
        try:
            return finished.written(self.features)
        except UnwritableRecord as exc:
            if isinstance(raw, tuple):
                return Written.quarantined(self.stream.quarantine(raw, str(exc)))
            return Written.quarantined(Quarantined(index=item.index, source=item.source, error=str(exc), raw=""))

    async def _emit_oldest(self, pending: deque[asyncio.Task[Written]], emit: Emit) -> bool:
        """Write the oldest record's outcome; False once the budget stopped it (nothing after it is
        written either, so the files stay in input order; their answers are cached for the next run).
        A judge outage (JudgeOutage) stops the run the same way, and is raised: the records in flight
        are not written, and the next run redoes them. So does a target reached (EnoughKept, raised by
        ``emit``): the records in flight are cancelled, the calls they were answered are counted (and cached)."""
        try:
            finished = await pending.popleft()
        except BudgetStop:
            return False
        emit(finished)
        self._report_usage()
        return True

    def _call_changed(self) -> None:
        """A call started or ended: reported at most ten times a second (thousands end each second on a fleet)."""
        now = time.monotonic()
        if now - self._reported >= REPORT_SECONDS:
            self._reported = now
            self._report_usage()

    def _report_usage(self) -> None:
        """Judge calls, tokens, cost and batches so far, to the progress display."""
        if self.on_usage is None or self.client is None:
            return
        total = self.client.total
        self.on_usage(
            {
                "calls": total.calls,
                "cached": total.cached,
                "in_flight": self.client.in_flight,
                "tokens": total.prompt_tokens + total.completion_tokens,
                "cost_usd": total.cost_usd,
                "batches": self.client.batch_counts(),
            }
        )


def _check_providers(client: LLMClient, stages: list[PipelineStage]) -> None:
    """Stop before the first record when LiteLLM cannot tell a model's provider: every call would fail alike."""
    from funreason_refine.judge.failures import JudgeSetupError
    from funreason_refine.judge.providers import provider_problems
    from funreason_refine.judge.stage_models import litellm_models

    problems = provider_problems(client.litellm, litellm_models(stages))
    if problems:
        raise JudgeSetupError("; ".join(problems) + ". Nothing was sent: fix the model name and run again")


def _budget_stop(client: LLMClient) -> str | None:
    """Why max_cost stopped the run; the calls then in flight, about to be cancelled, noted."""
    _note_cancelled(client, "max_cost was reached")
    return client.budget_spent()


def _note_cancelled(client: LLMClient, when: str) -> None:
    """The calls in flight when the run stopped early (``when``: --target-kept, max_cost): cancelled unanswered,
    so not in the accounting."""
    if client.in_flight:
        client.notes.add(
            f"{client.in_flight} judge call(s) were in flight when {when} and were cancelled: they are not "
            "counted in calls or cost, and a provider may bill requests it had begun"
        )
