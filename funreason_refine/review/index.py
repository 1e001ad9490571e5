"""The records a review goes through: discards grouped by stage and reason, a random sample of kept ones.

Built once when the review starts: each line's byte offset, so that a record is read from disk
only when the page asks for it, whatever the size of the run.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funreason_refine.errors import RefineError
from funreason_refine.record import Outcome
from funreason_refine.summary import Summary

DEFAULT_KEPT_SAMPLE = 50
SEED = 14  # the same sample every time the review is opened on the same run
# Lines start with their index (the run folder writes them so): reading it needs no JSON parse.
_INDEX = re.compile(rb'\{"index":\s*(\d+)\s*[,}]')


@dataclass(frozen=True)
class Item:
    index: int
    kind: str
    offset: int
    id: str = ""
    stage: str | None = None
    reason: str | None = None

    @property
    def group(self) -> str:
        return f"discarded at {self.stage}: {self.reason}" if self.kind == Outcome.DISCARDED else "kept (random sample)"

    def public(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "id": self.id,
            "stage": self.stage,
            "reason": self.reason,
            "group": self.group,
        }


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        line = json.loads(raw)
        line["index"] = int(line["index"])
        return line
    except (ValueError, KeyError, TypeError):
        raise RefineError(f"{where} is not a line `refine run` wrote; this run folder cannot be reviewed") from None


def _scan(path: Path) -> list[tuple[int, int, bytes]]:
    """(index, offset, line) of every whole line; a last line still being written (or cut short) is left out."""
    out = []
    offset = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                break
            if raw.strip():
                found = _INDEX.match(raw)
                index = int(found.group(1)) if found else _parse(raw, f"{path}:{number}")["index"]
                out.append((index, offset, raw))
            offset += len(raw)
    return out


def _identity(stat: os.stat_result) -> tuple[int, int]:
    """A file's device and inode: a run started over (--fresh) writes new outcome files (which ext4 often gives
    the inodes of the files it deleted: then the line read at a record's offset tells)."""
    return stat.st_dev, stat.st_ino


def _item(kind: str, offset: int, raw: bytes) -> Item:
    line = _parse(raw, f"{kind}.jsonl at byte {offset}")
    return Item(line["index"], kind, offset, str(line.get("id", "")), line.get("stage"), line.get("reason"))


class RunIndex:
    """Where every kept and discarded record of a run is, and the order the review shows them in."""

    def __init__(self, run_dir: Path, kept_sample: int = DEFAULT_KEPT_SAMPLE, also: set[int] | None = None):
        """``also``: records to show besides the sample (those decided on before)."""
        self.run_dir = Path(run_dir)
        if not (self.run_dir / "summary.json").is_file() and not (self.run_dir / "kept.jsonl").is_file():
            raise RefineError(
                f"{self.run_dir} is not a run folder: it has no summary.json or kept.jsonl. Give the "
                "folder `refine run` wrote (the pipeline's [output] dir or --out)"
            )
        self._where: dict[int, tuple[str, int]] = {}
        self._files: dict[str, tuple[int, int]] = {}  # each outcome file's identity when it was scanned
        discards = [_item("discarded", offset, raw) for _, offset, raw in self._scan("discarded")]
        kept = self._scan("kept")
        wanted = set(random.Random(SEED).sample([i for i, _, _ in kept], min(kept_sample, len(kept))))
        wanted |= also or set()
        self.items = self._ordered(discards) + [_item("kept", o, raw) for i, o, raw in kept if i in wanted]

    def _scan(self, kind: str) -> list[tuple[int, int, bytes]]:
        path = self.run_dir / f"{kind}.jsonl"
        if not path.exists():
            return []
        self._files[kind] = _identity(path.stat())
        found = _scan(path)
        for index, offset, _ in found:
            self._where[index] = (kind, offset)
        return found

    def _ordered(self, discards: list[Item]) -> list[Item]:
        """By stage in pipeline order, then by reason, most frequent first; input order within a group."""
        try:
            stages = list(Summary.read(self.run_dir).stages)
        except RefineError:  # a run still going: no summary yet, groups in name order
            stages = []
        counts = Counter((d.stage, d.reason) for d in discards)
        rank = {s: i for i, s in enumerate(stages)}
        return sorted(
            discards,
            key=lambda d: (
                rank.get(d.stage or "", len(rank)),
                d.stage or "",
                -counts[d.stage, d.reason],
                d.reason or "",
                d.index,
            ),
        )

    def line(self, index: int) -> tuple[dict[str, Any], str] | None:
        """The outcome line of a kept or discarded record, and which; None for any other index."""
        found = self._where.get(index)
        if found is None:
            return None
        kind, offset = found
        path = self.run_dir / f"{kind}.jsonl"
        line = None
        if path.exists():
            with path.open("rb") as fh:
                if _identity(os.fstat(fh.fileno())) == self._files[kind]:  # a new file may have the old inode
                    fh.seek(offset)
                    with suppress(RefineError):  # a line read whole when the review started: the file changed
                        line = _parse(fh.readline(), f"{kind}.jsonl at byte {offset}")
        if line is None or line["index"] != index:  # the run was refined again: another record is there now
            raise RefineError(
                f"{path} changed since this review started (the run folder was refined again): record {index} is "
                "no longer where it was, and nothing was saved. Stop `refine review` and start it again to review "
                "the run as it is now"
            )
        return line, kind

    def __contains__(self, index: object) -> bool:
        return index in self._where
