"""How far each shard of a run is, read from its folder: `refine status` and the Ray executor's display."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funreason_refine.executors.layout import Shard, read_marker, shards_of
from funreason_refine.run_folder import FILES
from funreason_refine.run_state import lock_holder, stopped_early

CHUNK = 1 << 20


@dataclass
class ShardState:
    """One shard as its folder shows it: its part of the input, the records done, complete or not."""

    shard: Shard
    folder: Path
    marker: dict[str, Any] | None = None
    done: Counter[str] = field(default_factory=Counter)  # lines per outcome file
    updated: float | None = None  # when an outcome file was last written (seconds since the epoch)
    holder: str | None = None  # what run.lock says of the live process writing the shard, if one is
    stopped: str | None = None  # why its run ended before the end of its part (its summary.json: max_cost)

    @property
    def records(self) -> int | None:
        """The records of its part of the input; None until the shard has started."""
        return self.marker["part"]["records"] if self.marker else None

    @property
    def first_index(self) -> int | None:
        return self.marker["part"]["first_index"] if self.marker else None

    @property
    def complete(self) -> bool:
        return bool(self.marker and self.marker.get("complete"))

    @property
    def state(self) -> str:
        """complete, running (a live process holds its lock), stopped (its run ended before the end of its part:
        max_cost), interrupted (started, nobody writing: killed; running it again resumes it), or not started."""
        if self.complete:
            return "complete"
        if self.marker is None:
            return "not started"
        if self.holder:
            return "running"
        return "stopped" if self.stopped else "interrupted"


class Watcher:
    """Counts the lines of the shards' outcome files, reading only what was added since it last looked."""

    def __init__(self, run_dir: Path, count: int | None = None):
        self.run_dir = Path(run_dir)
        self.count = count  # the split, when known before any shard folder exists
        self._seen: dict[Path, tuple[int, int]] = {}  # file -> (bytes counted, lines in them)

    def states(self) -> list[ShardState]:
        shards = [Shard(i, self.count) for i in range(self.count)] if self.count else shards_of(self.run_dir)
        return [self.state(shard) for shard in shards]

    def state(self, shard: Shard) -> ShardState:
        folder = shard.folder(self.run_dir)
        state = ShardState(shard, folder, read_marker(folder))
        if state.marker is not None and not state.complete:
            state.holder = lock_holder(folder)
            state.stopped = None if state.holder else stopped_early(folder)
        for outcome, name in FILES.items():
            file = folder / name
            try:
                stat = file.stat()
            except OSError:
                continue
            state.done[str(outcome)] = self._lines(file, stat.st_size)
            state.updated = max(state.updated or 0.0, stat.st_mtime)
        return state

    def _lines(self, file: Path, size: int) -> int:
        counted, lines = self._seen.get(file, (0, 0))
        if size < counted:  # emptied (a retry) or cut back (a resume drops a torn line): count again
            counted, lines = 0, 0
        with file.open("rb") as fh:
            fh.seek(counted)
            while chunk := fh.read(CHUNK):
                lines += chunk.count(b"\n")
                counted += len(chunk)
        self._seen[file] = (counted, lines)
        return lines
