"""Browse discarded records (and a hard pool's): filter by stage, reason and (conversations) the turn that failed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from funreason_refine.record import Outcome
from funreason_refine.report.data import RunData
from funreason_refine.run_folder import FILES
from funreason_refine.run_state import whole_lines


def discarded(
    run: RunData, stage: str | None = None, reason: str | None = None, turn: int | None = None
) -> Iterator[dict[str, Any]]:
    """The discarded records that match; ``turn``: only conversations discarded at that assistant turn."""
    for record in let_go(run):
        if (
            (stage is None or record.get("stage") == stage)
            and (reason is None or record.get("reason") == reason)
            and (turn is None or (record.get("messages") and record.get("turn") == turn))
        ):
            yield record


def let_go(run: RunData) -> Iterator[dict[str, Any]]:
    """The records the stages let go: discarded.jsonl, then hard.jsonl (the hard pool of a stage whose on_fail
    is "hard_pool"), when the run has one, each of those with ``"outcome": "hard"``."""
    yield from run.lines("discarded")
    if (run.path / FILES[Outcome.HARD]).exists():
        for record in run.lines("hard"):
            yield {**record, "outcome": "hard"}  # said apart: in the hard pool, not discarded


SHOWN_FILTERS = 12


def filters_available(run: RunData, turn: int | None = None) -> str:
    """The filters that find discarded records (with ``--turn`` when ``turn`` was asked for), most
    records first: what to say when a filter matched nothing."""
    found: Counter[str] = Counter()
    for r in let_go(run):
        if turn is None:
            found[f"--stage {r.get('stage')} --reason {r.get('reason')}"] += 1
        elif r.get("messages") and isinstance(r.get("turn"), int):
            found[f"--stage {r.get('stage')} --reason {r.get('reason')} --turn {r['turn']}"] += 1
    if not found:
        return "none" if turn is None else "none discarded at any turn (no discarded conversation)"
    shown = ", ".join(f"{f} ({n})" for f, n in found.most_common(SHOWN_FILTERS))
    left = len(found) - SHOWN_FILTERS
    return shown if left <= 0 else f"{shown}, and {left} more (`refine report` counts every stage and reason)"


def nothing_let_go(run: RunData) -> str | None:
    """What to say of a run whose stages let no record go (nothing for audit to show), or None when they did: what
    became of its records instead, errors.jsonl's with the command that redoes them."""
    if next(let_go(run), None) is not None:
        return None
    counts = {kind: whole_lines(run.path / FILES[Outcome(kind)]) for kind in ("kept", "quarantined", "errors")}
    said = f"no record of {run.path} was discarded: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
    if counts["errors"]:
        said += (
            f". The {counts['errors']} in {run.path / FILES[Outcome.ERRORS]} have no verdict yet (a judge call failed: "
            f"each line says why): fix the cause, then `refine retry {run.path}`"
        )
    return said
