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
from funreason_refine.distributed.layout import Shard
from funreason_refine.distributed.progress import ShardState, Watcher
from funreason_refine.engine import _call_plugins
from funreason_refine.errors import RunFolderError
from funreason_refine.jsonl import read_lines
from funreason_refine.plugin_manager import get_plugin_manager
from funreason_refine.record import Outcome
from funreason_refine.run_folder import FILES, RUN_FILE, SUMMARY, RunFolder, Written

_INDEX = re.compile(rb'^\{"index":(\d+)[,}]')  # how every line this tool writes starts


class ShardsIncomplete(RunFolderError):
    """Some shards are not complete (not started, partial, or stopped by max_cost)."""


@dataclass
class MergeResult:
    summary: dict[str, Any]
    out_dir: Path

    @property
    def errors(self) -> int:
        return int(self.summary["outcomes"].get(Outcome.ERRORS, 0))


def merge_run(run_dir: Path) -> MergeResult:
    """Write RUN_DIR's top-level outcome files and summary.json from its complete shards."""
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    states = Watcher(run_dir).states()
    run_file = next((_run_file(s.folder) for s in states if _run_file(s.folder)), {})
    check_complete(run_dir, states, run_file.get("pipeline", "PIPELINE"))
    check_same_run(run_dir, states, run_file)
    audit = DatasetAudit(audit_settings(run_file))
    folder = RunFolder(run_dir)
    folder.lock()
    try:
        folder.clear()
        folder.check_config(run_file["pipeline"], run_file["config"], run_file["config_hash"], accept_changes=True)
        folder.open()
        for written in merged_records(states):
            # Shards do not audit: the dataset audits read the merged records in input order, as a
            # one-process run's emit does, and drop the same duplicates.
            folder.record(audit.check(written))
    finally:
        folder.close()
    summary = merged_summary(run_file, folder, states, time.perf_counter() - t0)
    audit.add_to(summary)
    folder.write_summary(summary)
    _call_plugins(get_plugin_manager().hook.run_finished, run_dir=run_dir, summary=summary)
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


def check_complete(run_dir: Path, states: list[ShardState], pipeline: str) -> None:
    """Refuse a merge while a shard is not complete, naming each and the command that completes it."""
    incomplete = [s for s in states if not s.complete]
    if not incomplete:
        return
    count = states[0].shard.count
    shown = "; ".join(f"{s.shard} ({_how_far(s)})" for s in incomplete[:8])
    commands = " ".join(f"`refine run {pipeline} --shard {s.shard} --out {run_dir}`" for s in incomplete[:3])
    more = " ..." if len(incomplete) > 3 else ""
    raise ShardsIncomplete(
        f"{len(incomplete)} of {count} shards of {run_dir} are not complete: {shown}"
        f"{' ...' if len(incomplete) > 8 else ''}. Run each (a partial one resumes): {commands}{more}; or all "
        f"on Ray: `refine run {pipeline} --executor ray --shards {count} --out {run_dir}`. Then merge again"
    )


def _how_far(state: ShardState) -> str:
    if state.marker is None:
        return "not started"
    summary = _json(state.folder / SUMMARY)
    stopped = f", stopped: {summary['stopped']}" if summary and summary.get("stopped") else ""
    return f"{sum(state.done.values())} of {state.records} records done{stopped}"


def check_same_run(run_dir: Path, states: list[ShardState], run_file: dict[str, Any]) -> None:
    """The shards were made with one configuration, from one input file, and their parts tile it."""
    odd = [str(s.shard) for s in states if _run_file(s.folder).get("config_hash") != run_file["config_hash"]]
    if odd:
        raise RunFolderError(
            f"shard(s) {', '.join(odd)} of {run_dir} were made with another pipeline configuration than shard "
            f"{states[0].shard} (see each shard's run.json): run them again with the same pipeline, `refine run "
            "PIPELINE --shard I/N --accept-changes` (their finished records stay) or `--fresh` (redone), then merge"
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


def merged_records(states: list[ShardState]) -> Iterator[Written]:
    """Every finished record of the shards, in input order, each checked to be there exactly once.

    This is the stream a one-process run writes: what a function of the finished records in input
    order (the dataset audits) reads to give what it gives for one process.
    """
    expected = 0
    for state in states:
        for written in _shard_records(state):
            if written.index != expected:
                raise _not_once(state, written.index, expected)
            expected += 1
            yield written
        if expected != (state.first_index or 0) + (state.records or 0):
            raise _not_once(state, None, expected)


def _not_once(state: ShardState, found: int | None, expected: int) -> RunFolderError:
    problem = (
        f"record {found} is in it twice (or belongs to another shard)"
        if found is not None and found < expected
        else f"record {expected} is missing"
    )
    return RunFolderError(
        f"shard {state.shard} ({state.folder}) is marked complete but {problem}: every input record must be "
        f"in exactly one shard, once. Run the shard again with --fresh (`refine run PIPELINE --shard {state.shard}"
        " --fresh`), then merge again"
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
    return Written(index, outcome, text, trail, line.get("stage"), line.get("reason"))


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # lone surrogates (legal JSON escapes) that orjson refuses
        return json.loads(raw)


def merged_summary(
    run_file: dict[str, Any], folder: RunFolder, states: list[ShardState], seconds: float
) -> dict[str, Any]:
    """summary.json of the merged folder: counted from the merged lines, judge usage and timings added up."""
    summaries = [_json(s.folder / SUMMARY) or {} for s in states]
    stages = run_file["config"].get("stages", [])
    timings = [s.get("timings", {}) for s in summaries]
    shard_seconds = sum(t.get("seconds", 0.0) for t in timings)
    records = len(folder.done)
    return {
        "version": __version__,
        "pipeline": summaries[0].get("pipeline", run_file["pipeline"]),
        "config_hash": run_file["config_hash"],
        "complete": True,
        "stopped": None,
        "input": {**summaries[0].get("input", {}), "records": records, "limit": None},
        **folder.tally.as_dict(
            [s["name"] for s in stages], hard_pool=any(s.get("on_fail") == "hard_pool" for s in stages)
        ),
        "judge": _judge([s.get("judge", {}) for s in summaries]),
        "timings": {
            "started": min((t["started"] for t in timings if "started" in t), default=None),
            "finished": max((t["finished"] for t in timings if "finished" in t), default=None),
            "seconds": round(shard_seconds, 3),  # the shards' last runs, added up
            "records_this_run": sum(t.get("records_this_run", 0) for t in timings),
            "resumed_records": sum(t.get("resumed_records", 0) for t in timings),
            "records_per_second": round(records / shard_seconds, 1) if shard_seconds > 0 else None,
            "workers": sum(t.get("workers", 1) for t in timings),
            "merge_seconds": round(seconds, 3),
        },
        "shards": [_shard_entry(s.shard, s, summary) for s, summary in zip(states, summaries, strict=True)],
    }


def _shard_entry(shard: Shard, state: ShardState, summary: dict[str, Any]) -> dict[str, Any]:
    assert state.marker is not None
    return {
        "shard": str(shard),
        "name": shard.name,
        "first_index": state.marker["part"]["first_index"],
        "records": state.marker["part"]["records"],
        "finished": state.marker["finished"],
        "seconds": summary.get("timings", {}).get("seconds"),
        "outcomes": state.marker["outcomes"],
    }


def _judge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' judge sections as one; each server's counts added up over the shards that asked it."""
    servers = [p.get("endpoints") or {} for p in parts]
    judge = add_up([{k: v for k, v in p.items() if k != "endpoints"} for p in parts])
    if any(servers):
        judge["endpoints"] = {
            model: _servers([row for shard in servers for row in shard.get(model, [])])
            for model in dict.fromkeys(m for shard in servers for m in shard)
        }
    return dict(judge)


_QUANTILES = ("latency_p50_s", "latency_p95_s")


def _servers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per server: its counts added up; its latency quantiles the highest of the shards' (the
    latencies themselves are not kept, so the merged quantiles are upper bounds)."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        merged.setdefault(row["api_base"], []).append(row)
    out = []
    for same in merged.values():
        row = add_up([{k: v for k, v in r.items() if k not in _QUANTILES and k != "in_rotation"} for r in same])
        for key in _QUANTILES:
            row[key] = max((r[key] for r in same if r.get(key) is not None), default=None)
        row["in_rotation"] = all(r.get("in_rotation", True) for r in same)
        out.append(row)
    return out


def add_up(parts: list[Any]) -> Any:
    """The shards' judge usage as one: numbers added, tables added key by key, lists joined without
    repeats, anything else (the model's name) the first one given."""
    given = [p for p in parts if p is not None]
    if not given:
        return None
    first = given[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for p in given if isinstance(p, dict) for k in p))
        return {k: add_up([p.get(k) for p in given if isinstance(p, dict)]) for k in keys}
    if isinstance(first, list):
        joined: list[Any] = []
        for x in (x for p in given if isinstance(p, list) for x in p):
            if x not in joined:
                joined.append(x)
        return joined
    if isinstance(first, int | float) and not isinstance(first, bool):
        total = sum(p for p in given if isinstance(p, int | float))
        return round(total, 9) if isinstance(total, float) else total
    return first


def _run_file(folder: Path) -> dict[str, Any]:
    return _json(folder / RUN_FILE) or {}


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
