"""refine merge: the complete shards of a run written as one run folder, byte for byte what one process writes.

Every shard must be complete, made with the same configuration from the same input, their parts
must tile the input, and every input record must be in exactly one of them, once: all checked
before the merged folder is finished. The top-level outcome files are written in input order.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from funreason_refine import __version__
from funreason_refine.audit.dataset import DatasetAudit
from funreason_refine.audit.settings import AuditSettings
from funreason_refine.engine import emitter, finish
from funreason_refine.errors import RunFolderError
from funreason_refine.executors.layout import Shard
from funreason_refine.executors.progress import ShardState, Watcher
from funreason_refine.jsonl import read_lines
from funreason_refine.record import Outcome
from funreason_refine.run_folder import FILES, RunFolder, Written
from funreason_refine.run_identity import INPUT_GIVEN, read_run_file, run_file_of, write_run_file
from funreason_refine.run_state import run_args
from funreason_refine.summary import ShardEntry, Summary, mixed_formats
from funreason_refine.tally import line_scores

_INDEX = re.compile(rb'^\{"index":(\d+)[,}]')  # how every line this tool writes starts


class ShardsIncomplete(RunFolderError):
    """Some shards are not complete (not started, partial, or stopped by max_cost)."""


@dataclass
class MergeResult:
    summary: Summary
    out_dir: Path

    @property
    def errors(self) -> int:
        return self.summary.errors


def merge_run(run_dir: Path) -> MergeResult:
    """Write RUN_DIR's top-level outcome files and summary.json from its complete shards."""
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    states = Watcher(run_dir).states()
    run_file = next((_run_file(s.folder) for s in states if _run_file(s.folder)), {})
    check_complete(run_dir, states, run_file)
    check_same_run(run_dir, states, run_file)
    audit = DatasetAudit(audit_settings(run_file))
    folder = RunFolder(run_dir)
    folder.lock("refine merge")
    try:
        folder.clear()
        update = folder.check_config(
            run_file["pipeline"],
            run_file["config"],
            run_file["config_hash"],
            accept_changes=True,
            input_given=run_file.get(INPUT_GIVEN),
        )
        folder.record_config(update)
        write_run_file(run_dir, {**read_run_file(run_dir), "input_files": run_file.get("input_files", [])})
        folder.open()
        # Shards do not audit: the dataset audits read the merged records in input order, as a
        # one-process run's emitter does, and drop the same duplicates.
        emit = emitter(folder, audit, tell=False)
        for written in merged_records(states, run_file):
            emit(written)
    finally:
        folder.close()
    summary = merged_summary(run_file, folder, states, time.perf_counter() - t0)
    finish(run_dir, summary, audit)
    return MergeResult(summary, run_dir)


def audit_settings(run_file: dict[str, Any]) -> AuditSettings:
    """The run's [audit] table as the shards' pipeline file gave it, eval sets relative to that file."""
    settings = AuditSettings.model_validate(run_file["config"].get("audit") or {})
    base = Path(run_file["pipeline"]).parent
    settings.eval_sets = [base / p for p in settings.eval_sets]
    missing = [str(p) for p in settings.eval_sets if not p.is_file()]
    if missing:
        raise RunFolderError(
            f"cannot merge: eval set(s) {', '.join(missing)} named in [audit] of {run_file['pipeline']} are not "
            "there; the dataset audits run at the merge, so run refine merge where the pipeline's files are"
        )
    return settings


def shard_command(run_file: dict[str, Any], shard: object, run_dir: Path, fresh: bool = False) -> str:
    """The command that runs ``shard`` (a Shard, or "I/N") of ``run_dir`` as the shards were started (the
    pipeline file and the --input their run.json names)."""
    pipeline = run_args(run_file) or "PIPELINE"
    return f"`refine run {pipeline} --shard {shard} --out {run_dir}{' --fresh' if fresh else ''}`"


def check_complete(run_dir: Path, states: list[ShardState], run_file: dict[str, Any]) -> None:
    """Refuse a merge while a shard is not complete, naming each and the command that completes it."""
    incomplete = [s for s in states if not s.complete]
    if not incomplete:
        return
    count = states[0].shard.count
    shown = "; ".join(f"{s.shard} ({_how_far(s)})" for s in incomplete[:8])
    commands = " ".join(shard_command(run_file, s.shard, run_dir) for s in incomplete[:3])
    more = " ..." if len(incomplete) > 3 else ""
    ray = shard_command(run_file, "I/N", run_dir).replace("--shard I/N", f"--executor ray --shards {count}")
    raise ShardsIncomplete(
        f"{len(incomplete)} of {count} shards of {run_dir} are not complete: {shown}"
        f"{' ...' if len(incomplete) > 8 else ''}. Run each (a partial one resumes): {commands}{more}; or all "
        f"on Ray: {ray}. Then merge again"
    )


def _how_far(state: ShardState) -> str:
    if state.marker is None:
        return "not started"
    summary = _summary(state.folder)
    stopped = f", stopped: {summary.stopped}" if summary is not None and summary.stopped else ""
    return f"{sum(state.done.values())} of {state.records} records done{stopped}"


def check_same_run(run_dir: Path, states: list[ShardState], run_file: dict[str, Any]) -> None:
    """The shards were made with one configuration, from one input file, and their parts tile it."""
    odd = [str(s.shard) for s in states if _run_file(s.folder).get("config_hash") != run_file["config_hash"]]
    if odd:
        # Only --fresh leads to one configuration: --accept-changes would keep the records refined before.
        raise RunFolderError(
            f"shard(s) {', '.join(odd)} of {run_dir} were made with another pipeline configuration than shard "
            f"{states[0].shard} (see each shard's run.json): refine them again under the pipeline the others "
            f"ran, {shard_command(run_file, 'I/N', run_dir, fresh=True)}, then merge"
        )
    inputs = {str(s.shard): _run_file(s.folder).get("input_files") for s in states}
    changed = [shard for shard, files in inputs.items() if files and files != inputs[str(states[0].shard)]]
    if changed:
        raise RunFolderError(
            f"shard(s) {', '.join(changed)} of {run_dir} read another version of the input than shard "
            f"{states[0].shard} (see input_files in each shard's run.json): the input changed while the shards "
            f"ran. Refine every shard again with --fresh, then merge"
        )
    moved = next((s for s in states if (s.marker or {}).get("shard", str(s.shard)) != str(s.shard)), None)
    if moved is not None:
        again = shard_command(run_file, moved.shard, run_dir, fresh=True)
        raise RunFolderError(
            f"the folder of shard {moved.shard} ({moved.folder}) holds the part of shard "
            f"{(moved.marker or {})['shard']} (see its shard.json): a shard folder copied or renamed? Put each "
            f"shard's folder back under its own name, or run it again: {again}"
        )
    parts = [(s.shard, (s.marker or {})["part"]) for s in states]
    expected = 0
    for shard, part in parts:
        if part["input_bytes"] != parts[0][1]["input_bytes"] or part["first_index"] != expected:
            raise RunFolderError(
                f"shard {shard} of {run_dir} was cut from another version of the input file (its part "
                f"starts at record {part['first_index']}, not {expected}): the input changed while the shards "
                "ran. Run every shard again with --fresh, then merge"
            )
        expected += part["records"]


def merged_records(states: list[ShardState], run_file: dict[str, Any]) -> Iterator[Written]:
    """Every finished record of the shards, in input order, each checked to be there exactly once.

    This is the stream a one-process run writes: what a function of the finished records in input
    order (the dataset audits) reads to give what it gives for one process.
    """
    expected = 0
    for state in states:
        for written in _shard_records(state):
            if written.index != expected:
                raise _not_once(state, written.index, expected, run_file)
            expected += 1
            yield written
        if expected != (state.first_index or 0) + (state.records or 0):
            raise _not_once(state, None, expected, run_file)


def _not_once(state: ShardState, found: int | None, expected: int, run_file: dict[str, Any]) -> RunFolderError:
    problem = (
        f"record {found} is in it twice (or belongs to another shard)"
        if found is not None and found < expected
        else f"record {expected} is missing"
    )
    return RunFolderError(
        f"shard {state.shard} ({state.folder}) is marked complete but {problem}: every input record must be "
        f"in exactly one shard, once. Run the shard again with --fresh "
        f"({shard_command(run_file, state.shard, state.folder.parent.parent, fresh=True)}), then merge again"
    )


def _shard_records(state: ShardState) -> Iterator[Written]:
    """A shard's lines sorted by input index (a retry appends redone records after the others)."""
    entries: list[tuple[int, Outcome, int, int]] = []
    for outcome, name in FILES.items():
        path = state.folder / name
        if not path.exists():
            continue
        offset = 0
        for lineno, raw in read_lines(path):
            if not raw.isspace():
                entries.append((_index_of(raw, path, lineno), outcome, offset, len(raw)))
            offset += len(raw)
    entries.sort()
    handles = {o: (state.folder / FILES[o]).open("rb") for o in {outcome for _, outcome, _, _ in entries}}
    try:
        for index, outcome, offset, size in entries:
            fh = handles[outcome]
            fh.seek(offset)
            yield _written(index, outcome, fh.read(size))
    finally:
        for fh in handles.values():
            fh.close()


def _index_of(raw: bytes, path: Path, lineno: int) -> int:
    match = _INDEX.match(raw)
    if match is not None:
        return int(match[1])
    try:
        return int(_loads(raw)["index"])
    except (ValueError, KeyError, TypeError):
        raise RunFolderError(
            f"{path}:{lineno} is not a line this tool wrote; the shard cannot be merged. Run the shard again "
            "with --fresh"
        ) from None


def _written(index: int, outcome: Outcome, raw: bytes) -> Written:
    """A line read back as the finished record it was written for, with what the tally counts of it."""
    line = _loads(raw)
    trail = tuple((s["stage"], s["verdict"], s.get("reason")) for s in line.get("trail") or ())
    text = raw[:-1] if raw.endswith(b"\n") else raw
    return Written(index, outcome, text, trail, line.get("stage"), line.get("reason"), scores=line_scores(line))


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # lone surrogates (legal JSON escapes) that orjson refuses
        return json.loads(raw)


def merged_summary(run_file: dict[str, Any], folder: RunFolder, states: list[ShardState], seconds: float) -> Summary:
    """summary.json of the merged folder: the shards' summaries added up (judge use, timings), its
    counts taken from the merged lines (which the dataset audits have read)."""
    summaries = [_summary(s.folder) for s in states]
    if any(s is None for s in summaries):
        missing = [str(st.shard) for st, s in zip(states, summaries, strict=True) if s is None]
        raise RunFolderError(f"shard(s) {', '.join(missing)} are marked complete but have no readable summary.json")
    parts = [s for s in summaries if s is not None]
    total = sum(parts[1:], parts[0])
    stages = run_file["config"].get("stages", [])
    outcomes, counts = folder.tally.counts(
        [s["name"] for s in stages],
        hard_pool=any(s.get("on_fail") == "hard_pool" for s in stages),
        thresholds={s["name"]: s["scorer"].get("threshold") for s in stages if isinstance(s.get("scorer"), dict)},
    )
    return total.model_copy(
        update={
            "version": __version__,
            "complete": True,
            "stopped": None,
            "input": total.input.model_copy(
                update={"records": len(folder.done), "limit": None, "formats": mixed_formats(total.input.formats or [])}
            ),
            "outcomes": outcomes,
            "stages": counts,
            "timings": total.timings.model_copy(update={"merge_seconds": round(seconds, 3)}),
            "shard": None,  # a split into one: no sum of two cleared it
            "shards": [_shard_entry(s.shard, s, summary) for s, summary in zip(states, parts, strict=True)],
            "configurations": _configurations(states, parts),
        }
    )


def _configurations(states: list[ShardState], parts: list[Summary]) -> list[dict[str, Any]] | None:
    """Shards that went on under a changed configuration (--accept-changes): which records ran which."""
    mixed = [
        {"shard": str(state.shard), **entry}
        for state, part in zip(states, parts, strict=True)
        for entry in part.configurations or []
    ]
    return mixed or None


def _shard_entry(shard: Shard, state: ShardState, summary: Summary) -> ShardEntry:
    assert state.marker is not None
    return ShardEntry(
        shard=str(shard),
        name=shard.name,
        first_index=state.marker["part"]["first_index"],
        records=state.marker["part"]["records"],
        finished=state.marker["finished"],
        seconds=summary.timings.seconds,
        outcomes=state.marker["outcomes"],
    )


def _summary(folder: Path) -> Summary | None:
    try:
        return Summary.read(folder)
    except RunFolderError:
        return None


def _run_file(folder: Path) -> dict[str, Any]:
    return run_file_of(folder)
