"""`refine run --target-kept N`: a run that reads its input only as far as it takes to keep N records.

The kept records are exactly the first N the pipeline keeps, in input order, whatever the refiner and
its concurrency: the engine's emitter writes finished records in input order and counts each kept one
here (after the dataset audits, which may drop one as a duplicate); writing the N-th raises
EnoughKept, and the refiner stops where it is. Records it read past that one, or had in flight, are
not written: they are left unread as ``--limit`` leaves records, and the next run reads them again
(what their judge calls cost is counted, and their answers stay in the folder's answer cache). The
kept records already in the folder count towards N, so a killed run resumes to the same N and a
finished one reads nothing more. Short of N (the input, ``--limit`` or ``max_cost`` ended the run
first) the run says how many are missing, why, and what lets it go on; the CLI exits with status 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from funreason_refine.errors import RunFolderError
from funreason_refine.record import Outcome
from funreason_refine.refiners.base import EnoughKept
from funreason_refine.run_folder import FILES, Written
from funreason_refine.run_state import whole_lines
from funreason_refine.summary import KeptTarget, RunStoppedBy

REMEDIES: dict[RunStoppedBy, str] = {
    "target": "",
    "input": "The input has no more records: refine a larger input into a new run folder (--out), or ask for fewer.",
    "unread": "To go on, complete or fix the input file there and run the same command again.",
    "limit": "To go on, raise --limit (or leave it out) and run the same command again: finished records are read "
    "back, and only what is missing is refined.",
    "max_cost": "To go on, raise max_cost and run the same command again: finished records are read back, and "
    "answers already paid for come from the run folder's cache.",
}
"""What lets a run that stopped short of its target go on, by why it stopped."""


@dataclass
class KeptCount:
    """The kept records of a run folder, counted towards ``target`` as they are written."""

    target: int
    kept: int = 0  # kept records in the folder: read back, then written

    @property
    def reached(self) -> bool:
        return self.kept >= self.target

    def count(self, written: Written) -> None:
        """One record written (as the run folder wrote it); EnoughKept once the target is reached."""
        if written.outcome == Outcome.KEPT:
            self.kept += 1
            if self.reached:
                raise EnoughKept(f"{self.target} kept records")

    def section(self, records: int, stopped: str | None, limit: int | None, unread: str | None = None) -> KeptTarget:
        """summary.json's ``target``: ``records`` the input records with an outcome in the folder, ``stopped``
        why a judged run stopped early (max_cost), ``limit`` the run's --limit (reached when ``records`` is as
        many), ``unread`` where the input could not be read on (a cut-off JSON array)."""
        by: RunStoppedBy
        if self.reached:
            by, why = "target", f"{self.target} kept records reached after {records} input records"
        elif unread is not None:
            by, why = "unread", unread
        elif stopped is not None:
            by, why = "max_cost", stopped
        elif limit is not None and records >= limit:
            by, why = "limit", f"--limit {limit} reached"
        else:
            by, why = "input", f"the input ended after {records} records"
        missing = max(self.target - self.kept, 0)
        return KeptTarget(kept=self.target, reached=self.reached, missing=missing, stopped_by=by, stopped=why)


def refuse_over_target(run_dir: Path, target: int) -> None:
    """Refuse a target below the kept records the folder already holds (an earlier run kept them): they cannot
    be taken back. Read before the folder is opened for the run, so that a refused run leaves it as it was."""
    kept = whole_lines(Path(run_dir) / FILES[Outcome.KEPT])
    if kept > target:
        raise RunFolderError(
            f"{run_dir} already holds {kept} kept records, more than --target-kept {target} (an earlier run kept "
            f"them): give a target of at least {kept}, or start the folder over with --fresh"
        )
