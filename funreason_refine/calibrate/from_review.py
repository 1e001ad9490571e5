"""`refine calibrate --golden-from RUN_DIR`: a golden set from the decisions a person made with `refine review`.

Each reviewed record is taken from the run's input as it was read (its original format, before
any repair), labelled with what the person said should happen to it:

    discarded, marked right  -> discard at that stage, with that reason
    discarded, marked wrong  -> keep
    kept, marked right       -> keep (with the kept answer when a stage corrected it)
    kept, marked wrong       -> discard (the stage is not known)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funreason_refine.calibrate.golden import COMMENT, GROUND_TRUTH, LABEL
from funreason_refine.errors import RefineError
from funreason_refine.jsonl import read_jsonl
from funreason_refine.overrides import OVERRIDES, Decision, read_decisions
from funreason_refine.record import Action, Outcome
from funreason_refine.review.view import COT_REWRITTEN
from funreason_refine.run_state import readable_state
from funreason_refine.summary import Summary

MARK = "from the review of "  # starts every comment, so that a set written here may be written again


@dataclass
class Written:
    records: int
    notes: list[str] = field(default_factory=list)


def _label(line: dict[str, Any], kind: str, d: Decision) -> dict[str, Any]:
    if kind == Outcome.DISCARDED and d.decision == "right":
        return {"outcome": "discard", "stage": line.get("stage"), "reason": line.get("reason")}
    if kind == Outcome.KEPT and d.decision == "wrong":
        return {"outcome": "discard"}
    label: dict[str, Any] = {"outcome": "keep"}
    corrected = any(
        s.get("verdict") == Action.REGENERATE and not str(s.get("message", "")).endswith(COT_REWRITTEN)
        for s in line.get("trail") or []
    )
    if kind == Outcome.KEPT and corrected and isinstance(line.get("answer"), list):
        label["answer"] = line["answer"]  # the person approved the corrected answer
    return label


def _reviewed(run_dir: Path) -> tuple[list[tuple[dict[str, Any], str, Decision]], int, list[str]]:
    """The decided records whose verdict is still the one decided on, in input order; the stale count; and
    warnings on overrides.jsonl (a line that is not a decision stops it, as it stops export)."""
    readable_state(run_dir, "write a golden set from")
    read = read_decisions(run_dir)
    warnings = read.check()
    if not read.latest:
        raise RefineError(
            f"{run_dir / OVERRIDES} holds no decision: review the run with `refine review {run_dir}` first"
        )
    found = []
    for kind in (Outcome.DISCARDED, Outcome.KEPT):
        file = run_dir / f"{kind}.jsonl"
        if file.exists():
            for line in read_jsonl(file):
                d = read.on(line, kind)
                if d is not None:
                    found.append((line, kind, d))
    return sorted(found, key=lambda f: f[0]["index"]), len(read.latest) - len(found), warnings


def _run_input(run_dir: Path) -> dict[str, Any]:
    """The run's [input] as run.json recorded it, with the resolved path and format summary.json gives."""
    try:
        config = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["config"]["input"]
        read = Summary.read(run_dir).input
        return {**config, "path": read.path, "format": read.format}
    except (OSError, ValueError, KeyError) as exc:
        raise RefineError(f"{run_dir} is not a finished run folder of `refine run` ({exc})") from None


def _originals(source: dict[str, Any], lines: set[int]) -> dict[int, dict[str, Any]]:
    """The input objects at these lines (rows), as the run's reader read them."""
    from funreason_refine.readers import DEFAULT_MAX_RECORD_BYTES
    from funreason_refine.readers.raw import iter_raw

    path = Path(source["path"])
    if not path.is_file():
        raise RefineError(f"the run's input {path} is gone: a golden set needs the records as they were read")
    limit = source.get("max_record_bytes") or DEFAULT_MAX_RECORD_BYTES
    return {n: obj for n, obj, _ in iter_raw(path, limit) if n in lines and isinstance(obj, dict)}


def _ground_truth(source: dict[str, Any]) -> dict[str, Any]:
    from funreason_refine.readers import bfcl

    answers = source.get("answers") or bfcl.default_answers_path(Path(source["path"]))
    return bfcl.load_answers(Path(answers))


def golden_from_review(run_dir: Path, out: Path) -> Written:
    """Write a golden set (JSONL) of the reviewed records of ``run_dir`` to ``out``."""
    from funreason_refine.readers.answers import record_id

    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and MARK not in out.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]:
        raise RefineError(f"{out} exists and was not written by --golden-from: give another file name")
    reviewed, stale, warnings = _reviewed(run_dir)
    source = _run_input(run_dir)
    originals = _originals(source, {line["source"]["line"] for line, _, _ in reviewed})
    truth = _ground_truth(source) if source.get("format") == "bfcl" else {}
    rows, problems = [], []
    for line, kind, d in reviewed:
        obj = originals.get(line["source"]["line"])
        if obj is None or record_id(obj, str(line["index"])) != str(line["id"]):
            problems.append(f"record {line['index']} (id {line['id']}) is no longer at line {line['source']['line']}")
            continue
        if LABEL in obj:
            problems.append(f"record {line['index']} (id {line['id']}) has a field named {LABEL!r} of its own")
            continue
        verdict = f"{kind} ({line.get('stage')}: {line.get('reason')})" if kind == Outcome.DISCARDED else kind
        comment = f"{MARK}{run_dir}: {verdict}, verdict marked {d.decision}" + (f"; note: {d.note}" if d.note else "")
        extra = {GROUND_TRUTH: truth[str(line["id"])]} if str(line["id"]) in truth else {}
        rows.append({**obj, **extra, LABEL: _label(line, kind, d), COMMENT: comment})
    if problems:
        raise RefineError(f"cannot write a golden set from {source['path']}: " + "; ".join(problems[:10]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows), encoding="utf-8")
    notes = [f"{stale} decision(s) on verdicts the run no longer has were left out"] if stale else []
    return Written(len(rows), notes + warnings)
