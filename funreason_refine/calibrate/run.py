"""`refine calibrate`: run every candidate on a golden set and score it against the labels."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from funreason_refine.calibrate import candidates as cands
from funreason_refine.calibrate import thresholds as fitted
from funreason_refine.calibrate.golden import GoldenSet, GoldenSetError, read_golden, write_input
from funreason_refine.calibrate.metrics import Ending, score
from funreason_refine.calibrate.ranking import MIN_SCORED, rank
from funreason_refine.calibrate.worth import configuration, worth
from funreason_refine.config import output_folder
from funreason_refine.errors import RefineError
from funreason_refine.jsonl import read_jsonl
from funreason_refine.record import Outcome
from funreason_refine.run_state import folder_state, readable_state
from funreason_refine.summary import JudgeUsage, Summary
from funreason_refine.tally import line_scores

JSON_NAME = "calibration.json"
HTML_NAME = "calibration.html"
KINDS = tuple(Outcome)  # where a golden record can end


def read_outcomes(run_dir: Path, count: int) -> list[Ending]:
    """Where each of the first ``count`` input records ended; "missing" when the run stopped before it."""
    found: dict[int, Ending] = {}
    for kind in KINDS:
        file = run_dir / f"{kind}.jsonl"
        if not file.exists():
            continue
        for r in read_jsonl(file):
            message = r.get("message") or r.get("error")
            found[r["index"]] = Ending(kind, r.get("stage"), r.get("reason"), r.get("answer"), message, line_scores(r))
    return [found.get(i, Ending("missing")) for i in range(count)]


def usage(j: JudgeUsage, records: int, notes: list[str] | None = None) -> dict[str, Any]:
    """Judge calls, tokens, cost and latency of the whole candidate run, at full price: answers taken
    from the cache count at what they cost when first asked (``paid_usd`` is what this run paid)."""
    calls = j.calls + j.cached
    tokens = j.prompt_tokens + j.completion_tokens + j.cached_prompt_tokens + j.cached_completion_tokens
    cost = j.cost_usd + j.cached_cost_usd
    seconds = j.seconds + j.cached_seconds

    def per_1000(value: float) -> float:
        return round(value * 1000 / records, 4) if records else 0.0

    return {
        "records": records,
        "calls": calls,
        "tokens": tokens,
        "cost_usd": round(cost, 6),
        "judge_seconds": round(seconds, 3),
        "seconds_per_call": round(seconds / calls, 3) if calls else None,
        "new_calls": j.calls,
        "paid_usd": round(j.cost_usd, 6),
        "per_1000": {
            "calls": per_1000(calls),
            "tokens": per_1000(tokens),
            "cost_usd": per_1000(cost),
            "judge_seconds": per_1000(seconds),
        },
        "notes": notes or [],
    }


def _golden_summary(golden: GoldenSet) -> dict[str, Any]:
    by_stage: dict[str, int] = {}
    for g in golden.records:
        if g.label.outcome == "discard":
            key = g.label.stage or "(no stage)"
            by_stage[key] = by_stage.get(key, 0) + 1
    keep = sum(g.label.outcome == "keep" for g in golden.records)
    return {
        "path": str(golden.path),
        "records": len(golden.records),
        "keep": keep,
        "discard": len(golden.records) - keep,
        "discard_by_stage": by_stage,
        "with_answer": sum(g.label.answer is not None for g in golden.records),
        "notes": list(golden.notes),
    }


def _base(c: cands.Candidate, out_dir: Path) -> dict[str, Any]:
    return {
        "name": c.name,
        "slug": c.slug,
        "judge": c.judge,
        "prompts": c.prompts,
        "run_dir": str(out_dir / c.slug),
        "notes": list(c.notes),
    }


def _load(candidates: list[cands.Candidate], out_dir: Path, golden: GoldenSet, max_bytes: int | None) -> list[Any]:
    """Write and load every candidate's pipeline first: a broken pipeline stops before anything is paid."""
    from funreason_refine.config import load_pipeline

    given = write_input(golden, out_dir)
    return [load_pipeline(cands.write(c, out_dir, given, max_bytes)) for c in candidates]


def _stage_order(pipelines: list[Any]) -> list[str]:
    names: list[str] = []
    for p in pipelines:
        names += [s.name for s in p.stages if s.name not in names]
    return names


def calibrate(
    golden_path: Path,
    pipeline_path: Path,
    out_dir: Path,
    judge_models: list[str] | None = None,
    prompt_dirs: list[Path] | None = None,
    on_candidate: Callable[[str, int, int, int], None] | None = None,
    on_record: Callable[[str], None] | None = None,
    run_dir: Path | None = None,
    min_scored: float = MIN_SCORED,
    target_precision: float | None = None,
) -> dict[str, Any]:
    """Run each candidate on the golden set, score it, rank those that scored at least ``min_scored`` of the
    records, and write calibration.json and calibration.html.

    ``on_candidate(name, number, candidates, records)`` is called as each candidate starts,
    ``on_record(outcome)`` as each of its records finishes. With a finished run folder (``run_dir``,
    else the pipeline's own when it holds one), the report says what that run's kept set is worth
    under the error of the candidate that is its judge (``worth``). A candidate with scorers runs without
    their thresholds and is scored at them afterwards; each scorer's threshold is fitted
    (calibrate/thresholds.py), to ``target_precision`` too when given.
    """
    from funreason_refine.calibrate.html import render_html
    from funreason_refine.engine import Progress, RunInterrupted, run_pipeline
    from funreason_refine.plugin_manager import stage_registry

    golden = read_golden(golden_path)
    out_dir = Path(out_dir)
    data = cands.read_pipeline(Path(pipeline_path))
    applied_to = _run_to_apply(run_dir, Path(pipeline_path), data)
    candidates = cands.build(data, judge_models or [], prompt_dirs or [], set(stage_registry()))
    max_bytes = data.get("input", {}).get("max_record_bytes")
    pipelines = _load(candidates, out_dir, golden, max_bytes)
    stages = _stage_order(pipelines)
    problems = golden.stage_problems(stages)
    if problems:
        raise GoldenSetError(golden.path, problems)
    results = []
    for number, (candidate, pipeline) in enumerate(zip(candidates, pipelines, strict=True), 1):
        if on_candidate is not None:
            on_candidate(candidate.name, number, len(candidates), len(golden.records))
        entry = _base(candidate, out_dir)
        try:
            # fresh: every record is refined again, its judge answers taken from the folder's cache.
            summary = run_pipeline(pipeline, workers=1, fresh=True, progress=Progress(on_outcome=on_record)).summary
        except RunInterrupted:
            raise
        except RefineError as exc:  # a judge that cannot be reached must not hide the others' results
            results.append({**entry, "error": str(exc)})
            continue
        scored = read_outcomes(out_dir / candidate.slug, len(golden.records))
        scorers = fitted.configured(candidate.data)
        thresholds = {stage: table.get("threshold") for stage, table in scorers.items()}
        outcomes = [fitted.at_thresholds(o, thresholds) for o in scored]
        pairs = list(zip(golden.records, outcomes, strict=True))
        run = sum(o.kind != "missing" for o in outcomes)
        if scorers:
            entry["thresholds"] = fitted.fit(golden.records, scored, scorers, target_precision)
        results.append(
            {
                **entry,
                "configuration": configuration(out_dir / candidate.slug),
                "complete": summary.complete,
                "stopped": summary.stopped,
                **score(pairs, [s.name for s in pipeline.stages]),
                "usage": {
                    **usage(summary.judge, run, summary.judge.notes),
                    "stages": {stage: usage(per, run)["per_1000"] for stage, per in summary.judge.per_stage.items()},
                },
            }
        )
    report: dict[str, Any] = {
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "golden": _golden_summary(golden),
        "pipeline": str(pipeline_path),
        "stages": stages,
        "ranking": rank(results, min_scored),
        "target_precision": target_precision,
        "candidates": results,
        "worth": _worth(applied_to, out_dir, results),
    }
    _write(out_dir / JSON_NAME, json.dumps(report, indent=2) + "\n")  # ASCII: records may hold lone surrogates
    _write(out_dir / HTML_NAME, render_html(report))
    return report


def _worth(run_dir: Path | None, out_dir: Path, results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the run's kept set is worth under the error of the candidate that is its judge."""
    if run_dir is None:
        return None
    return worth(run_dir, Summary.read(run_dir), {"path": str(out_dir / JSON_NAME), "candidates": results})


def _run_to_apply(given: Path | None, pipeline_path: Path, data: dict[str, Any]) -> Path | None:
    """The finished run folder whose kept set the calibration is applied to: ``given`` (refused, before
    anything is paid, when it is not a finished run), else the pipeline's own run folder when it is one."""
    if given is not None:
        readable_state(given, "apply the calibration to")
        return given
    own = output_folder(pipeline_path, (data.get("output") or {}).get("dir"))
    try:
        return own if folder_state(own).complete else None
    except RefineError:  # no run yet
        return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", errors="backslashreplace")  # a record's lone surrogate as \ud800
    os.replace(tmp, path)
