"""One record through the stages: the policy that turns verdicts into its way and its end.

``Refinement`` holds the whole policy; ``refine_record`` runs it on rules alone,
``refine_judged`` is the same loop with the stages' judges and generators asked between.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel

from funreason_refine.calls import same_answer
from funreason_refine.conversation import cut_before, focus, owned, store, turn_count
from funreason_refine.memo import Memo
from funreason_refine.record import Action, DiscardedRecord, ErroredRecord, Outcome, Record, Step, Verdict, changed
from funreason_refine.run_folder import Written, to_json_line
from funreason_refine.stages.base import REPAIRED, TAKES_REPAIRS, PipelineStage, changed_content
from funreason_refine.stages.timeout import StageFailed
from funreason_refine.targets import answer_as_text, answer_text

if TYPE_CHECKING:
    from funreason_refine.audit.features import Features
    from funreason_refine.judge.runner import JudgeRunner


@dataclass
class Finished:
    """Where a record ends (an outcome file), as it is then, and why it left early."""

    outcome: Outcome
    record: Record
    stage: str | None = None
    reason: str | None = None
    message: str = ""

    def line(self) -> BaseModel:
        """The model written to the outcome file."""
        if self.outcome in (Outcome.DISCARDED, Outcome.HARD):
            return DiscardedRecord.model_construct(
                **dict(self.record), stage=self.stage or "", reason=self.reason or "", message=self.message
            )
        if self.outcome is Outcome.ERRORS:
            return ErroredRecord.model_construct(
                **dict(self.record), stage=self.stage or "", error=self.message, reason=self.reason
            )
        return self.record

    def written(self, features: Callable[[Record], Features] | None = None) -> Written:
        """The record serialised for the run folder, with what the tally counts of its trail and, for a
        kept record, what the dataset audits read of it (``features``)."""
        trail = tuple(map(_counted, self.record.trail))
        line = to_json_line(self.line())
        audited = features(self.record) if features is not None and self.outcome is Outcome.KEPT else None
        scores = tuple((s.stage, s.score) for s in self.record.trail if s.score is not None)
        return Written(self.record.index, self.outcome, line, trail, self.stage, self.reason, audited, scores)


StepFields = tuple[str, Action, str | None, str, int, str, int | None]


def _new_step(fields: StepFields, before: str | None = None, score: float | None = None) -> Step:
    stage, verdict, reason, message, attempt, by, turn = fields
    return Step.model_construct(
        stage=stage,
        verdict=verdict,
        reason=reason,
        message=message,
        attempt=attempt,
        judge=by,
        before=before,
        turn=turn,
        score=score,
    )


# Most steps are the same few (every stage's plain pass): one frozen Step each, not one per record,
# and what the tally counts of each, worked out once.
_shared_steps: Memo[StepFields, Step] = Memo(_new_step, max_size=4096)
_counted: Memo[Step, tuple[str, str, str | None]] = Memo(
    lambda s: (s.stage, s.verdict, s.reason), max_size=4096, by_identity=True
)


INPUT_STAGE = "input"
"""The stage name of a record discarded because no stage of its pipeline checked what could not be read."""


def unread_answer(record: Record) -> str | None:
    """What says an answer of ``record`` (of any turn of a conversation) could not be read; None when all were."""
    if record.is_conversation:
        unread = any(m.role == "assistant" and m.answer is None for m in record.messages)
    else:
        unread = record.answer is None
    if not unread:
        return None
    problem = next((p for p in record.problems if p.code == "malformed_answer"), None)
    return problem.message if problem is not None else "an answer could not be read"


class Rewrite(NamedTuple):
    """A field the stage's generator must write anew before the stage checks the record again."""

    stage: PipelineStage
    attempt: int


class Refinement:
    """One record's way through the stages: which stage checks it next, and what a verdict leads to.

    - pass: on to the next stage (``final``: no more stages); a pass may bring derived fields;
    - discard: the record leaves (to the hard pool when the stage's on_fail is "hard_pool"),
      unless the stage has a generator (on_fail "regenerate"): then the field the stage names is
      rewritten (``rewrite`` says so) and the stage checks the record again;
    - regenerate: the corrected record is checked again from the same stage, and when what it says
      changed (its answer, query, tools, system prompt, conversation or CoT), first by the earlier stages
      that re-check a changed record (``recheck_on_answer_change``: every built-in stage), so that a new
      record, whoever wrote it, passes every check the old one passed before it is kept; on_fail
      "discard" or "hard_pool" (the pipeline chose dropping over repairing) makes it a discard whose
      message says the repair was not applied;
    - a stage regenerates a record at most ``max_attempts`` times, then the record is discarded.

    A conversation goes through the stages once per assistant turn, in order, that turn in focus
    (conversation.py); ``final`` ends its turn's checks, and a stage whose on_fail is "truncate"
    keeps the conversation up to the turn before the one it fails (dropping it if none is left).
    Stages for conversations only (``conversations_only``) do not check single-turn records.
    Every verdict goes into the record's trail as it comes, so a stage sees those before its own.
    """

    def __init__(self, record: Record, stages: list[PipelineStage]):
        self.trail: list[Step] = []
        # a conversation gets its own copy of its messages, which store() writes in place
        self.record = changed(owned(record), {"trail": self.trail})
        self.conversation = record.is_conversation
        self.stages = stages if self.conversation else [s for s in stages if not s.stage.conversations_only]
        self.turns = turn_count(self.record)
        self.finished: Finished | None = None
        self.rewrite: Rewrite | None = None  # set when the current stage's generator must rewrite a field
        if self.conversation:
            self.record = focus(self.record, 0)
        self._begin(0)

    def _begin(self, turn: int) -> None:
        self._turn = turn
        self._given = self.record.answer  # the turn's answer as read, to say when a discard is of a repair's
        self._todo = deque(range(len(self.stages)))
        self._attempts = [0] * len(self.stages)
        self._at = 0

    def next_stage(self) -> PipelineStage | None:
        """The stage to check the record next; None once the record is finished (kept, if nothing else)."""
        while self.finished is None and not self._todo:
            if self._turn + 1 < self.turns:  # the next turn of a conversation
                self.record = focus(store(self.record), self._turn + 1)
                self._begin(self._turn + 1)
            else:
                self._keep()
        if self.finished is not None:
            return None
        self._at = self._todo.popleft()
        return self.stages[self._at]

    def _keep(self) -> None:
        """Kept, once every stage passed it; unless an answer could not be read, which a pipeline without
        the classification stage (that discards such records) would keep without a training target."""
        unread = unread_answer(store(self.record))
        if unread is None:
            self._finish(Outcome.KEPT)
            return
        message = (
            f"{unread}; no stage of this pipeline discards a record whose answer cannot be read (classification "
            "does): it cannot be kept"
        )
        fields: StepFields = (INPUT_STAGE, Action.DISCARD, "malformed_answer", message, 1, "rules", None)
        self.trail.append(_new_step(fields))
        self._finish(Outcome.DISCARDED, INPUT_STAGE, "malformed_answer", message)

    def settle(self, verdict: Verdict, by: str = "rules") -> None:
        """Apply the current stage's verdict, decided by ``by`` (rules, or the judges' label). A verdict that
        cannot be applied sends its record to errors.jsonl naming the stage: never the run."""
        before, steps = self.record, len(self.trail)
        try:
            self._apply(verdict, by)
        except Exception as exc:  # PipelineStage.check validates what stages return; this is the last guard
            stage = self.stages[self._at]
            self.record, self.rewrite, self.finished = before, None, None
            del self.trail[steps:]  # no step of a verdict that was not applied
            self.fail(
                f"stage {stage.name} (plugin {stage.plugin}): its {verdict.action} verdict could not be applied: "
                f"{type(exc).__name__}: {exc}. Check the fields of the verdict and of the record it returns "
                "(docs/plugins.md, The stage contract)"
            )

    def _apply(self, verdict: Verdict, by: str) -> None:
        stage = self.stages[self._at]
        action = verdict.action
        if action is Action.DISCARD and stage.generator is not None and self.record.answer is not None:
            self._ask_rewrite(stage, verdict, by)  # a record whose answer could not be read is never rewritten
        elif action is Action.REGENERATE and stage.on_fail not in TAKES_REPAIRS:
            # on_fail is the pipeline's choice between repairing and dropping: the record says which it was
            self._discard(
                stage,
                verdict,
                by,
                f' (a repair, not applied: on_fail is "{stage.on_fail}"; on_fail = "regenerate" applies it)',
            )
        elif action is Action.PASS:
            self.note(verdict, by)
            if verdict.final:
                self._todo.clear()
        elif action is Action.DISCARD:
            self._discard(stage, verdict, by)
        else:
            self._regenerate(stage, verdict, by)

    def note(self, verdict: Verdict, by: str = "rules") -> None:
        """A pass of the current stage into the trail, its derived fields taken; the stage stays current
        (a judge may still decide on it). PipelineStage.check has refused a pass that changes the answer."""
        self._add(self.stages[self._at], Action.PASS, verdict, by)
        if verdict.record is not None:
            self.record = _same_identity(verdict.record, self.record)

    def rewritten(self, record: Record) -> None:
        """The record as the generator rewrote it; its stage checks it again."""
        self.record = _same_identity(record, self.record)
        self.rewrite = None

    def fail(self, message: str, reason: str | None = None) -> None:
        """An infrastructure failure (a broken check, a judge that cannot be reached): to errors.jsonl;
        ``reason`` codes a failure that no retry alone can fix (a prompt over the model's context window)."""
        self._finish(Outcome.ERRORS, self.stages[self._at].name, reason, message)

    def too_long(self, reason: str, message: str) -> None:
        """A prompt of the current stage over its model's limit: the record leaves as a discard of the stage's
        rules (a conversation with on_fail = "truncate" keeps its turns before), never rewritten."""
        self._discard(self.stages[self._at], Verdict.discard(reason, message), "rules")

    def _discard(self, stage: PipelineStage, verdict: Verdict, by: str, note: str = "") -> None:
        reason = verdict.reason or "unspecified"
        if stage.on_fail == "truncate" and self.conversation:
            kept = cut_before(store(self.record), self._turn)
            if kept is not None:
                self._add(stage, Action.DISCARD, verdict, by, note=f" (conversation kept up to turn {self._turn - 1})")
                self.record = kept
                self._given = kept.answer  # the turn now in focus is as read: no repair to speak of
                self._keep()
                return
        self._add(stage, Action.DISCARD, verdict, by, note=note)
        outcome = Outcome.HARD if stage.on_fail == "hard_pool" else Outcome.DISCARDED
        self._finish(outcome, stage.name, reason, verdict.message + note)

    def _repaired(self) -> bool:
        """Whether the turn's answer is no longer the one read: a repair wrote it."""
        answer = self.record.answer
        return answer is not self._given and self._given is not None and not same_answer(answer, self._given)

    def _regenerate(self, stage: PipelineStage, verdict: Verdict, by: str) -> None:
        self._add(stage, Action.REGENERATE, verdict, by, before=answer_text(self.record))
        if verdict.record is None:
            self.fail(f"stage {stage.name} (plugin {stage.plugin}) asked to regenerate without a corrected record")
        elif self._attempts[self._at] >= stage.max_attempts:
            self._give_up(stage, verdict, "regeneration(s)")
        else:
            new = _same_identity(verdict.record, self.record)
            self._again(recheck=bool(changed_content(new, self.record, REPAIRED)))
            self.record = new

    def _ask_rewrite(self, stage: PipelineStage, verdict: Verdict, by: str) -> None:
        field = stage.stage.regenerates
        if self._attempts[self._at] >= stage.max_attempts:
            self._add(stage, Action.DISCARD, verdict, by)
            self._give_up(stage, verdict, f"rewritten {field}(s)")
            return
        model = stage.generator.model if stage.generator is not None else ""
        before = getattr(self.record, field or "", None)
        self._add(stage, Action.REGENERATE, verdict, by, before=before, note=f" ({field} rewritten by {model})")
        self._again(recheck=False)
        self.rewrite = Rewrite(stage, self._attempts[self._at])

    def _again(self, recheck: bool) -> None:
        """Check the record again at the current stage; first at the earlier stages that re-check a
        changed answer, when ``recheck`` (their rules and judges: none of them has seen the new answer)."""
        self._attempts[self._at] += 1
        self._todo.appendleft(self._at)
        if recheck:
            earlier = [j for j in range(self._at) if self.stages[j].stage.recheck_on_answer_change]
            self._todo.extendleft(reversed(earlier))

    def _give_up(self, stage: PipelineStage, verdict: Verdict, what: str) -> None:
        message = f"still failing after {stage.max_attempts} {what}: {verdict.message}"
        self._finish(Outcome.DISCARDED, stage.name, verdict.reason or "unspecified", message)

    def _add(
        self, stage: PipelineStage, action: Action, verdict: Verdict, by: str, before: str | None = None, note: str = ""
    ) -> None:
        attempt = self._attempts[self._at] + 1
        fields = (stage.name, action, verdict.reason, verdict.message + note, attempt, by, self.record.turn)
        shared = before is None and verdict.score is None
        self.trail.append(_shared_steps(fields) if shared else _new_step(fields, before, verdict.score))

    def _finish(self, outcome: Outcome, stage: str | None = None, reason: str | None = None, message: str = "") -> None:
        if outcome is Outcome.DISCARDED and self._repaired():
            message += f" (the answer is a repair's; the record's own was {answer_as_text(self._given)})"
        record = store(self.record)
        if record.trail is not self.trail:  # a stage built a record of its own instead of a copy
            record = changed(record, {"trail": self.trail})
        self.finished = Finished(outcome, record, stage, reason, message)


def refine_record(record: Record, stages: list[PipelineStage]) -> Finished:
    """Run one record through the stages' rules; where it ends."""
    way = Refinement(record, stages)
    while (stage := way.next_stage()) is not None:
        try:
            way.settle(stage.check(way.record))
        except StageFailed as exc:
            way.fail(str(exc))
    assert way.finished is not None
    return way.finished


async def refine_judged(record: Record, stages: list[PipelineStage], judges: JudgeRunner) -> Finished:
    """``refine_record`` with the stages' judges asked after their rules pass, and their generators
    asked to rewrite a failing field. A judge that cannot answer sends the record to errors.jsonl."""
    from funreason_refine.judge.failures import JudgeCallError  # judge code only where judges are asked
    from funreason_refine.judge.limits import PromptTooLong

    way = Refinement(record, stages)
    while (stage := way.next_stage()) is not None:
        try:
            await _judged_step(way, stage, judges)
        except PromptTooLong as exc:
            way.too_long(exc.reason, str(exc))
        except (StageFailed, JudgeCallError) as exc:
            way.fail(str(exc), getattr(exc, "reason", None))
    assert way.finished is not None
    return way.finished


async def _judged_step(way: Refinement, stage: PipelineStage, judges: JudgeRunner) -> None:
    verdict, by = stage.check(way.record), "rules"
    if _unreadable(way.record):  # an answer that could not be read: nothing to ask about (it is never kept)
        way.settle(verdict, by)
        return
    if stage.scorer is not None and verdict.action is Action.PASS and not verdict.final:
        way.note(verdict)  # the rules passed; the scorer's number decides next
        verdict, by = await judges.score(stage.scorer, stage.name, way.record), stage.scorer.label
    if stage.judge is not None and verdict.action is Action.PASS and not verdict.final:
        way.note(verdict, by)  # the rules (and the scorer) passed; the judge decides what rules cannot
        judged = await judges.ask(stage.judge, stage.name, way.record)
        if judged is None:  # the stage's prompt does not apply to this record
            return
        verdict, by = judged, stage.judge.label
    way.settle(verdict, by)
    if way.rewrite is not None:
        generator, field = way.rewrite.stage.generator, way.rewrite.stage.stage.regenerates
        assert generator is not None and field is not None  # the policy asks only stages that have both
        way.rewritten(await judges.rewrite(generator, field, stage.name, way.record, way.rewrite.attempt))


def _unreadable(record: Record) -> bool:
    """Whether the answer of the turn in focus, or of a turn before it, could not be read: every version of the
    record that could be kept holds it (Refinement._keep discards it), so no model is asked about it."""
    return record.answer is None or any(m.role == "assistant" and m.answer is None for m in record.history)


def _same_identity(new: Record, old: Record) -> Record:
    """Index and source belong to the engine; a stage cannot move a record."""
    if new.index == old.index and (new.source is old.source or new.source == old.source):
        return new
    return new.model_copy(update={"index": old.index, "source": old.source})
