"""The engine: stream records from the reader through the stages into the run folder.

Data flows one way: reader -> stages -> run folder -> summary. Each record leaves in exactly
one of kept / discarded / quarantined / errors; this is asserted at the end of every run.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from funreason_refine import __version__
from funreason_refine.config import ConfiguredStage, Pipeline
from funreason_refine.errors import RunFolderError
from funreason_refine.readers import InputStream
from funreason_refine.record import Quarantined, Record, Step, Verdict
from funreason_refine.run_folder import RunFolder


class DiscardedRecord(Record):
    stage: str
    reason: str
    message: str


class ErroredRecord(Record):
    stage: str
    error: str


@dataclass
class Outcome:
    kind: str  # kept, discarded or errors
    record: Record
    stage: str | None = None
    reason: str | None = None
    message: str = ""

    def line(self) -> Record:
        """The model written to the outcome file."""
        fields = dict(self.record)
        if self.kind == "discarded":
            return DiscardedRecord.model_construct(**fields, stage=self.stage, reason=self.reason, message=self.message)
        if self.kind == "errors":
            return ErroredRecord.model_construct(**fields, stage=self.stage, error=self.message)
        return self.record


def _answer_key(record: Record) -> str:
    answer = record.answer
    if isinstance(answer, list):
        return json.dumps([c.model_dump() for c in answer], sort_keys=True)
    return json.dumps(answer)


async def refine_record(record: Record, stages: list[ConfiguredStage]) -> Outcome:
    """Run one record through the stages; return where it ends."""
    trail: list[Step] = []
    regenerations = [0] * len(stages)
    todo = deque(range(len(stages)))

    def leave(kind: str, stage: str | None = None, reason: str | None = None, message: str = "") -> Outcome:
        return Outcome(kind, record.model_copy(update={"trail": trail}), stage, reason, message)

    while todo:
        i = todo.popleft()
        st = stages[i]
        attempt = regenerations[i] + 1
        try:
            verdict = st.stage.check(record)
        except Exception as exc:  # a plugin bug must not take the run down: the record goes to errors
            return leave("errors", st.name, None, f"stage {st.name} (plugin {st.plugin}) raised "
                                                 f"{type(exc).__name__}: {exc}")
        if not isinstance(verdict, Verdict) or (verdict.record is not None and not isinstance(verdict.record, Record)):
            return leave("errors", st.name, None, f"stage {st.name} (plugin {st.plugin}) returned "
                                                 f"{type(verdict).__name__}, not a Verdict")
        action = verdict.action
        if action == "regenerate" and st.on_fail == "discard":
            action = "discard"
        trail.append(Step(stage=st.name, verdict=action, reason=verdict.reason, message=verdict.message,
                          attempt=attempt))
        if action == "discard":
            return leave("discarded", st.name, verdict.reason or "unspecified", verdict.message)
        if action == "pass":
            if verdict.record is not None:
                record = _same_identity(verdict.record, record)
            if verdict.final:
                break
            continue
        if verdict.record is None:
            return leave("errors", st.name, None, f"stage {st.name} (plugin {st.plugin}) asked to regenerate "
                                                 "without a corrected record")
        if regenerations[i] >= st.max_attempts:
            return leave("discarded", st.name, verdict.reason or "unspecified",
                         f"still failing after {st.max_attempts} regeneration(s): {verdict.message}")
        regenerations[i] += 1
        new = _same_identity(verdict.record, record)
        answer_changed = _answer_key(new) != _answer_key(record)
        record = new
        todo.appendleft(i)
        if answer_changed:
            for j in reversed(range(i)):
                if stages[j].stage.recheck_on_answer_change:
                    todo.appendleft(j)
    return leave("kept")


def _same_identity(new: Record, old: Record) -> Record:
    """Index and source belong to the engine; a stage cannot move a record."""
    if new.index == old.index and new.source == old.source:
        return new
    return new.model_copy(update={"index": old.index, "source": old.source})


@dataclass
class Progress:
    """What the engine reports while it runs; the CLI draws it."""

    on_bytes: Callable[[int], None] | None = None
    on_outcome: Callable[[str], None] | None = None


@dataclass
class RunResult:
    summary: dict[str, Any]
    out_dir: Any
    resumed: int = 0
    timings: dict[str, float] = field(default_factory=dict)


async def run_pipeline(pipeline: Pipeline, limit: int | None = None, progress: Progress | None = None) -> RunResult:
    progress = progress or Progress()
    stream = InputStream(pipeline.input.path, pipeline.input.format, pipeline.input.answers,
                         pipeline.input.max_record_bytes)
    folder = RunFolder(pipeline.output_dir)
    folder.open()
    resumed = folder.resumed
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    seen = 0
    try:
        for item in stream.items(skip=folder.done, limit=limit, on_bytes=progress.on_bytes):
            if isinstance(item, Quarantined):
                folder.write("quarantined", item.index, item)
                folder.tally.add("quarantined")
                kind = "quarantined"
            else:
                outcome = await refine_record(item, pipeline.stages)
                folder.write(outcome.kind, item.index, outcome.line())
                folder.tally.add(outcome.kind, ((s.stage, s.verdict, s.reason) for s in outcome.record.trail),
                                 outcome.stage, outcome.reason)
                kind = outcome.kind
            seen += 1
            if progress.on_outcome is not None:
                progress.on_outcome(kind)
        total_input = stream.count
    finally:
        folder.close()
    seconds = time.perf_counter() - t0
    if folder.tally.total != total_input or len(folder.done) != total_input:
        raise RunFolderError(f"accounting error: {total_input} input records but {folder.tally.total} outcomes "
                             f"in {folder.path}; please report this with the run folder")
    summary = {
        "version": __version__,
        "pipeline": str(pipeline.path),
        "config_hash": pipeline.config_hash,
        "input": {"path": str(pipeline.input.path), "format": stream.format, "records": total_input,
                  "limit": limit},
        **folder.tally.as_dict([s.name for s in pipeline.stages]),
        "judge": {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "model": None},
        "timings": {"started": started.isoformat(timespec="seconds"),
                    "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "seconds": round(seconds, 3), "records_this_run": seen, "resumed_records": resumed,
                    "records_per_second": round(seen / seconds, 1) if seconds > 0 else None},
    }
    folder.write_summary(summary)
    return RunResult(summary=summary, out_dir=folder.path, resumed=resumed)
