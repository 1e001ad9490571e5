"""Probes: a few real calls per stage (paid, kept in the run's answer cache) that measure what the answers are
like; and the cache's answer to a call (sums.py measures the answers it holds)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from funreason_refine.estimate.dry import Call
from funreason_refine.estimate.figures import Key, key_of
from funreason_refine.judge.cache import FILE, AnswerCache, Cached
from funreason_refine.judge.client import LLMClient


def open_cache(run_dir: Path) -> AnswerCache | None:
    """The run folder's answer cache, when there is one (an estimate never makes a run folder by itself)."""
    return AnswerCache(run_dir) if (run_dir / FILE).exists() else None


def cached_answer(cache: AnswerCache | None, call: Call) -> Cached | None:
    """The cache's answer to ``call``, looked up as a run looks it up (also under its key of old)."""
    if cache is None:
        return None
    key = call.settings.cache_key(call.messages, call.variant)
    hit, _ = cache.find(key, lambda: call.settings.legacy_cache_key(call.messages, call.variant))
    return hit


class FirstCalls:
    """The first ``per_key`` distinct calls of each stage, model and kind (judge or generator), gathered record
    by record."""

    def __init__(self, per_key: int):
        self.per_key = per_key
        self._chosen: dict[Key, dict[str, Call]] = defaultdict(dict)

    def add(self, calls: list[Call]) -> None:
        for call in calls:
            distinct = self._chosen[key_of(call)]
            if len(distinct) < self.per_key:
                distinct.setdefault(call.settings.cache_key(call.messages, call.variant), call)

    def calls(self) -> list[Call]:
        return [call for distinct in self._chosen.values() for call in distinct.values()]


async def probe(calls: list[Call], run_dir: Path, concurrency: int) -> None:
    """Make ``calls`` for real, into the run folder's answer cache (those cached already cost nothing)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    client = LLMClient(max_concurrency=concurrency, cache=AnswerCache(run_dir))
    try:
        await asyncio.gather(*(client.complete(c.settings, c.messages, c.stage, variant=c.variant) for c in calls))
    finally:
        await client.aclose()
