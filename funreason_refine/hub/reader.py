"""Reading an hf:// input: its files one after another through HfFileSystem, never downloaded whole.

The files (pinned to a commit, in name order) are one input. JSONL files are read as one stream
of lines, a line never running from one file into the next, so that line numbers and the byte
ranges of shards run on across the files (a shard seeks to its first byte with ranged reads; it
counts the lines before it, as a shard of a local file does). JSON arrays are read element by
element, file after file, lines numbered on across them. Parquet is read a row group at a time
(pyarrow), rows numbered on across the files; a shard reads only the row groups of its rows.
"""

from __future__ import annotations

import bisect
import io
import posixpath
from collections.abc import Generator, Iterator
from dataclasses import replace
from itertools import accumulate, islice
from typing import Any, BinaryIO

from funreason_refine.errors import InputError
from funreason_refine.hub.client import filesystem, hub_errors
from funreason_refine.hub.paths import HubFile, HubPath
from funreason_refine.readers.bfcl import read_answers
from funreason_refine.readers.json_array import iter_json_array_file
from funreason_refine.readers.parts import Part, jsonl_part
from funreason_refine.readers.raw import (
    READ_BUFFER,
    OnBytes,
    RawLine,
    column_kinds,
    compression,
    container_of_head,
    container_of_name,
    iter_jsonl_file,
    parquet_row,
)

BLOCK = 8 << 20  # the size of each ranged read from the Hub
AGAIN = "run the same command again to go on where it stopped"


def open_file(path: HubPath, file: HubFile) -> BinaryIO:
    """One file of the input at its pinned commit, buffered (fsspec's own readline reads a block a line)."""
    raw = filesystem().open(path.fs_path(file.path), "rb", block_size=BLOCK)
    return io.BufferedReader(raw, READ_BUFFER)


def container(path: HubPath) -> str:
    """``jsonl``, ``json`` or ``parquet``: what every file of the input is (by name, else by first bytes)."""
    kinds = set()
    for file in path.files:
        kind = container_of_name(file.path)
        if kind is None:  # a name such as train.jsonl.gz: its first bytes say
            with open_file(path, file) as fh:
                head = fh.read(4096)
            _refuse_compressed(path, file, head)
            kind = container_of_head(head)
        kinds.add(kind)
    if len(kinds) != 1:
        raise InputError(
            f"{path.url} matches files of different kinds ({', '.join(sorted(kinds))}): "
            "give a pattern that matches one kind, e.g. data/*.parquet"
        )
    return kinds.pop()


def refuse_compressed(path: HubPath) -> None:
    """InputError when a file of the input whose name is not a data file's (train.jsonl.gz) is compressed."""
    with hub_errors(path.repo_id, path.revision, commit=path.commit):
        for file in path.files:
            if container_of_name(file.path) is None and not file.path.lower().endswith(".json"):
                with open_file(path, file) as fh:
                    _refuse_compressed(path, file, fh.read(16))


def _refuse_compressed(path: HubPath, file: HubFile, head: bytes) -> None:
    """InputError for a compressed file of the input: its bytes would be read as lines of garbage."""
    compressed = compression(head)
    if compressed is not None:
        kind, command = compressed
        name = posixpath.basename(file.path)
        raise InputError(
            f"{replace(path, pattern=file.path)} is {kind}-compressed, which refine does not read: download it (hf "
            f"download {path.repo_id} {file.path} --repo-type dataset --revision {path.commit} --local-dir .), "
            f"decompress it ({command} {name}) and give the decompressed file as the input"
        )


def iter_hub(
    path: HubPath, max_record_bytes: int, on_bytes: OnBytes = None, parse: bool = True, part: Part | None = None
) -> Iterator[RawLine]:
    """The items of the input, or of one ``part`` of it (a shard), as raw.iter_raw gives a local file's."""
    with hub_errors(path.repo_id, path.revision, then=AGAIN, commit=path.commit):
        kind = container(path)
        if kind == "parquet":
            yield from _parquet_rows(path, part, on_bytes, max_record_bytes)
        elif kind == "json":
            items = _json_elements(path, max_record_bytes, on_bytes)
            yield from items if part is None else islice(items, part.first_index, part.first_index + part.records)
        else:
            with JoinedFiles(path) as fh:
                if part is None:
                    yield from iter_jsonl_file(fh, max_record_bytes, on_bytes, parse)
                else:
                    yield from iter_jsonl_file(
                        fh, max_record_bytes, on_bytes, parse, part.start, part.end, part.first_line
                    )


def split_hub(path: HubPath, number: int, count: int, max_record_bytes: int) -> Part:
    """Part ``number`` of ``count`` of the input, cut as parts.py cuts a local file."""
    size = path.size
    with hub_errors(path.repo_id, path.revision, commit=path.commit):
        kind = container(path)
        if kind == "jsonl":
            with JoinedFiles(path) as fh:
                return jsonl_part(fh, number, count, size, max_record_bytes)
        if kind == "parquet":
            total = sum(_parquet_metadata(path, file).num_rows for file in path.files)
        else:
            total = sum(1 for _ in _json_elements(path, max_record_bytes, None))
    first, after = number * total // count, (number + 1) * total // count
    return Part(number, count, first, after - first, size)


def bfcl_answers(path: HubPath) -> dict[str, Any]:
    """The ground truth of a BFCL question file on the Hub: possible_answer/<its name> beside it, same commit."""
    if len(path.files) != 1:
        raise InputError(f"{path.url}: BFCL input from the Hub is one question file; name one file, not a pattern")
    answers = path.parent / "possible_answer" / path.name  # BFCL's layout, as bfcl.default_answers_path
    with hub_errors(path.repo_id, path.revision, commit=path.commit):
        try:
            with open_file(path, HubFile(answers.pattern, 0)) as fh:
                return read_answers(fh, str(answers))
        except FileNotFoundError:
            raise InputError(
                f"BFCL ground truth not found: {answers}. Put the possible_answer file there "
                '(BFCL\'s layout) or name a local copy with [input] answers = "...".'
            ) from None


class JoinedFiles:
    """The input's files one after another, as one binary file that seeks, tells and reads lines.

    A line never runs from one file into the next: a file's last line ends where the file does.
    """

    def __init__(self, path: HubPath):
        self.path = path
        self.starts = [0, *accumulate(f.size for f in path.files)]
        self._at = -1  # the file open in _fh
        self._fh: BinaryIO | None = None
        self._pos = 0

    def __enter__(self) -> JoinedFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _open(self, at: int) -> None:
        if at != self._at:
            self.close()
            self._at = at
            self._fh = open_file(self.path, self.path.files[at]) if at < len(self.path.files) else None

    def seek(self, offset: int) -> int:
        at = bisect.bisect_right(self.starts, offset) - 1  # the last file that starts at or before offset
        self._open(min(at, len(self.path.files)))
        if self._fh is not None:
            self._fh.seek(offset - self.starts[self._at])
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def readline(self) -> bytes:
        if self._at < 0:
            self.seek(0)
        while self._fh is not None:
            line = self._fh.readline()
            if line:
                self._pos += len(line)
                return line
            self._open(self._at + 1)
        return b""

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class _CountingLines:
    """A file read through, counting its lines (a last line without a newline counts)."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.newlines = 0
        self.last = b"\n"

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.newlines += data.count(b"\n")
        self.last = data[-1:] or self.last
        return data

    def lines(self) -> int:
        """The file's lines: what was not read yet is read (a JSON array's trailing bytes)."""
        while self.read(1 << 20):
            pass
        return self.newlines + (self.last != b"\n")


def _json_elements(path: HubPath, max_record_bytes: int, on_bytes: OnBytes) -> Iterator[RawLine]:
    first_line = 1
    for number, file in enumerate(path.files):
        with open_file(path, file) as fh:
            counting = _CountingLines(fh)
            yield from iter_json_array_file(counting, max_record_bytes, on_bytes, first_line)
            if number + 1 < len(path.files):
                first_line += counting.lines()


def _parquet_metadata(path: HubPath, file: HubFile) -> Any:
    import pyarrow.parquet as pq

    with open_file(path, file) as fh:
        return pq.ParquetFile(fh).metadata


def _parquet_rows(path: HubPath, part: Part | None, on_bytes: OnBytes, max_record_bytes: int) -> Iterator[RawLine]:
    """The rows (of the part), numbered from 1 across the files."""
    first = part.first_index if part is not None else 0
    after = part.first_index + part.records if part is not None else None
    row = 0  # rows of the files before this one
    for file in path.files:
        if after is not None and row >= after:
            return
        rows = yield from _parquet_file_rows(path, file, row, first, after, max_record_bytes)
        row += rows
        if on_bytes is not None:
            on_bytes(file.size)


def _parquet_file_rows(
    path: HubPath, file: HubFile, row: int, first: int, after: int | None, max_record_bytes: int
) -> Generator[RawLine, None, int]:
    """The file's rows from ``first`` to ``after`` (input positions; the file's first is ``row``); returns
    how many rows the file has."""
    import polars as pl
    import pyarrow.parquet as pq

    with open_file(path, file) as fh:
        parquet = pq.ParquetFile(fh)
        start = row
        for group in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            lo, hi = max(first - row, 0), size if after is None else min(after - row, size)
            if lo < hi:
                batch = pl.from_arrow(parquet.read_row_group(group).slice(lo, hi - lo))
                assert isinstance(batch, pl.DataFrame)
                columns = column_kinds(batch.schema)
                for number, obj in enumerate(batch.iter_rows(named=True), row + lo + 1):
                    yield parquet_row(number, obj, columns, max_record_bytes)
            row += size
        return row - start
