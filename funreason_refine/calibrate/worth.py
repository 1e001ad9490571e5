"""What a run's kept set is worth: its discards, overall and per stage, corrected with a calibration's measured error.

A calibration (`refine calibrate`) measured each candidate's sensitivity and specificity against a
person's labels; a run folder says how many records the same judge discarded. correction.py turns
the two into the share of truly bad records among the kept and of truly good ones among the
discarded. This module finds the candidate that is the run's judge (the same stages, judges,
prompts and settings: run.json's configuration), warns when none is, and lays out the figures.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from funreason_refine.calibrate.correction import CONFIDENCE, Correction, Estimate, Share, Undefined, correct
from funreason_refine.config import config_hash
from funreason_refine.errors import RefineError
from funreason_refine.run_identity import run_file_of
from funreason_refine.summary import Summary

CALIBRATION = "calibration.json"
AUDIT_STAGE = "dataset"  # the dataset audits' drops: records every stage let through
NOT_STAGES = (AUDIT_STAGE, "generate")  # "generate" counts only errors: it discards nothing
DIGITS = 4


def configuration(run_dir: Path) -> dict[str, Any]:
    """What decides a run folder's verdicts, from its run.json: the hash of its stages (their settings,
    judges and prompts, not where the judges are served) and the models each stage asks."""
    stages = (run_file_of(run_dir).get("config") or {}).get("stages")
    if not isinstance(stages, list):
        return {"stages_hash": None, "models": {}}
    models = {}
    for entry in stages:
        judge = entry.get("judge") or {}
        asked = [j.get("model") for j in judge.get("judges", [])]
        asked += [entry["generator"].get("model")] if entry.get("generator") else []
        if asked:
            models[str(entry.get("name"))] = [str(m) for m in asked]
    return {"stages_hash": config_hash({"stages": stages}), "models": models}


def describe_models(models: dict[str, list[str]]) -> str:
    """The judges of a configuration in a few words."""
    if not models:
        return "rules only"
    return "; ".join(f"{stage}: {', '.join(asked)}" for stage, asked in models.items())


def read_calibration(path: Path) -> dict[str, Any]:
    """A calibration folder's calibration.json (or that file itself), checked to hold what the correction needs."""
    path = Path(path)
    file = path / CALIBRATION if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RefineError(f"{file} does not exist: give the folder `refine calibrate --out` wrote") from None
    except (OSError, ValueError) as exc:
        raise RefineError(f"{file} cannot be read as JSON ({exc}): run `refine calibrate` again") from None
    scored = [c for c in data.get("candidates", []) if isinstance(c, dict) and "error" not in c]
    if not scored or any("reached" not in c or "configuration" not in c for c in scored):
        raise RefineError(
            f"{file} has no judge error rates to correct with (written by an older version, or every candidate "
            "failed): run `refine calibrate` again"
        )
    data["path"] = str(file)
    return data


def choose(
    calibration: dict[str, Any], run: dict[str, Any], name: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The calibrated candidate that is the run's judge, and a warning when it is not exactly that.

    ``name`` (--candidate) picks one by name or folder name, whatever it is; else the candidate with
    the run's configuration, else the one candidate with the run's models (other prompts or
    settings: warned), else none (warned)."""
    scored = [c for c in calibration["candidates"] if "error" not in c]
    if name is not None:
        found = next((c for c in scored if name in (c["name"], c["slug"])), None)
        if found is None:
            names = ", ".join(repr(c["name"]) for c in scored)
            raise RefineError(f"--candidate {name!r} is not a scored candidate of {calibration['path']}: {names}")
        return found, _difference(found, run)
    same = [c for c in scored if c["configuration"]["stages_hash"] == run["stages_hash"]]
    if same:
        return same[0], None
    alike = [c for c in scored if c["configuration"]["models"] == run["models"]]
    if len(alike) == 1:
        return alike[0], _difference(alike[0], run)
    listed = "; ".join(f"{c['name']} ({describe_models(c['configuration']['models'])})" for c in scored)
    return None, (
        f"the run's judges ({describe_models(run['models'])}) are not a candidate of {calibration['path']} "
        f"({listed}): its kept set is not estimated, since another judge's error says nothing about this one. "
        "Calibrate the pipeline the run used, or apply a candidate anyway with --candidate NAME"
    )


def _difference(candidate: dict[str, Any], run: dict[str, Any]) -> str | None:
    theirs = candidate["configuration"]
    if theirs["stages_hash"] == run["stages_hash"]:
        return None
    if theirs["models"] != run["models"]:
        return (
            f"the calibrated candidate {candidate['name']!r} ({describe_models(theirs['models'])}) is not the run's "
            f"judge ({describe_models(run['models'])}): the figures below apply its error to another judge's verdicts"
        )
    return (
        f"the calibrated candidate {candidate['name']!r} asks the run's models, but its prompts or stage settings "
        "differ from the run's: the error it measured may not be the run's"
    )


def run_counts(summary: Summary) -> list[tuple[str, int, int]]:
    """Per stage in pipeline order: (stage, records it discarded, records it decided: those that reached it
    and ended kept or discarded). Records in errors.jsonl or quarantined.jsonl are decided by none."""
    stages = [s for s in summary.stages if s not in NOT_STAGES]
    discarded = {s: sum(summary.stages[s].records_discarded.values()) for s in stages}
    audit = summary.stages.get(AUDIT_STAGE)
    past_all = summary.outcomes.get("kept", 0) + (sum(audit.records_discarded.values()) if audit else 0)
    rows, reached = [], past_all + sum(discarded.values())
    for stage in stages:
        rows.append((stage, discarded[stage], reached))
        reached -= discarded[stage]
    return rows


def worth(run_dir: Path, summary: Summary, calibration: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The worth section of `refine report --calibration` and of calibration.json."""
    run = configuration(run_dir)
    candidate, warning = choose(calibration, run, name)
    warnings = [w for w in (warning, summary.mixed_note()) if w]
    section: dict[str, Any] = {
        "run_dir": str(run_dir),
        "calibration": calibration["path"],
        "candidate": candidate["name"] if candidate else None,
        "confidence": CONFIDENCE,
        "warnings": warnings,
        "errors_left_out": summary.errors,
    }
    if candidate is None:
        return section
    rows = run_counts(summary)
    o = candidate["overall"]
    decided = rows[0][2] if rows else summary.outcomes.get("kept", 0)
    section["overall"] = worth_row("all stages", sum(d for _, d, _ in rows), decided, o)
    section["stages"] = [worth_row(stage, d, n, candidate["reached"].get(stage)) for stage, d, n in rows]
    section["unscored_labels"] = len(candidate.get("unscored", []))
    return section


def worth_row(stage: str, discarded: int, decided: int, counts: dict[str, int] | None) -> dict[str, Any]:
    """One row of the worth section: a stage (or all stages) that ``decided`` records reached and that
    discarded ``discarded`` of them, corrected with ``counts`` (tp, fp, fn, tn of its labels; None when
    the calibration did not run it)."""
    c = counts or {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    bad, good = Share(c["tp"], c["tp"] + c["fn"]), Share(c["tn"], c["tn"] + c["fp"])
    row: dict[str, Any] = {
        "stage": stage,
        "records": decided,
        "discarded": discarded,
        "labels": {"discard": bad.n, "caught": bad.hits, "keep": good.n, "passed": good.hits},
        "sensitivity": round(bad.value, DIGITS) if bad.n else None,
        "specificity": round(good.value, DIGITS) if good.n else None,
        "bad_share": None,
        "bad_among_kept": None,
        "good_among_discarded": None,
        "notes": [] if counts is not None else ["the calibration did not run this stage"],
    }
    if counts is None:
        return row
    try:
        corrected = correct(Share(discarded, decided), bad, good)
    except Undefined as exc:
        row["notes"] = [str(exc)]
        return row
    return {**row, **_figures(corrected, discarded, decided), "notes": corrected.notes}


def _figures(c: Correction, discarded: int, decided: int) -> dict[str, Any]:
    return {
        "bad_share": _dump(c.bad_share, decided),
        "bad_among_kept": _dump(c.bad_among_kept, decided - discarded),
        "good_among_discarded": _dump(c.good_among_discarded, discarded),
    }


def _dump(e: Estimate | None, records: int) -> dict[str, Any] | None:
    """An estimate as JSON: the shares rounded, and the records they stand for."""
    if e is None:
        return None
    shares = {k: round(v, DIGITS) if isinstance(v, float) else v for k, v in asdict(e).items()}
    return {**shares, "records": round(e.value * records), "of": records}
