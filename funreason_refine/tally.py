"""Counts of a run: outcomes, and per stage the verdicts and reasons; becomes summary.json."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

OUTCOMES = ("kept", "discarded", "quarantined", "errors")
HARD = "hard"  # failed a stage whose on_fail is "hard_pool": kept for the next self-refinement round
ALL_KINDS = (*OUTCOMES, HARD)
VERDICTS = ("pass", "regenerate", "discard")


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.verdicts: dict[str, Counter[str]] = defaultdict(Counter)
        self.reasons: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        self.discards: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, outcome: str, trail: Iterable[tuple[str, str, str | None]] = (),
            stage: str | None = None, reason: str | None = None) -> None:
        """One finished record: its outcome, its trail as (stage, verdict, reason), where it left."""
        self.outcomes[outcome] += 1
        for step_stage, verdict, step_reason in trail:
            self.verdicts[step_stage][verdict] += 1
            if step_reason:
                self.reasons[step_stage][verdict][step_reason] += 1
        if outcome in ("discarded", HARD) and stage:
            self.discards[stage][reason or "unknown"] += 1

    def add_line(self, outcome: str, line: dict[str, Any]) -> None:
        """The same, from a line read back from the run folder (resume)."""
        trail = [(s["stage"], s["verdict"], s.get("reason")) for s in line.get("trail", [])]
        self.add(outcome, trail, line.get("stage"), line.get("reason"))

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def as_dict(self, stage_order: list[str], hard_pool: bool = False) -> dict[str, Any]:
        names = list(stage_order) + sorted(set(self.verdicts) - set(stage_order))
        stages = {}
        for name in names:
            counts = self.verdicts.get(name, Counter())
            stages[name] = {
                "passed": counts["pass"],
                "regenerated": counts["regenerate"],
                "discarded": counts["discard"],
                "reasons": {v: dict(self.reasons[name][v].most_common()) for v in VERDICTS if self.reasons[name][v]},
                "records_discarded": dict(self.discards.get(name, Counter()).most_common()),
            }
        kinds = ALL_KINDS if hard_pool or self.outcomes[HARD] else OUTCOMES
        return {"outcomes": {k: self.outcomes[k] for k in kinds}, "stages": stages}
