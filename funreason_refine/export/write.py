"""Writing an export: JSONL or Parquet, through a temporary file renamed into place, so that a failure
(an unreadable line, a full disk, Ctrl-C) leaves no partial file and the previous one as it was."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from funreason_refine.errors import RefineError
from funreason_refine.jsonl import write_jsonl

T = TypeVar("T")


def replace_atomically(out: Path, write: Callable[[Path], T]) -> T:
    """``write`` a temporary file beside ``out``, then rename it to ``out``; on any failure remove it."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        value = write(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RefineError(f"cannot write {out}: {exc.strerror or exc}; nothing was written") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return value


def replace_text(out: Path, text: str) -> None:
    """``text`` as ``out``'s whole content, atomically; a lone surrogate in it (a record's text) is
    written as its escape, ``\\ud800``, which UTF-8 cannot hold as it is."""
    replace_atomically(out, lambda tmp: tmp.write_text(text, encoding="utf-8", errors="backslashreplace"))


def write_rows(out: Path, rows: Iterator[dict[str, Any]], fmt: str) -> int:
    """The rows to ``out``: Parquet when it ends in .parquet, else JSONL; returns how many."""
    if out.suffix != ".parquet":
        return replace_atomically(out, lambda tmp: write_jsonl(tmp, rows))
    collected = list(rows)
    if fmt == "openai":
        # In a table, rows with different message and tool schemas would gain each other's keys as
        # nulls: messages and tools are stored as JSON strings (the readers take both forms).
        collected = [
            {
                **r,
                "messages": [json.dumps(m, ensure_ascii=False) for m in r["messages"]],
                "tools": json.dumps(r["tools"], ensure_ascii=False),
            }
            for r in collected
        ]

    def parquet(tmp: Path) -> int:
        import polars as pl

        # Every row read for the schema: a column only some rows have (score) is kept, null elsewhere.
        pl.DataFrame(collected, infer_schema_length=None).write_parquet(tmp)
        return len(collected)

    return replace_atomically(out, parquet)


def parquet_problem(row: dict[str, Any], fmt: str) -> str | None:
    """Why ``row`` cannot be a row of a Parquet export, with what to do; None when it can. Parquet's
    texts are UTF-8, which has no lone surrogate; and a column holds one type, so a message's content
    given as parts (an image beside the text) cannot stand beside the texts of the other messages,
    except in the openai format, which stores each message as JSON text."""
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"it holds a lone surrogate ({exc.object[exc.start : exc.end]!r}), which Parquet's UTF-8 texts cannot "
            "hold: export JSONL (-o FILE.jsonl), which writes it as its escape"
        )
    if fmt == "openai":
        return None
    field, key = ("conversations", "value") if "conversations" in row else ("messages", "content")
    for at, message in enumerate(row.get(field) or []):
        if isinstance(message.get(key), list):
            return (
                f"its {field}[{at}] is content parts (an image or file beside its text), which this format's Parquet "
                "column of texts cannot hold: export JSONL (-o FILE.jsonl), or the openai format, which stores each "
                "message as JSON text"
            )
    return None


def write_dataset_info(out: Path, system: bool) -> Path:
    """LLaMA-Factory's dataset_info.json beside a sharegpt export, with an entry naming it: added to
    the file's other entries (LLaMA-Factory's data folder lists every dataset in one such file).
    ``system``: some row has a ``system`` field, which LLaMA-Factory reads only through a column named
    here (naming a column that no row has would fail there)."""
    path = out.parent / "dataset_info.json"
    info = dataset_info_entries(path)
    columns = {"messages": "conversations", "tools": "tools", **({"system": "system"} if system else {})}
    info[out.stem] = {
        "file_name": out.name,
        "formatting": "sharegpt",
        "columns": columns,
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "function_tag": "function_call",
        },
    }
    replace_text(path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return path


def dataset_info_entries(path: Path) -> dict[str, Any]:
    """The entries ``path`` holds already; RefineError when it is not a JSON object (nothing is written)."""
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RefineError(
            f"{path} cannot be read to add this export's entry ({exc}): fix or move it, then export again"
        ) from None
    if not isinstance(info, dict):
        raise RefineError(f"{path} is not a JSON object of datasets: fix or move it, then export again")
    return info
