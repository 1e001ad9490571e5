"""The stage contract: a named class with its defaults, a validated Config and one check; and a
stage as a pipeline configured it."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from funreason_refine.calls import same_answer
from funreason_refine.frozen import freeze
from funreason_refine.record import Action, Record, Verdict
from funreason_refine.stages.timeout import CheckTimeout, StageFailed, call_with_timeout

if TYPE_CHECKING:
    from funreason_refine.judge.scorer_settings import ScorerSettings
    from funreason_refine.judge.settings import GenerateSettings, JudgePanel

OnFail = Literal["discard", "regenerate", "hard_pool", "truncate"]
"""What a failing record leads to: a discard; a regeneration (the stage's repair, or its generator's
rewrite of the field it names); for self-refinement, the pool of queries sampled again; for a
conversation, keeping it up to the turn before the failing one (a single-turn record is discarded)."""

TAKES_REPAIRS: frozenset[OnFail] = frozenset({"regenerate", "truncate"})
"""The on_fail values under which a stage's repair (a regenerate verdict) is applied; under the others the record
is dropped instead."""

Vote = Literal["unanimous", "majority"]
"""How a stage's ensemble of judges decides (``[[stages]] vote``)."""


class StageConfig(BaseModel):
    """Base of every stage's ``Config``: unknown keys in ``[[stages]]`` are errors."""

    model_config = ConfigDict(extra="forbid")


class Stage(ABC):
    """A refinement step. Subclass it, set ``name``, nest a ``Config``, implement ``check``.

    ``check`` must be deterministic and side-effect free: it receives a record and returns a
    :class:`Verdict` (pass, regenerate with a corrected record, or discard with a reason code).
    It must not change the record it receives; it returns a copy
    (``record.model_copy(update=...)``). A record's ``tools`` are read-only: records that offer
    the same tool share it, so a change would reach them all (changing one raises TypeError;
    give the copy new tools instead, see frozen.py).

    The class attributes are the stage's defaults; a stage spec (TOML) and the pipeline's
    ``[[stages]]`` table override them.
    """

    name: ClassVar[str]
    #: One line shown by ``refine stages``; defaults to the first line of the class docstring.
    description: ClassVar[str] = ""
    #: Where the stage stands in the default pipeline (no ``[[stages]]``); None: only when listed.
    order: ClassVar[int | None] = None
    #: What a failing record leads to (``[[stages]] on_fail``).
    on_fail: ClassVar[OnFail] = "discard"
    #: Regenerations of a record at this stage before it is discarded (``[[stages]] max_attempts``).
    max_attempts: ClassVar[int] = 3
    #: Re-run this stage when a later stage (its rules, its judge's corrected calls, a plugin) changes the
    #: answer, before the changed answer goes on: a regenerated answer never skips a check it has not passed.
    #: Every built-in stage does; set it False only for a stage whose verdict does not depend on the answer.
    recheck_on_answer_change: ClassVar[bool] = True
    #: Whether its judge's corrected calls (``<NewFC>``) may change the calls' names and arguments. False (the
    #: format stage, which may change the format only): a NewFC with other calls is refused, and the record is
    #: discarded (``judge_changed_calls``) instead of kept with calls no call-checking stage judged.
    judge_may_change_calls: ClassVar[bool] = True
    #: The record field a generator model may rewrite when this stage fails a record and its
    #: on_fail is "regenerate" ("cot" for the CoT stage); None: failures are never rewritten.
    regenerates: ClassVar[str | None] = None
    #: Checks only what conversations have (call ids, tool results): single-turn records skip it.
    conversations_only: ClassVar[bool] = False
    #: Seconds a check may take before the record goes to errors.jsonl (``[[stages]] timeout``
    #: overrides it); None: no limit, for checks whose work the input size bounds.
    timeout: ClassVar[float | None] = 60.0

    class Config(StageConfig):
        pass

    def __init__(self, config: StageConfig | None = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def summary(cls) -> str:
        if cls.description:
            return cls.description
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @abstractmethod
    def check(self, record: Record) -> Verdict:
        """Judge one record."""


class JudgeOnlyStage(Stage):
    """A stage defined by a TOML spec alone: it has no rules of its own; its judge decides."""

    name = "judge_only"
    timeout = None

    def check(self, record: Record) -> Verdict:
        return Verdict.passed()

    @staticmethod
    def named(name: str, description: str) -> type[Stage]:
        """The class of the judge-only stage ``name``, for ``register``."""
        return type(f"JudgeOnly_{name}", (JudgeOnlyStage,), {"name": name, "description": description})


@dataclass
class PipelineStage:
    """A stage as a pipeline configured it: the instance, and what the engine does with its verdicts."""

    stage: Stage
    plugin: str
    on_fail: OnFail
    max_attempts: int
    timeout: float | None = None
    judge: JudgePanel | None = None  # asked after the rules pass, when configured
    scorer: ScorerSettings | None = None  # asked after the rules pass, before the judge, when configured
    generator: GenerateSettings | None = None  # rewrites the ``regenerates`` field of a failing record
    trusted: bool = False  # the package's own stages: their records are not validated again (tests hold them)

    @property
    def name(self) -> str:
        return self.stage.name

    def check(self, record: Record) -> Verdict:
        """The stage's verdict on ``record``, the fields its record changed validated; StageFailed when the
        check raises, runs past its timeout, or returns something that is not a Verdict or a record that is
        not a valid Record (a plugin bug fails its record, never the run)."""
        given = None if self.trusted else _contents(record)
        try:
            verdict = call_with_timeout(self.stage.check, record, self.timeout)
        except CheckTimeout as exc:
            raise StageFailed(
                f"stage {self.name} (plugin {self.plugin}) did not answer within {self.timeout or 0:g} s "
                "([[stages]] timeout)"
            ) from exc
        except (Exception, SystemExit, GeneratorExit) as exc:  # sys.exit() in a check fails its record too
            if os.environ.get("FUNREASON_REFINE_DEBUG"):  # cli.md: the traceback, for the plugin's author
                print(f"stage {self.name} (plugin {self.plugin}), record {record.index}:", file=sys.stderr)
                traceback.print_exception(exc, file=sys.stderr)
            raise StageFailed(f"stage {self.name} (plugin {self.plugin}) raised {type(exc).__name__}: {exc}") from exc
        if given is not None and (changed := given.changed(record)):
            self._refuse_changed_in_place(changed)
        if not isinstance(verdict, Verdict):
            raise StageFailed(
                f"stage {self.name} (plugin {self.plugin}) returned {type(verdict).__name__}, not a Verdict "
                "(Verdict.passed(), Verdict.discard(reason, message) or Verdict.regenerate(record, reason, message))"
            )
        if verdict.record is not None and verdict.record is not record and not self.trusted:
            self._check_record(verdict, record)
        if verdict.action is Action.PASS and verdict.record is not None and verdict.record is not record:
            self._check_same_content(verdict.record, record)
        return verdict

    def _check_same_content(self, new: Record, record: Record) -> None:
        """StageFailed when a pass changed what the record says (its answer, query, tools, system prompt or
        conversation): it would be kept with no earlier stage having seen it."""
        changed = changed_content(new, record)
        if changed:
            raise StageFailed(
                f"stage {self.name} (plugin {self.plugin}) passed with a record whose {changed} it changed: a "
                "pass adds derived fields (target, cot's form, meta); a change of what the record says is a repair "
                '(Verdict.regenerate, with on_fail = "regenerate"), which every earlier stage checks again'
            )

    def _refuse_changed_in_place(self, fields: str) -> None:
        raise StageFailed(
            f"stage {self.name} (plugin {self.plugin}) changed the record it was given in place ({fields}): the "
            "record is the one every stage, the trail and the outcome files share. Return a changed copy instead: "
            'Verdict.regenerate(record.model_copy(update={"answer": ...}), reason, message), or edit '
            "record.model_copy(deep=True) (docs/plugins.md, The stage contract)"
        )

    def _check_record(self, verdict: Verdict, record: Record) -> None:
        """The record a verdict brings, its changed fields validated (in place: the verdict is the stage's)."""
        new = verdict.record
        if not isinstance(new, Record):
            problem = f"record is a {type(new).__name__}, not a Record (record.model_copy(update={{...}}))"
        else:
            try:
                verdict.record = validated_changes(new, record)
                return
            except ValueError as exc:
                problem = f"record is not a valid record: {exc}"
        raise StageFailed(
            f"stage {self.name} (plugin {self.plugin}) returned a {verdict.action} verdict whose {problem}. "
            "A changed record must hold valid values: calls are FunctionCall(name=..., arguments={...}), "
            "texts are str (docs/plugins.md, The stage contract)"
        )


_LISTS = ("messages", "trail", "problems")
"""Fields whose lists are compared by their items' identity, not their text: a conversation's messages grow
with it, and serialising them at every turn made a conversation's cost quadratic again."""
_WATCHED = tuple(name for name in Record.model_fields if name not in ("tools", *_LISTS))


class _Contents(NamedTuple):
    """A record's fields as JSON, its tools (read-only when a reader gave them: replaced, never changed) and
    the items of its lists, to tell whether a stage's check changed them in place. A message changed in
    place inside the conversation is not seen; the turn in focus is (its answer, CoT and query are fields)."""

    fields: bytes
    tools: object
    lists: tuple[tuple[int, ...], ...]

    def changed(self, record: Record) -> str:
        """The fields ``record`` holds otherwise than when this was taken, as text; empty when none."""
        now = _contents(record)
        if now is None or now == self:
            return ""
        before, after = json.loads(self.fields), json.loads(now.fields)
        changed = [name for name, a, b in zip(_WATCHED, before, after, strict=True) if a != b]
        changed += [name for name, a, b in zip(_LISTS, self.lists, now.lists, strict=True) if a != b]
        return ", ".join(changed + ([] if now.tools is self.tools else ["tools"]))


def _contents(record: Record) -> _Contents | None:
    """The record's contents to compare, or None when they cannot be written (nested past the serialiser's
    depth, a lone surrogate as a key): such a record is not watched, never failed for it."""
    fields = record.__dict__
    values = [fields[name] for name in _WATCHED]
    lists = tuple(tuple(map(id, fields[name])) for name in _LISTS)
    try:
        text = to_json(values, fallback=repr)
    except PydanticSerializationError:  # a lone surrogate, which UTF-8 cannot hold: JSON's escape can
        try:
            text = json.dumps(to_jsonable_python(values, fallback=repr)).encode()
        except (ValueError, TypeError, RecursionError, PydanticSerializationError):
            return None
    except (ValueError, RecursionError):
        return None
    return _Contents(text, fields["tools"], lists)


SAID = ("query", "tools", "system", "messages")
"""Beside the answer, the fields that say what a record is, which a pass must not change."""
REPAIRED = (*SAID, "cot")
"""Beside the answer, the fields whose change by a repair the earlier stages check again (a pass may give
the CoT another form, as the cot stage strips a <think> wrapper)."""


def changed_content(new: Record, old: Record, fields: tuple[str, ...] = SAID) -> str:
    """Which of the answer and ``fields`` ``new`` changed from ``old``, as text (``answer, tools``); empty
    when none."""
    changed = [] if new.answer is old.answer or same_answer(new.answer, old.answer) else ["answer"]
    for name in fields:
        a, b = getattr(new, name), getattr(old, name)
        if a is not b and a != b:
            changed.append(name)
    return ", ".join(changed)


def validated_changes(new: Record, old: Record) -> Record:
    """``new``, a stage's copy of ``old``, with each field it changed validated as a Record's field is (calls
    given as dicts become FunctionCalls); ValueError naming the first field that is wrong.

    ``model_copy(update=...)`` validates nothing, and a wrong value would fail later, in the engine or a later
    stage, blaming neither this stage nor this record. Fields still holding ``old``'s object are not checked
    again, and a value that validates to an equal one is kept as it is (shared tools stay shared).
    """
    given, before = new.__dict__, old.__dict__
    fixed: dict[str, Any] = {}
    for name in [name for name, value in given.items() if value is not before.get(name)]:
        if name not in _RECORD_FIELDS:
            raise ValueError(f"{name!r} is not a record field")
        value = given[name]
        valid = _valid_field(name, value)
        if name == "tools":  # read-only as a reader's are: a later stage cannot change them in place unseen
            valid = freeze(valid)
        if valid is not value and (valid != value or name == "tools"):
            fixed[name] = valid
    if len(given) != len(_RECORD_FIELDS):  # unknown fields were refused: one is missing
        raise ValueError(f"field {sorted(_RECORD_FIELDS.keys() - given.keys())[0]!r} is missing")
    return new.model_copy(update=fixed) if fixed else new


_RECORD_FIELDS = Record.model_fields


def _valid_field(name: str, value: Any) -> Any:
    try:
        return _field_type(name).validate_python(value)
    except ValidationError as exc:
        errors = exc.errors()
        deepest = max(len(e["loc"]) for e in errors)  # of a union's alternatives, the one that got furthest
        said = "; ".join(
            f"{'.'.join(map(str, (name, *e['loc'])))}: {e['msg']} (got {e['input']!r:.80})"
            for e in errors
            if len(e["loc"]) == deepest
        )
        raise ValueError(said) from None


@functools.cache
def _field_type(name: str) -> TypeAdapter[Any]:
    annotation = _RECORD_FIELDS[name].annotation
    assert annotation is not None  # every record field has a type
    return TypeAdapter(annotation)
