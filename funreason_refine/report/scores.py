"""The scores of a run's scorers, per stage: how many, their mean and range, the threshold, and a histogram
(from summary.json's bins, drawn as columns with the threshold marked in report.html, as a sparkline in
the terminal and report.md)."""

from __future__ import annotations

import math
from typing import Any

from funreason_refine.judge.scorer_settings import BELOW_BEST, LOW_SCORE
from funreason_refine.summary import SCORE_BIN, ScoreStats, Summary

MAX_COLUMNS = 24
SPARKS = " ▁▂▃▄▅▆▇█"


def score_sections(summary: Summary) -> list[dict[str, Any]]:
    """One section per stage whose scorer gave scores (or has a threshold)."""
    sections = []
    for stage, counts in summary.stages.items():
        stats = counts.scores
        if stats is None:
            continue
        discards = counts.reasons.get("discard", {})
        sections.append(
            {
                "stage": stage,
                "count": stats.count,
                "mean": stats.mean,
                "lowest": stats.lowest,
                "highest": stats.highest,
                "threshold": stats.threshold,
                "low_score": discards.get(LOW_SCORE, 0),
                "below_best": discards.get(BELOW_BEST, 0),
                "columns": columns(stats),
            }
        )
    return sections


def columns(stats: ScoreStats) -> list[dict[str, Any]]:
    """The histogram's columns, in order, each ``from``-``to`` with its count: the bins of summary.json (a
    probability's twenty, empty ones too), merged in runs of neighbours when there would be more than
    MAX_COLUMNS."""
    if not stats.bins:
        return []
    edges = [float(k) for k in stats.bins]
    first, last = min(edges), max(edges)
    if first >= 0 and last + SCORE_BIN <= 1 + 1e-9:
        first, last = 0.0, 1 - SCORE_BIN
    count = round((last - first) / SCORE_BIN) + 1
    merge = math.ceil(count / MAX_COLUMNS)
    found = {round(float(k) / SCORE_BIN): n for k, n in stats.bins.items()}
    start = round(first / SCORE_BIN)
    out = []
    for i in range(0, count, merge):
        steps = range(start + i, start + min(i + merge, count))
        low, high = steps[0] * SCORE_BIN, (steps[-1] + 1) * SCORE_BIN
        out.append({"from": round(low, 4), "to": round(high, 4), "count": sum(found.get(s, 0) for s in steps)})
    return out


def sparkline(section: dict[str, Any]) -> str:
    """The histogram in block characters, with ``|`` where the threshold falls."""
    cols = section["columns"]
    top = max((c["count"] for c in cols), default=0) or 1
    threshold = section["threshold"]
    out, marked = [], threshold is None
    for col in cols:
        if not marked and col["from"] >= threshold - 1e-9:
            out.append("|")
            marked = True
        out.append(SPARKS[math.ceil(8 * col["count"] / top) if col["count"] else 0])
    return "".join(out)


def chart(section: dict[str, Any], width: int = 640, height: int = 170) -> dict[str, Any]:
    """Where report.html draws each column of a histogram, its axis labels and the threshold line."""
    cols = section["columns"]
    left, bottom, top_pad = 40, 30, 18
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = max((c["count"] for c in cols), default=0) or 1
    step = plot_w / max(len(cols), 1)
    low, high = (cols[0]["from"], cols[-1]["to"]) if cols else (0.0, 1.0)
    drawn = []
    for i, c in enumerate(cols):
        h = plot_h * c["count"] / top
        drawn.append(
            {
                "x": left + i * step + 1,
                "y": top_pad + plot_h - h,
                "w": max(step - 2, 1),
                "h": h,
                "count": c["count"],
                "label": f"{c['from']:g} to {c['to']:g}",
            }
        )
    threshold = section["threshold"]
    line = None
    if threshold is not None and high > low:
        line = left + plot_w * (min(max(threshold, low), high) - low) / (high - low)
    return {
        "width": width,
        "height": height,
        "left": left,
        "base": top_pad + plot_h,
        "right": left + plot_w,
        "columns": drawn,
        "low": f"{low:g}",
        "high": f"{high:g}",
        "top": top,
        "threshold_x": line,
        "threshold": threshold,
    }
