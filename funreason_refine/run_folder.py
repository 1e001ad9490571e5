"""The run folder: four append-only JSONL outcome files and summary.json.

The outcome files are also the journal: every line carries the input ``index``, so a second
run on the same folder reads them back, skips finished records and rebuilds the counts. A line
cut short by a crash is dropped from its file before resuming.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from funreason_refine.errors import RunFolderError
from funreason_refine.jsonl import read_lines
from funreason_refine.record import PLAIN_MODELS, Outcome, Quarantined
from funreason_refine.run_identity import INPUT_GIVEN, RUN_FILE, read_run_file, write_run_file
from funreason_refine.summary import SUMMARY, Summary
from funreason_refine.tally import Tally

FILES = {outcome: f"{outcome}.jsonl" for outcome in Outcome}
LOCK = "run.lock"
OWN_FILES = (*FILES.values(), SUMMARY, RUN_FILE, LOCK)
"""The files at the top of a run folder that a run there writes, reads back as finished work, or clears (--fresh)."""
SHARDS = "shards"  # a sharded run's shard folders (executors/layout.py), each a run folder
LOCK_ATTEMPTS = 5
LOCK_RETRY_SECONDS = 0.05
FLUSH_SECONDS = 0.2
WRITE_BUFFER = 1 << 20  # outcome lines are kilobytes: the default 8 KiB buffer made a syscall every other line


class Written(NamedTuple):
    """A finished record, serialised: what the run folder writes and counts.

    A tuple of plain values: worker processes send thousands a second, and a dataclass or a
    model would cost more to pickle than the record costs to write.
    """

    index: int  # type: ignore[assignment]  # the record's input position; shadows tuple.index, unused here
    outcome: Outcome
    line: bytes
    trail: tuple[tuple[str, str, str | None], ...] = ()  # (stage, verdict, reason) of each step
    stage: str | None = None
    reason: str | None = None
    # A kept record as the dataset audits read it (audit.features.Features), computed where it was
    # refined and carried to them; the run folder never reads it.
    features: tuple[Any, ...] | None = None
    scores: tuple[tuple[str, float], ...] = ()  # (stage, score) of each scorer's verdict in its trail

    @classmethod
    def quarantined(cls, item: Quarantined) -> Written:
        return cls(item.index, Outcome.QUARANTINED, to_json_line(item))


class ConfigChanged(RunFolderError):
    """The folder was started with another pipeline configuration: ``what`` says how it differs, the
    message adds what ``refine run`` offers (a command with other remedies says its own after ``what``)."""

    def __init__(self, what: str, remedy: str) -> None:
        super().__init__(f"{what}\n{remedy}")
        self.what = what


class FolderInUse(RunFolderError):
    """Another process holds the folder's lock (run.lock)."""


# Dates and dataclasses go to _plain_dict, which refuses them: pydantic writes such a line, so that
# every line reads exactly as pydantic writes it. Subclasses of str, int, dict and list (enums, a
# record's read-only tools) are written as what they subclass, as pydantic writes them.
_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _plain_dict(obj: Any) -> dict[str, Any]:
    if type(obj) in PLAIN_MODELS:
        return obj.__dict__
    raise TypeError(type(obj).__name__)


def to_json_line(model: BaseModel) -> bytes:
    """One JSON line, UTF-8, without its newline: the bytes pydantic's ``to_json`` gives.

    Writing lines is a tenth of a rules-only run. orjson writes a record made of plain models
    and JSON values in half pydantic's time; pydantic writes the rest (integers over 64 bits,
    non-string keys, sets, dates, a plugin's own models). Input may hold lone surrogates (legal
    JSON escapes such as \\ud800, not valid Unicode) that neither can encode; such a record is
    written with them escaped, in keys as in values (pydantic writes a key's surrogates as U+FFFD).
    """
    if type(model) in PLAIN_MODELS:
        try:
            return orjson.dumps(model.__dict__, default=_plain_dict, option=_ORJSON)
        except orjson.JSONEncodeError as exc:
            if "surrogates" in str(exc):
                return _escaped(model)
    try:
        line = to_json(model)
    except PydanticSerializationError:
        return _escaped(model)
    # U+FFFD is in the text, or is what pydantic made of a key's lone surrogate.
    if b"\xef\xbf\xbd" in line and _surrogate_key(model.model_dump()):
        return _escaped(model)
    return line


def _escaped(model: BaseModel) -> bytes:
    """The line with every non-ASCII character escaped, lone surrogates included: pydantic's JSON-mode
    values, or where a key holds a lone surrogate (pydantic's JSON mode would change it), the Python
    values. Past pydantic's nesting depth, as for every line, UnwritableRecord."""
    plain: Any = None
    try:
        plain = model.model_dump(mode="json")
    except UnicodeError:  # a lone surrogate where pydantic's JSON mode encodes it
        pass
    except (ValueError, RecursionError) as exc:  # pydantic's "Maximum serialization depth exceeded"
        raise UnwritableRecord(f"nested too deeply to be written as a JSON line ({exc})") from None
    values = model.model_dump()
    if plain is not None and not _surrogate_key(values):
        return json.dumps(plain, ensure_ascii=True).encode()
    try:
        return json.dumps(values, ensure_ascii=True, default=to_jsonable_python).encode()
    except (TypeError, ValueError, PydanticSerializationError) as exc:  # a key json refuses, such as a tuple
        raise UnwritableRecord(f"cannot be written as a JSON line ({exc})") from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_key(value: Any) -> bool:
    """A key holding a lone surrogate in ``value``, at any depth."""
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and _SURROGATE.search(k) is not None) or _surrogate_key(v) for k, v in value.items()
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_surrogate_key(v) for v in value)
    return False


class UnwritableRecord(RunFolderError):
    """A record the run folder cannot write as a line: values nested deeper than the serialisers go
    (about 250 levels, which JSON text may hold and a stage's repair may make). Its record is quarantined."""


def own_file(run_dir: Path, path: Path) -> str | None:
    """What is wrong with a run into ``run_dir`` reading the file ``path`` (its input, a BFCL answer file, an eval
    set): ``path`` is one of the files runs into that folder write, read back or clear (OWN_FILES, the judge answer
    cache, anything in its shard or batch folders), which a run would read as its own finished work and --fresh would
    delete; None when it is not (another file in that folder is read as any other). Links are followed."""
    try:
        inside = Path(path).resolve().relative_to(Path(run_dir).resolve())
    except ValueError:
        return None
    # judge code only for a file inside the run folder: a rules-only run imports none
    from funreason_refine.judge.batch_journal import FOLDER as BATCHES
    from funreason_refine.judge.cache import FILE as CACHE

    top = inside.parts[0] if inside.parts else None
    if top in (SHARDS, BATCHES):
        what = f"in {Path(run_dir) / top}, which a run writes in its run folder {run_dir}"
    elif len(inside.parts) == 1 and top in (*OWN_FILES, CACHE):
        place = Path(run_dir) / inside
        what = (
            "" if place == Path(path) else f"{place}, "
        ) + f"one of the files a run writes in its run folder {run_dir}"
    else:
        return None
    return (
        f"{path} is {what}: the run would read it back as its own finished work, or write over it (--fresh deletes "
        "it). Copy the file out of the run folder and read the copy, or choose another [output] dir (or --out)"
    )


class IndexSet:
    """Set of non-negative ints as a bitmap: 600k indices take 75 KB, not 30 MB of int objects."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count = 0

    def add(self, index: int) -> bool:
        """Add; return False if it was already there."""
        byte, bit = divmod(index, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        if self._bits[byte] >> bit & 1:
            return False
        self._bits[byte] |= 1 << bit
        self.count += 1
        return True

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        byte, bit = divmod(index, 8)
        return byte < len(self._bits) and bool(self._bits[byte] >> bit & 1)

    def __len__(self) -> int:
        return self.count

    def is_prefix(self) -> bool:
        """Whether the indices are exactly 0 .. len - 1 (no record skipped before the last one)."""
        whole, rest = divmod(self.count, 8)
        if any(byte != 0xFF for byte in self._bits[:whole]):
            return False
        return not rest or self._bits[whole] == (1 << rest) - 1


def _diff(old: Any, new: Any, where: str = "") -> list[str]:
    """What changed between two configuration payloads, as 'key: old -> new' lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _diff(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new, strict=False)) for line in _diff(a, b, f"{where}[{i}]")]
    if old == new:
        return []
    show = lambda v: json.dumps(v)[:80] + ("..." if len(json.dumps(v)) > 80 else "")  # noqa: E731
    return [f"{where}: {show(old)} -> {show(new)}"]


def _take(handle: IO[str]) -> bool:
    """Take the lock of an open run.lock; False when another process holds it.

    Tried a few times: `refine status` (run_state.lock_holder) holds it for an instant to see whether a run
    is alive, and a run started at that instant must not be refused.
    """
    import fcntl

    for attempt in range(LOCK_ATTEMPTS):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < LOCK_ATTEMPTS:
                time.sleep(LOCK_RETRY_SECONDS)
    return False


class ConfigUpdate(NamedTuple):
    """What run.json is to record of a run's configuration, and the configuration hash it replaces
    (None: a new folder)."""

    payload: dict[str, Any]
    replaced: str | None


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.done = IndexSet()
        self.tally = Tally()
        self.resumed = 0  # records already done when the folder was opened
        self._files: dict[Outcome, IO[bytes]] = {}
        self._lock: IO[str] | None = None
        self._flushed = time.monotonic()

    def lock(self, command: str = "refine run") -> None:
        """Take the folder for this process (``command``: what run.lock says holds it); a second run on it
        is refused, not interleaved."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = (self.path / LOCK).open("a+", encoding="utf-8")
        except OSError as exc:
            raise RunFolderError(
                f"cannot write the run folder {self.path}: {exc.strerror or exc}. "
                "Choose another [output] dir or --out, or fix its permissions."
            ) from None
        if not _take(handle):
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise FolderInUse(
                f"{self.path} is in use by {holder}; wait for it to finish, or run into another folder "
                "(refine run --out)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{command} (pid {os.getpid()} on {socket.gethostname()})")
        handle.flush()
        self._lock = handle

    def check_config(
        self,
        pipeline_path: str,
        config: dict[str, Any],
        config_hash: str,
        accept_changes: bool,
        input_given: str | None = None,
    ) -> ConfigUpdate | None:
        """Refuse a changed configuration on a folder started before, unless accepted; what run.json is
        to record (None: the same configuration from the same pipeline file, nothing to record). Writes
        nothing: a run refused later (its input changed, its target already exceeded) leaves run.json as it
        was; record_config writes.
        ``input_given``: the command line's --input, recorded so that retry and merge read the same input."""
        from funreason_refine import __version__

        previous = read_run_file(self.path)
        same = previous.get("config_hash") == config_hash and previous.get(INPUT_GIVEN) == input_given
        if same and previous.get("pipeline") == pipeline_path:
            return None
        if previous and not same and not accept_changes:
            raise ConfigChanged(*self._changed(previous, config, input_given))
        payload = {"pipeline": pipeline_path, "config_hash": config_hash, "config": config, "version": __version__}
        if input_given is not None:
            payload[INPUT_GIVEN] = input_given
        # The same configuration from a pipeline file elsewhere (the folder or the file moved): recorded where it
        # is now, for refine retry and the commands that say how to resume.
        return ConfigUpdate(payload, None if same else previous.get("config_hash"))

    def record_config(self, update: ConfigUpdate | None) -> None:
        """Write what check_config found to record, keeping the rest of run.json (the input's identity,
        earlier configurations)."""
        if update is None:
            return
        previous = read_run_file(self.path)
        kept = {k: v for k, v in previous.items() if k not in update.payload and k != INPUT_GIVEN}
        write_run_file(self.path, {**update.payload, **kept})

    def _changed(self, previous: dict[str, Any], config: dict[str, Any], input_given: str | None) -> tuple[str, str]:
        """How the configuration differs from the folder's, and refine run's remedies."""
        changes = _diff(previous.get("config", {}), config) or ["(the configuration differs)"]
        started = previous.get(INPUT_GIVEN)
        if started != input_given:
            changes.insert(0, f"input given on the command line: {started or '(none)'} -> {input_given or '(none)'}")
        advice = (
            f"To go on with the input it was started on, give it again: --input {started}. "
            if started and started != input_given
            else ""
        )
        what = f"{self.path} was started with another pipeline configuration:\n  " + "\n  ".join(changes[:20])
        return what, (
            f"{advice}Run again with --accept-changes to go on with the new configuration (finished "
            "records stay as they are; cached judge answers are reused), or start this folder over "
            "with `refine run PIPELINE --fresh` (with --shard I/N --out RUN_DIR for a shard)."
        )

    def clear(self) -> None:
        """Start the folder over: outcome files and summary go; the judge answer cache stays."""
        for name in (*FILES.values(), SUMMARY, RUN_FILE):
            (self.path / name).unlink(missing_ok=True)

    def open(self, on_read_back: Callable[[Outcome, dict[str, Any]], None] | None = None) -> None:
        """Read back finished work (resume), open the outcome files for appending; ``on_read_back`` is
        given each line read back, parsed (the dataset audits rebuild their state from them)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            # Written again when the run ends: until then the folder reads as unfinished (run_state.py).
            (self.path / SUMMARY).unlink(missing_ok=True)
            for outcome, name in FILES.items():
                file = self.path / name
                if file.exists():
                    self._read_back(outcome, file, on_read_back)
                if outcome is not Outcome.HARD or file.exists():  # hard.jsonl: only when a pipeline uses the pool
                    self._files[outcome] = self._open_outcome(outcome)
            self.resumed = len(self.done)
        except OSError as exc:
            raise RunFolderError(
                f"cannot write the run folder {self.path}: {exc.strerror or exc}. "
                "Choose another [output] dir or --out, or fix its permissions."
            ) from None

    def _read_back(
        self, outcome: Outcome, file: Path, on_read_back: Callable[[Outcome, dict[str, Any]], None] | None
    ) -> None:
        good_bytes = 0
        size = file.stat().st_size
        for lineno, raw in read_lines(file):
            if not raw.endswith(b"\n"):
                break  # cut short by a crash: dropped below, the record is redone
            try:
                line = json.loads(raw)
                index = line["index"]
            except (ValueError, KeyError, TypeError):
                if good_bytes + len(raw) == size:
                    break  # a last line garbled by a power cut: dropped, the record is redone
                raise RunFolderError(
                    f"{file}:{lineno} is not a line this tool wrote; the run folder "
                    "cannot be resumed. Run into a new folder (refine run PIPELINE --out NEW_DIR)."
                ) from None
            if not self.done.add(index):
                raise RunFolderError(
                    f"{file}:{lineno}: input record {index} is recorded twice in the run "
                    "folder; it cannot be resumed. Run into a new folder (refine run PIPELINE --out NEW_DIR)."
                )
            try:
                self.tally.add_line(outcome, line)
            except ValueError as exc:
                raise RunFolderError(
                    f"{file}:{lineno}: input record {index} cannot be counted: {exc}; the run folder cannot be "
                    "resumed. Run into a new folder (refine run PIPELINE --out NEW_DIR), or correct or delete "
                    "that line and run again (its record is then redone)."
                ) from None
            if on_read_back is not None:
                on_read_back(outcome, line)
            good_bytes += len(raw)
        if good_bytes != file.stat().st_size:
            with file.open("r+b") as fh:
                fh.truncate(good_bytes)

    def _open_outcome(self, outcome: Outcome) -> IO[bytes]:
        return (self.path / FILES[outcome]).open("ab", buffering=WRITE_BUFFER)

    def record(self, written: Written) -> None:
        """Write one finished record's line to its outcome file and count it; the files are flushed
        every FLUSH_SECONDS.

        A crash loses at most the last FLUSH_SECONDS of finished records (they are redone on
        resume) and leaves at most one torn last line per file, which resuming drops.
        """
        outcome = written.outcome
        if not self.done.add(written.index):
            raise RunFolderError(f"internal error: input record {written.index} reached a second outcome ({outcome})")
        if outcome not in self._files:
            self._files[outcome] = self._open_outcome(outcome)
        try:
            self._files[outcome].write(written.line + b"\n")
        except OSError as exc:
            self._write_failed(outcome, exc)
        self.tally.add(outcome, written.trail, written.stage, written.reason, written.scores)
        now = time.monotonic()
        if now - self._flushed >= FLUSH_SECONDS:
            self.flush()
            self._flushed = now

    def flush(self) -> None:
        for outcome, fh in self._files.items():
            try:
                fh.flush()
            except OSError as exc:
                self._write_failed(outcome, exc)

    def _write_failed(self, outcome: Outcome, exc: OSError) -> None:
        raise RunFolderError(
            f"cannot write {self.path / FILES[outcome]}: {exc.strerror or exc}. Every complete line "
            "written before is intact: free some space (or fix the folder) and run the same command "
            "again to resume"
        ) from None

    def forget_errors(self) -> int:
        """Drop errors.jsonl, so that a resume redoes those records; returns how many there were.

        Atomic: the records are either still errors or not done, never both or lost.
        """
        file = self.path / FILES[Outcome.ERRORS]
        if not file.exists():
            return 0
        count = sum(1 for _, line in read_lines(file) if not line.isspace())
        tmp = self.path / (FILES[Outcome.ERRORS] + ".tmp")
        tmp.write_text("", encoding="utf-8")
        os.replace(tmp, file)
        return count

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for fh in self._files.values():
                try:
                    fh.close()
                except OSError:
                    pass  # flush above already reported it; the unwritten records are redone on resume
            self._files.clear()
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None


_LINE_INDEX = re.compile(rb'^\{"index":(\d+)[,}]')  # how every line a run writes starts


def refuse_past_limit(run_dir: Path, limit: int) -> None:
    """Refuse a --limit short of the input records the folder already holds (an earlier run read further): they
    cannot be taken back, and the run would end with more outcomes than the input records it was to read. Read
    before the folder is opened, so that a refused run leaves it as it was (its summary.json too)."""
    reach = 0  # one past the highest input index with an outcome in the folder
    for name in FILES.values():
        file = Path(run_dir) / name
        if file.exists():
            for _, raw in read_lines(file):
                match = _LINE_INDEX.match(raw)
                if match is not None:
                    reach = max(reach, int(match[1]) + 1)
    if reach > limit:
        raise RunFolderError(
            f"{run_dir} already holds outcomes of input records up to record {reach - 1}, past --limit {limit} (an "
            f"earlier run read further): give --limit {reach} or more, or leave it out, or start the folder over "
            "with --fresh (or use another --out)"
        )


def write_summary(run_dir: Path, summary: Summary) -> None:
    """summary.json, replaced in one step (a reader never sees half of it)."""
    path = Path(run_dir) / SUMMARY
    tmp = path.with_name(SUMMARY + ".tmp")
    try:
        tmp.write_text(summary.to_json(), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise RunFolderError(
            f"cannot write {path}: {exc.strerror or exc}. The records are all "
            "written; free some space and run the same command again to write it"
        ) from None
