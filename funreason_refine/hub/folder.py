"""A dataset folder the Hub and ``datasets.load_dataset(DIR)`` read: two configurations and a card.

- ``default``: the kept records in a training format (export/), as Parquet, a person's review applied;
- ``discarded``: the records the run discarded (without those a person restored; with those a person
  marked wrongly kept, at stage ``review``), each with its stage, reason code and message;
- ``README.md``: the dataset card (card.py), whose YAML names both configurations and their files.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funreason_refine.errors import RefineError
from funreason_refine.export import ExportResult, export_reviewed, restorable
from funreason_refine.export.formats import last_score
from funreason_refine.hub.card import render_card, run_facts, signed
from funreason_refine.jsonl import escaped_surrogates, read_jsonl
from funreason_refine.overrides import read_decisions
from funreason_refine.record import Outcome
from funreason_refine.run_folder import FILES
from funreason_refine.run_state import whole_lines

KEPT = "data/train-00000-of-00001.parquet"
DISCARDED = "discarded/train-00000-of-00001.parquet"
CARD = "README.md"
REVIEW_STAGE = "review"  # the stage of a kept record a person marked wrongly kept


@dataclass
class HubFolder:
    """What was written: the folder, its files (relative, sorted), and the rows of each configuration."""

    path: Path
    files: list[str]
    kept: int
    discarded: int
    export: ExportResult
    left_out: list[str] = field(default_factory=list)  # the run's records in neither configuration (left_out)

    @property
    def warnings(self) -> list[str]:
        """What the folder holds less than the run: the export's warnings, and the records in neither config."""
        return [*self.export.warnings, *self.left_out]


def write_hub_folder(run_dir: Path, fmt: str, out_dir: Path, repo_id: str | None = None) -> HubFolder:
    """Write the dataset folder of ``run_dir`` (kept records in format ``fmt``) into ``out_dir``."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    facts = run_facts(run_dir)  # first: a folder that is not a complete run is refused before anything is written
    if out_dir.resolve() == run_dir.resolve():
        raise RefineError(f"--hub-dir {out_dir} is the run folder itself: give a folder of its own")
    result = export_reviewed(run_dir, fmt, out_dir / KEPT, dataset_info=False)
    if not result.written:
        raise RefineError(f"{run_dir} kept no record to publish: a dataset needs at least one")
    discarded = write_discarded(run_dir, fmt, out_dir / DISCARDED)
    configs = [
        {"name": "default", "path": KEPT, "rows": result.written, "description": f"the kept records, as `{fmt}`"},
        {
            "name": "discarded",
            "path": DISCARDED,
            "rows": discarded,
            "description": "the discarded records, each with its `stage`, `reason` code and `message`",
        },
    ][: 2 if discarded else 1]  # a configuration of no rows is one `datasets` cannot load ("corresponds to no data")
    card = render_card(facts, fmt, configs, review=result.describe(), repo_id=repo_id)
    (out_dir / CARD).write_text(signed(card), encoding="utf-8")
    files = [CARD, DISCARDED, KEPT] if discarded else [CARD, KEPT]
    return HubFolder(out_dir, files, result.written, discarded, result, left_out(run_dir))


def left_out(run_dir: Path) -> list[str]:
    """The run's records that are in neither configuration: those with no verdict yet, and unreadable input."""
    notes = []
    errors, quarantined = (whole_lines(run_dir / FILES[o]) for o in (Outcome.ERRORS, Outcome.QUARANTINED))
    if errors:
        notes.append(
            f"{errors} record(s) in {run_dir / FILES[Outcome.ERRORS]} are in neither configuration: a stage or its "
            f"judge failed on them, so they have no verdict yet. Fix the cause, run `refine retry {run_dir}`, then "
            "write the folder again"
        )
    if quarantined:
        notes.append(
            f"{quarantined} input record(s) that could not be read ({run_dir / FILES[Outcome.QUARANTINED]}) are in "
            "neither configuration"
        )
    return notes


# Every column of the discarded configuration, typed, so that the Parquet schema is the same whatever the run.
DISCARDED_SCHEMA = {
    "index": "Int64",
    "id": "String",
    "stage": "String",
    "reason": "String",
    "message": "String",
    "turn": "Int64",
    "query": "String",
    "system": "String",
    "tools": "String",  # JSON
    "answer": "String",  # JSON: the calls, or the text reply
    "cot": "String",
    "messages": "String",  # JSON: a conversation's messages
    "source": "String",  # file:line of the input
    "trail": "String",  # JSON: each stage's verdict
    "meta": "String",  # JSON: the record's meta, as the kept records carry it (export/formats.py)
    "score": "Float64",  # a scorer's score, when one scored it (the last one's)
}


def write_discarded(run_dir: Path, fmt: str, out: Path) -> int:
    """The discarded configuration as Parquet; returns its rows (none: no file)."""
    import polars as pl

    rows = list(discarded_rows(run_dir, fmt))
    if not rows:  # no configuration: nor the file an earlier export into the folder wrote
        out.unlink(missing_ok=True)
        return 0
    schema = {name: getattr(pl, kind) for name, kind in DISCARDED_SCHEMA.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, schema=schema).write_parquet(out)
    return len(rows)


def discarded_rows(run_dir: Path, fmt: str) -> Iterator[dict[str, Any]]:
    """The discarded records in input order, a person's review applied."""
    decisions = read_decisions(run_dir)

    def discarded() -> Iterator[dict[str, Any]]:
        for line in _lines(run_dir / "discarded.jsonl"):
            restored = decisions.wrong(line, Outcome.DISCARDED) and restorable(line, fmt) is None
            if not restored:  # a record a person restored is in the default configuration
                yield _row(line, line.get("stage"), line.get("reason"), line.get("message"))

    def wrongly_kept() -> Iterator[dict[str, Any]]:
        for line in _lines(run_dir / "kept.jsonl") if decisions.latest else ():
            decision = decisions.wrong(line, Outcome.KEPT)
            if decision is not None:
                note = decision.note or "a person marked it wrongly kept (refine review)"
                yield _row(line, REVIEW_STAGE, "wrongly_kept", note)

    yield from heapq.merge(discarded(), wrongly_kept(), key=lambda row: row["index"])


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    return read_jsonl(path) if path.exists() else iter(())


def _text(value: Any) -> str | None:
    """A JSON value as JSON text ({} and [] as nothing)."""
    return None if value in (None, [], {}) else _clean(json.dumps(value, ensure_ascii=False))


def _clean(value: Any) -> str | None:
    """Text Parquet can hold: input may carry lone surrogates (legal JSON escapes, not UTF-8), written as escapes."""
    return None if value is None else escaped_surrogates(str(value))


def _row(line: dict[str, Any], stage: Any, reason: Any, message: Any) -> dict[str, Any]:
    source = line.get("source") or {}
    return {
        "index": line["index"],
        "id": _clean(line.get("id")),
        "stage": _clean(stage),
        "reason": _clean(reason),
        "message": _clean(message),
        "turn": line.get("turn"),
        "query": _clean(line.get("query")),
        "system": _clean(line.get("system")),
        "tools": _text(line.get("tools")),
        "answer": _text(line.get("answer")),
        "cot": _clean(line.get("cot")),
        "messages": _text(line.get("messages")),
        "source": _clean(f"{source.get('file')}:{source.get('line')}") if source else None,
        "trail": _text(line.get("trail")),
        "meta": _text(line.get("meta")),
        "score": last_score(line),
    }
