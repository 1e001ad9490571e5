"""Fitted thresholds: a scorer's threshold chosen against a person's labels.

A candidate with scorers runs without their thresholds, so every golden record that reaches a
scorer is scored (the run folder's trail keeps each score). Any threshold is then applied after the
fact, exactly as a run would: a record whose score at a stage is below that stage's threshold ends
there, discarded (``low_score``); the others end as they did. For each scorer stage, every threshold
that splits the scores differently (the others at their configured thresholds) gives one point of a
curve: precision, recall and F1 of the discards against the labels (a discard is the positive, as in
the rest of the calibration). Proposed: the threshold with the best F1, and with ``target_precision``
the one that discards the most while its precision stays at or above it; each as a line to paste.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from funreason_refine.calibrate.golden import GoldenRecord
from funreason_refine.calibrate.metrics import SCORED, Counts, Ending
from funreason_refine.judge.scorer_settings import LOW_SCORE
from funreason_refine.record import Outcome

Thresholds = dict[str, float | None]


def configured(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scorer tables of a pipeline's data, by stage."""
    return {
        e["name"]: e["scorer"]
        for e in data.get("stages", [])
        if isinstance(e, dict) and isinstance(e.get("scorer"), dict) and isinstance(e.get("name"), str)
    }


def without_thresholds(data: dict[str, Any]) -> None:
    """Take the scorers' thresholds out of a candidate's pipeline data (in place): every record is scored."""
    for table in configured(data).values():
        table.pop("threshold", None)


def at_thresholds(ending: Ending, thresholds: Thresholds) -> Ending:
    """Where a record scored without thresholds ends once they apply."""
    if ending.kind not in SCORED:
        return ending
    for stage, score in ending.scores:
        threshold = thresholds.get(stage)
        if threshold is not None and score < threshold:
            message = f"score {score:.4g} is below the threshold {threshold:g}"
            return replace(ending, kind=str(Outcome.DISCARDED), stage=stage, reason=LOW_SCORE, message=message)
    return ending


def _counts(golden: Sequence[GoldenRecord], endings: Sequence[Ending], thresholds: Thresholds) -> Counts:
    pairs = ((g, at_thresholds(o, thresholds)) for g, o in zip(golden, endings, strict=True))
    return Counts.of((g.label.outcome == "discard", o.discarded) for g, o in pairs if o.kind in SCORED)


def _first_scores(endings: Sequence[Ending], stage: str) -> list[float]:
    """Each scored record's first score at ``stage`` (records that never reached it have none)."""
    found = []
    for ending in endings:
        scores = [score for s, score in ending.scores if s == stage]
        if scores and ending.kind in SCORED:
            found.append(scores[0])
    return found


def between(low: float | None, high: float) -> float:
    """The shortest decimal above ``low`` and at most ``high``: a threshold that reads well and splits the
    scores as ``high`` does (``low`` None: any number at most ``high``)."""
    for digits in range(0, 12):
        scale = 10**digits
        value = round(math.floor(high * scale) / scale, digits)
        if value <= high and (low is None or value > low):
            return value
    return high


def curve(
    golden: Sequence[GoldenRecord], endings: Sequence[Ending], stage: str, others: Thresholds
) -> list[dict[str, Any]]:
    """Per threshold that splits the stage's scores differently (from one that discards none to one above
    them all), the scores of the discards against the labels."""
    given = _first_scores(endings, stage)
    scores = sorted(set(given))
    if not scores:
        return []
    cuts = [between(None, scores[0])]
    cuts += [between(low, high) for low, high in zip(scores, scores[1:], strict=False)]
    cuts.append(_above(scores[-1]))
    points = []
    for cut in cuts:
        counts = _counts(golden, endings, {**others, stage: cut})
        points.append({"threshold": cut, "below": sum(s < cut for s in given), **counts.scores()})
    return points


def _above(top: float) -> float:
    """A short number above every score (1 for probabilities below it)."""
    for digits in range(0, 12):
        scale = 10**digits
        value = round(math.floor(top * scale + 1) / scale, digits)
        if value > top:
            return value
    return top + 1e-9


def _pick(points: list[dict[str, Any]], key: str, allowed: Any = None) -> dict[str, Any] | None:
    """The point with the highest ``key`` among those ``allowed``; ties go to the lowest threshold."""
    fit = [p for p in points if p[key] is not None and (allowed is None or allowed(p))]
    return max(fit, key=lambda p: (p[key], -p["threshold"]), default=None)


def fit(
    golden: Sequence[GoldenRecord],
    endings: Sequence[Ending],
    tables: dict[str, dict[str, Any]],
    target_precision: float | None = None,
) -> dict[str, dict[str, Any]]:
    """For each scorer stage: its curve, the configured threshold's point, the proposals and the lines to paste."""
    thresholds: Thresholds = {stage: table.get("threshold") for stage, table in tables.items()}
    out = {}
    for stage, table in tables.items():
        others = {s: t for s, t in thresholds.items() if s != stage}
        points = curve(golden, endings, stage, others)
        # F1 0 everywhere (no threshold discards a record labelled discard): nothing to propose.
        best = _pick(points, "f1", lambda p: p["f1"] > 0)
        target = None
        if target_precision is not None:
            target = _pick(
                points, "recall", lambda p: p["precision"] is not None and p["precision"] >= target_precision
            )
        out[stage] = {
            "model": table.get("model"),
            "kind": table.get("kind"),
            "configured": thresholds[stage],
            "at_configured": {
                "threshold": thresholds[stage],
                **_counts(golden, endings, thresholds).scores(),
            },
            "scored": len(_first_scores(endings, stage)),
            "curve": points,
            "best_f1": _proposal(stage, best),
            "target_precision": target_precision,
            "at_target": _proposal(stage, target) if target_precision is not None else None,
        }
    return out


def _proposal(stage: str, point: dict[str, Any] | None) -> dict[str, Any] | None:
    if point is None:
        return None
    paste = f'threshold = {point["threshold"]:g}  # in the scorer table of [[stages]] name = "{stage}"'
    return {**point, "paste": paste}
