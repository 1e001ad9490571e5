"""overrides.jsonl: a person's decisions on a run's verdicts, appended one per line, the latest per record winning.

A decision names the verdict it was made on (kept, or discarded at a stage with a reason); when
the run folder is redone and the record's verdict changes, the decision no longer applies and
is counted as stale instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from funreason_refine.errors import RunFolderError
from funreason_refine.jsonl import read_lines
from funreason_refine.record import Outcome

OVERRIDES = "overrides.jsonl"
REVIEWABLE = ("kept", "discarded")
MAX_NOTE = 4000
MAX_SHOWN = 5  # unreadable lines named in one message


class Decision(BaseModel):
    """One line of overrides.jsonl."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(description="The record's input index (its line in the run's outcome file says the same).")
    id: str
    kind: Literal["kept", "discarded"] = Field(description="The verdict the person looked at.")
    stage: str | None = None
    reason: str | None = None
    decision: Literal["right", "wrong", "none"] = Field(description="none withdraws an earlier decision.")
    note: str = Field("", max_length=MAX_NOTE)
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    answer: str | None = Field(
        None,
        description="A fingerprint of the record's answers and CoTs as the person saw them: a decision does not "
        "carry over to a record whose answer a redone run changed (absent in files of earlier versions).",
    )

    def applies_to(self, line: dict[str, Any], kind: str) -> bool:
        """Whether the record still has the verdict, and the answer, this decision was made on."""
        if kind != self.kind or (self.answer is not None and self.answer != answer_fingerprint(line)):
            return False
        return kind == Outcome.KEPT or (line.get("stage"), line.get("reason")) == (self.stage, self.reason)


def answer_fingerprint(line: dict[str, Any]) -> str:
    """What of an outcome line a decision is about: its answer and CoT, and every assistant turn's."""
    turns = [(m.get("answer"), m.get("cot")) for m in line.get("messages") or () if m.get("role") == "assistant"]
    said = json.dumps([line.get("answer"), line.get("cot"), turns], sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.blake2b(said.encode("ascii"), digest_size=8).hexdigest()


def decision_for(line: dict[str, Any], kind: str, decision: str, note: str = "") -> Decision:
    """A decision on an outcome line, naming its current verdict; ValidationError for a bad decision or note."""
    stage, reason = (line.get("stage"), line.get("reason")) if kind == Outcome.DISCARDED else (None, None)
    fields = {"kind": kind, "stage": stage, "reason": reason, "decision": decision, "note": note}
    found = {"index": line["index"], "id": str(line.get("id", "")), "answer": answer_fingerprint(line)}
    return Decision.model_validate({**found, **fields})


@dataclass(frozen=True)
class BadLine:
    """A line of overrides.jsonl that is not a decision."""

    line: int
    problem: str
    torn: bool = False  # the last line, cut short: a decision being saved when the review stopped, never acknowledged


class UnreadableDecisions(RunFolderError):
    """overrides.jsonl holds lines that are not decisions (other than a last line cut short by a crash)."""


@dataclass
class Decisions:
    """The latest decision per record (withdrawn ones left out), and the lines that could not be read."""

    path: Path | None = None
    latest: dict[int, Decision] = field(default_factory=dict)
    bad: list[BadLine] = field(default_factory=list)

    @property
    def bad_lines(self) -> list[int]:
        return [b.line for b in self.bad]

    def on(self, line: dict[str, Any], kind: str) -> Decision | None:
        """The latest decision on this record's current verdict, if there is one."""
        d = self.latest.get(line["index"])
        return d if d is not None and d.applies_to(line, kind) else None

    def wrong(self, line: dict[str, Any], kind: str) -> Decision | None:
        """The person's 'wrong' on this record's current verdict, if there is one."""
        d = self.on(line, kind)
        return d if d is not None and d.decision == "wrong" else None

    def check(self) -> list[str]:
        """Warnings for a last decision cut short (never acknowledged, so never relied on); UnreadableDecisions
        when any other line cannot be read: a decision a person made would be left out without a word."""
        unreadable = [f"{self.path}:{b.line}: {b.problem}" for b in self.bad if not b.torn]
        if unreadable:
            run_dir = self.path.parent if self.path else "RUN_DIR"
            raise UnreadableDecisions(
                f"{len(unreadable)} line(s) of {self.path} are not decisions `refine review` wrote: "
                + "; ".join(unreadable[:MAX_SHOWN])
                + (" ..." if len(unreadable) > MAX_SHOWN else "")
                + ". A person's decision there cannot be honoured: fix or delete those lines, then decide those "
                f"records again with `refine review {run_dir}`"
            )
        return [f"{self.path}:{b.line}: {b.problem}; ignored" for b in self.bad if b.torn]


def _read_line(number: int, raw: bytes, last: bool) -> Decision | BadLine:
    """The decision on a line, or what is wrong with it."""
    if last and not raw.endswith(b"\n"):
        return BadLine(
            number, "cut short (a decision being saved when refine review stopped, never acknowledged)", True
        )
    try:
        return Decision.model_validate(json.loads(raw.decode("utf-8")))
    except UnicodeDecodeError as exc:
        return BadLine(number, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'the line'}: {e['msg']}" for e in exc.errors()]
        return BadLine(number, "not a decision (" + "; ".join(problems) + ")")
    except ValueError as exc:
        return BadLine(number, f"not JSON ({exc})")


def read_decisions(run_dir: Path) -> Decisions:
    path = Path(run_dir) / OVERRIDES
    out = Decisions(path)
    if not path.exists():
        return out
    lines = list(read_lines(path))
    for number, raw in lines:
        if raw.isspace():
            continue
        found = _read_line(number, raw, number == len(lines))
        if isinstance(found, BadLine):
            out.bad.append(found)
        elif found.decision == "none":
            out.latest.pop(found.index, None)
        else:
            out.latest[found.index] = found
    return out


class OverrideLog:
    """Appends decisions durably: each is on disk (fsync) before ``append`` returns."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / OVERRIDES
        self._lock = threading.Lock()
        self._torn = self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def _drop_torn_line(self, fh: IO[bytes]) -> None:
        """Cut off a last line that a crash cut short: it was never acknowledged, and left in place it would
        become an unreadable line in the middle of the file, which export refuses."""
        data = self.path.read_bytes()
        fh.truncate(data.rfind(b"\n") + 1)
        self._torn = False

    def append(self, decision: Decision) -> None:
        # ASCII: a note may hold lone surrogates (JSON.stringify writes them as escapes), not UTF-8.
        data = (json.dumps(decision.model_dump(), ensure_ascii=True) + "\n").encode()
        with self._lock:
            created = not self.path.exists()
            try:
                with self.path.open("ab") as fh:
                    if self._torn:  # a line cut short by a crash must not swallow this one
                        self._drop_torn_line(fh)
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                if created:  # the new file's name is on disk too
                    directory = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(directory)
                    finally:
                        os.close(directory)
            except OSError as exc:
                raise RunFolderError(
                    f"cannot write {self.path}: {exc.strerror or exc}; the decision was not saved"
                ) from None
