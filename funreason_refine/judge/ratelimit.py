"""Request and token rate limits of a model or a server: token buckets that calls wait on, settled after each call."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

BURST_SECONDS = 0.1
"""A bucket holds a tenth of a second's worth, so calls leave evenly spaced at the rate: a server
metering per second, per minute or with its own bucket then sees at most its rate even though the
time from our admission to its arrival varies (LiteLLM's first call to a server takes a second to
set up; a fuller bucket let the calls admitted meanwhile arrive together with the next ones)."""
MAX_WAIT_STEP = 0.25  # seconds; a waiter looks again this often, so a refund settled meanwhile is used


class TokenBucket:
    """``per_minute`` units a minute, refilled continuously; calls wait for capacity in arrival order.

    Written by hand: aiolimiter (the well-kept asyncio leaky bucket) can neither charge nor refund
    after a call, which the token limit needs (tokens are estimated before a call and known from its
    ``usage`` only after it), and LiteLLM's Router answers a call over its rpm/tpm with a 429
    ("No deployments available") instead of waiting for capacity.
    """

    def __init__(self, per_minute: float, burst_seconds: float = BURST_SECONDS) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self.capacity = max(self._rate * burst_seconds, 1.0)
        self._level = self.capacity
        self._stamp = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn = asyncio.Lock()  # asyncio's Lock wakes its waiters first come, first served

    def _lock(self) -> asyncio.Lock:
        # A Lock belongs to the loop it first waited in; a client may serve several asyncio.run() calls.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._turn = loop, asyncio.Lock()
        return self._turn

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self._rate)
        self._stamp = now

    async def acquire(self, amount: float) -> None:
        """Take ``amount`` units, waiting until the bucket holds them.

        An amount larger than the bucket waits for a full bucket and leaves it in debt, so that a
        call bigger than one second's budget still goes, and the rate over a minute holds.
        """
        need = min(amount, self.capacity)
        async with self._lock():
            self._refill()
            while self._level < need:
                await asyncio.sleep(min((need - self._level) / self._rate, MAX_WAIT_STEP))
                self._refill()
            self._level -= amount

    def settle(self, extra: float) -> None:
        """Charge ``extra`` more units after the fact (a negative amount gives units back)."""
        self._refill()
        self._level = min(self.capacity, self._level - extra)


@dataclass
class RateLimits:
    """The request and token buckets of one model or one server (either may be absent)."""

    requests: TokenBucket | None
    tokens: TokenBucket | None

    @classmethod
    def of(cls, requests_per_minute: int | None, tokens_per_minute: int | None) -> RateLimits | None:
        if requests_per_minute is None and tokens_per_minute is None:
            return None
        return cls(
            TokenBucket(requests_per_minute) if requests_per_minute else None,
            TokenBucket(tokens_per_minute) if tokens_per_minute else None,
        )

    async def acquire(self, tokens: int) -> None:
        if self.requests is not None:
            await self.requests.acquire(1)
        if self.tokens is not None:
            await self.tokens.acquire(tokens)

    def settle(self, extra_tokens: int) -> None:
        if self.tokens is not None:
            self.tokens.settle(extra_tokens)
