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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RawLine = tuple[int, "dict[str, Any] | str | bytes", str]
"""(line or row, parsed object or error message or unparsed JSONL bytes, raw text for the quarantine file)"""

RAW_PREVIEW = 2000


def preview(text: str) -> str:
    return text if len(text) <= RAW_PREVIEW else text[:RAW_PREVIEW] + f"... [{len(text)} characters]"


def detect_container(path: Path) -> str:
    """``jsonl``, ``json`` (an array) or ``parquet``, from the suffix, else from the first byte."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"PAR1"):
        return "parquet"
    return "json" if head.startswith(b"[") else "jsonl"


def iter_raw(path: Path, max_record_bytes: int, on_bytes=None, parse: bool = True) -> Iterator[RawLine]:
    container = detect_container(path)
    if container == "parquet":
        yield from _iter_parquet(path)
    elif container == "json":
        yield from _iter_json_array(path, max_record_bytes, on_bytes)
    else:
        yield from _iter_jsonl(path, max_record_bytes, on_bytes, parse)


def _as_object(value: Any) -> dict[str, Any] | str:
    if isinstance(value, dict):
        return value
    return f"expected a JSON object, got {type(value).__name__}"


# Lines of a few kilobytes: iterating them through the default 8 KiB buffer takes 4x as long.
READ_BUFFER = 1 << 16


def _iter_jsonl(path: Path, max_record_bytes: int, on_bytes, parse: bool) -> Iterator[RawLine]:
    with path.open("rb", buffering=READ_BUFFER) as fh:
        for lineno, line in enumerate(fh, 1):
            if on_bytes is not None:
                on_bytes(len(line))
            if len(line) > max_record_bytes:
                yield (
                    lineno,
                    f"record is {len(line)} bytes, over the limit of {max_record_bytes} ([input] max_record_bytes)",
                    preview(line[:RAW_PREVIEW].decode("utf-8", "replace")),
                )
            elif not line.isspace() and line:
                yield parse_line(lineno, line) if parse else (lineno, line, "")


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


def _iter_json_array(path: Path, max_record_bytes: int, on_bytes) -> Iterator[RawLine]:
    """Decode ``[obj, obj, ...]`` one element at a time with ``raw_decode``.

    The stdlib has no streaming array decoder that reports line numbers; this keeps a text
    buffer, decodes one element at a time and counts newlines. A syntax error in an array makes
    the rest of the file unreadable: it is reported once, naming the line, and reading stops.
    """
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    with path.open("rb") as fh:
        buf = ""
        pos = 0
        line = 1
        eof = False

        def more() -> bool:
            nonlocal buf, pos, eof
            if eof:
                return False
            chunk = fh.read(_CHUNK)
            if on_bytes is not None:
                on_bytes(len(chunk))
            buf = buf[pos:] + utf8.decode(chunk, final=not chunk)
            pos = 0
            eof = not chunk
            return True

        def skip_ws() -> None:
            nonlocal pos, line
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n\ufeff":
                    if buf[pos] == "\n":
                        line += 1
                    pos += 1
                if pos < len(buf) or not more():
                    return

        try:
            skip_ws()
            if pos >= len(buf) or buf[pos] != "[":
                yield line, "a JSON array must start with '['", preview(buf[pos : pos + 200])
                return
            pos += 1
            expect_value = True
            while True:
                skip_ws()
                if pos >= len(buf):
                    yield line, "the JSON array is not closed with ']' (file truncated?)", ""
                    return
                if buf[pos] == "]":
                    return
                if not expect_value:
                    if buf[pos] != ",":
                        yield (
                            line,
                            "expected ',' or ']' between array elements, "
                            f"found {buf[pos]!r}; the rest of the file was not read",
                            preview(buf[pos : pos + 200]),
                        )
                        return
                    pos += 1
                    skip_ws()
                start_line = line
                while True:
                    try:
                        obj, end = decoder.raw_decode(buf, pos)
                        if end < len(buf) or eof:
                            break
                        more()  # a scalar ending exactly at the buffer's end may go on
                    except json.JSONDecodeError as exc:
                        # Incomplete and invalid look alike until the element is whole: read on.
                        if not eof and len(buf) - pos <= max_record_bytes:
                            more()
                            continue
                        if not eof:
                            raise _Oversize() from None
                        yield (
                            start_line + buf.count("\n", pos, exc.pos),
                            f"not JSON: {exc.msg}; the rest of the file was not read",
                            preview(buf[pos : exc.pos + 80]),
                        )
                        return
                    except RecursionError:
                        yield start_line, "not JSON: nested too deeply; the rest of the file was not read", ""
                        return
                text = buf[pos:end]
                line += text.count("\n")
                pos = end
                expect_value = False
                if len(text) > max_record_bytes:
                    yield (
                        start_line,
                        f"record is {len(text)} characters, over the limit of {max_record_bytes} "
                        "([input] max_record_bytes)",
                        preview(text),
                    )
                    continue
                yield start_line, _as_object(obj), "" if isinstance(obj, dict) else preview(text)
        except UnicodeDecodeError as exc:
            yield line, f"not valid UTF-8 ({exc.reason}); the rest of the file was not read", ""
        except _Oversize:
            yield (
                line,
                f"an array element is over the limit of {max_record_bytes} characters "
                "([input] max_record_bytes); the rest of the file was not read",
                "",
            )


class _Oversize(Exception):
    pass


def _iter_parquet(path: Path) -> Iterator[RawLine]:
    import polars as pl

    row = 0
    for batch in pl.scan_parquet(path).collect_batches(chunk_size=2048):
        for obj in batch.iter_rows(named=True):
            row += 1
            yield row, obj, ""
