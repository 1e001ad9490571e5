"""What a run folder holds: a finished run (or one that stopped early: max_cost, an input it could not read on),
one being written, an interrupted one, or one with a torn line.

export, report, audit, review and status all ask :func:`folder_state`, so that they say the same thing
about the same folder. A run removes summary.json when it opens its folder and writes it when it
ends: a folder without one was stopped before it finished, unless a live process holds its run.lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from funreason_refine.errors import RefineError, RunFolderError
from funreason_refine.record import Outcome
from funreason_refine.run_folder import FILES, LOCK, RUN_FILE, SUMMARY

TAIL_CHUNK = 1 << 16
PARTIAL_OPTION = "--allow-partial"  # export, audit and review: read the records a run has finished so far


class State(StrEnum):
    COMPLETE = "complete"  # summary.json is written: the run ended (FolderState.stopped: before its input's end)
    RUNNING = "running"  # a live process holds run.lock: the folder is being written
    INTERRUPTED = (
        "interrupted"  # no summary.json and nobody writing: stopped (killed, Ctrl-C, a failure) before the end
    )
    TORN = "torn"  # an outcome file's last line was cut short (a kill, a power cut, a partial copy)


@dataclass(frozen=True)
class FolderState:
    """A run folder's state, with what says so: who holds its lock, the line cut short, its pipeline."""

    path: Path
    state: State
    holder: str | None = None  # what run.lock says of the process that holds it (or held it last)
    torn: str | None = None  # FILE:LINE of the line cut short
    run_args: str | None = None  # the pipeline file run.json names (and the --input given), to resume the run
    stopped: str | None = None  # an ended run's summary.json: why it stopped before its input's end (max_cost)

    @property
    def complete(self) -> bool:
        return self.state is State.COMPLETE

    def describe(self) -> str:
        """What the folder is, in one sentence without a full stop."""
        if self.state is State.RUNNING:
            return f"{self.path} is being written by {self.holder}: its records are not all there yet"
        if self.state is State.TORN:
            why = "the run stopped while writing it: killed, or its disk full"
            return f"the last line of {self.torn} is cut short ({why})"
        if self.state is State.INTERRUPTED:
            who = f" ({self.holder})" if self.holder else ""
            return f"{self.path} is an interrupted run: it has no {SUMMARY}, the run{who} stopped before it finished"
        if self.stopped is not None:
            return f"{self.path} is a run that stopped before the end of its input: {self.stopped}"
        return f"{self.path} is a finished run"

    def _command(self) -> str:
        return f"`refine run {self.run_args} --out {self.path}`" if self.run_args else "the same `refine run` command"

    def remedy(self) -> str:
        """What to do to make the folder a finished run."""
        if self.state is State.RUNNING:
            return "Wait for the run to finish (`refine status` shows how far it is)"
        if self.stopped is not None:
            return stop_remedy(self.stopped, self._command())
        dropped = "; it drops the line cut short and redoes that record" if self.state is State.TORN else ""
        return f"Run {self._command()} again to finish it (it resumes{dropped})"

    def stop_note(self) -> str | None:
        """For a run that ended before its input's end: what it is and what goes on with it; else None."""
        return f"{self.describe()}. {self.remedy()}" if self.stopped is not None else None

    def refusal(self, doing: str, offer_partial: bool = False) -> PartialRun:
        """The error that refuses ``doing`` (e.g. "export") on this folder; ``offer_partial``: say that
        ``--allow-partial`` reads the records finished so far."""
        also = f"; or {doing} the records it has finished so far with {PARTIAL_OPTION}" if offer_partial else ""
        return PartialRun(f"cannot {doing} {self.path}: {self.describe()}. {self.remedy()}{also}")

    def partial_note(self) -> str:
        """The warning a command gives when it reads such a folder's records (--allow-partial)."""
        return f"{self.describe()}: what follows is only what it has finished so far. {self.remedy()}"


class PartialRun(RunFolderError):
    """A run folder that is not a finished run: being written, interrupted, or with a line cut short."""


class UnreadableLine(RunFolderError):
    """An outcome file holds a line that is not one `refine run` wrote (not at its end: a damaged file)."""


def lock_holder(path: Path) -> str | None:
    """What run.lock says of the live process that holds it, or None when no live process does.

    A shared lock taken for an instant and let go: a run that starts at that instant waits for it
    (RunFolder.lock tries again), it is not refused.
    """
    import fcntl

    try:
        handle = (Path(path) / LOCK).open(encoding="utf-8", errors="replace")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        except OSError:
            return None  # a file system without locks: nobody can be holding it
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _last_lock_text(path: Path) -> str | None:
    try:
        return (path / LOCK).read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _last_line_start(fh: BinaryIO, size: int) -> int:
    """The offset of the last line of a file of ``size`` bytes (whose last byte may be its newline)."""
    end = size - 1  # the last byte is left out: it may be the last line's own newline
    while end > 0:
        start = max(0, end - TAIL_CHUNK)
        fh.seek(start)
        found = fh.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def torn_line(file: Path) -> int | None:
    """The line number of ``file``'s last line when it is cut short or is not a line `refine run` wrote."""
    try:
        size = file.stat().st_size
    except OSError:
        return None
    if size == 0:
        return None
    with file.open("rb") as fh:
        start = _last_line_start(fh, size)
        fh.seek(start)
        last = fh.read()
        if last.endswith(b"\n") and _is_outcome_line(last):
            return None
        fh.seek(0)
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - last.count(b"\n") + 1


def _is_outcome_line(raw: bytes) -> bool:
    if raw.isspace():
        return True
    try:
        return isinstance(json.loads(raw)["index"], int)
    except (ValueError, KeyError, TypeError):
        return False


def _run_args(path: Path) -> str | None:
    from funreason_refine.run_identity import run_file_of

    return run_args(run_file_of(path))


def run_args(run: dict[str, Any]) -> str | None:
    """The arguments of `refine run` that go on with a folder whose run.json is ``run``: the pipeline file
    it names, with the --input the folder was started with and how far its last run was to read (--limit,
    --target-kept: without them a resume would refine the whole input); None when it names no pipeline."""
    from funreason_refine.run_identity import INPUT_GIVEN, reading_of

    if run.get("pipeline") is None:
        return None
    given = run.get(INPUT_GIVEN)
    limit, target = reading_of(run) or (None, None)
    return (
        f"{run['pipeline']}"
        + (f" --input {given}" if given else "")
        + (f" --limit {limit}" if limit is not None else "")
        + (f" --target-kept {target}" if target is not None else "")
    )


def stop_remedy(stopped: str, command: str) -> str:
    """What goes on with a run that ``stopped`` (summary.json's words) before its input's end: ``command``
    (the `refine run` of the folder) again, once max_cost is raised or the input readable past where it stopped."""
    if stopped.startswith("max_cost"):  # the words of judge.client's BudgetStop
        return f"Raise max_cost (it counts what the folder spent in all its runs) and run {command} again to go on"
    return f"Complete the input from there and run {command} again: it reads on from where it stopped"


def stopped_early(folder: Path) -> str | None:
    """Why the run that wrote ``folder``'s summary.json stopped before its input's end; None when it did not, or
    when there is no summary.json to say."""
    from funreason_refine.errors import RefineError
    from funreason_refine.summary import Summary

    try:
        summary = Summary.read(folder)
    except (OSError, RefineError):  # none, or one the commands that read it say is unreadable
        return None
    return None if summary.complete else summary.stopped or "before the end of its input"


def _is_run_folder(path: Path) -> bool:
    names = (SUMMARY, RUN_FILE, LOCK, *FILES.values())
    return any((path / name).exists() for name in names)


def folder_state(path: Path) -> FolderState:
    """The state of the run folder ``path``; RefineError when it is not one."""
    path = Path(path)
    if not path.is_dir() or not _is_run_folder(path):
        raise RefineError(
            f"{path} is not a run folder: it has no {SUMMARY} and no outcome files. Give the folder `refine run` "
            "wrote (the pipeline's [output] dir or --out)"
        )
    run_args = _run_args(path)
    holder = lock_holder(path)
    if holder is not None:
        return FolderState(path, State.RUNNING, holder=holder, run_args=run_args)
    for name in FILES.values():
        line = torn_line(path / name)
        if line is not None:
            return FolderState(path, State.TORN, torn=f"{path / name}:{line}", run_args=run_args)
    if not (path / SUMMARY).is_file():
        return FolderState(path, State.INTERRUPTED, holder=_last_lock_text(path), run_args=run_args)
    return FolderState(path, State.COMPLETE, run_args=run_args, stopped=stopped_early(path))


def readable_state(path: Path, doing: str, allow_partial: bool = False, offer_partial: bool = False) -> FolderState:
    """The state of the folder ``doing`` (export, report, audit, review) is about to read: a sharded run
    must be merged, and the run finished unless ``allow_partial``; PartialRun (or RefineError) otherwise.
    ``offer_partial``: the refusal says that PARTIAL_OPTION reads what the run has finished."""
    from funreason_refine.executors.layout import require_merged

    require_merged(path)
    state = folder_state(path)
    if not state.complete and not allow_partial:
        raise state.refusal(doing, offer_partial)
    return state


def outcome_lines(file: Path, partial: bool = False) -> Iterator[dict[str, Any]]:
    """The parsed lines of an outcome file, in file order. A line that is not one `refine run` wrote is an
    UnreadableLine naming FILE:LINE; with ``partial`` (a run being written or stopped) a last line cut
    short is left out instead."""
    with Path(file).open("rb", buffering=1 << 16) as fh:
        for number, raw in enumerate(fh, 1):
            if raw.isspace():
                continue
            if raw.endswith(b"\n") and (line := _parse(raw)) is not None:
                yield line
                continue
            if partial and not fh.read(1):
                return
            raise UnreadableLine(
                f"{file}:{number} is not a line `refine run` wrote (cut short, or damaged since): this run folder "
                f"cannot be read as it is. {_remedy(Path(file).parent)}"
            )


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line if isinstance(line, dict) and isinstance(line.get("index"), int) else None


def _remedy(path: Path) -> str:
    run_args = _run_args(path)
    command = f"`refine run {run_args} --out {path} --fresh`" if run_args else "`refine run PIPELINE --fresh`"
    return f"Restore the folder from a copy, or refine its input again ({command})"


def finished_records(path: Path) -> int:
    """The records a run folder has finished: the whole lines of its outcome files."""
    return sum(whole_lines(Path(path) / name) for name in FILES.values())


def whole_lines(file: Path) -> int:
    """Lines of an outcome file with their newline (a last line cut short is dropped when the folder is
    opened); 0 for a file not written yet."""
    try:
        with file.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def folder_status(path: Path) -> str:
    """`refine status` of a one-process run folder: its state, the records it has finished, what to do."""
    state = folder_state(path)
    finished = f"{finished_records(state.path):,} records finished"
    if state.stopped is not None:
        return (
            f"{state.path}: stopped: {state.stopped}; {finished}, the rest of its input not read. {state.remedy()}"
            f"{_errors_note(state.path)}"
        )
    if state.complete:
        return f"{state.path}: complete{_how_far(state.path)}, {finished}{_errors_note(state.path)}"
    return f"{state.describe()}; {finished} so far. {state.remedy()}"


def _how_far(path: Path) -> str:
    """How far a complete run was asked to read, when not to its input's end: `` to --limit N`` and/or
    ``--target-kept N`` (what its run.json records of its last run)."""
    from funreason_refine.run_identity import reading_of, run_file_of

    limit, target = reading_of(run_file_of(path)) or (None, None)
    asked = [f"--limit {limit}"] * (limit is not None) + [f"--target-kept {target}"] * (target is not None)
    return f" to {' and '.join(asked)}" if asked else ""


def _errors_note(path: Path) -> str:
    """What `refine status` says of a run's records in errors.jsonl (none of them kept or discarded yet)."""
    errors = whole_lines(path / FILES[Outcome.ERRORS])
    if not errors:
        return ""
    are = "is" if errors == 1 else "are"
    return (
        f"; of these, {errors:,} {are} in {path / FILES[Outcome.ERRORS]}, with no verdict (a stage or its judge "
        f"failed: see each line's error): fix the cause, then run `refine retry {path}`"
    )
