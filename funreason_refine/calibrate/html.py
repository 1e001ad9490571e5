"""calibration.html: one self-contained page (inline CSS and SVG; no script, no network).

The markup is templates/calibration.html (and the calibration/ parts it includes); this module
hands it the calibration report as plain data, and the geometry of its charts.
"""

from __future__ import annotations

from typing import Any

from funreason_refine.calibrate.worth_view import page_section
from funreason_refine.pages import render

COLORS = ("#868e96", "#4263eb", "#e8590c", "#2f9e44", "#ae3ec9", "#1c7ed6", "#f08c00", "#c2255c")
SCORES = ("precision", "recall", "f1", "agreement", "kappa")
SHOWN_DISAGREEMENTS = 50


def render_html(report: dict[str, Any]) -> str:
    """The calibration report as one self-contained page (templates/calibration.html)."""
    g, candidates = report["golden"], report["candidates"]
    scored = [c for c in candidates if "error" not in c]
    return render(
        "calibration.html",
        golden=g,
        discard_by_stage=", ".join(f"{s} {n}" for s, n in g["discard_by_stage"].items()) or "-",
        pipeline=report["pipeline"],
        written=report["written"],
        scores=SCORES,
        candidates=candidates,
        ranking=report["ranking"],
        charts=[scatter(scored, "f1"), scatter(scored, "kappa")],
        per_stage=_per_stage(scored, report["stages"]),
        details=[_details(c) for c in scored],
        shown_disagreements=SHOWN_DISAGREEMENTS,
        worth=page_section(report.get("worth")),
        thresholds=[
            {"candidate": c, "stage": stage, "fit": t, "chart": threshold_chart(t)}
            for c in scored
            for stage, t in (c.get("thresholds") or {}).items()
        ],
    )


def _frame(width: int, height: int, left: int, top: int, plot_w: int, plot_h: int) -> dict[str, int]:
    """A chart's size and where its plot area is, as the templates read them."""
    return {"width": width, "height": height, "left": left, "top": top, "plot_w": plot_w, "plot_h": plot_h}


def _axis_ticks(top: float) -> list[float]:
    return [top * i / 4 for i in range(5)]


def scatter(candidates: list[dict[str, Any]], metric: str, width: int = 680, height: int = 300) -> dict[str, Any]:
    """Quality (y) against judge cost per 1,000 records (x): where each candidate's point and each axis line go."""
    points = [
        (i, c, c["usage"]["per_1000"]["cost_usd"], c["overall"][metric])
        for i, c in enumerate(candidates)
        if "overall" in c and c["overall"][metric] is not None
    ]
    left, right, top, bottom = 56, 190, 12, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    x_top = max((x for _, _, x, _ in points), default=0.0) * 1.1 or 1.0
    y_low = min(0.0, min((y for *_, y in points), default=0.0))

    def px(x: float) -> float:
        return left + plot_w * x / x_top

    def py(y: float) -> float:
        return top + plot_h * (1 - (y - y_low) / (1 - y_low))

    return {
        "metric": metric,
        **_frame(width, height, left, top, plot_w, plot_h),
        "grid": [{"value": y, "y": py(y)} for y in (y_low, (y_low + 1) / 2, 1.0)],
        "ticks": [{"value": x, "x": px(x)} for x in _axis_ticks(x_top)],
        "points": [
            {"x": px(x), "y": py(y), "value": y, "color": COLORS[i % len(COLORS)], "slug": c["slug"], "name": c["name"]}
            for i, c, x, y in points
        ],
    }


def _per_stage(candidates: list[dict[str, Any]], stages: list[str]) -> list[dict[str, Any]]:
    """One row per stage and candidate that scored it."""
    rows = []
    for stage in stages:
        for c in candidates:
            scores = c.get("stages", {}).get(stage)
            if scores is None:
                continue
            use = c["usage"]["stages"].get(stage, {})
            rows.append(
                {
                    "stage": stage,
                    "name": c["name"],
                    "key": f"candidate.{c['slug']}.stages.{stage}",
                    "scores": scores,
                    "calls": use.get("calls", 0),
                    "cost_usd": use.get("cost_usd", 0),
                }
            )
    return rows


def _details(c: dict[str, Any]) -> dict[str, Any]:
    """A candidate's section: its notes, and its confusion table (person's label against the run's outcome)."""
    table = c["confusion"]
    return {
        "candidate": c,
        "notes": [*c["notes"], *c["usage"]["notes"]],
        "columns": sorted({col for row in table.values() for col in row}),
        "confusion": sorted(table.items()),
    }


CURVES = (("precision", "#4263eb"), ("recall", "#2f9e44"), ("f1", "#e8590c"))


def threshold_chart(fit: dict[str, Any], width: int = 680, height: int = 260) -> dict[str, Any] | None:
    """Precision, recall and F1 of the discards (y, 0 to 1) against a scorer's threshold (x), with the
    configured threshold and the proposals marked: where each line and mark goes."""
    points = fit["curve"]
    if len(points) < 2:
        return None
    left, right, top, bottom = 48, 120, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = points[0]["threshold"], points[-1]["threshold"]
    span = (high - low) or 1.0

    def px(x: float) -> float:
        return left + plot_w * (min(max(x, low), high) - low) / span

    def py(y: float) -> float:
        return top + plot_h * (1 - y)

    lines = []
    for name, color in CURVES:
        drawn = [(px(p["threshold"]), py(p[name])) for p in points if p[name] is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in drawn)
        lines.append({"name": name, "color": color, "points": path, "label_y": drawn[-1][1] if drawn else top})
    marks = [
        {"label": label, "x": px(value)}
        for label, value in (
            ("configured", fit["configured"]),
            ("best F1", (fit["best_f1"] or {}).get("threshold")),
            ("target", (fit.get("at_target") or {}).get("threshold")),
        )
        if value is not None
    ]
    return {
        **_frame(width, height, left, top, plot_w, plot_h),
        "lines": lines,
        "marks": marks,
        "ticks": [{"value": low + span * i / 4, "x": px(low + span * i / 4)} for i in range(5)],
        "grid": [{"value": v, "y": py(v)} for v in (0.0, 0.5, 1.0)],
    }
