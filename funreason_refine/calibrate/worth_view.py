"""The worth section as people read it: one row of text cells per stage, for the terminal, report.md and the pages."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

HALVED = (("bad_among_kept", "kept"), ("good_among_discarded", "discarded"))
COLUMNS = (
    "stage",
    "decided",
    "discarded",
    "labelled discards caught",
    "labelled keeps passed",
    "bad among kept",
    "good among discarded",
    "more labels to halve",
)


def _share(e: dict[str, Any] | None, where: str) -> str:
    if e is None:
        return "-"
    return f"{e['value']:.1%} ({e['low']:.1%}-{e['high']:.1%}), ~{e['records']:,} of {e['of']:,} {where}"


def _rate(caught: int, of: int, rate: float | None) -> str:
    return f"{caught}/{of}" + (f" ({rate:.2f})" if rate is not None else "")


def _halve(row: dict[str, Any]) -> str:
    return ", ".join(_halving(row[key], what) for key, what in HALVED if row[key] is not None) or "-"


def _halving(e: dict[str, Any], what: str) -> str:
    """'+N', and which labels would narrow the interval fastest when one kind holds most of its width."""
    if e["labels_to_halve"] is None:
        return f"{what}: labels cannot"
    share = e.get("from_discards")
    mostly = (
        "" if share is None or 1 / 3 < share < 2 / 3 else " (mostly discards)" if share >= 2 / 3 else " (mostly keeps)"
    )
    return f"{what} +{e['labels_to_halve']:,}{mostly}"


def cells(row: dict[str, Any]) -> list[str]:
    """One row of the worth table as text, in COLUMNS order."""
    labels = row["labels"]
    return [
        row["stage"],
        f"{row['records']:,}",
        f"{row['discarded']:,}",
        _rate(labels["caught"], labels["discard"], row["sensitivity"]),
        _rate(labels["passed"], labels["keep"], row["specificity"]),
        _share(row["bad_among_kept"], "kept"),
        _share(row["good_among_discarded"], "discarded"),
        _halve(row),
    ]


def rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows to show, overall first: each with its cells, notes and a key for tests and readers."""
    if section.get("overall") is None:
        return []
    return [
        {"key": row["stage"] if i else "overall", "cells": cells(row), "notes": row["notes"]}
        for i, row in enumerate([section["overall"], *section["stages"]])
    ]


def explanation(section: dict[str, Any]) -> str:
    """What the table says, in a sentence or two."""
    left_out = section.get("errors_left_out") or 0
    return (
        f"The run's discards corrected for the error candidate {section['candidate']!r} made on the labels "
        f"of {section['calibration']}, with {section['confidence']:.0%} intervals (docs/worth.md). Per stage, "
        "the records that reached it; 'kept' is what it let through. 'More labels to halve': about how many "
        "more golden records, in the calibration's mix, would halve the interval."
        + (f" {left_out:,} records in errors.jsonl are not counted." if left_out else "")
    )


def notes(section: dict[str, Any]) -> list[str]:
    """Each row's notes, named by its stage."""
    return [f"{r['cells'][0]}: {note}" for r in rows(section) for note in r["notes"]]


def worth_table(section: dict[str, Any]) -> Table | None:
    """The terminal table (None when no candidate was applied: the warnings say why)."""
    shown = rows(section)
    if not shown:
        return None
    table = Table(title="What the kept set is worth", caption=escape(explanation(section)), show_edge=False)
    for i, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if i == 0 else "right", overflow="fold")
    for row in shown:
        table.add_row(*(escape(c) for c in row["cells"]))
    return table


def page_section(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """What templates/worth.html shows (None: the page has no such section)."""
    if section is None:
        return None
    shown = rows(section)
    return {
        "warnings": section["warnings"],
        "explanation": explanation(section) if shown else None,
        "columns": COLUMNS,
        "rows": shown,
        "notes": notes(section),
    }
