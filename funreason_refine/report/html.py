"""report.html: one self-contained page (inline CSS and SVG; no script, no network).

The markup is templates/report.html (and the report/ parts it includes); this module hands it
the report's numbers as plain data, and the geometry of its bar charts.
"""

from __future__ import annotations

from typing import Any

from funreason_refine.calibrate.worth_view import page_section
from funreason_refine.pages import render
from funreason_refine.report.scores import chart

COLORS = {"kept": "#2f9e44", "discarded": "#e8590c", "quarantined": "#ae3ec9", "errors": "#e03131", "hard": "#1c7ed6"}
BAR_COLOR, HISTOGRAM_COLOR = "#4263eb", "#748ffc"


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained page (templates/report.html)."""
    o, facts, judge, summary = report["outcomes"], report["facts"], report["judge"], report["summary"]
    f = facts
    return render(
        "report.html",
        run_dir=report["run_dir"],
        config_hash=str(summary.get("config_hash", ""))[:12],
        finished=str(summary.get("timings", {}).get("finished", "")),
        stopped=None if summary.get("complete", True) else str(summary.get("stopped")),
        mixed=report.get("mixed"),
        target=report.get("target"),
        total=report["funnel"][0]["records"],
        cards=[{"kind": k, "color": COLORS[k], "count": o.get(k, 0)} for k in o],
        funnel=bars([(f["step"], f["records"]) for f in report["funnel"]], "funnel."),
        stages=report["stages"],
        scores=[{**section, "chart": chart(section)} for section in report.get("scores", [])],
        judge=_judge(judge),
        servers=report.get("endpoints") or [],
        conversations=report.get("conversations"),
        facts=f,
        charts={
            "calls": bars([(k, v) for k, v in f["calls_per_record"].items()], "calls."),
            "functions": bars([(t["function"], t["records"]) for t in f["top_functions"]], "functions."),
            "cot": _histogram(f["cot_histogram"], "cot"),
            "answer": _histogram(f["answer_histogram"], "answer"),
        },
        dataset=_dataset(report.get("dataset")),
        review=_review(report.get("review")),
        discarded=report["examples"]["discarded"],
        regenerated=report["examples"]["regenerated"],
        worth=page_section(report.get("worth")),
    )


def bars(items: list[tuple[str, int]], key_prefix: str, color: str = BAR_COLOR, width: int = 640) -> dict[str, Any]:
    """A horizontal bar chart (templates/macros.html draws it as inline SVG): where each bar goes."""
    top = max((v for _, v in items), default=0) or 1
    row, label_w = 26, 150
    drawn = []
    for i, (label, value) in enumerate(items):
        w = int((width - label_w - 70) * value / top)
        y = i * row + 4
        drawn.append(
            {
                "label": label,
                "value": value,
                "key": key_prefix + label,
                "y": y,
                "text_y": y + 15,
                "rect_w": max(w, 1),
                "value_x": label_w + w + 6,
                "value_y": y + 14,
            }
        )
    return {"width": width, "height": row * len(items) + 6, "label_w": label_w, "color": color, "bars": drawn}


def _histogram(bins: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    items = [(f"{b['from']}-{b['to'] if b['to'] is not None else ''}", b["count"]) for b in bins]
    return bars(items, key + ".", color=HISTOGRAM_COLOR) if items else None


def _judge(judge: dict[str, Any]) -> dict[str, Any] | None:
    """The judge's calls and cost, overall and per stage; None when the run asked no model."""
    if not (judge.get("model") or judge.get("generator") or judge.get("calls") or judge.get("cached")):
        return None
    return {
        "model": str(judge.get("model") or "no [judge] table (scorers only)"),
        "calls": judge["calls"],
        "cached": judge["cached"],
        "retries": judge["retries"],
        "protocol_reasks": judge.get("protocol_reasks", 0),
        "protocol": judge.get("protocol") or {},
        "cost_usd": judge["cost_usd"],
        "per_stage": judge.get("per_stage", {}),
        "notes": judge.get("notes", []),
    }


def _review(review: dict[str, Any] | None) -> dict[str, Any] | None:
    """The verdicts a person reviewed (refine review): one row per stage and decider, then the kept records."""
    if not review:
        return None
    rows = [
        {
            "label": f"discarded at {s['stage']}",
            "decider": b["decider"],
            "records": b["records"],
            "scores": b,
            "key": f"review.{s['stage']}.{b['decider']}",
        }
        for s in review["stages"]
        for b in s["by"]
    ]
    k = review["kept"]
    if k["reviewed"]:
        rows.append({"label": "kept", "decider": "", "records": k["kept"], "scores": k, "key": "review.kept"})
    return {"decisions": review["decisions"], "stale": review["stale"], "rows": rows}


def _dataset(dataset: dict[str, Any] | None) -> dict[str, Any] | None:
    """The dataset audits: what they found, the call mix of the kept set, its warnings, examples."""
    if not dataset:
        return None
    from funreason_refine.report.dataset import KINDS

    dups, cont, mix = dataset["duplicates"], dataset["contamination"], dataset["call_mix"]
    return {
        "audited": dataset["audited"],
        "exact": dups["exact"],
        "near": dups["near"] if dups["near"] is not None else "-",
        "near_threshold": dups["near_threshold"],
        "contaminated": cont["records"] if cont["eval_sets"] else "-",
        "dropped": sum(dataset["dropped"].values()),
        "warnings": dataset["warnings"],
        "mix_records": mix["records"],
        "call_mix": bars([(label, mix[kind]) for kind, label in KINDS.items()], "callmix."),
        "duplicates": [_duplicate(e) for e in dups["examples"]],
        "contamination": cont,
        "contamination_examples": [
            {**e, "eval_id": e.get("eval_id"), "eval_query": e.get("eval_query", "")} for e in cont["examples"]
        ],
    }


def _duplicate(e: dict[str, Any]) -> dict[str, Any]:
    first = e.get("first") or {}
    return {**e, "first_id": first.get("id"), "first_query": first.get("query", "")}
