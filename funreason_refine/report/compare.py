"""Two runs of the same input with different judges: agreement per stage and Cohen's kappa."""

from __future__ import annotations

from typing import Any

from funreason_refine.pages import render
from funreason_refine.record import Outcome
from funreason_refine.report.data import RunData

DECIDED = (Outcome.KEPT, Outcome.DISCARDED, Outcome.HARD)
"""The outcomes a run's stages decided (kept, or let go)."""
NO_JUDGE = "none: no [judge] table"


def cohen_kappa(a: list[bool], b: list[bool]) -> float | None:
    """Agreement beyond chance of two yes/no raters; None when chance alone explains everything."""
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=False)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return None if expected == 1 else round((observed - expected) / (1 - expected), 4)


def _fate(kind: str, stage: str | None) -> str:
    return kind if kind in (Outcome.KEPT, Outcome.QUARANTINED) else f"{kind} at {stage}"


def compare_runs(a: RunData, b: RunData, show: int = 50) -> dict[str, Any]:

    cols = ["index", "id", "kind", "stage", "reason"]
    joined = a.records.select(cols).join(b.records.select(cols), on="index", how="inner", suffix="_b")
    stages = [s for s in a.summary.stages if s in b.summary.stages and s != "generate"]
    order = {s: i for i, s in enumerate(stages)}
    rows = joined.to_dicts()

    def removed_at(kind: str, stage: str | None) -> int:
        """Position of the stage where a record left (len(stages) when it was kept)."""
        if kind == Outcome.KEPT:
            return len(stages)
        return order.get(stage or "", -1) if kind in (Outcome.DISCARDED, Outcome.ERRORS, Outcome.HARD) else -1

    per_stage = []
    for stage in stages:
        i = order[stage]
        reached = [
            r for r in rows if removed_at(r["kind"], r["stage"]) >= i and removed_at(r["kind_b"], r["stage_b"]) >= i
        ]
        rej_a = [r["kind"] == Outcome.DISCARDED and r["stage"] == stage for r in reached]
        rej_b = [r["kind_b"] == Outcome.DISCARDED and r["stage_b"] == stage for r in reached]
        agree = sum(x == y for x, y in zip(rej_a, rej_b, strict=False))
        per_stage.append(
            {
                "stage": stage,
                "records": len(reached),
                "agree": agree,
                "agreement": round(agree / len(reached), 4) if reached else None,
                "discarded_a": sum(rej_a),
                "discarded_b": sum(rej_b),
                "kappa": cohen_kappa(rej_a, rej_b),
            }
        )
    # Kept or let go by both runs' stages: a record quarantined (or in errors) was decided by neither.
    decided = [r for r in rows if r["kind"] in DECIDED and r["kind_b"] in DECIDED]
    kept_a = [r["kind"] == Outcome.KEPT for r in decided]
    kept_b = [r["kind_b"] == Outcome.KEPT for r in decided]
    disagreements = [
        {
            "index": r["index"],
            "id": r["id"],
            "a": _fate(r["kind"], r["stage"]),
            "reason_a": r["reason"],
            "b": _fate(r["kind_b"], r["stage_b"]),
            "reason_b": r["reason_b"],
        }
        for r in rows
        if (r["kind"], r["stage"]) != (r["kind_b"], r["stage_b"])
    ]
    return {
        "run_a": str(a.path),
        "run_b": str(b.path),
        "judge_a": a.summary.judge.model or NO_JUDGE,
        "judge_b": b.summary.judge.model or NO_JUDGE,
        "records": len(rows),
        "only_in_one": a.records.height + b.records.height - 2 * len(rows),
        "kept": {
            "decided": len(decided),
            "a": sum(kept_a),
            "b": sum(kept_b),
            "agree": sum(x == y for x, y in zip(kept_a, kept_b, strict=False)),
            "kappa": cohen_kappa(kept_a, kept_b),
        },
        "stages": per_stage,
        "disagreements": disagreements[:show],
        "disagreement_count": len(disagreements),
    }


def render_compare_html(c: dict[str, Any]) -> str:
    """The comparison as one self-contained page (templates/compare.html)."""
    return render("compare.html", **c)
