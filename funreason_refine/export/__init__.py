"""Training data from a run's kept records (a review's overrides applied): JSONL or Parquet, in the
formats of formats.py."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funreason_refine.errors import CallSyntaxError, RefineError
from funreason_refine.executors.layout import require_merged
from funreason_refine.export.formats import FORMATS, to_row
from funreason_refine.jsonl import read_jsonl, write_jsonl
from funreason_refine.overrides import OVERRIDES, read_decisions
from funreason_refine.record import Outcome

__all__ = ["FORMATS", "ExportResult", "export_reviewed", "export_run", "restorable", "to_row"]


@dataclass
class ExportResult:
    """What an export wrote, and what a person's review (overrides.jsonl) changed in it."""

    written: int = 0
    restored: int = 0  # discarded records a person marked as wrongly discarded: exported
    dropped: int = 0  # kept records a person marked as wrongly kept: left out
    stale: int = 0  # decisions on verdicts the run no longer has (it was redone): ignored
    unexportable: list[str] = field(default_factory=list)  # restored records with no answer to train on

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


def restorable(line: dict[str, Any], fmt: str) -> str | None:
    """Why a record a person restored cannot be written as training data, or None."""
    if line.get("answer") is None:
        return "its answer could not be read"
    try:
        to_row(line, fmt)
    except (CallSyntaxError, ValueError, TypeError, KeyError) as exc:  # it never passed the format stage
        return f"it cannot be written as {fmt}: {exc}"
    return None


def _reviewed(run_dir: Path, fmt: str, result: ExportResult) -> Iterator[dict[str, Any]]:
    """The kept records, without those a person marked wrongly kept, with those marked wrongly
    discarded, in input order."""
    require_merged(run_dir)
    file = run_dir / "kept.jsonl"
    if not file.exists():
        raise RefineError(f"{run_dir} has no kept.jsonl: give a run folder of `refine run`")
    decisions = read_decisions(run_dir)
    if not decisions.latest:
        yield from read_jsonl(file)
        return
    current: set[int] = set()
    restored = []
    if (run_dir / "discarded.jsonl").exists():
        for line in read_jsonl(run_dir / "discarded.jsonl"):
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
        for line in read_jsonl(file):
            if decisions.on(line, Outcome.KEPT):
                current.add(line["index"])
            if decisions.wrong(line, Outcome.KEPT):
                result.dropped += 1
            else:
                yield line

    yield from heapq.merge(kept(), restored, key=lambda r: r["index"])
    result.stale = len(set(decisions.latest) - current)


def export_run(run_dir: Path, fmt: str, out: Path) -> int:
    """Write the kept records of ``run_dir`` to ``out`` (Parquet when it ends in .parquet); returns the count."""
    return export_reviewed(run_dir, fmt, out).written


def export_reviewed(run_dir: Path, fmt: str, out: Path, dataset_info: bool = True) -> ExportResult:
    """As export_run, and say what the review's decisions (overrides.jsonl) changed. ``dataset_info``: for
    sharegpt, write LLaMA-Factory's dataset_info.json beside ``out``."""
    result = ExportResult()
    rows = (to_row(r, fmt) for r in _reviewed(Path(run_dir), fmt, result))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        import polars as pl

        collected = list(rows)
        if fmt == "openai":
            # In a table, rows with different message and tool schemas would gain each other's keys as
            # nulls: messages and tools are stored as JSON strings (the readers take both forms).
            collected = [
                {
                    **r,
                    "messages": [json.dumps(m, ensure_ascii=False) for m in r["messages"]],
                    "tools": json.dumps(r["tools"], ensure_ascii=False),
                }
                for r in collected
            ]
        pl.DataFrame(collected).write_parquet(out)
        result.written = len(collected)
    else:
        result.written = write_jsonl(out, rows)
    if fmt == "sharegpt" and dataset_info:
        info = {
            out.stem: {
                "file_name": out.name,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "tools": "tools"},
                "tags": {
                    "role_tag": "from",
                    "content_tag": "value",
                    "user_tag": "human",
                    "assistant_tag": "gpt",
                    "function_tag": "function_call",
                },
            }
        }
        (out.parent / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return result
