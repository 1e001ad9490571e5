"""The judge client every stage of a run shares: an answer, from the cache, a batch job or a call, counted.

It only wires the parts together: the answer cache (:mod:`~funreason_refine.judge.cache`, by model,
sampling parameters and prompt, never by server), provider batches (:mod:`~funreason_refine.judge.batching`),
calls with their retries, servers and rate limits (:mod:`~funreason_refine.judge.calls`), and what the
calls used (:mod:`~funreason_refine.judge.accounting`, priced by :mod:`~funreason_refine.judge.prices`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from funreason_refine.errors import JudgeOutage
from funreason_refine.jsonl import escaped_surrogates
from funreason_refine.judge.accounting import Ledger, RunUsage, Usage
from funreason_refine.judge.answer import Answer
from funreason_refine.judge.batching import BatchRoute
from funreason_refine.judge.cache import AnswerCache, Cached
from funreason_refine.judge.calls import Caller, Send
from funreason_refine.judge.failures import BudgetStop, JudgeCallError, JudgeSetupError
from funreason_refine.judge.library import load_litellm
from funreason_refine.judge.prices import Pricing
from funreason_refine.judge.reply import Reply
from funreason_refine.judge.settings import ModelSettings
from funreason_refine.judge.tokens import prompt_tokens

__all__ = [
    "Answer",
    "BudgetStop",
    "JudgeCallError",
    "JudgeOutage",
    "JudgeSetupError",
    "LLMClient",
    "RunUsage",
    "Usage",
]


class LLMClient:
    """Shared by every stage of a run: one concurrency bound, one cache, usage per stage, one pool of
    servers per model (as a settings table names them), with their rate limits and outage watch; with
    ``batch_dir`` (the run folder), the calls of models with ``batch = true`` go as batch jobs. ``on_call``
    hears each request start and end. ``spent_before``: what earlier commands on the run folder spent (its
    answer cache says), counted against ``max_cost`` with what this client spends."""

    def __init__(
        self,
        max_concurrency: int,
        cache: AnswerCache | None = None,
        max_cost: float | None = None,
        batch_dir: Path | None = None,
        on_batch: Callable[[], None] | None = None,
        on_call: Callable[[], None] | None = None,
        spent_before: float = 0.0,
    ):
        self.max_concurrency = max_concurrency
        self.cache = cache
        self.max_cost = max_cost
        self.spent_before = spent_before
        self.notes: set[str] = set()
        self.litellm = litellm = load_litellm()
        self._http: Any = None  # an httpx client for the requests LiteLLM does not make (scorers), made when asked
        pricing = Pricing(litellm, self.notes)
        self._ledger = Ledger(pricing, self.notes)
        self._calls = Caller(litellm, max_concurrency, self.budget_spent, pricing.params, on_call)
        self._batches = BatchRoute(batch_dir, cache, litellm, self.notes, on_batch) if batch_dir is not None else None

    @property
    def used(self) -> RunUsage:
        """What the calls so far used, per stage (a typed value that adds up)."""
        return self._ledger.used

    @property
    def usage(self) -> dict[str, Usage]:
        return self._ledger.used.per_stage

    @property
    def total(self) -> Usage:
        return self._ledger.used.total

    @property
    def in_flight(self) -> int:
        return self._calls.in_flight

    def count_prompt(self, model: str, messages: list[dict[str, str]]) -> int:
        """The prompt's tokens, counted here with LiteLLM's counter (as a token rate limit counts them)."""
        return prompt_tokens(self.litellm, model, messages)

    def budget_spent(self) -> str | None:
        """Why no new call may be made (max_cost reached by what the run folder spent), or None. A call starts
        only while less is spent: the calls then in flight (``max_concurrency``, a batch's lines) may pass it."""
        if self.max_cost is None:
            return None
        now = self._ledger.used.cost_usd + (self._batches.owed if self._batches is not None else 0.0)
        spent = self.spent_before + now
        # A billionth of a dollar of slack: twenty calls of $0.01 add up to 0.19999999999999998.
        if spent < self.max_cost - 1e-9:
            return None
        # No call starts once max_cost is spent, but the calls in flight then go on: what they add is said.
        over = spent - self.max_cost
        past = f"; ${over:.4f} over it, by calls started before it was reached" if over >= 0.00005 else ""
        if not self.spent_before:
            return f"max_cost of ${self.max_cost:g} reached (${spent:.4f} spent{past})"
        return (
            f"max_cost of ${self.max_cost:g} reached (${spent:.4f} spent in this run folder: ${self.spent_before:.4f} "
            f"by earlier commands on it, ${now:.4f} by this one{past})"
        )

    def endpoint_stats(self) -> dict[str, list[dict[str, Any]]]:
        return self._calls.endpoint_stats()

    def batch_counts(self) -> dict[str, int] | None:
        """Batch jobs submitted, in progress and done so far; None when no call went as a batch."""
        return self._batches.counts() if self._batches is not None else None

    def http(self) -> Any:
        """The httpx client of the requests LiteLLM has no call for (vLLM's /classify and /pooling)."""
        if self._http is None:
            import httpx  # installed with LiteLLM

            # The call slots bound the requests in flight; the pool must not queue them a second time.
            self._http = httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=None))
        return self._http

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
        """One answer; ``priority`` (the record's index) orders the wait for a call slot; ``variant``
        keeps apart answers asked for again on purpose (samples). ``send`` makes the request instead of
        LiteLLM's chat completion; ``read`` turns the reply into the text kept (a scorer's score)."""
        messages = sendable(messages)
        key, old_key = cache_keys(settings, messages, variant)
        usage = self._ledger.used.stage(stage)
        if self.cache is not None:
            hit = self.cache.recall(key, old_key)
            if hit is not None:
                self._ledger.cached(usage, hit)
                return Answer.of(hit.text, hit.reasoning, hit.finish_reason, cached=True)
        if send is None and read is None and self._batches is not None and self._batches.takes(settings):
            spent = self.budget_spent()
            if spent:
                raise BudgetStop(spent)
            got = await self._batches.ask(settings, messages, key, usage.add_retry)
            if got is not None:
                self._ledger.batched(usage, settings, messages, got.answer, got.paid)
                return Answer.of(got.answer.text, got.answer.reasoning, got.answer.finish_reason, not got.paid)

        def paid_for_nothing(reply: Reply) -> None:  # an answer without content: its cost is spent all the same
            cost = self._ledger.answered(usage, settings, messages, reply)
            if self.cache is not None:
                self.cache.spent_on_nothing(key, cost)

        reply = await self._calls.call(settings, messages, priority, usage.add_retry, send, paid_for_nothing)
        cost = self._ledger.answered(usage, settings, messages, reply)
        text = read(reply) if read is not None else reply.text
        if self.cache is not None:
            tokens = reply.prompt_tokens, reply.completion_tokens
            kept = (reply.reasoning, reply.finish_reason) if read is None else (None, None)
            self.cache.put(key, Cached(text, *tokens, cost, reply.call_seconds, *kept))
        if read is not None:  # a score: the text read is the answer, whole
            return Answer(text)
        return Answer.of(reply.text, reply.reasoning, reply.finish_reason)

    def forget(self, settings: ModelSettings, messages: list[dict[str, Any]], variant: str = "") -> None:
        """The answer to ``messages`` was not usable (not a verdict, cut off, reasoning alone, empty): out of the
        cache, so that a retry or a resumed run asks again instead of reading it back. What it cost stays
        counted: in this run's usage, and in what the folder spent (the cache's :func:`spent`)."""
        if self.cache is None:
            return
        key, old_key = cache_keys(settings, messages, variant)
        self.cache.drop(key)
        old = old_key() if self.cache.inherited else None
        if old is not None:  # where an older version kept it: found there again otherwise
            self.cache.drop(old)

    async def aclose(self) -> None:
        """Write the answers the cache holds, stop what runs in the background (batches followed), close
        the cache."""
        if self.cache is not None:
            self.cache.write()  # first: a second Ctrl-C may interrupt what follows
        try:
            if self._batches is not None:
                await self._batches.aclose()
            if self._http is not None:
                await self._http.aclose()
        finally:
            if self.cache is not None:
                self.cache.close()


def cache_keys(
    settings: ModelSettings, messages: list[dict[str, Any]], variant: str = ""
) -> tuple[str, Callable[[], str | None]]:
    """The answer cache's key of a call and (a function giving) its key of old, made from the messages as the
    request carries them (:func:`sendable`): every lookup of a call's answer (a run's, an estimate's) goes
    through it, so that a record holding a lone surrogate is found under the key its answer was kept under."""
    sent = sendable(messages)
    return settings.cache_key(sent, variant), lambda: settings.legacy_cache_key(sent, variant)


def sendable(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` as a request can carry them: a lone surrogate in a text (a legal JSON escape in a
    record, which the run keeps but UTF-8 cannot encode) written as its escape, ``\\ud800``. Sent as it
    was, the request failed before it left, and the record was given up as if the server had failed."""
    texts = [m.get("content") for m in messages]
    if all(not isinstance(t, str) or escaped_surrogates(t) is t for t in texts):
        return messages
    return [
        {**m, "content": escaped_surrogates(t)} if isinstance(t, str) else m
        for m, t in zip(messages, texts, strict=True)
    ]
