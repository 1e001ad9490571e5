"""Token statistics of a run's kept records: the paper's Table 1 for your own data, and per assistant turn."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from funreason_msl.data import MSLDataset
from funreason_msl.labels import Example
from funreason_msl.loss import RESULT, THINK


def describe(values: list[int]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "max": 0}
    return {"mean": round(statistics.fmean(values), 2), "median": statistics.median(values), "max": max(values)}


def turn_counts(example: Example) -> list[tuple[int, int]]:
    """(think, result) target tokens of each assistant turn of an example."""
    return [
        (
            sum(1 for s in example.segments[start:end] if s == THINK),
            sum(1 for s in example.segments[start:end] if s == RESULT),
        )
        for start, end in example.turns
    ]


def per_turn(dataset: MSLDataset) -> list[dict[str, Any]]:
    """Think and result tokens by assistant-turn position (1 is the first turn of every example)."""
    by_position: dict[int, list[tuple[int, int]]] = {}
    for example in dataset.examples:
        for position, counts in enumerate(turn_counts(example), start=1):
            by_position.setdefault(position, []).append(counts)
    return [
        {
            "turn": position,
            "examples": len(counts),
            "without_cot": sum(1 for think, _ in counts if think == 0),
            "think": describe([think for think, _ in counts]),
            "result": describe([result for _, result in counts]),
        }
        for position, counts in sorted(by_position.items())
    ]


def segment_stats(dataset: MSLDataset) -> dict[str, Any]:
    """Think and result target tokens per example (mean, median, max; a conversation's turns summed)
    and each segment's share of the plain-SFT loss, which averages over all target tokens alike and
    so gives each segment its share of the tokens (at equal per-token loss); how many examples
    have no CoT (their 0 think tokens are in the mean); then assistant turns per example, the
    same counts by turn position, and what the run's review changed."""
    think = [sum(1 for s in e.segments if s == THINK) for e in dataset.examples]
    result = [sum(1 for s in e.segments if s == RESULT) for e in dataset.examples]
    total = sum(think) + sum(result)
    turns = [len(e.turns) for e in dataset.examples]
    return {
        "examples": len(dataset.examples),
        "without_cot": sum(1 for n in think if n == 0),  # all their targets are result tokens
        "truncated": dataset.report.truncated,
        "dropped": len(dataset.report.dropped),
        "dropped_records": list(dataset.report.dropped),  # "id: why", as training leaves them out
        # Not rounded here: the table rounds the share once, as it shows it (rounded twice, 9/44 showed as 20.4%).
        "think": {**describe(think), "sft_loss_share": sum(think) / total if total else 0.0},
        "result": {**describe(result), "sft_loss_share": sum(result) / total if total else 0.0},
        "turns": {
            **describe(turns),
            "examples_with": {str(n): count for n, count in sorted(Counter(turns).items())},
            "dropped_by_truncation": dataset.report.turns_dropped,
        },
        "per_turn": per_turn(dataset),
        "review": review_counts(dataset),
    }


def review_counts(dataset: MSLDataset) -> dict[str, Any] | None:
    """What the run's review changed (None for a dataset not read from a run): records restored and left out,
    decisions ignored as stale, restored records that cannot be written (each with why)."""
    review = dataset.report.review
    if review is None:
        return None
    return {
        "restored": review.restored,
        "left_out": review.dropped,
        "stale": review.stale,
        "not_exportable": review.unexportable,
    }
