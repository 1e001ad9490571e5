"""Calls to LiteLLM with our own retries, concurrency bound, server choice, answer cache and cost accounting.

LiteLLM's own retries are unreliable (skipped for some providers, no backoff on 5xx,
Retry-After ignored), so every call passes ``max_retries=0`` and this module retries; its
Router rejects instead of queueing, so a semaphore bounds the calls in flight and
:mod:`funreason_refine.judge.endpoints` spreads them over a model's servers; answers are cached
here, in the run folder, by model, sampling parameters and prompt (never by server).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funreason_refine.errors import RefineError
from funreason_refine.judge.cache import AnswerCache, Cached
from funreason_refine.judge.endpoints import JudgeOutage, Outcome, Server, ServerPool
from funreason_refine.judge.prefix import PrefixCaches
from funreason_refine.judge.ratelimit import prompt_tokens
from funreason_refine.judge.settings import ModelSettings

if TYPE_CHECKING:
    from funreason_refine.judge.batch import Batcher

__all__ = ["Answer", "BudgetStop", "JudgeCallError", "JudgeOutage", "JudgeSetupError", "LLMClient", "Usage"]

BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0


class JudgeCallError(RefineError):
    """A call failed after its retries (the record goes to errors.jsonl; it can be retried)."""


class BudgetStop(Exception):
    """max_cost is reached: no new call is made; the record is left for the next run."""


class JudgeSetupError(RefineError):
    """A call can never succeed as configured (bad key, unknown model): the run stops."""


def _litellm() -> Any:
    # Never fetch the price list from the network; never print LiteLLM's help banner.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    # Prompts are counted for token rate limits only; never download a tokenizer for that (tiktoken
    # ships inside LiteLLM), the estimate is settled from the answer's usage anyway.
    litellm.disable_hf_tokenizer_download = True
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    return litellm


class OldestFirst:
    """A semaphore that hands a free slot to the waiter with the lowest priority number (first
    come first served among equals); the runner gives older records lower numbers. Written by
    hand: asyncio's Semaphore is first come, first served only.
    """

    def __init__(self, slots: int):
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    async def acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (priority, self._seq, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just as the waiter was cancelled
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


@dataclass
class Usage:
    """Judge use of a run (or of one stage).

    ``cost_usd`` and the token counts are what this run paid for; the ``cached_*`` fields are what
    the answers taken from the cache cost when they were first asked, so that calls, tokens, cost
    and latency of a whole run can be told even when a re-run paid for nothing (calibrate).
    ``seconds`` sums the time each call took, not the wall time of the run. ``reusable_prefix_tokens``
    are the prompt tokens a server's prefix cache could have reused (judge/prefix.py models it).
    """

    calls: int = 0
    cached: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    cached_cost_usd: float = 0.0
    cached_seconds: float = 0.0
    reusable_prefix_tokens: int = 0

    def add(self, other: Usage) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("cost_usd", "cached_cost_usd", "seconds", "cached_seconds"):
            out[name] = round(out[name], 6)
        return out


@dataclass
class Answer:
    text: str
    cached: bool


@dataclass
class LLMClient:
    """Shared by every stage of a run: one concurrency bound, one cache, usage per stage, one pool of
    servers per model (as a settings table names them), with their rate limits and outage watch; with
    ``batch_dir`` (the run folder), the calls of models with ``batch = true`` go as batch jobs."""

    max_concurrency: int
    cache: AnswerCache | None = None
    max_cost: float | None = None
    usage: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))
    notes: set[str] = field(default_factory=set)
    in_flight: int = 0
    _unpriced: set[str] = field(default_factory=set)
    _pools: dict[str, ServerPool] = field(default_factory=dict)
    _pool_of: dict[int, tuple[ModelSettings, ServerPool]] = field(default_factory=dict)
    _prefixes: PrefixCaches = field(default_factory=PrefixCaches)
    batch_dir: Path | None = None
    on_batch: Callable[[], None] | None = None
    _batcher: Batcher | None = None
    _journaled: bool | None = None

    def __post_init__(self) -> None:
        self._slots = OldestFirst(self.max_concurrency)
        self._litellm = _litellm()

    def budget_spent(self) -> str | None:
        """Why no new call may be made (max_cost reached), or None."""
        # A billionth of a dollar of slack: twenty calls of $0.01 add up to 0.19999999999999998.
        spent = self.total.cost_usd + (self._batcher.owed if self._batcher is not None else 0.0)
        if self.max_cost is not None and spent >= self.max_cost - 1e-9:
            return f"max_cost of ${self.max_cost:g} reached (${spent:.4f} spent)"
        return None

    @property
    def total(self) -> Usage:
        total = Usage()
        for u in self.usage.values():
            total.add(u)
        return total

    def endpoint_stats(self) -> dict[str, list[dict[str, Any]]]:
        """Per model, its servers in order: calls and errors (attempts, each counted where it went),
        429s, p50/p95 latency of the answers, time and times out of rotation. JSON-ready."""
        out: dict[str, list[dict[str, Any]]] = {}
        for pool in self._pools.values():
            out.setdefault(pool.model, []).extend(pool.stats())
        return out

    def _pool(self, settings: ModelSettings) -> ServerPool:
        """The pool of the settings' servers: shared by every settings table that names the same model,
        servers and limits (a stage's judge that only changes the temperature shares [judge]'s)."""
        known = self._pool_of.get(id(settings))
        if known is not None and known[0] is settings:
            return known[1]
        key = settings.model_dump_json(
            include={"model", "api_base", "endpoints", "max_requests_per_minute", "max_tokens_per_minute"}
        )
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = ServerPool(settings, self.max_concurrency)
        self._pool_of[id(settings)] = (settings, pool)  # the settings are kept, so that their id is not reused
        return pool

    async def complete(
        self,
        settings: ModelSettings,
        messages: list[dict[str, str]],
        stage: str,
        use_cache: bool = True,
        priority: int = 0,
        variant: str = "",
    ) -> Answer:
        """One answer; ``priority`` (the record's index) orders the wait for a call slot; ``variant``
        keeps apart answers asked for again on purpose (samples)."""
        key = settings.cache_key(messages, variant)
        usage = self.usage[stage]
        if use_cache and self.cache is not None:
            hit = self._cached(settings, messages, variant, key)
            if hit is not None:
                usage.cached += 1
                usage.cached_prompt_tokens += hit.prompt_tokens or 0
                usage.cached_completion_tokens += hit.completion_tokens or 0
                usage.cached_cost_usd += hit.cost or 0.0
                usage.cached_seconds += hit.seconds
                return Answer(hit.text, cached=True)
        if self.batch_dir is not None and (settings.batch or self._batches_journaled()):
            answer = await self._by_batch(settings, messages, key, usage)
            if answer is not None:
                return answer
        response, seconds, server = await self._call_with_retries(settings, messages, usage, priority)
        message = response.choices[0].message
        text = message.content or ""
        reasoning = getattr(message, "reasoning_content", None)
        if reasoning and "<think>" not in text:
            # LiteLLM moves a leading <think> block (and reasoning models' parsed reasoning) out of the
            # content; put it back, so a sampled CoT is kept and the protocol sees the whole answer.
            text = f"<think>{reasoning}</think>{text}"
        prompt_tokens = int(getattr(response.usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(response.usage, "completion_tokens", 0) or 0)
        cost = self._cost(settings, response, prompt_tokens, completion_tokens)
        usage.calls += 1
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens
        usage.cost_usd += cost
        usage.seconds += seconds
        usage.reusable_prefix_tokens += self._prefixes.reusable_tokens(settings.model, server, messages, prompt_tokens)
        if self.cache is not None:
            self.cache.put(key, Cached(text, prompt_tokens, completion_tokens, cost, seconds))
        return Answer(text, cached=False)

    def _batches_journaled(self) -> bool:
        """True when the run folder journals batch jobs: one submitted before is collected, not paid for again,
        even if its model's ``batch`` has been turned off since."""
        if self._journaled is None:
            from funreason_refine.judge.batch_journal import FOLDER, JOURNAL

            self._journaled = self.batch_dir is not None and (self.batch_dir / FOLDER / JOURNAL).exists()
        return self._journaled

    async def _by_batch(
        self, settings: ModelSettings, messages: list[dict[str, str]], key: str, usage: Usage
    ) -> Answer | None:
        """The answer by way of a batch job (cached by the batch's collection); None when its line failed
        there and the call is to be made as an ordinary one."""
        from funreason_refine.judge.batch import Batcher, BatchLineFailed

        spent = self.budget_spent()
        if spent:
            raise BudgetStop(spent)
        if self._batcher is None:
            assert self.batch_dir is not None and self.cache is not None, "batches need the run folder and its cache"
            self._batcher = Batcher(self.batch_dir, self.cache, self._litellm, self.notes, self.on_batch)
        try:
            got = await self._batcher.ask(settings, messages, key)
        except BatchLineFailed:
            usage.retries += 1
            self.notes.add("calls that failed inside their batch were made again as ordinary calls")
            return None
        if got is None:
            return None
        usage.calls += 1
        usage.prompt_tokens += got.prompt_tokens
        usage.completion_tokens += got.completion_tokens
        usage.cost_usd += got.cost
        usage.reusable_prefix_tokens += self._prefixes.reusable_tokens(
            settings.model, "batch", messages, got.prompt_tokens
        )
        return Answer(got.text, cached=False)

    async def aclose(self) -> None:
        """Write the answers the cache holds, stop what runs in the background (batches followed), close
        the cache."""
        if self.cache is not None:
            self.cache.write()  # first: a second Ctrl-C may interrupt what follows
        try:
            if self._batcher is not None:
                await self._batcher.aclose()
        finally:
            if self.cache is not None:
                self.cache.close()

    def batch_counts(self) -> dict[str, int] | None:
        """Batch jobs submitted, in progress and done so far; None when no call went as a batch."""
        return dict(self._batcher.counts) if self._batcher is not None else None

    def _cached(self, settings: ModelSettings, messages: list[dict[str, str]], variant: str, key: str) -> Cached | None:
        assert self.cache is not None
        hit, under_old_key = self.cache.find(key, lambda: settings.legacy_cache_key(messages, variant))
        if hit is not None and under_old_key:
            self.cache.put(key, hit)  # cached before the key left out the server: kept under today's key too
        return hit

    async def _call_with_retries(
        self, settings: ModelSettings, messages: list[dict[str, str]], usage: Usage, priority: int
    ) -> tuple[Any, float, str]:
        """The call on the best server, the seconds its answered attempt took (waits not counted) and the
        server that answered;
        a failure is retried at once on another server when one is in rotation, after a backoff on
        the same one otherwise, and waits while the model has none left (:class:`JudgeOutage` after
        ``outage_timeout``). However many servers it took, one call."""
        pool = self._pool(settings)
        tokens = 0
        if pool.wants_tokens():
            tokens = prompt_tokens(self._litellm, settings.model, messages) + pool.expected_output(settings.max_tokens)
        failures, avoid = 0, None
        while True:
            try:
                return await self._attempt(settings, messages, pool, priority, avoid, tokens)
            except _Failed as failed:
                failures += 1
                # With no server left in rotation the failure is the servers', not the record's: the
                # call waits for one to come back (or for the outage to stop the run) at no retry's cost.
                if failures > settings.max_retries and not pool.in_outage():
                    raise JudgeCallError(
                        f"{settings.model}: {failed.error} after {failures} attempt(s) (last at {failed.server.label})"
                    ) from None
                usage.retries += 1
                avoid = failed.server
                if not pool.in_outage() and not pool.has_other(failed.server):
                    await asyncio.sleep(_wait(failed.exc, min(failures - 1, 10)))

    async def _attempt(
        self,
        settings: ModelSettings,
        messages: list[dict[str, str]],
        pool: ServerPool,
        priority: int,
        avoid: Server | None,
        tokens: int,
    ) -> tuple[Any, float, str]:
        """One request on one server, holding a call slot: its response, seconds and server;
        :class:`_Failed` when it may be retried."""
        await self._slots.acquire(priority)
        try:
            spent = self.budget_spent()  # checked with the slot: others may have spent while we waited
            if spent:
                raise BudgetStop(spent)
            server = await pool.acquire(avoid)
            outcome: Outcome = "unused"
            error, started, used, admitted = "", 0.0, 0, False
            try:
                await pool.admit(server, tokens)
                admitted, started = True, time.monotonic()
                response = await self._request(settings, messages, server)
                prompt, completion = _tokens(response)
                outcome, used = "answered", prompt + completion
                pool.note_output(completion)
                return response, time.monotonic() - started, server.label
            except _Failed as failed:
                outcome, error = failed.outcome, failed.error
                raise
            except _Refused as refused:
                outcome, error = "alive", str(refused.error)
                raise refused.error from None
            finally:
                if admitted:
                    pool.settle(server, used - tokens)  # a failed call gives its tokens back
                pool.done(server, outcome, time.monotonic() - started, error)
        finally:
            self._slots.release()

    async def _request(self, settings: ModelSettings, messages: list[dict[str, str]], server: Server) -> Any:
        """The LiteLLM call on ``server``; failures come out as :class:`_Failed` (retryable) or :class:`_Refused`."""
        litellm = self._litellm
        self.in_flight += 1
        try:
            return await litellm.acompletion(
                model=settings.model,
                messages=messages,
                api_base=server.api_base,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                timeout=settings.timeout,
                max_retries=0,
                **{**self._prices_for_litellm(settings), **settings.extra},
            )
        except (litellm.AuthenticationError, litellm.NotFoundError, litellm.PermissionDeniedError) as exc:
            raise _Refused(
                JudgeSetupError(
                    f"{settings.model}: {type(exc).__name__}: {_short(exc)}. Check the model name, "
                    "api_base and the API key in the environment"
                )
            ) from None
        except litellm.BadRequestError as exc:
            raise _Refused(JudgeCallError(f"{settings.model}: the request was refused: {_short(exc)}")) from None
        except litellm.RateLimitError as exc:
            raise _Failed(exc, server, "rate_limited") from None
        except (
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.APIConnectionError,
            litellm.Timeout,
            litellm.BadGatewayError,
        ) as exc:
            raise _Failed(exc, server, _failure(exc)) from None
        except litellm.APIError as exc:  # any other 5xx LiteLLM has no class for
            if (getattr(exc, "status_code", 0) or 0) >= 500:
                raise _Failed(exc, server, _failure(exc)) from None
            raise
        finally:
            self.in_flight -= 1

    def _prices_for_litellm(self, settings: ModelSettings) -> dict[str, float]:
        """Per-token prices passed with each call of a model LiteLLM cannot price (the pipeline's
        ``prices``, or 0 once its first call found it missing from LiteLLM's price list): LiteLLM prices
        every answer as it arrives, and without them it searches its price list again for each one
        (about 0.7 ms of CPU a call, docs/benchmarks.md). A model LiteLLM knows gets none."""
        if settings.prices is not None:
            return {
                "input_cost_per_token": settings.prices.input_per_million / 1e6,
                "output_cost_per_token": settings.prices.output_per_million / 1e6,
            }
        if settings.model in self._unpriced:
            return {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
        return {}

    def _cost(self, settings: ModelSettings, response: Any, prompt_tokens: int, completion_tokens: int) -> float:
        if settings.prices is not None:
            return (
                prompt_tokens * settings.prices.input_per_million
                + completion_tokens * settings.prices.output_per_million
            ) / 1e6
        if settings.model in self._unpriced:
            return 0.0
        priced = _priced_by_litellm(response)
        if priced is not None:
            return priced  # LiteLLM priced the answer as it arrived: not worked out a second time
        try:
            return float(self._litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # any model missing from LiteLLM's price list: cost 0 and a note, never a crash
            self._unpriced.add(settings.model)  # asked once: the failed look-up costs CPU on every call
            self.notes.add(
                f"{settings.model} is not in LiteLLM's price list: its cost counts as 0; "
                "set prices = {input_per_million = ..., output_per_million = ...} in its table"
            )
            return 0.0


class _Failed(Exception):
    """A request that may be retried, on another server or after a backoff."""

    def __init__(self, exc: Exception, server: Server, outcome: Outcome):
        self.exc, self.server, self.outcome = exc, server, outcome
        self.error = f"{type(exc).__name__}: {_short(exc)}"


class _Refused(Exception):
    """A refusal that no retry changes (bad key, bad request): ``error`` is raised; the server is up."""

    def __init__(self, error: RefineError):
        self.error = error


def _failure(exc: Exception) -> Outcome:
    """A 5xx the server sent ("failing"), or no response at all ("down"): LiteLLM reports a refused
    connection as an InternalServerError too, but only a response brings headers."""
    return "failing" if getattr(exc, "litellm_response_headers", None) is not None else "down"


def _priced_by_litellm(response: Any) -> float | None:
    """The cost LiteLLM worked out for a response when it arrived (what ``completion_cost`` would
    say again), or None when it could not price it."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else getattr(hidden, "response_cost", None)
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None


def _tokens(response: Any) -> tuple[int, int]:
    """(prompt, completion) tokens of a response's usage."""
    usage = getattr(response, "usage", None)
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


def _wait(exc: Exception, attempt: int) -> float:
    """Seconds before the next attempt: the server's Retry-After when it sent one, else backoff with jitter."""
    headers = getattr(exc, "litellm_response_headers", None) or {}
    value = headers.get("retry-after")
    try:
        retry_after = float(value) if value else None
    except (TypeError, ValueError):
        retry_after = None
    if retry_after is not None:
        return min(max(retry_after, 0.0), 300.0)
    return min(BACKOFF_BASE * 2**attempt, BACKOFF_MAX) * (0.5 + random.random() / 2)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "..."
