"""The servers of one model: which one takes the next call, which are out of rotation, outages, per-server stats.

Written by hand: LiteLLM's Router balances over deployments, but it rejects a call when every
deployment is busy or cooling down instead of making it wait, retries without honouring
Retry-After, and has no notion of an outage that should stop a run cleanly; here a call waits
for a free slot, a server that keeps failing rests and is probed back by a real call, and a
model whose servers all fail for ``outage_timeout`` raises :class:`JudgeOutage`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from funreason_refine.errors import JudgeOutage
from funreason_refine.judge.ratelimit import RateLimits
from funreason_refine.judge.settings import Endpoint, ModelSettings

STRIKES_TO_REST = 3
"""Failed calls in a row (no answer between) that take a server out of rotation: one failure may
be the request's own (a prompt that times out), three in a row with nothing answered are the server."""
ANSWERED_RECENTLY = 10.0
"""Seconds after its last answer during which a server's 5xx is held against the request, not the
server: a server that answers some prompts and fails others (all records at one stage) is up."""
REST_FIRST = 1.0  # seconds out of rotation before the first probe; doubles while the probes fail
REST_MAX = 30.0
PROVIDER_DEFAULT = "(provider default)"

Outcome = Literal["answered", "alive", "rate_limited", "failing", "slow", "down", "unused"]
"""How a call on a server ended: an answer; a refusal that shows the server up (400, auth); a 429;
a 5xx response (or a body that is not an answer); no answer in time from a server that took the request;
no response at all (connection refused or dropped, no connection in time); no request made."""
FAILED = ("failing", "slow", "down")
"""Outcomes that count against a server (strikes, rest, outage)."""


@dataclass
class Server:
    """One server of a model, its place in the rotation and what it did."""

    api_base: str | None
    max_concurrency: int | None = None
    weight: float = 1.0
    limits: RateLimits | None = None
    in_flight: int = 0
    calls: int = 0
    errors: int = 0
    rate_limited: int = 0
    strikes: int = 0
    answered_at: float = float("-inf")
    resting_until: float | None = None  # monotonic time of the next probe; None while in rotation
    probing: bool = False
    rest: float = REST_FIRST
    last_failure: Outcome | None = None  # how its last failed call ended (an outage's message tells them apart)
    rested_since: float = 0.0
    rested_seconds: float = 0.0
    times_rested: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))

    @classmethod
    def of(cls, endpoint: Endpoint | None) -> Server:
        if endpoint is None:
            return cls(api_base=None)
        return cls(
            api_base=endpoint.api_base,
            max_concurrency=endpoint.max_concurrency,
            weight=endpoint.weight,
            limits=RateLimits.of(endpoint.max_requests_per_minute, endpoint.max_tokens_per_minute),
        )

    @property
    def label(self) -> str:
        return self.api_base or PROVIDER_DEFAULT

    def stats(self, now: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        resting = now - self.rested_since if self.resting_until is not None else 0.0
        return {
            "api_base": self.label,
            "calls": self.calls,
            "errors": self.errors,
            "rate_limited": self.rate_limited,
            "latency_p50_s": _quantile(ordered, 0.50),
            "latency_p95_s": _quantile(ordered, 0.95),
            "out_of_rotation_s": round(self.rested_seconds + resting, 3),
            "times_out_of_rotation": self.times_rested,
            "in_rotation": self.resting_until is None,
        }


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    if len(ordered) == 1:
        return round(ordered[0], 4)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return round(cuts[round(q * 100) - 1], 4)


class ServerPool:
    """The servers of one model (as one settings table names them), shared by every call to it."""

    def __init__(self, settings: ModelSettings, default_capacity: int):
        self.model = settings.model
        self.servers = [Server.of(e) for e in settings.endpoint_list()]
        self.limits = RateLimits.of(settings.max_requests_per_minute, settings.max_tokens_per_minute)
        self.outage_timeout = settings.outage_timeout
        # Unbounded servers are scored as if they had the client's slots, so that they share calls evenly.
        self._default_capacity = default_capacity
        self._rest_max = min(REST_MAX, settings.outage_timeout / 5)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._down_since: float | None = None
        self.outage: JudgeOutage | None = None
        self.last_error = ""
        self.completion_tokens = 0
        self.answers = 0

    def in_outage(self) -> bool:
        """True while no server is in rotation."""
        return all(s.resting_until is not None for s in self.servers)

    def has_other(self, server: Server | None) -> bool:
        """True when a call that failed on ``server`` can go to another server in rotation."""
        return any(s is not server and s.resting_until is None for s in self.servers)

    def _score(self, server: Server) -> float:
        free = (server.max_concurrency or self._default_capacity) - server.in_flight
        return free * server.weight

    def _pick(self, now: float, avoid: Server | None) -> Server | None:
        """A server due for its probe first (so that a recovered one comes back), else the one with the
        most free slots times its weight, preferring any other server to the one the call just failed on."""
        for server in self.servers:
            if server.resting_until is not None and not server.probing and now >= server.resting_until:
                server.probing = True
                return server
        ready = [
            s
            for s in self.servers
            if s.resting_until is None and (s.max_concurrency is None or s.in_flight < s.max_concurrency)
        ]
        others = [s for s in ready if s is not avoid]
        return max(others or ready, key=self._score, default=None)

    async def acquire(self, avoid: Server | None = None) -> Server:
        """A server with a free slot for one call (waiting for one); :class:`JudgeOutage` when every
        server has been failing for ``outage_timeout``."""
        while True:
            if self.outage is not None:
                raise self.outage
            now = time.monotonic()
            self._check_outage(now)
            server = self._pick(now, avoid)
            if server is not None:
                server.in_flight += 1
                return server
            await self._wait(self._next_change(now))

    def _check_outage(self, now: float) -> None:
        if self._down_since is not None and now - self._down_since >= self.outage_timeout:
            self.outage = JudgeOutage(
                self.model,
                [s.label for s in self.servers],
                now - self._down_since,
                self.last_error or "no error seen",
                self._up(),
            )
            self._wake(everyone=True)
            raise self.outage

    def _up(self) -> str | None:
        """What the servers' last failures show of them: "slow" or "failing" when one took the calls, None when
        none could be reached."""
        seen = {s.last_failure for s in self.servers}
        return "slow" if "slow" in seen else "failing" if "failing" in seen else None

    def _next_change(self, now: float) -> float | None:
        """Seconds until a resting server is due for its probe or the outage deadline, whichever is first."""
        times = [s.resting_until for s in self.servers if s.resting_until is not None and not s.probing]
        if self._down_since is not None:
            times.append(self._down_since + self.outage_timeout)
        return max(min(times) - now, 0.0) if times else None

    async def _wait(self, timeout: float | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            if not future.done():
                future.cancel()

    def _wake(self, everyone: bool = False) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                if not everyone:
                    return

    async def admit(self, server: Server, tokens: int) -> None:
        """Wait for the model's and the server's rate limits (``tokens``: the call's estimate)."""
        for limits in (self.limits, server.limits):
            if limits is not None:
                await limits.acquire(tokens)

    def settle(self, server: Server, extra_tokens: int) -> None:
        for limits in (self.limits, server.limits):
            if limits is not None:
                limits.settle(extra_tokens)

    def wants_tokens(self) -> bool:
        """True when a token limit applies, so that the prompt is worth counting."""
        return any(
            limits is not None and limits.tokens is not None
            for limits in [self.limits, *(s.limits for s in self.servers)]
        )

    def note_output(self, completion_tokens: int) -> None:
        self.completion_tokens += completion_tokens
        self.answers += 1

    def expected_output(self, max_tokens: int | None) -> int:
        """Output tokens to reserve before a call: max_tokens, else the mean answer so far."""
        return max_tokens if max_tokens is not None else self.completion_tokens // max(self.answers, 1)

    def done(self, server: Server, outcome: Outcome, seconds: float = 0.0, error: str = "") -> None:
        """Record how a call acquired on ``server`` ended; every :meth:`acquire` ends in one call of this."""
        server.in_flight -= 1
        if outcome == "unused":
            server.probing = False
            self._wake()
            return
        server.calls += 1
        if outcome == "answered":
            server.latencies.append(seconds)
            server.answered_at = time.monotonic()
        else:
            server.errors += 1
            self.last_error = error
        if outcome in FAILED:
            server.last_failure = outcome
            self._failed(server, outcome)
        else:
            server.rate_limited += outcome == "rate_limited"
            self._alive(server)

    def _alive(self, server: Server) -> None:
        """An answer (or a refusal) shows the server up: a resting one comes back into rotation."""
        server.strikes = 0
        if server.resting_until is not None:
            server.rested_seconds += time.monotonic() - server.rested_since
            server.resting_until, server.probing, server.rest = None, False, REST_FIRST
            self._down_since = None
            self._wake(everyone=True)
        else:
            self._wake()

    def _failed(self, server: Server, outcome: Outcome) -> None:
        now = time.monotonic()
        if outcome != "down" and server.resting_until is None and now - server.answered_at < ANSWERED_RECENTLY:
            self._wake()
            return
        server.strikes += 1
        if server.probing:
            server.probing = False
            server.rest = min(server.rest * 2, self._rest_max)
            server.resting_until = now + server.rest
        elif server.resting_until is None and server.strikes >= STRIKES_TO_REST:
            server.rest = min(REST_FIRST, self._rest_max)
            server.resting_until = now + server.rest
            server.rested_since = now
            server.times_rested += 1
        if self._down_since is None and self.in_outage():
            self._down_since = now
        self._wake(everyone=True)

    def stats(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [{"model": self.model, **s.stats(now)} for s in self.servers]
