"""One record through the stages: rule checks, judges, regenerations, the verdict trail.

``refine_record`` is a coroutine so that judges can be awaited; without a judge it never waits,
and ``run_sync`` drives it with no event loop. The engine's rules-only runs use ``refine_batch``:
many records, stage by stage, each with the outcome ``refine_record`` gives it.
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from funreason_refine.calls import same_calls
from funreason_refine.config import ConfiguredStage
from funreason_refine.judge.client import JudgeCallError
from funreason_refine.judge.runner import JudgeRunner
from funreason_refine.record import DiscardedRecord, ErroredRecord, Record, Step, Verdict
from funreason_refine.targets import answer_text


@dataclass
class Outcome:
    kind: str  # kept, discarded or errors
    record: Record
    stage: str | None = None
    reason: str | None = None
    message: str = ""

    def line(self) -> Record:
        """The model written to the outcome file."""
        if self.kind in ("discarded", "hard"):
            return DiscardedRecord.model_construct(
                **dict(self.record), stage=self.stage, reason=self.reason, message=self.message
            )
        if self.kind == "errors":
            return ErroredRecord.model_construct(**dict(self.record), stage=self.stage, error=self.message)
        return self.record


def _same_answer(a: Record, b: Record) -> bool:
    if isinstance(a.answer, list) and isinstance(b.answer, list):
        return same_calls(a.answer, b.answer)
    return type(a.answer) is type(b.answer) and a.answer == b.answer


def _step(
    stage: str, verdict: str, reason: str | None, message: str, attempt: int, judge: str, before: str | None = None
) -> Step:
    if before is None:
        return _shared_step(stage, verdict, reason, message, attempt, judge)
    return Step.model_construct(
        stage=stage, verdict=verdict, reason=reason, message=message, attempt=attempt, judge=judge, before=before
    )


@lru_cache(maxsize=4096)
def _shared_step(stage: str, verdict: str, reason: str | None, message: str, attempt: int, judge: str) -> Step:
    """Most steps are the same few (every stage's plain pass): one frozen Step each, not one per record."""
    return Step.model_construct(
        stage=stage, verdict=verdict, reason=reason, message=message, attempt=attempt, judge=judge, before=None
    )


async def refine_record(
    record: Record, stages: list[ConfiguredStage], judge: JudgeRunner | None = None, owned: bool = False
) -> Outcome:
    """Run one record through the stages, asking judges where configured; return where it ends.

    Without a judge this coroutine never waits (``run_sync`` drives it).
    The trail is filled as the stages give verdicts (a stage sees the verdicts before its own).
    ``owned=True`` hands the record over (the engine's reader just built it): its own empty trail
    list is filled, instead of a copy's.
    """
    return await _refine(record, stages, judge, owned, turns=False)


class _StageTurn:
    """What a record refined by refine_batch awaits before each check: the stage it is ready for."""

    __slots__ = ("stage",)

    def __init__(self, stage: int):
        self.stage = stage

    def __await__(self) -> Any:
        yield self


def refine_batch(records: list[Record], stages: list[ConfiguredStage]) -> list[Outcome]:
    """Refine records rules-only (handed over, as ``owned``), stage by stage; their outcomes in order.

    Each record gets exactly the checks, verdicts and trail that ``refine_record`` gives it
    alone; only the order across records changes: every record ready for the first stage is
    checked, then every record ready for the next, and so on (a regenerated record goes back to
    its stage, and to earlier ones when they re-check a changed answer). One stage's code and
    data then stay in the CPU caches through the batch: a tenth less CPU per record in a whole
    run, with a few dozen records at a time (docs/benchmarks.md). Stages are deterministic and judge each record
    alone (the Stage contract), so the outcomes are the same.
    """
    outcomes: list[Any] = [None] * len(records)
    ready: dict[int, list[tuple[int, Coroutine[Any, Any, Outcome]]]] = {}

    def advance(position: int, refinement: Coroutine[Any, Any, Outcome]) -> None:
        """Run one record to its next check (done and waiting for its stage's turn), or to its end."""
        try:
            turn = refinement.send(None)
        except StopIteration as stop:
            outcomes[position] = stop.value
            return
        ready.setdefault(turn.stage, []).append((position, refinement))

    for position, record in enumerate(records):
        advance(position, _refine(record, stages, None, True, turns=True))
    while ready:
        for position, refinement in ready.pop(min(ready)):
            advance(position, refinement)
    return outcomes


async def _refine(
    record: Record, stages: list[ConfiguredStage], judge: JudgeRunner | None, owned: bool, turns: bool
) -> Outcome:
    """refine_record; with ``turns``, wait for each stage's turn (refine_batch; rules only)."""
    if owned and not record.trail:
        trail = record.trail
    else:
        trail = []
        record = record.model_copy(update={"trail": trail})
    regenerations = [0] * len(stages)
    todo = deque(range(len(stages)))

    def leave(kind: str, stage: str | None = None, reason: str | None = None, message: str = "") -> Outcome:
        # Stages return copies (model_copy), which share the trail list; one that built its own
        # record gets the trail put back.
        final = record if record.trail is trail else record.model_copy(update={"trail": trail})
        return Outcome(kind, final, stage, reason, message)

    generator = judge.generator if judge is not None else None
    if generator is not None and record.is_call_answer and not (record.cot or "").strip():
        try:
            record = await judge.generate_cot(record)  # type: ignore[union-attr]
        except JudgeCallError as exc:
            return leave("errors", "generate", None, str(exc))
        trail.append(
            _step("generate", "regenerate", "generated_cot", "CoT written for a record without one", 1, generator.model)
        )

    while todo:
        i = todo.popleft()
        st = stages[i]
        attempt = regenerations[i] + 1
        if turns:
            await _StageTurn(i)
        try:
            verdict = _check(st, record)
        except StageTimeout:
            return leave(
                "errors",
                st.name,
                None,
                f"stage {st.name} (plugin {st.plugin}) did not answer within {st.timeout:g} s ([[stages]] timeout)",
            )
        except Exception as exc:  # a plugin bug must not take the run down: the record goes to errors
            return leave(
                "errors", st.name, None, f"stage {st.name} (plugin {st.plugin}) raised {type(exc).__name__}: {exc}"
            )
        if not isinstance(verdict, Verdict) or (verdict.record is not None and not isinstance(verdict.record, Record)):
            return leave(
                "errors",
                st.name,
                None,
                f"stage {st.name} (plugin {st.plugin}) returned {type(verdict).__name__}, not a Verdict",
            )
        label = "rules"
        stage_judge = judge.for_stage(st.name) if judge is not None else None
        if stage_judge is not None and verdict.action == "pass" and not verdict.final:
            # The rules passed; the judge decides what rules cannot.
            if verdict.record is not None:
                record = _same_identity(verdict.record, record)
            trail.append(_step(st.name, "pass", verdict.reason, verdict.message, attempt, "rules"))
            try:
                judged = await judge.ask(stage_judge, record)  # type: ignore[union-attr]
            except JudgeCallError as exc:
                return leave("errors", st.name, None, str(exc))
            if judged is None:
                continue
            verdict, label = judged, stage_judge.label
        action = verdict.action
        if (
            action == "discard"
            and st.on_fail == "regenerate"
            and st.stage.regenerates == "cot"
            and generator is not None
        ):
            if regenerations[i] >= st.max_attempts:
                trail.append(_step(st.name, "discard", verdict.reason, verdict.message, attempt, label))
                return leave(
                    "discarded",
                    st.name,
                    verdict.reason or "unspecified",
                    f"still failing after {st.max_attempts} rewritten CoT(s): {verdict.message}",
                )
            trail.append(
                _step(
                    st.name,
                    "regenerate",
                    verdict.reason,
                    f"{verdict.message} (CoT rewritten)",
                    attempt,
                    label,
                    before=record.cot,
                )
            )
            try:
                record = await judge.generate_cot(record, fresh=True)  # type: ignore[union-attr]
            except JudgeCallError as exc:
                return leave("errors", "generate", None, str(exc))
            regenerations[i] += 1
            todo.appendleft(i)
            continue
        if action == "regenerate" and st.on_fail in ("discard", "hard_pool"):
            action = "discard"
        trail.append(
            _step(
                st.name,
                action,
                verdict.reason,
                verdict.message,
                attempt,
                label,
                before=answer_text(record) if action == "regenerate" else None,
            )
        )
        if action == "discard":
            kind = "hard" if st.on_fail == "hard_pool" else "discarded"
            return leave(kind, st.name, verdict.reason or "unspecified", verdict.message)
        if action == "pass":
            if verdict.record is not None:
                record = _same_identity(verdict.record, record)
            if verdict.final:
                break
            continue
        if verdict.record is None:
            return leave(
                "errors",
                st.name,
                None,
                f"stage {st.name} (plugin {st.plugin}) asked to regenerate without a corrected record",
            )
        if regenerations[i] >= st.max_attempts:
            return leave(
                "discarded",
                st.name,
                verdict.reason or "unspecified",
                f"still failing after {st.max_attempts} regeneration(s): {verdict.message}",
            )
        regenerations[i] += 1
        new = _same_identity(verdict.record, record)
        answer_changed = not _same_answer(new, record)
        record = new
        todo.appendleft(i)
        if answer_changed:
            for j in reversed(range(i)):
                if stages[j].stage.recheck_on_answer_change:
                    todo.appendleft(j)
    return leave("kept")


class StageTimeout(BaseException):
    """A check ran past its timeout. BaseException, so a plugin's ``except Exception`` cannot eat it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise StageTimeout()


def _check(st: ConfiguredStage, record: Record) -> Verdict:
    """Run a stage's check, interrupting it after ``st.timeout`` seconds.

    SIGALRM interrupts Python code only in the main thread (checks in worker processes run
    there too); elsewhere, and for checks with no timeout, the check runs as it is.
    """
    if st.timeout is None or threading.current_thread() is not threading.main_thread():
        return st.stage.check(record)
    if signal.getsignal(signal.SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, st.timeout)
    try:
        return st.stage.check(record)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_sync(coro: Any) -> Any:
    """Drive a coroutine that never waits (a rules-only refinement) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a rules-only refinement tried to wait for I/O")


def _same_identity(new: Record, old: Record) -> Record:
    """Index and source belong to the engine; a stage cannot move a record."""
    if new.index == old.index and (new.source is old.source or new.source == old.source):
        return new
    return new.model_copy(update={"index": old.index, "source": old.source})
