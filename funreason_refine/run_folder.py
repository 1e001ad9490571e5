"""The run folder: four append-only JSONL outcome files and summary.json.

The outcome files are also the journal: every line carries the input ``index``, so a second
run on the same folder reads them back, skips finished records and rebuilds the counts. A line
cut short by a crash is dropped from its file before resuming.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from funreason_refine.errors import RunFolderError
from funreason_refine.tally import OUTCOMES, Tally

FILES = {kind: f"{kind}.jsonl" for kind in OUTCOMES}
SUMMARY = "summary.json"


def to_json_line(model: BaseModel) -> str:
    """One JSON line. Input may hold lone surrogates (legal JSON escapes such as \\ud800, not
    valid Unicode); pydantic cannot encode them, so such a record is written with them escaped."""
    try:
        return model.model_dump_json()
    except PydanticSerializationError:
        return json.dumps(model.model_dump(mode="json"), ensure_ascii=True)


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


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.done = IndexSet()
        self.tally = Tally()
        self._files: dict[str, IO[str]] = {}

    def open(self) -> None:
        """Create the folder, read back finished work (resume), open the files for appending."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for kind, name in FILES.items():
                file = self.path / name
                if file.exists():
                    self._read_back(kind, file)
                self._files[kind] = file.open("a", encoding="utf-8")
        except OSError as exc:
            raise RunFolderError(f"cannot write the run folder {self.path}: {exc.strerror or exc}. "
                                 "Choose another [output] dir or --out, or fix its permissions.") from None

    @property
    def resumed(self) -> int:
        return len(self.done)

    def _read_back(self, kind: str, file: Path) -> None:
        good_bytes = 0
        with file.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.endswith(b"\n"):
                    break  # cut short by a crash: dropped below, the record is redone
                try:
                    line = json.loads(raw)
                    index = line["index"]
                except (ValueError, KeyError, TypeError):
                    raise RunFolderError(f"{file}:{lineno} is not a line this tool wrote; the run folder "
                                         "cannot be resumed. Use a new --out folder.") from None
                if not self.done.add(index):
                    raise RunFolderError(f"{file}:{lineno}: input record {index} is recorded twice in the run "
                                         "folder; it cannot be resumed. Use a new --out folder.")
                self.tally.add_line(kind, line)
                good_bytes += len(raw)
        if good_bytes != file.stat().st_size:
            with file.open("r+b") as fh:
                fh.truncate(good_bytes)

    def write(self, kind: str, index: int, line: str) -> None:
        """Append one serialised line (see to_json_line) and flush it."""
        if not self.done.add(index):
            raise RunFolderError(f"internal error: input record {index} reached a second outcome ({kind})")
        fh = self._files[kind]
        fh.write(line + "\n")
        fh.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        tmp = self.path / (SUMMARY + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path / SUMMARY)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
