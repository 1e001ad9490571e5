"""Where a sharded run keeps its shards: RUN_DIR/shards/0003-of-0008/, each a run folder of its own."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funreason_refine.errors import RefineError, RunFolderError
from funreason_refine.run_folder import SHARDS, SUMMARY

MARKER = "shard.json"  # in each shard folder: its part of the input, and whether it is complete
_NAME = re.compile(r"^(\d{4,})-of-(\d{4,})$")


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``number`` (0-based) of ``count``."""

    number: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N`` as the command line writes it."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise ValueError(f"{text!r} is not I/N (shard I of N, I from 0 to N-1), e.g. 3/8")
        number, count = int(match[1]), int(match[2])
        if count < 1 or number >= count:
            raise ValueError(f"{text!r}: shards of {count} are numbered 0 to {count - 1}")
        return cls(number, count)

    @classmethod
    def of_folder(cls, path: Path) -> Shard | None:
        """The shard whose folder this is, or None."""
        match = _NAME.match(path.name)
        if match is None or path.parent.name != SHARDS:
            return None
        return cls(int(match[1]), int(match[2]))

    @property
    def name(self) -> str:
        return f"{self.number:04d}-of-{self.count:04d}"

    def folder(self, run_dir: Path) -> Path:
        return Path(run_dir) / SHARDS / self.name

    def __str__(self) -> str:
        return f"{self.number}/{self.count}"


def is_sharded(run_dir: Path) -> bool:
    return (Path(run_dir) / SHARDS).is_dir()


def refuse_sharded_folder(run_dir: Path) -> None:
    """A one-process run does not go into a sharded run folder (it would ignore the shards' work)."""
    if is_sharded(run_dir):
        raise RunFolderError(
            f"{run_dir} holds a sharded run ({run_dir}/{SHARDS}): run its shards with --shard I/N (or "
            f"--executor ray --shards N) and merge them with `refine merge {run_dir}`; for a one-process "
            "run use another --out"
        )


def split_of(run_dir: Path) -> int | None:
    """N, the number of shards the run folder's shard folders say it is split into; None before any."""
    counts = {s.count for s in _found(run_dir)}
    if len(counts) > 1:
        names = ", ".join(s.name for s in _found(run_dir))
        raise RunFolderError(
            f"{Path(run_dir) / SHARDS} holds shards of different splits ({names}): a run is split one way. Move "
            "the shards of the other split away (or use another --out for it)"
        )
    return counts.pop() if counts else None


def shards_of(run_dir: Path) -> list[Shard]:
    """Every shard of a sharded run: all N of its split (started or not)."""
    count = split_of(run_dir)
    if count is None:
        raise RunFolderError(
            f"{run_dir} has no shard folders ({Path(run_dir) / SHARDS}/IIII-of-NNNN): run `refine run PIPELINE "
            f"--shard I/N --out {run_dir}` for each shard, or `refine run PIPELINE --executor ray --shards N`"
        )
    return [Shard(i, count) for i in range(count)]


def _found(run_dir: Path) -> list[Shard]:
    folder = Path(run_dir) / SHARDS
    found = (Shard.of_folder(p) for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else iter(())
    return sorted(s for s in found if s is not None)


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((folder / MARKER).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def require_merged(run_dir: Path) -> None:
    """A sharded run folder is read (report, audit, export, compare, review) once merged, and merged
    since its shards last changed."""
    run_dir = Path(run_dir)
    if not is_sharded(run_dir):
        return
    merge_it = f"run `refine merge {run_dir}` first (`refine status {run_dir}` shows its shards)"
    try:
        merged = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8")).get("shards")
    except (OSError, ValueError):
        merged = None
    if merged is None:
        raise RefineError(f"{run_dir} is a sharded run whose shards are not merged yet: {merge_it}")
    for entry in merged:
        marker = read_marker(Path(run_dir) / SHARDS / entry["name"]) or {}
        if marker.get("finished") != entry.get("finished"):
            raise RefineError(f"shard {entry['shard']} of {run_dir} changed since the merge: {merge_it}")
