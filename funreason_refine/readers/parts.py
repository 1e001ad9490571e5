"""Parts of an input file for shards: a deterministic split by input position into contiguous ranges.

JSONL is cut at line ends near equal byte offsets, and a shard reads only its bytes (the index and
line number of its first record come from counting the lines before it, without parsing them).
Parquet is cut into equal row ranges, read through polars, which reads only the row groups that
hold them. A JSON array is cut into equal element ranges, and read through up to the part's end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from funreason_refine.hub.paths import HubPath
from funreason_refine.readers.raw import READ_BUFFER, detect_container, is_record_line, iter_raw


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


def split_input(path: Path | HubPath, number: int, count: int, max_record_bytes: int) -> Part:
    """Part ``number`` (0-based) of ``count`` of the input file at ``path``."""
    if not 0 <= number < count:
        raise ValueError(f"shard {number} of {count} does not exist: shards are numbered 0 to {count - 1}")
    if isinstance(path, HubPath):  # its files, split as one input (hub/reader.py)
        from funreason_refine.hub.reader import split_hub

        return split_hub(path, number, count, max_record_bytes)
    container = detect_container(path)
    size = path.stat().st_size
    if container == "jsonl":
        return _jsonl_part(path, number, count, size, max_record_bytes)
    if container == "parquet":
        import polars as pl

        total = int(pl.scan_parquet(path).select(pl.len()).collect().item())  # from the metadata alone
    else:
        total = sum(1 for _ in iter_raw(path, max_record_bytes))
    first, after = number * total // count, (number + 1) * total // count
    return Part(number, count, first, after - first, size)


def _jsonl_part(path: Path, number: int, count: int, size: int, max_record_bytes: int) -> Part:
    with path.open("rb", buffering=READ_BUFFER) as fh:
        return jsonl_part(fh, number, count, size, max_record_bytes)


def jsonl_part(fh: Any, number: int, count: int, size: int, max_record_bytes: int) -> Part:
    """As _jsonl_part, from an open binary file of ``size`` bytes that seeks."""
    start = _line_start(fh, number * size // count, size)
    end = _line_start(fh, (number + 1) * size // count, size)
    fh.seek(0)
    lines_before, records_before = _count(fh, start, max_record_bytes)
    _, records = _count(fh, end - start, max_record_bytes)
    return Part(number, count, records_before, records, size, lines_before + 1, start, end)


def _line_start(fh: Any, offset: int, size: int) -> int:
    """The start of the first line that starts at or after ``offset``."""
    if offset <= 0:
        return 0
    if offset >= size:
        return size
    fh.seek(offset - 1)
    fh.readline()  # the rest of the line that holds byte offset - 1 (just its newline if a line starts at offset)
    return int(fh.tell())


def _count(fh: Any, size: int, max_record_bytes: int) -> tuple[int, int]:
    """Lines and input records in the next ``size`` bytes, read without parsing them."""
    lines = records = 0
    while size > 0:
        line = fh.readline()
        if not line:
            break
        size -= len(line)
        lines += 1
        records += is_record_line(line, max_record_bytes)
    return lines, records
