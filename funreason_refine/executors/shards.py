"""One shard of a run: its part of the input refined into its own run folder, through the engine's lifecycle.

A shard folder (RUN_DIR/shards/0003-of-0008/) is a run folder like any other (lock, outcome
files as its journal, run.json, judge answer cache), plus shard.json: its part of the input and
whether it is complete. Running a shard again resumes it; `refine merge` reads complete shards.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funreason_refine.config import Pipeline
from funreason_refine.engine import Progress, RunResult, run_pipeline
from funreason_refine.errors import RefineError, RunFolderError
from funreason_refine.executors.layout import MARKER, Shard, is_sharded, split_of
from funreason_refine.hub.paths import HubPath
from funreason_refine.readers.parts import Part, split_input
from funreason_refine.run_folder import FILES
from funreason_refine.summary import Summary

if TYPE_CHECKING:
    from funreason_refine.executors.progress import ShardState


def run_shard(
    pipeline: Pipeline, shard: Shard, progress: Progress | None = None, part: Part | None = None, **options: Any
) -> RunResult:
    """Refine (or resume) ``shard`` of ``pipeline`` into RUN_DIR/shards/ (``part``: its part of the input, when
    already known); ``options`` as run_pipeline's."""
    if options.get("limit") is not None:
        raise RefineError(
            "--limit takes the first N records of the whole input and cannot be split into shards; "
            "run the shards on a smaller input file instead"
        )
    run_dir = pipeline.output_dir
    refuse_one_process_folder(run_dir)
    refuse_other_split(run_dir, shard.count)
    part = part or shard_part(pipeline, shard)
    folder = shard.folder(run_dir)
    folder.mkdir(parents=True, exist_ok=True)

    # Marked incomplete before the run first changes the shard's folder (once it passed its checks; with
    # --fresh, before the folder is cleared): a run that stops half-way (killed, retrying errors, started
    # over) leaves the shard incomplete, never a stale mark of a complete one; a run refused (another
    # configuration, another input) leaves the mark as it was.
    def mark_incomplete() -> None:
        write_marker(folder, shard, part, pipeline.config_hash)

    result = run_pipeline(
        replace(pipeline, output_dir=folder), progress=progress, part=part, on_open=mark_incomplete, **options
    )
    if result.stopped is None:
        write_marker(folder, shard, part, pipeline.config_hash, result.summary)
    return result


def shard_part(pipeline: Pipeline, shard: Shard) -> Part:
    """The part of the pipeline's input that ``shard`` refines."""
    path = pipeline.input.path
    if not isinstance(path, HubPath) and not path.is_file():  # a Hub input's files were listed when it was pinned
        raise RefineError(f"input file not found: {path}. Check [input] path in the pipeline file.")
    return split_input(path, shard.number, shard.count, pipeline.input.max_record_bytes)


def write_marker(folder: Path, shard: Shard, part: Part, config_hash: str, summary: Summary | None = None) -> None:
    """shard.json: the shard's part of the input; complete (with when and its counts) once ``summary`` is given."""
    marker = {
        "shard": str(shard),
        "name": shard.name,
        "part": part.as_dict(),
        "config_hash": config_hash,
        "complete": summary is not None,
        "finished": summary.timings.finished if summary is not None else None,
        "outcomes": summary.outcomes if summary is not None else None,
    }
    tmp = folder / (MARKER + ".tmp")
    try:
        tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, folder / MARKER)
    except OSError as exc:
        raise RunFolderError(
            f"cannot write {folder / MARKER}: {exc.strerror or exc}. Free some space (or fix the folder) and "
            f"run the shard again (refine run PIPELINE --shard {shard}): it resumes"
        ) from None


def refuse_one_process_folder(run_dir: Path) -> None:
    """Shards go into a folder of their own, never beside the outcome files of a one-process run."""
    if is_sharded(run_dir):
        return
    found = [name for name in FILES.values() if (Path(run_dir) / name).exists()]
    if found:
        raise RunFolderError(
            f"{run_dir} holds a one-process run ({', '.join(found)}): shards need a run folder of their "
            "own; use another --out (or [output] dir)"
        )


def refuse_other_split(run_dir: Path, count: int) -> None:
    """A run is split one way: shards of another N would not tile the input with the others."""
    existing = split_of(run_dir)
    if existing is not None and existing != count:
        raise RunFolderError(
            f"{run_dir} holds the shards of a split into {existing}: go on with those (--shard I/{existing}, or "
            f"--executor ray --shards {existing}), or use another --out"
        )


def shards_to_retry(run_dir: Path, shard: Shard | None) -> list[ShardState]:
    """The shard to retry (``shard``), or every shard with records in its errors.jsonl."""
    from funreason_refine.executors.progress import Watcher

    states = Watcher(run_dir).states()
    if shard is not None and shard.count != len(states):
        raise RefineError(f"{run_dir} is split into {len(states)} shards: give --shard I/{len(states)}")
    if shard is not None:
        return [s for s in states if s.shard == shard]
    return [s for s in states if s.done["errors"]]
