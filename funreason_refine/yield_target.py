"""Self-refinement's yield target: how many candidates the next round draws, when drawing stops, and
the kept records trimmed to exactly the target.

A round draws candidates (a query of the pool and a sample number) in order: as many as the
target still needs at the yield seen so far (before the first round, as if every candidate were
kept), never past ``[source] max_candidates``, nor past what the rest of ``max_cost`` buys at the
cost per candidate seen so far. Every figure is read back from the rounds' folders, so a killed run
plans the same rounds again and resumes to the same records.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from funreason_refine.jsonl import read_lines
from funreason_refine.selfrefine_summary import SelfRefineRound, StoppedBy

SLACK = 1e-9  # a billionth of a dollar: twenty calls of $0.01 add up to 0.19999999999999998
KEPT = "kept.jsonl"
SURPLUS = "surplus.jsonl"


@dataclass(frozen=True)
class Caps:
    """What bounds the drawing: the target, the caps on candidates and cost, ``--rounds``."""

    target: int | None = None
    max_candidates: int | None = None
    max_cost: float | None = None
    rounds: int | None = None

    @property
    def bounded(self) -> bool:
        """Drawing ends even when no candidate is ever kept."""
        return self.max_candidates is not None or self.max_cost is not None or self.rounds is not None


@dataclass(frozen=True)
class Tally:
    """The rounds so far, added up: candidates drawn, kept, what they cost."""

    drawn: int = 0
    kept: int = 0
    spent: float = 0.0

    @classmethod
    def of(cls, rounds: Iterable[SelfRefineRound]) -> Tally:
        rows = list(rounds)
        return cls(sum(r.drawn for r in rows), sum(r.kept for r in rows), sum(r.cost_usd for r in rows))


@dataclass(frozen=True)
class Stop:
    """Why no further round is drawn."""

    by: StoppedBy
    message: str

    @property
    def cap_hit(self) -> bool:
        return self.by in ("max_candidates", "max_cost")


REMEDIES: dict[StoppedBy, str] = {
    "target": "",
    "max_candidates": "raise max_candidates in [source]",
    "max_cost": "raise max_cost",
    "rounds": "give more --rounds (or leave --rounds out)",
    "pool": "add queries to the input (or `refine retry` the rounds with errors)",
    "sampling": "fix what sampling_errors.jsonl names",
}
"""What lets a run that stopped short go on, by why it stopped."""


def budget_left(caps: Caps, spent: float) -> float | None:
    """USD that max_cost still allows (None: no max_cost)."""
    return None if caps.max_cost is None else caps.max_cost - spent


def stop_before(caps: Caps, tally: Tally, round_no: int, pool: int, held: int = 0) -> Stop | None:
    """Why round ``round_no`` is not drawn, or None when it is (``held``: queries out of the pool until
    `refine retry` gives their candidates in errors.jsonl a verdict)."""
    if caps.target is not None and tally.kept >= caps.target:
        return Stop("target", f"{caps.target} kept records reached")
    if caps.max_candidates is not None and tally.drawn >= caps.max_candidates:
        return Stop("max_candidates", f"max_candidates of {caps.max_candidates} reached ({tally.drawn} drawn)")
    if caps.max_cost is not None and tally.spent >= caps.max_cost - SLACK:
        return cost_stop(caps.max_cost, tally)
    if caps.max_cost is not None and _affordable(caps.max_cost, tally) < 1:
        left, each = caps.max_cost - tally.spent, tally.spent / tally.drawn
        return Stop(
            "max_cost",
            f"max_cost of ${caps.max_cost:g}: the ${left:.4f} left does not buy another candidate at ${each:.4f} each "
            f"(drawing and judging; ${tally.spent:.4f} spent on {tally.drawn} candidates)",
        )
    if caps.rounds is not None and round_no > caps.rounds:
        return Stop("rounds", f"--rounds {caps.rounds}: {caps.rounds} round(s) were run")
    if pool == 0:
        return Stop("pool", _empty_pool(held))
    return None


def _empty_pool(held: int) -> str:
    gone = "each has a survivor or left for good (discarded by a stage that is not hard_pool)"
    if not held:
        return f"no query is left to sample: {gone}"
    waits = "1 query waits" if held == 1 else f"{held} queries wait"
    return (
        f"no query is left to sample: {waits} for `refine retry` on its round (a candidate got no verdict: it is in "
        f"the round's errors.jsonl), and the others: {gone}"
    )


def cost_stop(max_cost: float, tally: Tally) -> Stop:
    return Stop(
        "max_cost",
        f"max_cost of ${max_cost:g} reached (${tally.spent:.4f} spent drawing and judging {tally.drawn} candidates)",
    )


def draw_size(caps: Caps, tally: Tally, available: int) -> int:
    """Candidates the next round draws, of the ``available`` ones (the pool's queries times samples)."""
    size = available
    if caps.target is not None:
        rate = max(tally.kept, 1) / tally.drawn if tally.drawn else 1.0
        size = min(size, math.ceil((caps.target - tally.kept) / rate))
    if caps.max_candidates is not None:
        size = min(size, caps.max_candidates - tally.drawn)
    if caps.max_cost is not None:
        size = int(min(size, _affordable(caps.max_cost, tally)))
    return max(size, 0)


def _affordable(max_cost: float, tally: Tally) -> float:
    """Candidates the rest of max_cost buys at the cost per candidate seen so far (inf before any was paid)."""
    if not tally.drawn or tally.spent <= 0:
        return math.inf
    return math.floor((max_cost - tally.spent) / (tally.spent / tally.drawn) + SLACK)


def select(base: Path, round_dirs: list[Path], target: int) -> tuple[int, int]:
    """Write the first ``target`` kept records of the rounds, in round and input order, to base/kept.jsonl
    and the rest to base/surplus.jsonl (removed when there is none); returns (selected, trimmed).

    The lines are copied as the rounds wrote them, byte for byte; each file appears whole or not at all.
    """
    lines = [line for folder in round_dirs for line in _kept_lines(folder)]
    _replace(base / KEPT, lines[:target])
    surplus = lines[target:]
    if surplus:
        _replace(base / SURPLUS, surplus)
    else:
        (base / SURPLUS).unlink(missing_ok=True)
    return min(len(lines), target), len(surplus)


def _kept_lines(folder: Path) -> list[bytes]:
    file = folder / KEPT
    if not file.exists():
        return []
    return [line if line.endswith(b"\n") else line + b"\n" for _, line in read_lines(file) if not line.isspace()]


def _replace(path: Path, lines: list[bytes]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(b"".join(lines))
    os.replace(tmp, path)
