"""Readers: turn an input file into a stream of records and quarantined items, in file order.

Each format has its module (xlam.py, bfcl.py, openai_chat.py, sharegpt.py), imported when the first
record in that format is read; ``format_of`` tells the formats apart by their keys alone.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from funreason_refine.errors import InputError
from funreason_refine.hub.paths import HubPath, is_hub_path
from funreason_refine.readers.answers import FieldError
from funreason_refine.readers.raw import Unread, iter_raw, parse_line, preview
from funreason_refine.record import Quarantined, Record, Source

if TYPE_CHECKING:
    from funreason_refine.readers.parts import Part

FORMATS = ("xlam", "bfcl", "openai", "sharegpt")
DEFAULT_MAX_RECORD_BYTES = 1 << 20
DEFAULT_MAX_MESSAGES = 1000
CHATS = {"openai": "messages", "sharegpt": "conversations"}
"""The key of a chat format's list of messages."""

RawItem = tuple[int, int, "dict[str, Any] | str | bytes", str]
"""(index, line or row, parsed object or error text or unparsed JSONL bytes, raw text for the quarantine file)"""
ToRecord = Callable[[dict[str, Any], Source, int], Record]
"""A format's reader: a JSON object, where it was and its index, to a record (FieldError when it cannot be one)."""


def format_of(obj: dict[str, Any]) -> str | None:
    """The format a record's keys say it is in, or None: xLAM has query and answers, BFCL question and
    function, OpenAI a list of messages, ShareGPT a list of conversations (or, failing those, a
    ``messages`` or ``conversations`` that is not a list)."""
    if "query" in obj and "answers" in obj:
        return "xlam"
    if "question" in obj and "function" in obj:
        return "bfcl"
    if isinstance(obj.get("messages"), list):
        return "openai"
    if isinstance(obj.get("conversations"), list):
        return "sharegpt"
    # A chat's key with a value that is not a list: its reader says what is wrong with it.
    return next((fmt for fmt, key in CHATS.items() if obj.get(key) is not None), None)


GLAIVE_FORM = (
    "Glaive's own form (a system text and a chat text of USER:, ASSISTANT: and FUNCTION RESPONSE: turns), which "
    "is not read: convert it to ShareGPT conversations (human, gpt and observation turns, calls as function_call turns "
    "or <functioncall> text) with the tools in a tools field, as hiyouga/glaive-function-calling-v2-sharegpt is"
)


def is_glaive_form(obj: dict[str, Any]) -> bool:
    """A record in Glaive's own form (glaive-function-calling-v2): its turns in one ``chat`` text, no list
    of messages."""
    chat = obj.get("chat")
    return format_of(obj) is None and isinstance(chat, str) and ("USER:" in chat or "ASSISTANT:" in chat)


DETECT_RECORDS = 5000
DETECT_BYTES = 4 << 20
"""Without ``[input] format``, how far the format is looked for: the first records, the first bytes."""


def detect_format(path: Path | HubPath, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> str:
    """Tell the formats apart by the keys of the first record that has a format's keys."""
    found = guess_format(path, max_record_bytes)
    if found is None:
        raise InputError(f"cannot tell the format of {path}: it holds no records; {INPUT_ADVICE}")
    return found


INPUT_ADVICE = f"set [input] format to one of {', '.join(FORMATS)}"
"""What to do about an input whose records' keys say no format."""


def guess_format(
    path: Path | HubPath, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, advice: str = INPUT_ADVICE
) -> str | None:
    """The format of the first record (of the first DETECT_RECORDS, within DETECT_BYTES) whose keys say one, or
    None when the file holds no records. Records before it are quarantined when read, as any record whose keys
    say no format. InputError when there are records and none of those says a format (saying ``advice``: what to
    do, for the file read: an input, an eval set)."""
    seen, first, far = 0, None, False  # the first record met, for the message
    try:
        for seen, (line, obj, _) in enumerate(iter_raw(path, max_record_bytes, _bounded(max_record_bytes)), 1):
            found = format_of(obj) if isinstance(obj, dict) else None
            if found is not None:
                return found
            first = first or (line, obj)
            if seen >= DETECT_RECORDS:
                break
    except _FarEnough:
        far = True
    if first is None and not far:
        return None
    raise InputError(f"cannot tell the format of {path}: {_unknown(seen, first, advice)}")


def _bounded(max_record_bytes: int) -> Callable[[int], None]:
    """Stops the detection's reading after DETECT_BYTES (and room for a record over the limit)."""
    read = 0

    def on_bytes(size: int) -> None:
        nonlocal read
        read += size
        if read > DETECT_BYTES + 2 * max_record_bytes:
            raise _FarEnough

    return on_bytes


class _FarEnough(Exception):
    pass


def _unknown(seen: int, first: tuple[int, Any] | None, advice: str) -> str:
    """Why no format could be told from the first ``seen`` records, the first of them ``first``, and ``advice``."""
    if first is None:
        return f"no record in its first {DETECT_BYTES} bytes; {advice}"
    line, obj = first
    if isinstance(obj, dict) and is_glaive_form(obj):
        return f"the record at line {line} is in {GLAIVE_FORM}"
    what = f"the record at line {line} has keys [{', '.join(sorted(map(str, obj))[:8])}]"
    if not isinstance(obj, dict):
        what = (
            f"the record at line {line} cannot be read as a JSON object ({obj}); an input is a JSON array of "
            "objects, JSON Lines (one object a line) or Parquet"
        )
    if seen == 1:
        return f"its only record has the keys of no format ({what}); {advice}"
    return f"none of its first {seen} records has the keys of a format ({what}); {advice}"


class InputConfig(BaseModel):
    """The ``[input]`` table of a pipeline file."""

    model_config = ConfigDict(extra="forbid")

    path: Path | HubPath = Field(
        description="Input file: JSON array, JSONL or Parquet; or files of a dataset on the Hugging Face Hub, "
        "hf://datasets/ORG/NAME[@REVISION]/PATH_OR_GLOB, pinned to a commit (see hub.md)."
    )
    format: Literal["xlam", "bfcl", "openai", "sharegpt"] | None = Field(
        None,
        description="xlam, bfcl, openai or sharegpt; when omitted, each record is read in the format its keys "
        "say (a BFCL file: from its first record that says a format, for the whole file).",
    )
    answers: Path | None = Field(
        None, description="BFCL ground truth; default possible_answer/<file name> beside path."
    )
    max_record_bytes: int = Field(DEFAULT_MAX_RECORD_BYTES, ge=1024, description="Larger records are quarantined.")
    max_messages: int = Field(
        DEFAULT_MAX_MESSAGES,
        ge=2,
        description="Conversations (openai, sharegpt) with more messages are quarantined: each of their turns "
        "is checked with the conversation before it.",
    )

    @field_validator("path", mode="before")
    @classmethod
    def _hub_path(cls, value: Any) -> Any:
        if isinstance(value, str) and is_hub_path(value):
            return HubPath.parse(value)
        if not isinstance(value, str | Path | HubPath):  # said here: pydantic would name each type of the union
            raise ValueError("a path (text) is wanted")
        return value


class InputStream:
    """The records of one input file. ``items`` skips indices already done (resume)."""

    @classmethod
    def open(cls, config: InputConfig, name: str | None = None) -> InputStream:
        """The stream an ``[input]`` table describes; ``name``: its records' ``source.file`` (the path read)."""
        stream = cls(config.path, config.format, config.answers, config.max_record_bytes, config.max_messages)
        stream.name = name or stream.name
        return stream

    def __init__(
        self,
        path: Path | HubPath,
        fmt: str | None,
        answers: Path | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_messages: int = DEFAULT_MAX_MESSAGES,
    ):
        if not isinstance(path, HubPath) and not path.is_file():
            raise InputError(f"input file not found: {path}. Check [input] path in the pipeline file.")
        self.path = path
        self.name = str(path)
        self.max_record_bytes = max_record_bytes
        self.max_messages = max_messages
        # Without a format in the pipeline, each record is read in the format its keys say (a file may
        # mix xLAM rows and chat conversations), a record whose keys say none in the first format found
        # (an input without records: xLAM); BFCL questions need their answer file: a whole file.
        self.format = fmt or guess_format(path, max_record_bytes) or FORMATS[0]
        self.per_record = fmt is None and self.format != "bfcl"
        self.total_bytes = path.stat().st_size
        self.count = 0  # input records seen so far (of the part read), skipped ones included
        self.unread: str | None = None  # what of the input could not be read, said when the reader met it
        self._answers: dict[str, Any] = {}
        if self.format == "bfcl":
            self._answers = _bfcl_answers(path, answers)
        self._readers: dict[str, ToRecord] = {}  # by format, as records in it are met

    @property
    def formats(self) -> list[str]:
        """The formats records were read in so far, first met first."""
        return list(self._readers)

    def met(self, formats: list[str]) -> None:
        """Formats that records were read in elsewhere (by a worker process), met here after those met before."""
        for fmt in formats:
            if fmt not in self._readers:
                self._reader(fmt)

    def _convert(self, obj: dict[str, Any], source: Source, index: int) -> Record:
        fmt = (format_of(obj) or self.format) if self.per_record else self.format
        to_record = self._readers.get(fmt) or self._reader(fmt)
        try:
            return to_record(obj, source, index)
        except FieldError:
            if is_glaive_form(obj):  # said only of a record that cannot be read: its format's fields are missing
                raise FieldError("chat", f"chat: this record is in {GLAIVE_FORM}") from None
            raise

    def _reader(self, fmt: str) -> ToRecord:
        """The reader of ``fmt``, its module imported at the first record in that format."""
        to_record: ToRecord
        if fmt == "bfcl":
            from funreason_refine.readers import bfcl

            to_record = functools.partial(bfcl.to_record, answers=self._answers)
        elif fmt == "openai":
            from funreason_refine.readers import openai_chat

            to_record = functools.partial(self._chat, CHATS[fmt], openai_chat.to_record)
        elif fmt == "sharegpt":
            from funreason_refine.readers import sharegpt

            to_record = functools.partial(self._chat, CHATS[fmt], sharegpt.to_record)
        else:
            from funreason_refine.readers import xlam

            to_record = xlam.to_record
        self._readers[fmt] = to_record
        return to_record

    def _chat(self, key: str, to_record: ToRecord, obj: dict[str, Any], source: Source, index: int) -> Record:
        """A conversation, when its messages are a list within [input] max_messages."""
        if obj.get(key) is None:
            raise FieldError(key, f"missing field {key!r} (a list of chat messages)")
        if not isinstance(obj[key], list):
            raise FieldError(key, f"{key}: must be a list of chat messages, got {type(obj[key]).__name__}")
        if len(obj[key]) > self.max_messages:
            raise FieldError(
                key, f"{key}: {len(obj[key])} messages, over the limit of {self.max_messages} ([input] max_messages)"
            )
        return to_record(obj, source, index)

    def raw_items(
        self,
        skip: Container[int] = (),
        limit: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
        parse: bool = True,
        part: Part | None = None,
    ) -> Iterator[RawItem]:
        """The input as JSON objects (or error texts), numbered; cheap, runs in the main process.

        ``parse=False`` leaves JSONL lines as bytes for ``convert`` to parse (in a worker process).
        ``part``: only that part of the input (a shard), numbered by position in the whole input.
        """
        first = part.first_index if part is not None else 0
        self.count = 0
        for seen, (line, obj, raw) in enumerate(iter_raw(self.path, self.max_record_bytes, on_bytes, parse, part)):
            if limit is not None and seen >= limit:
                return
            if isinstance(obj, Unread):  # not a record: the run stops here, incomplete, and a resume reads on from here
                self.unread = f"{self.name}:{line}: {obj}"
                return
            self.count = seen + 1
            index = first + seen
            if not skip or index not in skip:
                yield index, line, obj, raw

    def convert(self, item: RawItem) -> Record | Quarantined:
        """One raw item to a record, or to a quarantined item naming field and error."""
        index, line, obj, raw = item
        if isinstance(obj, bytes):
            _, obj, raw = parse_line(line, obj)
        source = Source(file=self.name, line=line)
        if not isinstance(obj, dict):  # the reader's error message
            return Quarantined(index=index, source=source, error=str(obj), raw=raw)
        try:
            return self._convert(obj, source, index)
        except FieldError as exc:
            return Quarantined(index=index, source=source, field=exc.field, error=str(exc), raw=_dump(obj))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            return Quarantined(index=index, source=source, field=field, error=f"{field}: {err['msg']}", raw=_dump(obj))
        except RecursionError:
            return self.quarantine(item, "nested too deeply to be read (Python's recursion limit)")
        except Exception as exc:  # the reader's own failure: the record is kept for a person, the run goes on
            error = f"the reader failed on this record ({type(exc).__name__}: {exc}); please report it with the record"
            return self.quarantine(item, error)

    def quarantine(self, item: RawItem, error: str) -> Quarantined:
        """A raw item kept as it was read, with ``error``: one the reader read but the run cannot go on with."""
        index, line, obj, raw = item
        if isinstance(obj, bytes):
            raw = preview(obj.decode("utf-8", "replace"))
        elif isinstance(obj, dict):
            raw = _dump(obj)
        return Quarantined(index=index, source=Source(file=self.name, line=line), error=error, raw=raw)

    def items(
        self, skip: Container[int] = (), limit: int | None = None, on_bytes: Callable[[int], None] | None = None
    ) -> Iterator[Record | Quarantined]:
        for item in self.raw_items(skip, limit, on_bytes):
            yield self.convert(item)


def _bfcl_answers(path: Path | HubPath, answers: Path | None) -> dict[str, Any]:
    from funreason_refine.readers import bfcl

    if answers is not None:
        return bfcl.load_answers(answers)
    if isinstance(path, HubPath):  # possible_answer/ beside it in the same dataset, at the same commit
        from funreason_refine.hub.reader import bfcl_answers

        return bfcl_answers(path)
    return bfcl.load_answers(bfcl.default_answers_path(path))


def _dump(obj: Any) -> str:
    try:
        return preview(json.dumps(obj, ensure_ascii=False, default=str))
    except (ValueError, RecursionError):
        return preview(repr(obj))
