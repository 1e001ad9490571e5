"""Everything the CLI draws with rich: the live progress display and the summary tables."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from funreason_refine.engine import Progress as EngineProgress


class RunDisplay:
    """A progress bar over the input bytes, with live outcome counts and records/s."""

    def __init__(self, console: Console, total_bytes: int, label: str):
        self.counts: Counter[str] = Counter()
        self._judge = ""
        self._bytes = 0
        self._last = 0.0
        self._start = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), TaskProgressColumn(),
            TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
            console=console, transient=False, disable=not console.is_terminal)
        self._task = self._progress.add_task(label, total=total_bytes, counts="")

    def __enter__(self) -> EngineProgress:
        self._progress.start()
        return EngineProgress(on_bytes=self._on_bytes, on_outcome=self._on_outcome, on_judge=self._on_judge)

    def _on_judge(self, stats: dict) -> None:
        self._judge = (f" | judge {stats['calls']} calls ({stats['in_flight']} in flight, {stats['cached']} cached), "
                       f"{stats['tokens']:,} tokens, ${stats['cost_usd']:.4f}")

    def __exit__(self, *exc: object) -> None:
        self._refresh()
        self._progress.stop()

    def _on_bytes(self, n: int) -> None:
        self._bytes += n

    def _on_outcome(self, kind: str) -> None:
        self.counts[kind] += 1
        now = time.perf_counter()
        if now - self._last > 0.1:  # rich redraws ten times a second; updating more often is waste
            self._last = now
            self._refresh()

    def _refresh(self) -> None:
        done = sum(self.counts.values())
        rate = done / max(time.perf_counter() - self._start, 1e-9)
        text = (f"[green]{self.counts['kept']} kept[/] [yellow]{self.counts['discarded']} discarded[/] "
                f"[magenta]{self.counts['quarantined']} quarantined[/] [red]{self.counts['errors']} errors[/] "
                f"{rate:,.0f} rec/s{self._judge}")
        self._progress.update(self._task, completed=self._bytes, counts=text)


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    outcomes = summary["outcomes"]
    total = summary["input"]["records"]
    head = Table(title=f"{total} input records", show_edge=False)
    for kind in ("kept", "discarded", "quarantined", "errors"):
        head.add_column(kind, justify="right")
    head.add_row(*(f"{outcomes[k]} ({outcomes[k] / total:.0%})" if total else "0" for k in outcomes))

    stages = Table(title="Verdicts per stage", caption="a record re-checked after a repair counts again",
                   show_edge=False)
    for col, justify in (("stage", "left"), ("passed", "right"), ("regenerated", "right"),
                         ("discarded", "right"), ("top reasons", "left")):
        stages.add_column(col, justify=justify)
    for name, s in summary["stages"].items():
        reasons = Counter()
        for verdict in ("discard", "regenerate"):
            reasons.update(s["reasons"].get(verdict, {}))
        top = ", ".join(f"{r} {n}" for r, n in reasons.most_common(3)) or "-"
        stages.add_row(name, str(s["passed"]), str(s["regenerated"]), str(s["discarded"]), top)
    return [head, stages]
