"""What a run folder was made from: the input's bytes and the configurations its records were refined under.

A resume, a retry or a shard skips the records the folder already holds by their input position:
that is right only while the input is the file the folder was started on. run.json keeps the
input files' size, modification time and a content hash; a later run on the folder checks them
and refuses an input that changed (an input that only grew by appended records goes on). It also
keeps the configurations that ``--accept-changes`` left behind, so that summary.json can say
which records were refined under which configuration instead of mixing them silently.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from funreason_refine.errors import RunFolderError

RUN_FILE = "run.json"
INPUT_GIVEN = "input"  # run.json: the input given on the command line (--input), when one was
READING = "reading"  # run.json: how far the last run on the folder was to read (--limit, --target-kept)
HASH_CHUNK = 1 << 20


class FileIdentity(BaseModel):
    """One input file as a run folder was started on it."""

    model_config = ConfigDict(extra="forbid")

    path: str
    bytes: int
    mtime_ns: int
    blake2b: str = Field(description="hash of the file's bytes (the first `bytes` of it)")

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        stat = path.stat()
        return cls(path=str(path.resolve()), bytes=stat.st_size, mtime_ns=stat.st_mtime_ns, blake2b=_hash(path))

    def unchanged(self, path: Path) -> bool:
        """Size and modification time as recorded (a rewrite with the same bytes and time is the same file)."""
        stat = path.stat()
        return stat.st_size == self.bytes and stat.st_mtime_ns == self.mtime_ns

    def change(self, path: Path) -> str | None:
        """How ``path`` differs from the recorded file: None if its first ``bytes`` are the same bytes."""
        if self.unchanged(path):
            return None
        size = path.stat().st_size
        if size < self.bytes:
            return f"it is {size:,} bytes, {self.bytes:,} when the run folder was started"
        if _hash(path, self.bytes) != self.blake2b:
            return "its content is not what it was when the run folder was started"
        return None


def _hash(path: Path, limit: int | None = None) -> str:
    digest = hashlib.blake2b(digest_size=16)
    left = limit if limit is not None else -1
    with path.open("rb") as fh:
        while left != 0:
            chunk = fh.read(HASH_CHUNK if left < 0 else min(HASH_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk) if left > 0 else 0
    return digest.hexdigest()


def read_run_file(run_dir: Path) -> dict[str, Any]:
    """run.json of a folder ({} when there is none yet)."""
    path = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise RunFolderError(f"{path} is not JSON ({exc}): start the folder over with --fresh") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} is not a JSON object: start the folder over with --fresh")
    return data


def run_file_of(run_dir: Path) -> dict[str, Any]:
    """run.json of a folder as far as it can be read: {} when it is missing or not a JSON object (for
    readers that only look something up in it and say themselves what is missing)."""
    try:
        data = read_run_file(run_dir)
    except (RunFolderError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def write_run_file(run_dir: Path, payload: dict[str, Any]) -> None:
    path = Path(run_dir) / RUN_FILE
    tmp = path.with_name(RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_input(run_dir: Path, files: list[Path]) -> list[dict[str, Any]] | None:
    """On a folder started before, refuse input files that changed since; the identities run.json is to
    record (a new folder's files; an input that grew by appended records, the same input with more to do:
    its new size), None when nothing changed. Writes nothing: record_input does, after every refusal."""
    run = read_run_file(run_dir)
    try:
        recorded = [FileIdentity.model_validate(f) for f in run.get("input_files") or []]
    except (ValidationError, TypeError):
        raise RunFolderError(
            f"{Path(run_dir) / RUN_FILE}: input_files is not what this tool writes (edited by hand?): start the "
            "folder over (`refine run PIPELINE --fresh`)"
        ) from None
    if not recorded:
        return [FileIdentity.of(f).model_dump() for f in files]
    for before, path in zip(recorded, files, strict=False):
        if not path.is_file():
            continue  # the reader says it is missing, in its own words
        change = before.change(path)
        if change is not None:
            what = (
                f"the input {path} changed since {run_dir} was started: {change}"
                if str(path.resolve()) == before.path
                else f"{run_dir} was started on {before.path}, and this run reads {path}, which is not that file"
            )
            raise RunFolderError(
                f"{what}. Its finished records are "
                "matched to the input by position, so they would no longer be the records they say. Start the "
                "folder over on this input (`refine run PIPELINE --fresh`, with --shard I/N for a shard), or "
                "refine it into a new folder (--out NEW_DIR)"
            )
    if any(not before.unchanged(path) for before, path in zip(recorded, files, strict=False) if path.is_file()):
        return [FileIdentity.of(f).model_dump() for f in files]  # grown, or touched: same bytes
    return None


def record_input(run_dir: Path, identities: list[dict[str, Any]] | None) -> None:
    """Write the input files' identities check_input found to record."""
    if identities is not None:
        write_run_file(run_dir, {**read_run_file(run_dir), "input_files": identities})


def note_reading(run_dir: Path, limit: int | None, target: int | None) -> None:
    """Record how far the run opening the folder is to read its input (its ``--limit``, its ``--target-kept``;
    None: to the end), where a run that never ends (killed, stopped by an outage) keeps it: summary.json,
    which says it too, is written only at a run's end, and ``refine retry`` must read no further."""
    run = read_run_file(run_dir)
    reading = {"limit": limit, "target_kept": target}
    if run.get(READING) != reading:
        run[READING] = reading
        write_run_file(run_dir, run)


def recorded_reading(run_dir: Path) -> tuple[int | None, int | None] | None:
    """(limit, target) as :func:`note_reading` recorded them; None when run.json holds none (a folder of an
    earlier version, or none at all)."""
    return reading_of(run_file_of(run_dir))


def reading_of(run: dict[str, Any]) -> tuple[int | None, int | None] | None:
    """(limit, target) as the run.json ``run`` records them (:func:`note_reading`); None when it holds none."""
    reading = run.get(READING)
    if not isinstance(reading, dict):
        return None
    limit, target = reading.get("limit"), reading.get("target_kept")
    return (limit if isinstance(limit, int) else None), (target if isinstance(target, int) else None)


def note_configuration_change(run_dir: Path, previous_hash: str, records: int) -> None:
    """--accept-changes: the ``records`` already in the folder were refined under ``previous_hash``."""
    run = read_run_file(run_dir)
    history = run.setdefault("earlier_configurations", [])
    history.append({"config_hash": previous_hash, "records": records - sum(h["records"] for h in history)})
    write_run_file(run_dir, run)


def configurations(run_dir: Path, config_hash: str, records: int) -> list[dict[str, Any]] | None:
    """Each configuration the folder's records were refined under and how many records (None: one only)."""
    history = read_run_file(run_dir).get("earlier_configurations") or []
    if not history:
        return None
    now = records - sum(h["records"] for h in history)
    return [*history, {"config_hash": config_hash, "records": now}]
