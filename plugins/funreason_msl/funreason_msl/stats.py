"""Token statistics of a run's kept records: the paper's Table 1 for your own data."""

from __future__ import annotations

import statistics
from typing import Any

from funreason_msl.data import MSLDataset
from funreason_msl.loss import RESULT, THINK


def segment_stats(dataset: MSLDataset) -> dict[str, Any]:
    """Think and result target tokens per example (mean, median, max) and each segment's share
    of the plain-SFT loss, which averages over all target tokens alike and so gives each segment
    its share of the tokens (at equal per-token loss)."""
    think = [sum(1 for s in e.segments if s == THINK) for e in dataset.examples]
    result = [sum(1 for s in e.segments if s == RESULT) for e in dataset.examples]
    total = sum(think) + sum(result)

    def describe(values: list[int]) -> dict[str, float]:
        if not values:
            return {"mean": 0.0, "median": 0.0, "max": 0}
        return {"mean": round(statistics.fmean(values), 2), "median": statistics.median(values), "max": max(values)}

    return {
        "examples": len(dataset.examples),
        "truncated": dataset.report.truncated,
        "dropped": len(dataset.report.dropped),
        "think": {**describe(think), "sft_loss_share": round(sum(think) / total, 4) if total else 0.0},
        "result": {**describe(result), "sft_loss_share": round(sum(result) / total, 4) if total else 0.0},
    }
