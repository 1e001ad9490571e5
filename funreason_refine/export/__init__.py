"""Training data from a run's kept records (a review's overrides applied): JSONL or Parquet, in the
formats of formats.py.

The output appears whole or not at all: it is written to a temporary file beside it and renamed.
A folder that is not a finished run (being written, interrupted, a line cut short) is refused,
unless ``allow_partial`` exports the records finished so far and the result says so.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funreason_refine.errors import CallSyntaxError, RefineError
from funreason_refine.export.formats import FORMATS, to_row
from funreason_refine.export.messages import UnplacedResults, without_cot
from funreason_refine.export.sharegpt import LlamaFactoryCheck
from funreason_refine.export.write import dataset_info_entries, parquet_problem, write_dataset_info, write_rows
from funreason_refine.overrides import OVERRIDES, Decisions, read_decisions
from funreason_refine.record import Outcome
from funreason_refine.run_folder import FILES
from funreason_refine.run_state import FolderState, finished_records, outcome_lines, readable_state

__all__ = ["FORMATS", "ExportResult", "export_reviewed", "export_run", "restorable", "reviewed_lines", "to_row"]


@dataclass
class ExportResult:
    """What an export wrote, and what a person's review (overrides.jsonl) changed in it."""

    written: int = 0
    restored: int = 0  # discarded records a person marked as wrongly discarded: exported
    dropped: int = 0  # kept records a person marked as wrongly kept: left out
    stale: int = 0  # decisions on verdicts the run no longer has (it was redone): ignored
    unexportable: list[str] = field(default_factory=list)  # restored records with no answer to train on
    partial: FolderState | None = None  # the folder, when it was not a finished run (allow_partial)
    finished: int = 0  # with ``partial``: the records the run had finished
    warnings: list[str] = field(default_factory=list)  # lines of overrides.jsonl cut short, ignored

    def describe(self) -> str | None:
        """One line on the overrides applied, or None when there were none."""
        if not (self.restored or self.dropped or self.stale or self.unexportable):
            return None
        parts = [f"{self.restored} wrongly discarded record(s) restored", f"{self.dropped} wrongly kept left out"]
        if self.stale:
            parts.append(f"{self.stale} stale decision(s) ignored (their verdict changed since the review)")
        if self.unexportable:
            parts.append(f"restored but not exportable: {'; '.join(self.unexportable)}")
        return f"applied the review ({OVERRIDES}): " + "; ".join(parts)

    def partial_warning(self) -> str | None:
        """What a partial export holds and lacks, or None for a finished run."""
        if self.partial is None:
            return None
        return (
            f"{self.partial.describe()}. Exported {self.written} record(s) of the {self.finished} input record(s) the "
            "run had finished (kept, discarded, quarantined or errors); a record it had not finished is not among "
            f"them. {self.partial.remedy()}, then export again"
        )


def restorable(line: dict[str, Any], fmt: str) -> str | None:
    """Why a record a person restored cannot be written as training data, or None."""
    if line.get("answer") is None:
        return "its answer could not be read"
    try:
        to_row(line, fmt)
    except (CallSyntaxError, ValueError, TypeError, KeyError) as exc:  # it never passed the format stage
        return f"it cannot be written as {fmt}: {exc}"
    return None


def _lines(run_dir: Path, outcome: Outcome, partial: bool) -> Iterator[dict[str, Any]]:
    file = run_dir / FILES[outcome]
    if file.exists():
        yield from outcome_lines(file, partial)


def _reviewed(run_dir: Path, fmt: str, result: ExportResult, decisions: Decisions) -> Iterator[dict[str, Any]]:
    """The kept records, without those a person marked wrongly kept, with those marked wrongly
    discarded, in input order."""
    partial = result.partial is not None
    if not decisions.latest:
        yield from _lines(run_dir, Outcome.KEPT, partial)
        return
    current: set[int] = set()
    restored = []
    for line in _lines(run_dir, Outcome.DISCARDED, partial):
        if decisions.on(line, Outcome.DISCARDED):
            current.add(line["index"])
        if decisions.wrong(line, Outcome.DISCARDED):
            problem = restorable(line, fmt)
            if problem:
                result.unexportable.append(f"record {line['index']} (id {line.get('id')}): {problem}")
            else:
                restored.append(line)
    result.restored = len(restored)

    def kept() -> Iterator[dict[str, Any]]:
        for line in _lines(run_dir, Outcome.KEPT, partial):
            if decisions.on(line, Outcome.KEPT):
                current.add(line["index"])
            if decisions.wrong(line, Outcome.KEPT):
                result.dropped += 1
            else:
                yield line

    yield from heapq.merge(kept(), restored, key=lambda r: r["index"])
    result.stale = len(set(decisions.latest) - current)


class _TextBesideCalls:
    """The assistant turns that wrote text beside their calls, which the funreason format (the paper's target,
    ``<think>...</think>\n\n[calls]``) has no place for: counted, so that the export says what it left out."""

    def __init__(self) -> None:
        self.turns = 0
        self.records = 0
        self.first = ""

    def count(self, line: dict[str, Any]) -> dict[str, Any]:
        turns = sum(
            1
            for m in line.get("messages") or ()
            if m.get("role") == "assistant"
            and isinstance(m.get("answer"), list)
            and m.get("answer")
            and m.get("content")
        )
        if turns:
            self.turns, self.records = self.turns + turns, self.records + 1
            self.first = self.first or f"record {line.get('index')} (id {line.get('id')})"
        return line

    def warning(self) -> str:
        return (
            f"{self.turns} assistant turn(s) of {self.records} record(s) wrote text beside their calls, which the "
            f"funreason format has no place for: exported without it (the first: {self.first}). --format openai, "
            "hermes or sharegpt keeps it"
        )


def _calls_with_text(message: dict[str, Any]) -> bool:
    answer = message.get("answer")
    return message.get("role") == "assistant" and isinstance(answer, list) and bool(answer and message.get("content"))


def _rows(
    lines: Iterator[dict[str, Any]], fmt: str, parquet: bool, check: LlamaFactoryCheck | None
) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            row = to_row(line, fmt)
        except (CallSyntaxError, ValueError, TypeError, KeyError) as exc:
            stage = "conversation" if isinstance(exc, UnplacedResults) else "format"
            raise RefineError(
                f"record {line.get('index')} (id {line.get('id')}) cannot be written as {fmt}: {exc}. Nothing was "
                f"written; run the pipeline with the {stage} stage, or export another format"
            ) from None
        problem = parquet_problem(row, fmt) if parquet else None
        if problem is not None:
            raise RefineError(
                f"record {line.get('index')} (id {line.get('id')}) cannot be written as {fmt} in Parquet: {problem}. "
                "Nothing was written"
            )
        if check is not None:
            check.see(line, row)
        yield row


def reviewed_lines(
    run_dir: Path, fmt: str, allow_partial: bool = False, *, doing: str = "export", offer_partial: bool = True
) -> tuple[Iterator[dict[str, Any]], ExportResult]:
    """The run-folder lines an export of ``run_dir`` in ``fmt`` writes, in input order: its kept records with
    a review's decisions (overrides.jsonl) applied; and the ExportResult that counts what the review changed,
    complete once every line has been read. Refused as an export is: a folder that is not a finished run is a
    PartialRun unless ``allow_partial`` (``doing`` names what is refused; ``offer_partial``: the refusal offers
    --allow-partial), unreadable decisions an UnreadableDecisions, a damaged line an UnreadableLine."""
    run_dir = Path(run_dir)
    state = readable_state(run_dir, doing, allow_partial, offer_partial)
    decisions = read_decisions(run_dir)
    result = ExportResult(partial=None if state.complete else state, warnings=decisions.check())
    if state.stopped is not None:
        result.warnings.append(
            f"{state.stop_note()}, then {doing} again (this {doing} holds what it kept before it stopped)"
        )
    return _reviewed(run_dir, fmt, result, decisions), result


def export_run(run_dir: Path, fmt: str, out: Path) -> int:
    """Write the kept records of ``run_dir`` to ``out`` (Parquet when it ends in .parquet); returns the count."""
    return export_reviewed(run_dir, fmt, out).written


def export_reviewed(
    run_dir: Path,
    fmt: str,
    out: Path,
    allow_partial: bool = False,
    dataset_info: bool = True,
    with_cot: bool = True,
) -> ExportResult:
    """As export_run, and say what the review's decisions (overrides.jsonl) changed. A folder that is not a
    finished run is refused (PartialRun) unless ``allow_partial``: then the result's ``partial`` says so.
    ``dataset_info``: for sharegpt, write LLaMA-Factory's dataset_info.json beside ``out``; ``with_cot``
    False: write every assistant turn without its CoT."""
    run_dir, out = Path(run_dir), Path(out)
    lines, result = reviewed_lines(run_dir, fmt, allow_partial)
    if not with_cot:
        lines = map(without_cot, lines)
    if fmt == "sharegpt" and dataset_info:
        dataset_info_entries(out.parent / "dataset_info.json")  # refused before anything is written
    lost = _TextBesideCalls() if fmt == "funreason" else None
    check = LlamaFactoryCheck() if fmt == "sharegpt" else None
    rows = _rows(lines if lost is None else map(lost.count, lines), fmt, out.suffix == ".parquet", check)
    result.written = write_rows(out, rows, fmt)
    if lost is not None and lost.turns:
        result.warnings.append(lost.warning())
    if check is not None and check.warning():
        result.warnings.append(str(check.warning()))
    if result.partial is not None:
        result.finished = finished_records(run_dir)
    if check is not None and dataset_info:
        write_dataset_info(out, system=check.system)
    return result
