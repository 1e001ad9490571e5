"""The journal of a run's batch jobs, in ``batches/`` of the run folder: what was submitted, so none is paid twice.

Each batch's input file is written (and synced) before it is uploaded; ``journal.jsonl`` gets a line
for its input, its upload, its id as soon as the provider returns it, and its collection. A batch
carries the folder's run key and its own key in its metadata, so that one whose id never reached
the journal (the process died between the provider's answer and the write) is found again by
listing the provider's batches.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from funreason_refine.jsonl import read_lines

FOLDER = "batches"
JOURNAL = "journal.jsonl"
RUN_KEY = "funreason_refine_run"  # metadata keys of a batch
BATCH_KEY = "funreason_refine_batch"


class BatchJournal:
    def __init__(self, run_dir: Path):
        self.folder = run_dir / FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / JOURNAL
        self.events = self._read()
        run = next((e for e in self.events if e.get("event") == "run"), None)
        if run is None:
            run = {"event": "run", "run_key": uuid.uuid4().hex, "at": time.time()}
            self.note(run)
        self.run_key: str = run["run_key"]

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        events = []
        for _, line in read_lines(self.path):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass  # a line cut short by a crash: the event did not happen as far as resuming goes
        return events

    def note(self, event: dict[str, Any]) -> None:
        """Append an event and sync it to disk: what the journal says has happened, has."""
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if event.get("event") != "run":
            self.events.append(event)

    def write_input(self, batch: str, lines: bytes, group: dict[str, Any], keys: list[str]) -> Path:
        """The batch's input file, synced, then its journal line (``group``: model, provider, server, prices)."""
        path = self.folder / f"{batch}.jsonl"
        with path.open("wb") as fh:
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())
        self.note(
            {"event": "input", "batch": batch, "file": path.name, "requests": len(keys), "at": time.time(), **group}
        )
        return path

    def metadata(self, batch: str) -> dict[str, str]:
        return {RUN_KEY: self.run_key, BATCH_KEY: batch}

    def open_batches(self) -> list[dict[str, Any]]:
        """Batches whose input was written but whose answers were not collected: each its input event with the
        ``id`` and ``file_id`` noted since, in the order they were written."""
        state: dict[str, dict[str, Any]] = {}
        for event in self.events:
            batch = str(event.get("batch"))
            if event.get("event") == "input":
                state[batch] = dict(event)
            elif batch in state and event.get("event") in ("uploaded", "submitted"):
                state[batch].update({k: v for k, v in event.items() if k in ("id", "file_id")})
            elif event.get("event") == "collected":
                state.pop(batch, None)
        return list(state.values())

    def read_input(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """The request lines of a journaled batch."""
        text = (self.folder / entry["file"]).read_text(encoding="utf-8")
        return [json.loads(line) for line in text.split("\n") if line.strip()]
