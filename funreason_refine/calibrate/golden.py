"""Golden sets: input records labelled by a person (JSONL), read, checked and written as a pipeline's input.

A line is an input record of any supported format plus ``"label": {"outcome": "keep" | "discard",
"stage": ..., "reason": ..., "answer": ...}`` and an optional ``"comment"`` saying why. A BFCL
question carries its ground truth inline as ``"ground_truth"`` (BFCL's possible-answer value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from funreason_refine.calls import parse_calls, same_calls
from funreason_refine.errors import CallSyntaxError, RefineError
from funreason_refine.jsonl import write_jsonl
from funreason_refine.record import FunctionCall

LABEL = "label"
COMMENT = "comment"
GROUND_TRUTH = "ground_truth"
INPUT_NAME = "golden-input.jsonl"
MAX_PROBLEMS_SHOWN = 20


class GoldenSetError(RefineError):
    """A golden file cannot be used: every problem found, each naming the line and the field."""

    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(f"{len(problems)} problem(s) in the golden set {path}:\n  - " + "\n  - ".join(shown) + more)


class Label(BaseModel):
    """What a person says should happen to a record."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["keep", "discard"] = Field(description="keep: the record belongs in the training set.")
    stage: str | None = Field(None, description="discard: the stage that should let it go (optional).")
    reason: str | None = Field(None, description="discard: the reason code expected (optional, informative).")
    answer: list[FunctionCall] | str | None = Field(
        None, description="keep: the answer the record should end with, as calls or [func(param=value)] text."
    )

    @field_validator("answer", mode="before")
    @classmethod
    def _calls(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_calls(value)
            except CallSyntaxError as exc:
                raise ValueError(f"not a call list like [func(param=value)]: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Label:
        if self.outcome == "keep" and (self.stage or self.reason):
            raise ValueError("stage and reason go with outcome 'discard'; a kept record has neither")
        if self.outcome == "discard" and self.answer is not None:
            raise ValueError("answer goes with outcome 'keep' (the answer the kept record should have)")
        return self

    def matches(self, answer: Any) -> bool:
        """Whether an outcome line's answer (JSON) is the person's answer."""
        if not isinstance(self.answer, list) or not isinstance(answer, list):
            return False
        try:
            return same_calls([FunctionCall(**c) for c in answer], self.answer)
        except (TypeError, ValidationError):
            return False


@dataclass
class GoldenRecord:
    line: int  # 1-based line of the golden file
    record: dict[str, Any]  # the input record, without label and comment
    label: Label
    comment: str | None
    id: str


@dataclass
class GoldenSet:
    path: Path
    records: list[GoldenRecord]
    notes: list[str] = field(default_factory=list)  # what is allowed but may not be meant (a record given twice)

    def stage_problems(self, stages: list[str]) -> list[str]:
        """Labels naming a stage the pipeline does not run."""
        return [
            f"{self.path}:{g.line}: label.stage {g.label.stage!r} is not a stage of the pipeline "
            f"(its stages: {', '.join(stages)})"
            for g in self.records
            if g.label.stage is not None and g.label.stage not in stages
        ]


def _parse_line(path: Path, number: int, text: str, problems: list[str]) -> GoldenRecord | None:
    where = f"{path}:{number}"
    try:
        obj = json.loads(text)
    except ValueError as exc:
        problems.append(f"{where}: not valid JSON ({exc})")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{where}: expected a JSON object (an input record with a label), got {type(obj).__name__}")
        return None
    if LABEL not in obj:
        problems.append(f'{where}: no "label"; add "label": {{"outcome": "keep"}} or {{"outcome": "discard", ...}}')
        return None
    try:
        label = Label.model_validate(obj[LABEL])
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in (LABEL, *err["loc"]))
            problems.append(f"{where}: {field}: {err['msg']}")
        return None
    comment = obj.get(COMMENT)
    record = {k: v for k, v in obj.items() if k not in (LABEL, COMMENT)}
    rid = record.get("id")
    return GoldenRecord(number, record, label, comment if isinstance(comment, str) else None, str(rid or number))


def _lines(path: Path, problems: list[str]) -> list[tuple[int, str]]:
    """The non-blank lines of the file, numbered from 1, each decoded on its own: a byte that is not UTF-8
    is named with its line and column."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise GoldenSetError(path, [f"{path}: file not found"]) from None
    except OSError as exc:
        raise GoldenSetError(path, [f"{path}: cannot read it ({exc.strerror or exc})"]) from None
    lines = []
    # "\n" only: str.splitlines() would also split on U+2028 inside JSON strings.
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "save the file as UTF-8"
            )
            continue
        if text.strip():
            lines.append((number, text))
    return lines


def _duplicates(path: Path, records: list[GoldenRecord]) -> tuple[list[str], list[str]]:
    """Records given twice (the same id; without ids, the same record): problems where their labels differ,
    notes where they agree (each copy counts in the scores)."""
    problems, notes = [], []
    first: dict[str, GoldenRecord] = {}
    for g in records:
        rid = g.record.get("id")
        key = f"id {rid!r}" if rid is not None else json.dumps(g.record, sort_keys=True, default=str)
        seen = first.setdefault(key, g)
        if seen is g:
            continue
        what = f"id {str(rid)!r}" if rid is not None else "the same record (no id)"
        if seen.label != g.label:
            problems.append(
                f"{path}:{g.line}: {what} as on line {seen.line}, with another label ({_label_text(g.label)} here, "
                f"{_label_text(seen.label)} there): keep the line whose label is right and delete the other"
                + (", or give the two records different ids if they are different records" if rid is not None else "")
            )
        else:
            notes.append(
                f"{path}:{g.line}: {what} as on line {seen.line}, with the same label: it counts twice in the scores; "
                "delete one of the lines unless that is meant"
            )
    return problems, notes


def _label_text(label: Label) -> str:
    return json.dumps(label.model_dump(exclude_none=True, mode="json"), ensure_ascii=False)


def read_golden(path: Path) -> GoldenSet:
    """Read and check a golden file; GoldenSetError lists every problem."""
    path = Path(path)
    problems: list[str] = []
    records = []
    for number, line in _lines(path, problems):
        parsed = _parse_line(path, number, line, problems)
        if parsed is not None:
            records.append(parsed)
    if not records and not problems:
        problems.append(f"{path}: no labelled record (one JSON object per line)")
    duplicated, notes = _duplicates(path, records)
    problems += duplicated
    if problems:
        raise GoldenSetError(path, problems)
    return GoldenSet(path, records, notes)


@dataclass
class GoldenInput:
    """The golden records as a pipeline input: record i of the set is input record i."""

    path: Path
    format: str | None  # None: each record read in the format its keys say (a set may mix them, as inputs may)
    answers: Path | None = None  # BFCL ground truth, beside the questions as BFCL lays it out


def write_input(golden: GoldenSet, folder: Path) -> GoldenInput:
    """Write the records (labels removed) where a pipeline can read them, in the set's order."""
    from funreason_refine.errors import InputError
    from funreason_refine.readers import bfcl, detect_format

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INPUT_NAME
    records = [{k: v for k, v in g.record.items() if k != GROUND_TRUTH} for g in golden.records]
    _write_jsonl(path, records)
    try:
        fmt = detect_format(path)
    except InputError:
        keys = ", ".join(sorted(golden.records[0].record)[:8])
        raise GoldenSetError(
            golden.path,
            [f"{golden.path}:{golden.records[0].line}: not a record of a format refine reads (its keys: {keys})"],
        ) from None
    if fmt != "bfcl":  # a set written from a review keeps each record in the format its run read it in
        return GoldenInput(path, None)
    answers = bfcl.default_answers_path(path)
    missing = [f"{golden.path}:{g.line}: a BFCL question needs {GROUND_TRUTH!r}" for g in golden.records]
    missing = [m for m, g in zip(missing, golden.records, strict=True) if GROUND_TRUTH not in g.record]
    if missing:
        raise GoldenSetError(golden.path, missing)
    answers.parent.mkdir(exist_ok=True)
    _write_jsonl(answers, [{"id": g.record.get("id"), GROUND_TRUTH: g.record[GROUND_TRUTH]} for g in golden.records])
    return GoldenInput(path, fmt, answers)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    # ASCII: input may hold lone surrogates (legal JSON escapes) that UTF-8 cannot encode.
    write_jsonl(path, rows, ascii=True)
