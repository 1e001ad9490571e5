"""Calls to LiteLLM with our own retries, concurrency bound, answer cache and cost accounting.

LiteLLM's own retries are unreliable (skipped for some providers, no backoff on 5xx,
Retry-After ignored), so every call passes ``max_retries=0`` and this module retries; its
Router rejects instead of queueing, so a semaphore bounds the calls in flight; its cache
ignores ``api_base``, so answers are cached here, in the run folder.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from funreason_refine.errors import RefineError
from funreason_refine.judge.cache import AnswerCache, Cached
from funreason_refine.judge.settings import ModelSettings

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
    ``seconds`` sums the time each call took, not the wall time of the run.
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
    """Shared by every stage of a run: one concurrency bound, one cache, usage per stage."""

    max_concurrency: int
    cache: AnswerCache | None = None
    max_cost: float | None = None
    usage: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))
    notes: set[str] = field(default_factory=set)
    in_flight: int = 0
    _unpriced: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._slots = OldestFirst(self.max_concurrency)
        self._litellm = _litellm()

    def budget_spent(self) -> str | None:
        """Why no new call may be made (max_cost reached), or None."""
        # A billionth of a dollar of slack: twenty calls of $0.01 add up to 0.19999999999999998.
        if self.max_cost is not None and self.total.cost_usd >= self.max_cost - 1e-9:
            return f"max_cost of ${self.max_cost:g} reached (${self.total.cost_usd:.4f} spent)"
        return None

    @property
    def total(self) -> Usage:
        total = Usage()
        for u in self.usage.values():
            total.add(u)
        return total

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
            hit = self.cache.get(key)
            if hit is not None:
                usage.cached += 1
                usage.cached_prompt_tokens += hit.prompt_tokens or 0
                usage.cached_completion_tokens += hit.completion_tokens or 0
                usage.cached_cost_usd += hit.cost or 0.0
                usage.cached_seconds += hit.seconds
                return Answer(hit.text, cached=True)
        response, seconds = await self._call_with_retries(settings, messages, usage, priority)
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
        if self.cache is not None:
            self.cache.put(key, Cached(text, prompt_tokens, completion_tokens, cost, seconds))
        return Answer(text, cached=False)

    async def _call_with_retries(
        self, settings: ModelSettings, messages: list[dict[str, str]], usage: Usage, priority: int
    ) -> tuple[Any, float]:
        """The response, and the seconds its successful attempt took (waits for a slot not counted)."""
        litellm = self._litellm
        retryable = (
            litellm.RateLimitError,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.APIConnectionError,
            litellm.Timeout,
            litellm.BadGatewayError,
        )
        fatal = (litellm.AuthenticationError, litellm.NotFoundError, litellm.PermissionDeniedError)
        for attempt in range(settings.max_retries + 1):
            try:
                await self._slots.acquire(priority)
                spent = self.budget_spent()  # checked with the slot: others may have spent while we waited
                if spent:
                    self._slots.release()
                    raise BudgetStop(spent)
                self.in_flight += 1
                started = time.perf_counter()
                try:
                    response = await litellm.acompletion(
                        model=settings.model,
                        messages=messages,
                        api_base=settings.api_base,
                        temperature=settings.temperature,
                        max_tokens=settings.max_tokens,
                        timeout=settings.timeout,
                        max_retries=0,
                        **settings.extra,
                    )
                    return response, time.perf_counter() - started
                finally:
                    self.in_flight -= 1
                    self._slots.release()
            except fatal as exc:
                raise JudgeSetupError(
                    f"{settings.model}: {type(exc).__name__}: {_short(exc)}. Check the model name, "
                    "api_base and the API key in the environment"
                ) from None
            except retryable as exc:
                if attempt == settings.max_retries:
                    raise JudgeCallError(
                        f"{settings.model}: {type(exc).__name__} after {attempt + 1} attempt(s): {_short(exc)}"
                    ) from None
                usage.retries += 1
                await asyncio.sleep(_wait(exc, attempt))
            except litellm.BadRequestError as exc:
                raise JudgeCallError(f"{settings.model}: the request was refused: {_short(exc)}") from None
        raise AssertionError("unreachable")

    def _cost(self, settings: ModelSettings, response: Any, prompt_tokens: int, completion_tokens: int) -> float:
        if settings.prices is not None:
            return (
                prompt_tokens * settings.prices.input_per_million
                + completion_tokens * settings.prices.output_per_million
            ) / 1e6
        if settings.model in self._unpriced:
            return 0.0
        try:
            return float(self._litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # any model missing from LiteLLM's price list: cost 0 and a note, never a crash
            self._unpriced.add(settings.model)  # asked once: the failed look-up costs CPU on every call
            self.notes.add(
                f"{settings.model} is not in LiteLLM's price list: its cost counts as 0; "
                "set prices = {input_per_million = ..., output_per_million = ...} in its table"
            )
            return 0.0


def _wait(exc: Exception, attempt: int) -> float:
    """Seconds before the next attempt: the server's Retry-After when it sent one, else backoff with jitter."""
    headers = getattr(exc, "litellm_response_headers", None) or {}
    header = headers.get("retry-after")
    try:
        retry_after = float(header) if header else None
    except (TypeError, ValueError):
        retry_after = None
    if retry_after is not None:
        return min(max(retry_after, 0.0), 300.0)
    return min(BACKOFF_BASE * 2**attempt, BACKOFF_MAX) * (0.5 + random.random() / 2)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "..."
