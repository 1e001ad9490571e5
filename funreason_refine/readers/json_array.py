"""Read a file holding one JSON array element by element, counting lines (raw.py reads JSONL and Parquet).

Imported when an input (or an eval set, or a file of a Hub dataset) is a JSON array.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from funreason_refine.readers.raw import OnBytes, RawLine, as_object, preview


class ChunkFile(Protocol):
    """What the JSON array reader asks of a file: chunks of bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


_CHUNK = 1 << 20


def iter_json_array(path: Path, max_record_bytes: int, on_bytes: OnBytes) -> Iterator[RawLine]:
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
                yield start, as_object(obj), "" if isinstance(obj, dict) else preview(text)

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
