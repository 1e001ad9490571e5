"""What the answers are like, measured: a few real calls per stage (paid, kept in the run's answer cache),
or the answers the cache holds already."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from funreason_refine.estimate.dry import Call
from funreason_refine.estimate.figures import Answers, Key, key_of
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


def first_calls(calls: list[Call], per_key: int) -> list[Call]:
    """The first ``per_key`` distinct calls of each stage, model and kind (judge or generator)."""
    chosen: dict[Key, dict[str, Call]] = defaultdict(dict)
    for call in calls:
        distinct = chosen[key_of(call)]
        if len(distinct) < per_key:
            distinct.setdefault(call.settings.cache_key(call.messages, call.variant), call)
    return [call for distinct in chosen.values() for call in distinct.values()]


async def probe(calls: list[Call], run_dir: Path, concurrency: int) -> None:
    """Make ``calls`` for real, into the run folder's answer cache (those cached already cost nothing)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    client = LLMClient(max_concurrency=concurrency, cache=AnswerCache(run_dir))
    try:
        await asyncio.gather(*(client.complete(c.settings, c.messages, c.stage, variant=c.variant) for c in calls))
    finally:
        await client.aclose()


def measured(calls: list[Call], cache: AnswerCache | None, count: object) -> dict[Key, Answers]:
    """Per kind of call, the mean output tokens and seconds of the cached answers among ``calls``, and the
    prompt tokens the model reported over those counted."""
    found: dict[Key, list[tuple[Cached, Call]]] = defaultdict(list)
    for call in calls:
        hit = cached_answer(cache, call)
        if hit is not None and hit.completion_tokens is not None:
            found[key_of(call)].append((hit, call))
    out = {}
    for key, hits in found.items():
        reported = sum(h.prompt_tokens or 0 for h, _ in hits)
        counted = sum(count(c.settings.model, c.messages) for _, c in hits)  # type: ignore[operator]
        out[key] = Answers(
            output_tokens=sum(h.completion_tokens for h, _ in hits) / len(hits),
            seconds=sum(h.seconds for h, _ in hits) / len(hits),
            prompt_ratio=reported / counted if reported and counted else 1.0,
        )
    return out
