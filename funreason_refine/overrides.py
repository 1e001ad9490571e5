"""overrides.jsonl: a person's decisions on a run's verdicts, appended one per line, the latest per record winning.

A decision names the verdict it was made on (kept, or discarded at a stage with a reason); when
the run folder is redone and the record's verdict changes, the decision no longer applies and
is counted as stale instead.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from funreason_refine.errors import RunFolderError
from funreason_refine.jsonl import read_lines
from funreason_refine.record import Outcome

OVERRIDES = "overrides.jsonl"
REVIEWABLE = ("kept", "discarded")
MAX_NOTE = 4000


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

    def applies_to(self, line: dict[str, Any], kind: str) -> bool:
        """Whether the record still has the verdict this decision was made on."""
        if kind != self.kind:
            return False
        return kind == Outcome.KEPT or (line.get("stage"), line.get("reason")) == (self.stage, self.reason)


def decision_for(line: dict[str, Any], kind: str, decision: str, note: str = "") -> Decision:
    """A decision on an outcome line, naming its current verdict; ValidationError for a bad decision or note."""
    stage, reason = (line.get("stage"), line.get("reason")) if kind == Outcome.DISCARDED else (None, None)
    fields = {"kind": kind, "stage": stage, "reason": reason, "decision": decision, "note": note}
    return Decision.model_validate({"index": line["index"], "id": str(line.get("id", "")), **fields})


@dataclass
class Decisions:
    """The latest decision per record (withdrawn ones left out), and the lines that could not be read."""

    latest: dict[int, Decision] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)

    def on(self, line: dict[str, Any], kind: str) -> Decision | None:
        """The latest decision on this record's current verdict, if there is one."""
        d = self.latest.get(line["index"])
        return d if d is not None and d.applies_to(line, kind) else None

    def wrong(self, line: dict[str, Any], kind: str) -> Decision | None:
        """The person's 'wrong' on this record's current verdict, if there is one."""
        d = self.on(line, kind)
        return d if d is not None and d.decision == "wrong" else None


def read_decisions(run_dir: Path) -> Decisions:
    out = Decisions()
    path = Path(run_dir) / OVERRIDES
    if not path.exists():
        return out
    for number, raw in read_lines(path):
        text = raw.decode("utf-8", "replace")
        if not text.strip():
            continue
        try:
            d = Decision.model_validate(json.loads(text))
        except (ValueError, ValidationError):
            out.bad_lines.append(number)  # a line torn by a crash before it was acknowledged
            continue
        if d.decision == "none":
            out.latest.pop(d.index, None)
        else:
            out.latest[d.index] = d
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

    def append(self, decision: Decision) -> None:
        # ASCII: a note may hold lone surrogates (JSON.stringify writes them as escapes), not UTF-8.
        data = (json.dumps(decision.model_dump(), ensure_ascii=True) + "\n").encode()
        with self._lock:
            created = not self.path.exists()
            try:
                with self.path.open("ab") as fh:
                    if self._torn:  # a line cut short by a crash must not swallow this one
                        fh.write(b"\n")
                        self._torn = False
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
