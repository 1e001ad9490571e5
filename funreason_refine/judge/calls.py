"""One call to a model, made good: a call slot, a server of the model, its rate limits, the request, retries.

LiteLLM's own retries are unreliable (skipped for some providers, no backoff on 5xx, Retry-After
ignored), so every call passes ``max_retries=0`` and this module retries; its Router rejects instead
of queueing, so a semaphore bounds the calls in flight and :mod:`funreason_refine.judge.endpoints`
spreads them over a model's servers. Whatever a server answers, a call ends in a
:class:`~funreason_refine.judge.reply.Reply` or one of the errors of :mod:`funreason_refine.judge.failures`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

from funreason_refine.judge.endpoints import Outcome, Server, ServerPool
from funreason_refine.judge.failures import BudgetStop, Failure, JudgeCallError, JudgeSetupError, classify, timed_out
from funreason_refine.judge.limits import CONTEXT_WINDOW, overflow_message
from funreason_refine.judge.reply import Reply, read_reply
from funreason_refine.judge.settings import JudgeModel, ModelSettings
from funreason_refine.judge.slots import OldestFirst
from funreason_refine.judge.structured import refusal, speaks_of_the_form
from funreason_refine.judge.tokens import prompt_tokens

BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
POOL_KEYS = {"model", "api_base", "endpoints", "max_requests_per_minute", "max_tokens_per_minute"}

Send = Callable[[str | None, float], Awaitable[Reply]]
"""A request other than LiteLLM's chat completion (a scorer's vLLM /classify): given the server's api_base
and when the request started, the reply; what goes wrong comes out as a Failure."""


class Caller:
    """The calls of one client: ``max_concurrency`` slots, one pool of servers per model (as a settings table
    names them) with their rate limits and outage watch. ``spent`` says why no call may start (max_cost);
    ``params`` gives the extra LiteLLM parameters of a model's calls (its prices); ``on_change`` hears each
    request start and end (the progress display shows the calls in flight from the first one on)."""

    def __init__(
        self,
        litellm: Any,
        max_concurrency: int,
        spent: Callable[[], str | None],
        params: Callable[[ModelSettings], dict[str, float]],
        on_change: Callable[[], None] | None = None,
    ):
        self.max_concurrency = max_concurrency
        self.in_flight = 0
        self._on_change = on_change
        self._litellm = litellm
        self._spent = spent
        self._params = params
        self._slots = OldestFirst(max_concurrency)
        self._pools: dict[str, ServerPool] = {}
        self._pool_of: dict[int, tuple[ModelSettings, ServerPool]] = {}
        self._took_form: set[int] = set()  # the pools (by id) that answered a call asking for a JSON verdict

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
        key = settings.model_dump_json(include=POOL_KEYS)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = ServerPool(settings, self.max_concurrency)
        self._pool_of[id(settings)] = (settings, pool)  # the settings are kept, so that their id is not reused
        return pool

    async def call(
        self,
        settings: ModelSettings,
        messages: list[dict[str, Any]],
        priority: int,
        on_retry: Callable[[], None],
        send: Send | None = None,
        on_paid: Callable[[Reply], None] | None = None,
    ) -> Reply:
        """The answer from the best server; ``priority`` (the record's index) orders the wait for a slot;
        ``on_paid`` hears of each attempt a server answered, and said what it cost, without an answer in it.

        A failure is retried at once on another server when one is in rotation, after a backoff on the
        same one otherwise, and waits while the model has none left (JudgeOutage after ``outage_timeout``).
        However many servers it took, one call; each retry calls ``on_retry``. ``send`` makes the request
        instead of LiteLLM's chat completion (``messages`` then only count its tokens)."""
        pool = self._pool(settings)
        tokens = 0
        if pool.wants_tokens():
            tokens = prompt_tokens(self._litellm, settings.model, messages) + pool.expected_output(settings.max_tokens)
        failures, avoid = 0, None
        while True:
            try:
                reply = await self._attempt(settings, messages, pool, priority, avoid, tokens, send)
            except Failure as failed:
                failures += 1
                if failed.paid is not None and on_paid is not None:
                    on_paid(failed.paid)
                self._form_refused(settings, failed, pool)
                _give_up_on(settings, failed, failures, pool)
                on_retry()
                avoid = failed.server
                if not pool.in_outage() and not pool.has_other(failed.server):
                    await asyncio.sleep(_backoff(failed, min(failures - 1, 10)))
            else:
                if _structured(settings):
                    self._took_form.add(id(pool))
                return reply

    def _form_refused(self, settings: ModelSettings, failed: Failure, pool: ServerPool) -> None:
        """Stop the run when a server answered a call asking for a JSON verdict with HTTP 400 or 422, or with a
        5xx that speaks of the structured output asked for (llama-cpp-python's 500 names ``response_format``),
        before any such call of the pool got an answer: it does not take structured output in the form asked
        for (no retry, and no record, can change that). Any other 5xx is retried as for any call."""
        if not _structured(settings) or id(pool) in self._took_form:
            return
        if failed.status in (400, 422) or ((failed.status or 0) >= 500 and speaks_of_the_form(failed.server_said)):
            where = failed.server.api_base if failed.server is not None and failed.server.api_base else None
            raise JudgeSetupError(refusal(settings.model, where or "the provider's API", settings.form, failed.message))

    async def _attempt(
        self,
        settings: ModelSettings,
        messages: list[dict[str, str]],
        pool: ServerPool,
        priority: int,
        avoid: Server | None,
        tokens: int,
        send: Send | None,
    ) -> Reply:
        """One request on one server, holding a call slot."""
        await self._slots.acquire(priority)
        try:
            spent = self._spent()  # checked with the slot: others may have spent while we waited
            if spent:
                raise BudgetStop(spent)
            server = await pool.acquire(avoid)
            return await self._on(server, settings, messages, pool, tokens, send)
        finally:
            self._slots.release()

    async def _on(
        self,
        server: Server,
        settings: ModelSettings,
        messages: list[dict[str, Any]],
        pool: ServerPool,
        tokens: int,
        send: Send | None,
    ) -> Reply:
        """The request on ``server``, within its rate limits; the pool hears how it ended."""
        outcome: Outcome = "unused"
        error, started, used, admitted = "", 0.0, 0, False
        try:
            await pool.admit(server, tokens)
            admitted, started = True, time.monotonic()
            reply = await self._request(settings, messages, server, started, send)
            outcome, used = "answered", reply.prompt_tokens + reply.completion_tokens
            pool.note_output(reply.completion_tokens)
            return reply
        except Failure as failed:
            failed.server = server
            outcome, error = failed.outcome, failed.message
            raise
        finally:
            if admitted:
                pool.settle(server, used - tokens)  # a failed call gives its tokens back
            pool.done(server, outcome, time.monotonic() - started, error)

    async def _request(
        self, settings: ModelSettings, messages: list[dict[str, Any]], server: Server, started: float, send: Send | None
    ) -> Reply:
        """The LiteLLM call (or ``send``) on ``server``; whatever goes wrong comes out as a :class:`Failure`."""
        where = server.api_base or "the provider's API"
        self._in_flight(+1)
        try:
            if send is not None:
                return await send(server.api_base, started)
            if settings.first_token_timeout is not None and settings.streamable:
                response, waited, reported = await self._streamed(settings, messages, server.api_base, where)
            else:
                response, waited, reported = await self._completion(settings, messages, server.api_base), 0.0, True
        except Failure:
            raise
        except Exception as exc:  # any status, any body: a failure with its cause in words, never a traceback
            raise self._failure(exc, settings, messages, where) from None
        finally:
            self._in_flight(-1)
        seconds = time.monotonic() - started
        return read_reply(self._litellm, response, settings.model, messages, where, seconds, waited, reported)

    def _in_flight(self, change: int) -> None:
        self.in_flight += change
        if self._on_change is not None:
            self._on_change()

    async def _completion(
        self, settings: ModelSettings, messages: list[dict[str, str]], api_base: str | None, **streamed: Any
    ) -> Any:
        return await self._litellm.acompletion(
            model=settings.model,
            messages=messages,
            api_base=api_base,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            timeout=streamed.pop("timeout", settings.timeout),
            max_retries=0,
            **{**self._params(settings), **settings.call_params(), **streamed},
        )

    async def _streamed(
        self, settings: ModelSettings, messages: list[dict[str, str]], api_base: str | None, where: str
    ) -> tuple[Any, float, bool]:
        """The answer streamed: (the response built from its chunks, seconds to its first chunk, whether the
        server reported usage). The first chunk must come within ``first_token_timeout`` (the server's queue,
        its reading of the prompt), the rest within ``timeout`` after it."""
        assert settings.first_token_timeout is not None
        started, waited, stream = time.monotonic(), 0.0, None
        chunks: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = asyncio.timeout(settings.first_token_timeout)
        try:
            async with deadline:
                stream = await self._completion(
                    settings, messages, api_base, stream=True, stream_options={"include_usage": True},
                    timeout=settings.first_token_timeout + settings.timeout,
                )  # fmt: skip
                async for chunk in stream:
                    if not chunks:  # the server started answering: from here on, ``timeout`` counts
                        waited = time.monotonic() - started
                        deadline.reschedule(loop.time() + settings.timeout)
                    chunks.append(chunk)
        except TimeoutError:
            if not deadline.expired():
                raise
            what = "timeout" if chunks else "first_token_timeout"
            raise timed_out(where, settings.timeout if chunks else settings.first_token_timeout, True, what) from None
        finally:
            if stream is not None:
                await _close(stream)
        return self._litellm.stream_chunk_builder(chunks, messages=messages), waited, _usage_reported(stream, chunks)

    def _failure(self, exc: Exception, settings: ModelSettings, messages: list[dict[str, str]], where: str) -> Failure:
        failure = classify(exc, self._litellm, where, settings.timeout)
        if failure.reason == CONTEXT_WINDOW:  # said with the prompt's tokens and the model's window
            failure.message = overflow_message(self._litellm, settings, messages, failure.message)
        return failure


def _usage_reported(stream: Any, chunks: list[Any]) -> bool:
    """Whether the server reported a streamed answer's usage. LiteLLM hands over usage on the last chunk
    either way, computed by itself (its token counter) when the server sent none; the chunks it read from the
    server (the stream's ``chunks``, where it keeps the server's usage chunk it strips from what it hands over)
    tell the two apart. Without them (another LiteLLM), the chunks before the last one, which LiteLLM builds."""
    read = getattr(stream, "chunks", None)
    seen = read if isinstance(read, list) else chunks[:-1]
    return any(getattr(chunk, "usage", None) for chunk in seen)


async def _close(stream: Any) -> None:
    """Close a stream left early (a timeout), so that its connection goes back to the pool."""
    try:
        await stream.aclose()
    except Exception:  # closing what already broke must not hide why it broke
        pass


def _structured(settings: ModelSettings) -> TypeGuard[JudgeModel]:
    return isinstance(settings, JudgeModel) and settings.structured


def _give_up_on(settings: ModelSettings, failed: Failure, failures: int, pool: ServerPool) -> None:
    """Raise the error that ends the call, unless ``failed`` is to be tried again."""
    if failed.action == "setup":
        raise JudgeSetupError(f"{settings.model}: {failed.message}") from None
    if failed.action == "record":
        raise JudgeCallError(f"{settings.model}: {failed.message}", failed.reason) from None
    # With no server left in rotation the failure is the servers', not the record's: the call waits
    # for one to come back (or for the outage to stop the run) at no retry's cost.
    if failures > settings.max_retries and not pool.in_outage():
        raise JudgeCallError(f"{settings.model}: {failed.message}, after {failures} attempt(s)") from None


def _backoff(failed: Failure, attempt: int) -> float:
    """Seconds before the next attempt: the server's Retry-After when it sent one, else backoff with jitter."""
    if failed.retry_after is not None:
        return failed.retry_after
    return min(BACKOFF_BASE * 2**attempt, BACKOFF_MAX) * (0.5 + random.random() / 2)
