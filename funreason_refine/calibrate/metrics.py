"""Agreement of a run with people's labels: precision, recall, F1, agreement and Cohen's kappa of discards.

Written out by hand (four counts, five formulas) rather than taken from scikit-learn: the
formulas are short enough to check on paper, and the project does not need that dependency.
A discard is the positive class:

    tp: the person says discard, the run discarded     fp: the person says keep, the run discarded
    fn: the person says discard, the run kept          tn: both keep

    precision = tp / (tp + fp)        recall = tp / (tp + fn)        f1 = 2 tp / (2 tp + fp + fn)
    agreement = (tp + tn) / n
    kappa = (agreement - chance) / (1 - chance), where chance = (tp + fp)(tp + fn) / n^2 + (fn + tn)(fp + tn) / n^2

A value whose denominator is 0 is None (shown as "-").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from funreason_refine.calibrate.golden import GoldenRecord
from funreason_refine.record import Outcome

DISCARDED = (Outcome.DISCARDED, Outcome.HARD)  # a record sent to the hard pool was let go by its stage too
SCORED = (Outcome.KEPT, *DISCARDED)
DIGITS = 4


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, DIGITS) if denominator else None


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def of(cls, pairs: Iterable[tuple[bool, bool]]) -> Counts:
        """From (person says discard, run discarded) pairs."""
        c: Counter[tuple[bool, bool]] = Counter(pairs)
        return cls(tp=c[True, True], fp=c[False, True], fn=c[True, False], tn=c[False, False])

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def kappa(self) -> float | None:
        n = self.n
        if n == 0:
            return None
        observed = (self.tp + self.tn) / n
        chance = ((self.tp + self.fp) * (self.tp + self.fn) + (self.fn + self.tn) * (self.fp + self.tn)) / n**2
        return _ratio(observed - chance, 1 - chance) if chance != 1 else None

    def scores(self) -> dict[str, Any]:
        return {
            "records": self.n,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": _ratio(self.tp, self.tp + self.fn),
            "f1": _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn),
            "agreement": _ratio(self.tp + self.tn, self.n),
            "kappa": self.kappa(),
        }


@dataclass(frozen=True)
class Ending:
    """Where a golden record ended in a candidate's run folder."""

    kind: str  # kept, discarded, hard, quarantined, errors; "missing" when the run stopped before it
    stage: str | None = None
    reason: str | None = None
    answer: Any = None
    message: str | None = None
    scores: tuple[tuple[str, float], ...] = ()  # (stage, score) of each scorer's verdict in its trail

    @property
    def discarded(self) -> bool:
        return self.kind in DISCARDED


def _label_row(g: GoldenRecord) -> str:
    if g.label.outcome == "keep":
        return "keep"
    return f"discard at {g.label.stage}" if g.label.stage else "discard (no stage)"


def _outcome_column(o: Ending) -> str:
    return f"discarded at {o.stage}" if o.discarded else o.kind


def _other_answer(g: GoldenRecord, o: Ending) -> bool:
    return g.label.answer is not None and o.kind == Outcome.KEPT and not g.label.matches(o.answer)


def _disagree(g: GoldenRecord, o: Ending) -> bool:
    """The run let go what the person keeps (or the reverse), at another stage, or kept another answer."""
    if (g.label.outcome == "discard") != o.discarded:
        return True
    return bool(g.label.stage and o.discarded and g.label.stage != o.stage) or _other_answer(g, o)


def confusion(pairs: list[tuple[GoldenRecord, Ending]]) -> dict[str, dict[str, int]]:
    """Label (keep, discard at a stage) against outcome (kept, discarded at a stage, ...): record counts."""
    table: dict[str, Counter[str]] = {}
    for g, o in pairs:
        table.setdefault(_label_row(g), Counter())[_outcome_column(o)] += 1
    return {row: dict(sorted(cols.items())) for row, cols in table.items()}


def _position(stage: str | None, order: dict[str, int], otherwise: int) -> int:
    return order.get(stage, otherwise) if stage is not None else otherwise


def reached(pairs: list[tuple[GoldenRecord, Ending]], stages: list[str]) -> dict[str, dict[str, int]]:
    """Per stage, the stage as a test of its own on the scored records the run brought to it: positive,
    the person discards the record at this stage; negative, the person keeps it or discards it at a
    later stage. Records the person discards at an earlier stage, or without a stage, are left out:
    what this stage should do with them is not labelled. (What calibrate/worth.py corrects with.)"""
    order = {stage: i for i, stage in enumerate(stages)}
    end = len(stages)
    ends = [
        (
            _position(g.label.stage, order, -1) if g.label.outcome == "discard" else end,
            _position(o.stage if o.discarded else None, order, end),
        )
        for g, o in pairs
        if o.kind in SCORED
    ]
    out = {}
    for i, stage in enumerate(stages):
        counts = Counts.of((said == i, ran == i) for said, ran in ends if said >= i and ran >= i)
        out[stage] = {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "tn": counts.tn}
    return out


def score(pairs: list[tuple[GoldenRecord, Ending]], stages: list[str]) -> dict[str, Any]:
    """Overall and per-stage scores of one candidate's outcomes against the labels.

    Records that did not end kept or discarded (unreadable input, judge failures, a stopped run)
    are not scored; they are listed. Per stage, the positive class is "discarded at this stage",
    and labels saying discard without a stage are left out (their stage is unknown).
    """
    scored = [(g, o) for g, o in pairs if o.kind in SCORED]
    said = [(g.label.outcome == "discard", o.discarded) for g, o in scored]
    staged = [(g, o) for g, o in scored if g.label.outcome == "keep" or g.label.stage]
    both = [(g, o) for g, o in scored if g.label.outcome == "discard" and o.discarded and g.label.stage]
    per_stage = {
        stage: Counts.of(
            (g.label.outcome == "discard" and g.label.stage == stage, o.discarded and o.stage == stage)
            for g, o in staged
        ).scores()
        for stage in stages
    }
    corrected = [(g, o) for g, o in scored if g.label.answer is not None]
    return {
        "overall": {
            **Counts.of(said).scores(),
            "wrong_stage": sum(g.label.stage != o.stage for g, o in both),
            "stage_checked": len(both),
        },
        "stages": per_stage,
        "reached": reached(pairs, stages),
        "confusion": confusion(pairs),
        "corrections": {
            "labelled": len(corrected),
            "kept": sum(o.kind == Outcome.KEPT for _, o in corrected),
            "matched": sum(o.kind == Outcome.KEPT and g.label.matches(o.answer) for g, o in corrected),
        },
        "unscored": [
            {"line": g.line, "id": g.id, "outcome": o.kind, "stage": o.stage, "message": o.message}
            for g, o in pairs
            if o.kind not in SCORED
        ],
        "disagreements": [
            {
                "line": g.line,
                "id": g.id,
                "label": _label_row(g),
                "outcome": _outcome_column(o) + (" (answer differs)" if _other_answer(g, o) else ""),
                "reason": o.reason,
                "message": o.message,
                "comment": g.comment,
            }
            for g, o in scored
            if _disagree(g, o)
        ],
    }
