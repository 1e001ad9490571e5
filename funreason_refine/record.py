"""The record: one training example, and the verdict trail it collects on its way."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from numbers import Real
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Action(StrEnum):
    """What a stage decided about a record (a Verdict's action, a Step's verdict)."""

    PASS = "pass"
    REGENERATE = "regenerate"
    DISCARD = "discard"


class Outcome(StrEnum):
    """Where a record ends: the outcome file its line goes to."""

    KEPT = "kept"
    DISCARDED = "discarded"
    QUARANTINED = "quarantined"
    ERRORS = "errors"
    HARD = "hard"  # failed a stage whose on_fail is "hard_pool": sampled again by self-refinement


class FunctionCall(BaseModel):
    """One call in a reference answer: a function name and its keyword arguments."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Source(BaseModel):
    """Where a record came from: file and 1-based line (JSONL, JSON) or row (Parquet)."""

    model_config = ConfigDict(extra="forbid")

    file: str
    line: int


class Problem(BaseModel):
    """Something found wrong while reading a record that a stage must rule on."""

    model_config = ConfigDict(extra="forbid")

    field: str
    code: str
    message: str


class Step(BaseModel):
    """One verdict in a record's trail, written into every output line for auditing.

    Frozen: the engine shares one Step among the records that got the same verdict.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str
    verdict: Action
    reason: str | None = None
    message: str = ""
    attempt: int = 1
    judge: str = "rules"
    before: str | None = Field(None, description="For regenerate: the answer (or CoT) it replaced, as text.")
    turn: int | None = Field(None, description="In a conversation: the assistant turn (0-based) the verdict is on.")
    score: float | None = Field(None, description="A scorer's verdict: the score it gave (docs/scorers.md).")


class Message(BaseModel):
    """One message of a conversation: a system, user or assistant message, or a tool result.

    An assistant turn has an ``answer`` as a record has (calls, possibly none, or a text) with the
    ids of its calls, and optionally a CoT and its training ``target``; a tool result has the
    ``call_id`` of the call it answers and the result as ``content``; a system or user message has
    ``content``. What the reader keeps so that an export gives the input back (docs/reading.md):
    ``content`` of an assistant turn that calls is the text it wrote beside its calls; ``parts`` is
    content given as a list of parts (text, images, ...), as given, ``content`` being its text;
    ``refusal`` an assistant's refusal (its answer, as text); ``observation`` a ShareGPT
    observation that answered several calls at once, on the first of the results it was split
    into. Call ids are texts or numbers, as given (see conversation.id_key).
    """

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant", "tool", "system"]
    content: str | None = None
    answer: list[FunctionCall] | str | None = None
    call_ids: list[Any] = Field(default_factory=list)
    cot: str | None = None
    target: str | None = None
    call_id: Any = None
    name: str | None = None
    parts: list[Any] | None = None
    refusal: str | None = None
    observation: str | None = None


class Record(BaseModel):
    """One training example: a query and its answer, or a conversation.

    ``answer`` is a list of calls (possibly empty: "no function applies"), a plain-text
    response, or ``None`` when the source answer was malformed (then ``problems`` says why).
    ``tools`` are OpenAI-style functions whose ``parameters`` are JSON Schema; read-only when a
    reader built them (records share them, see frozen.py).

    A conversation has its ``messages`` (and maybe a ``system`` prompt); ``query``, ``answer``,
    ``cot`` and ``target`` are then those of the assistant turn in focus, ``turn`` (0-based
    among the assistant turns): the turn a stage checks, and in the run folder, the last turn
    of a kept conversation or the turn a discarded one failed at. ``history`` is the
    conversation before that turn. A single-turn record has no messages: it is its one turn.
    """

    model_config = ConfigDict(extra="forbid")

    index: int = Field(description="Position of the record in the input stream (0-based).")
    id: str
    source: Source
    query: str
    tools: list[dict[str, Any]]
    answer: list[FunctionCall] | str | None
    cot: str | None = None
    target: str | None = None
    problems: list[Problem] = Field(default_factory=list)
    trail: list[Step] = Field(default_factory=list)
    meta: dict[str, Any] = Field(
        default_factory=dict, description="Provenance carried through (self-refinement: round, sample, model)."
    )
    system: str | None = None
    messages: list[Message] = Field(default_factory=list)
    turn: int | None = None

    @property
    def calls(self) -> list[FunctionCall]:
        """The answer's calls; empty for a text or malformed answer."""
        return self.answer if isinstance(self.answer, list) else []

    @property
    def is_call_answer(self) -> bool:
        return isinstance(self.answer, list)

    @property
    def is_conversation(self) -> bool:
        return bool(self.messages)

    @property
    def history(self) -> list[Message]:
        """The conversation before the turn in focus (empty for a single-turn record)."""
        if not self.messages or self.turn is None:
            return []
        at = [i for i, m in enumerate(self.messages) if m.role == "assistant"][self.turn]
        return self.messages[:at]

    def tool_names(self) -> list[str]:
        return [t.get("name") for t in self.tools if isinstance(t, dict)]  # type: ignore[misc]


_FIELDS = frozenset(Record.model_fields)
_set = object.__setattr__


def changed(record: Record, update: dict[str, Any]) -> Record:
    """``record.model_copy(update=update)``, validating nothing as it does, in half its time for a plain
    :class:`Record` (a subclass, which may carry extra fields or private attributes, is copied by pydantic).

    The engine's one speed trick on records (docs/benchmarks.md): three copies a record (read, refined,
    given its target) were 2% of a rules-only run. It builds the copy as pydantic's own ``__copy__``
    does: a new ``__dict__`` and ``__pydantic_fields_set__``, no extra fields, no private attributes."""
    if type(record) is not Record:
        return record.model_copy(update=update)
    copy = Record.__new__(Record)
    _set(copy, "__dict__", {**record.__dict__, **update})
    _set(copy, "__pydantic_fields_set__", record.__pydantic_fields_set__ | update.keys())
    _set(copy, "__pydantic_extra__", None)
    _set(copy, "__pydantic_private__", None)
    return copy


def read_record(
    index: int,
    id: str,
    source: Source,
    query: str,
    tools: list[dict[str, Any]],
    answer: list[FunctionCall] | str | None,
    cot: str | None,
    problems: list[Problem],
    meta: dict[str, Any],
    messages: list[Message] | None = None,
    system: str | None = None,
) -> Record:
    """A new record from fields a reader has checked itself, without validating them again.

    ``Record.model_construct`` with every field given, in a third of its time (it looks up each
    field's aliases and defaults): records are built at tens of thousands a second. A conversation's
    ``messages`` put its last assistant turn in focus (``turn``); ``query``, ``answer`` and ``cot`` are
    that turn's.
    """
    record = Record.__new__(Record)
    _set(
        record,
        "__dict__",
        {
            "index": index,
            "id": id,
            "source": source,
            "query": query,
            "tools": tools,
            "answer": answer,
            "cot": cot,
            "target": None,
            "problems": problems,
            "trail": [],
            "meta": meta,
            "system": system,
            "messages": messages or [],
            "turn": sum(m.role == "assistant" for m in messages) - 1 if messages else None,
        },
    )
    _set(record, "__pydantic_fields_set__", set(_FIELDS))
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


class DiscardedRecord(Record):
    """A line of discarded.jsonl (and hard.jsonl): the record, and the stage that let it go and why."""

    stage: str
    reason: str
    message: str


class DatasetDiscard(DiscardedRecord):
    """A line of discarded.jsonl written by the dataset audits (stage ``dataset``)."""

    audit: dict[str, Any] = Field(
        description="What they found: duplicate_of and similarity, or eval_set, eval_id and overlap."
    )


class ErroredRecord(Record):
    """A line of errors.jsonl: the record, and the infrastructure failure that stopped it."""

    stage: str
    error: str
    reason: str | None = Field(
        None, description="a code for a failure that no retry alone fixes (context_window_exceeded), else None"
    )


@dataclass(slots=True)
class Verdict:
    """What a stage decided about a record.

    - ``pass``: go on; ``final=True`` accepts the record without the remaining stages; a pass may
      carry ``record`` to add derived fields (the format stage writes ``target``).
    - ``regenerate``: ``record`` is the corrected record; the engine re-checks it.
    - ``discard``: the record leaves with ``reason`` (a short snake_case code) and ``message``.

    ``action`` is an :class:`Action` (its plain string, "pass", is accepted too); ``score`` is a
    scorer's number behind the verdict, kept in the trail. A plain dataclass, not a pydantic
    model: stages build several per record; fields of the wrong type (a discard without a reason,
    a message that is not a str) raise TypeError as the verdict is made.
    """

    action: Action
    reason: str | None = None
    message: str = ""
    record: Record | None = None
    final: bool = False
    score: float | None = None

    def __post_init__(self) -> None:
        if type(self.action) is not Action:
            try:
                self.action = Action(self.action)
            except ValueError:
                raise ValueError(f"verdict action must be one of {', '.join(Action)}, got {self.action!r}") from None
        reason, record = self.reason, self.record
        plainly_right = (  # the verdicts stages make (five a record), told right at once: _problem says what is wrong
            type(self.message) is str
            and type(self.final) is bool
            and self.score is None
            and (record is None or type(record) is Record)
            and ((reason is None and self.action is Action.PASS) or (type(reason) is str and reason != ""))
        )
        if not plainly_right:
            problem = self._problem()
            if problem is not None:
                raise TypeError(f"a {self.action} verdict's {problem}")

    def _problem(self) -> str | None:
        """What is wrong with this verdict's fields, or None: they end up in the trail and the outcome files."""
        if self.reason is None and self.action is not Action.PASS:
            return 'reason is missing: give a short snake_case code ("too_many_calls")'
        if self.reason is not None and not (isinstance(self.reason, str) and self.reason):
            return f'reason must be a short snake_case text ("too_many_calls"), got {self.reason!r}'
        if not isinstance(self.message, str):
            return f"message must be a text (str), got {type(self.message).__name__} {self.message!r}"
        if self.record is not None and not isinstance(self.record, Record):
            return (
                f"record must be a Record (a copy of the record checked: record.model_copy(update={{...}})), "
                f"got {type(self.record).__name__}"
            )
        if self.score is not None and (isinstance(self.score, bool) or not isinstance(self.score, Real)):
            return f"score must be a number, got {self.score!r}"
        if not isinstance(self.final, bool):
            return f"final must be True or False, got {self.final!r}"
        return None

    @classmethod
    def passed(
        cls, reason: str | None = None, message: str = "", final: bool = False, record: Record | None = None
    ) -> Verdict:
        """Go on; ``record`` brings derived fields (a copy of the record checked)."""
        return cls(Action.PASS, reason, message, record, final)

    @classmethod
    def discard(cls, reason: str, message: str) -> Verdict:
        return cls(Action.DISCARD, reason, message)

    @classmethod
    def regenerate(cls, record: Record, reason: str, message: str) -> Verdict:
        return cls(Action.REGENERATE, reason, message, record)


class Quarantined(BaseModel):
    """Input that could not be read as a record, kept with where it was and what is wrong."""

    model_config = ConfigDict(extra="forbid")

    index: int
    source: Source
    field: str | None = None
    error: str
    raw: str = Field(description="The offending text, cut to a readable length.")


PLAIN_MODELS: frozenset[type[BaseModel]] = frozenset(
    {FunctionCall, Source, Problem, Step, Message, Record, DiscardedRecord, DatasetDiscard, ErroredRecord, Quarantined}
)
"""Models whose ``__dict__`` is their JSON: no aliases, serializers or computed fields (a test
checks). The run folder writes these without pydantic's serializer (see run_folder.to_json_line)."""
