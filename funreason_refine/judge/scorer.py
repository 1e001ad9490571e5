"""Ask a stage's scorer about a record: its score (cached, counted, retried like every model call), and the
verdict its cut makes of it: ``threshold`` (keep at or above), and with ``relative``, keep only records
near the best of their alternatives (:class:`Alternatives`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from funreason_refine.judge.score_calls import pooling_sender, read_yes_no, score_of
from funreason_refine.judge.score_input import score_input
from funreason_refine.judge.scorer_settings import BELOW_BEST, LOW_SCORE, RelativeCut, ScorerSettings
from funreason_refine.record import Action, Quarantined, Record, Verdict

if TYPE_CHECKING:
    from funreason_refine.judge.client import LLMClient


async def score_record(client: LLMClient, settings: ScorerSettings, stage: str, record: Record, priority: int) -> float:
    """The scorer's score of ``record`` (JudgeCallError when it cannot be had)."""
    shown = score_input(settings, record)
    messages = shown.as_messages()
    # The tools go to the chat template beside the messages: the cache tells apart the same chat with other tools.
    variant = "score" + (json.dumps(shown.tools, sort_keys=True, ensure_ascii=False) if shown.tools else "")
    if settings.kind == "yes_no":
        read = partial(read_yes_no, settings)
        answer = await client.complete(settings, messages, stage, priority=priority, variant=variant, read=read)
    else:
        send = pooling_sender(client, settings, shown)
        answer = await client.complete(settings, messages, stage, priority=priority, variant=variant, send=send)
    return score_of(answer.text)


def threshold_verdict(settings: ScorerSettings, score: float) -> Verdict:
    """Pass at or above the threshold (or with none), discard below it; the score goes into the trail."""
    threshold = settings.threshold
    if threshold is not None and score < threshold:
        said = f"score {score:.4g} is below the threshold {threshold:g}"
        return Verdict(Action.DISCARD, LOW_SCORE, said, score=score)
    said = f"score {score:.4g}" + (f" (threshold {threshold:g})" if threshold is not None else "")
    return Verdict(Action.PASS, None, said, score=score)


def relative_verdict(cut: RelativeCut, score: float, best: float, alternatives: int) -> Verdict:
    # A billionth of slack: 0.4 - 0.1 is 0.30000000000000004, and a score of 0.3 is within the margin.
    if score < best - cut.margin - 1e-9:
        near = f" minus margin {cut.margin:g}" if cut.margin else ""
        return Verdict(
            Action.DISCARD,
            BELOW_BEST,
            f"score {score:.4g} is below the best of its {alternatives} alternatives ({best:.4g}{near})",
            score=score,
        )
    return Verdict(Action.PASS, None, f"score {score:.4g}, the best of {alternatives} is {best:.4g}", score=score)


async def scored_verdict(
    client: LLMClient,
    settings: ScorerSettings,
    stage: str,
    record: Record,
    priority: int,
    alternatives: Alternatives | None,
) -> Verdict:
    """The scorer's verdict on a record the stage's rules passed."""
    score = await score_record(client, settings, stage, record, priority)
    verdict = threshold_verdict(settings, score)
    if settings.relative is None or alternatives is None:
        return verdict
    alternatives.arrive(stage, record.index, score)
    if verdict.action is not Action.PASS:
        return verdict
    best, count = await alternatives.best(stage, record.index, score)
    return relative_verdict(settings.relative, score, best, count)


@dataclass
class Group:
    """Records that are alternatives of one another: which reached each relative stage (with their scores),
    which left the run before; the scores of those finished in an earlier run on the folder."""

    members: set[int]
    earlier: dict[str, list[float]] = field(default_factory=dict)
    arrived: dict[str, dict[int, float]] = field(default_factory=dict)
    left: set[int] = field(default_factory=set)
    waiting: list[tuple[str, asyncio.Future[None]]] = field(default_factory=list)

    def ready(self, stage: str) -> bool:
        here = self.arrived.get(stage, {})
        return all(m in here or m in self.left for m in self.members)

    def scores(self, stage: str) -> list[float]:
        return [*self.arrived.get(stage, {}).values(), *self.earlier.get(stage, [])]

    def wake(self) -> None:
        still = []
        for stage, future in self.waiting:
            if self.ready(stage) and not future.done():
                future.set_result(None)
            elif not future.done():
                still.append((stage, future))
        self.waiting = still


class Alternatives:
    """The groups of a run whose stages cut relative to alternatives: consecutive records with the same
    ``meta[by]`` (self-refinement's samples of one query, ``query_id``).

    A group's records are refined together; at a relative stage a record waits until each of the
    others has reached it or left the run, and is compared with the best score among them. The
    result depends on the records alone, never on the order answers come in. ``earlier`` holds the
    scores of records finished in an earlier run on the folder (read back from their trails), so a
    resumed run compares with them as the first run did.
    """

    def __init__(self, by: str, earlier: dict[str, dict[str, list[float]]] | None = None):
        self.by = by
        self.earlier = earlier or {}
        self._groups: dict[int, Group] = {}

    def key(self, item: Record | Quarantined) -> str | None:
        value = item.meta.get(self.by) if isinstance(item, Record) else None
        return None if value is None else json.dumps(value, sort_keys=True)

    def groups(self, items: Iterable[Record | Quarantined]) -> Iterator[list[Record | Quarantined]]:
        """The items in input order, consecutive ones of the same group together (each registered)."""
        group: list[Record | Quarantined] = []
        for item in items:
            if group and (self.key(item) is None or self.key(item) != self.key(group[0])):
                yield self._register(group)
                group = []
            group.append(item)
        if group:
            yield self._register(group)

    def _register(self, items: list[Record | Quarantined]) -> list[Record | Quarantined]:
        key = self.key(items[0])
        if key is not None:
            group = Group({item.index for item in items}, self.earlier.get(key, {}))
            for item in items:
                self._groups[item.index] = group
        return items

    def arrive(self, stage: str, index: int, score: float) -> None:
        group = self._groups.get(index)
        if group is not None:
            group.arrived.setdefault(stage, {}).setdefault(index, score)  # a second visit keeps the first score
            group.wake()

    def leave(self, index: int) -> None:
        """The record finished (kept, discarded, failed or stopped): the others wait for it no more."""
        group = self._groups.pop(index, None)
        if group is not None:
            group.left.add(index)
            group.wake()

    async def best(self, stage: str, index: int, score: float) -> tuple[float, int]:
        """The best score at ``stage`` among the record's group, once every member reached it or left; and how
        many scores that is. A record without the group's key (``meta[by]``) is alone: its own ``score``."""
        group = self._groups.get(index)
        if group is None:
            return score, 1
        if not group.ready(stage):
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            group.waiting.append((stage, future))
            await future
        scores = group.scores(stage)
        return max(scores), len(scores)


def earlier_scores(lines: Iterable[dict[str, Any]], by: str, stages: set[str]) -> dict[str, dict[str, list[float]]]:
    """Per group key and relative stage, the scores of finished records (run-folder lines), each record's first."""
    found: dict[str, dict[str, list[float]]] = {}
    for line in lines:
        value = (line.get("meta") or {}).get(by)
        if value is None:
            continue
        seen: set[str] = set()
        for step in line.get("trail") or []:
            stage, score = step.get("stage"), step.get("score")
            if stage in stages and stage not in seen and isinstance(score, int | float):
                seen.add(stage)
                found.setdefault(json.dumps(value, sort_keys=True), {}).setdefault(stage, []).append(float(score))
    return found
