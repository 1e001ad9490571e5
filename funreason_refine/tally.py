"""Counts of a run: outcomes, and per stage the verdicts and reasons; become summary.json's counts."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from funreason_refine.record import Action, Outcome
from funreason_refine.summary import ScoreStats, StageCounts

OUTCOMES = (Outcome.KEPT, Outcome.DISCARDED, Outcome.QUARANTINED, Outcome.ERRORS)
"""The four outcome files every run has (hard.jsonl only when a pipeline uses the hard pool)."""

TRUNCATE = "truncate"
"""How a discard verdict counts when the conversation it failed was kept up to the turn before."""
VERDICTS = (*Action, TRUNCATE)

FAILED = "failed"
"""How a record in errors.jsonl counts when its failure has no code: a call or check that failed, which a retry
may get past."""

Trail = tuple[tuple[str, str, str | None], ...]
Scores = tuple[tuple[str, float], ...]
"""A record's scores: (stage, score) of each scorer's verdict in its trail."""


def line_scores(line: dict[str, Any]) -> Scores:
    """The scores in a run-folder line's trail."""
    return tuple(
        (s["stage"], float(s["score"])) for s in line.get("trail") or () if isinstance(s.get("score"), int | float)
    )


class Folded(NamedTuple):
    """Per stage: its verdicts, their reasons, and the records that left it discarded or in errors, by reason."""

    verdicts: dict[str, Counter[str]]
    reasons: dict[str, dict[str, Counter[str]]]
    discards: dict[str, Counter[str]]
    errored: dict[str, Counter[str]]


class Tally:
    """Counts records by (outcome, trail, stage, reason), and folds them into per-stage counts when
    asked: records share a few dozen distinct trails, so adding one is a single increment."""

    def __init__(self) -> None:
        self._records: Counter[tuple[str, Trail, str | None, str | None]] = Counter()
        self._scores: dict[str, ScoreStats] = defaultdict(ScoreStats)

    def add(
        self,
        outcome: str,
        trail: Iterable[tuple[str, str, str | None]] = (),
        stage: str | None = None,
        reason: str | None = None,
        scores: Scores = (),
    ) -> None:
        """One finished record: its outcome, its trail as (stage, verdict, reason), where it left, its scores."""
        self._records[outcome, trail if isinstance(trail, tuple) else tuple(trail), stage, reason] += 1
        for scored, score in scores:
            self._scores[scored].add(score)

    def add_line(self, outcome: str, line: dict[str, Any]) -> None:
        """The same, from a line read back from the run folder (resume); ValueError when its trail or stage is
        not what `refine run` writes."""
        try:
            trail = tuple((str(s["stage"]), str(s["verdict"]), s.get("reason")) for s in line.get("trail") or ())
            stage = line.get("stage")
            self.add(outcome, trail, None if stage is None else str(stage), line.get("reason"), line_scores(line))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"its trail or stage cannot be counted ({type(exc).__name__}: {exc})") from None

    @property
    def total(self) -> int:
        return sum(self._records.values())

    @property
    def outcomes(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (outcome, _, _, _), n in self._records.items():
            out[outcome] += n
        return out

    def _fold(self) -> Folded:
        verdicts: dict[str, Counter[str]] = defaultdict(Counter)
        reasons: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        discards: dict[str, Counter[str]] = defaultdict(Counter)
        errored: dict[str, Counter[str]] = defaultdict(Counter)
        for (outcome, trail, stage, reason), n in self._records.items():
            last = len(trail) - 1
            for i, (step_stage, verdict, step_reason) in enumerate(trail):
                if verdict == Action.DISCARD and (outcome == Outcome.KEPT or i < last):
                    verdict = TRUNCATE  # a conversation cut before a failing turn goes on, kept
                verdicts[step_stage][verdict] += n
                if step_reason:  # as text: a line an older version wrote may hold another type (summary.json's keys)
                    reasons[step_stage][verdict][str(step_reason)] += n
            if outcome in (Outcome.DISCARDED, Outcome.HARD) and stage:
                discards[stage][str(reason or "unknown")] += n
            elif outcome == Outcome.ERRORS and stage:
                errored[stage][str(reason or FAILED)] += n
        return Folded(verdicts, reasons, discards, errored)

    def counts(
        self, stage_order: list[str], hard_pool: bool = False, thresholds: dict[str, float | None] | None = None
    ) -> tuple[dict[str, int], dict[str, StageCounts]]:
        """Records per outcome file, and per stage (pipeline order first) its verdicts and reasons, and the
        scores of a stage with a scorer (``thresholds``: each such stage's threshold)."""
        verdicts, reasons, discards, errored = self._fold()
        names = list(stage_order) + sorted(set(verdicts) - set(stage_order))
        stages = {}
        for name in names:
            counts = verdicts.get(name, Counter())
            stages[name] = StageCounts(
                passed=counts[Action.PASS],
                regenerated=counts[Action.REGENERATE],
                discarded=counts[Action.DISCARD],
                truncated=counts[TRUNCATE],
                reasons={str(v): dict(reasons[name][v].most_common()) for v in VERDICTS if reasons[name][v]},
                records_discarded=dict(discards.get(name, Counter()).most_common()),
                records_errored=dict(errored[name].most_common()) if errored.get(name) else None,
                scores=self._stage_scores(name, thresholds or {}),
            )
        outcomes = self.outcomes
        kinds = tuple(Outcome) if hard_pool or outcomes[Outcome.HARD] else OUTCOMES
        return {str(k): outcomes[k] for k in kinds}, stages

    def _stage_scores(self, stage: str, thresholds: dict[str, float | None]) -> ScoreStats | None:
        found = self._scores.get(stage)
        if found is None and stage not in thresholds:
            return None
        stats = ScoreStats() + found if found is not None else ScoreStats()  # a copy, its bins in order
        stats.threshold = thresholds.get(stage)
        return stats
