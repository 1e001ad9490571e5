"""The client's call slots: a bound on the calls in flight that serves the oldest records first."""

from __future__ import annotations

import asyncio
import heapq


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
