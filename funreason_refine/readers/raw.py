"""Stream JSON objects out of JSONL, JSON-array and Parquet files, with their line numbers.

Each item (a RawLine) is ``(line, obj, raw)``: the 1-based line (JSONL, JSON) or row (Parquet),
``obj`` the parsed dict or a ``str`` error message when the text at that place cannot be read as
a JSON object (the caller quarantines it), and ``raw`` the text to quarantine. Nothing is loaded
whole: JSONL is read line by line, JSON arrays element by element, Parquet in batches.

With ``parse=False`` a JSONL line that is within the size limit and not blank comes as its
undecoded ``bytes``, for ``parse_line`` to finish elsewhere: the engine's worker processes
parse, so that the process that reads only splits lines.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from funreason_refine.hub.paths import HubPath

RawLine = tuple[int, "dict[str, Any] | str | bytes", str]
"""(line or row, parsed object or error message or unparsed JSONL bytes, raw text for the quarantine file)"""


@dataclass(frozen=True)
class Part:
    """Shard ``number`` of ``count``: the records with indices [first_index, first_index + records)."""

    number: int
    count: int
    first_index: int
    records: int
    input_bytes: int  # the size of the input file the split was made for
    first_line: int = 1  # JSONL: the line number of the part's first line
    start: int = 0  # JSONL: the byte offset of the part's first line
    end: int | None = None  # JSONL: the byte offset past the part's last line

    @property
    def read_bytes(self) -> int:
        """The bytes a shard reads: its own range (JSONL), else the file (progress shown over them)."""
        return self.end - self.start if self.end is not None else self.input_bytes

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LineFile(Protocol):
    """What the JSONL reader asks of a file: a local file, or the files of an hf:// input joined (hub/reader.py)."""

    def seek(self, offset: int, /) -> int: ...

    def readline(self) -> bytes: ...

    def __iter__(self) -> Iterator[bytes]: ...


class ChunkFile(Protocol):
    """What the JSON array reader asks of a file: chunks of bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


RAW_PREVIEW = 2000
OnBytes = Callable[[int], None] | None
"""Told how many bytes of the file were read, for progress."""


def preview(text: str) -> str:
    return text if len(text) <= RAW_PREVIEW else text[:RAW_PREVIEW] + f"... [{len(text)} characters]"


def detect_container(path: Path) -> str:
    """``jsonl``, ``json`` (an array) or ``parquet``, from the suffix, else from the first byte."""
    found = container_of_name(path.name)
    if found is not None:
        return found
    with path.open("rb") as fh:
        return container_of_head(fh.read(4096))


def container_of_name(name: str) -> str | None:
    """The container a file's suffix says, or None (then its first bytes say: container_of_head)."""
    suffix = PurePosixPath(name).suffix.lower()
    return {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix)


def container_of_head(head: bytes) -> str:
    head = head.lstrip(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"PAR1"):
        return "parquet"
    return "json" if head.startswith(b"[") else "jsonl"


def iter_raw(
    path: Path | HubPath, max_record_bytes: int, on_bytes: OnBytes = None, parse: bool = True, part: Part | None = None
) -> Iterator[RawLine]:
    """The items of the file, or of one ``part`` of it (a shard: see parts.py)."""
    if isinstance(path, HubPath):  # an hf:// input: its files, read through the Hub's file system
        from funreason_refine.hub.reader import iter_hub

        yield from iter_hub(path, max_record_bytes, on_bytes, parse, part)
        return
    container = detect_container(path)
    if container == "parquet":
        yield from _iter_parquet(path, part)
    elif container == "json":
        items = _iter_json_array(path, max_record_bytes, on_bytes)
        # An array cannot be entered in the middle: read through, keeping the part's elements.
        yield from items if part is None else islice(items, part.first_index, part.first_index + part.records)
    elif part is None:
        yield from _iter_jsonl(path, max_record_bytes, on_bytes, parse)
    else:
        yield from _iter_jsonl(path, max_record_bytes, on_bytes, parse, part.start, part.end, part.first_line)


def _as_object(value: Any) -> dict[str, Any] | str:
    if isinstance(value, dict):
        return value
    return f"expected a JSON object, got {type(value).__name__}"


# Lines of a few kilobytes: iterating them through the default 8 KiB buffer takes 4x as long.
READ_BUFFER = 1 << 16


def is_record_line(line: bytes, max_record_bytes: int) -> bool:
    """Whether a JSONL line is an input record (one index): not blank, or over the size limit."""
    return len(line) > max_record_bytes or (bool(line) and not line.isspace())


def _iter_jsonl(
    path: Path,
    max_record_bytes: int,
    on_bytes: OnBytes,
    parse: bool,
    start: int = 0,
    end: int | None = None,
    first_line: int = 1,
) -> Iterator[RawLine]:
    """The lines from byte ``start`` (a line's start, numbered ``first_line``) to ``end`` (a line's start)."""
    with path.open("rb", buffering=READ_BUFFER) as fh:
        yield from iter_jsonl_file(fh, max_record_bytes, on_bytes, parse, start, end, first_line)


def iter_jsonl_file(
    fh: LineFile,
    max_record_bytes: int,
    on_bytes: OnBytes,
    parse: bool,
    start: int = 0,
    end: int | None = None,
    first_line: int = 1,
) -> Iterator[RawLine]:
    """As _iter_jsonl, from an open binary file (one that seeks, when ``start`` is given)."""
    if start:
        fh.seek(start)
    lines = fh if end is None else _lines_before(fh, end - start)
    for lineno, line in enumerate(lines, first_line):
        if on_bytes is not None:
            on_bytes(len(line))
        if len(line) > max_record_bytes:
            yield (
                lineno,
                f"record is {len(line)} bytes, over the limit of {max_record_bytes} ([input] max_record_bytes)",
                preview(line[:RAW_PREVIEW].decode("utf-8", "replace")),
            )
        elif is_record_line(line, max_record_bytes):
            yield parse_line(lineno, line) if parse else (lineno, line, "")


def _lines_before(fh: LineFile, size: int) -> Iterator[bytes]:
    """The lines of the next ``size`` bytes (which end at a line's end)."""
    while size > 0:
        line = fh.readline()
        if not line:
            return
        size -= len(line)
        yield line


def parse_line(lineno: int, line: bytes) -> RawLine:
    """One JSONL line (not blank, within the size limit) to a RawLine."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            lineno,
            f"not valid UTF-8: byte {exc.start} of the line is {line[exc.start : exc.start + 1]!r}",
            preview(line.decode("utf-8", "replace")),
        )
    if lineno == 1:
        text = text.lstrip("\ufeff")
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        message = (
            f"not JSON: {exc.msg} at column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else "not JSON: nested too deeply"
        )
        return lineno, message, preview(text)
    return lineno, _as_object(obj), "" if isinstance(obj, dict) else text


_CHUNK = 1 << 20


def _iter_json_array(path: Path, max_record_bytes: int, on_bytes: OnBytes) -> Iterator[RawLine]:
    """The elements of a file holding one JSON array, one at a time; a problem that makes the rest of
    the file unreadable is reported once, naming the line, and reading stops."""
    with path.open("rb") as fh:
        yield from iter_json_array_file(fh, max_record_bytes, on_bytes)


def iter_json_array_file(
    fh: ChunkFile, max_record_bytes: int, on_bytes: OnBytes, first_line: int = 1
) -> Iterator[RawLine]:
    """As _iter_json_array, from an open binary file whose first line is numbered ``first_line``."""
    reader = _ArrayReader(fh, max_record_bytes, on_bytes)
    reader.line = first_line
    try:
        yield from reader.elements()
    except _Unreadable as stop:
        yield stop.item
    except UnicodeDecodeError as exc:
        yield reader.line, f"not valid UTF-8 ({exc.reason}); the rest of the file was not read", ""


class _Unreadable(Exception):
    """The rest of the array cannot be read: ``item`` says where and why."""

    def __init__(self, line: int, message: str, raw: str = ""):
        self.item: RawLine = (line, message, raw)


class _ArrayReader:
    """Decode ``[obj, obj, ...]`` one element at a time with ``raw_decode``, counting lines.

    The stdlib has no streaming array decoder that reports line numbers; this keeps a text
    buffer of the file's next megabytes and decodes one element at a time from it.
    """

    def __init__(self, fh: ChunkFile, max_record_bytes: int, on_bytes: OnBytes):
        self.fh = fh
        self.limit = max_record_bytes
        self.on_bytes = on_bytes
        self.utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def elements(self) -> Iterator[RawLine]:
        self._skip_space()
        if not self.buf.startswith("[", self.pos):
            raise _Unreadable(
                self.line, "a JSON array must start with '['", preview(self.buf[self.pos : self.pos + 200])
            )
        self.pos += 1
        first = True
        while self._before_element(first):
            first = False
            start = self.line
            obj, text = self._decode()
            if len(text) > self.limit:
                message = f"record is {len(text)} characters, over the limit of {self.limit} ([input] max_record_bytes)"
                yield start, message, preview(text)
            else:
                yield start, _as_object(obj), "" if isinstance(obj, dict) else preview(text)

    def _before_element(self, first: bool) -> bool:
        """Step over the comma before the next element; False at the closing bracket."""
        self._skip_space()
        if self.pos >= len(self.buf):
            raise _Unreadable(self.line, "the JSON array is not closed with ']' (file truncated?)")
        if self.buf[self.pos] == "]":
            return False
        if not first:
            if self.buf[self.pos] != ",":
                found = self.buf[self.pos]
                message = (
                    f"expected ',' or ']' between array elements, found {found!r}; the rest of the file was not read"
                )
                raise _Unreadable(self.line, message, preview(self.buf[self.pos : self.pos + 200]))
            self.pos += 1
            self._skip_space()
        return True

    def _decode(self) -> tuple[Any, str]:
        """The element at ``pos`` and its text; reads on while it is incomplete (up to the size limit)."""
        start_line = self.line
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # Incomplete and invalid look alike until the element is whole: read on.
                if self.eof:
                    where = start_line + self.buf.count("\n", self.pos, exc.pos)
                    message = f"not JSON: {exc.msg}; the rest of the file was not read"
                    raise _Unreadable(where, message, preview(self.buf[self.pos : exc.pos + 80])) from None
                self._more_within_limit()
                continue
            except RecursionError:
                raise _Unreadable(
                    start_line, "not JSON: nested too deeply; the rest of the file was not read"
                ) from None
            if end < len(self.buf) or self.eof:
                text = self.buf[self.pos : end]
                self.line += text.count("\n")
                self.pos = end
                return obj, text
            self._more()  # a scalar ending exactly at the buffer's end may go on

    def _more_within_limit(self) -> None:
        if len(self.buf) - self.pos > self.limit:
            message = (
                f"an array element is over the limit of {self.limit} characters ([input] max_record_bytes); "
                "the rest of the file was not read"
            )
            raise _Unreadable(self.line, message)
        self._more()

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.fh.read(_CHUNK)
        if self.on_bytes is not None:
            self.on_bytes(len(chunk))
        self.buf = self.buf[self.pos :] + self.utf8.decode(chunk, final=not chunk)
        self.pos = 0
        self.eof = not chunk
        return True

    def _skip_space(self) -> None:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n\ufeff":
                if self.buf[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return


def _iter_parquet(path: Path, part: Part | None = None) -> Iterator[RawLine]:
    import polars as pl

    scan = pl.scan_parquet(path)
    row = 0
    if part is not None:  # polars reads only the row groups that hold the part's rows
        scan, row = scan.slice(part.first_index, part.records), part.first_index
    for batch in scan.collect_batches(chunk_size=2048):
        for obj in batch.iter_rows(named=True):
            row += 1
            yield row, obj, ""
