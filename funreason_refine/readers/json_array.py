"""Read a file holding one JSON array element by element, counting lines (raw.py reads JSONL and Parquet).

Imported when an input (or an eval set, or a file of a Hub dataset) is a JSON array.

What is not a well-formed element does not stop the reading where its end can be found: an element that
is not JSON, or is over ``[input] max_record_bytes``, ends at the next ``,`` or ``]`` outside strings and
brackets (``_Extent``), and is reported as one item; the reading goes on with the next element. Arrays
that follow the first one (``cat a.json b.json``) are read as more elements; other text after an array's
``]`` is reported as one item, up to the next line that starts with ``[``. Only where an element's end
cannot be found before the end of the file (a string or bracket left open: a truncated file), or the bytes
are not UTF-8, is the rest of the file left unread: that item's message is an ``Unread``.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, Protocol

from funreason_refine.jsonl import UNIQUE_KEYS
from funreason_refine.readers.raw import AGAIN as _AGAIN
from funreason_refine.readers.raw import RAW_PREVIEW, OnBytes, RawLine, Unread, as_object, preview


class ChunkFile(Protocol):
    """What the JSON array reader asks of a file: chunks of bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


_CHUNK = 1 << 20


def iter_json_array(path: Path, max_record_bytes: int, on_bytes: OnBytes) -> Iterator[RawLine]:
    """The elements of a file holding a JSON array (or several, one after the other), one at a time;
    a problem that makes the rest of the file unreadable is reported once, naming the line, and reading stops."""
    with path.open("rb") as fh:
        yield from iter_json_array_file(fh, max_record_bytes, on_bytes)


def iter_json_array_file(
    fh: ChunkFile, max_record_bytes: int, on_bytes: OnBytes, first_line: int = 1
) -> Iterator[RawLine]:
    """As _iter_json_array, from an open binary file whose first line is numbered ``first_line``."""
    reader = _ArrayReader(fh, max_record_bytes, on_bytes)
    reader.line = first_line
    try:
        yield from reader.arrays()
    except _Unreadable as stop:
        yield stop.item
    except UnicodeDecodeError as exc:
        yield reader.line, reader.unread(f"not valid UTF-8 ({exc.reason})"), ""


class _Unreadable(Exception):
    """The rest of the array cannot be read: ``item`` says where and why."""

    def __init__(self, line: int, message: str, raw: str = ""):
        self.item: RawLine = (line, message, raw)


_IN_STRING = re.compile(r'["\\]')
_OUTSIDE = re.compile(r'[\[\]{}",]')


class _Extent:
    """Where an array element ends: at the first ``,`` or ``]`` outside strings and brackets. Fed the text
    piece by piece (it keeps its place in strings and brackets between pieces)."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def find(self, text: str, pos: int) -> int | None:
        """The index in ``text`` of the ``,`` or ``]`` that ends the element, or None: not in ``text``."""
        if self.escaped:
            pos, self.escaped = pos + 1, False
        while pos < len(text):
            if self.in_string:
                pos = self._in_string(text, pos)
                continue
            found = _OUTSIDE.search(text, pos)
            if found is None:
                return None
            pos, char = found.start(), found.group()
            if self.depth == 0 and char in ",]":
                return pos
            self.in_string = char == '"'
            self.depth += 1 if char in "[{" else -1 if char in "]}" and self.depth else 0
            pos += 1
        return None

    def _in_string(self, text: str, pos: int) -> int:
        found = _IN_STRING.search(text, pos)
        if found is None:
            return len(text)
        if found.group() == '"':
            self.in_string = False
            return found.end()
        if found.end() >= len(text):  # a backslash at the end of the piece escapes the next piece's first character
            self.escaped = True
        return found.end() + 1


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
        self.decoder = UNIQUE_KEYS
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.read_bytes = 0  # bytes read from the file so far
        self.decoded_bytes = 0  # of which decoded, ``pending`` of them held by the decoder (a character's start)
        self.pending = 0
        self.bad_bytes: UnicodeDecodeError | None = None  # met in the last chunk read, after the text in ``buf``

    def arrays(self) -> Iterator[RawLine]:
        """The elements of the file's arrays; an empty file (or one of whitespace) holds none."""
        self._skip_space()
        if self.pos >= len(self.buf):
            return
        if not self.buf.startswith("[", self.pos):
            message = self.unread("a JSON array must start with '['")
            raise _Unreadable(self.line, message, preview(self.buf[self.pos : self.pos + 200]))
        while True:
            yield from self.elements()
            self._skip_space()
            if self.pos >= len(self.buf):
                return
            if not self.buf.startswith("[", self.pos):
                yield self._trailing()
                if self.pos >= len(self.buf):
                    return

    def elements(self) -> Iterator[RawLine]:
        """The elements of the array whose ``[`` is at ``pos``, to its ``]``."""
        self.pos += 1
        first = True
        while self._before_element(first):
            if not first and self.buf[self.pos] != ",":
                yield self._missing_comma()
                continue
            if not first:
                self.pos += 1
                self._skip_space()
            first = False
            yield self._element()

    def _before_element(self, first: bool) -> bool:
        """False at the array's closing bracket (stepped over); True before an element or a comma."""
        self._skip_space()
        if self.pos >= len(self.buf):
            message = (
                "the file ends before the JSON array is closed with ']' (file truncated?): the elements before "
                f"this line were read, the records the file had after them, if any, are missing; {_AGAIN}"
            )
            raise _Unreadable(self.line, Unread(message, 0))
        if self.buf[self.pos] == "]":
            self.pos += 1
            return False
        return True

    def _element(self) -> RawLine:
        """The element at ``pos``, or what is wrong with it; reads on while it is incomplete (up to the size limit)."""
        start_line = self.line
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                item = self._malformed(start_line, f"not JSON: {exc.msg}", exc.pos)
            except RecursionError:
                item = self._malformed(start_line, "not JSON: nested too deeply", self.pos)
            except ValueError as exc:  # an integer over Python's 4,300 digits
                item = self._malformed(start_line, f"cannot be read: {str(exc).split(';')[0]}", self.pos)
            else:
                if end < len(self.buf) or self.eof:
                    return self._decoded(start_line, obj, end)
                item = None
                self._more()  # a scalar ending exactly at the buffer's end may go on
            if item is not None:
                return item

    def _decoded(self, start_line: int, obj: Any, end: int) -> RawLine:
        text = self.buf[self.pos : end]
        self.line += text.count("\n")
        self.pos = end
        if len(text) > self.limit:
            message = f"record is {len(text)} characters, over the limit of {self.limit} ([input] max_record_bytes)"
            return start_line, message, preview(text)
        return start_line, as_object(obj), "" if isinstance(obj, dict) else preview(text)

    def _malformed(self, start_line: int, message: str, error_pos: int) -> RawLine | None:
        """The element at ``pos`` that did not decode, skipped to its end, or None when more must be read first
        (incomplete and invalid look alike until the element is whole)."""
        end = _Extent().find(self.buf, self.pos)
        if end is None:
            if self.eof:
                self._unread_tail(start_line, self.buf[self.pos : self.pos + RAW_PREVIEW], self._offset())
            if len(self.buf) - self.pos > self.limit:
                return self._skip_oversized(start_line)
            self._more()
            return None
        text = self.buf[self.pos : end]
        where = start_line + self.buf.count("\n", self.pos, min(error_pos, end))
        self.line += text.count("\n")
        self.pos = end
        if not text.strip():
            return start_line, "an empty array element (nothing between a ',' and the next ',' or ']')", ""
        if len(text) > self.limit:
            over = f"record is {len(text)} characters, over the limit of {self.limit} ([input] max_record_bytes)"
            return start_line, f"{over}, and {message} (line {where})", preview(text)
        return start_line, f"{message} (line {where}); the element was skipped", preview(text)

    def _missing_comma(self) -> RawLine:
        """What stands where a ``,`` or ``]`` should be, skipped to the next of them."""
        found = self.buf[self.pos]
        item = self._malformed(self.line, f"expected ',' or ']' between array elements, found {found!r}", self.pos)
        while item is None:
            item = self._malformed(self.line, f"expected ',' or ']' between array elements, found {found!r}", self.pos)
        return item

    def _skip_oversized(self, start_line: int) -> RawLine:
        """An element over the size limit whose end is not in the buffer: read through to its end, keeping its
        first characters."""
        head, offset, extent, size = self.buf[self.pos : self.pos + RAW_PREVIEW], self._offset(), _Extent(), 0
        while True:
            end = extent.find(self.buf, self.pos)
            stop = len(self.buf) if end is None else end
            size += stop - self.pos
            self.line += self.buf.count("\n", self.pos, stop)
            self.pos = stop
            if end is not None:
                message = f"record is {size} characters, over the limit of {self.limit} ([input] max_record_bytes)"
                return start_line, message, f"{head}... [{size} characters]"
            if not self._more():
                self._unread_tail(start_line, head, offset)

    def _unread_tail(self, start_line: int, head: str, offset: int) -> NoReturn:
        """The element from byte ``offset`` (line ``start_line``) does not end before the file does."""
        unread = self.read_bytes - offset
        message = (
            "an array element starts here whose end is not found before the end of the file (a string or bracket "
            f"left open: a file cut off, or a malformed element); the last {unread} bytes of the file were not read "
            f"as records; {_AGAIN}"
        )
        raise _Unreadable(start_line, Unread(message, unread), preview(head))

    def unread(self, reason: str) -> Unread:
        """A problem at ``pos`` after which nothing more is read: how many bytes that leaves unread."""
        offset = self._offset()
        while not self.eof:  # the rest of the file, for its size
            chunk = self.fh.read(_CHUNK)
            self.read_bytes += len(chunk)
            self.eof = not chunk
        unread = self.read_bytes - offset
        return Unread(f"{reason}; the last {unread} bytes of the file were not read as records; {_AGAIN}", unread)

    def _trailing(self) -> RawLine:
        """Text after an array's ``]`` that is not another array: up to the next line that starts with ``[``."""
        start_line, head, size = self.line, "", 0
        while True:
            found = self.buf.find("\n[", self.pos)
            stop = len(self.buf) if found < 0 else found + 1
            head += self.buf[self.pos : min(stop, self.pos + RAW_PREVIEW - len(head))]
            size += stop - self.pos
            self.line += self.buf.count("\n", self.pos, stop)
            self.pos = stop
            if found >= 0 or not self._more():
                break
        message = (
            f"{size} characters of text after the JSON array's closing ']' (from line {start_line}) are not an "
            "array: nothing in them was read as a record"
        )
        return start_line, message, preview(head) if size <= RAW_PREVIEW else f"{head}... [{size} characters]"

    def _offset(self) -> int:
        """The byte offset in the file of ``pos``."""
        return self.decoded_bytes - self.pending - len(self.buf[self.pos :].encode("utf-8"))

    def _more(self) -> bool:
        if self.eof:
            return False
        if self.bad_bytes is not None:  # the text before them is read: nothing more can be
            raise self.bad_bytes
        chunk = self.fh.read(_CHUNK)
        self.read_bytes += len(chunk)
        if self.on_bytes is not None:
            self.on_bytes(len(chunk))
        try:
            text = self.utf8.decode(chunk, final=not chunk)
            self.decoded_bytes, self.pending = self.read_bytes, len(self.utf8.getstate()[0])
        except UnicodeDecodeError as exc:  # the characters before the bad bytes are read first
            text = exc.object[: exc.start].decode("utf-8")
            self.decoded_bytes, self.pending = self.decoded_bytes - self.pending + exc.start, 0
            self.bad_bytes = exc
        self.buf = self.buf[self.pos :] + text
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
