"""Stream JSON objects out of JSONL, JSON-array and Parquet files, with their line numbers.

Each item (a RawLine) is ``(line, obj, raw)``: the 1-based line (JSONL, JSON) or row (Parquet),
``obj`` the parsed dict or a ``str`` error message when the text at that place cannot be read as
a JSON object (the caller quarantines it), and ``raw`` the text to quarantine. Nothing is loaded
whole: JSONL is read line by line, JSON arrays element by element (json_array.py, imported for
one), Parquet in batches.

With ``parse=False`` a JSONL line that is within the size limit and not blank comes as its
undecoded ``bytes``, for ``parse_line`` to finish elsewhere: the engine's worker processes
parse, so that the process that reads only splits lines.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson

from funreason_refine.errors import InputError
from funreason_refine.hub.paths import HubPath
from funreason_refine.jsonl import loads_unique, why_not_json_at

if TYPE_CHECKING:
    from funreason_refine.readers.parts import Part

RawLine = tuple[int, "dict[str, Any] | str | bytes", str]
"""(line or row, parsed object or error message or unparsed JSONL bytes, raw text for the quarantine file)"""


class LineFile(Protocol):
    """What the JSONL reader asks of a file: a local file, or the files of an hf:// input joined (hub/reader.py)."""

    def seek(self, offset: int, /) -> int: ...

    def readline(self) -> bytes: ...

    def __iter__(self) -> Iterator[bytes]: ...


RAW_PREVIEW = 2000
OnBytes = Callable[[int], None] | None
"""Told how many bytes of the file were read, for progress."""


AGAIN = (
    "complete the input file and run the same command again: it reads on from here (an input changed before "
    "this point is refused: then start over with --fresh or use --out NEW_DIR)"
)
"""What to do about input that could not be read on (an Unread)."""


class Unread(str):
    """An item's error message that also says the rest of the input could not be read: ``unread_bytes`` of it
    were not read as records (a JSON array whose element does not end before the file does). The run
    that meets it is not complete (InputStream.unread)."""

    unread_bytes: int

    def __new__(cls, message: str, unread_bytes: int) -> Unread:
        self = super().__new__(cls, message)
        self.unread_bytes = unread_bytes
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return Unread, (str(self), self.unread_bytes)


def preview(text: str) -> str:
    return text if len(text) <= RAW_PREVIEW else text[:RAW_PREVIEW] + f"... [{len(text)} characters]"


COMPRESSED = {
    b"\x1f\x8b": ("gzip", "gunzip -k"),
    b"BZh": ("bzip2", "bunzip2 -k"),
    b"\xfd7zXZ\x00": ("xz", "unxz -k"),
    b"\x28\xb5\x2f\xfd": ("zstd", "unzstd"),
    b"PK\x03\x04": ("zip", "unzip"),
}


def detect_container(path: Path) -> str:
    """``jsonl``, ``json`` (an array) or ``parquet``, from the suffix, else from the first byte.
    InputError for a compressed file: its bytes would be read as lines of garbage."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    compressed = compression(head)
    if compressed is not None:
        kind, command = compressed
        raise InputError(
            f"{path} is {kind}-compressed, which refine does not read: decompress it ({command} {path.name}) "
            "and give the decompressed file as the input"
        )
    return container_of_name(path.name) or container_of_head(head)


def compression(head: bytes) -> tuple[str, str] | None:
    """The compression a file's first bytes say (its name, and the command that decompresses it), or None."""
    return next((found for magic, found in COMPRESSED.items() if head.startswith(magic)), None)


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
        yield from _iter_parquet(path, max_record_bytes, part)
    elif container == "json":
        from funreason_refine.readers.json_array import iter_json_array

        items = iter_json_array(path, max_record_bytes, on_bytes)
        # An array cannot be entered in the middle: read through, keeping the part's elements.
        yield from items if part is None else islice(items, part.first_index, part.first_index + part.records)
    elif part is None:
        yield from _iter_jsonl(path, max_record_bytes, on_bytes, parse)
    else:
        yield from _iter_jsonl(path, max_record_bytes, on_bytes, parse, part.start, part.end, part.first_line)


def as_object(value: Any) -> dict[str, Any] | str:
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
            if not line.endswith(b"\n") and _cut_short(line):  # the file's last line, its JSON not ended
                message = (
                    f"line {lineno}, the file's last, ends before its JSON does, without a newline (a file cut off, "
                    f"or still being written); the last {len(line)} bytes of the file were not read as records; "
                    f"{AGAIN}"
                )
                yield lineno, Unread(message, len(line)), preview(line.decode("utf-8", "replace"))
                return
            yield parse_line(lineno, line) if parse else (lineno, line, "")


def _cut_short(line: bytes) -> bool:
    """Whether a line's text is JSON that ends before its value does (an object cut off), not other bad JSON."""
    try:
        text = line.decode("utf-8").removeprefix("\ufeff")
        loads_unique(text)
    except json.JSONDecodeError as exc:  # a string left open is said where it starts
        return exc.msg.startswith("Unterminated string") or exc.pos >= len(text.rstrip())
    except (ValueError, RecursionError):  # not UTF-8, NaN, a key given twice...: quarantined as such
        return False
    return False


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
    text = text.lstrip("\ufeff")  # a byte-order mark: the file's, or one joined to it by cat
    try:
        obj = loads_unique(text)
    except (ValueError, RecursionError) as exc:
        return lineno, _why_unreadable(exc), preview(text)
    return lineno, as_object(obj), "" if isinstance(obj, dict) else text


def _why_unreadable(exc: ValueError | RecursionError) -> str:
    """What json.loads found: a syntax error, nesting deeper than it reads, or an integer over Python's 4,300 digits."""
    if isinstance(exc, json.JSONDecodeError):  # the line's own column: json counts its newline as a line 2
        return f"not JSON: {why_not_json_at(exc).replace(' at the end', ' at the end of the line')}"
    if isinstance(exc, RecursionError):
        return "not JSON: nested too deeply"
    # "Exceeds the limit (4300 digits) for integer string conversion: value has N digits; use sys.set_int_..."
    return f"cannot be read: {str(exc).split(';')[0]}"


def _iter_parquet(path: Path, max_record_bytes: int, part: Part | None = None) -> Iterator[RawLine]:
    """The rows, each within ``max_record_bytes`` as JSON text (else quarantined as a long line is).

    A struct column gives every row every key of the column, null where the row's object had none
    (JSON objects with different keys, as `datasets` writes them): inside structs a null is read as a
    key the row did not have (docs/reading.md)."""
    import polars as pl

    scan = pl.scan_parquet(path)
    columns = column_kinds(scan.collect_schema())
    row = 0
    if part is not None:  # polars reads only the row groups that hold the part's rows
        scan, row = scan.slice(part.first_index, part.records), part.first_index
    for batch in scan.collect_batches(chunk_size=2048):
        for row, obj in enumerate(batch.iter_rows(named=True), row + 1):  # noqa: B020 (row goes on from batch to batch)
            yield parquet_row(row, obj, columns, max_record_bytes)


class ColumnKinds(NamedTuple):
    """The columns of a Parquet file's schema that a row is read through: those holding structs (their
    null keys left out) and those holding floats (NaN and Infinity refused), at any depth."""

    structs: list[str]
    floats: list[str]


def column_kinds(schema: Any) -> ColumnKinds:
    """The struct and float columns of a polars schema."""
    import polars as pl

    structs = []
    for name, kind in schema.items():
        while isinstance(kind, (pl.List, pl.Array)):
            kind = kind.inner
        if isinstance(kind, pl.Struct):
            structs.append(name)
    return ColumnKinds(structs, [name for name, kind in schema.items() if _holds_float(kind)])


def _holds_float(kind: Any) -> bool:
    import polars as pl

    if isinstance(kind, (pl.List, pl.Array)):
        return _holds_float(kind.inner)
    if isinstance(kind, pl.Struct):
        return any(_holds_float(field.dtype) for field in kind.fields)
    return bool(kind.is_float())


def parquet_row(row: int, obj: dict[str, Any], columns: ColumnKinds, max_record_bytes: int) -> RawLine:
    """A Parquet row as the reader gives it: its struct columns without null keys, or the error of a row
    that holds NaN or Infinity (JSON has neither: written, they would be null) or is over the size limit."""
    for name in columns.floats:
        if not _all_finite(obj[name]):
            message = f"column {name!r} holds NaN or Infinity, which JSON has not (written, it would be null)"
            return row, message, preview(json.dumps(obj, default=str, ensure_ascii=False)[:RAW_PREVIEW])
    for name in columns.structs:
        obj[name] = _without_nulls(obj[name])
    return _within(row, obj, max_record_bytes)


def _all_finite(value: Any) -> bool:
    """No NaN nor Infinity in ``value``, at any depth."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    return True


def _without_nulls(value: Any) -> Any:
    """A struct column's value with the keys whose value is null left out, in structs at every depth."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _within(row: int, obj: dict[str, Any], max_record_bytes: int) -> RawLine:
    """A Parquet row, or the error of one over the size limit, measured as the JSON text it stands for."""
    try:
        text = orjson.dumps(obj, default=str)
    except TypeError:  # an integer over 64 bits (an Int128 column): the standard library writes it
        text = json.dumps(obj, default=str, ensure_ascii=False).encode()
    if len(text) <= max_record_bytes:
        return row, obj, ""
    message = f"record is {len(text)} bytes as JSON, over the limit of {max_record_bytes} ([input] max_record_bytes)"
    return row, message, preview(text[:RAW_PREVIEW].decode("utf-8", "replace"))
