"""JSON Lines, read one way everywhere: binary lines split on "\\n" only, through 64 KiB buffers.

Text-mode iteration would also split on "\\r", and ``str.splitlines`` on U+0085 and U+2028,
which JSON holds raw inside strings; lines of a few kilobytes read through the default 8 KiB
buffer take four times as long.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

READ_BUFFER = 1 << 16


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (Python's json writes it for a float that is no number): write null")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text[:40]} is too large for a float (it would be written as null)")
    return number


JSON = json.JSONDecoder(parse_constant=_not_a_number, parse_float=_finite)
"""json's decoder, refusing NaN and Infinity, which JSON has not, and numbers too large for a float such
as 1e400 (a record read with them would be written with null in their place)."""
loads = JSON.decode


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) < len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {twice[:60]!r} is given twice (JSON readers keep only the last)")
    return found


UNIQUE_KEYS = json.JSONDecoder(parse_constant=_not_a_number, parse_float=_finite, object_pairs_hook=_unique)
"""As JSON, refusing an object that gives a key twice: the readers' decoder for input, where a second
``"city"`` would replace the first without a word. About a quarter slower than JSON (2 to 5 microseconds
a record), which reads what the package wrote itself."""


KEYS_ONCE = json.JSONDecoder(strict=False, object_pairs_hook=_unique)
"""json's own decoder (NaN and control characters in strings read, as json.loads(strict=False) does), refusing
only a key given twice: for answers from a model, such as a judge's JSON verdict."""


def loads_unique(text: str) -> Any:
    """UNIQUE_KEYS.decode, a refused value's place said before why (``at answers[0].arguments: the key
    'city' is given twice ...``): json's hooks are not told where they are, so a text refused so is read
    again by a decoder that marks what the first refused, and the marks are looked for in json's order."""
    try:
        return UNIQUE_KEYS.decode(text)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        place = where_refused(text)
        if place is None:
            raise
        raise ValueError(f"at {place}: {exc}") from None


class _Refused:
    """A value UNIQUE_KEYS refuses: NaN, Infinity, 1e400, an integer too long to read."""


class _Twice(list[tuple[str, Any]]):
    """An object that gives a key twice, every pair kept (the first value of the key may hold a fault too)."""


def _mark_twice(pairs: list[tuple[str, Any]]) -> Any:
    found = dict(pairs)
    return _Twice(pairs) if len(found) < len(pairs) else found


def _mark_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return _Refused()


def _mark_float(text: str) -> Any:
    return _Refused() if math.isinf(float(text)) else 0.0


_MARKING = json.JSONDecoder(
    parse_constant=lambda _: _Refused(),
    parse_float=_mark_float,
    parse_int=_mark_int,
    object_pairs_hook=_mark_twice,
    strict=False,  # it reads only texts a decoder took as JSON: a strict one's, or a lax one's
)


def where_refused(text: str) -> str | None:
    """Where in ``text`` the first value UNIQUE_KEYS refuses is (``answers[0].arguments``, ``the top
    level``), or None where it cannot tell."""
    try:
        value = _MARKING.decode(text)
    except (ValueError, RecursionError):
        return None
    path = _first_refused(value, "")
    if path is None:
        return None
    return path.lstrip(".") or "the top level"


def _first_refused(value: Any, path: str) -> str | None:
    """The path of the first refused value json met: an object's values before the object itself, which
    json checks once it has read them all."""
    if isinstance(value, _Refused):
        return path
    if isinstance(value, _Twice):
        children: Iterable[tuple[str | int, Any]] = value
    else:
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        step = f"[{key}]" if isinstance(key, int) else f".{key}" if key.isidentifier() else f"[{json.dumps(key)}]"
        found = _first_refused(child, path + step)
        if found is not None:
            return found
    return path if isinstance(value, _Twice) else None


def why_not_json(exc: ValueError | RecursionError) -> str:
    """Why ``loads`` refused a text: json's own message, nesting deeper than Python reads, or a value
    JSON has not (NaN, Infinity, 1e400, an integer of over 4,300 digits)."""
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def why_not_json_at(exc: ValueError | RecursionError) -> str:
    """As why_not_json, saying where a syntax error is: at which column of the text, or at its end
    (json's "Expecting ',' delimiter" or "Unterminated string starting at" alone do not say)."""
    if not isinstance(exc, json.JSONDecodeError):
        return why_not_json(exc)
    where = "the end" if exc.pos >= len(exc.doc.rstrip()) else f"column {exc.pos + 1}"
    return f"{exc.msg.removesuffix(' at')} at {where}"


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line with its newline) of every line, blank ones included."""
    with Path(path).open("rb", buffering=READ_BUFFER) as fh:
        yield from enumerate(fh, 1)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON value of every non-blank line."""
    for _, line in read_lines(path):
        if not line.isspace():
            yield json.loads(line)


def escaped_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (a legal JSON escape, which UTF-8 cannot hold) written as its
    escape, ``\\ud800``, for what must be UTF-8: a request, a page, a terminal; ``text`` itself without one."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_line(value: Any, ascii: bool = False) -> str:
    """``value`` as one line of JSON (no newline): UTF-8 text, or with every non-ASCII character
    escaped when ``ascii`` or when it holds a lone surrogate, which UTF-8 cannot hold but JSON's
    ``\\ud800`` escape can."""
    text = json.dumps(value, ensure_ascii=ascii)
    if ascii or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True)
    return text


def write_jsonl(path: Path, rows: Iterable[Any], ascii: bool = False) -> int:
    """Write one JSON value per line, UTF-8 (``ascii``: every non-ASCII character escaped; a line
    that holds a lone surrogate is always written so, see json_line); returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json_line(row, ascii) + "\n")
            count += 1
    return count
