"""The terminal view of a calibration: quality, cost and per-stage tables (rich)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

SCORES = ("precision", "recall", "f1", "agreement", "kappa")


def _v(value: Any, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def _table(title: str, columns: tuple[str, ...], left: int = 1) -> Table:
    table = Table(title=title, show_edge=False)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < left else "right", overflow="fold")
    return table


def calibration_tables(report: dict[str, Any]) -> list[Table]:
    g = report["golden"]
    quality = _table(
        f"Agreement with {g['records']} labels ({g['keep']} keep, {g['discard']} discard; a discard is the positive)",
        ("candidate", "rank", "scored", "unscored", *SCORES, "wrong stage", "fixes matched"),
    )
    cost = _table(
        "Judge use per 1,000 records (cached answers counted at what they cost when asked)",
        ("candidate", "calls", "tokens", "USD", "judge s", "paid now (USD)"),
    )
    stages = _table(
        "Per stage (positive: discarded at this stage)",
        ("stage", "candidate", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "kappa"),
        left=2,
    )
    for c in report["candidates"]:
        name = escape(c["name"])
        if "error" in c:
            quality.add_row(name, "-", "[red]failed[/]", escape(c["error"]))
            continue
        o, fixes, use = c["overall"], c["corrections"], c["usage"]
        quality.add_row(
            name + ("" if c["complete"] else " [yellow](stopped)[/]"),
            str(c["rank"]) if c.get("rank") else "[red]not ranked[/]",
            str(o["records"]),
            f"[red]{len(c['unscored'])}[/]" if c.get("not_ranked") else str(len(c["unscored"])),
            *(_v(o[s]) for s in SCORES),
            str(o["wrong_stage"]),
            f"{fixes['matched']}/{fixes['labelled']}",
        )
        per = use["per_1000"]
        cost.add_row(
            name,
            _v(per["calls"], "{:,.0f}"),
            _v(per["tokens"], "{:,.0f}"),
            _v(per["cost_usd"], "{:.4f}"),
            _v(per["judge_seconds"], "{:.1f}"),
            _v(use["paid_usd"], "{:.4f}"),
        )
    for stage in report["stages"]:
        for c in report["candidates"]:
            s = c.get("stages", {}).get(stage)
            if s is not None:
                stages.add_row(
                    escape(stage),
                    escape(c["name"]),
                    *(str(s[k]) for k in ("tp", "fp", "fn", "tn")),
                    *(_v(s[k]) for k in ("precision", "recall", "f1", "kappa")),
                )
    return [quality, cost, stages]


def _point(p: dict[str, Any]) -> str:
    return f"precision {_v(p['precision'])}, recall {_v(p['recall'])}, F1 {_v(p['f1'])}, {p['below']} scored below it"


def threshold_lines(report: dict[str, Any]) -> list[str]:
    """Per candidate and scorer stage: the threshold proposed, its figures, and the line to paste."""
    lines = []
    for c in report["candidates"]:
        for stage, t in (c.get("thresholds") or {}).items():
            head = f"{c['name']}, stage {stage} (scorer {t['model']}, {t['scored']} records scored):"
            if not t["curve"]:
                lines.append(f"{head} no golden record reached the scorer; no threshold to fit")
                continue
            at = t["at_configured"]
            configured = "none" if t["configured"] is None else f"{t['configured']:g}"
            lines.append(
                f"{head} as configured (threshold {configured}): precision {_v(at['precision'])}, "
                f"recall {_v(at['recall'])}, F1 {_v(at['f1'])}"
            )
            best = t["best_f1"]
            if best is not None:
                lines.append(f"  best F1 at threshold {best['threshold']:g}: {_point(best)}; paste: {best['paste']}")
            else:
                lines.append(
                    "  no threshold discards a record labelled discard (F1 0 at each): none proposed; one below "
                    "every score discards none"
                )
            if t["target_precision"] is not None:
                lines.append(_target_line(t))
    return lines


def _target_line(t: dict[str, Any]) -> str:
    wanted, found = t["target_precision"], t["at_target"]
    if found is None:
        best = max((p["precision"] for p in t["curve"] if p["precision"] is not None), default=None)
        return (
            f"  no threshold reaches precision {wanted:g} (the highest is {_v(best)}): label more records, or "
            "try another scorer"
        )
    return f"  precision {wanted:g} at threshold {found['threshold']:g}: {_point(found)}; paste: {found['paste']}"
