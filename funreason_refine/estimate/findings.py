"""What a probe found, kept in the run folder (probe.json) for later estimates: per model, how many calls its
server answers at once; per kind of call, the seconds a call takes alone (no queue); how the answers kept to
the protocol (failures, re-asks); the calls that failed."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from funreason_refine.estimate.figures import Key

FILE = "probe.json"
ERRORS_KEPT = 5


@dataclass
class Wave:
    """Probe calls sent at once: how many, the seconds until the last answered, the output tokens they wrote."""

    calls: int
    seconds: float
    output_tokens: int


@dataclass
class ServerFindings:
    """One model's server, as the probe saw it: ``concurrency`` the calls it answers at once (None when too few
    calls were left to send together), from ``waves`` of calls at once against ``solo_tokens_per_second``,
    its answers' pace one at a time; ``kept_up``: it answered the largest wave as fast as one call alone, so
    ``concurrency`` is only the least it takes."""

    concurrency: float | None = None
    solo_tokens_per_second: float | None = None
    waves: list[Wave] = field(default_factory=list)
    kept_up: bool = False


@dataclass
class KindTiming:
    """One kind of call (stage, model, judge or generator), asked one call at a time: calls, and their seconds."""

    stage: str
    model: str
    generator: bool
    calls: int = 0
    seconds: float = 0.0

    @property
    def key(self) -> Key:
        return (self.stage, self.model, self.generator)


@dataclass
class StageProtocol:
    """One stage's probe answers and the answer protocol: answers read, outside it, re-asks, verdicts given up."""

    answers: int = 0
    failures: int = 0
    reasks: int = 0
    given_up: int = 0


@dataclass
class StageVerdicts:
    """One stage's probe verdicts (one per record asked: its judges' vote, as the run takes it): how many, how many
    failed the record, and of those how many a run repairs with the corrected calls (NewFC). What repairs.py rates
    a stage's repairs by."""

    verdicts: int = 0
    failing: int = 0
    corrected: int = 0


@dataclass
class Findings:
    written: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    servers: dict[str, ServerFindings] = field(default_factory=dict)
    kinds: list[KindTiming] = field(default_factory=list)
    protocol: dict[str, StageProtocol] = field(default_factory=dict)
    failed: int = 0  # probe calls that ended in an error (after their retries and re-asks)
    errors: list[str] = field(default_factory=list)  # the first of their messages
    verdicts: dict[str, StageVerdicts] = field(default_factory=dict)

    def note_verdict(self, stage: str, ok: bool, corrected: bool) -> None:
        counts = self.verdicts.setdefault(stage, StageVerdicts())
        counts.verdicts += 1
        counts.failing += not ok
        counts.corrected += not ok and corrected

    def timing(self, key: Key) -> float | None:
        """The seconds a call of this kind takes alone, as measured; None when none was."""
        for kind in self.kinds:
            if kind.key == key and kind.calls:
                return kind.seconds / kind.calls
        return None

    def note_error(self, message: str) -> None:
        self.failed += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(message)

    def save(self, run_dir: Path) -> None:
        path = run_dir / FILE
        tmp = path.with_name(FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, run_dir: Path) -> Findings | None:
        """The folder's probe.json; None when there is none, or it cannot be read (an estimate goes on without)."""
        try:
            data = json.loads((run_dir / FILE).read_text(encoding="utf-8"))
            return cls(
                written=data["written"],
                servers={
                    model: ServerFindings(
                        s["concurrency"], s["solo_tokens_per_second"], [Wave(**w) for w in s["waves"]]
                    )
                    for model, s in data["servers"].items()
                },
                kinds=[KindTiming(**k) for k in data["kinds"]],
                protocol={stage: StageProtocol(**p) for stage, p in data["protocol"].items()},
                failed=data["failed"],
                errors=list(data["errors"]),
                verdicts={s: StageVerdicts(**v) for s, v in data.get("verdicts", {}).items()},  # older: none
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def protocol_total(self) -> StageProtocol:
        total = StageProtocol()
        for counts in self.protocol.values():
            for name in ("answers", "failures", "reasks", "given_up"):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
        return total


def _server(data: dict[str, Any]) -> ServerFindings:
    waves = [Wave(**w) for w in data["waves"]]
    return ServerFindings(data["concurrency"], data["solo_tokens_per_second"], waves, bool(data.get("kept_up")))
